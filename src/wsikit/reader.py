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

:func:`ordered_map` runs a function over many requests on a thread pool with a bounded
look-ahead and yields results in request order.
"""
from __future__ import annotations

import os
import queue
import threading
from collections import OrderedDict, deque
from concurrent.futures import Future
from dataclasses import dataclass
from functools import partial
from typing import Callable, Hashable, Iterable, Iterator

import numpy as np

DEFAULT_CACHE_BYTES = 256 * 1024**2
# Decoded pixels a stream may hold in regions read ahead of the consumer.
LOOKAHEAD_BYTES = 128 * 1024**2
# A single read touching at least this many native tiles decodes them on every core.
PARALLEL_READ_TILES = 8
#: Functions every reader thread calls just before it ends, e.g. to detach the thread from
#: a JVM it attached to by decoding through Java (an attached thread that ends leaks).
THREAD_EXIT_HOOKS: list[Callable[[], None]] = []


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


class _Pending:
    """A native tile being decoded: its result when done, who waits for it, whether to cache it.

    Guarded by the cache's lock; waiters register a callback or (rarely) block on an event.
    """

    __slots__ = ("keep", "job", "started", "done", "value", "error", "callbacks", "event")

    def __init__(self, keep: bool, job=None):
        self.keep = keep
        self.job = job  # (grid, ti, tj) when any thread may run the decode, else None
        self.started = job is None
        self.done = False
        self.value = None
        self.error = None
        self.callbacks = None
        self.event = None

    def result(self) -> np.ndarray:
        if self.error is not None:
            raise self.error
        return self.value


class TileCache:
    """A thread-safe LRU cache of decoded tiles, bounded in bytes.

    Concurrent requests for the same tile wait for one decode instead of repeating it.
    Cached tiles are read-only: they are shared between callers.
    """

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES):
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0:
            raise ValueError(f"cache_bytes must be a non-negative int, got {max_bytes!r}")
        self.max_bytes = max_bytes
        self._items: OrderedDict[Hashable, np.ndarray] = OrderedDict()
        self._pending: dict[Hashable, _Pending] = {}
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def nbytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._items

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0

    def get(self, key: Hashable, make: Callable[[], np.ndarray], keep: bool = True) -> np.ndarray:
        """The cached value of ``key``, made (once, whoever asks at the same time) when missing
        and then kept unless ``keep`` is False."""
        value, pending, owner = self._claim(key, keep)
        if value is not None:
            return value
        if not owner:
            return self._wait(pending)
        try:
            value = make()
        except BaseException as exc:
            self._fail(key, pending, exc)
            raise
        return self._store(key, pending, value)

    def discard(self, key: Hashable) -> None:
        """Forget ``key``: drop its value, or do not keep it when its decode finishes."""
        with self._lock:
            value = self._items.pop(key, None)
            if value is not None:
                self._bytes -= value.nbytes
                return
            pending = self._pending.get(key)
            if pending is not None:
                pending.keep = False

    # -- the parts of a request, also used by TiledReader.stream -------------------------
    def _claim(self, key: Hashable, keep: bool, job=None):
        """(value, pending, owner): the cached value; or the decode to wait for / to do.

        With ``job`` = (grid, ti, tj) the decode is left for any thread to :meth:`_run`.
        """
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
                return value, None, False
            pending = self._pending.get(key)
            if pending is not None:
                pending.keep = pending.keep or keep
                return None, pending, False
            pending = self._pending[key] = _Pending(keep, job)
            return None, pending, True

    def _claim_and_wait(self, key: Hashable, keep: bool, job, callback):
        """:meth:`_claim`, and ``callback()`` registered to run once the decode is done, under
        one acquisition of the lock. (value, pending, owner, registered)."""
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
                return value, None, False, False
            pending = self._pending.get(key)
            if pending is None:
                pending = self._pending[key] = _Pending(keep, job)
                pending.callbacks = [callback]
                return None, pending, True, True
            pending.keep = pending.keep or keep
            if pending.done:
                return None, pending, False, False
            if pending.callbacks is None:
                pending.callbacks = [callback]
            else:
                pending.callbacks.append(callback)
            return None, pending, False, True

    def _run(self, key: Hashable, pending: _Pending) -> None:
        """Decode a pending tile left for any thread, unless some thread already started it."""
        with self._lock:
            if pending.started:
                return
            pending.started = True
        grid, ti, tj = pending.job
        try:
            value = _decoded(grid, ti, tj)
        except BaseException as exc:  # every waiter gets it; a worker thread lives on
            self._fail(key, pending, exc)
            return
        self._store(key, pending, value)

    def _wait(self, pending: _Pending) -> np.ndarray:
        with self._lock:
            event = None
            if not pending.done:
                event = pending.event = pending.event or threading.Event()
        if event is not None:
            if pending.job is not None:
                self._run((pending.job[0].key,) + pending.job[1:], pending)  # nobody started it: do it here
            event.wait()
        return pending.result()

    def _when_done(self, pending: _Pending, callback) -> bool:
        """Call ``callback()`` once ``pending`` is done; False (and no call) when it already is."""
        with self._lock:
            if pending.done:
                return False
            if pending.callbacks is None:
                pending.callbacks = [callback]
            else:
                pending.callbacks.append(callback)
            return True

    def _store(self, key: Hashable, pending: _Pending, value: np.ndarray) -> np.ndarray:
        value.setflags(write=False)  # shared between callers: nobody may modify it
        with self._lock:
            if self._pending.get(key) is pending:
                del self._pending[key]
            if pending.keep and value.nbytes <= self.max_bytes and key not in self._items:
                self._items[key] = value
                self._bytes += value.nbytes
                while self._bytes > self.max_bytes:
                    _, old = self._items.popitem(last=False)
                    self._bytes -= old.nbytes
            pending.value = value
            pending.done = True
        self._notify(pending)
        return value

    def _fail(self, key: Hashable, pending: _Pending, exc: BaseException) -> None:
        with self._lock:
            if self._pending.get(key) is pending:
                del self._pending[key]
            pending.error = exc
            pending.done = True
        self._notify(pending)

    @staticmethod
    def _notify(pending: _Pending) -> None:
        # After done is set under the lock nobody adds a callback or an event: no lock here.
        if pending.event is not None:
            pending.event.set()
        if pending.callbacks is not None:
            for callback in pending.callbacks:
                callback()


class _Inline:
    """Runs work at once in the calling thread: ``workers=1`` is plain sequential reading."""

    def submit(self, fn, *args) -> None:
        fn(*args)

    def shutdown(self) -> None:
        pass


class _Workers:
    """A minimal thread pool: tasks resolve their own results, so a queue is all it needs."""

    def __init__(self, count: int):
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._run, name=f"wsikit-reader-{k}", daemon=True) for k in range(count)]
        for thread in self._threads:
            thread.start()

    def submit(self, fn, *args) -> None:
        self._queue.put((fn, args))

    def _run(self) -> None:
        get = self._queue.get
        try:
            while True:
                task = get()
                if task is None:
                    return
                fn, args = task
                fn(*args)
        finally:
            for hook in list(THREAD_EXIT_HOOKS):
                try:
                    hook()
                except Exception:  # a hook must not take the pool's shutdown down with it
                    pass

    def shutdown(self) -> None:
        # Work already queued still runs (at most the look-ahead's native tiles), so that
        # every decode a reader of the shared cache may wait on is resolved.
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join()


class _Signal:
    """Where a stream's consumer waits for the region at the head of its window."""

    __slots__ = ("lock", "condition", "waiting_for")

    def __init__(self):
        self.lock = threading.Lock()
        self.condition = threading.Condition(self.lock)
        self.waiting_for = None

    def wait(self, region: "_Region") -> None:
        with self.condition:
            while not region.done:
                self.waiting_for = region
                self.condition.wait()
            self.waiting_for = None

    def completed(self, region: "_Region") -> None:
        with self.lock:  # the condition's own lock, without its Python-level wrapper
            region.done = True
            if self.waiting_for is region:
                self.condition.notify()


