"""The drop-in's errors: openslide-python's classes, each also the matching wsikit error."""
from __future__ import annotations

import ctypes
import os
from typing import Any

from ...errors import BackendUnavailableError, CorruptSlideError, LimitError, SlideError, UnsupportedFormatError


class OpenSlideError(SlideError):
    """An error reading a slide (openslide-python's), also a :class:`wsikit.errors.SlideError`.

    Raised as ``OpenSlideError(message)`` by callers, or ``OpenSlideError(path, reason)`` here.
    """

    def __init__(self, *args: Any) -> None:
        if len(args) == 2 and (args[0] is None or isinstance(args[0], (str, os.PathLike))):
            super().__init__(args[0], str(args[1]))
        else:
            super().__init__(None, " ".join(str(a) for a in args))


class OpenSlideUnsupportedFormatError(OpenSlideError, UnsupportedFormatError):
    """The file is not a slide this module reads (openslide-python's), also an UnsupportedFormatError."""


class OpenSlideVersionError(OpenSlideError):
    """A feature the library does not offer (openslide-python's; never raised here)."""


class _CorruptSlide(OpenSlideError, CorruptSlideError):
    """A slide recognised and broken: OpenSlideError and CorruptSlideError."""


class _OverLimit(OpenSlideError, LimitError):
    """A read over wsikit's memory limit: OpenSlideError and LimitError."""


class _Unavailable(OpenSlideError, BackendUnavailableError):
    """A reader's dependency is missing: OpenSlideError and BackendUnavailableError."""


class _ClosedSlide(ctypes.ArgumentError, ValueError):
    """A closed slide used: ``ctypes.ArgumentError`` as openslide-python raises, also a ValueError."""


class _ClosedImage(ValueError, AttributeError):
    """A closed ImageSlide used: ValueError as openslide-python raises (AttributeError in older ones)."""


def _as_openslide_error(exc: SlideError) -> OpenSlideError:
    """``exc`` re-raised as the OpenSlideError subclass that is also its own wsikit class."""
    if isinstance(exc, OpenSlideError):
        return exc
    for wsikit_class, openslide_class in ((UnsupportedFormatError, OpenSlideUnsupportedFormatError),
                                          (LimitError, _OverLimit), (BackendUnavailableError, _Unavailable),
                                          (CorruptSlideError, _CorruptSlide)):
        if isinstance(exc, wsikit_class):
            return openslide_class(exc.path, exc.reason)
    return OpenSlideError(exc.path, exc.reason)


def _as_int(value: Any, name: str) -> int:
    """An integer argument, as ctypes takes it: ints (and numpy ints); anything else a TypeError."""
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise ctypes.ArgumentError(f"{name}: TypeError: wrong type ({type(value).__name__}, an integer is needed)")
    return int(value.__index__())


__all__ = ["OpenSlideError", "OpenSlideUnsupportedFormatError", "OpenSlideVersionError"]
