"""One attempt at fetching a byte range of a remote file, checked strictly.

:class:`HttpRanges` is wsikit's own HTTP range client on aiohttp, because fsspec's HTTP
filesystem returns whatever body comes back: it checks neither the status (a server that
ignores ``Range`` answers 200 with the whole file) nor ``Content-Range`` nor the length.
:class:`FsspecRanges` serves every other protocol (s3, gs, az, ...) through fsspec's async
``_cat_file``, the length of each answer checked here.

A failed attempt raises :class:`FetchProblem`, which says whether trying again may help
(5xx, 408, 429, resets, stalls, truncated or misshapen bodies) or not (401/403/404, a
server without range support); retries and the total timeout are the caller's
(:mod:`.source`). Nothing here puts a credential into a message.
"""
from __future__ import annotations

import asyncio
import atexit
import re
import weakref
from collections.abc import Mapping
from typing import Any, Protocol

_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.IGNORECASE)
# Options of http(s) URLs: request headers (authentication) and aiohttp.ClientSession arguments.
HTTP_OPTIONS = ("headers", "client_kwargs")


class FetchProblem(Exception):
    """An attempt that did not bring the bytes asked for. ``status``: the HTTP status, if any."""

    def __init__(self, message: str, *, retryable: bool, status: int | None = None, missing: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        #: the file is not there (404 / FileNotFoundError)
        self.missing = missing


class RangeFetcher(Protocol):
    """Fetches ``[start, end)`` of one file (clipped at its end); knows the file's size after one answer."""

    async def fetch(self, start: int, end: int, size: int | None, stall: float) -> tuple[bytes, int]:
        """(the bytes, the file's size), or FetchProblem."""

    async def close(self) -> None:
        """Release connections (on the event loop that made them)."""


def _expected_length(start: int, end: int, total: int) -> int:
    return max(0, min(end, total) - start)


_OPEN_CLIENTS: weakref.WeakSet[HttpRanges] = weakref.WeakSet()


@atexit.register
def _close_clients() -> None:
    """Close the connections of slides never closed, before the event loop's thread goes."""
    for client in list(_OPEN_CLIENTS):
        loop, session = client._loop, client._session
        if session is not None and loop is not None and loop.is_running() and not session.closed:
            try:
                asyncio.run_coroutine_threadsafe(session.close(), loop).result(2)
            except Exception:
                pass


class HttpRanges:
    """Byte ranges of one http(s) URL: one GET with a single ``Range`` per attempt."""

    def __init__(self, url: str, options: Mapping[str, Any]) -> None:
        unknown = sorted(set(options) - set(HTTP_OPTIONS))
        if unknown:
            raise TypeError(f"storage option(s) {', '.join(map(str, unknown))} are not taken for http(s) URLs; "
                            f"these are: {', '.join(HTTP_OPTIONS)} and wsikit's wsikit_* options")
        headers = options.get("headers") or {}
        if not isinstance(headers, Mapping):
            raise TypeError("storage option headers must be a dict of header name -> value")
        client_kwargs = options.get("client_kwargs") or {}
        if not isinstance(client_kwargs, Mapping):
            raise TypeError("storage option client_kwargs must be a dict")
        self.url = url
        self._headers = {str(k): str(v) for k, v in headers.items()}
        self._client_kwargs = dict(client_kwargs)
        self._session: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connections = 16

    def __repr__(self) -> str:  # never the headers: they may hold credentials
        return "HttpRanges(...)"

    async def _get_session(self) -> Any:
        import aiohttp

        loop = asyncio.get_running_loop()
        if self._session is None or self._loop is not loop or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._connections)
            self._session = aiohttp.ClientSession(connector=connector, **self._client_kwargs)
            self._loop = loop
            _OPEN_CLIENTS.add(self)
        return self._session

    async def fetch(self, start: int, end: int, size: int | None, stall: float) -> tuple[bytes, int]:
        import aiohttp

        session = await self._get_session()
        headers = dict(self._headers)
        headers["Range"] = f"bytes={start}-{end - 1}"
        headers["Accept-Encoding"] = "identity"  # a compressed body would not be the file's bytes
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=stall, sock_read=stall)
        try:
            async with session.get(self.url, headers=headers, timeout=timeout, allow_redirects=True) as response:
                status = response.status
                reason = response.reason or ""
                if status in (401, 403, 404, 410, 416):
                    _refuse_status(status, reason, start)
                content_type = response.headers.get("Content-Type", "")
                if content_type.lower().startswith(("text/html", "application/xhtml")):
                    # A proxy's or gateway's error page, whatever its status: never the file's bytes.
                    raise FetchProblem(f"an HTML page (HTTP {status}) came back instead of the file's bytes",
                                       retryable=True, status=status)
                if status != 206:
                    _refuse_status(status, reason, start)
                first, last, total = _parse_content_range(response.headers.get("Content-Range"), status)
                if size is not None and total != size:
                    raise FetchProblem(f"the file's size changed from {size} to {total} bytes (Content-Range)",
                                       retryable=False, status=status)
                expected = _expected_length(start, end, total)
                if first != start or last + 1 != start + expected:
                    raise FetchProblem(f"HTTP {status} answered bytes {first}-{last} to a request for bytes "
                                       f"{start}-{start + expected - 1} (Content-Range)", retryable=True, status=status)
                body = await response.read()
                if len(body) != expected:
                    raise FetchProblem(f"a truncated body: {len(body)} of {expected} bytes", retryable=True,
                                       status=status)
                return body, total
        except FetchProblem:
            raise
        except asyncio.TimeoutError:
            raise FetchProblem(f"no data for {stall:g} s (stalled)", retryable=True) from None
        except aiohttp.ClientPayloadError as exc:
            raise FetchProblem(f"a truncated body ({type(exc).__name__})", retryable=True) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise FetchProblem(f"connection failed ({type(exc).__name__}: {_short(exc)})", retryable=True) from None

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    def abandon(self) -> None:
        """Drop the connections of a parent process (after a fork) without touching them."""
        if self._session is not None:
            connector = self._session.connector
            self._session.detach()
            # Its sockets belong to the parent's event loop: marked closed here, so that
            # collecting it in the child neither touches them nor warns.
            if connector is not None:
                connector._closed = True
        self._session = None


