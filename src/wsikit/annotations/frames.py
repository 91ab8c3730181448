"""Where each pixel of a tile lies in level-0 coordinates: the one mapping masks use.

A tile is read from the box ``read_location`` + ``read_size`` of its level (pixels of that
level) and resampled to ``shape``; level ``L`` pixel (i, j) covers level-0
[i * s_i, (i + 1) * s_i) x [j * s_j, (j + 1) * s_j), s = ``slide.level_scale(L)``. So the
centre of tile pixel (r, c) is, in level-0 pixels (y = row, x = column)::

    y = (read_i + (r + 0.5) * read_h / h) * s_i
    x = (read_j + (c + 0.5) * read_w / w) * s_j

and the tile covers the level-0 box [read_i * s_i, (read_i + read_h) * s_i) x
[read_j * s_j, (read_j + read_w) * s_j), whose area is the denominator of the label
fractions. At level tiling read_size == shape and the centres are (read_i + r + 0.5) * s_i.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np


class TileFrames(NamedTuple):
    """A block of tiles of one shape read from one level: ``read`` is (n, 4) float64
    read_i, read_j, read_h, read_w; ``shape`` (h, w); ``scale`` the level's (s_i, s_j)."""

    read: np.ndarray
    shape: tuple[int, int]
    scale: tuple[float, float]

    @classmethod
    def of_specs(cls, specs: Sequence[object], scale: tuple[float, float]) -> TileFrames:
        """Frames of TileSpecs (all of one shape and level)."""
        read = np.array([(*s.read_location, *s.read_size) for s in specs],  # type: ignore[attr-defined]
                        dtype=np.float64).reshape(-1, 4)
        shape = tuple(specs[0].shape) if specs else (1, 1)  # type: ignore[attr-defined]
        return cls(read, (int(shape[0]), int(shape[1])), (float(scale[0]), float(scale[1])))

    def __len__(self) -> int:  # the number of tiles, not of fields
        return len(self.read)

    def boxes(self) -> np.ndarray:
        """(n, 4) level-0 boxes x0, y0, x1, y1 (shapely's order: x = column)."""
        si, sj = self.scale
        ri, rj, rh, rw = self.read.T
        return np.stack([rj * sj, ri * si, (rj + rw) * sj, (ri + rh) * si], axis=1)

    def row_centres(self, tiles: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Level-0 y of the centres of pixel rows ``rows`` of tiles ``tiles`` (arrays that broadcast)."""
        return centre(self.read[tiles, 0], self.read[tiles, 2], self.shape[0], self.scale[0], rows)

    def column_centres(self, tiles: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Level-0 x of the centres of pixel columns ``cols`` of tiles ``tiles``."""
        return centre(self.read[tiles, 1], self.read[tiles, 3], self.shape[1], self.scale[1], cols)

    def first_row_at_least(self, tiles: np.ndarray, y: np.ndarray) -> np.ndarray:
        """The first pixel row of each tile whose centre's y is >= ``y`` (h when none)."""
        return first_at_least(self.read[tiles, 0], self.read[tiles, 2], self.shape[0], self.scale[0], y)

    def first_column_at_least(self, tiles: np.ndarray, x: np.ndarray) -> np.ndarray:
        """The first pixel column of each tile whose centre's x is >= ``x`` (w when none)."""
        return first_at_least(self.read[tiles, 1], self.read[tiles, 3], self.shape[1], self.scale[1], x)


def centre(start: np.ndarray | float, size: np.ndarray | float | None, n: int, scale: float,
           k: np.ndarray) -> np.ndarray:
    """Level-0 coordinate of the centre of pixel ``k`` along one axis (see the module notes);
    ``size`` None means the read size is ``n`` (no resampling), the same value more cheaply."""
    if size is None:
        return (start + k + 0.5) * scale
    return (start + (k + 0.5) * size / n) * scale


def first_at_least(start: np.ndarray | float, size: np.ndarray | float | None, n: int, scale: float,
                   v: np.ndarray) -> np.ndarray:
    """The first pixel k in [0, n] whose centre (see :func:`centre`) is >= ``v`` (n when none)."""
    return first_at_least_and_ties(start, size, n, scale, v)[0]


def first_at_least_and_ties(start: np.ndarray | float, size: np.ndarray | float | None, n: int, scale: float,
                            v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(k, tie): :func:`first_at_least`, and where the centre of k is exactly ``v``.

    The centre formula solved for k is right except within rounding of a centre; only
    values that close are checked against :func:`centre` itself (computed the same way
    as everywhere), and stepped by one where rounding left them off."""
    e = v / scale - start - 0.5 if size is None else (v / scale - start) * n / size - 0.5
    k = np.ceil(e)
    d = k - e  # in [0, 1): near 0 or 1 when e is within rounding of an integer
    near = np.flatnonzero((d < 1e-6) | (d > 1 - 1e-6))
    k = np.clip(k, 0, n).astype(np.int64)
    tie = np.zeros(k.shape, dtype=bool)
    if len(near):
        s = start[near] if isinstance(start, np.ndarray) else start
        z = size[near] if isinstance(size, np.ndarray) else size
        kk, vv = k[near], v[near]
        kk -= (kk > 0) & (centre(s, z, n, scale, kk - 1) >= vv)
        kk += (kk < n) & (centre(s, z, n, scale, kk) < vv)
        k[near] = kk
        tie[near] = (kk < n) & (centre(s, z, n, scale, np.minimum(kk, n - 1)) == vv)
    return k, tie
