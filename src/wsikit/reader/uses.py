"""How many regions of a stream need each native tile, so that the cache keeps a tile
until its last use and never keeps a tile used once: counted for a whole list of boxes
(:func:`count_uses`), or over a horizon of requests ahead of a stream (:class:`UseWindow`,
:func:`counted_ahead`), which is what streams of plans use."""
from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Callable, Hashable, Iterable, Iterator, TypeVar

import numpy as np

from .tile_grid import TileGrid

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

_Item = TypeVar("_Item")


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


#: requests a stream's use counts look ahead: tiles used again further ahead are decoded again
USE_HORIZON = 2048


class UseWindow:
    """How many of the requests pulled ahead of a stream need each native tile.

    Counting a whole plan up front holds an array per level, and its bookkeeping grows with
    the slide; here only the requests of a horizon ahead of the reader are counted
    (:func:`counted_ahead`), so memory stays flat however large the slide. A tile whose last
    use in the horizon has been read is dropped from the cache; one used again beyond the
    horizon (rare in row-major tilings, whose reuse is at most a row of tiles away) is
    decoded again. ``window.get(grid_key)`` gives the counts of one grid, indexed by
    ``[ti, tj]``, as :meth:`TiledReader.stream` reads and decrements them.
    """

    __slots__ = ("counts",)

    def __init__(self) -> None:
        self.counts: dict[tuple[Hashable, int, int], int] = {}

    def add(self, box: tuple[TileGrid, int, int, int, int] | None) -> None:
        """Count one request's box (None: nothing to read)."""
        if box is None:
            return
        grid, i0, j0, i1, j1 = box
        th, tw = grid.tile_shape
        key, counts = grid.key, self.counts
        for ti in range(i0 // th, (i1 - 1) // th + 1):
            for tj in range(j0 // tw, (j1 - 1) // tw + 1):
                cell = (key, ti, tj)
                counts[cell] = counts.get(cell, 0) + 1

    def get(self, grid_key: Hashable) -> _GridUses:
        return _GridUses(self.counts, grid_key)


class _GridUses:
    """One grid's view of a :class:`UseWindow`: ``[ti, tj]`` reads and sets a tile's count
    (a count set to 0 or less is forgotten)."""

    __slots__ = ("counts", "key")

    def __init__(self, counts: dict[tuple[Hashable, int, int], int], key: Hashable) -> None:
        self.counts, self.key = counts, key

    def __getitem__(self, index: tuple[int, int]) -> int:
        return self.counts.get((self.key, index[0], index[1]), 0)

    def __setitem__(self, index: tuple[int, int], value: int) -> None:
        cell = (self.key, index[0], index[1])
        if value > 0:
            self.counts[cell] = value
        else:
            self.counts.pop(cell, None)


def counted_ahead(requests: Iterable[_Item], box_of: Callable[[_Item], tuple[TileGrid, int, int, int, int] | None],
                  window: UseWindow, horizon: int = USE_HORIZON) -> Iterator[_Item]:
    """The requests, in order, each counted into ``window`` ``horizon`` requests before the
    stream reads it. A request whose box cannot be had is passed on uncounted (the stream
    reports it at its turn)."""
    ahead: deque[_Item] = deque()
    iterator = iter(requests)
    while True:
        try:
            request = next(iterator)
        except StopIteration:
            break
        except Exception:
            # The caller's iterable failed: the requests before it are read first, as
            # without counting ahead, then its error is raised.
            while ahead:
                yield ahead.popleft()
            raise
        try:
            window.add(box_of(request))
        except Exception:
            pass
        ahead.append(request)
        if len(ahead) > horizon:
            yield ahead.popleft()
    while ahead:
        yield ahead.popleft()
