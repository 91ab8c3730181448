"""Tile plans: which boxes of which level a tiling reads, as plain data.

A plan is computed from shapes alone, before any pixel is read; it can be printed,
filtered, saved and sent to other processes.
"""
from __future__ import annotations

from dataclasses import dataclass

from .grid import as_pair, tile_locations


@dataclass(frozen=True)
class TileSpec:
    """One tile of a plan.

    ``coords`` is in the frame the tiles were asked for; the pixels come from the box
    ``read_location`` + ``read_size`` (pixels of ``level``), resized to ``shape`` when the
    two differ.
    """

    coords: tuple[int, int]
    level: int
    read_location: tuple[int, int]
    read_size: tuple[int, int]
    shape: tuple[int, int]
    coords0: tuple[int, int]
    mpp: tuple[float, float] | None = None
    tissue: float | None = None


def level_plan(slide, shape, stride=None, pad=False, level=0) -> list[TileSpec]:
    """The seed's grid on one level: tiles of ``shape`` every ``stride`` pixels of ``level``."""
    level = slide._check_level(level)
    shape = as_pair(shape, "shape", minimum=1)
    stride = shape if stride is None else as_pair(stride, "stride", minimum=1)
    if not isinstance(pad, bool):
        raise TypeError(f"pad must be True or False, got {pad!r}")
    ds_i, ds_j = slide.level_scale(level)
    mpp0 = slide.mpp
    mpp = None if mpp0 is None else (mpp0[0] * ds_i, mpp0[1] * ds_j)
    return [
        TileSpec(
            coords=(i, j),
            level=level,
            read_location=(i, j),
            read_size=shape,
            shape=shape,
            coords0=(int(round(i * ds_i)), int(round(j * ds_j))),
            mpp=mpp,
        )
        for i, j in tile_locations(slide.get_image_shape(level), shape, stride, pad)
    ]


def make_plan(slide, shape=3000, stride=None, pad=False, level=0) -> list[TileSpec]:
    """The tiles ``slide.generate_tiles`` reads for these arguments."""
    return level_plan(slide, shape, stride, pad, level)
