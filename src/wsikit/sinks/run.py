"""Tiling one slide into its result folder, in steps a cluster can run apart:
:func:`plan_part` computes the plan (plain data); :func:`start_part` prepares the folder
(job record, store); :func:`write_range` reads the tiles of a range of the plan that the
folder lacks and stores them (ranges split with :func:`split_ranges` at store units write
in parallel); :func:`finish_part` writes the manifest. :func:`write_part` runs the last
three here, :func:`tile_slide` all four.

The order of the writes is what makes a run resumable (see :mod:`wsikit.sinks`): the job
record first, then the tiles (each whole or absent), the manifest last and synced. A rerun
of the same job finds which tiles exist and writes only the others; when the plan it
computes differs from the one the unfinished run recorded (the slide or wsikit changed),
it starts afresh.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..plan import Plan, TileSpec
from ..remote.urls import display_url
from .atomic import remove_temporaries, write_atomic
from .channels import as_channels_last, stored_pixel_layout
from .jobs import SlideJob, SlidePart, SlideResult, TileOptions
from .layout import (JOB_RECORD_FORMAT, MANIFEST, assign_folders, is_complete, read_job, remove_results,
                     slide_location, write_job)
from .manifest import manifest_bytes
from .resume import prepare
from .writers import IMAGE_CHANNELS, PendingTile, open_writer

if TYPE_CHECKING:
    from ..backends.base import SlideBackend
    from .writers import TileWriter
    from ..tile import Tile

#: Tiles handed to a writer at once: at most this many, and no more once this many bytes.
WRITE_RUN_TILES = 16
WRITE_RUN_BYTES = 8 * 1024**2
#: Native JPEG tiles passed through per task of the writing threads.
NATIVE_BATCH = 64
#: the version of the job record's layout (2: Zarr tiles in shards)
JOB_RECORD_VERSION = 2


def plan_part(job: SlideJob) -> SlidePart:
    """Open the slide and compute its tile plan."""
    from ..opener import open_slide

    from ..annotations.outputs import label_arguments

    options = job.options
    with open_slide(job.slide, backend=options.backend) as slide:
        labels = label_arguments(options.annotations, dict(options.min_label or ()) or None, job.slide, slide)
        plan = slide.tile_plan(**options.plan_kwargs(), **labels)
    return SlidePart(job, plan)


@dataclass(frozen=True)
class PartStart:
    """What :func:`start_part` found and prepared: ``notes`` for the user, and ``unit``, the
    tiles the store keeps together (a shard): ranges split at multiples of it can be written
    by different processes at once."""

    notes: list[str]
    unit: int


def start_part(part: SlidePart, slide: SlideBackend | None = None) -> PartStart:
    """Prepare ``part``'s folder: check the slide can be stored so, write the job record
    (starting afresh when an unfinished run planned other tiles), remove what a killed run
    left half-written, create the store. Run once per slide, before any :func:`write_range`."""
    if slide is None:
        with _open(part) as opened:
            return start_part(part, opened)
    job, plan, options, folder = part.job, part.plan, part.job.options, part.job.folder
    notes: list[str] = []
    layout = stored_pixel_layout(slide)
    channels = layout[0]
    if options.format != "zarr" and channels not in IMAGE_CHANNELS:
        raise ValueError(
            f"{job.slide}: tiles of {channels} channels cannot be stored as {options.format.upper()} "
            "(one or three channels only); use the zarr format"
        )
    record = {"format": JOB_RECORD_FORMAT, "version": JOB_RECORD_VERSION, "slide": display_url(job.slide),
              "options": options.as_json(), "tiles": len(plan), "plan_sha256": part.digest}
    os.makedirs(folder, exist_ok=True)
    existing = read_job(folder)
    if existing is not None and existing != record:
        if existing.get("slide") != display_url(job.slide) or existing.get("options") != record["options"]:
            raise ValueError(f"{folder} holds results of another slide or other options; "
                             "pass overwrite to replace them")
        # Same slide and options, another plan or layout (the slide or wsikit changed): start afresh.
        notes.append("an unfinished earlier run planned other tiles; started afresh")
        remove_results(folder)
        existing = None
    remove_temporaries(folder)
    if existing is None:
        write_job(folder, record)
    writer = with_masks(open_writer(folder, options, len(plan), layout, slide), plan, folder, options.format)
    return PartStart(notes, writer.unit)


def write_range(part: SlidePart, start: int = 0, stop: int | None = None, slide: SlideBackend | None = None,
                progress: Callable[[int], object] | None = None) -> int:
    """Read and store the tiles of positions ``start``..``stop`` of ``part``'s plan that its
    folder lacks (after :func:`start_part`); returns how many it wrote.

    Native JPEG tiles go through without decoding (jpeg format); the others are read on the
    job's threads and written, in runs, on as many threads (compression off the thread
    that reads). ``progress`` is called with the tiles done so far, starting with those
    found stored. Raises on failure (so that Dask retries).
    """
    from ..reader import ordered_map

    if slide is None:
        with _open(part) as opened:
            return write_range(part, start, stop, opened, progress)
    job, plan = part.job, part.plan
    stop = len(plan) if stop is None else min(stop, len(plan))
    layout = stored_pixel_layout(slide)
    writer = with_masks(open_writer(job.folder, job.options, len(plan), layout, slide), plan, job.folder,
                        job.options.format)
    todo = _missing(plan, writer, start, stop)
    done = (stop - start) - len(todo)
    if progress is not None:
        progress(done)
    positions = todo
    if writer.passthrough and todo:
        positions = []
        batches = (list(zip(todo[k : k + NATIVE_BATCH], plan.take(todo[k : k + NATIVE_BATCH])))
                   for k in range(0, len(todo), NATIVE_BATCH))

        def write_native(batch: list[tuple[int, TileSpec]]) -> tuple[int, list[int]]:
            return len(batch), writer.write_native(batch)

        for size, left in ordered_map(write_native, batches, job.read_workers):
            positions += left
            done += size - len(left)
            if progress is not None:
                progress(done)
    rest = plan.take(positions)
    tiles = slide.read_plan(rest, workers=job.read_workers, resampling=job.options.resampling)

    def write(run: list[PendingTile]) -> int:
        writer.write_run(run)
        return len(run)

    handed = 0
    for written in ordered_map(write, _tile_runs(positions, rest, tiles, layout.channels), job.read_workers):
        handed += written
        done += written
        if progress is not None:
            progress(done)
    if handed != len(positions):  # a shard short of tiles would never be written
        raise RuntimeError(f"{job.slide}: {len(positions) - handed} of {len(positions)} tiles were not read")
    return len(todo)


def finish_part(part: SlidePart, started: PartStart, written: int, slide: SlideBackend | None = None) -> SlideResult:
    """Check every tile of ``part`` is stored, then write the manifest that marks the slide
    complete (after every :func:`write_range` of it has ended). Temporaries that a range
    killed mid-write left (its retry wrote the file whole) are removed first. Raises
    RuntimeError naming the tiles missing (a range that did not run)."""
    job, plan = part.job, part.plan
    if slide is None:
        with _open(part) as opened:
            return finish_part(part, started, written, opened)
    remove_temporaries(job.folder)
    writer = with_masks(open_writer(job.folder, job.options, len(plan), stored_pixel_layout(slide), slide), plan,
                        job.folder, job.options.format)
    missing = sum(1 for k, spec in enumerate(plan) if not writer.has(k, spec))
    if missing:
        raise RuntimeError(f"{job.slide}: {missing} of {len(plan)} tiles are not stored in {job.folder}")
    write_atomic(os.path.join(job.folder, MANIFEST), manifest_bytes(plan, job.options.format), sync=True)
    return SlideResult(job.slide, job.folder, "written", tiles=len(plan), written=written, notes=started.notes)


def write_part(part: SlidePart, progress: Callable[[int], object] | None = None) -> SlideResult:
    """Read the tiles of ``part`` that its folder lacks, write them, then the manifest, in
    this process (:func:`start_part`, :func:`write_range` over the whole plan, the manifest).

    ``progress`` is called with the number of tiles done after each run of tiles (and once
    with the number found already written). Raises on failure (so that Dask retries).
    """
    job, plan = part.job, part.plan
    if is_complete(job.folder):
        return SlideResult(job.slide, job.folder, "skipped", tiles=len(plan), reason="already complete")
    with _open(part) as slide:
        started = start_part(part, slide)
        written = write_range(part, 0, len(plan), slide, progress)
    write_atomic(os.path.join(job.folder, MANIFEST), manifest_bytes(plan, job.options.format), sync=True)
    return SlideResult(job.slide, job.folder, "written", tiles=len(plan), written=written, notes=started.notes)


def split_ranges(count: int, unit: int, pieces: int) -> list[tuple[int, int]]:
    """``range(count)`` cut into at most ``pieces`` (start, stop) ranges of about equal size,
    each boundary a multiple of ``unit`` (so that no store unit is split)."""
    units = -(-count // max(1, unit))
    pieces = max(1, min(pieces, units))
    bounds = [min(count, (units * k // pieces) * unit) for k in range(pieces + 1)]
    return [(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]


def with_masks(writer: TileWriter, plan: Plan, folder: str, fmt: str) -> TileWriter:
    """``writer``, also storing the tiles' masks when the plan has labels (wsikit.annotations.outputs)."""
    if plan.labels is None:
        return writer
    from ..annotations.outputs import with_masks as masked

    return masked(writer, plan, folder, fmt)


def _missing(plan: Plan, writer: TileWriter, start: int, stop: int) -> list[int]:
    """The positions in ``start``..``stop`` whose tiles ``writer`` does not hold (the plan's
    TileSpecs made a block at a time, so that only positions are kept)."""
    missing: list[int] = []
    for first in range(start, stop, 4096):
        last = min(stop, first + 4096)
        missing += [k for k, spec in zip(range(first, last), plan[first:last]) if not writer.has(k, spec)]
    return missing


def _open(part: SlidePart) -> SlideBackend:
    from ..opener import open_slide

    return open_slide(part.job.slide, backend=part.job.options.backend)


def _tile_runs(indices: list[int], specs: Iterable[TileSpec], tiles: Iterable[Tile],
               channels: int) -> Iterator[list[PendingTile]]:
    """The tiles read, grouped into runs of consecutive indices for the writer: one call
    per run (compressing a run on one thread) costs much less Python than one per tile."""
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
    slide_path = slide_location(slide)
    out_path = os.path.abspath(os.fspath(out))
    job = SlideJob(slide_path, assign_folders([slide_path], out_path)[0], options)
    early = prepare(job, out_path, overwrite)
    if early is not None:
        return early
    return write_part(plan_part(job), progress)
