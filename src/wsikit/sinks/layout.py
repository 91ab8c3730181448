"""The files of a result folder, the name each slide's folder gets, and what a folder holds.

A slide's results live in ``OUT/<name>/`` (see :mod:`wsikit.sinks` for the layout and the
naming rule). This module knows the file names, turns slide paths into folder names that
cannot leave ``OUT``, and reads back the state of a folder: the job record (``job.json``)
it holds, if any, and whether the manifest that marks a complete slide is there.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterable
from typing import Any

from ..plan import TileSpec
from ..remote.urls import display_url, is_url, url_name
from .atomic import write_atomic

MANIFEST = "tiles.csv"
JOB_FILE = "job.json"
ZARR_STORE = "tiles.zarr"
IMAGE_FOLDER = "images"
#: the value of ``format`` in every job record wsikit writes
JOB_RECORD_FORMAT = "wsikit-tiles"
#: the file ending of each image format's tiles
IMAGE_SUFFIXES = {"png": ".png", "jpeg": ".jpg"}
# Endings removed whole from a slide's name: ``x.ome.tiff`` -> ``x``, not ``x.ome``.
_DOUBLE_EXTENSIONS = (".ome.tiff", ".ome.tif", ".ome.zarr", ".ome.btf")
# Folder names are cut to this many characters (file systems allow 255 bytes a name).
_MAX_NAME = 120


# -- names ------------------------------------------------------------------------------
def slide_location(path: str | os.PathLike[str]) -> str:
    """How a slide is named for reading and hashing: a URL as it is, a path made absolute.
    (Job records keep a URL as :func:`~wsikit.remote.urls.display_url` shows it: no
    pre-signed query or password goes to disk.)"""
    text = os.fspath(path)
    return text if is_url(text) else os.path.abspath(text)


def slide_stem(path: str | os.PathLike[str]) -> str:
    """The folder name a slide's results get: its file name (a URL's last part, without
    the query) without the extension, made safe. A numeric "extension" is part of the
    name: DICOM UIDs (``.../series/1.2.826.0.1.3680043.8.498``) keep their last part."""
    text = os.fspath(path)
    name = url_name(text) if is_url(text) else os.path.basename(os.path.normpath(text))
    lower = name.lower()
    for ext in _DOUBLE_EXTENSIONS:
        if lower.endswith(ext) and len(name) > len(ext):
            name = name[: -len(ext)]
            break
    else:
        stem, ext = os.path.splitext(name)
        name = stem if stem and ext and not ext[1:].isdigit() else name
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", name).lstrip(".")
    return name[:_MAX_NAME] or "slide"


def path_hash(path: str | os.PathLike[str]) -> str:
    """The first 8 hex digits of the SHA-1 of the slide's absolute path: the suffix that
    tells apart two slides whose names would give the same folder."""
    absolute = slide_location(path)
    return hashlib.sha1(absolute.encode("utf-8", "surrogateescape")).hexdigest()[:8]


def assign_folders(slides: Iterable[str | os.PathLike[str]], out: str | os.PathLike[str]) -> list[str]:
    """The absolute result folder of each slide, by the naming rule of :mod:`wsikit.sinks`."""
    out_path = os.path.abspath(os.fspath(out))
    taken: set[str] = set()
    folders = []
    for slide in slides:
        slide_path = slide_location(slide)
        stem = slide_stem(slide_path)
        name = stem
        if name.lower() in taken or not _folder_free_for(os.path.join(out_path, name), slide_path):
            name = f"{stem}-{path_hash(slide_path)}"
        taken.add(name.lower())
        folders.append(os.path.join(out_path, name))
    return folders


def _folder_free_for(folder: str, slide: str) -> bool:
    """Whether ``folder`` is absent, empty, or already holds results of ``slide``."""
    if not os.path.lexists(folder):
        return True
    if not os.path.isdir(folder) or os.path.islink(folder):
        return False
    job = read_job(folder)
    if job is not None:
        return job.get("slide") == display_url(slide)
    return not os.listdir(folder)


def check_inside(folder: str, out: str) -> None:
    """Raise ValueError when ``folder`` would resolve outside ``out`` (through a symbolic link)."""
    real_out = os.path.realpath(out)
    real = os.path.realpath(folder)
    if real == real_out or os.path.commonpath([real_out, real]) != real_out:
        raise ValueError(f"result folder {folder} resolves to {real}, outside {real_out}; refusing to write there")


def image_name(spec: TileSpec, fmt: str) -> str:
    """The file name of a tile stored as an image: ``<i>_<j>.png`` or ``<i>_<j>.jpg``."""
    return f"{spec.coords[0]}_{spec.coords[1]}{IMAGE_SUFFIXES[fmt]}"


# -- the state of a folder --------------------------------------------------------------
def read_job(folder: str) -> dict[str, Any] | None:
    """The job record of ``folder``, or None when it has none that wsikit wrote."""
    try:
        with open(os.path.join(folder, JOB_FILE), encoding="utf-8") as f:
            job = json.load(f)
    except (OSError, ValueError):
        return None
    return job if isinstance(job, dict) and job.get("format") == JOB_RECORD_FORMAT else None


def write_job(folder: str, record: dict[str, Any]) -> None:
    """Write the job record: indented JSON with sorted keys (the same bytes for the same job)."""
    text = json.dumps(record, indent=2, sort_keys=True) + "\n"
    write_atomic(os.path.join(folder, JOB_FILE), text.encode("utf-8"))


def is_complete(folder: str) -> bool:
    """Whether the slide of ``folder`` is done: its manifest, written last, is there."""
    return os.path.isfile(os.path.join(folder, MANIFEST))


def remove_results(folder: str) -> None:
    """Delete the tiles, the job record and the manifest of ``folder`` (nothing else in it)."""
    for name in (ZARR_STORE, IMAGE_FOLDER):
        shutil.rmtree(os.path.join(folder, name), ignore_errors=True)
    for name in (JOB_FILE, MANIFEST):
        try:
            os.unlink(os.path.join(folder, name))
        except FileNotFoundError:
            pass
