"""Splitting a ``multipart/related`` answer (RFC 2046) into its parts, checked.

WADO-RS returns frames as one multipart body, a part per frame. A body that is cut short,
lacks its closing delimiter, or whose part says a ``Content-Length`` that disagrees with
where the next delimiter is, is refused with :class:`BadAnswer`: a wrong body is never
handed on as frame bytes. The parser is written here (not :mod:`email`, which copies and
re-encodes binary bodies, and is slow on megabytes of frames) and uses each part's
``Content-Length`` when the server sends one, so that frame bytes are never searched.
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
    """The parts of a multipart body whose Content-Type header is ``content_type``."""
    kind, params = media_type(content_type)
    if not kind.startswith("multipart/"):
        raise BadAnswer(f"expected a multipart answer, got {kind or 'no Content-Type'} ({len(body)} bytes)")
    boundary = params.get("boundary", "")
    if not boundary:
        raise BadAnswer("the multipart answer names no boundary")
    delimiter = b"--" + boundary.encode("latin-1")
    pos = body.find(delimiter)
    if pos < 0 or (pos > 0 and body[pos - 2 : pos] != b"\r\n"):
        raise BadAnswer("the multipart answer has no opening delimiter")
    parts: list[Part] = []
    next_delimiter = b"\r\n" + delimiter
    while True:
        pos += len(delimiter)
        if body[pos : pos + 2] == b"--":
            return parts  # the closing delimiter
        line_end = body.find(b"\r\n", pos)
        if line_end < 0:
            raise BadAnswer(f"the multipart answer is cut short after {len(parts)} parts")
        header_end = body.find(b"\r\n\r\n", line_end)
        if header_end < 0:
            raise BadAnswer(f"the multipart answer is cut short in the headers of part {len(parts) + 1}")
        headers = _headers(body[line_end + 2 : header_end])
        start = header_end + 4
        length = headers.get("content-length")
        if length is not None:
            try:
                size = int(length)
            except ValueError:
                raise BadAnswer(f"part {len(parts) + 1} has an invalid Content-Length {length!r}") from None
            end = start + size
            if size < 0 or body[end : end + len(next_delimiter)] != next_delimiter:
                raise BadAnswer(f"part {len(parts) + 1} is cut short or malformed: its Content-Length of {size} "
                                f"bytes does not end at a delimiter")
        else:
            end = body.find(next_delimiter, start)
            if end < 0:
                raise BadAnswer(f"the multipart answer is cut short in part {len(parts) + 1} (no closing delimiter)")
        parts.append(Part(headers, body[start:end]))
        pos = end + 2


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


__all__ = ["BadAnswer", "Part", "media_type", "split_multipart"]
