"""The errors wsikit raises for files it cannot read.

Every error about a file carries the file's path and a reason a person can act on.
Errors about a caller's arguments are plain ValueError / TypeError. A URL is named without
its password or query string (pre-signed URLs carry their signature there), so no error
carries a credential.
"""
from __future__ import annotations

import os


class SlideError(Exception):
    """A slide file could not be read. ``path`` names the file (a URL as
    :func:`~wsikit.remote.urls.display_url` shows it), ``reason`` says why."""

    def __init__(self, path: str | os.PathLike[str] | None, reason: str) -> None:
        # imported here: wsikit.remote imports this module
        from .remote.urls import display_url

        self.path = None if path is None else display_url(os.fspath(path))
        self.reason = reason
        super().__init__(f"{self.path}: {reason}" if self.path is not None else reason)

    def __reduce__(self) -> tuple[type[SlideError], tuple[str | None, str]]:
        # keep path and reason across pickling (Dask, multiprocessing)
        return (type(self), (self.path, self.reason))


class UnsupportedFormatError(SlideError):
    """No backend recognises the file (or the forced backend cannot read it)."""


class CorruptSlideError(SlideError):
    """The file was recognised, but some of its data cannot be read."""


class LimitError(SlideError, ValueError):
    """An operation would need more memory in one piece than the configured limit allows."""


class BackendUnavailableError(SlideError):
    """A backend's dependency (a Java runtime, the Bio-Formats jar, ...) is missing."""
