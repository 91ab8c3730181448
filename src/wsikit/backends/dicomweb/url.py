"""DICOMweb series URLs: recognising them, taking them apart, and credentials kept out of them.

A series is named by ``http(s)://host[:port]/<service root>/studies/<study>/series/<series>``
(a trailing slash allowed), the address WADO-RS gives a series. The service root is any
path (``/dicom-web``, ``/dcm4chee-arc/aets/DCM4CHEE/rs``, ``/v1/projects/.../dicomWeb``).
A user name and password written into the URL (``https://user:secret@host/...``) are taken
out of it and sent as HTTP Basic authentication instead, so that the URL kept, shown in
errors and ``repr``, and pickled as the slide's path holds no secret.
"""
from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit, urlunsplit

_SERIES_PATH = re.compile(r"^(?P<root>.*?)/studies/(?P<study>[^/]+)/series/(?P<series>[^/]+)/?$")


@dataclass(frozen=True)
class SeriesURL:
    """A DICOMweb series address, without credentials."""

    root: str  # the service root, e.g. https://host/dicom-web (no trailing slash)
    study: str  # Study Instance UID
    series: str  # Series Instance UID

    @property
    def url(self) -> str:
        """The series' own address (WADO-RS)."""
        return f"{self.root}/studies/{quote(self.study, safe='.')}/series/{quote(self.series, safe='.')}"

    def instance_url(self, sop_instance_uid: str) -> str:
        return f"{self.url}/instances/{quote(sop_instance_uid, safe='.')}"


def _split(url: str) -> tuple[str, str, str, str, str] | None:
    if not isinstance(url, str):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        return None
    return parts.scheme, parts.netloc, parts.path, parts.query, parts.fragment


def is_dicomweb_url(path: object) -> bool:
    """Whether ``path`` is an http(s) URL of a DICOMweb series (``.../studies/S/series/R``). Never raises."""
    if not isinstance(path, str):
        return False
    split = _split(path)
    return split is not None and _SERIES_PATH.match(split[2]) is not None


def parse_series_url(url: str) -> tuple[SeriesURL, dict[str, str]]:
    """(the series address, HTTP headers carrying the URL's user-info as Basic authentication).

    Raises ValueError for anything but an http(s) URL of a series.
    """
    split = _split(url)
    match = None if split is None else _SERIES_PATH.match(split[2])
    if split is None or match is None:
        raise ValueError("a DICOMweb series URL has the form http(s)://host/<service root>/studies/<study UID>/series/"
                         "<series UID> (no query string)")
    scheme, netloc, _, _, _ = split
    headers: dict[str, str] = {}
    if "@" in netloc:
        userinfo, netloc = netloc.rsplit("@", 1)
        user, _, password = userinfo.partition(":")
        token = base64.b64encode(f"{unquote(user)}:{unquote(password)}".encode()).decode("ascii")
        headers["Authorization"] = f"Basic {token}"
    root = urlunsplit((scheme.lower(), netloc, match.group("root").rstrip("/"), "", ""))
    return SeriesURL(root, unquote(match.group("study")), unquote(match.group("series"))), headers


__all__ = ["SeriesURL", "is_dicomweb_url", "parse_series_url"]
