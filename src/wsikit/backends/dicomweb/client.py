"""HTTP for DICOMweb: GET requests with retries, backoff and timeouts, answers checked.

Requests go through one urllib3 connection pool per slide (thread-safe, keep-alive; the
client of ``requests``, used here directly: the reads run on wsikit's own threads, and the
pool needs no other layer). Every request:

- is bounded in time: ``stall`` seconds without a byte ends an attempt, and the attempts of
  one request, their backoff included, end after ``timeout`` seconds in all;
- is tried again, after 0.1 s, 0.2 s, 0.4 s ... (``retries`` times at most), when the
  connection fails, resets or stalls, when the server answers 429 or 5xx, and when the
  answer is cut short or is not what was asked for (``check`` raises :class:`BadAnswer`);
- fails with :class:`DICOMwebError`, which names the URL and the HTTP status, at once for
  other 4xx answers (a series that does not exist, missing or refused credentials).

The request headers (authentication) are sent with every request and never appear in an
error: text from the server or the HTTP library is scrubbed of their values before it is
put in a message.
"""
from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from ...remote.source import RemoteReadError
from .multipart import BadAnswer, media_type

_T = TypeVar("_T")
# Answers worth another try: the server is busy or failed for a moment.
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
_CHUNK = 1 << 20
# Answers watched as they arrive are read in smaller pieces, so that their parts come sooner.
_STREAM_CHUNK = 256 * 1024
_BACKOFF_CAP = 4.0


class DICOMwebError(RemoteReadError):
    """A DICOMweb request failed: ``path`` is the URL asked, ``status`` the HTTP status (None
    when no answer came). A :class:`~wsikit.remote.RemoteReadError`, as for remote files."""

    def __init__(self, url: str | None, reason: str, status: int | None = None) -> None:
        super().__init__(url, reason)
        self.status = status

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.path, self.reason, self.status))


class DICOMwebNotFoundError(DICOMwebError, FileNotFoundError):
    """The server has no such study, series, instance or frame (HTTP 404, or an empty search):
    also a FileNotFoundError, as a missing file or remote file is."""


@dataclass(frozen=True)
class Answer:
    """An HTTP answer read in full."""

    url: str
    status: int
    headers: Mapping[str, str]
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


class Progress(Protocol):
    """Sees an answer's body while it arrives."""

    def start(self, headers: Mapping[str, str]) -> None:
        """A new answer (a first attempt, or a retry) begins, with these headers."""

    def feed(self, chunk: bytes) -> None:
        """The next bytes of its body; BadAnswer refuses the answer."""


