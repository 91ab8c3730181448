"""TiledReader.read from several threads at once: a large read takes the helper threads
only while few reads run; with more callers than half the workers each decodes its own
tiles (the cores are busy already), with the same pixels."""
from __future__ import annotations

import threading
import time

import numpy as np

from tests.reader.sources import CountingImage, wait_no_reader_threads
from wsikit.reader import TiledReader, TileGrid


def _watched_grid(source: CountingImage, key: str, seen: list[str], gate: threading.Event | None = None,
                  started: threading.Event | None = None) -> TileGrid:
    base = source.tile_grid

    def decode(ti: int, tj: int) -> np.ndarray:
        seen.append(threading.current_thread().name)
        if gate is not None and (ti, tj) == (0, 0):  # the read is held here; its other tiles finish
            started.set()
            assert gate.wait(10)
        return source.decode(ti, tj)

    return TileGrid(key, base.shape, base.tile_shape, base.pixel_shape, base.dtype, decode)


def test_a_large_read_beside_another_decodes_in_its_own_thread(image):
    reader = TiledReader(workers=2)
    gate, started = threading.Event(), threading.Event()
    first_seen: list[str] = []
    second_seen: list[str] = []
    first = _watched_grid(CountingImage(image, (16, 16)), "first", first_seen, gate, started)
    second = _watched_grid(CountingImage(image, (16, 16), delay=0.0002), "second", second_seen)
    results: dict[str, np.ndarray] = {}
    thread = threading.Thread(target=lambda: results.setdefault("first", reader.read(first, 0, 0, 100, 100)))
    thread.start()
    try:
        assert started.wait(10)  # the first read is in progress, held in a decode
        while len(first_seen) < 49:  # its other 48 tiles decoded: the helper thread is free
            time.sleep(0.001)
        box = reader.read(second, 3, 5, 120, 200)  # 8 x 13 native tiles: large
        np.testing.assert_array_equal(box, image[3:120, 5:200])
        assert set(second_seen) == {threading.current_thread().name}  # no hand-off to helpers
    finally:
        gate.set()
        thread.join(10)
    np.testing.assert_array_equal(results["first"], image[:100, :100])
    # alone again: the next large read uses the helpers once more
    third_seen: list[str] = []
    slow = CountingImage(image, (16, 16), delay=0.0002)
    np.testing.assert_array_equal(reader.read(_watched_grid(slow, "third", third_seen), 0, 0, 203, 317), image)
    assert any(name.startswith("wsikit-reader") for name in third_seen)
    reader.close()
    assert wait_no_reader_threads() == []


def test_concurrent_large_reads_give_the_image(image):
    reader = TiledReader(workers=2)
    source = CountingImage(image, (16, 16))
    rng = np.random.default_rng(5)
    boxes = [(int(i), int(j), int(i) + 60, int(j) + 70) for i, j in zip(rng.integers(0, 143, 40),
                                                                      rng.integers(0, 247, 40))]
    failures: list[str] = []

    def work(part: list[tuple[int, int, int, int]]) -> None:
        for i0, j0, i1, j1 in part:
            if not np.array_equal(reader.read(source.tile_grid, i0, j0, i1, j1), image[i0:i1, j0:j1]):
                failures.append(f"box {(i0, j0, i1, j1)}")

    threads = [threading.Thread(target=work, args=(boxes[k::4],)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert failures == []
    assert reader._reads == 0
    reader.close()