def _short(exc: BaseException) -> str:
    # aiohttp's messages name the host and port, never headers; keep them short.
    return str(exc).splitlines()[0][:200] if str(exc) else ""


def _refuse_status(status: int, reason: str, start: int) -> None:
    words = f"HTTP {status} {reason}".strip()
    if status == 200:
        raise FetchProblem(f"{words}: the server sent the whole file, it does not serve byte ranges",
                           retryable=False, status=status)
    if status in (404, 410):
        raise FetchProblem(f"{words}: no such file", retryable=False, status=status, missing=True)
    if status in (401, 403):
        raise FetchProblem(f"{words}: access denied (check the credentials in storage_options)", retryable=False,
                           status=status)
    if status == 416:
        raise FetchProblem(f"{words}: byte {start} is past the end of the file", retryable=False, status=status)
    retryable = status in (408, 425, 429) or 500 <= status < 600
    raise FetchProblem(words, retryable=retryable, status=status)


def _parse_content_range(value: str | None, status: int) -> tuple[int, int, int]:
    match = _CONTENT_RANGE.match(value or "")
    if match is None or match.group(3) == "*":
        raise FetchProblem(f"HTTP {status} with a missing or malformed Content-Range ({value!r})", retryable=True,
                           status=status)
    first, last, total = int(match.group(1)), int(match.group(2)), int(match.group(3))
    if last < first or last >= total:
        raise FetchProblem(f"HTTP {status} with an impossible Content-Range ({value!r})", retryable=True, status=status)
    return first, last, total


async def _both(first: Any, second: Any, timeout: float) -> tuple[Any, Any]:
    """The results of two coroutines run at once; the first error, or TimeoutError, ends
    both (nothing left running, no error left unretrieved)."""
    tasks = [asyncio.ensure_future(first), asyncio.ensure_future(second)]
    try:
        _, pending = await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        for task in tasks:
            if not task.done():
                task.cancel()
            elif not task.cancelled():
                task.exception()  # retrieved: raised below, or dropped with its twin's
    for task in tasks:
        error = task.exception() if task.done() and not task.cancelled() else None
        if error is not None:
            raise error
    if pending:
        raise asyncio.TimeoutError
    return tasks[0].result(), tasks[1].result()


class FsspecRanges:
    """Byte ranges of one file of an fsspec filesystem (s3, gs, az, ...)."""

    def __init__(self, fs: Any, path: str) -> None:
        self.fs = fs
        self.path = path

    def __repr__(self) -> str:  # never the filesystem's options: they may hold credentials
        return "FsspecRanges(...)"

    async def _size(self) -> int:
        if getattr(self.fs, "async_impl", False):
            info = await self.fs._info(self.path)
        else:
            info = await asyncio.get_running_loop().run_in_executor(None, self.fs.info, self.path)
        if info.get("type") == "directory":
            raise FetchProblem("a folder or prefix, not a file", retryable=False, missing=True)
        return int(info["size"])

    async def _cat(self, start: int, end: int) -> bytes:
        if getattr(self.fs, "async_impl", False):
            data = await self.fs._cat_file(self.path, start=start, end=end)
        else:
            data = await asyncio.get_running_loop().run_in_executor(
                None, lambda: self.fs.cat_file(self.path, start=start, end=end))
        return bytes(data)

    async def fetch(self, start: int, end: int, size: int | None, stall: float) -> tuple[bytes, int]:
        try:
            if size is None:  # the size and the bytes asked for at once: one round trip
                total, data = await _both(self._size(), self._cat(start, end), stall)
            else:
                total = size
                data = await asyncio.wait_for(self._cat(start, end), stall)
        except FetchProblem:
            raise
        except FileNotFoundError:
            raise FetchProblem("no such file", retryable=False, missing=True) from None
        except PermissionError:
            raise FetchProblem("access denied (check the credentials in storage_options)", retryable=False) from None
        except asyncio.TimeoutError:
            raise FetchProblem(f"no answer within {stall:g} s (stalled)", retryable=True) from None
        except Exception as exc:  # the filesystems' own errors (botocore, aiohttp, ...)
            raise FetchProblem(f"{type(exc).__name__}: {_short(exc)}", retryable=True) from None
        expected = _expected_length(start, end, total)
        if len(data) != expected:
            raise FetchProblem(f"a body of {len(data)} bytes for a range of {expected}", retryable=True)
        return data, total

    async def close(self) -> None:
        return None
