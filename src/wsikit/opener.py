"""open_slide: find the backend that reads a file, and open it."""
from __future__ import annotations

import inspect
import os

from .backends import backend_class, backend_class_or_none, backend_names
from .backends.base import SlideBackend
from .errors import CorruptSlideError, LimitError, SlideError, UnsupportedFormatError


def open_slide(path, backend: str | None = None, **options) -> SlideBackend:
    """Open a whole-slide image.

    With ``backend=None`` every backend is asked in turn (``tiff``, ``dicom``,
    ``openslide``, ``bioformats``) whether it reads the file, and the first that does
    opens it. ``backend="openslide"`` (or another name) forces one. ``options`` go to the
    backend (e.g. ``cache_bytes``); a backend that does not take them is passed over
    (``series=2`` goes to Bio-Formats, ``optical_path=`` to DICOM), and a TypeError says
    which backends take them when none of the readers of the file does.
    """
    if isinstance(path, (bytes, bytearray)):
        path = os.fsdecode(path)
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(2, "No such file or directory", path)
    if backend is not None:
        cls = backend_class(backend)
        if not cls.can_read(path):
            if os.path.isdir(path) and not cls.reads_folders:
                raise IsADirectoryError(21, "Is a directory", path)
            raise UnsupportedFormatError(path, f"the {backend!r} backend does not recognise this file")
        return cls(path, **options)
    if os.path.isfile(path) and not os.access(path, os.R_OK):
        raise PermissionError(13, "Permission denied", path)
    first_error: SlideError | None = None
    skip: set[str] = set()
    asked = set(options) - {"cache_bytes"}
    passed_over: list[str] = []  # backends that recognise the file but not the options
    for name in backend_names():
        if name in skip:
            continue
        cls = backend_class_or_none(name)
        if cls is None or not cls.can_read(path):
            continue
        if asked - open_options(cls):
            # e.g. series=1 names a Bio-Formats series: a backend without series does not
            # read what was asked for, so the file goes to one that does.
            passed_over.append(name)
            continue
        try:
            return cls(path, **options)
        except LimitError:
            # The file is understood and needs more memory than allowed: any other reader
            # would need it too (and some, like a JVM starting up, would fail harder).
            raise
        except SlideError as exc:
            # Another backend may still read the file; report the first failure if none does.
            first_error = first_error or exc
            if isinstance(exc, CorruptSlideError):
                skip |= _NO_SECOND_TRY.get(name, set())
    if first_error is not None:
        raise first_error
    if passed_over:
        takers = [name for name in backend_names()
                  if (cls := backend_class_or_none(name)) is not None and not asked - open_options(cls)]
        raise TypeError(
            f"{path}: the option(s) {', '.join(sorted(asked))} are not options of the backend(s) that read this file "
            f"({', '.join(passed_over)}); " + (f"they are taken by: {', '.join(takers)}" if takers else "no backend takes them")
        )
    if os.path.isdir(path):
        raise IsADirectoryError(21, "Is a directory (and not a DICOM series wsikit can read)", path)
    raise UnsupportedFormatError(path, f"no backend recognises this file (asked: {', '.join(backend_names())})")


# Readers not to hand a file that the named backend recognised and found broken: they
# read the same format with less tolerance, in C, where a crafted file can crash the
# process (OpenSlide's DICOM parser segfaults on some files the DICOM backend refuses).
# Bio-Formats, the last resort for formats nothing else reads, is never handed a file that
# a native backend recognised and found broken: it would open it with a wrong shape (a
# WSI DICOM without its Total Pixel Matrix) or start a JVM only to fail again.
_NO_SECOND_TRY = {"dicom": {"openslide", "bioformats"}, "tiff": {"bioformats"}, "openslide": {"bioformats"}}


def open_options(cls) -> set[str]:
    """The keyword options a backend class takes when opening (besides ``cache_bytes``)."""
    parameters = inspect.signature(cls._open).parameters.values()
    return {p.name for p in parameters if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name != "self"}
