"""Which slides a URL names, for ``wsikit tile URL...`` (:func:`wsikit.inventory.find_slides`).

- an http(s) URL, or a URL of one file: that slide;
- a folder / prefix (``s3://bucket/slides/``): searched recursively. A folder whose files
  are all ``.dcm`` is one slide (a DICOM series); elsewhere every file whose name ends
  with a slide extension is one. Hidden names and ``*.zarr`` folders are skipped.

Listing uses the storage options in force (:func:`~.settings.current_defaults`).
"""
from __future__ import annotations

import posixpath

from .filesystems import filesystem
from .settings import current_defaults, split_options
from .urls import HTTP_PROTOCOLS, protocol_of


def find_remote_slides(url: str, extensions: tuple[str, ...]) -> tuple[list[str], str | None]:
    """(slide URLs, None) or ([], why none was found)."""
    if protocol_of(url) in HTTP_PROTOCOLS:
        return [url], None
    _, options = split_options(current_defaults())
    fs, path = filesystem(url, options)
    try:
        if not fs.isdir(path):
            return ([url], None) if fs.exists(path) else ([], "no such file or folder")
        files = [name for name in fs.find(path) if not _skipped(name, path)]
    except (OSError, ValueError) as exc:
        return [], f"cannot list it: {type(exc).__name__}"
    by_folder: dict[str, list[str]] = {}
    for name in files:
        by_folder.setdefault(posixpath.dirname(name), []).append(name)
    slides: list[str] = []
    for folder, names in sorted(by_folder.items()):
        if all(name.lower().endswith(".dcm") for name in names):
            slides.append(fs.unstrip_protocol(folder) + "/")  # a DICOM series
        else:
            slides += [fs.unstrip_protocol(name) for name in sorted(names) if name.lower().endswith(extensions)]
    return (slides, None) if slides else ([], "no slides found in this folder")


def _skipped(name: str, root: str) -> bool:
    parts = posixpath.relpath(name, root).split("/")
    return any(part.startswith(".") or part.endswith(".zarr") for part in parts)
