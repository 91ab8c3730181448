"""Worker threads: how many to use, a minimal pool, and an in-order parallel map.

:func:`ordered_map` runs a function over many requests on a thread pool with a bounded
look-ahead and yields results in request order. Every pool thread runs
:data:`THREAD_EXIT_HOOKS` as it ends.
"""
from __future__ import annotations

import os
import queue
import threading
from collections import deque
from concurrent.futures import Future
from typing import Any, Callable, Iterable, Iterator, TypeAlias, TypeVar

#: Functions every reader thread calls just before it ends, e.g. to detach the thread from
#: a JVM it attached to by decoding through Java (an attached thread that ends leaks).
THREAD_EXIT_HOOKS: list[Callable[[], None]] = []

_Item = TypeVar("_Item")
_Result = TypeVar("_Result")
#: a pool task: a function and its arguments, or None to end the thread that takes it
_Task: TypeAlias = "tuple[Callable[..., object], tuple[Any, ...]] | None"


def default_workers() -> int:
    """Threads to use when the caller does not say: every core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class WorkerPool:
    """A minimal thread pool: tasks resolve their own results, so a queue is all it needs."""

    def __init__(self, count: int) -> None:
        self._queue: queue.SimpleQueue[_Task] = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._run, name=f"wsikit-reader-{k}", daemon=True)
                         for k in range(count)]
        for thread in self._threads:
            thread.start()

    def submit(self, fn: Callable[..., object], *args: Any) -> None:
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


def ordered_map(fn: Callable[[_Item], _Result], items: Iterable[_Item], workers: int | None = None,
                lookahead: int | None = None) -> Iterator[_Result]:
    """``map(fn, items)`` on a thread pool, in order, holding at most ``lookahead`` results.

    ``workers=1`` runs in the calling thread (plain sequential reading).
    """
    workers = default_workers() if workers is None else workers
    if workers <= 1:
        for item in items:
            yield fn(item)
        return
    lookahead = lookahead or 4 * workers
    pending: deque[Future[_Result]] = deque()
    pool = WorkerPool(workers)
    try:
        iterator = iter(items)
        for item in iterator:
            future: Future[_Result] = Future()
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


def _call_into(future: Future[_Result], fn: Callable[[_Item], _Result], item: _Item) -> None:
    if not future.set_running_or_notify_cancel():
        return
    try:
        result = fn(item)
    except BaseException as exc:
        future.set_exception(exc)
    else:
        future.set_result(result)
