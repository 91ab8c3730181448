"""Remote slides: opening TIFF-family and DICOM slides by URL (fsspec URLs and http(s)).

``open_slide("https://host/slide.svs")``, ``open_slide("s3://bucket/slide.svs",
storage_options={...})``: see :mod:`.opening` for how a URL is opened, :mod:`.source` for
how its bytes are fetched (coalesced, prefetched, cached, retried, checked) and
:mod:`.settings` for the options. Credentials go in ``storage_options``; a pickled slide
carries them (a worker that unpickles it must reopen the URL), never its ``repr`` or errors.
"""
from __future__ import annotations

from .settings import RemoteSettings, default_storage_options
from .source import ByteSource, LocalSource, RemoteReadError, RemoteSource
from .urls import display_url, is_url, url_name

__all__ = ["ByteSource", "LocalSource", "RemoteReadError", "RemoteSettings", "RemoteSource",
           "default_storage_options", "display_url", "is_url", "url_name"]
