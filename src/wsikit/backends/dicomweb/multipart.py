"""Splitting a ``multipart/related`` answer (RFC 2046) into its parts, checked.

WADO-RS returns frames as one multipart body, a part per frame. A body that is cut short,
lacks its closing delimiter, or whose part says a ``Content-Length`` that disagrees with
where the next delimiter is, is refused with :class:`BadAnswer`: a wrong body is never
handed on as frame bytes. The parser is written here (not :mod:`email`, which copies and
re-encodes binary bodies, and is slow on megabytes of frames) and uses each part's
``Content-Length`` when the server sends one, so that frame bytes are never searched.
:class:`MultipartReader` takes the body in chunks as it arrives and gives each part as
soon as it is complete.
"""
from __future__ import annotations

from dataclasses import dataclass
from email.message import Message


class BadAnswer(Exception):
    """An answer that is not what was asked for (wrong type, cut short, malformed): worth a retry."""


@dataclass(frozen=True)
class Part:
    """One part of a multipart body: its headers (names in lower case) and its bytes."""

    headers: dict[str, str]
    data: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


def media_type(content_type: str) -> tuple[str, dict[str, str]]:
    """(``type/subtype`` in lower case, parameters) of a Content-Type value."""
    message = Message()
    message["content-type"] = content_type
    params = message.get_params() or []
    found: dict[str, str] = {}
    for key, value in params[1:]:
        found[str(key).lower()] = str(value)
    return message.get_content_type(), found


def split_multipart(content_type: str, body: bytes) -> list[Part]:
    """The parts of a whole multipart body whose Content-Type header is ``content_type``."""
    reader = MultipartReader(content_type)
    parts = reader.feed(body)
    reader.finish()
    return parts


class MultipartReader:
    """Parts of a multipart body that arrives in chunks: :meth:`feed` returns the parts each
    chunk completes, :meth:`finish` checks that the body ended with its closing delimiter."""

    def __init__(self, content_type: str) -> None:
        kind, params = media_type(content_type)
        if not kind.startswith("multipart/"):
            raise BadAnswer(f"expected a multipart answer, got {kind or 'no Content-Type'}")
        boundary = params.get("boundary", "")
        if not boundary:
            raise BadAnswer("the multipart answer names no boundary")
        self._delimiter = b"--" + boundary.encode("latin-1")
        self._next = b"\r\n" + self._delimiter  # a delimiter after a part's bytes
        self._buffer = bytearray()
        self._state = "preamble"  # then "delimiter" (the buffer starts with one), "body", "closed"
        self._headers: dict[str, str] = {}
        self._searched = 0  # bytes of a part's body already searched for the next delimiter
        self.count = 0  # parts returned so far

    @property
    def closed(self) -> bool:
        return self._state == "closed"

    def feed(self, chunk: bytes) -> list[Part]:
        """The parts that ``chunk`` completes (BadAnswer for a malformed body)."""
        buffer = self._buffer
        buffer += chunk
        parts: list[Part] = []
        pos = 0  # where the unread bytes start; the buffer is cut once, at the end
        try:
            while True:
                if self._state == "preamble":
                    found = buffer.find(self._delimiter, pos)
                    if found < 0:
                        return parts
                    if found > 0 and buffer[found - 2 : found] != b"\r\n":
                        raise BadAnswer("the multipart answer has no opening delimiter")
                    pos = found
                    self._state = "delimiter"
                if self._state == "delimiter":
                    size = len(self._delimiter)
                    if len(buffer) - pos < size + 2:
                        return parts
                    if buffer[pos + size : pos + size + 2] == b"--":
                        self._state = "closed"
                        pos = len(buffer)
                        return parts
                    header_end = buffer.find(b"\r\n\r\n", pos + size)
                    if header_end < 0:
                        if len(buffer) - pos > 64 * 1024:
                            raise BadAnswer(f"the headers of part {self.count + 1} do not end")
                        return parts
                    line_end = buffer.find(b"\r\n", pos + size)
                    self._headers = _headers(bytes(buffer[line_end + 2 : header_end]))
                    pos = header_end + 4
                    self._state, self._searched = "body", pos
                if self._state == "body":
                    length = self._headers.get("content-length")
                    if length is not None:
                        try:
                            size = int(length)
                        except ValueError:
                            raise BadAnswer(f"part {self.count + 1} has an invalid Content-Length {length!r}") from None
                        if size < 0:
                            raise BadAnswer(f"part {self.count + 1} has an invalid Content-Length {length!r}")
                        if len(buffer) - pos < size + len(self._next):
                            return parts
                        if buffer[pos + size : pos + size + len(self._next)] != self._next:
                            raise BadAnswer(f"part {self.count + 1} is cut short or malformed: its Content-Length "
                                            f"of {size} bytes does not end at a delimiter")
                        end = pos + size
                    else:
                        end = buffer.find(self._next, max(pos, self._searched))
                        if end < 0:
                            self._searched = max(pos, len(buffer) - len(self._next))
                            return parts
                    parts.append(Part(self._headers, bytes(buffer[pos:end])))
                    self.count += 1
                    pos = end + 2
                    self._state = "delimiter"
                if self._state == "closed":
                    return parts
        finally:
            if pos:
                del buffer[:pos]
                self._searched = max(0, self._searched - pos)

    def finish(self) -> None:
        """BadAnswer unless the body ended with its closing delimiter."""
        if self._state == "preamble":
            raise BadAnswer("the multipart answer has no opening delimiter")
        if self._state != "closed":
            where = "in the headers of" if self._state == "delimiter" else "in"
            raise BadAnswer(f"the multipart answer is cut short {where} part {self.count + 1} (no closing "
                            "delimiter)")


def _headers(block: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in block.split(b"\r\n"):
        name, sep, value = line.partition(b":")
        if not sep:
            if line.strip():
                raise BadAnswer(f"a part has a malformed header line {line[:60]!r}")
            continue
        headers[name.strip().decode("latin-1").lower()] = value.strip().decode("latin-1")
    return headers


__all__ = ["BadAnswer", "MultipartReader", "Part", "media_type", "split_multipart"]
