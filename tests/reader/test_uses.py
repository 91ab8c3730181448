"""count_uses: how many regions of a stream need each native tile."""
from __future__ import annotations

import numpy as np

from tests.reader.sources import CountingImage, random_boxes
from wsikit.reader import count_uses


def test_count_uses_matches_a_brute_force_count(image):
    source = CountingImage(image, (30, 40))
    other = CountingImage(image[:100, :100], (25, 25), key="other")
    rng = np.random.default_rng(9)
    boxes = [(source.tile_grid,) + b for b in random_boxes(image.shape, 300, rng)]
    boxes += [(other.tile_grid,) + b for b in random_boxes((100, 100), 50, rng)] + [None]
    uses = count_uses(iter(boxes))
    for grid in (source.tile_grid, other.tile_grid):
        expected = np.zeros(grid.tile_counts, np.int64)
        th, tw = grid.tile_shape
        for box in boxes:
            if box is not None and box[0] is grid:
                _, i0, j0, i1, j1 = box
                expected[i0 // th : (i1 - 1) // th + 1, j0 // tw : (j1 - 1) // tw + 1] += 1
        np.testing.assert_array_equal(uses[grid.key], expected)


def test_a_window_counts_the_requests_ahead_and_forgets_used_tiles(image):
    from wsikit.reader.uses import UseWindow, counted_ahead

    source = CountingImage(image, (30, 40))
    grid = source.tile_grid
    rng = np.random.default_rng(4)
    boxes = [(grid,) + b for b in random_boxes(image.shape, 200, rng)]
    window = UseWindow()
    pulled = counted_ahead(iter(boxes), lambda box: box, window, horizon=16)
    full = count_uses(iter(boxes))[grid.key].copy()
    seen = np.zeros_like(full)
    th, tw = grid.tile_shape
    for n, box in enumerate(pulled):
        assert box is boxes[n]
        _, i0, j0, i1, j1 = box
        counts = window.get(grid.key)
        # every request up to 16 ahead is counted, none further
        ahead = count_uses(iter(boxes[n : n + 17]))[grid.key]
        for ti in range(i0 // th, (i1 - 1) // th + 1):
            for tj in range(j0 // tw, (j1 - 1) // tw + 1):
                assert counts[ti, tj] == ahead[ti, tj]
                counts[ti, tj] = counts[ti, tj] - 1  # as the stream does when the request is read
                seen[ti, tj] += 1
    assert window.counts == {}  # nothing left once every request is read
    np.testing.assert_array_equal(seen, full)
