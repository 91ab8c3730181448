"""The results of a finished ``wsikit tile`` run (``wsikit view --results OUT``), per slide.

``OUT`` holds one folder per slide (see :mod:`wsikit.sinks`): its ``job.json`` names the
slide (absolute path) and the options, its ``tiles.csv`` (written last) has one row per
written tile with the tile's level-0 corner ``i0, j0`` and its ``height, width`` in the
frame the tiles were asked for. A tile's level-0 size is that shape times the frame's
scale, which the options give: a level's downsample, or the target scale of ``mpp`` /
``magnification`` (:func:`wsikit.plan.target_scale`). ``OUT`` may also be one slide's
folder itself. Folders that resolve outside ``OUT`` (symbolic links) are ignored.
"""
from __future__ import annotations

import csv
import os
from typing import TYPE_CHECKING, Any

from ..plan import target_scale
from ..remote.urls import is_url
from ..sinks import MANIFEST, check_inside, read_job

if TYPE_CHECKING:
    from ..backends.base import SlideBackend

#: the most rows of a manifest the viewer sends
MAX_RESULT_TILES = 250_000


class ResultsError(ValueError):
    """A result folder the viewer cannot show (unfinished, unreadable, too large)."""


def result_folders(out: str | os.PathLike[str]) -> dict[str, str]:
    """:func:`slide_key` of each slide -> its result folder, for the wsikit result folders in ``out``."""
    out = os.path.abspath(os.fspath(out))
    candidates = [out]
    try:
        candidates += [entry.path for entry in os.scandir(out) if entry.is_dir() and not entry.name.startswith(".")]
    except OSError:
        return {}
    found: dict[str, str] = {}
    for folder in sorted(candidates):
        if folder != out:
            try:
                check_inside(folder, out)
            except ValueError:
                continue
        job = read_job(folder)
        if job is not None and isinstance(job.get("slide"), str):
            found.setdefault(slide_key(job["slide"]), folder)
    return found


def slide_key(path: str) -> str:
    """How a slide is matched with the slide a job record names: its real path (a URL as is)."""
    return path if is_url(path) else os.path.realpath(path)


def read_results(slide: SlideBackend, folder: str) -> dict[str, Any]:
    """The written tiles of ``folder`` as JSON data: ``folder``, ``options``, ``columns``
    (of tiles.csv), ``rows`` (its rows, as strings), ``boxes`` ([i0, j0, h0, w0, ...] in
    level-0 pixels, one per row). ResultsError when the run is unfinished or the manifest
    cannot be read."""
    job = read_job(folder)
    if job is None:
        raise ResultsError(f"{folder} holds no wsikit job record")
    manifest = os.path.join(folder, MANIFEST)
    if not os.path.isfile(manifest):
        raise ResultsError(f"{folder}: the tiling is unfinished (no {MANIFEST} yet)")
    recorded = job.get("options")
    options: dict[str, Any] = recorded if isinstance(recorded, dict) else {}
    scale = _frame_scale(slide, options)
    try:
        with open(manifest, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            columns = next(reader)
            rows = []
            for row in reader:
                rows.append(row)
                if len(rows) > MAX_RESULT_TILES:
                    raise ResultsError(f"{manifest} has more than {MAX_RESULT_TILES} tiles; too many to draw")
    except (OSError, UnicodeDecodeError, csv.Error, StopIteration) as exc:
        raise ResultsError(f"cannot read {manifest}: {exc}") from None
    try:
        where = [columns.index(name) for name in ("i0", "j0", "height", "width")]
    except ValueError:
        raise ResultsError(f"{manifest} lacks the columns i0, j0, height, width") from None
    boxes: list[float] = []
    for number, row in enumerate(rows, start=2):
        try:
            i0, j0, h, w = (float(row[k]) for k in where)
        except (IndexError, ValueError):
            raise ResultsError(f"{manifest}, line {number}: not a tile row") from None
        boxes.extend((i0, j0, h * scale[0], w * scale[1]))
    return {"folder": folder, "options": options, "columns": columns, "rows": rows, "boxes": boxes}


def _frame_scale(slide: SlideBackend, options: dict[str, Any]) -> tuple[float, float]:
    """Level-0 pixels per pixel of the frame the options tiled in."""
    try:
        if options.get("mpp") is not None or options.get("magnification") is not None:
            return target_scale(slide, mpp=options.get("mpp"), magnification=options.get("magnification"))
        level = int(options.get("level") or 0)
        if not 0 <= level < slide.level_count:
            raise ValueError(f"level {level} is not a level of the slide")
        return slide.level_scale(level)
    except (TypeError, ValueError) as exc:
        raise ResultsError(f"the job's options do not fit the slide: {exc}") from None


#: the media type of each tile image a result folder may hold
TILE_IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}


def written_tile(folder: str, index: int) -> tuple[bytes, str]:
    """The image file (bytes, media type) of row ``index`` of the folder's ``tiles.csv``
    (PNG / JPEG results). ResultsError when the row or its file does not exist, or names a
    file outside the folder (the manifest is data: it is checked, not trusted)."""
    manifest = os.path.join(folder, MANIFEST)
    try:
        with open(manifest, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            columns = next(reader)
            if "file" not in columns:
                raise ResultsError(f"{manifest}: the tiles are not stored as image files")
            column = columns.index("file")
            for k, row in enumerate(reader):
                if k == index:
                    name = row[column] if column < len(row) else ""
                    break
            else:
                raise ResultsError(f"{manifest} has no tile {index}")
    except (OSError, UnicodeDecodeError, csv.Error, StopIteration) as exc:
        raise ResultsError(f"cannot read {manifest}: {exc}") from None
    suffix = os.path.splitext(name)[1].lower()
    path = os.path.realpath(os.path.join(folder, name))
    real_folder = os.path.realpath(folder)
    if (not name or os.path.isabs(name) or suffix not in TILE_IMAGE_TYPES
            or os.path.commonpath([real_folder, path]) != real_folder or not os.path.isfile(path)):
        raise ResultsError(f"tile {index} of {manifest} names no image file of the folder")
    with open(path, "rb") as f:
        return f.read(), TILE_IMAGE_TYPES[suffix]

