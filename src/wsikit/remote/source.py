"""Byte sources: where a backend's bytes come from, a local file or a remote URL.

:class:`LocalSource` reads with ``os.pread`` (no lock, no shared offset). :class:`RemoteSource`
reads a URL and hides the latency:

- opening fetches the first :data:`HEADER_BYTES` in one request, which also tells the file's
  size; metadata reads (:meth:`read_at`, what tifffile and pydicom parse) go through a cache
  of :data:`BLOCK` -sized blocks, fetched in one request per run of missing blocks;
- :meth:`prefetch` is told which tile ranges come next (by the streaming engine's look-ahead,
  see :mod:`.prefetch`): neighbouring ranges are coalesced into requests of up to
  ``wsikit_request_bytes``, up to ``wsikit_requests`` of them in flight, and their bytes wait
  in a byte-bounded cache until :meth:`read` takes them (once: the reader caches decoded
  tiles, not bytes); bytes on their way and waiting stay within ``wsikit_cache_bytes``,
  further ranges wait their turn;
- every request is retried with exponential backoff for 5xx answers, resets, stalls and bad
  bodies, within ``wsikit_timeout`` seconds in all; then a :class:`RemoteReadError` names the
  URL (shown without credentials) and the last problem. Bytes of a bad answer are never
  returned, so never decoded.

The requests run on fsspec's event-loop thread. A forked child starts afresh (its own loop,
connections and cache).
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import threading
from collections import OrderedDict, deque
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from ..errors import SlideError
from .fetchers import FetchProblem, RangeFetcher
from .filesystems import range_fetcher
from .settings import split_options
from .urls import display_url

log = logging.getLogger(__name__)

#: bytes fetched by the first request when a remote file is opened (header and tile tables)
HEADER_BYTES = 1024 * 1024
#: metadata reads are cached in blocks of this many bytes
BLOCK = 256 * 1024
#: blocks fetched after a missed one (IFDs and their tag values lie together)
READAHEAD_BLOCKS = 3
#: the most blocks fetched after a miss, when reads walk through the file
MAX_READAHEAD_BLOCKS = 63
# The smallest first run of a prefetch (see coalesce's first_bytes).
_FIRST_RUN_BYTES = 256 * 1024
# Ranges closer than this are fetched in one request (the gap is read and dropped).
_GAP_BYTES = 64 * 1024


class RemoteReadError(SlideError):
    """A remote file's bytes could not be fetched (after retries, or within the timeout)."""


class ByteSource(Protocol):
    """Random access to the bytes of one file."""

    name: str
    size: int

    def read(self, offset: int, count: int) -> bytes:
        """``count`` bytes at ``offset`` (fewer only past the end of the file)."""

    def read_at(self, offset: int, count: int) -> bytes:
        """The same, for metadata: small scattered reads, cached in blocks when remote."""

    def prefetch(self, ranges: Iterable[tuple[int, int]]) -> None:
        """Say that these (offset, count) ranges will be read soon."""

    def reopen(self) -> None:
        """A fresh handle for a forked child."""

    def close(self) -> None:
        """Release the handle."""


class LocalSource:
    """A local file read with ``os.pread``."""

    def __init__(self, path: str) -> None:
        self.name = path
        self.path = path
        self.fd: int | None = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        self.size = os.fstat(self.fd).st_size

    def read(self, offset: int, count: int) -> bytes:
        return os.pread(self.fd, count, offset)  # type: ignore[arg-type]  # None only once closed

    read_at = read

    def prefetch(self, ranges: Iterable[tuple[int, int]]) -> None:
        return None

    def reopen(self) -> None:
        # The inherited descriptor stays open: a parent closing it must not pull it from the child.
        self.fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_BINARY", 0))

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def coalesce(ranges: Sequence[tuple[int, int]], max_bytes: int, gap: int = _GAP_BYTES,
             first_bytes: int | None = None) -> list[tuple[int, int, list[tuple[int, int]]]]:
    """Runs ``(start, end, members)`` covering ``ranges`` (offset, count): neighbours closer
    than ``gap`` bytes share a run while it stays within ``max_bytes``. With ``first_bytes``
    the first run stays within that, and each next one within twice the one before (up to
    ``max_bytes``): the first bytes arrive soon, the rest in few requests."""
    runs: list[tuple[int, int, list[tuple[int, int]]]] = []
    limit = max_bytes if first_bytes is None else min(first_bytes, max_bytes)
    for offset, count in sorted(set(ranges)):
        end = offset + count
        if runs:
            start, last_end, members = runs[-1]
            if offset - last_end <= gap and max(end, last_end) - start <= limit:
                members.append((offset, count))
                runs[-1] = (start, max(end, last_end), members)
                continue
            limit = min(2 * limit, max_bytes)
        runs.append((offset, end, [(offset, count)]))
    return runs


