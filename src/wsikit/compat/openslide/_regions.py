"""OpenSlide's ``read_region`` on a wsikit backend: level-0 (x, y), a level, (w, h) -> RGBA.

Conventions, as OpenSlide's:

- ``location`` is in level-0 pixels; the region starts at level pixel (x / d, y / d) for the
  level's downsample d. OpenSlide paints its tiles at that fractional position (and so
  interpolates between neighbouring pixels when x / d is not whole); wsikit reads the level's
  own pixels from the nearest whole position, so both agree exactly wherever OpenSlide's
  position is whole (level 0, or x a multiple of d) and differ by at most that sub-pixel
  shift elsewhere.
- A negative coordinate moves the region's start off the slide by ``int(-x / d)`` level
  pixels, as OpenSlide computes it.
- Pixels outside the level are transparent, (0, 0, 0, 0); pixels inside are opaque. This is
  openslide-python's unpremultiplied output of OpenSlide's premultiplied ARGB: fully
  transparent pixels have colour 0.
- A level outside the slide gives a wholly transparent image; a negative size raises
  OpenSlideError (the caller's check).

Slides read by the OpenSlide backend are read by OpenSlide itself (identical output,
including its partially transparent edges and its own background).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from ...pixels import display_rgb


def level_start(coordinate: int, downsample: float) -> int:
    """The level pixel where a region at level-0 ``coordinate`` starts."""
    if coordinate < 0:
        return -int(-coordinate / downsample)
    return int(math.floor(coordinate / downsample + 0.5))


def region_rgba(backend: Any, x: int, y: int, level: int, width: int, height: int) -> np.ndarray:
    """The (height, width, 4) uint8 RGBA pixels OpenSlide's read_region gives for these arguments."""
    return np.asarray(region_image(backend, x, y, level, width, height))


def region_image(backend: Any, x: int, y: int, level: int, width: int, height: int) -> Any:
    """:func:`region_rgba` as a writable RGBA PIL image."""
    from PIL import Image

    from ...backends.openslide import OpenSlideBackend

    if isinstance(backend, OpenSlideBackend):
        direct = backend.read_rgba((x, y), level, (width, height))
        if direct is not None:
            # A copy: a view of the array would be read-only, and openslide-python's images
            # can be drawn on (pixel access, paste).
            return Image.fromarray(direct, "RGBA").copy()
    if not 0 <= level < backend.level_count:
        return Image.new("RGBA", (width, height), (0, 0, 0, 0))  # OpenSlide paints nothing there
    downsample = backend.level_downsamples[level]
    level_h, level_w = backend.level_shapes[level]
    i0, j0 = level_start(y, downsample), level_start(x, downsample)
    top, left = max(i0, 0), max(j0, 0)
    bottom, right = min(i0 + height, level_h), min(j0 + width, level_w)
    if bottom <= top or right <= left:
        return Image.new("RGBA", (width, height), (0, 0, 0, 0))
    pixels = backend.extract_region((top, left), (bottom - top, right - left), level)
    if not backend.is_rgb:
        pixels = display_rgb(pixels)
    # Pillow's RGB -> RGBA conversion (opaque alpha) runs in C, faster than a numpy interleave.
    opaque = Image.fromarray(np.ascontiguousarray(pixels), "RGB").convert("RGBA")
    if (top - i0, left - j0, bottom - top, right - left) == (0, 0, height, width):
        return opaque
    canvas = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    canvas.paste(opaque, (left - j0, top - i0))
    return canvas


__all__ = ["level_start", "region_image", "region_rgba"]
