"""One backend read from many threads and from forked processes gives sequential pixels.

Every backend that can be imported here and has a sample file generator takes part
(:mod:`fuzz.samples`): TIFF and OpenSlide on a synthetic Aperio pyramid, DICOM on a
synthetic series, Bio-Formats on the pyramid when a Java runtime and its jar are there.
"""
from __future__ import annotations

import multiprocessing
import pickle
import random
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import wsikit  # noqa: E402
from fuzz.samples import backend_unavailable, write_sample  # noqa: E402

BACKENDS = ["tiff", "openslide", "dicom", "bioformats"]
THREADS = 8


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    folder = tmp_path_factory.mktemp("concurrency")
    made = {}

    def get(backend):
        reason = backend_unavailable(backend)
        if reason:
            pytest.skip(reason)
        if backend not in made:
            made[backend] = write_sample(backend, folder / backend)
        return made[backend]

    return get


def _open(sample):
    try:
        return wsikit.open_slide(sample.path, backend=sample.backend)
    except wsikit.BackendUnavailableError as exc:
        pytest.skip(f"{sample.backend}: {exc.reason}")


def _regions(slide, count: int = 48, seed: int = 0) -> list[tuple[int, tuple[int, int], tuple[int, int]]]:
    """Boxes on every level: inside one tile, across tile edges, over the image's edge."""
    rng = random.Random(seed)
    out = []
    for n in range(count):
        level = n % slide.level_count
        h, w = slide.level_shapes[level]
        size = (rng.randint(1, min(h, 300)), rng.randint(1, min(w, 300)))
        location = (rng.randint(-20, h - 1), rng.randint(-20, w - 1))
        out.append((level, location, size))
    return out


def _read_all(slide, regions):
    return [slide.extract_region(location, size, level=level) for level, location, size in regions]


@pytest.mark.parametrize("backend", BACKENDS)
def test_eight_threads_read_what_one_thread_reads(samples, backend):
    sample = samples(backend)
    with _open(sample) as reference:
        regions = _regions(reference)
        expected = _read_all(reference, regions)
    with _open(sample) as slide:  # a fresh object: the threads start on a cold cache
        start = threading.Barrier(THREADS)

        def work(seed):
            order = list(range(len(regions)))
            random.Random(seed).shuffle(order)
            start.wait()
            return [(k, slide.extract_region(regions[k][1], regions[k][2], level=regions[k][0])) for k in order * 2]

        with ThreadPoolExecutor(THREADS) as pool:
            results = list(pool.map(work, range(THREADS)))
    for per_thread in results:
        for k, array in per_thread:
            assert np.array_equal(array, expected[k]), f"region {regions[k]} differs when read from {THREADS} threads"


@pytest.mark.parametrize("backend", BACKENDS)
def test_parallel_tiling_equals_sequential_tiling(samples, backend):
    sample = samples(backend)
    with _open(sample) as slide:
        for level in range(slide.level_count):
            one = [(t.coords, t.image) for t in slide.generate_tiles(shape=100, pad=True, level=level, workers=1)]
            many = [(t.coords, t.image) for t in slide.generate_tiles(shape=100, pad=True, level=level, workers=THREADS)]
            assert [c for c, _ in one] == [c for c, _ in many]
            for (_, a), (_, b) in zip(one, many):
                assert np.array_equal(a, b)


# -- fork ---------------------------------------------------------------------------------------
# The backend opened in the parent, reached by forked children through this global (as a
# DataLoader's dataset object reaches its workers): never pickled on the way.
_INHERITED = None


def _read_in_child(regions):
    try:
        return "ok", _read_all(_INHERITED, regions)
    except wsikit.SlideError as exc:
        return "error", f"{type(exc).__name__}: {exc}"


