"""Reading regions out of a grid of native tiles (TIFF tiles or strips, DICOM frames).

A backend describes each level as a :class:`TileGrid` (its shape, the native tile shape
and a function that decodes one native tile). :class:`TiledReader` then answers region
requests: it finds the native tiles a region touches, decodes the missing ones (in
parallel threads: the codecs release the GIL), keeps decoded tiles in a byte-bounded
LRU cache so overlapping requests decode each tile once, and stitches with numpy slices.

:func:`ordered_map` runs a function over many requests on a thread pool with a bounded
look-ahead and yields results in request order, so memory stays flat for any slide.
"""
from __future__ import annotations

import os
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Hashable, Iterable, Iterator

import numpy as np

DEFAULT_CACHE_BYTES = 256 * 1024**2


def default_workers() -> int:
    """Threads to use when the caller does not say: every core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


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
    def grid(self) -> tuple[int, int]:
        return (-(-self.shape[0] // self.tile_shape[0]), -(-self.shape[1] // self.tile_shape[1]))


class TileCache:
    """A thread-safe LRU cache of decoded tiles, bounded in bytes.

    Concurrent requests for the same tile wait for one decode instead of repeating it.
    """

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES):
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0:
            raise ValueError(f"cache_bytes must be a non-negative int, got {max_bytes!r}")
        self.max_bytes = max_bytes
        self._items: OrderedDict[Hashable, np.ndarray] = OrderedDict()
        self._pending: dict[Hashable, Future] = {}
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def nbytes(self) -> int:
        return self._bytes

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0

    def get(self, key: Hashable, make: Callable[[], np.ndarray]) -> np.ndarray:
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
                return hit
            pending = self._pending.get(key)
            if pending is None:
                pending = self._pending[key] = Future()
                owner = True
            else:
                owner = False
        if not owner:
            return pending.result()
        try:
            value = make()
        except BaseException as exc:
            with self._lock:
                del self._pending[key]
            pending.set_exception(exc)
            raise
        value.setflags(write=False)  # shared between callers: nobody may modify it
        with self._lock:
            del self._pending[key]
            if value.nbytes <= self.max_bytes:
                self._items[key] = value
                self._bytes += value.nbytes
                while self._bytes > self.max_bytes:
                    _, old = self._items.popitem(last=False)
                    self._bytes -= old.nbytes
        pending.set_result(value)
        return value


class TiledReader:
    """Regions of :class:`TileGrid` levels, stitched from cached native tiles."""

    def __init__(self, cache_bytes: int = DEFAULT_CACHE_BYTES):
        self.cache = TileCache(cache_bytes)

    def tile(self, grid: TileGrid, ti: int, tj: int) -> np.ndarray:
        return self.cache.get((grid.key, ti, tj), lambda: grid.decode(ti, tj))

    def read(self, grid: TileGrid, i0: int, j0: int, i1: int, j1: int) -> np.ndarray:
        """Pixels [i0:i1, j0:j1] of the level; the box must lie inside the level.

        A box equal to one whole native tile returns the cached tile itself (read-only,
        no copy); anything else is a new array.
        """
        th, tw = grid.tile_shape
        ti0, ti1 = i0 // th, (i1 - 1) // th
        tj0, tj1 = j0 // tw, (j1 - 1) // tw
        if ti0 == ti1 and tj0 == tj1:
            tile = self.tile(grid, ti0, tj0)
            oi, oj = ti0 * th, tj0 * tw
            view = tile[i0 - oi : i1 - oi, j0 - oj : j1 - oj]
            if view.shape[:2] != (i1 - i0, j1 - j0):
                raise _short_tile(grid, ti0, tj0, tile)
            return view
        out = np.empty((i1 - i0, j1 - j0) + grid.pixel_shape, dtype=grid.dtype)
        for ti in range(ti0, ti1 + 1):
            for tj in range(tj0, tj1 + 1):
                tile = self.tile(grid, ti, tj)
                oi, oj = ti * th, tj * tw
                a0, a1 = max(i0, oi), min(i1, oi + th)
                b0, b1 = max(j0, oj), min(j1, oj + tw)
                part = tile[a0 - oi : a1 - oi, b0 - oj : b1 - oj]
                if part.shape[:2] != (a1 - a0, b1 - b0):
                    raise _short_tile(grid, ti, tj, tile)
                out[a0 - i0 : a1 - i0, b0 - j0 : b1 - j0] = part
        return out


def _short_tile(grid: TileGrid, ti: int, tj: int, tile: np.ndarray) -> Exception:
    # The reason is wrapped into a CorruptSlideError with the path by the backend.
    return ValueError(f"native tile ({ti}, {tj}) decoded to shape {tile.shape[:2]}, smaller than the grid says {grid.tile_shape}")


def ordered_map(fn: Callable, items: Iterable, workers: int | None = None, lookahead: int | None = None) -> Iterator:
    """``map(fn, items)`` on a thread pool, in order, holding at most ``lookahead`` results.

    ``workers=1`` runs in the calling thread (plain sequential reading).
    """
    workers = default_workers() if workers is None else workers
    if workers <= 1:
        for item in items:
            yield fn(item)
        return
    lookahead = lookahead or 4 * workers
    from collections import deque

    queue: deque[Future] = deque()
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="wsikit")
    try:
        iterator = iter(items)
        for item in iterator:
            queue.append(pool.submit(fn, item))
            if len(queue) >= lookahead:
                yield queue.popleft().result()
        while queue:
            yield queue.popleft().result()
    finally:
        for future in queue:
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
