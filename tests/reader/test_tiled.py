"""TiledReader: one region stitched from native tiles, and streams of regions (order,
errors in their place, look-ahead, threads, use counts that free tiles)."""
from __future__ import annotations

import itertools
import threading

import numpy as np
import pytest

from tests.reader.sources import CountingImage, random_boxes, reader_threads, stream_regions, wait_no_reader_threads
from wsikit.reader import TiledReader, TileGrid, count_uses


@pytest.mark.parametrize("padded", [True, False])
def test_read_equals_the_image_for_random_boxes(image, padded):
    source = CountingImage(image, (64, 48), padded=padded)
    reader = TiledReader()
    rng = np.random.default_rng(1)
    for i0, j0, i1, j1 in random_boxes(image.shape, 200, rng) + [(0, 0, 203, 317), (202, 316, 203, 317)]:
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


def test_a_native_tile_of_the_wrong_pixel_type_is_an_error(image):
    gray = TileGrid("gray", image.shape[:2], (64, 64), (3,), image.dtype, lambda ti, tj: np.zeros((64, 64, 1), np.uint8))
    wide = TileGrid("wide", image.shape[:2], (64, 64), (3,), image.dtype, lambda ti, tj: np.zeros((64, 64, 3), np.uint16))
    for grid in (gray, wide):
        for box in ((0, 0, 64, 64), (0, 0, 100, 100)):
            with pytest.raises(ValueError, match="native tile"):
                TiledReader().read(grid, *box)
            [(_, value, error)] = TiledReader().stream([box], lambda b: (grid,) + b, lambda b, a: a, workers=2)
            assert value is None and isinstance(error, ValueError)


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
    assert wait_no_reader_threads() == []



@pytest.mark.parametrize("workers", [1, 2, 4])
@pytest.mark.parametrize("know_uses", [True, False])
def test_stream_gives_every_region_in_order(image, workers, know_uses):
    source = CountingImage(image, (64, 48))
    reader = TiledReader()
    boxes = random_boxes(image.shape, 150, np.random.default_rng(workers))
    uses = count_uses((source.tile_grid,) + b for b in boxes) if know_uses else None
    out = list(stream_regions(reader, source, boxes, workers, uses))
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
    for (i0, j0, i1, j1), value, error in stream_regions(reader, source, boxes, 2, uses):
        assert error is None
        np.testing.assert_array_equal(value, big[i0:i1, j0:j1])
    assert set(source.calls.values()) == {1}
    assert reader.cache.nbytes == 0


def test_aligned_regions_do_not_fill_the_cache(image):
    source = CountingImage(image, (50, 50))
    reader = TiledReader()
    boxes = [(i, j, i + 50, j + 50) for i in range(0, 151, 50) for j in range(0, 251, 50)]
    for uses in (None, count_uses((source.tile_grid,) + b for b in boxes)):
        for box, value, error in stream_regions(reader, source, boxes, 2, uses):
            assert value.shape == (50, 50, 3) and not value.flags.writeable
        assert reader.cache.nbytes == 0


def test_stream_works_with_a_cache_too_small_for_anything(image):
    source = CountingImage(image, (32, 32))
    reader = TiledReader(cache_bytes=0)
    boxes = random_boxes(image.shape, 100, np.random.default_rng(5))
    for workers in (1, 3):
        for (i0, j0, i1, j1), value, error in stream_regions(reader, source, boxes, workers):
            np.testing.assert_array_equal(value, image[i0:i1, j0:j1])
    assert reader.cache.nbytes == 0


def test_stream_hands_back_errors_in_order_and_goes_on(image):
    source = CountingImage(image, (64, 64), fail={(1, 1)})
    boxes = [(0, 0, 64, 64), (64, 64, 100, 100), (100, 100, 150, 150), (0, 200, 60, 260)]
    for workers in (1, 2):
        out = list(stream_regions(TiledReader(), source, boxes, workers))
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
        boxes = random_boxes(image.shape, 60, np.random.default_rng(seed))
        uses = count_uses((source.tile_grid,) + b for b in boxes) if seed % 2 else None
        for (i0, j0, i1, j1), value, error in stream_regions(reader, source, boxes, 1 + seed % 3, uses):
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

    stream = stream_regions(TiledReader(), source, items(), workers=2, lookahead=5)
    for consumed in range(1, 30):
        next(stream)
        assert len(pulled) <= consumed + 5
    stream.close()
    assert wait_no_reader_threads() == []
    # decodes were bounded by the look-ahead too
    assert sum(source.calls.values()) <= 30 + 5


def test_a_consumer_that_stops_early_leaves_no_threads(image):
    source = CountingImage(image, (16, 16), delay=0.001)
    boxes = random_boxes(image.shape, 500, np.random.default_rng(2))
    stream = stream_regions(TiledReader(), source, boxes, workers=4)
    next(stream)
    assert reader_threads()
    del stream
    assert wait_no_reader_threads() == []

    for _ in stream_regions(TiledReader(), source, boxes, workers=4):
        break
    assert wait_no_reader_threads() == []


def test_a_stream_not_started_starts_no_threads(image):
    source = CountingImage(image, (16, 16))
    stream = stream_regions(TiledReader(), source, [(0, 0, 4, 4)], workers=4)
    assert reader_threads() == []
    del stream


def test_two_streams_of_one_reader_consumed_in_turns_by_one_thread(image):
    # Each stream may queue a decode the other waits for: neither may wait for the other's
    # consumer to come back.
    source = CountingImage(image, (32, 32))
    reader = TiledReader()
    boxes = [(i, j, i + 20, j + 20) for i in range(0, 180, 15) for j in range(0, 290, 15)]
    a = stream_regions(reader, source, boxes, workers=2)
    b = stream_regions(reader, source, list(reversed(boxes)), workers=2)
    for (box_a, value_a, _), (box_b, value_b, _) in zip(a, b):
        np.testing.assert_array_equal(value_a, image[box_a[0] : box_a[2], box_a[1] : box_a[3]])
        np.testing.assert_array_equal(value_b, image[box_b[0] : box_b[2], box_b[1] : box_b[3]])
