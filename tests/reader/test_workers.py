"""Worker threads: the in-order parallel map and the hooks every reader thread runs as it ends."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from tests.reader.sources import CountingImage, random_boxes, stream_regions, wait_no_reader_threads
from wsikit.reader import TiledReader, ordered_map


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
