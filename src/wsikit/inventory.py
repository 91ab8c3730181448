"""Which slides there are, and what a slide holds: the library side of ``wsikit tile``'s
folder arguments and of ``wsikit info``.

Finding slides (:func:`find_slides`): a file named is always a slide (its reader decides
by content). A folder is one slide when a backend that reads folders (``reads_folders``,
e.g. DICOM: a series stored as many files) takes it whole (:func:`reads_as_one_slide`);
otherwise it is searched recursively for files whose name ends with an extension some
backend declares (:func:`wsikit.backends.slide_extensions`, case-insensitive) and for
folders taken whole. The search skips hidden files and folders, ``*.zarr`` folders (tiles
wsikit wrote) and the folders asked to be skipped (the output folder).
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .backends import backend_class_or_none, backend_names, slide_extensions
from .remote.listing import find_remote_slides
from .remote.urls import display_url, is_url

if TYPE_CHECKING:
    from .backends.base import SlideBackend


# -- finding slides -----------------------------------------------------------------------
def find_slides(arguments: Iterable[str], skip: Iterable[str] = ()) -> tuple[list[str], list[tuple[str, str]]]:
    """The slides named by ``arguments`` (files, or folders searched as the module's notes
    say) as absolute paths, in order without repeats, and (argument, reason) for those
    not found. Folders in ``skip`` are not searched."""
    skipped = {os.path.realpath(s) for s in skip}
    extensions = slide_extensions()
    slides: list[str] = []
    missing: list[tuple[str, str]] = []
    for argument in arguments:
        if is_url(argument):  # a slide, or a folder / prefix of slides, by URL (wsikit.remote.listing)
            found, reason = find_remote_slides(argument, extensions)
            if reason:
                missing.append((argument, reason))
            slides.extend(found)
        elif not os.path.exists(argument):
            missing.append((argument, "no such file or folder"))
        elif os.path.isdir(argument) and not reads_as_one_slide(argument, extensions):
            found = _search(argument, skipped, extensions)
            if not found:
                missing.append((argument, "no slides found in this folder"))
            slides.extend(found)
        else:
            slides.append(os.path.abspath(argument))
    unique = list(dict.fromkeys(slides))
    return unique, missing


def _search(folder: str, skip: set[str], extensions: tuple[str, ...]) -> list[str]:
    """The slides below ``folder``, sorted."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        descend = []
        for name in dirs:
            path = os.path.join(root, name)
            if name.startswith(".") or os.path.realpath(path) in skip:
                continue
            if reads_as_one_slide(path, extensions):
                found.append(os.path.abspath(path))
            elif not name.endswith(".zarr"):
                descend.append(name)
        dirs[:] = descend
        for name in sorted(files):
            if not name.startswith(".") and name.lower().endswith(extensions):
                found.append(os.path.abspath(os.path.join(root, name)))
    return sorted(found)


def reads_as_one_slide(path: str, extensions: tuple[str, ...] | None = None) -> bool:
    """Whether a backend reads the folder ``path`` as one slide (a DICOM series).

    A folder that holds anything but files (hidden entries aside), or files of another
    backend's slide extensions (``extensions``, default: every backend's), is searched
    instead: it is a folder of slides, not a slide.
    """
    extensions = slide_extensions() if extensions is None else extensions
    try:
        entries = [entry for entry in os.scandir(path) if not entry.name.startswith(".")]
    except OSError:
        return False
    if not all(entry.is_file() for entry in entries):
        return False
    names = [entry.name.lower() for entry in entries]
    for backend in backend_names():
        cls = backend_class_or_none(backend)
        if cls is None or not cls.reads_folders:
            continue
        if any(name.endswith(extensions) and not name.endswith(cls.extensions) for name in names):
            continue  # slide files this backend does not read: a folder of slides
        try:
            if cls.can_read(path):
                return True
        except Exception:  # can_read must not fail, but a search must not die of one that does
            continue
    return False


# -- what a slide holds -------------------------------------------------------------------
def slide_info(slide: SlideBackend) -> dict[str, Any]:
    """What ``wsikit info`` reports, as JSON data: path, backend, vendor, levels (shape,
    downsample, mpp), mpp, magnification, pixel type, channels, associated images (their
    shapes, or why they cannot be read) and the properties."""
    props = dict(slide.properties)
    mpp0 = slide.mpp
    levels = []
    for k, shape in enumerate(slide.level_shapes):
        si, sj = slide.level_scale(k)
        levels.append({
            "level": k, "shape": list(shape), "downsample": slide.level_downsamples[k],
            "mpp": None if mpp0 is None else [mpp0[0] * si, mpp0[1] * sj],
        })
    associated: dict[str, list[int] | str] = {}
    for name in slide.associated_images:
        try:
            associated[name] = list(slide.associated_images[name].shape)
        except Exception as exc:  # a broken label must not hide the rest
            associated[name] = f"unreadable: {exc}"
    return {
        "path": display_url(slide.path) if is_url(slide.path) else os.path.abspath(slide.path),
        "backend": slide.name,
        "vendor": props.get("wsikit.vendor") or props.get("openslide.vendor"),
        "levels": levels,
        "mpp": None if mpp0 is None else list(mpp0),
        "magnification": slide.objective_power,
        "is_rgb": bool(slide.is_rgb),
        "dtype": str(slide.dtype),
        "sizes": {"z": slide.sizes[0], "c": slide.sizes[1], "t": slide.sizes[2]} if not slide.is_rgb else None,
        "channel_names": list(slide.channel_names),
        "associated_images": associated,
        "properties": props,
    }
