"""``tiles.csv``: one row per tile of a slide's plan, written last to mark the slide complete.

Columns (:data:`COLUMNS`): ``i, j`` the tile's top-left corner in the frame the tiles were
asked for; ``level`` the level read; ``i0, j0`` the corner in level-0 pixels; ``height,
width`` the tile's shape; ``mpp`` its microns per pixel (the mean of the two axes, empty
when the slide does not say); ``tissue`` its tissue fraction (empty without a tissue mask);
and, for PNG / JPEG results, ``file``: the tile's image relative to the slide's folder.
A plan with labels adds ``label:<class>`` columns (and ``mask_file``; see
:mod:`wsikit.annotations.outputs`). Row k describes tile k. Floats are written with 6 significant digits.

The same rows, hashed, identify a plan (:func:`plan_digest`): a rerun that plans other
tiles than the unfinished run it finds starts afresh instead of mixing the two.
"""
from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterable

from ..plan import Plan, TileSpec
from .layout import IMAGE_FOLDER, IMAGE_SUFFIXES, image_name

COLUMNS = ("i", "j", "level", "i0", "j0", "height", "width", "mpp", "tissue")


def _cell(value: float | int | None) -> str:
    """A CSV cell: empty for None, 6 significant digits for floats."""
    if value is None:
        return ""
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def manifest_row(spec: TileSpec) -> list[str]:
    """The cells of :data:`COLUMNS` for one tile."""
    mpp = None if spec.mpp is None else (spec.mpp[0] + spec.mpp[1]) / 2
    # Plans always know the level-0 corner; a hand-made TileSpec may not (empty cells).
    i0, j0 = (None, None) if spec.coords0 is None else spec.coords0
    return [str(spec.coords[0]), str(spec.coords[1]), str(spec.level), _cell(i0), _cell(j0),
            str(spec.shape[0]), str(spec.shape[1]), _cell(mpp), _cell(spec.tissue)]


def manifest_bytes(plan: Iterable[TileSpec], fmt: str = "zarr") -> bytes:
    """The text of ``tiles.csv`` for ``plan`` stored as ``fmt`` (UTF-8, ``\\n`` line ends)."""
    from ..annotations.outputs import label_cells, label_header

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    images = fmt in IMAGE_SUFFIXES
    labelled = plan if isinstance(plan, Plan) and plan.labels is not None else None  # (wsikit.annotations.outputs)
    writer.writerow(COLUMNS + (("file",) if images else ()) + tuple(label_header(labelled, fmt) if labelled else ()))
    for k, spec in enumerate(plan):
        row = manifest_row(spec)
        if images:
            row.append(f"{IMAGE_FOLDER}/{image_name(spec, fmt)}")
        if labelled is not None:
            row += label_cells(labelled, fmt, k, spec)
        writer.writerow(row)
    return buffer.getvalue().encode("utf-8")


def plan_digest(plan: Iterable[TileSpec]) -> str:
    """The SHA-256 (hex) of the plan's manifest rows: equal for plans of the same tiles."""
    text = "\n".join(",".join(manifest_row(spec)) for spec in plan)
    return hashlib.sha256(text.encode()).hexdigest()
