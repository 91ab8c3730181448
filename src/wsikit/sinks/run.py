"""Tiling one slide into its result folder, in two steps a cluster can run apart:
:func:`plan_part` computes the plan (plain data), :func:`write_part` reads the tiles the
folder lacks and stores them, then writes the manifest. :func:`tile_slide` does both here.

The order of the writes is what makes a run resumable (see :mod:`wsikit.sinks`): the job
record first, then the tiles (each whole or absent), the manifest last and synced. A rerun
of the same job finds which tiles exist and writes only the others; when the plan it
computes differs from the one the unfinished run recorded (the slide or wsikit changed),
it starts afresh.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from ..plan import TileSpec
from .atomic import remove_temporaries, write_atomic
from .channels import as_channels_last, stored_pixel_layout
from .jobs import SlideJob, SlidePart, SlideResult, TileOptions
from .layout import JOB_RECORD_FORMAT, MANIFEST, assign_folders, is_complete, read_job, remove_results, write_job
from .manifest import manifest_bytes
from .resume import prepare
from .writers import IMAGE_CHANNELS, PendingTile, open_writer

if TYPE_CHECKING:
    from ..tile import Tile

#: Tiles handed to a writer at once: at most this many, and no more once this many bytes.
WRITE_RUN_TILES = 16
WRITE_RUN_BYTES = 8 * 1024**2
#: the version of the job record's layout
JOB_RECORD_VERSION = 1


def plan_part(job: SlideJob) -> SlidePart:
    """Open the slide and compute its tile plan."""
    from ..opener import open_slide

    with open_slide(job.slide, backend=job.options.backend) as slide:
        plan = slide.tile_plan(**job.options.plan_kwargs())
    return SlidePart(job, plan)


def write_part(part: SlidePart, progress: Callable[[int], object] | None = None) -> SlideResult:
    """Read the tiles of ``part`` that its folder lacks, write them, then the manifest.

    ``progress`` is called with the number of tiles done after each run of tiles (and once
    with the number found already written). Raises on failure (so that Dask retries).
    """
    from ..opener import open_slide
    from ..reader import ordered_map

    job, plan = part.job, part.plan
    options = job.options
    folder = job.folder
    notes: list[str] = []
    if is_complete(folder):
        return SlideResult(job.slide, folder, "skipped", tiles=len(plan), reason="already complete")
    with open_slide(job.slide, backend=options.backend) as slide:
        layout = stored_pixel_layout(slide)
        channels = layout[0]
        if options.format != "zarr" and channels not in IMAGE_CHANNELS:
            raise ValueError(
                f"{job.slide}: tiles of {channels} channels cannot be stored as {options.format.upper()} "
                "(one or three channels only); use the zarr format"
            )
        record = {"format": JOB_RECORD_FORMAT, "version": JOB_RECORD_VERSION, "slide": job.slide,
                  "options": options.as_json(), "tiles": len(plan), "plan_sha256": part.digest}
        os.makedirs(folder, exist_ok=True)
        existing = read_job(folder)
        if existing is not None and existing != record:
            if existing.get("slide") != job.slide or existing.get("options") != record["options"]:
                raise ValueError(f"{folder} holds results of another slide or other options; "
                                 "pass overwrite to replace them")
            # Same slide and options, another plan (the slide or wsikit changed): start afresh.
            notes.append("an unfinished earlier run planned other tiles; started afresh")
            remove_results(folder)
            existing = None
        remove_temporaries(folder)
        if existing is None:
            write_job(folder, record)
        writer = open_writer(folder, options, len(plan), layout, slide)
        todo = [k for k, spec in enumerate(plan) if not writer.has(k, spec)]
        done = len(plan) - len(todo)
        if progress is not None:
            progress(done)
        rest = plan.take(todo)
        tiles = slide.read_plan(rest, workers=job.read_workers)

        def write(run: list[PendingTile]) -> int:
            writer.write_run(run)
            return len(run)

        for written in ordered_map(write, _tile_runs(todo, rest, tiles, channels), job.read_workers):
            done += written
            if progress is not None:
                progress(done)
    write_atomic(os.path.join(folder, MANIFEST), manifest_bytes(plan, options.format), sync=True)
    return SlideResult(job.slide, folder, "written", tiles=len(plan), written=len(todo), notes=notes)


def _tile_runs(indices: list[int], specs: Iterable[TileSpec], tiles: Iterable[Tile],
               channels: int) -> Iterator[list[PendingTile]]:
    """The tiles read, grouped into runs of consecutive indices for the writer: one Zarr
    write of a slab of chunks costs much less Python than one write per chunk."""
    run: list[PendingTile] = []
    nbytes = 0
    for k, spec, tile in zip(indices, specs, tiles):
        image = as_channels_last(tile.image, channels)
        if run and (k != run[-1].position + 1 or len(run) >= WRITE_RUN_TILES or nbytes >= WRITE_RUN_BYTES):
            yield run
            run, nbytes = [], 0
        run.append(PendingTile(k, spec, image))
        nbytes += image.nbytes
    if run:
        yield run


def tile_slide(slide: str | os.PathLike[str], out: str | os.PathLike[str], options: TileOptions | None = None, *,
               overwrite: bool = False, progress: Callable[[int], object] | None = None) -> SlideResult:
    """Tile one slide into ``out/<name>/`` (see :mod:`wsikit.sinks`) in this process."""
    options = options or TileOptions()
    slide_path = os.path.abspath(os.fspath(slide))
    out_path = os.path.abspath(os.fspath(out))
    job = SlideJob(slide_path, assign_folders([slide_path], out_path)[0], options)
    early = prepare(job, out_path, overwrite)
    if early is not None:
        return early
    return write_part(plan_part(job), progress)
