"""Frames of a DICOMweb series fetched in batches, ahead of use, their bytes kept in a bounded cache.

:class:`FrameStore` answers "the bytes of frame n of instance i" for the decoders. Frames
are asked for in batches, one request per batch (``.../instances/I/frames/3,4,5,...``),
in the stored transfer syntax (``transfer-syntax=*``: the server sends the bytes it holds,
never transcodes them). Several batches are in flight at once, on a small pool of request
threads, so that the network's latency is paid once per window rather than once per frame;
a batch's frames reach the decoders one by one as their parts arrive (:class:`_EarlyFrames`).

:class:`ReadAhead` decides what to fetch for one level: the frames of a tiling plan in the
order its tiles need them (:meth:`ReadAhead.follow`, a full window from the first tile);
the frames readers announce (a stream's look-ahead, a large region); otherwise, as reads
mostly go on in row-major order, the frames that follow the one asked for, a window that
starts small (an isolated read fetches little more than it needs) and grows while reads
go on in order, up to a bound in bytes.

Every answer is checked before its bytes are decoded: the number of parts, each part's
type, transfer syntax and Content-Location, the size of uncompressed frames, and that most
frames start as their syntax says (a few that do not are frames stored broken: they fail
alone when decoded). A wrong answer is retried by the client, then fails as a
:class:`~.client.DICOMwebError` naming the URL and status; the frames of a failed batch
are not kept, so a later read asks again.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from ...codestreams import J2K_START, JP2_SIGNATURE
from ..dicom.codecs import HTJ2K, JPEG_2000, JPEG_LOSSLESS, JPEG_LOSSY, JPEG_LS, JPEG_XL, RLE
from ..dicom.metadata import syntax_name
from .client import Answer, DICOMwebError, HTTPClient
from .multipart import BadAnswer, MultipartReader, Part, media_type, split_multipart

FRAMES_ACCEPT = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
# Before any frame has arrived, frames are taken to be this large (a 256-pixel JPEG).
_GUESSED_FRAME_BYTES = 24 * 1024
# Read-ahead: the first window, the most frames ever requested ahead, and one request's most.
_FIRST_WINDOW = 32
_MAX_WINDOW = 4096
_MAX_BATCH = 2048
# Characters of frame numbers in one request's URL at most (``3,4,5,...``): request lines past
# 8 KiB are refused by common servers (Orthanc answers 400 "Malformed message" near 16 KiB).
_MAX_FRAME_LIST = 7000
# Batches are not split below this many frames to keep every request thread busy.
_SMALLEST_SPLIT = 128
# Seconds after a reader announced cells during which reads are not guessed at.
_ANNOUNCED_FOR = 2.0
_NOT_FRAME_TYPES = ("text/", "application/json", "application/dicom+json", "application/dicom+xml")


@dataclass
class RemoteInstance:
    """What fetching an instance's frames needs to know."""

    url: str
    transfer_syntax: str | None  # as stored; None until known (then the first answer says)
    native_frame_bytes: int | None = None  # the exact size of an uncompressed frame, when uncompressed


def looks_like(syntax: str, data: bytes) -> bool:
    """Whether ``data`` starts as a frame of transfer syntax ``syntax`` does (a cheap check
    that an answer holds what it says; uncompressed frames are checked by their size)."""
    if syntax in JPEG_LOSSY or syntax in JPEG_LOSSLESS or syntax in JPEG_LS:
        return data.startswith(b"\xff\xd8")
    if syntax in JPEG_2000 or syntax in HTJ2K:
        return data.startswith((J2K_START, JP2_SIGNATURE))
    if syntax in JPEG_XL:
        return data.startswith((b"\xff\x0a", b"\x00\x00\x00\x0cJXL "))
    if syntax == RLE:
        return len(data) >= 64 and 1 <= int.from_bytes(data[:4], "little") <= 15
    return True