class _ByteCache:
    """offset -> bytes, least recently used out first, bounded in bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.total = 0
        self.entries: OrderedDict[int, bytes] = OrderedDict()

    def get(self, key: int) -> bytes | None:
        data = self.entries.get(key)
        if data is not None:
            self.entries.move_to_end(key)
        return data

    def pop(self, key: int) -> bytes | None:
        data = self.entries.pop(key, None)
        if data is not None:
            self.total -= len(data)
        return data

    def put(self, key: int, data: bytes) -> None:
        old = self.entries.pop(key, None)
        if old is not None:
            self.total -= len(old)
        if len(data) > self.limit:
            return
        self.entries[key] = data
        self.total += len(data)
        while self.total > self.limit:
            _, dropped = self.entries.popitem(last=False)
            self.total -= len(dropped)

    def clear(self) -> None:
        self.entries.clear()
        self.total = 0


class RemoteSource:
    """The bytes of one remote file (see the module notes)."""

    size: int

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None) -> None:
        self.url = url
        self.name = display_url(url)
        self.settings, self._fs_options = split_options(storage_options)
        #: requests sent (attempts), and bytes received, by this process
        self.requests = 0
        self.bytes_received = 0
        self._fetcher: RangeFetcher | None = None
        self._reset()
        self.size = -1
        try:
            head = self._run(self._fetch(0, HEADER_BYTES, known_size=False), "the file's first bytes")
        except BaseException:
            self.close()  # the connections opened for the failed request
            raise
        with self._lock:
            for k in range(0, len(head), BLOCK):
                self._blocks.put(k // BLOCK, head[k : k + BLOCK])
        if self.size > HEADER_BYTES and head[:2] in (b"II", b"MM"):
            # A TIFF: many writers put IFDs after the image data, the last ones near the end:
            # fetch the tail now, while the header is parsed, without waiting for it.
            tail = max(HEADER_BYTES // BLOCK, (self.size - HEADER_BYTES) // BLOCK)
            self._fetch_blocks(tail, (self.size - 1) // BLOCK)

    def __repr__(self) -> str:
        return f"RemoteSource({self.name!r}, size={self.size})"

    def _reset(self) -> None:
        abandon = getattr(self._fetcher, "abandon", None)
        if abandon is not None and os.getpid() != getattr(self, "_pid", os.getpid()):
            abandon()  # a forked child: the parent's connections are not ours to use or close
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._fetcher = range_fetcher(self.url, dict(self._fs_options))
        self._tiles = _ByteCache(self.settings.cache_bytes)
        self._blocks = _ByteCache(max(HEADER_BYTES, self.settings.cache_bytes // 4))
        self._inflight: dict[int, concurrent.futures.Future[None]] = {}
        self._inflight_bytes = 0
        self._deferred: deque[tuple[int, int]] = deque()  # ranges announced, waiting for room
        self._deferred_set: set[int] = set()  # their offsets (one read directly is dropped from here)
        self._pending_blocks: dict[int, concurrent.futures.Future[None]] = {}
        self._failed: dict[int, SlideError] = {}  # tile offset -> why its prefetch failed
        self._readahead = READAHEAD_BLOCKS
        self._walk_end = -1  # the block after the last metadata fetch: a miss there is a walk
        self._semaphore: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _check_fork(self) -> None:
        if os.getpid() != self._pid:
            self._reset()  # the parent's connections, loop and waiting readers are not this process's

    # -- running requests -----------------------------------------------------------------
    def _event_loop(self) -> asyncio.AbstractEventLoop:
        import fsspec.asyn  # type: ignore[import-untyped]

        loop = fsspec.asyn.get_loop()
        if loop is not self._loop:
            self._loop = loop
            self._semaphore = None
        return loop

    def _submit(self, coroutine: Any) -> concurrent.futures.Future[Any]:
        return asyncio.run_coroutine_threadsafe(coroutine, self._event_loop())

    def _run(self, coroutine: Any, what: str) -> Any:
        future = self._submit(coroutine)
        try:
            # The coroutine ends itself at the timeout; the margin covers a loop that is busy.
            return future.result(self.settings.timeout + 5)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise RemoteReadError(self.name, f"reading {what} took more than {self.settings.timeout:g} s") from None

    async def _fetch(self, start: int, end: int, *, known_size: bool = True) -> bytes:
        """``[start, end)`` with retries, within the total timeout; RemoteReadError otherwise."""
        problems: list[FetchProblem] = []
        try:
            return await asyncio.wait_for(self._attempts(start, end, known_size, problems), self.settings.timeout)
        except asyncio.TimeoutError:
            last = f" (last problem: {problems[-1]})" if problems else ""
            raise RemoteReadError(self.name, f"bytes {start}-{end - 1} did not arrive within the timeout of "
                                             f"{self.settings.timeout:g} s{last}") from None

    async def _attempts(self, start: int, end: int, known_size: bool, problems: list[FetchProblem]) -> bytes:
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self.settings.requests)
        settings = self.settings
        fetcher = self._fetcher
        if fetcher is None:  # closed while the request waited
            raise RemoteReadError(self.name, "the source was closed")
        for attempt in range(settings.retries + 1):
            try:
                async with self._semaphore:
                    self.requests += 1
                    data, total = await fetcher.fetch(start, end, self.size if known_size else None,
                                                            settings.stall)
                if not known_size:
                    self.size = total
                self.bytes_received += len(data)
                return data
            except FetchProblem as problem:
                problems.append(problem)
                log.debug("%s: bytes %d-%d, attempt %d: %s", self.name, start, end - 1, attempt + 1, problem)
                if problem.missing and not known_size:
                    raise FileNotFoundError(2, f"No such file or directory ({problem})", self.name) from None
                if not problem.retryable or attempt == settings.retries:
                    tries = f" after {attempt + 1} attempts" if attempt else ""
                    raise RemoteReadError(self.name, f"bytes {start}-{end - 1}: {problem}{tries}") from None
            await asyncio.sleep(min(settings.backoff * 2**attempt, 5.0))
        raise AssertionError("unreachable")

    # -- tile bytes -----------------------------------------------------------------------
    def prefetch(self, ranges: Iterable[tuple[int, int]]) -> None:
        """Fetch these ranges ahead, coalesced, without waiting. Bytes on their way and not yet
        read stay within ``wsikit_cache_bytes``: ranges beyond wait their turn, in order, and go
        out as reads make room."""
        self._check_fork()
        with self._lock:
            for offset, count in ranges:
                if count <= 0 or offset in self._inflight or offset in self._deferred_set \
                        or self._tiles.entries.get(offset) is not None:
                    continue
                if all(self._blocks.entries.get(k) is not None
                       for k in range(offset // BLOCK, (offset + count - 1) // BLOCK + 1)):
                    continue  # fetched with the header
                self._deferred.append((offset, count))
                self._deferred_set.add(offset)
            started = self._start_runs()
        for run in started:
            self._submit(self._fetch_run(*run))

    def _start_runs(self) -> list[tuple[int, int, list[tuple[int, int]], concurrent.futures.Future[None]]]:
        """Under the lock: runs of the waiting ranges, oldest first, as far as the room left
        allows, and only once that room is worth a request (not a tile at a time)."""
        budget = self.settings.cache_bytes
        ahead = self._inflight_bytes + self._tiles.total
        room = budget - ahead
        if not self._deferred or room < min(self.settings.request_bytes, budget // 4) and ahead:
            return []
        taken: list[tuple[int, int]] = []
        size = 0
        while self._deferred and (size < room or not taken):
            offset, count = self._deferred.popleft()
            if offset not in self._deferred_set:
                continue  # read directly meanwhile
            self._deferred_set.discard(offset)
            taken.append((offset, count))
            size += count
        # With little on its way (a cold start), small runs first: decoding starts as soon as
        # the first of them arrives, not when the largest request is complete.
        started = []
        for start, end, members in coalesce(taken, self.settings.request_bytes,
                                            first_bytes=max(_FIRST_RUN_BYTES, ahead)):
            future: concurrent.futures.Future[None] = concurrent.futures.Future()
            for offset, _ in members:
                self._inflight[offset] = future
            self._inflight_bytes += end - start
            started.append((start, end, members, future))
        return started

    async def _fetch_run(self, start: int, end: int, members: list[tuple[int, int]],
                         future: concurrent.futures.Future[None]) -> None:
        try:
            data = await self._fetch(start, end)
        except BaseException as exc:
            with self._lock:
                if isinstance(exc, SlideError):
                    # Readers of these tiles that come later fail at once with this error, rather
                    # than each waiting out its own retries (once: a later read tries again).
                    if len(self._failed) > 100_000:
                        self._failed.clear()
                    for offset, _ in members:
                        self._failed[offset] = exc
                self._forget(start, end, members, future)
            future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        view = memoryview(data)
        with self._lock:
            for offset, count in members:
                self._tiles.put(offset, bytes(view[offset - start : offset - start + count]))
            self._forget(start, end, members, future)
        future.set_result(None)

    def _forget(self, start: int, end: int, members: list[tuple[int, int]],
                future: concurrent.futures.Future[None]) -> None:
        for offset, _ in members:
            if self._inflight.get(offset) is future:
                del self._inflight[offset]
        self._inflight_bytes -= end - start

    def read(self, offset: int, count: int) -> bytes:
        """``count`` bytes at ``offset``: from the cache, a request in flight, or fetched now."""
        self._check_fork()
        for _ in range(2):
            with self._lock:
                # Taken out: a tile's bytes are decoded once (the decoded tile is what the
                # reader caches), so memory holds only what was fetched ahead and not yet read.
                data = self._tiles.pop(offset)
                future = None if data is not None else self._inflight.get(offset)
                failed = self._failed.pop(offset, None) if data is None and future is None else None
                started = self._start_runs() if data is not None and self._deferred else []
                if data is None and future is None:
                    self._deferred_set.discard(offset)  # about to be read directly: not again later
            for run in started:
                self._submit(self._fetch_run(*run))
            if failed is not None:
                raise type(failed)(failed.path, failed.reason)
            if data is not None and len(data) >= count:
                return data if len(data) == count else data[:count]
            if future is None:
                break
            try:
                future.result(self.settings.timeout + 5)
            except concurrent.futures.TimeoutError:
                raise RemoteReadError(self.name, f"bytes {offset}-{offset + count - 1} did not arrive within "
                                                 f"{self.settings.timeout:g} s") from None
            # Fetched: found in the cache on the next turn (unless pushed out already).
        cached = self._from_blocks(offset, count)
        if cached is not None:
            return cached
        return self._run(self._fetch(offset, offset + count), f"bytes {offset}-{offset + count - 1}")

    # -- metadata bytes -------------------------------------------------------------------
    def _from_blocks(self, offset: int, count: int) -> bytes | None:
        first, last = offset // BLOCK, (offset + max(count, 1) - 1) // BLOCK
        parts = []
        with self._lock:
            for k in range(first, last + 1):
                block = self._blocks.get(k)
                if block is None:
                    return None
                parts.append(block)
        data = b"".join(parts) if len(parts) > 1 else parts[0]
        at = offset - first * BLOCK
        return data[at : at + count]

    def _fetch_blocks(self, first: int, last: int, readahead: int = 0) -> list[concurrent.futures.Future[None]]:
        """Futures of blocks ``first..last`` arriving: those already on their way, and one
        request for the missing ones (with up to ``readahead`` blocks after them)."""
        blocks_total = -(-self.size // BLOCK)
        with self._lock:
            waits = {id(f): f for k in range(first, last + 1) if (f := self._pending_blocks.get(k)) is not None}
            missing = [k for k in range(first, last + 1)
                       if self._blocks.get(k) is None and k not in self._pending_blocks]
            if not missing:
                return list(waits.values())
            stop = missing[-1] + 1
            while stop < min(blocks_total, missing[-1] + 1 + readahead) and self._blocks.get(stop) is None \
                    and stop not in self._pending_blocks:
                stop += 1
            ks = range(missing[0], stop)
            future: concurrent.futures.Future[None] = concurrent.futures.Future()
            for k in ks:
                if self._blocks.get(k) is None and k not in self._pending_blocks:
                    self._pending_blocks[k] = future
        waits[id(future)] = future
        self._submit(self._fetch_block_run(ks, future))
        return list(waits.values())

    async def _fetch_block_run(self, ks: range, future: concurrent.futures.Future[None]) -> None:
        start, end = ks.start * BLOCK, min(self.size, ks.stop * BLOCK)
        try:
            data = await self._fetch(start, end)
        except BaseException as exc:
            with self._lock:
                for k in ks:
                    if self._pending_blocks.get(k) is future:
                        del self._pending_blocks[k]
            future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        with self._lock:
            for k in ks:
                at = (k - ks.start) * BLOCK
                self._blocks.put(k, data[at : at + BLOCK])
                if self._pending_blocks.get(k) is future:
                    del self._pending_blocks[k]
        future.set_result(None)

    def _wait(self, futures: Iterable[concurrent.futures.Future[None]], what: str) -> None:
        for future in futures:
            try:
                future.result(self.settings.timeout + 5)
            except concurrent.futures.TimeoutError:
                raise RemoteReadError(self.name, f"reading {what} took more than {self.settings.timeout:g} s") from None

    def read_at(self, offset: int, count: int) -> bytes:
        """``count`` bytes at ``offset`` (fewer past the end), through the block cache; a miss
        fetches :data:`READAHEAD_BLOCKS` more (IFDs and tag values of the same image lie together),
        twice as many each time a miss follows the last one (a walk through the file, such as
        the fragments of a DICOM file without an offset table), up to :data:`MAX_READAHEAD_BLOCKS`."""
        self._check_fork()
        count = max(0, min(count, self.size - offset))
        if count == 0:
            return b""
        cached = self._from_blocks(offset, count)
        if cached is not None:
            return cached
        what = f"bytes {offset}-{offset + count - 1}"
        if count > 4 * BLOCK:  # a large read (a strip of a picture): fetched as it is, not cached
            return self._run(self._fetch(offset, offset + count), what)
        for _ in range(3):
            first, last = offset // BLOCK, (offset + count - 1) // BLOCK
            with self._lock:
                walking = first == self._walk_end
                self._readahead = min(2 * self._readahead, MAX_READAHEAD_BLOCKS) if walking else READAHEAD_BLOCKS
                self._walk_end = last + 1 + self._readahead
                readahead = self._readahead
            self._wait(self._fetch_blocks(first, last, readahead), what)
            cached = self._from_blocks(offset, count)
            if cached is not None:
                return cached
        # Pushed out as soon as it came (a tiny cache): read it directly.
        return self._run(self._fetch(offset, offset + count), what)

    # -- lifecycle ------------------------------------------------------------------------
    def reopen(self) -> None:
        self._reset()

    def close(self) -> None:
        with self._lock:
            self._tiles.clear()
            self._blocks.clear()
        fetcher, self._fetcher = self._fetcher, None
        if fetcher is not None and os.getpid() == self._pid and self._loop is not None and self._loop.is_running():
            try:
                asyncio.run_coroutine_threadsafe(fetcher.close(), self._loop).result(5)
            except Exception:  # closing must not fail; the connections go with the loop anyway
                pass
