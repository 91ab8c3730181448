"""Where tiles go: one folder per slide holding a manifest and the tiles.

Layout of ``OUT/<name>/`` for one slide::

    job.json       the slide and the options; written first
    tiles.zarr/    a Zarr v3 group whose array ``tiles`` is (n, h, w, channels), one tile
                   per chunk, 256 chunks a shard file, lossless (Blosc LZ4 by default), the
                   slide's metadata in the group's attributes (format zarr)
    images/        one PNG or JPEG per tile, named ``<i>_<j>.png`` (formats png, jpeg; jpeg
                   stores the slide's own JPEG tiles where the grid is the file's)
    tiles.csv      one row per tile: i, j, level, i0, j0, height, width, mpp, tissue
                   (and ``file`` for png/jpeg); row k is ``tiles[k]``. Written last.

Columns: (i, j) the tile's top-left corner in the frame the tiles were asked for (the
level's pixels, or the target-resolution frame with ``mpp``/``magnification``); level the
level read; (i0, j0) the corner in level-0 pixels; height, width the tile's shape; mpp its
microns per pixel (the mean of the two axes; empty when the slide does not say); tissue its
tissue fraction (empty without a tissue mask).

Channels: brightfield RGB tiles have 3; other images, read as (h, w, z, c, t), are stored
with their z, c and t axes flattened in that order (channel index = (z * C + c) * T + t),
so every plane is kept; the attributes give the sizes to reshape with.

Names: a slide's folder is its file name without the extension (``slide.svs`` ->
``slide``; ``x.ome.tiff`` -> ``x``), characters other than letters, digits, ``.``, ``_``
and ``-`` replaced by ``_``. When an earlier slide of the same run already took that name,
or the folder holds another slide's results (its ``job.json`` names another file) or
something that is not a wsikit result, the folder is ``<name>-<the first 8 hex digits of
the SHA-1 of the slide's absolute path>``. Names never contain a path separator or start
with a dot, and a folder that would resolve outside OUT (a symbolic link) is refused.

Crash safety: every file (a tile image, a shard of tiles) is written to a temporary name
and renamed into place, so a file is either whole or absent; ``tiles.csv`` is written
last, so its presence means the slide is complete. A rerun skips complete slides and
finishes incomplete ones, writing only the missing tiles (whole shards for Zarr); the
result is byte for byte what an uninterrupted run writes. Results are
only replaced with ``overwrite=True``.

Modules: :mod:`~wsikit.sinks.jobs` (options, jobs, results), :mod:`~wsikit.sinks.layout`
(file names, folder names, the state of a folder), :mod:`~wsikit.sinks.resume` (what a
folder needs before a run), :mod:`~wsikit.sinks.manifest` (``tiles.csv``),
:mod:`~wsikit.sinks.atomic` (write-then-rename), :mod:`~wsikit.sinks.channels` (stored
channels), :mod:`~wsikit.sinks.writers` (one writer per format), :mod:`~wsikit.sinks.run`
(tiling one slide).
"""
from __future__ import annotations

from .atomic import TMP_PREFIX, write_atomic
from .jobs import FORMATS, SlideJob, SlidePart, SlideResult, SlideStatus, TileOptions
from .layout import (
    IMAGE_FOLDER,
    JOB_FILE,
    MANIFEST,
    ZARR_STORE,
    assign_folders,
    check_inside,
    image_name,
    is_complete,
    path_hash,
    read_job,
    slide_stem,
)
from .manifest import COLUMNS, manifest_bytes, plan_digest
from .resume import prepare, prepare_jobs
from .run import (
    WRITE_RUN_BYTES,
    WRITE_RUN_TILES,
    PartStart,
    finish_part,
    plan_part,
    split_ranges,
    start_part,
    tile_slide,
    write_part,
    write_range,
)
from .writers import ImageTileWriter, PendingTile, TileWriter, ZarrTileWriter

__all__ = [
    "COLUMNS", "FORMATS", "IMAGE_FOLDER", "JOB_FILE", "MANIFEST", "TMP_PREFIX", "WRITE_RUN_BYTES", "WRITE_RUN_TILES",
    "ZARR_STORE", "ImageTileWriter", "PartStart", "PendingTile", "SlideJob", "SlidePart", "SlideResult", "SlideStatus",
    "TileOptions", "TileWriter", "ZarrTileWriter", "assign_folders", "check_inside", "finish_part", "image_name",
    "is_complete", "manifest_bytes", "path_hash", "plan_digest", "plan_part", "prepare", "prepare_jobs", "read_job",
    "slide_stem", "split_ranges", "start_part", "tile_slide", "write_atomic", "write_part", "write_range",
]