class FrameStore:
    """Frame bytes by (instance, 1-based frame number): cached, fetched in batches, several at once."""

    def __init__(self, client: HTTPClient, *, cache_bytes: int, request_bytes: int, requests: int) -> None:
        self.client = client
        self.instances: list[RemoteInstance] = []
        self.cache_bytes = max(0, cache_bytes)
        self.request_bytes = request_bytes
        self.requests = max(1, requests)
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple[int, int], bytes] = OrderedDict()
        self._cached_bytes = 0
        self._pending: dict[tuple[int, int], Future[bytes]] = {}
        self._executor = self._new_executor()
        self._seen_frames = 0
        self._seen_bytes = 0
        self.batches = 0  # requests for frames made (for measurements and tests)

    def _new_executor(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(self.requests, thread_name_prefix="wsikit-dicomweb")

    def add_instance(self, instance: RemoteInstance) -> int:
        self.instances.append(instance)
        return len(self.instances) - 1

    # -- sizes -----------------------------------------------------------------------------
    @property
    def frame_bytes(self) -> int:
        """The mean size of the frames fetched so far (a guess before the first)."""
        with self._lock:
            return self._seen_bytes // self._seen_frames if self._seen_frames else _GUESSED_FRAME_BYTES

    def batch_frames(self) -> int:
        """Frames per request: ``request_bytes`` worth."""
        return max(1, min(_MAX_BATCH, self.request_bytes // max(1, self.frame_bytes)))

    def max_window(self) -> int:
        """Frames fetched ahead at most: what the cache can hold twice over, and enough batches
        to keep every request thread busy."""
        per_frame = max(1, self.frame_bytes)
        by_cache = self.cache_bytes // 2 // per_frame
        return max(1, min(_MAX_WINDOW, by_cache, self.requests * self.batch_frames()))

    # -- reading ---------------------------------------------------------------------------
    def frame(self, instance: int, number: int) -> bytes:
        """The bytes of frame ``number`` (1-based) of ``instance``, fetched if need be."""
        key = (instance, number)
        with self._lock:
            data = self._cache.get(key)
            if data is not None:
                self._cache.move_to_end(key)
                return data
            future = self._pending.get(key)
            if future is None:
                self._submit_locked(instance, [number])
                future = self._pending[key]
        try:
            return future.result()
        except CancelledError:
            raise DICOMwebError(self.instances[instance].url, "the slide was closed while its frames were being "
                                                              "fetched") from None

    def prefetch(self, frames: Sequence[tuple[int, int]], *, ramp: bool = False) -> None:
        """Ask for ``frames`` ((instance, number) pairs, in the order they will be needed) in
        batches, leaving out those cached or already asked for. With ``ramp``, when the first
        frame is not at hand (a read waits for it), the first batch is small, so that it
        arrives, and decoding starts, before the large batches behind it are served.

        A batch is at most ``request_bytes`` of frames (estimated), and its URL at most
        :data:`_MAX_FRAME_LIST` characters of frame numbers (servers refuse longer URLs); the
        frames of one call are split into batches of even size, at least one per request
        thread, so that they are all in flight at once and none lags behind the others.
        """
        batch = self.batch_frames()
        with self._lock:
            wanted = [key for key in frames if key not in self._cache and key not in self._pending]
            if not wanted:
                return
            if ramp and wanted[0] == frames[0] and len(wanted) > _FIRST_WINDOW:
                first = [n for _, n in wanted[:_FIRST_WINDOW] if _ == wanted[0][0]]
                self._submit_locked(wanted[0][0], first)
                wanted = wanted[len(first):]
            runs: list[tuple[int, list[int]]] = []
            for instance, number in wanted:
                if not runs or runs[-1][0] != instance:
                    runs.append((instance, []))
                runs[-1][1].append(number)
            for instance, numbers in runs:
                count = len(numbers)
                chars = sum(len(str(n)) + 1 for n in numbers)
                needed = max(-(-count // batch), -(-chars // _MAX_FRAME_LIST))  # the fewest batches allowed
                rounds = -(-needed // self.requests)  # every request thread busy in each round
                parts = min(rounds * self.requests, max(needed, count // _SMALLEST_SPLIT))
                size = -(-count // parts)
                for start in range(0, count, size):
                    self._submit_locked(instance, numbers[start : start + size])

    def _submit_locked(self, instance: int, numbers: list[int]) -> None:
        futures: dict[int, Future[bytes]] = {}
        for number in numbers:
            futures[number] = self._pending[(instance, number)] = Future()
        self._executor.submit(self._fetch, instance, numbers, futures)
        self.batches += 1

    def _fetch(self, instance: int, numbers: list[int], futures: dict[int, Future[bytes]]) -> None:
        """Run on a request thread: each frame handed to its readers as soon as its part is in."""
        def deliver(number: int, data: bytes) -> None:
            future = futures[number]
            if future.done():
                return  # handed over already (a retry sends it again)
            with self._lock:  # kept before no longer pending, so that no read asks for it twice
                self._keep_locked((instance, number), data)
                self._pending.pop((instance, number), None)
            future.set_result(data)

        try:
            frames = self.fetch_now(instance, numbers, deliver)
        except BaseException as exc:
            with self._lock:  # the frames not handed over are not kept: a later read asks again
                for number in numbers:
                    if self._pending.get((instance, number)) is futures[number]:
                        del self._pending[(instance, number)]
            for future in futures.values():
                if not future.done():
                    future.set_exception(exc)
            return
        for number in numbers:
            deliver(number, frames[number])

    def fetch_now(self, instance: int, numbers: list[int],
                  deliver: Callable[[int, bytes], None] | None = None) -> dict[int, bytes]:
        """Fetch frames ``numbers`` of ``instance`` in one request, on this thread, checked.
        ``deliver(number, bytes)`` is given frames early, as their parts arrive, where each
        part shows which frame it is (see :class:`_EarlyFrames`)."""
        target = self.instances[instance]
        url = f"{target.url}/frames/{','.join(str(n) for n in numbers)}"
        what = f"frame {numbers[0]}" if len(numbers) == 1 else f"{len(numbers)} frames from frame {numbers[0]}"

        early = _EarlyFrames(target, numbers, deliver) if deliver is not None and len(numbers) > 1 else None

        def check(answer: Answer) -> dict[int, bytes]:
            parsed = early.parts if early is not None and early.reader is not None and early.reader.closed else None
            return self._check_frames(target, numbers, answer, parsed)

        shown = f"{target.url}/frames/{numbers[0]}" + (f",...({len(numbers)} frames)" if len(numbers) > 1 else "")
        frames = self.client.get(url, FRAMES_ACCEPT, check, what, shown_url=shown, progress=early)
        with self._lock:
            self._seen_frames += len(frames)
            self._seen_bytes += sum(len(v) for v in frames.values())
        return frames

    @staticmethod
    def _check_frames(target: RemoteInstance, numbers: list[int], answer: Answer,
                      parts: list[Part] | None = None) -> dict[int, bytes]:
        """The frames of a whole answer, every check made (``parts``: the answer's parts, when
        they were parsed while it arrived)."""
        if parts is None:
            parts = split_multipart(answer.content_type, answer.body)
        if len(parts) != len(numbers):
            raise BadAnswer(f"{len(parts)} parts for the {len(numbers)} frames asked for")
        frames: dict[int, bytes] = {}
        syntax = target.transfer_syntax
        for number, part in zip(numbers, parts):
            declared = _check_part(target, syntax, number, part)
            syntax = syntax or declared  # the first answer says how the frames are stored
            frames[number] = part.data
        if syntax is not None:
            # Frames that do not start as the syntax says: most of them means the answer is not
            # what it claims (never decoded); a few are frames stored broken, whose decoding
            # fails alone, naming the frame.
            odd = [n for n, data in frames.items() if not looks_like(syntax, data)]
            if 2 * len(odd) > len(frames):
                raise BadAnswer(f"frame {odd[0]} does not hold a {syntax_name(syntax)} codestream (it starts with "
                                f"{frames[odd[0]][:8].hex()}), nor do {len(odd) - 1} other(s) of the "
                                f"{len(frames)}")
        target.transfer_syntax = syntax  # learnt only from an answer found right throughout
        return frames

    # -- the cache -------------------------------------------------------------------------
    def _keep_locked(self, key: tuple[int, int], data: bytes) -> None:
        if len(data) > self.cache_bytes:
            return
        old = self._cache.pop(key, None)
        if old is not None:
            self._cached_bytes -= len(old)
        self._cache[key] = data
        self._cached_bytes += len(data)
        while self._cached_bytes > self.cache_bytes and self._cache:
            _, dropped = self._cache.popitem(last=False)
            self._cached_bytes -= len(dropped)

    @property
    def cached_bytes(self) -> int:
        return self._cached_bytes

    # -- lifecycle -------------------------------------------------------------------------
    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            self._cache.clear()
            self._cached_bytes = 0
            waiting = list(self._pending.values())
            self._pending.clear()
        for future in waiting:  # readers still waiting are told, not left hanging
            if not future.done():
                future.cancel()
        self.client.close()

    def after_fork(self) -> None:
        """In a forked child: new threads, locks and connections; the parent's requests are not ours."""
        self._lock = threading.Lock()
        self._pending = {}
        self._executor = self._new_executor()
        self.client.renew()


class _EarlyFrames:
    """Hands frames over while their answer arrives: a part is handed over when it says which
    frame it is (Content-Location), in the transfer syntax already known for the instance,
    and passes every check of a part (its type, its size, its first bytes). The whole answer
    is checked when complete all the same; frames it lacks are asked for again. An answer
    whose parts do not say which frame they are is handed over only once complete."""

    def __init__(self, target: RemoteInstance, numbers: list[int], deliver: Callable[[int, bytes], None]) -> None:
        self.target, self.numbers, self.deliver = target, numbers, deliver
        self.reader: MultipartReader | None = None
        self.trusted = False
        self.parts: list[Part] = []  # every part of the answer so far

    def start(self, headers: Mapping[str, str]) -> None:
        self.reader = MultipartReader(headers.get("content-type", ""))
        self.trusted = self.target.transfer_syntax is not None
        self.parts = []

    def feed(self, chunk: bytes) -> None:
        reader = self.reader
        if reader is None:
            return
        first = reader.count
        parts = reader.feed(chunk)
        self.parts += parts
        if not self.trusted:
            return
        syntax = self.target.transfer_syntax
        if syntax is None:  # parts are handed over early only when the syntax is known
            return
        for k, part in enumerate(parts, start=first):
            if k >= len(self.numbers):
                raise BadAnswer(f"more parts than the {len(self.numbers)} frames asked for")
            number = self.numbers[k]
            location = part.headers.get("content-location")
            if not location:
                self.trusted = False  # which frame a part is rests on order alone: wait for the whole answer
                return
            _check_part(self.target, syntax, number, part)
            if looks_like(syntax, part.data):
                self.deliver(number, part.data)


def _check_part(target: RemoteInstance, syntax: str | None, number: int, part: Part) -> str | None:
    """The transfer syntax a part declares (None: it says none); BadAnswer for a part that
    is not the frame asked for, or not image data, or not of the instance's syntax or size."""
    kind, params = media_type(part.content_type)
    if kind.startswith(_NOT_FRAME_TYPES):
        raise BadAnswer(f"frame {number} came as {kind}, not as image data")
    declared = params.get("transfer-syntax")
    if declared == "*":
        declared = None
    if declared is not None and syntax is not None and declared != syntax:
        raise BadAnswer(f"frame {number} came in transfer syntax {declared}, the instance's frames are stored in "
                        f"{syntax}")
    location = part.headers.get("content-location")
    if location and location.rstrip("/").rsplit("/", 2)[-2:] != ["frames", str(number)]:
        raise BadAnswer(f"the part for frame {number} is frame {location.rstrip('/').rsplit('/', 1)[-1]!r}")
    if not part.data:
        raise BadAnswer(f"frame {number} is empty")
    expected = target.native_frame_bytes
    if expected is not None and len(part.data) not in (expected, expected + 1):
        raise BadAnswer(f"uncompressed frame {number} has {len(part.data)} bytes, not {expected}")
    return declared


class ReadAhead:
    """Fetches the frames of one level ahead of reads (see the module docstring).

    The order ahead is the level's row-major order, or the order a tiling plan will read
    cells in (:meth:`follow`): then the window is full from the first read, as the reads
    to come are known. Readers that know their next cells say so (:meth:`announce`).
    """

    def __init__(self, store: FrameStore, cells: np.ndarray, where: np.ndarray) -> None:
        self.store = store
        self.table = np.asarray(cells).ravel()  # row-major grid cell -> level frame index (-1: none)
        self.where = np.asarray(where)  # level frame index -> (store instance, 1-based frame number)
        self._lock = threading.Lock()
        self._order = self.table  # frame index (-1: none) at each position of the reading order
        self._position: np.ndarray | None = None  # cell -> position in the order (None: row-major)
        self._planned = False
        self._ahead_to = 0  # positions up to here have been asked for
        self._run = 0  # reads in order since the last jump
        self._announced_at = -1e9  # when a reader last said which cells come next

    def announce(self, cells: np.ndarray) -> None:
        """A reader says which cells (row-major numbers, in order) it reads next (a stream's
        look-ahead, a large region): their frames are fetched at once, in few requests, and
        reads are not guessed at meanwhile. Cells of a plan being followed move its window."""
        cells = np.asarray(cells, dtype=np.int64).ravel()
        if not len(cells):
            return
        with self._lock:
            self._announced_at = time.monotonic()
            followed = self._position is not None and self._position[cells[0]] >= 0
        if followed:
            self.touch(int(cells[0]))
            return
        chosen = self.table[cells]
        frames = [(int(a), int(b)) for a, b in self.where[chosen[chosen >= 0]].tolist()]
        if frames:
            self.store.prefetch(frames)

    def follow(self, cells: np.ndarray) -> None:
        """Reads will take the cells ``cells`` (row-major cell numbers) in this order."""
        cells = np.asarray(cells, dtype=np.int64)
        position = np.full(len(self.table), -1, dtype=np.int64)
        position[cells[::-1]] = np.arange(len(cells) - 1, -1, -1)  # a cell read twice: its first read
        with self._lock:
            self._order, self._position, self._planned = self.table[cells], position, True
            self._ahead_to, self._run = 0, 0

    def touch(self, cell: int) -> None:
        """Cell ``cell`` (row-major) is about to be read: fetch it, and what follows it, ahead."""
        limit = self.store.max_window()
        ramp = False
        with self._lock:
            at = cell if self._position is None else int(self._position[cell])
            if at < 0:
                return  # not a cell of the plan followed: fetched when read
            if not self._planned and time.monotonic() - self._announced_at < _ANNOUNCED_FOR:
                return  # the reader announces what it reads: nothing to guess
            window = limit if self._planned else min(limit, max(_FIRST_WINDOW, 2 * self._run))
            if at >= self._ahead_to or at < self._ahead_to - 2 * limit:
                start, ramp = at, True  # a jump: start over from here
                self._run = 0
                if not self._planned:
                    window = min(limit, _FIRST_WINDOW)
            elif self._ahead_to - at > window // 2:
                self._run += 1
                return  # enough is on its way
            else:
                start = self._ahead_to
                self._run += 1
            end = min(len(self._order), at + window)
            if end <= start:
                return
            self._ahead_to = end
            chosen = self._order[start:end]
            frames = [(int(a), int(b)) for a, b in self.where[chosen[chosen >= 0]].tolist()]
            # Asked for before the lock is let go: a read of a cell just counted as ahead
            # must find its frame pending, not fetch it alone.
            if frames:
                self.store.prefetch(frames, ramp=ramp)


def plan_cells(boxes: np.ndarray, shape: tuple[int, int], tile_shape: tuple[int, int]) -> np.ndarray:
    """The row-major cell numbers of a grid that ``boxes`` ((n, 4): i, j, h, w) read, in order,
    each cell once (its first read)."""
    h, w = shape
    th, tw = tile_shape
    cols = -(-w // tw)
    i0, j0 = np.maximum(boxes[:, 0], 0), np.maximum(boxes[:, 1], 0)
    i1, j1 = np.minimum(boxes[:, 0] + boxes[:, 2], h), np.minimum(boxes[:, 1] + boxes[:, 3], w)
    inside = (i0 < i1) & (j0 < j1)
    ti0, tj0 = i0[inside] // th, j0[inside] // tw
    ti1, tj1 = (i1[inside] - 1) // th, (j1[inside] - 1) // tw
    if not len(ti0):
        return np.zeros(0, dtype=np.int64)
    span_i, span_j = int((ti1 - ti0).max()) + 1, int((tj1 - tj0).max()) + 1
    di = np.repeat(np.arange(span_i), span_j)
    dj = np.tile(np.arange(span_j), span_i)
    rows, columns = ti0[:, None] + di[None, :], tj0[:, None] + dj[None, :]
    valid = (rows <= ti1[:, None]) & (columns <= tj1[:, None])
    cells = (rows * cols + columns)[valid]
    _, first = np.unique(cells, return_index=True)
    return cells[np.sort(first)]


__all__ = ["FRAMES_ACCEPT", "FrameStore", "ReadAhead", "RemoteInstance", "looks_like", "plan_cells"]
