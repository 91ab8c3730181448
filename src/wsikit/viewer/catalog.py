"""The slides a viewer serves: found once under the path it was started on, known by id.

The path may be a URL (``https://``, ``s3://``, ...): a slide, or a folder / prefix of
slides, listed by :func:`wsikit.inventory.find_slides`.

A request names a slide only by its id, an opaque token looked up in a dictionary built
at start: nothing a client sends is ever joined to a file system path. The slides are
those :func:`wsikit.inventory.find_slides` finds under PATH (PATH itself when it is a
slide); a slide whose real path lies outside PATH's real path (a symbolic link leading
out) is left out.

Each slide is opened on first use, once, and the open slide is shared by every request
(wsikit slides are thread-safe); a slide that cannot be opened keeps its error, shown in
the index, and is not retried on every request.
"""
from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import SlideError
from ..inventory import find_slides
from ..remote.urls import display_url, is_url

if TYPE_CHECKING:
    from ..backends.base import SlideBackend


class SlideUnavailable(Exception):
    """A listed slide that cannot be opened; the message says why (no traceback)."""


@dataclass
class SlideEntry:
    """One served slide: its id, its path, and its name relative to the served folder."""

    id: str
    path: str
    name: str
    _slide: SlideBackend | None = field(default=None, repr=False)
    _error: str | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def error(self) -> str | None:
        """Why the slide could not be opened (None when it opened or was not tried yet)."""
        return self._error

    @property
    def is_open(self) -> bool:
        """Whether the slide is open already (asking for it then costs nothing)."""
        return self._slide is not None

    def slide(self) -> SlideBackend:
        """The open slide (opened now on first use); SlideUnavailable when it cannot be."""
        if self._slide is not None:
            return self._slide
        with self._lock:
            if self._slide is None and self._error is None:
                from ..opener import open_slide

                try:
                    self._slide = open_slide(self.path)
                except (SlideError, OSError, ValueError, TypeError) as exc:
                    self._error = f"{type(exc).__name__}: {exc}"
            if self._slide is None:
                raise SlideUnavailable(f"{self.name}: cannot be opened ({self._error})")
            return self._slide

    def close(self) -> None:
        with self._lock:
            if self._slide is not None:
                self._slide.close()
                self._slide = None


class SlideCatalog:
    """The slides under ``root`` (a slide file, a DICOM series folder or a folder of slides)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self._entries: dict[str, SlideEntry] = {}
        if is_url(root):
            self._add_remote(str(root))
            return
        self.root = os.path.abspath(os.fspath(root))
        if not os.path.exists(self.root):
            raise FileNotFoundError(2, "No such file or directory", self.root)
        found, _ = find_slides([self.root])
        real_root = os.path.realpath(self.root)
        base = self.root if os.path.isdir(self.root) else os.path.dirname(self.root)
        for path in found:
            real = os.path.realpath(path)
            if real != real_root and os.path.commonpath([real_root, real]) != real_root:
                continue  # a symbolic link out of the served folder
            name = os.path.relpath(path, base)
            slide_id = slide_id_of(name)
            self._entries[slide_id] = SlideEntry(slide_id, path, name)

    def _add_remote(self, url: str) -> None:
        """The slides of a URL: one slide, or those under a folder / prefix (find_slides),
        named relative to it. The root is shown as :func:`display_url` shows it (no password,
        no query string)."""
        self.root = display_url(url)
        found, missing = find_slides([url])
        if not found and missing:
            raise FileNotFoundError(2, missing[0][1], self.root)
        prefix = url.split("?", 1)[0].rstrip("/") + "/"
        for path in found:
            plain = path.split("?", 1)[0]
            inside = plain[len(prefix):] if plain.startswith(prefix) else ""
            name = inside or plain.rstrip("/").rsplit("/", 1)[-1] or display_url(plain)
            slide_id = slide_id_of(name)
            self._entries[slide_id] = SlideEntry(slide_id, path, name)

    def __len__(self) -> int:
        return len(self._entries)

    def entries(self) -> list[SlideEntry]:
        """Every slide, in name order."""
        return sorted(self._entries.values(), key=lambda e: e.name)

    def get(self, slide_id: str) -> SlideEntry | None:
        """The slide of ``slide_id``, or None when there is none (never a file system lookup)."""
        return self._entries.get(slide_id)

    def find_path(self, path: str) -> SlideEntry | None:
        """The slide whose file is ``path`` (compared by real path), or None."""
        for entry in self._entries.values():
            if entry.path == path or (not is_url(path) and os.path.realpath(entry.path) == os.path.realpath(path)):
                return entry
        return None

    def close(self) -> None:
        for entry in self._entries.values():
            entry.close()


def slide_id_of(name: str) -> str:
    """A short id for the slide called ``name``: letters of its name, for people, and a hash
    of the whole relative path, so that ids are unique and contain no separator."""
    stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in os.path.basename(name).split(".")[0])[:40]
    digest = hashlib.sha1(name.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return f"{stem or 'slide'}-{digest}"
