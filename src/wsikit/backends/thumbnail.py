"""Thumbnails: a whole level averaged down to a small picture, in bands of rows so that
memory stays bounded whatever the level's size."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..limits import check_allocation
from ..pixels import block_mean, display_rgb, resize_area

if TYPE_CHECKING:
    from .base import SlideBackend

# Pixels held at once while a level is averaged down (float32 RGB, or the planes read).
BAND_BYTES = 64 * 1024**2


def smallest_level_covering(level_shapes: tuple[tuple[int, int], ...], out_shape: tuple[int, int]) -> int:
    """The smallest level at least ``out_shape`` on both axes (level 0 when none is)."""
    for level in range(len(level_shapes) - 1, -1, -1):
        h, w = level_shapes[level]
        if h >= out_shape[0] and w >= out_shape[1]:
            return level
    return 0


def reduced_level(slide: SlideBackend, level: int, out_shape: tuple[int, int]) -> np.ndarray:
    """A uint8 RGB (h, w, 3) picture of the whole ``level`` of ``slide``, of ``out_shape``:
    integer block means in bands of rows, then one area resize to the exact shape."""
    h, w = slide.level_shapes[level]
    factor = max(1, min(h // out_shape[0], w // out_shape[1]))
    row_bytes = w * max(3 * 4, int(np.prod(slide._pixel_shape(True)[0])))
    band = max(factor, (BAND_BYTES // max(1, row_bytes)) // factor * factor)
    band = min(band, -(-h // factor) * factor)
    reduced_shape = (-(-h // factor), -(-w // factor), 3)
    check_allocation(reduced_shape, 4, "thumbnail intermediate", slide.path)
    reduced = np.empty(reduced_shape, dtype=np.float32)
    for i in range(0, h, band):
        rows = min(band, h - i)
        part = display_rgb(slide._extract(level, (i, 0), (rows, w), True))
        reduced[i // factor : i // factor + -(-rows // factor)] = block_mean(part, factor)
    return resize_area(reduced, out_shape)
