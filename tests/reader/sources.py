"""A tile source and thread probes the reader tests share."""
from __future__ import annotations

import threading
import time

import numpy as np

from wsikit.reader import TileGrid


def reader_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("wsikit")]


def wait_no_reader_threads(timeout=5.0) -> list[threading.Thread]:
    deadline = time.monotonic() + timeout
    while reader_threads() and time.monotonic() < deadline:
        time.sleep(0.01)
    return reader_threads()


def random_boxes(shape, n, rng, max_size=90):
    boxes = []
    for _ in range(n):
        h, w = rng.integers(1, max_size, size=2)
        i = int(rng.integers(0, shape[0] - h + 1))
        j = int(rng.integers(0, shape[1] - w + 1))
        boxes.append((i, j, i + int(h), j + int(w)))
    return boxes


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


def stream_regions(reader, source, boxes, workers, uses=None, lookahead=None):
    """``reader.stream`` of boxes (i0, j0, i1, j1) of ``source``, each handed back as read."""
    box_of = lambda b: (source.tile_grid,) + b  # noqa: E731
    finish = lambda b, a: a  # noqa: E731
    return reader.stream(boxes, box_of, finish, workers=workers, uses=uses, lookahead=lookahead)
