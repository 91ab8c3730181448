"""The tile reader on its own: cache, stitching, streams of regions, look-ahead, threads."""
from __future__ import annotations

import itertools
import threading
import time

import numpy as np
import pytest

from wsikit.reader import TileCache, TiledReader, TileGrid, count_uses, ordered_map


def _reader_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("wsikit")]


def _wait_no_reader_threads(timeout=5.0) -> list[threading.Thread]:
    deadline = time.monotonic() + timeout
    while _reader_threads() and time.monotonic() < deadline:
        time.sleep(0.01)
    return _reader_threads()


class CountingImage:
    """A numpy image read through a TileGrid (``tile_grid``) whose decoder counts its calls
    (and can fail or be slow)."""

    def __init__(self, image: np.ndarray, tile_shape, *, padded=True, fail=(), delay=0.0, key="img"):
        self.image = image
        self.calls: dict = {}
        self.lock = threading.Lock()
        self.fail = set(fail)
        self.delay = delay
        self.padded = padded
        th, tw = tile_shape
        self.tile_grid = TileGrid(key, image.shape[:2], tile_shape, image.shape[2:], image.dtype, self.decode)

    def decode(self, ti, tj):
        with self.lock:
            self.calls[(ti, tj)] = self.calls.get((ti, tj), 0) + 1
        if self.delay:
            time.sleep(self.delay)
        if (ti, tj) in self.fail:
            raise RuntimeError(f"tile {ti},{tj} is broken")
        th, tw = self.tile_grid.tile_shape
        part = self.image[ti * th : (ti + 1) * th, tj * tw : (tj + 1) * tw]
        if self.padded:  # edge tiles decoded at full size, like JPEG tiles
            out = np.full((th, tw) + self.image.shape[2:], 77, dtype=self.image.dtype)
            out[: part.shape[0], : part.shape[1]] = part
            return out
        return part.copy()


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    rng = np.random.default_rng(7)
    return rng.integers(0, 255, size=(203, 317, 3), dtype=np.uint8)


def _random_boxes(shape, n, rng, max_size=90):
    boxes = []
    for _ in range(n):
        h, w = rng.integers(1, max_size, size=2)
        i = int(rng.integers(0, shape[0] - h + 1))
        j = int(rng.integers(0, shape[1] - w + 1))
        boxes.append((i, j, i + int(h), j + int(w)))
    return boxes


# -- TileCache ---------------------------------------------------------------------------

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


# -- TiledReader.read -------------------------------------------------------------------

@pytest.mark.parametrize("padded", [True, False])
def test_read_equals_the_image_for_random_boxes(image, padded):
    source = CountingImage(image, (64, 48), padded=padded)
    reader = TiledReader()
    rng = np.random.default_rng(1)
    for i0, j0, i1, j1 in _random_boxes(image.shape, 200, rng) + [(0, 0, 203, 317), (202, 316, 203, 317)]:
        np.testing.assert_array_equal(reader.read(source.tile_grid, i0, j0, i1, j1), image[i0:i1, j0:j1])
    # every native tile decoded once: the cache holds them all
    assert set(source.calls.values()) == {1}


def test_a_whole_native_tile_is_the_decoded_tile_itself_and_not_kept(image):
    """No copy for a box equal to one native tile; such a tile is not cached (it is likely
    read once), while tiles a box uses in part are (its neighbours are likely to need them)."""
    decoded = []
    source = CountingImage(image, (64, 48))
    grid = TileGrid("img", source.tile_grid.shape, source.tile_grid.tile_shape, source.tile_grid.pixel_shape, source.tile_grid.dtype,
                    lambda ti, tj: decoded.append(source.decode(ti, tj)) or decoded[-1])
    reader = TiledReader()
    a = reader.read(grid, 64, 48, 128, 96)
    assert a is decoded[-1] and not a.flags.writeable
    np.testing.assert_array_equal(a, image[64:128, 48:96])
    assert len(reader.cache) == 0
    b = reader.read(grid, 64, 48, 128, 96)
    assert b is decoded[-1] and b is not a and len(decoded) == 2
    reader.read(grid, 70, 50, 100, 90)  # a part of the same tile: kept
    assert len(reader.cache) == 1 and len(decoded) == 3
    c = reader.read(grid, 64, 48, 128, 96)
    assert c is decoded[-1] and len(decoded) == 3  # now served from the cache, still without a copy