@pytest.mark.parametrize("backend", BACKENDS)
def test_forked_children_read_while_the_parent_reads(samples, backend):
    global _INHERITED
    sample = samples(backend)
    with _open(sample) as reference:
        regions = _regions(reference, count=36, seed=1)
        expected = _read_all(reference, regions)
    slide = _open(sample)
    try:
        _read_all(slide, regions[:6])  # warm caches and handles before the fork
        _INHERITED = slide
        chunks = [regions[k::3] for k in range(3)]
        context = multiprocessing.get_context("fork")
        with context.Pool(3) as pool:
            pending = pool.map_async(_read_in_child, chunks * 2)
            # The parent goes on reading while the children do, from two threads.
            with ThreadPoolExecutor(2) as threads:
                parent = list(threads.map(lambda k: slide.extract_region(regions[k][1], regions[k][2], level=regions[k][0]),
                                          range(len(regions))))
            results = pending.get(timeout=300)
    finally:
        _INHERITED = None
    for k, array in enumerate(parent):
        assert np.array_equal(array, expected[k]), f"parent read of {regions[k]} differs"
    for chunk_index, (status, value) in enumerate(results):
        chunk = chunks[chunk_index % 3]
        if backend == "bioformats":
            # A JVM does not survive fork(): the backend says so instead of hanging.
            assert status == "error" and "BackendUnavailableError" in value and "fork" in value, value
            continue
        assert status == "ok", value
        for region, array in zip(chunk, value):
            assert np.array_equal(array, expected[regions.index(region)]), f"child read of {region} differs"
    assert np.array_equal(slide.extract_region(regions[0][1], regions[0][2], level=regions[0][0]), expected[0])
    slide.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_pickling_carries_path_and_options_and_reopens(samples, backend):
    sample = samples(backend)
    with _open(sample) as slide:
        regions = _regions(slide, count=6, seed=2)
        expected = _read_all(slide, regions)
        data = pickle.dumps(slide)
        assert len(data) < 4096, "a backend pickles as its path and options, not its pixels or handles"
        with pickle.loads(data) as copy:
            assert copy is not slide and type(copy) is type(slide)
            assert copy.path == slide.path and copy.level_shapes == slide.level_shapes
            assert copy._options == slide._options
            for array, want in zip(_read_all(copy, regions), expected):
                assert np.array_equal(array, want)
        # The original is untouched by its copy being closed.
        assert np.array_equal(slide.extract_region(regions[0][1], regions[0][2], level=regions[0][0]), expected[0])


def test_pickling_keeps_options(samples):
    sample = samples("tiff")
    with wsikit.open_slide(sample.path, backend="tiff", cache_bytes=1234567) as slide:
        with pickle.loads(pickle.dumps(slide)) as copy:
            assert copy._options["cache_bytes"] == 1234567
            assert copy._reader.cache.max_bytes == 1234567


def _associated_in_child(names):
    try:
        return "ok", {name: _INHERITED.associated_images[name].copy() for name in names}
    except wsikit.SlideError as exc:
        return "error", f"{type(exc).__name__}: {exc}"


@pytest.mark.parametrize("backend", ["tiff", "openslide", "dicom"])
def test_forked_children_read_associated_images_while_the_parent_does(samples, backend):
    """Associated images are read through the file's own handle: a child must not share
    its position with the parent (or with its siblings)."""
    global _INHERITED
    sample = samples(backend)
    with _open(sample) as reference:
        expected = {name: reference.associated_images[name].copy() for name in reference.associated_images}
    if not expected:
        pytest.skip(f"the {backend} sample has no associated images")
    names = sorted(expected)
    for attempt in range(3):
        slide = _open(sample)
        try:
            _INHERITED = slide
            with multiprocessing.get_context("fork").Pool(4) as pool:
                pending = pool.map_async(_associated_in_child, [names, names[::-1]] * 4)
                parent = {name: slide.associated_images[name].copy() for name in names}
                results = pending.get(timeout=300)
        finally:
            _INHERITED = None
            slide.close()
        for name in names:
            assert np.array_equal(parent[name], expected[name]), f"parent's {name} differs"
        for status, value in results:
            assert status == "ok", value
            for name in names:
                assert np.array_equal(value[name], expected[name]), f"a child's {name} differs"
