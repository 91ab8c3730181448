"""One backend read from many threads and from forked processes gives sequential pixels.

Every backend that can be imported here and has a sample file generator takes part
(:mod:`wsikit.samples.backends`): TIFF and OpenSlide on a synthetic Aperio pyramid, DICOM on a
synthetic series, Bio-Formats on the pyramid when a Java runtime and its jar are there.
"""
from __future__ import annotations

import os
import pickle
import random
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest


import wsikit

BACKENDS = ["tiff", "openslide", "dicom", "bioformats"]
THREADS = 8


@pytest.fixture(scope="module")
def samples(backend_samples):
    return backend_samples


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
# Each fork scenario runs in a fresh interpreter: a process that once started a JVM (the
# Bio-Formats tests do, in this one) cannot fork safely any more, and a hung child must
# not hang the test run. The backend is opened in that interpreter's parent and reaches
# its forked children through a global (as a DataLoader's dataset reaches its workers),
# never pickled on the way; the parent goes on reading while they do.
FORK_SCRIPT = r"""
import json, multiprocessing, random, sys
from concurrent.futures import ThreadPoolExecutor
import numpy as np
import wsikit

path, backend, what = sys.argv[1], sys.argv[2], sys.argv[3]
SHARED = None

def regions(slide, count=36, seed=1):
    rng = random.Random(seed)
    out = []
    for n in range(count):
        level = n % slide.level_count
        h, w = slide.level_shapes[level]
        out.append((level, (rng.randint(-20, h - 1), rng.randint(-20, w - 1)),
                    (rng.randint(1, min(h, 300)), rng.randint(1, min(w, 300)))))
    return out

def read(slide, boxes):
    return [slide.extract_region(loc, size, level=level) for level, loc, size in boxes]

def pixels(job):
    try:
        if what == "regions":
            return "ok", read(SHARED, job)
        return "ok", [SHARED.associated_images[name].copy() for name in job]
    except wsikit.SlideError as exc:
        return "error", f"{type(exc).__name__}: {exc.reason}"

with wsikit.open_slide(path, backend=backend) as reference:
    boxes = regions(reference)
    names = sorted(reference.associated_images)
    expected = read(reference, boxes) if what == "regions" else [reference.associated_images[n].copy() for n in names]
slide = wsikit.open_slide(path, backend=backend)
if what == "regions":
    read(slide, boxes[:6])  # warm caches and handles before the fork
    jobs = [boxes[k::3] for k in range(3)] * 2
    want = [[expected[boxes.index(b)] for b in job] for job in jobs]
else:
    jobs = [names, names[::-1]] * 4
    want = [[expected[names.index(n)] for n in job] for job in jobs]
SHARED = slide
failures = []
with multiprocessing.get_context("fork").Pool(3 if what == "regions" else 4) as pool:
    pending = pool.map_async(pixels, jobs)
    with ThreadPoolExecutor(2) as threads:
        if what == "regions":
            mine = list(threads.map(lambda b: slide.extract_region(b[1], b[2], level=b[0]), boxes))
        else:
            mine = [slide.associated_images[n].copy() for n in names]
    results = pending.get(timeout=120)
for k, (got, exp) in enumerate(zip(mine, expected)):
    if not np.array_equal(got, exp):
        failures.append(f"parent read {k} differs")
errors = []
for (status, value), exp in zip(results, want):
    if status != "ok":
        errors.append(value)
    elif not all(np.array_equal(a, b) for a, b in zip(value, exp)):
        failures.append("a child read other pixels")
print(json.dumps({"failures": failures, "errors": errors, "jobs": len(jobs)}))
"""


def _run_fork_scenario(path: str, backend: str, what: str) -> dict:
    import json
    import signal
    import subprocess

    process = subprocess.Popen([sys.executable, "-c", FORK_SCRIPT, path, backend, what], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True, cwd=tempfile.gettempdir())
    try:
        out, err = process.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # children of a JVM process ignore SIGTERM
        out, err = process.communicate()
        pytest.fail(f"the fork scenario hung: {err[-3000:]}")
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)  # no forked child outlives the test
        except ProcessLookupError:
            pass
    assert process.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.parametrize("backend", BACKENDS)
def test_forked_children_read_while_the_parent_reads(samples, backend):
    sample = samples(backend)
    result = _run_fork_scenario(sample.path, backend, "regions")
    assert not result["failures"], result
    if backend == "bioformats":
        # A JVM does not survive fork(): the backend says so instead of reading garbage.
        assert len(result["errors"]) == result["jobs"] and all("fork" in e for e in result["errors"]), result
    else:
        assert not result["errors"], result


@pytest.mark.parametrize("backend", ["tiff", "openslide", "dicom"])
def test_forked_children_read_associated_images_while_the_parent_does(samples, backend):
    """Associated images come through the file's own handle: a child must not share its
    position with the parent (or with its siblings)."""
    sample = samples(backend)
    for attempt in range(3):
        result = _run_fork_scenario(sample.path, backend, "associated")
        assert not result["failures"] and not result["errors"], result


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

