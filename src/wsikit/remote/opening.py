"""Opening a slide by URL: what ``open_slide`` does when it is given one.

- ``file://`` URLs are local paths and open as such;
- otherwise the first :data:`~.source.HEADER_BYTES` are fetched (one request, which also
  tells the size) and the content decides: a TIFF goes to the ``tiff`` backend, a DICOM file
  (``DICM`` at byte 128) to ``dicom``; a folder or prefix (``s3://bucket/series/``) whose
  files are DICOM is a series for ``dicom``. The byte source made here is handed to the
  backend (:func:`take_source`), so that opening does not fetch the header twice.
- OpenSlide and Bio-Formats read local files only: a URL of another format, or
  ``backend="openslide"`` / ``"bioformats"`` with a URL, is an UnsupportedFormatError that
  says so.
"""
from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..errors import UnsupportedFormatError
from ..tiff_structure import TIFF_MAGIC
from .filesystems import list_prefix
from .settings import defaults_for, split_options
from .source import RemoteSource
from .urls import display_url, local_path_of, protocol_of

if TYPE_CHECKING:
    from ..backends.base import SlideBackend

_LOCAL_ONLY = {"openslide": "OpenSlide", "bioformats": "Bio-Formats"}
_handoff = threading.local()


def is_dicom_head(head: bytes) -> bool:
    return head[128:132] == b"DICM"


def open_url(url: str, backend: str | None, options: dict[str, Any]) -> SlideBackend:
    """Open the slide at ``url`` (see the module notes); ``options`` as for ``open_slide``."""
    from ..backends import backend_class

    local = local_path_of(url)
    if local is not None:
        from ..opener import open_slide

        options = {k: v for k, v in options.items() if k != "storage_options"}
        return open_slide(local, backend=backend, **options)
    name = display_url(url)
    if backend in _LOCAL_ONLY:
        raise UnsupportedFormatError(name, f"{_LOCAL_ONLY[backend]} reads local files only; download the slide "
                                           "first, or open the URL with the tiff or dicom backend")
    storage_options = options.pop("storage_options", None)
    if storage_options is None:
        storage_options = defaults_for(protocol_of(url))
    _, fs_options = split_options(storage_options)  # checks the options before any request
    try:
        source: RemoteSource | None = RemoteSource(url, storage_options)
    except FileNotFoundError:
        source = None
    if source is None:
        members = list_prefix(url, fs_options)
        if not members:
            raise FileNotFoundError(2, "No such file or folder", name)
        chosen = backend or "dicom"
        if chosen != "dicom":
            raise UnsupportedFormatError(name, f"a folder; the {chosen!r} backend reads single files")
        return backend_class("dicom")(url, storage_options=storage_options, **options)
    head = source.read_at(0, 132)
    if head[:4] in TIFF_MAGIC:
        found = "tiff"
    elif is_dicom_head(head):
        found = "dicom"
    else:
        source.close()
        raise UnsupportedFormatError(name, "not a TIFF-family or DICOM file; the readers of other formats "
                                           "(OpenSlide, Bio-Formats) read local files only: download it first")
    chosen = backend or found
    if chosen != found:
        source.close()
        raise UnsupportedFormatError(name, f"the {chosen!r} backend does not recognise this file")
    cls = backend_class(chosen)
    with _handing_over(url, source):
        return cls(url, storage_options=storage_options, **options)


@contextlib.contextmanager
def _handing_over(url: str, source: RemoteSource) -> Iterator[None]:
    _handoff.source = (url, source)
    try:
        yield
    finally:
        left = getattr(_handoff, "source", None)
        _handoff.source = None
        if left is not None:  # the backend failed before taking it
            left[1].close()


def take_source(url: str, storage_options: dict[str, Any] | None) -> RemoteSource:
    """The byte source of ``url``: the one the opener made for it on this thread, or a new one."""
    handed = getattr(_handoff, "source", None)
    if handed is not None and handed[0] == url:
        _handoff.source = None
        return handed[1]
    return RemoteSource(url, defaults_for(protocol_of(url)) if storage_options is None else storage_options)