class _Region:
    """One region of a stream: the native tiles it waits for, then its stitched result."""

    __slots__ = ("item", "grid", "box", "origin", "cols", "parts", "waiting", "lock", "finish", "signal", "done",
                 "value", "error")

    def __init__(self, item, grid, box, origin, cols, parts, finish, signal):
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
            array = None if self.grid is None else _stitch(self.grid, self.box, self.origin, self.cols, tiles)
            self.value = self.finish(self.item, array)
        except BaseException as exc:  # handed to the consumer, in order
            self.error = exc
        self.parts = None
        self.signal.completed(self)


class TiledReader:
    """Regions of :class:`TileGrid` levels, stitched from cached native tiles."""

    def __init__(self, cache_bytes: int = DEFAULT_CACHE_BYTES, workers: int | None = None):
        self.cache = TileCache(cache_bytes)
        #: threads that decode the native tiles of one large ``read`` (None: every core)
        self.workers = workers

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
            # A large box: its native tiles are decoded on every core.
            [(_, value, error)] = self.stream([None], lambda _: (grid, i0, j0, i1, j1), _as_is, workers=workers)
            if error is not None:
                raise error
            return value
        cache = self.cache
        tiles = []
        for ti in range(ti0, ti1 + 1):
            for tj in range(tj0, tj1 + 1):
                # As in a stream whose future is unknown: keep the tiles this box uses in
                # part, which the next boxes are likely to need; a tile used whole is
                # likely read once, and keeping it would only push out the useful ones.
                _, keep = self._uses(None, grid, ti, tj, i0, j0, i1, j1)
                tiles.append(cache.get((grid.key, ti, tj), partial(_decoded, grid, ti, tj), keep))
        return _stitch(grid, (i0, j0, i1, j1), (ti0, tj0), tj1 - tj0 + 1, tiles)

    def stream(self, items: Iterable, box_of: Callable, finish: Callable, *, workers: int | None = None,
               lookahead: int | None = None, uses: dict | None = None) -> Iterator[tuple]:
        """Read a region for every item, in order: yields ``(item, value, error)``.

        ``box_of(item)`` gives ``(grid, i0, j0, i1, j1)``, a box inside the grid's level, or
        None when nothing is to be read; ``finish(item, pixels_or_None)`` turns the pixels
        into the value (padding, normalising; it runs on the thread that completed the
        region). ``error`` is the exception raised while reading or finishing that item, and
        reading goes on. ``workers=1`` reads in the calling thread; otherwise native tiles
        of up to ``lookahead`` regions ahead are decoded on ``workers`` threads: the calling
        thread (whenever it would otherwise wait) and ``workers - 1`` started here. ``uses``
        (from :func:`count_uses`) says how many regions need each native tile: a tile needed
        once is not cached, a tile is dropped from the cache after its last use.
        """
        workers = default_workers() if workers is None else workers
        pool = None
        window: deque[_Region] = deque()
        signal = _Signal()
        batch: list = []  # decodes not yet handed to the workers
        try:
            iterator = iter(items)
            inline = workers <= 1
            # The calling thread decodes too, whenever it would otherwise wait.
            pool = None if inline else _Workers(workers - 1)
            limit = 1 if inline else lookahead
            size = 1
            for item in iterator:
                try:
                    region = self._start(item, box_of(item), finish, uses, signal, batch)
                except Exception as exc:  # handed back in order, like a failed read
                    region = _Region(item, None, None, None, 0, None, finish, signal)
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
                if not window[0].done:
                    self._wait(window, signal, limit // 2)
                region = window.popleft()
                yield region.item, region.value, region.error
        finally:
            window.clear()
            if batch and pool is not None:
                _submit(pool, self.cache, batch, size)  # other streams may wait on these decodes
            if pool is not None:
                pool.shutdown()

    def _wait(self, window, signal: _Signal, ahead: int) -> None:
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
                    grid, ti, tj = part.job
                    run((grid.key, ti, tj), part)
                    if head.done:
                        return
        if not head.done:
            signal.wait(window[min(len(window), max(1, ahead)) - 1])
            if not head.done:
                signal.wait(head)

    def _start(self, item, box, finish, uses, signal, batch) -> _Region:
        if box is None:
            region = _Region(item, None, None, None, 0, (), finish, signal)
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
            region = _Region(item, grid, (i0, j0, i1, j1), (ti0, tj0), 1, None, finish, signal)
            region.lock = None
            key = (grid.key, ti0, tj0)
            left, keep = self._uses(counts, grid, ti0, tj0, i0, j0, i1, j1)
            value, pending, owner, registered = cache._claim_and_wait(key, keep, (grid, ti0, tj0), region.part_done)
            if left == 0 and not owner:
                cache.discard(key)  # this was its last use in the stream
            region.parts = (pending if value is None else value,)
            if owner:
                batch.append((key, pending))
            if not registered:  # cached, or decoded already
                region.complete()
            return region
        parts = []
        pending_parts = None
        for ti in range(ti0, ti1 + 1):
            for tj in range(tj0, tj1 + 1):
                key = (grid.key, ti, tj)
                left, keep = self._uses(counts, grid, ti, tj, i0, j0, i1, j1)
                value, pending, owner = cache._claim(key, keep, (grid, ti, tj))
                if value is not None:
                    parts.append(value)
                else:
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
    def _uses(counts, grid: TileGrid, ti: int, tj: int, i0: int, j0: int, i1: int, j1: int) -> tuple[int, bool]:
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


def _as_is(_item, array):
    return array


def _submit(pool, cache: TileCache, batch: list, size: int) -> None:
    if pool is None:
        _decode_batch(cache, batch)
        return
    for k in range(0, len(batch), size):
        pool.submit(_decode_batch, cache, batch[k : k + size])


def _decode_batch(cache: TileCache, batch: list) -> None:
    for key, pending in batch:
        cache._run(key, pending)


def _default_lookahead(region: _Region, workers: int) -> int:
    """Regions to read ahead: enough to keep every worker busy, bounded in bytes."""
    if region.grid is None:
        return 4 * workers
    i0, j0, i1, j1 = region.box
    nbytes = (i1 - i0) * (j1 - j0) * int(np.prod(region.grid.pixel_shape)) * region.grid.dtype.itemsize
    return max(2 * workers, min(8 * workers, LOOKAHEAD_BYTES // max(1, nbytes)))


def _stitch(grid: TileGrid, box, origin, cols: int, tiles: list) -> np.ndarray:
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


class UseCounter:
    """Counts how many boxes need each native tile of each grid (see :meth:`TiledReader.stream`).

    Each box adds 1 over its rectangle of tiles: a 2-D difference array per grid, summed
    once at the end, so boxes can be added in blocks of any size.
    """

    def __init__(self):
        self._diffs: dict = {}
        self._grids: dict = {}

    def add(self, grid: TileGrid, boxes) -> None:
        """Count boxes ``(i0, j0, i1, j1)`` (an (n, 4) array), each non-empty and inside the level."""
        boxes = np.asarray(boxes, dtype=np.int64).reshape(-1, 4)
        diff = self._diffs.get(grid.key)
        if diff is None:
            rows, cols = grid.grid
            diff = self._diffs[grid.key] = np.zeros((rows + 1, cols + 1), dtype=np.int64)
            self._grids[grid.key] = grid
        th, tw = grid.tile_shape
        ti0, tj0 = boxes[:, 0] // th, boxes[:, 1] // tw
        ti1, tj1 = (boxes[:, 2] - 1) // th + 1, (boxes[:, 3] - 1) // tw + 1
        np.add.at(diff, (ti0, tj0), 1)
        np.add.at(diff, (ti0, tj1), -1)
        np.add.at(diff, (ti1, tj0), -1)
        np.add.at(diff, (ti1, tj1), 1)

    def counts(self) -> dict:
        """grid key -> int32 array of the tile grid: how many boxes need each native tile."""
        uses = {}
        for key, diff in self._diffs.items():
            rows, cols = self._grids[key].grid
            uses[key] = diff.cumsum(axis=0).cumsum(axis=1)[:rows, :cols].astype(np.int32)
        return uses


def count_uses(boxes: Iterable) -> dict:
    """How many of ``boxes`` need each native tile: grid key -> int32 array of the tile grid.

    ``boxes`` are what a stream's ``box_of`` gives: ``(grid, i0, j0, i1, j1)`` or None.
    """
    counter = UseCounter()
    grids: dict = {}
    chunks: dict = {}  # taken in chunks, so that memory does not grow with their number
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


def _decoded(grid: TileGrid, ti: int, tj: int) -> np.ndarray:
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
    pending: deque[Future] = deque()
    pool = _Workers(workers)
    try:
        iterator = iter(items)
        for item in iterator:
            future: Future = Future()
            pool.submit(_call_into, future, fn, item)
            pending.append(future)
            if len(pending) >= lookahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()  # a task not started yet then does nothing
        pool.shutdown()


def _call_into(future: Future, fn: Callable, item) -> None:
    if not future.set_running_or_notify_cancel():
        return
    try:
        result = fn(item)
    except BaseException as exc:
        future.set_exception(exc)
    else:
        future.set_result(result)
