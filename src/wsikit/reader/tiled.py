"""Reading regions out of a grid of native tiles (TIFF tiles or strips, DICOM frames).

A backend describes each level as a :class:`TileGrid` (its shape, the native tile shape
and a function that decodes one native tile). :class:`TiledReader` then answers region
requests: it finds the native tiles a region touches, decodes the missing ones, keeps
decoded tiles in a byte-bounded LRU cache so overlapping requests decode each tile once,
and stitches with numpy slices.

:meth:`TiledReader.stream` reads many regions in order (a tiling, a training batch): the
native tiles of the next regions are decoded ahead on worker threads (the codecs release
the GIL) and each region is stitched as soon as its last native tile is ready. When the
caller says how often each native tile will be used (:func:`count_uses`), a tile used once
never enters the cache and a tile is dropped from it after its last use, so that memory
stays flat however large the slide.

"""
from __future__ import annotations

import threading
from collections import deque
from functools import partial
from typing import Any, Callable, Hashable, Iterable, Iterator, Sequence, TypeAlias, cast

import numpy as np

from .cache import DEFAULT_CACHE_BYTES, TileCache, _Pending
from .tile_grid import TileGrid, decoded_tile, stitch
from .uses import UseWindow, _GridUses
from .workers import THREAD_EXIT_HOOKS, LazyPool, WorkerPool, default_workers

# Decoded pixels a stream may hold in regions read ahead of the consumer.
LOOKAHEAD_BYTES = 128 * 1024**2
# A single read touching at least this many native tiles decodes them on every core.
PARALLEL_READ_TILES = 8

#: what a stream's ``box_of`` gives for an item: a box (i0, j0, i1, j1) of a level's grid
_Box: TypeAlias = "tuple[TileGrid, int, int, int, int]"
#: a stream's ``finish(item, pixels_or_None)``: the value yielded for the item
_Finish: TypeAlias = "Callable[[Any, np.ndarray | None], Any]"
#: native tiles claimed by a stream and left for any thread to decode: (cache key, decode)
_Batch: TypeAlias = "list[tuple[Hashable, _Pending]]"
# box and origin of a region with nothing to read (its grid is None): never used
_NO_BOX = (0, 0, 0, 0)
_NO_ORIGIN = (0, 0)


class _Signal:
    """Where a stream's consumer waits for the region at the head of its window."""

    __slots__ = ("lock", "condition", "waiting_for")

    lock: threading.Lock
    condition: threading.Condition
    waiting_for: _Region | None

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.condition = threading.Condition(self.lock)
        self.waiting_for = None

    def wait(self, region: _Region) -> None:
        with self.condition:
            while not region.done:
                self.waiting_for = region
                self.condition.wait()
            self.waiting_for = None

    def completed(self, region: _Region) -> None:
        with self.lock:  # the condition's own lock, without its Python-level wrapper
            region.done = True
            if self.waiting_for is region:
                self.condition.notify()


class _Region:
    """One region of a stream: the native tiles it waits for, then its stitched result."""

    __slots__ = ("item", "grid", "box", "origin", "cols", "parts", "waiting", "lock", "finish", "signal", "done",
                 "value", "error")

    item: Any
    grid: TileGrid | None  # None: nothing to read
    box: tuple[int, int, int, int]
    origin: tuple[int, int]  # grid row and column of the first native tile of the box
    cols: int  # columns of native tiles the box touches
    parts: Sequence[np.ndarray | _Pending]  # its native tiles, row-major; emptied once complete
    waiting: int  # parts not yet done, plus one until every callback is registered; under ``lock``
    lock: threading.Lock | None  # None: one part, whose callback completes the region directly
    finish: _Finish
    signal: _Signal
    done: bool
    value: Any
    error: BaseException | None

    def __init__(self, item: Any, grid: TileGrid | None, box: tuple[int, int, int, int], origin: tuple[int, int],
                 cols: int, parts: Sequence[np.ndarray | _Pending], finish: _Finish, signal: _Signal) -> None:
        self.item = item
        self.grid = grid
        self.box = box
        self.origin = origin
        self.cols = cols
        self.parts = parts
        self.finish = finish
        self.signal = signal
        self.done = False
        self.value = None
        self.error = None

    def part_done(self) -> None:
        if self.lock is not None:
            with self.lock:
                self.waiting -= 1
                if self.waiting:
                    return
        self.complete()

    def complete(self) -> None:
        try:
            tiles = [part if isinstance(part, np.ndarray) else part.result() for part in self.parts]
            array = None if self.grid is None else stitch(self.grid, self.box, self.origin, self.cols, tiles)
            self.value = self.finish(self.item, array)
        except BaseException as exc:  # handed to the consumer, in order
            self.error = exc
        self.parts = ()
        self.signal.completed(self)


