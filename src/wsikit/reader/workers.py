"""Worker threads: how many to use, a minimal pool (and one kept between uses), and an
in-order parallel map.

:func:`ordered_map` runs a function over many requests on a thread pool with a bounded
look-ahead and yields results in request order. Every pool thread runs
:data:`THREAD_EXIT_HOOKS` as it ends.
"""
from __future__ import annotations

import os
import queue
import threading
import weakref
from collections import deque
from concurrent.futures import Future
from typing import Any, Callable, Iterable, Iterator, TypeAlias, TypeVar

#: Functions every reader thread calls just before it ends, e.g. to detach the thread from
#: a JVM it attached to by decoding through Java (an attached thread that ends leaks).
THREAD_EXIT_HOOKS: list[Callable[[], None]] = []

#: seconds a kept pool's thread waits for work before it ends (:class:`IdlePool`)
IDLE_SECONDS = 1.0

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
        self.count = count
        self.pid = os.getpid()  # its threads exist in this process only
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
            run_exit_hooks()

    def shutdown(self, wait: bool = True) -> None:
        # Work already queued still runs (at most the look-ahead's native tiles), so that
        # every decode a reader of the shared cache may wait on is resolved.
        if self.pid != os.getpid():
            return  # a forked child: the threads (and maybe the queue's lock) stayed in the parent
        for _ in self._threads:
            self._queue.put(None)
        current = threading.current_thread()
        if wait:
            for thread in self._threads:
                if thread is not current:  # a pool thread closing its own pool cannot wait for itself
                    thread.join()


def run_exit_hooks() -> None:
    """Run :data:`THREAD_EXIT_HOOKS` in the reader thread that is ending."""
    for hook in list(THREAD_EXIT_HOOKS):
        try:
            hook()
        except Exception:  # a hook must not take the pool's shutdown down with it
            pass


class IdlePool(WorkerPool):
    """A :class:`WorkerPool` whose threads end after ``idle`` seconds without work and are
    started again by the next :meth:`submit`: kept between short uses (a large region read
    need not start and end a thread each time), and nothing left running once they stop.

    A thread ends only under the lock, with the queue empty, and ``submit`` queues under
    the same lock and then starts threads up to ``count``: no task is left without one.
    """

    def __init__(self, count: int, idle: float) -> None:
        self.idle = idle
        self._lock = threading.Lock()
        self._closed = False
        self._serial = count  # names of the threads started later
        super().__init__(count)

    def submit(self, fn: Callable[..., object], *args: Any) -> None:
        with self._lock:
            self._queue.put((fn, args))
            if self._closed:
                return  # the submitter runs its own unstarted decodes while it waits
            while len(self._threads) < self.count:
                thread = threading.Thread(target=self._run, name=f"wsikit-reader-{self._serial}", daemon=True)
                self._serial += 1
                self._threads.append(thread)
                thread.start()

    def _run(self) -> None:
        get, me = self._queue.get, threading.current_thread()
        try:
            while True:
                try:
                    task = get(timeout=self.idle)
                except queue.Empty:
                    with self._lock:
                        if self._queue.empty():
                            self._threads.remove(me)
                            return
                    continue
                if task is None:
                    return
                fn, args = task
                fn(*args)
        finally:
            run_exit_hooks()

    def shutdown(self, wait: bool = True) -> None:
        if self.pid != os.getpid():
            return  # a forked child: the threads (and maybe the lock) stayed in the parent
        with self._lock:
            self._closed = True
            threads = list(self._threads)
            for _ in threads:
                self._queue.put(None)
        current = threading.current_thread()
        if wait:
            for thread in threads:
                if thread is not current:  # a pool thread closing its own pool cannot wait for itself
                    thread.join()


class LazyPool:
    """An :class:`IdlePool` made on first use and kept: short reads (one large region)
    need not start and end threads each time (about 3 ms of a 10 ms 512 x 512 read).

    Callers sharing it never wait on each other's queued work: a reader decodes what its
    own regions need whenever it would otherwise wait (``TiledReader._wait``). Its threads
    end after :data:`IDLE_SECONDS` without work, at :meth:`close`, or when the owner is
    dropped, each running :data:`THREAD_EXIT_HOOKS`. In a forked child the parent's pool is
    forgotten (its threads did not come along; ``os.register_at_fork``) and a new one is made.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool: IdlePool | None = None
        self._finalizer: weakref.finalize | None = None
        _LAZY_POOLS.add(self)

    def get(self, count: int) -> WorkerPool:
        """The pool, with ``count`` threads (a pool of another size is replaced)."""
        pool = self._pool
        if pool is not None and pool.count == count and pool.pid == os.getpid():
            return pool
        with self._lock:
            pool = self._pool
            if pool is None or pool.count != count or pool.pid != os.getpid():
                if pool is not None:
                    self._release()
                    pool.shutdown(wait=False)  # its queued work still runs
                pool = self._pool = IdlePool(count, IDLE_SECONDS)
                # Threads end when the owner is dropped unclosed (they hold no reference to it).
                self._finalizer = weakref.finalize(self, pool.shutdown, False)
            return pool

    def close(self) -> None:
        """End the threads once the work queued on them is done (a later :meth:`get` makes new ones)."""
        with self._lock:
            pool, self._pool = self._pool, None
            self._release()
        if pool is not None:
            pool.shutdown()

    def _release(self) -> None:
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None

    def _forget(self) -> None:
        """In a forked child: the parent's threads did not come along, and its lock may have
        been held by one of them at the fork."""
        self._lock = threading.Lock()
        self._pool = None
        self._release()


#: every LazyPool of the process, forgotten in a forked child
_LAZY_POOLS: weakref.WeakSet[LazyPool] = weakref.WeakSet()


def _forget_pools_after_fork() -> None:
    for pool in list(_LAZY_POOLS):
        pool._forget()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pools_after_fork)


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
