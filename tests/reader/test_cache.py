"""TileCache: decoded native tiles shared between readers, bounded in bytes, each decoded once
however many threads ask for it."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from tests.reader.sources import CountingImage
from wsikit.reader import TileCache


def test_cache_is_lru_and_bounded_in_bytes():
    cache = TileCache(max_bytes=3000)
    for k in range(10):
        cache.get(k, lambda: np.zeros(1000, np.uint8))
        assert cache.nbytes <= 3000
    assert len(cache) == 3
    assert [k in cache for k in (7, 8, 9)] == [True, True, True]
    cache.get(7, lambda: pytest.fail("7 is cached"))  # 7 becomes most recent
    cache.get(10, lambda: np.zeros(1000, np.uint8))
    assert 8 not in cache and 7 in cache and 10 in cache


def test_cache_keeps_nothing_larger_than_its_bound():
    cache = TileCache(max_bytes=100)
    value = cache.get("big", lambda: np.zeros(1000, np.uint8))
    assert value.shape == (1000,) and cache.nbytes == 0 and len(cache) == 0
    assert not value.flags.writeable


def test_cache_rejects_bad_bounds():
    for bad in (-1, 1.5, True, "1"):
        with pytest.raises(ValueError, match="cache_bytes"):
            TileCache(bad)


def test_cache_bound_holds_under_concurrent_use():
    cache = TileCache(max_bytes=50_000)
    seen = []
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            seen.append(cache.nbytes)

    def work(seed):
        rng = np.random.default_rng(seed)
        for _ in range(400):
            key = int(rng.integers(0, 60))
            size = 1000 + key * 100
            value = cache.get(key, lambda: np.full(size, key % 250, np.uint8))
            assert value.nbytes == size and value[0] == key % 250

    watcher = threading.Thread(target=watch)
    watcher.start()
    threads = [threading.Thread(target=work, args=(s,)) for s in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    watcher.join()
    assert max(seen) <= 50_000
    assert cache.nbytes == sum(v.nbytes for v in cache._items.values()) <= 50_000


def _run_until_gate_opens(targets, gate: threading.Event) -> None:
    """Start a thread per target, let them all block on ``gate``, open it, join them."""
    threads = [threading.Thread(target=target) for target in targets]
    for t in threads:
        t.start()
    time.sleep(0.05)
    gate.set()
    for t in threads:
        t.join()


def test_concurrent_requests_for_one_key_decode_once():
    cache = TileCache()
    calls = []
    gate = threading.Event()

    def make():
        calls.append(1)
        gate.wait(5)
        return np.arange(10)

    results = []
    _run_until_gate_opens([lambda: results.append(cache.get("k", make))] * 8, gate)
    assert len(calls) == 1
    assert len(results) == 8 and all(r is results[0] for r in results)


def test_a_failed_decode_reaches_every_waiter_and_is_not_cached():
    cache = TileCache()
    gate = threading.Event()

    def bad():
        gate.wait(5)
        raise OSError("disk on fire")

    errors = []

    def get():
        try:
            cache.get("k", bad)
        except OSError as exc:
            errors.append(exc)

    _run_until_gate_opens([get] * 4, gate)
    assert len(errors) == 4
    assert cache.get("k", lambda: np.ones(3)).tolist() == [1, 1, 1]


def test_discard_drops_a_value_and_a_pending_keep():
    cache = TileCache()
    cache.get("a", lambda: np.ones(3))
    cache.discard("a")
    assert "a" not in cache and cache.nbytes == 0
    value, pending, owner = cache._claim("b", True)
    assert value is None and owner
    cache.discard("b")  # while it is being decoded
    cache._store("b", pending, np.ones(4))
    assert "b" not in cache and pending.result().tolist() == [1, 1, 1, 1]


def test_a_waiting_cache_reader_runs_a_decode_nobody_started(image):
    source = CountingImage(image, (32, 32))
    cache = TileCache()
    _, pending, owner = cache._claim(("img", 0, 0), True, (source.tile_grid, 0, 0))
    assert owner and not pending.started
    # nobody runs the queued decode: get() must not wait forever
    value = cache.get(("img", 0, 0), lambda: pytest.fail("the queued decode is the one to run"))
    np.testing.assert_array_equal(value, image[:32, :32])
    assert source.calls == {(0, 0): 1}
