"""How many regions of a stream need each native tile, so that the cache keeps a tile
until its last use and never keeps a tile used once."""
from __future__ import annotations

from typing import TYPE_CHECKING, Hashable, Iterable

import numpy as np

from .tile_grid import TileGrid

if TYPE_CHECKING:
    from numpy.typing import ArrayLike


class UseCounter:
    """Counts how many boxes need each native tile of each grid (see :meth:`TiledReader.stream`).

    Each box adds 1 over its rectangle of tiles: a 2-D difference array per grid, summed
    once at the end, so boxes can be added in blocks of any size.
    """

    def __init__(self) -> None:
        self._diffs: dict[Hashable, np.ndarray] = {}
        self._grids: dict[Hashable, TileGrid] = {}

    def add(self, grid: TileGrid, boxes: ArrayLike) -> None:
        """Count boxes ``(i0, j0, i1, j1)`` (an (n, 4) array), each non-empty and inside the level."""
        boxes = np.asarray(boxes, dtype=np.int64).reshape(-1, 4)
        diff = self._diffs.get(grid.key)
        if diff is None:
            rows, cols = grid.tile_counts
            diff = self._diffs[grid.key] = np.zeros((rows + 1, cols + 1), dtype=np.int64)
            self._grids[grid.key] = grid
        th, tw = grid.tile_shape
        ti0, tj0 = boxes[:, 0] // th, boxes[:, 1] // tw
        ti1, tj1 = (boxes[:, 2] - 1) // th + 1, (boxes[:, 3] - 1) // tw + 1
        np.add.at(diff, (ti0, tj0), 1)
        np.add.at(diff, (ti0, tj1), -1)
        np.add.at(diff, (ti1, tj0), -1)
        np.add.at(diff, (ti1, tj1), 1)

    def counts(self) -> dict[Hashable, np.ndarray]:
        """grid key -> int32 array of the tile grid: how many boxes need each native tile."""
        uses: dict[Hashable, np.ndarray] = {}
        for key, diff in self._diffs.items():
            rows, cols = self._grids[key].tile_counts
            uses[key] = diff.cumsum(axis=0).cumsum(axis=1)[:rows, :cols].astype(np.int32)
        return uses


def count_uses(boxes: Iterable[tuple[TileGrid, int, int, int, int] | None]) -> dict[Hashable, np.ndarray]:
    """How many of ``boxes`` need each native tile: grid key -> int32 array of the tile grid.

    ``boxes`` are what a stream's ``box_of`` gives: ``(grid, i0, j0, i1, j1)`` or None.
    """
    counter = UseCounter()
    grids: dict[Hashable, TileGrid] = {}
    # Boxes are taken in chunks, so that memory does not grow with their number.
    chunks: dict[Hashable, list[tuple[int, int, int, int]]] = {}
    for box in boxes:
        if box is None:
            continue
        key = box[0].key
        chunk = chunks.get(key)
        if chunk is None:
            grids[key] = box[0]
            chunk = chunks[key] = []
        chunk.append(box[1:])
        if len(chunk) >= 8192:
            counter.add(grids[key], chunks.pop(key))
    for key, chunk in chunks.items():
        counter.add(grids[key], chunk)
    return counter.counts()
