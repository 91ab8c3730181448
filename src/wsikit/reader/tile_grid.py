"""TileGrid: one level described as a grid of native tiles, and stitching boxes from them."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Hashable, Sequence

import numpy as np


@dataclass(frozen=True)
class TileGrid:
    """One level stored as a grid of native tiles.

    ``decode(ti, tj)`` returns the tile at grid row ``ti``, column ``tj`` as an array whose
    first two axes are (i, j) and whose trailing axes equal ``pixel_shape``; edge tiles may
    be the full native size (padded) or cut to the image, both are handled.
    """

    key: Hashable
    shape: tuple[int, int]
    tile_shape: tuple[int, int]
    pixel_shape: tuple[int, ...]
    dtype: np.dtype
    decode: Callable[[int, int], np.ndarray]

    @property
    def tile_counts(self) -> tuple[int, int]:
        return (-(-self.shape[0] // self.tile_shape[0]), -(-self.shape[1] // self.tile_shape[1]))


def decoded_tile(grid: TileGrid, ti: int, tj: int) -> np.ndarray:
    """``grid.decode(ti, tj)``, refused when its trailing axes are not the grid's (a broken
    file can decode to one channel where three were declared; numpy would broadcast it)."""
    tile = grid.decode(ti, tj)
    if tile.ndim != 2 + len(grid.pixel_shape) or tile.shape[2:] != tuple(grid.pixel_shape):
        raise ValueError(f"native tile ({ti}, {tj}) decoded to shape {tile.shape}, "
                         f"the grid says {grid.tile_shape + tuple(grid.pixel_shape)}")
    if tile.dtype != grid.dtype:  # stitching would cast it silently
        raise ValueError(f"native tile ({ti}, {tj}) decoded to {tile.dtype} pixels, the grid holds {grid.dtype}")
    return tile


def _short_tile(grid: TileGrid, ti: int, tj: int, tile: np.ndarray) -> Exception:
    # The reason is wrapped into a CorruptSlideError with the path by the backend.
    return ValueError(f"native tile ({ti}, {tj}) decoded to shape {tile.shape[:2]}, "
                      f"smaller than the grid says {grid.tile_shape}")


def stitch(grid: TileGrid, box: tuple[int, int, int, int], origin: tuple[int, int], cols: int,
           tiles: Sequence[np.ndarray]) -> np.ndarray:
    """Pixels of ``box`` from the native tiles it touches (row-major from ``origin``)."""
    i0, j0, i1, j1 = box
    th, tw = grid.tile_shape
    ti0, tj0 = origin
    if len(tiles) == 1:
        tile = tiles[0]
        oi, oj = ti0 * th, tj0 * tw
        if i0 == oi and j0 == oj and tile.shape[0] == i1 - i0 and tile.shape[1] == j1 - j0:
            return tile  # the native tile itself, read-only
        view = tile[i0 - oi : i1 - oi, j0 - oj : j1 - oj]
        if view.shape[:2] != (i1 - i0, j1 - j0):
            raise _short_tile(grid, ti0, tj0, tile)
        return view
    out = np.empty((i1 - i0, j1 - j0) + grid.pixel_shape, dtype=grid.dtype)
    for k, tile in enumerate(tiles):
        ti, tj = ti0 + k // cols, tj0 + k % cols
        oi, oj = ti * th, tj * tw
        a0, a1 = max(i0, oi), min(i1, oi + th)
        b0, b1 = max(j0, oj), min(j1, oj + tw)
        part = tile[a0 - oi : a1 - oi, b0 - oj : b1 - oj]
        if part.shape[:2] != (a1 - a0, b1 - b0):
            raise _short_tile(grid, ti, tj, tile)
        out[a0 - i0 : a1 - i0, b0 - j0 : b1 - j0] = part
    return out