def test_a_short_native_tile_is_an_error(image):
    grid = TileGrid("short", image.shape[:2], (64, 64), (3,), image.dtype, lambda ti, tj: np.zeros((10, 64, 3), np.uint8))
    with pytest.raises(ValueError, match="native tile"):
        TiledReader().read(grid, 0, 0, 64, 64)
    with pytest.raises(ValueError, match="native tile"):
        TiledReader().read(grid, 0, 0, 100, 100)


# -- streams -------------------------------------------------------------------------------

def _stream(reader, source, boxes, workers, uses=None, lookahead=None):
    box_of = lambda b: (source.tile_grid,) + b  # noqa: E731
    finish = lambda b, a: a  # noqa: E731
    return reader.stream(boxes, box_of, finish, workers=workers, uses=uses, lookahead=lookahead)


@pytest.mark.parametrize("workers", [1, 2, 4])
@pytest.mark.parametrize("know_uses", [True, False])
def test_stream_gives_every_region_in_order(image, workers, know_uses):
    source = CountingImage(image, (64, 48))
    reader = TiledReader()
    boxes = _random_boxes(image.shape, 150, np.random.default_rng(workers))
    uses = count_uses((source.tile_grid,) + b for b in boxes) if know_uses else None
    out = list(_stream(reader, source, boxes, workers, uses))
    assert [item for item, _, _ in out] == boxes
    for (i0, j0, i1, j1), value, error in out:
        assert error is None
        np.testing.assert_array_equal(value, image[i0:i1, j0:j1])
    if know_uses:
        assert reader.cache.nbytes == 0  # every tile dropped after its last use


@pytest.mark.parametrize("tile", [224, 300])
def test_tiling_with_known_uses_decodes_each_native_tile_once(tile):
    rng = np.random.default_rng(3)
    big = rng.integers(0, 255, size=(1500, 1700, 3), dtype=np.uint8)
    source = CountingImage(big, (256, 256))
    reader = TiledReader(cache_bytes=64 * 1024**2)
    boxes = [(i, j, i + tile, j + tile) for i in range(0, 1500 - tile + 1, 200) for j in range(0, 1700 - tile + 1, 200)]
    uses = count_uses((source.tile_grid,) + b for b in boxes)
    for (i0, j0, i1, j1), value, error in _stream(reader, source, boxes, 2, uses):
        assert error is None
        np.testing.assert_array_equal(value, big[i0:i1, j0:j1])
    assert set(source.calls.values()) == {1}
    assert reader.cache.nbytes == 0


def test_aligned_regions_do_not_fill_the_cache(image):
    source = CountingImage(image, (50, 50))
    reader = TiledReader()
    boxes = [(i, j, i + 50, j + 50) for i in range(0, 151, 50) for j in range(0, 251, 50)]
    for uses in (None, count_uses((source.tile_grid,) + b for b in boxes)):
        for box, value, error in _stream(reader, source, boxes, 2, uses):
            assert value.shape == (50, 50, 3) and not value.flags.writeable
        assert reader.cache.nbytes == 0


def test_stream_works_with_a_cache_too_small_for_anything(image):
    source = CountingImage(image, (32, 32))
    reader = TiledReader(cache_bytes=0)
    boxes = _random_boxes(image.shape, 100, np.random.default_rng(5))
    for workers in (1, 3):
        for (i0, j0, i1, j1), value, error in _stream(reader, source, boxes, workers):
            np.testing.assert_array_equal(value, image[i0:i1, j0:j1])
    assert reader.cache.nbytes == 0


def test_stream_hands_back_errors_in_order_and_goes_on(image):
    source = CountingImage(image, (64, 64), fail={(1, 1)})
    boxes = [(0, 0, 64, 64), (64, 64, 100, 100), (100, 100, 150, 150), (0, 200, 60, 260)]
    for workers in (1, 2):
        out = list(_stream(TiledReader(), source, boxes, workers))
        assert [o[0] for o in out] == boxes
        assert out[0][2] is None and out[3][2] is None
        assert isinstance(out[1][2], RuntimeError) and isinstance(out[2][2], RuntimeError)
        assert out[1][1] is None