class _Retry(Exception):
    """An attempt failed in a way another attempt may not."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.status = status


class HTTPClient:
    """GET requests to one server, with the slide's headers, retries and time limits."""

    def __init__(self, headers: Mapping[str, str], *, timeout: float, stall: float, retries: int,
                 connections: int, backoff: float = 0.1) -> None:
        self._headers = {str(k): str(v) for k, v in headers.items()}
        self._secrets = [v for v in self._headers.values() if len(v) >= 4]
        self.timeout, self.stall, self.retries, self.backoff = timeout, stall, retries, backoff
        self.connections = connections
        self._pool = self._new_pool()
        self.requests = 0  # requests sent (attempts included), for measurements

    def _new_pool(self) -> Any:
        import urllib3

        return urllib3.PoolManager(num_pools=4, maxsize=self.connections, block=False, retries=False,
                                   timeout=urllib3.Timeout(connect=self.stall, read=self.stall))

    def renew(self) -> None:
        """A new connection pool (in a forked child: the parent's sockets are not ours)."""
        self._pool = self._new_pool()

    def close(self) -> None:
        try:
            self._pool.clear()
        except Exception:  # closing must not fail
            pass

    def scrub(self, text: str) -> str:
        """``text`` with every header value (a token, a password) replaced by ``***``."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    # -- requests --------------------------------------------------------------------------
    def get(self, url: str, accept: str, check: Callable[[Answer], _T], what: str, *,
            shown_url: str | None = None, progress: Progress | None = None) -> _T:
        """GET ``url`` and return ``check(answer)``, retried as the module docstring says.

        ``what`` names the request in errors ("the series metadata", "32 frames from frame
        1"); errors name ``shown_url`` (a shorter form of a long URL), else ``url``.
        ``progress`` sees the body of each 200 answer as it arrives (and may refuse it with
        BadAnswer); ``check`` still judges the whole answer.
        """
        shown = shown_url or url
        deadline = time.monotonic() + self.timeout
        last: _Retry | None = None
        attempts = 0
        for attempt in range(self.retries + 1):
            if attempt:
                pause = min(_BACKOFF_CAP, self.backoff * 2 ** (attempt - 1)) * (0.75 + 0.5 * random.random())
                if time.monotonic() + pause >= deadline:
                    break
                time.sleep(pause)
            attempts += 1
            try:
                answer = self._once(url, accept, deadline, progress)
                if answer.status in RETRY_STATUSES:
                    raise _Retry(f"HTTP {answer.status}{self._detail(answer)}", answer.status)
                if answer.status in (404, 410):
                    raise DICOMwebNotFoundError(shown, self._refusal(answer, what), answer.status)
                if answer.status >= 400:
                    raise DICOMwebError(shown, self._refusal(answer, what), answer.status)
                if answer.status != 200:
                    raise _Retry(f"unexpected HTTP {answer.status} (expected 200)", answer.status)
                try:
                    return check(answer)
                except BadAnswer as exc:
                    raise _Retry(f"wrong answer: {exc}", answer.status) from None
            except _Retry as exc:
                last = exc
            if time.monotonic() >= deadline:
                break
        reason = last if last is not None else "no attempt fitted in the time allowed"
        raise DICOMwebError(shown, self.scrub(f"{what} failed after {attempts} attempt(s) within {self.timeout:g} s: "
                                            f"{reason}"), last.status if last is not None else None)

    def get_json(self, url: str, what: str) -> Any:
        """A DICOM JSON answer (QIDO-RS, WADO-RS metadata), parsed."""
        def check(answer: Answer) -> Any:
            kind, _ = media_type(answer.content_type)
            if answer.body.strip() == b"" and kind in ("", "application/dicom+json", "application/json"):
                return []  # some servers answer an empty search with no body (204-like)
            if kind not in ("application/dicom+json", "application/json"):
                raise BadAnswer(f"expected application/dicom+json, got {kind or 'no Content-Type'}")
            try:
                return json.loads(answer.body)
            except ValueError as exc:
                raise BadAnswer(f"the JSON is cut short or malformed ({exc})") from None

        return self.get(url, "application/dicom+json", check, what)

    def _once(self, url: str, accept: str, deadline: float, progress: Progress | None = None) -> Answer:
        import urllib3

        headers = dict(self._headers)
        headers["Accept"] = accept
        self.requests += 1
        left = max(0.001, min(self.stall, deadline - time.monotonic()))
        try:
            response = self._pool.request("GET", url, headers=headers, preload_content=False, redirect=True,
                                          timeout=urllib3.Timeout(connect=left, read=left))
        except urllib3.exceptions.HTTPError as exc:
            raise _Retry(f"no answer ({_describe(exc)})") from None
        headers_in = {k.lower(): v for k, v in response.headers.items()}
        if response.status != 200:
            progress = None
        complete = False
        try:
            if progress is not None:
                progress.start(headers_in)
            chunks = []
            while True:
                if time.monotonic() > deadline:
                    raise _Retry(f"the answer did not arrive within {self.timeout:g} s", response.status)
                chunk = response.read(_STREAM_CHUNK if progress is not None else _CHUNK)
                if not chunk:
                    break
                chunks.append(chunk)
                if progress is not None:
                    progress.feed(chunk)
            body = b"".join(chunks)
            complete = True
        except urllib3.exceptions.HTTPError as exc:
            raise _Retry(f"the answer was cut short ({_describe(exc)})", response.status) from None
        except BadAnswer as exc:
            raise _Retry(f"wrong answer: {exc}", response.status) from None
        finally:
            if not complete:
                response.close()  # a body left unread: the connection cannot serve another request
            response.release_conn()
        expected = headers_in.get("content-length")
        if expected is not None and expected.isdigit() and int(expected) != len(body):
            raise _Retry(f"the answer was cut short: {len(body)} of {expected} bytes", response.status)
        return Answer(url, response.status, headers_in, body)

    def _detail(self, answer: Answer) -> str:
        """What a JSON error answer says (Orthanc and others explain refusals), shortened."""
        kind, _ = media_type(answer.content_type)
        if not kind.endswith("json") or not answer.body:
            return ""
        try:
            data = json.loads(answer.body)
        except ValueError:
            return ""
        if not isinstance(data, dict):
            return ""
        text = data.get("Details") or data.get("Message") or data.get("message") or data.get("error")
        return f" ({self.scrub(str(text))[:200]})" if text else ""

    def _refusal(self, answer: Answer, what: str) -> str:
        status = answer.status
        if status == 404:
            why = "not found on the server"
        elif status in (401, 403):
            why = "refused: the credentials are missing or not accepted (pass headers=... or storage_options=" \
                  "{'headers': ...})"
        else:
            why = "refused"
        return f"{what}: {why} (HTTP {status}){self._detail(answer)}"


def _describe(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    inner = reason if isinstance(reason, BaseException) else exc
    return f"{type(inner).__name__}: {inner}"


__all__ = ["RETRY_STATUSES", "Answer", "DICOMwebError", "DICOMwebNotFoundError", "HTTPClient", "Progress"]
