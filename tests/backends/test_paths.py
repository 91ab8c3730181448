"""Paths as users have them: non-ASCII (emoji included), spaces, links, read-only places.

Every backend that can be imported here and has a sample file generator takes part
(:mod:`wsikit.samples.backends`). A slide reached through an odd path reads the same pixels as
through a plain one, and errors name the path the caller gave.
"""
from __future__ import annotations

import os
import shutil
import stat
import sys
from pathlib import Path

import numpy as np
import pytest


import wsikit

BACKENDS = ["tiff", "openslide", "dicom", "bioformats"]
NAMES = ["slide with spaces", "ünïcödé スライド", "🧫 slide 🔬", "  leading and trailing  ", "a'b\"c;&$(d)"]
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


@pytest.fixture(scope="module")
def samples(backend_samples):
    return backend_samples


def _copy(sample, where: Path) -> Path:
    """The sample copied to ``where`` (a file, or a folder for a DICOM series), keeping its suffix."""
    source = Path(sample.path)
    if source.is_dir():
        shutil.copytree(source, where)
        return where
    target = where.with_name(where.name + source.suffix)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return target


def _open(path, backend):
    try:
        return wsikit.open_slide(path, backend=backend)
    except wsikit.BackendUnavailableError as exc:
        pytest.skip(f"{backend}: {exc.reason}")


def _pixels(slide) -> list[np.ndarray]:
    out = [slide.extract_region((40, 50), (300, 200))]
    out.append(slide.extract_region((0, 0), (64, 64), level=slide.level_count - 1))
    out.append(slide.get_thumbnail((50, 50)))
    out += [slide.associated_images[name] for name in sorted(slide.associated_images)]
    return out


def _same(a: list, b: list) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


@pytest.fixture(scope="module")
def expected(samples):
    cache = {}

    def get(backend):
        if backend not in cache:
            sample = samples(backend)
            with _open(sample.path, backend) as slide:
                cache[backend] = _pixels(slide)
        return cache[backend]

    return get


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_odd_names_read_like_plain_ones(samples, expected, tmp_path, backend, name):
    sample = samples(backend)
    path = _copy(sample, tmp_path / name / name)  # the odd name in the folder too
    for given in (str(path), path, os.fsencode(path)):
        with _open(given, backend) as slide:
            assert slide.path == str(path)
            assert _same(_pixels(slide), expected(backend))
    with _open(str(path), None) as slide:  # found by open_slide's search as well
        assert slide.path == str(path)


@pytest.mark.parametrize("backend", BACKENDS)
def test_symbolic_links(samples, expected, tmp_path, backend):
    sample = samples(backend)
    real = _copy(sample, tmp_path / "real place" / "slide")
    links = tmp_path / "links 🔗"
    links.mkdir()
    direct = links / ("direct 🔗" + real.suffix)
    direct.symlink_to(real)
    chained = links / ("chained" + real.suffix)
    chained.symlink_to(direct)
    relative = links / ("relative" + real.suffix)
    relative.symlink_to(os.path.relpath(real, links))
    folder_link = tmp_path / "folder link"
    folder_link.symlink_to(real.parent, target_is_directory=True)
    through_folder = folder_link / real.name
    for path in (direct, chained, relative, through_folder):
        with _open(str(path), backend) as slide:
            assert slide.path == str(path)
            assert _same(_pixels(slide), expected(backend))
    dangling = links / ("dangling" + real.suffix)
    dangling.symlink_to(tmp_path / "nowhere" / "gone.svs")
    with pytest.raises(FileNotFoundError) as info:
        wsikit.open_slide(str(dangling), backend=backend)
    assert info.value.filename == str(dangling)


@pytest.mark.parametrize("backend", BACKENDS)
def test_read_only_files_and_folders(samples, expected, tmp_path, backend):
    sample = samples(backend)
    folder = tmp_path / "read only 🔒"
    path = _copy(sample, folder / "slide")
    targets = [p for p in ([path] + list(path.rglob("*")) if path.is_dir() else [path])]
    try:
        for target in targets:
            target.chmod(stat.S_IRUSR | stat.S_IRGRP | (stat.S_IXUSR if target.is_dir() else 0))
        folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
        with _open(str(path), backend) as slide:
            assert _same(_pixels(slide), expected(backend))
    finally:
        folder.chmod(stat.S_IRWXU)
        for target in targets:
            target.chmod(stat.S_IRWXU)


def test_missing_paths_and_folders_that_are_not_slides(tmp_path):
    missing = tmp_path / "ünïcödé" / "missing 🧫.svs"
    with pytest.raises(FileNotFoundError) as info:
        wsikit.open_slide(missing)
    assert info.value.filename == str(missing)
    empty = tmp_path / "empty folder 📁"
    empty.mkdir()
    with pytest.raises(IsADirectoryError) as info:
        wsikit.open_slide(empty)
    assert info.value.filename == str(empty)
    with pytest.raises(IsADirectoryError):
        wsikit.open_slide(empty, backend="tiff")


@pytest.mark.skipif(IS_ROOT or sys.platform == "win32", reason="root reads files whatever their mode")
def test_unreadable_file_is_a_permission_error(samples, tmp_path):
    path = _copy(samples("tiff"), tmp_path / "locked 🔒")
    path.chmod(0)
    try:
        with pytest.raises(PermissionError) as info:
            wsikit.open_slide(path)
        assert info.value.filename == str(path)
    finally:
        path.chmod(stat.S_IRWXU)


@pytest.mark.parametrize("name", NAMES)
def test_errors_name_the_odd_path(samples, tmp_path, name):
    sample = samples("tiff")
    data = Path(sample.path).read_bytes()
    path = tmp_path / (name + ".svs")
    path.write_bytes(data[:8] + bytes(64))  # a TIFF header pointing past the end
    with pytest.raises(wsikit.SlideError) as info:
        wsikit.open_slide(path)
    assert info.value.path == str(path) and str(path) in str(info.value)
    path.write_bytes(data[: len(data) - 2000])  # the last tiles and images are cut off
    with pytest.raises(wsikit.CorruptSlideError) as info:
        with wsikit.open_slide(path, backend="tiff") as slide:
            for level in range(slide.level_count):
                list(slide.generate_tiles(shape=128, level=level, pad=True))
            [slide.associated_images[name] for name in slide.associated_images]
    assert info.value.path == str(path) and str(path) in str(info.value)
    path.write_bytes(b"not a slide at all")
    with pytest.raises(wsikit.UnsupportedFormatError) as info:
        wsikit.open_slide(path, backend="tiff")
    assert info.value.path == str(path)


@pytest.mark.parametrize("backend", BACKENDS)
def test_pickled_backend_with_odd_path_reopens(samples, tmp_path, backend):
    import pickle

    path = _copy(samples(backend), tmp_path / "🧫 pickled")
    with _open(str(path), backend) as slide:
        with pickle.loads(pickle.dumps(slide)) as copy:
            assert copy.path == str(path)
            assert np.array_equal(copy.extract_region((0, 0), (32, 32)), slide.extract_region((0, 0), (32, 32)))
