"""Worker threads: the in-order parallel map and the hooks every reader thread runs as it ends."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from tests.reader.sources import CountingImage, random_boxes, stream_regions, wait_no_reader_threads
from wsikit.reader import TiledReader, ordered_map


@pytest.fixture(autouse=True)
def no_exit_hooks_registered():
    """These tests are about threads without exit hooks: a JVM started by an earlier test
    in this process (Bio-Formats) registers one for good, and with a hook registered large
    reads end their threads instead of keeping them. Empty the shared list in place (the
    reader holds a reference to it) for each test, and put the hooks back after."""
    from wsikit.reader import workers as workers_module

    hooks = workers_module.THREAD_EXIT_HOOKS
    saved = list(hooks)
    hooks.clear()
    yield
    hooks[:] = saved


@pytest.mark.parametrize("workers", [1, 3])
def test_ordered_map_keeps_order(workers):
    def slow_square(x):
        time.sleep(0.001 * (x % 3))
        return x * x

    assert list(ordered_map(slow_square, range(40), workers)) == [x * x for x in range(40)]


def test_ordered_map_stopped_early_leaves_no_threads():
    gen = ordered_map(lambda x: x, range(1000), workers=3)
    next(gen)
    gen.close()
    assert wait_no_reader_threads() == []


def test_ordered_map_raises_a_task_error_at_its_turn():
    def fail_on_five(x):
        if x == 5:
            raise KeyError(x)
        return x

    gen = ordered_map(fail_on_five, range(20), workers=3)
    assert [next(gen) for _ in range(5)] == [0, 1, 2, 3, 4]
    with pytest.raises(KeyError):
        next(gen)
    assert wait_no_reader_threads() == []


def test_every_reader_thread_runs_the_exit_hooks(image):
    from wsikit import reader as reader_module

    ended = []
    hook = lambda: ended.append(threading.current_thread().name)  # noqa: E731
    reader_module.THREAD_EXIT_HOOKS.append(hook)
    try:
        source = CountingImage(image, (16, 16))
        list(stream_regions(TiledReader(), source, random_boxes(image.shape, 30, np.random.default_rng(4)), workers=3))
        assert sorted(ended) == ["wsikit-reader-0", "wsikit-reader-1"]
        ended.clear()
        assert list(ordered_map(lambda x: x + 1, range(20), workers=2)) == list(range(1, 21))
        assert len(ended) == 2
    finally:
        reader_module.THREAD_EXIT_HOOKS.remove(hook)


def _watched_grid(source: CountingImage, seen: set):
    from wsikit.reader import TileGrid

    def watched(ti, tj):
        seen.add(threading.current_thread())
        return source.decode(ti, tj)

    g = source.tile_grid
    return TileGrid(g.key, g.shape, g.tile_shape, g.pixel_shape, g.dtype, watched)


def test_large_reads_keep_their_helper_threads_until_idle_or_closed(image, monkeypatch):
    from wsikit.reader import workers as workers_module

    monkeypatch.setattr(workers_module, "IDLE_SECONDS", 0.3)
    source = CountingImage(image, (16, 16), delay=0.0005)
    seen: set = set()
    grid = _watched_grid(source, seen)
    reader = TiledReader(workers=3)
    np.testing.assert_array_equal(reader.read(grid, 0, 0, 200, 300), image[:200, :300])
    helpers = {t for t in seen if t.name.startswith("wsikit-reader")}
    assert helpers and all(t.is_alive() for t in helpers)  # kept for the next read
    seen.clear()
    reader.cache.clear()
    np.testing.assert_array_equal(reader.read(grid, 5, 7, 180, 290), image[5:180, 7:290])
    assert {t for t in seen if t.name.startswith("wsikit-reader")} <= helpers  # the same threads, no new ones
    time.sleep(0.6)
    assert wait_no_reader_threads(2.0) == []  # idle: ended
    seen.clear()
    reader.cache.clear()
    np.testing.assert_array_equal(reader.read(grid, 0, 0, 200, 300), image[:200, :300])  # started again
    assert any(t.name.startswith("wsikit-reader") for t in seen)
    reader.close()
    assert [t for t in threading.enumerate() if t.name.startswith("wsikit-reader")] == []  # close joins them


def test_kept_helper_threads_end_with_their_reader(image):
    reader = TiledReader(workers=3)
    source = CountingImage(image, (16, 16), delay=0.0002)
    reader.read(source.tile_grid, 0, 0, 200, 300)
    kept = [t for t in threading.enumerate() if t.name.startswith("wsikit-reader")]
    assert len(kept) == 2
    del reader  # dropped without close(): its threads are told to end
    for thread in kept:
        thread.join(5)
    assert not any(t.is_alive() for t in kept)


def test_with_exit_hooks_large_reads_end_their_threads_as_before(image):
    """Where reader threads must run exit hooks (a JVM to detach from), no thread is kept
    alive after a read: a JVM's shutdown would wait for a thread still attached."""
    from wsikit import reader as reader_module

    ended = []
    hook = lambda: ended.append(threading.current_thread().name)  # noqa: E731
    reader_module.THREAD_EXIT_HOOKS.append(hook)
    try:
        reader = TiledReader(workers=3)
        source = CountingImage(image, (16, 16), delay=0.0002)
        np.testing.assert_array_equal(reader.read(source.tile_grid, 0, 0, 200, 300), image[:200, :300])
        assert sorted(ended) == ["wsikit-reader-0", "wsikit-reader-1"]  # ended (and hooked) before read returned
        assert [t for t in threading.enumerate() if t.name.startswith("wsikit-reader")] == []
    finally:
        reader_module.THREAD_EXIT_HOOKS.remove(hook)
    reader.close()


