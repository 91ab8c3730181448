"""TileCache: decoded native tiles shared between readers, bounded in bytes.

A tile being decoded is a :class:`_Pending` entry: every request for it waits for that one
decode (by callback or event) instead of decoding it again.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable, Hashable, cast

import numpy as np

from .tile_grid import TileGrid, decoded_tile

DEFAULT_CACHE_BYTES = 256 * 1024**2


class _Pending:
    """A native tile being decoded: its result when done, who waits for it, whether to cache it.

    Guarded by the cache's lock; waiters register a callback or (rarely) block on an event.
    """

    __slots__ = ("keep", "job", "started", "done", "value", "error", "callbacks", "event")

    keep: bool
    job: tuple[TileGrid, int, int] | None
    started: bool
    done: bool
    value: np.ndarray | None
    error: BaseException | None
    callbacks: list[Callable[[], None]] | None
    event: threading.Event | None

    def __init__(self, keep: bool, job: tuple[TileGrid, int, int] | None = None) -> None:
        self.keep = keep
        self.job = job  # (grid, ti, tj) when any thread may run the decode, else None
        self.started = job is None
        self.done = False
        self.value = None
        self.error = None
        self.callbacks = None
        self.event = None

    def result(self) -> np.ndarray:
        # Asked only once done, when exactly one of value and error is set.
        if self.value is None:
            raise cast(BaseException, self.error)
        return self.value


class TileCache:
    """A thread-safe LRU cache of decoded tiles, bounded in bytes.

    Concurrent requests for the same tile wait for one decode instead of repeating it.
    Cached tiles are read-only: they are shared between callers.
    """

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
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
        pending = cast(_Pending, pending)  # not cached: there is a decode
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
    def _claim(self, key: Hashable, keep: bool,
               job: tuple[TileGrid, int, int] | None = None) -> tuple[np.ndarray | None, _Pending | None, bool]:
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

    def _claim_and_wait(self, key: Hashable, keep: bool, job: tuple[TileGrid, int, int], callback: Callable[[], None]
                        ) -> tuple[np.ndarray | None, _Pending | None, bool, bool]:
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
        grid, ti, tj = cast("tuple[TileGrid, int, int]", pending.job)  # a pending not started has a job
        try:
            value = decoded_tile(grid, ti, tj)
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

    def _when_done(self, pending: _Pending, callback: Callable[[], None]) -> bool:
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
