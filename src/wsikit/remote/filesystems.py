"""The filesystem behind a URL: wsikit's HTTP client for http(s), fsspec for the others.

A protocol whose fsspec implementation is not installed is an ImportError naming the
wsikit extra that brings it (``pip install 'wsikit[s3]'`` for s3://, ``[gcs]`` for gs://,
``[azure]`` for az:// and abfs://).
"""
from __future__ import annotations

from typing import Any

from .fetchers import FsspecRanges, HttpRanges, RangeFetcher
from .urls import HTTP_PROTOCOLS, display_url, protocol_of

#: protocol -> the wsikit extra that installs its filesystem
EXTRAS = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs", "az": "azure", "abfs": "azure", "abfss": "azure",
          "adl": "azure"}


def filesystem(url: str, options: dict[str, Any]) -> tuple[Any, str]:
    """(fsspec filesystem, path within it) for a non-HTTP URL, made with ``options``."""
    import fsspec  # type: ignore[import-untyped]

    protocol = protocol_of(url)
    try:
        cls = fsspec.get_filesystem_class(protocol)
    except ImportError as exc:
        extra = EXTRAS.get(protocol)
        hint = f"pip install 'wsikit[{extra}]'" if extra else "install the fsspec implementation of this protocol"
        raise ImportError(f"reading {protocol}:// URLs needs a package that is not installed ({hint}): {exc}") from None
    except ValueError:
        raise ValueError(f"{display_url(url)}: fsspec knows no protocol {protocol!r}") from None
    fs = cls(**options)
    return fs, cls._strip_protocol(url)


def range_fetcher(url: str, options: dict[str, Any]) -> RangeFetcher:
    """The range fetcher of one remote file."""
    if protocol_of(url) in HTTP_PROTOCOLS:
        return HttpRanges(url, options)
    fs, path = filesystem(url, options)
    return FsspecRanges(fs, path)


def list_prefix(url: str, options: dict[str, Any]) -> list[str] | None:
    """The URLs of the files directly under a folder / prefix URL, sorted; None when ``url``
    is not a folder (or the protocol has no listing, as plain HTTP)."""
    if protocol_of(url) in HTTP_PROTOCOLS:
        return None
    fs, path = filesystem(url, options)
    try:
        if not fs.isdir(path):
            return None
        entries = fs.ls(path, detail=True)
    except FileNotFoundError:
        return None
    protocol = protocol_of(url)
    files = sorted(entry["name"] for entry in entries if entry.get("type") == "file")
    return [fs.unstrip_protocol(name) if hasattr(fs, "unstrip_protocol") else f"{protocol}://{name}" for name in files]