class TiledReader:
    """Regions of :class:`TileGrid` levels, stitched from cached native tiles."""

    def __init__(self, cache_bytes: int = DEFAULT_CACHE_BYTES, workers: int | None = None) -> None:
        self.cache = TileCache(cache_bytes)
        #: threads that decode the native tiles of one large ``read`` (None: every core)
        self.workers = workers
        # The helper threads of large reads, kept between them (streams start their own:
        # they run long, and concurrent ones should not share one queue).
        self._read_pool = LazyPool()
        # reads in progress, from any thread: large reads use the helpers only when few run
        self._reads = 0
        self._reads_lock = threading.Lock()

    def close(self) -> None:
        """Drop the cached tiles and end the helper threads of large reads (a later read
        starts them again)."""
        self.cache.clear()
        self._read_pool.close()

    def read(self, grid: TileGrid, i0: int, j0: int, i1: int, j1: int) -> np.ndarray:
        """Pixels [i0:i1, j0:j1] of the level; the box must lie inside the level.

        A box equal to one whole native tile returns the decoded tile itself (read-only,
        no copy; not kept in the cache unless it was there already); anything else is a
        new array.
        """
        th, tw = grid.tile_shape
        ti0, ti1 = i0 // th, (i1 - 1) // th
        tj0, tj1 = j0 // tw, (j1 - 1) // tw
        workers = default_workers() if self.workers is None else self.workers
        if workers > 1 and (ti1 - ti0 + 1) * (tj1 - tj0 + 1) >= PARALLEL_READ_TILES:
            with self._reads_lock:
                self._reads += 1
                # Several callers reading at once keep the cores busy on their own: helpers
                # would only add hand-offs between threads (measured: 4 threads reading
                # 512 x 512 regions on 2 cores, ~20% slower with them).
                parallel = 2 * self._reads <= workers
            try:
                if parallel:
                    return self._read_parallel(grid, i0, j0, i1, j1, workers)
                return self._read_inline(grid, i0, j0, i1, j1)
            finally:
                with self._reads_lock:
                    self._reads -= 1
        return self._read_inline(grid, i0, j0, i1, j1)

    def _read_parallel(self, grid: TileGrid, i0: int, j0: int, i1: int, j1: int, workers: int) -> np.ndarray:
        # The native tiles are decoded on every core (this thread and the kept helpers). Not
        # where reader threads must run exit hooks (a JVM started for Bio-Formats): a thread
        # kept alive stays attached to the JVM, whose shutdown at exit then waits for it
        # forever; those reads end their own threads, as streams do.
        pool = None if THREAD_EXIT_HOOKS else self._read_pool.get(workers - 1)
        [(_, value, error)] = self.stream([None], lambda _: (grid, i0, j0, i1, j1), _as_is, workers=workers,
                                          pool=pool)
        if error is not None:
            raise error
        return cast(np.ndarray, value)

    def _read_inline(self, grid: TileGrid, i0: int, j0: int, i1: int, j1: int) -> np.ndarray:
        th, tw = grid.tile_shape
        ti0, ti1 = i0 // th, (i1 - 1) // th
        tj0, tj1 = j0 // tw, (j1 - 1) // tw
        cache = self.cache
        tiles: list[np.ndarray] = []
        for ti in range(ti0, ti1 + 1):
            for tj in range(tj0, tj1 + 1):
                # As in a stream whose future is unknown: keep the tiles this box uses in
                # part, which the next boxes are likely to need; a tile used whole is
                # likely read once, and keeping it would only push out the useful ones.
                _, keep = self._uses(None, grid, ti, tj, i0, j0, i1, j1)
                tiles.append(cache.get((grid.key, ti, tj), partial(decoded_tile, grid, ti, tj), keep))
        return stitch(grid, (i0, j0, i1, j1), (ti0, tj0), tj1 - tj0 + 1, tiles)

    def stream(self, items: Iterable[Any], box_of: Callable[[Any], _Box | None], finish: _Finish, *,
               workers: int | None = None, lookahead: int | None = None,
               uses: dict[Hashable, np.ndarray] | UseWindow | None = None, pool: WorkerPool | None = None
               ) -> Iterator[tuple[Any, Any, BaseException | None]]:
        """Read a region for every item, in order: yields ``(item, value, error)``.

        ``box_of(item)`` gives ``(grid, i0, j0, i1, j1)``, a box inside the grid's level, or
        None when nothing is to be read; ``finish(item, pixels_or_None)`` turns the pixels
        into the value (padding, normalising; it runs on the thread that completed the
        region). ``error`` is the exception raised while reading or finishing that item, and
        reading goes on. ``workers=1`` reads in the calling thread; otherwise native tiles
        of up to ``lookahead`` regions ahead are decoded on ``workers`` threads: the calling
        thread (whenever it would otherwise wait) and ``workers - 1`` started here. ``uses``
        (from :func:`count_uses`, or a :class:`UseWindow` filled ahead of the items) says how
        many regions need each native tile: a tile needed once is not cached, a tile is
        dropped from the cache after its last use. ``pool``: the ``workers - 1`` helper
        threads to use, left running after the stream (default: started and ended here).
        """
        workers = default_workers() if workers is None else workers
        own_pool = pool is None
        window: deque[_Region] = deque()
        signal = _Signal()
        batch: _Batch = []  # decodes not yet handed to the workers
        try:
            iterator = iter(items)
            inline = workers <= 1
            # The calling thread decodes too, whenever it would otherwise wait.
            if inline:
                pool = None
            elif own_pool:
                pool = WorkerPool(workers - 1)
            limit = 1 if inline else lookahead
            size = 1
            failure: Exception | None = None  # raised by the items' own iterator
            while True:
                try:
                    item = next(iterator)
                except StopIteration:
                    break
                except Exception as exc:  # the regions before it are read first, then it is raised
                    failure = exc
                    break
                try:
                    region = self._start(item, box_of(item), finish, uses, signal, batch)
                except Exception as exc:  # handed back in order, like a failed read
                    region = _Region(item, None, _NO_BOX, _NO_ORIGIN, 0, (), finish, signal)
                    region.error = exc
                    region.done = True
                window.append(region)
                if limit is None:
                    limit = lookahead or _default_lookahead(region, workers)
                    size = max(1, limit // (2 * workers))
                if batch and (inline or len(batch) >= size):
                    # Decodes go to the workers in small batches: fewer hand-offs between threads.
                    _submit(pool, self.cache, batch, size)
                    batch = []
                while len(window) >= limit:
                    if not window[0].done:
                        if batch:
                            _submit(pool, self.cache, batch, size)
                            batch = []
                        self._wait(window, signal, limit // 2)
                    region = window.popleft()
                    yield region.item, region.value, region.error
            if batch:
                _submit(pool, self.cache, batch, size)
                batch = []
            while window:
                if not window[0].done:  # the window holds regions: limit was set
                    self._wait(window, signal, cast(int, limit) // 2)
                region = window.popleft()
                yield region.item, region.value, region.error
            if failure is not None:
                raise failure
        finally:
            window.clear()
            if batch and pool is not None:
                _submit(pool, self.cache, batch, size)  # other streams may wait on these decodes
            if pool is not None and own_pool:
                pool.shutdown()

    def _wait(self, window: deque[_Region], signal: _Signal, ahead: int) -> None:
        """Return once the head of the window is read.

        Until then this thread decodes, in order, what regions of the window need and
        nobody has started: it is one more worker rather than a sleeper, and a decode
        queued by another stream (maybe one whose consumer has paused) cannot hold this one
        up. It sleeps only when every decode left is under way, and then until ``ahead``
        regions are read, to take them in one go rather than wake for each.
        """
        head = window[0]
        run = self.cache._run
        for region in window:
            for part in region.parts or ():
                if type(part) is _Pending and not part.started:
                    grid, ti, tj = cast("tuple[TileGrid, int, int]", part.job)  # a stream's decodes have jobs
                    run((grid.key, ti, tj), part)
                    if head.done:
                        return
        if not head.done:
            signal.wait(window[min(len(window), max(1, ahead)) - 1])
            if not head.done:
                signal.wait(head)

    def _start(self, item: Any, box: _Box | None, finish: _Finish, uses: dict[Hashable, np.ndarray] | UseWindow | None,
               signal: _Signal, batch: _Batch) -> _Region:
        if box is None:
            region = _Region(item, None, _NO_BOX, _NO_ORIGIN, 0, (), finish, signal)
            region.complete()
            return region
        grid, i0, j0, i1, j1 = box
        th, tw = grid.tile_shape
        ti0, ti1 = i0 // th, (i1 - 1) // th
        tj0, tj1 = j0 // tw, (j1 - 1) // tw
        counts = None if uses is None else uses.get(grid.key)
        cache = self.cache
        if ti0 == ti1 and tj0 == tj1:
            # One native tile, the common case: claim it and ask to be called when it is
            # decoded, under one acquisition of the cache's lock.
            region = _Region(item, grid, (i0, j0, i1, j1), (ti0, tj0), 1, (), finish, signal)
            region.lock = None
            key = (grid.key, ti0, tj0)
            left, keep = self._uses(counts, grid, ti0, tj0, i0, j0, i1, j1)
            value, pending, owner, registered = cache._claim_and_wait(key, keep, (grid, ti0, tj0), region.part_done)
            if left == 0 and not owner:
                cache.discard(key)  # this was its last use in the stream
            # Not cached (value None): there is a decode to wait for, or to do (owner).
            region.parts = (cast(_Pending, pending) if value is None else value,)
            if owner:
                batch.append((key, cast(_Pending, pending)))
            if not registered:  # cached, or decoded already
                region.complete()
            return region
        parts: list[np.ndarray | _Pending] = []
        pending_parts: list[_Pending] | None = None
        for ti in range(ti0, ti1 + 1):
            for tj in range(tj0, tj1 + 1):
                key = (grid.key, ti, tj)
                left, keep = self._uses(counts, grid, ti, tj, i0, j0, i1, j1)
                value, pending, owner = cache._claim(key, keep, (grid, ti, tj))
                if value is not None:
                    parts.append(value)
                else:
                    pending = cast(_Pending, pending)  # not cached: there is a decode
                    if owner:
                        batch.append((key, pending))
                    parts.append(pending)
                    if not pending.done:
                        if pending_parts is None:
                            pending_parts = [pending]
                        else:
                            pending_parts.append(pending)
                if left == 0 and not owner:
                    cache.discard(key)  # this was its last use in the stream
        region = _Region(item, grid, (i0, j0, i1, j1), (ti0, tj0), tj1 - tj0 + 1, parts, finish, signal)
        if pending_parts is None:
            region.lock = None
            region.complete()
            return region
        # One count more than the parts, so that parts finishing meanwhile cannot complete
        # the region before every callback is registered.
        lock = region.lock = threading.Lock()
        region.waiting = len(pending_parts) + 1
        for pending in pending_parts:
            if not cache._when_done(pending, region.part_done):
                with lock:
                    region.waiting -= 1
        with lock:
            region.waiting -= 1
            last = region.waiting == 0
        if last:
            region.complete()
        return region

    @staticmethod
    def _uses(counts: np.ndarray | _GridUses | None, grid: TileGrid, ti: int, tj: int, i0: int, j0: int, i1: int,
              j1: int) -> tuple[int, bool]:
        """(uses left after this one, or -1 when unknown; whether to cache the tile)."""
        if counts is not None:
            left = int(counts[ti, tj]) - 1
            counts[ti, tj] = left
            return left, left > 0
        # Unknown future: keep the tiles a region uses in part, which its neighbours are
        # likely to need; a tile used whole is likely used once.
        th, tw = grid.tile_shape
        h, w = grid.shape
        return -1, not (i0 <= ti * th and min(h, ti * th + th) <= i1 and j0 <= tj * tw and min(w, tj * tw + tw) <= j1)


def _as_is(_item: object, array: np.ndarray | None) -> np.ndarray | None:
    return array


def _submit(pool: WorkerPool | None, cache: TileCache, batch: _Batch, size: int) -> None:
    if pool is None:
        _decode_batch(cache, batch)
        return
    for k in range(0, len(batch), size):
        pool.submit(_decode_batch, cache, batch[k : k + size])


def _decode_batch(cache: TileCache, batch: _Batch) -> None:
    for key, pending in batch:
        cache._run(key, pending)


def _default_lookahead(region: _Region, workers: int) -> int:
    """Regions to read ahead: enough to keep every worker busy, bounded in bytes."""
    if region.grid is None:
        return 4 * workers
    i0, j0, i1, j1 = region.box
    nbytes = (i1 - i0) * (j1 - j0) * int(np.prod(region.grid.pixel_shape)) * region.grid.dtype.itemsize
    return max(2 * workers, min(8 * workers, LOOKAHEAD_BYTES // max(1, nbytes)))
