"""open_slide: find the backend that reads a file, and open it.

This module holds the whole policy of choosing a backend; backends only say whether they
recognise a file (``can_read``), whether they would rather another reader went first
(``defers_to_others``) and whether a file of their format is broken (``check_file``).

- Without ``backend=``, the backends that recognise the file are tried in the registry's
  order (:func:`wsikit.backends.backend_names`), those that defer last; the first that
  opens the file wins. A backend that does not take the options asked for is passed over.
- A file that a backend recognised and found broken is not handed to a reader of the same
  format that is less tolerant (:data:`NOT_AFTER`): such readers parse in C or Java, where
  a crafted file can crash the process or start a JVM only to fail again.
- With ``backend=`` that reader is used; if it is one of those less tolerant readers, the
  stricter backends that recognise the file vet it first (:data:`VETTED_BY`).
- A file that no backend recognises is an UnsupportedFormatError, whatever its name.
"""
from __future__ import annotations

import os
from typing import Any, Iterator

from .backends import backend_class, backend_class_or_none, backend_names
from .backends.base import SlideBackend
from .backends.dicomweb.url import is_dicomweb_url
from .remote.opening import open_url
from .remote.urls import is_url
from .errors import CorruptSlideError, LimitError, SlideError, UnsupportedFormatError

#: backend -> readers never handed a file that backend recognised and found broken.
#: OpenSlide's DICOM parser segfaults on some files the DICOM backend refuses; Bio-Formats,
#: the last resort for formats nothing else reads, would open a broken WSI DICOM with a wrong
#: shape or start a JVM only to fail again.
NOT_AFTER: dict[str, frozenset[str]] = {
    "dicom": frozenset({"openslide", "bioformats"}),
    "tiff": frozenset({"bioformats"}),
    "openslide": frozenset({"bioformats"}),
}
# How the less tolerant readers are named in errors.
_LIBRARY = {"openslide": "OpenSlide", "bioformats": "Bio-Formats"}
#: backend -> stricter backends asked to vet a file before it is forced on that backend
VETTED_BY: dict[str, tuple[str, ...]] = {
    name: tuple(strict for strict, after in NOT_AFTER.items() if name in after)
    for name in {"openslide", "bioformats"}
}


def open_slide(path: str | os.PathLike[str] | bytes, backend: str | None = None, **options: Any) -> SlideBackend:
    """Open a whole-slide image (a file, or a folder holding a DICOM series).

    With ``backend=None`` every backend is asked in turn (``tiff``, ``dicom``,
    ``openslide``, ``bioformats``) whether it reads the file, and the first that does
    opens it. ``backend="openslide"`` (or another name) forces one. ``options`` go to the
    backend (e.g. ``cache_bytes``; ``color="srgb"`` converts every read from the slide's
    embedded ICC profile to sRGB, see :mod:`wsikit.color`); a backend that does not take them is passed over
    (``series=2`` goes to Bio-Formats, ``optical_path=`` to DICOM), and a TypeError says
    which backends take them when none of the readers of the file does.
    """
    if isinstance(path, (bytes, bytearray)):
        path = os.fsdecode(path)
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    path = os.fspath(path)
    if backend == "dicomweb" or (backend is None and is_dicomweb_url(path)):  # see wsikit.backends.dicomweb
        return backend_class("dicomweb")(path, **options)
    if is_url(path):  # https://, s3://, ...: opened by content, see wsikit.remote.opening
        return open_url(path, backend, options)
    if not os.path.exists(path):
        raise FileNotFoundError(2, "No such file or directory", path)
    if backend is not None:
        return _open_with(path, backend, options)
    if os.path.isfile(path) and not os.access(path, os.R_OK):
        raise PermissionError(13, "Permission denied", path)
    return _open_first(path, options)


def _open_with(path: str, name: str, options: dict[str, Any]) -> SlideBackend:
    cls = backend_class(name)
    if not cls.can_read(path):
        if os.path.isdir(path) and not cls.reads_folders:
            raise IsADirectoryError(21, "Is a directory", path)
        raise UnsupportedFormatError(path, f"the {name!r} backend does not recognise this file")
    for strict in VETTED_BY.get(name, ()):
        _vet(path, strict, name)
    return cls(path, **options)


def _vet(path: str, strict: str, name: str) -> None:
    """Raise when the stricter backend ``strict`` recognises the file and finds it broken."""
    cls = backend_class_or_none(strict)
    if cls is None:
        return
    try:
        cls.check_file(path)
    except CorruptSlideError as exc:
        raise CorruptSlideError(path, f"not handed to {_LIBRARY.get(name, name)}, whose reader can crash on broken "
                                      f"files of this kind: {exc.reason}") from None
    except LimitError:
        raise  # the less tolerant reader would need that memory too, and may abort where it lacks it
    except SlideError:
        pass  # not a file the stricter backend takes: the forced reader's call


def candidates(path: str) -> Iterator[str]:
    """The backends that recognise the file, in the order they are tried (asked lazily:
    the backends after the one that opens the file are never asked).

    A backend that defers goes after the others that recognise the file, but still before
    the less tolerant readers it bars (:data:`NOT_AFTER`): a TIFF with huge strips goes to
    OpenSlide first, then to the TIFF backend, and only then to Bio-Formats.
    """
    deferred: list[str] = []
    for name in backend_names():
        cls = backend_class_or_none(name)
        if cls is None or not cls.can_read(path):
            continue
        if cls.defers_to_others(path):
            deferred.append(name)
            continue
        for waiting in [d for d in deferred if name in NOT_AFTER.get(d, ())]:
            deferred.remove(waiting)
            yield waiting
        yield name
    yield from deferred


def _open_first(path: str, options: dict[str, Any]) -> SlideBackend:
    first_error: SlideError | None = None
    barred: set[str] = set()
    asked = set(options) - {"cache_bytes", "color"}  # every backend takes these (SlideBackend.__init__)
    passed_over: list[str] = []  # backends that recognise the file but not the options
    for name in candidates(path):
        if name in barred:
            continue
        cls = backend_class(name)
        if asked - cls.open_options():
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
                barred |= NOT_AFTER.get(name, frozenset())
    if first_error is not None:
        raise first_error
    if passed_over:
        takers = [name for name in backend_names()
                  if (taker := backend_class_or_none(name)) is not None and not asked - taker.open_options()]
        raise TypeError(
            f"{path}: the option(s) {', '.join(sorted(asked))} are not options of the backend(s) that read this file "
            f"({', '.join(passed_over)}); " + (f"they are taken by: {', '.join(takers)}" if takers else "no backend takes them")
        )
    if os.path.isdir(path):
        raise IsADirectoryError(21, "Is a directory (and not a DICOM series wsikit can read)", path)
    raise UnsupportedFormatError(path, f"no backend recognises this file (asked: {', '.join(backend_names())})")