def test_kept_helper_threads_run_the_exit_hooks_when_they_end(image, monkeypatch):
    from wsikit.reader import workers as workers_module

    ended = []
    pool = workers_module.IdlePool(2, 0.2)
    monkeypatch.setattr(workers_module, "THREAD_EXIT_HOOKS", [lambda: ended.append(threading.current_thread().name)])
    done = threading.Event()
    pool.submit(done.set)
    assert done.wait(5)
    assert wait_no_reader_threads() == []  # idle: ended
    assert sorted(ended) == ["wsikit-reader-0", "wsikit-reader-1"]
    pool.submit(done.clear)  # two threads started again
    pool.shutdown()
    assert not done.is_set() and len(ended) == 4  # the task ran; both new threads ran the hooks


def test_many_threads_share_the_kept_helpers(image):
    from concurrent.futures import ThreadPoolExecutor

    reader = TiledReader(workers=2)
    source = CountingImage(image, (16, 16))
    boxes = [(i, j, i + 100, j + 120) for i in range(0, 100, 23) for j in range(0, 190, 41)]  # inside 203 x 317

    def read(box):
        i0, j0, i1, j1 = box
        return np.array_equal(reader.read(source.tile_grid, *box), image[i0:i1, j0:j1])

    with ThreadPoolExecutor(4) as pool:
        assert all(pool.map(read, boxes * 3))
    assert len([t for t in threading.enumerate() if t.name.startswith("wsikit-reader")]) <= 1
    reader.close()


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_a_forked_child_reads_with_new_helper_threads(image):
    import os
    import warnings

    reader = TiledReader(workers=3)
    source = CountingImage(image, (16, 16))
    reader.read(source.tile_grid, 0, 0, 200, 300)  # the parent's helpers are running
    reader.cache.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads: what this test is about
        pid = os.fork()
    if pid == 0:  # the child: the parent's helper threads did not come along
        code = 1
        try:
            ok = np.array_equal(reader.read(source.tile_grid, 3, 4, 190, 280), image[3:190, 4:280])
            reader.close()
            code = 0 if ok else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    reader.close()