def test_stream_hands_back_errors_of_finish_and_box_of(image):
    source = CountingImage(image, (64, 64))

    def box_of(b):
        if b == "bad":
            raise TypeError("location must be a pair")
        return (source.tile_grid,) + b

    def finish(b, a):
        if b[0] == 10:
            raise ZeroDivisionError("finish failed")
        return a

    items = [(0, 0, 5, 5), "bad", (10, 10, 20, 20), (30, 30, 40, 40)]
    for workers in (1, 2):
        out = list(TiledReader().stream(items, box_of, finish, workers=workers))
        assert [type(e).__name__ if e else None for _, _, e in out] == [None, "TypeError", "ZeroDivisionError", None]


def test_stream_regions_with_nothing_to_read(image):
    source = CountingImage(image, (64, 64))
    items = [None, (0, 0, 8, 8), None]
    out = list(TiledReader().stream(items, lambda b: None if b is None else (source.tile_grid,) + b,
                                    lambda b, a: "empty" if a is None else a.shape, workers=2))
    assert [v for _, v, _ in out] == ["empty", (8, 8, 3), "empty"]


def test_eight_streams_at_once_share_one_reader(image):
    source = CountingImage(image, (40, 40), delay=0.0005)
    reader = TiledReader(cache_bytes=200_000)
    failures = []

    def run(seed):
        boxes = _random_boxes(image.shape, 60, np.random.default_rng(seed))
        uses = count_uses((source.tile_grid,) + b for b in boxes) if seed % 2 else None
        for (i0, j0, i1, j1), value, error in _stream(reader, source, boxes, 1 + seed % 3, uses):
            if error is not None or not np.array_equal(value, image[i0:i1, j0:j1]):
                failures.append((seed, (i0, j0, i1, j1), error))

    threads = [threading.Thread(target=run, args=(s,)) for s in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert reader.cache.nbytes <= 200_000


def test_stream_look_ahead_is_bounded(image):
    source = CountingImage(image, (16, 16))
    pulled = []

    def items():
        for k in itertools.count():
            pulled.append(k)
            yield (0, (k * 7) % 300, 16, (k * 7) % 300 + 16)

    stream = _stream(TiledReader(), source, items(), workers=2, lookahead=5)
    for consumed in range(1, 30):
        next(stream)
        assert len(pulled) <= consumed + 5
    stream.close()
    assert _wait_no_reader_threads() == []
    # decodes were bounded by the look-ahead too
    assert sum(source.calls.values()) <= 30 + 5


def test_a_consumer_that_stops_early_leaves_no_threads(image):
    source = CountingImage(image, (16, 16), delay=0.001)
    boxes = _random_boxes(image.shape, 500, np.random.default_rng(2))
    stream = _stream(TiledReader(), source, boxes, workers=4)
    next(stream)
    assert _reader_threads()
    del stream
    assert _wait_no_reader_threads() == []

    for _ in _stream(TiledReader(), source, boxes, workers=4):
        break
    assert _wait_no_reader_threads() == []


def test_a_stream_not_started_starts_no_threads(image):
    source = CountingImage(image, (16, 16))
    stream = _stream(TiledReader(), source, [(0, 0, 4, 4)], workers=4)
    assert _reader_threads() == []
    del stream


# -- count_uses ----------------------------------------------------------------------------

def test_count_uses_matches_a_brute_force_count(image):
    source = CountingImage(image, (30, 40))
    other = CountingImage(image[:100, :100], (25, 25), key="other")
    rng = np.random.default_rng(9)
    boxes = [(source.tile_grid,) + b for b in _random_boxes(image.shape, 300, rng)]
    boxes += [(other.tile_grid,) + b for b in _random_boxes((100, 100), 50, rng)] + [None]
    uses = count_uses(iter(boxes))
    for grid in (source.tile_grid, other.tile_grid):
        expected = np.zeros(grid.tile_counts, np.int64)
        th, tw = grid.tile_shape
        for box in boxes:
            if box is not None and box[0] is grid:
                _, i0, j0, i1, j1 = box
                expected[i0 // th : (i1 - 1) // th + 1, j0 // tw : (j1 - 1) // tw + 1] += 1
        np.testing.assert_array_equal(uses[grid.key], expected)


# -- ordered_map ---------------------------------------------------------------------------

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
    assert _wait_no_reader_threads() == []


def test_a_native_tile_of_the_wrong_pixel_type_is_an_error(image):
    gray = TileGrid("gray", image.shape[:2], (64, 64), (3,), image.dtype, lambda ti, tj: np.zeros((64, 64, 1), np.uint8))
    wide = TileGrid("wide", image.shape[:2], (64, 64), (3,), image.dtype, lambda ti, tj: np.zeros((64, 64, 3), np.uint16))
    for grid in (gray, wide):
        for box in ((0, 0, 64, 64), (0, 0, 100, 100)):
            with pytest.raises(ValueError, match="native tile"):
                TiledReader().read(grid, *box)
            [(_, value, error)] = TiledReader().stream([box], lambda b: (grid,) + b, lambda b, a: a, workers=2)
            assert value is None and isinstance(error, ValueError)


def test_two_streams_of_one_reader_consumed_in_turns_by_one_thread(image):
    # Each stream may queue a decode the other waits for: neither may wait for the other's
    # consumer to come back.
    source = CountingImage(image, (32, 32))
    reader = TiledReader()
    boxes = [(i, j, i + 20, j + 20) for i in range(0, 180, 15) for j in range(0, 290, 15)]
    a = _stream(reader, source, boxes, workers=2)
    b = _stream(reader, source, list(reversed(boxes)), workers=2)
    for (box_a, value_a, _), (box_b, value_b, _) in zip(a, b):
        np.testing.assert_array_equal(value_a, image[box_a[0] : box_a[2], box_a[1] : box_a[3]])
        np.testing.assert_array_equal(value_b, image[box_b[0] : box_b[2], box_b[1] : box_b[3]])


def test_a_waiting_cache_reader_runs_a_decode_nobody_started(image):
    source = CountingImage(image, (32, 32))
    cache = TileCache()
    _, pending, owner = cache._claim(("img", 0, 0), True, (source.tile_grid, 0, 0))
    assert owner and not pending.started
    # nobody runs the queued decode: get() must not wait forever
    value = cache.get(("img", 0, 0), lambda: pytest.fail("the queued decode is the one to run"))
    np.testing.assert_array_equal(value, image[:32, :32])
    assert source.calls == {(0, 0): 1}


@pytest.mark.parametrize("workers", [1, 3])
def test_a_large_read_decodes_its_tiles_on_several_threads(image, workers):
    source = CountingImage(image, (16, 16), delay=0.0002)
    reader = TiledReader(workers=workers)
    seen = set()
    decode = source.decode

    def watched(ti, tj):
        seen.add(threading.current_thread().name)
        return decode(ti, tj)

    grid = TileGrid("watched", source.tile_grid.shape, (16, 16), (3,), image.dtype, watched)
    np.testing.assert_array_equal(reader.read(grid, 3, 5, 200, 300), image[3:200, 5:300])
    assert set(source.calls.values()) == {1}
    if workers == 1:
        assert seen == {threading.current_thread().name}
    else:
        assert any(name.startswith("wsikit-reader") for name in seen)
    assert _wait_no_reader_threads() == []


def test_every_reader_thread_runs_the_exit_hooks(image):
    from wsikit import reader as reader_module

    ended = []
    hook = lambda: ended.append(threading.current_thread().name)  # noqa: E731
    reader_module.THREAD_EXIT_HOOKS.append(hook)
    try:
        source = CountingImage(image, (16, 16))
        list(_stream(TiledReader(), source, _random_boxes(image.shape, 30, np.random.default_rng(4)), workers=3))
        assert sorted(ended) == ["wsikit-reader-0", "wsikit-reader-1"]
        ended.clear()
        assert list(ordered_map(lambda x: x + 1, range(20), workers=2)) == list(range(1, 21))
        assert len(ended) == 2
    finally:
        reader_module.THREAD_EXIT_HOOKS.remove(hook)


def test_ordered_map_raises_a_task_error_at_its_turn():
    def fail_on_five(x):
        if x == 5:
            raise KeyError(x)
        return x

    gen = ordered_map(fail_on_five, range(20), workers=3)
    assert [next(gen) for _ in range(5)] == [0, 1, 2, 3, 4]
    with pytest.raises(KeyError):
        next(gen)
    assert _wait_no_reader_threads() == []
