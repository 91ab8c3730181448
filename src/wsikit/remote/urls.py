"""Recognising slide URLs and naming them safely.

A path is a URL when it starts with ``<protocol>://`` (``https://``, ``s3://``, ``gs://``,
``az://``, ``file://``, ...). Windows drive letters (``C:\\...``) never are. URLs are shown in
errors, logs and ``repr`` through :func:`display_url`, which drops a password in the
user-info part and the query string (pre-signed URLs carry their signature there).
"""
from __future__ import annotations

import os
import re
from urllib.parse import urlsplit, urlunsplit

_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]+)://")
#: protocols read with wsikit's own HTTP range client rather than fsspec's
HTTP_PROTOCOLS = ("http", "https")


def is_url(path: object) -> bool:
    """Whether ``path`` is a URL (``protocol://...``) rather than a local path."""
    if isinstance(path, os.PathLike):
        return False
    return isinstance(path, str) and _URL.match(path) is not None


def protocol_of(url: str) -> str:
    """The protocol of a URL, lower case (``"s3"`` for ``s3://bucket/key``)."""
    match = _URL.match(url)
    if match is None:
        raise ValueError(f"not a URL: {display_url(url)!r}")
    return match.group(1).lower()


def display_url(url: str) -> str:
    """The URL as shown in errors, logs and reprs: no password, no query string."""
    if not is_url(url):
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return url.split("?", 1)[0]
    netloc = parts.netloc
    if "@" in netloc:
        user, host = netloc.rsplit("@", 1)
        netloc = f"{user.split(':', 1)[0]}:***@{host}" if ":" in user else f"{user}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, "..." if parts.query else "", ""))


def url_name(url: str) -> str:
    """The last part of a URL's path (``slide.svs`` of ``https://host/a/slide.svs?sig=...``,
    ``series`` of ``s3://bucket/series/``): what output folders are named after."""
    path = urlsplit(url).path if is_url(url) else url
    parts = [part for part in path.split("/") if part]
    if parts:
        return parts[-1]
    return urlsplit(url).netloc or "slide"


def local_path_of(url: str) -> str | None:
    """The local path of a ``file://`` URL, else None."""
    if protocol_of(url) != "file":
        return None
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        return None
    from urllib.parse import unquote

    return unquote(parts.path)
