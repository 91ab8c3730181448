"""How a slide's pixels are stored as tile channels.

Brightfield RGB tiles keep their 3 channels. Every other image reads as (h, w, z, c, t);
its tiles are stored with the z, c and t axes flattened in that order (channel index
``(z * C + c) * T + t``), so every plane is kept. Stored tiles are always normalised
uint8 (what ``read_plan`` returns by default).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np

if TYPE_CHECKING:
    from ..backends.base import SlideBackend


class PixelLayout(NamedTuple):
    """The channels of a stored tile and their type."""

    channels: int
    dtype: np.dtype


def stored_pixel_layout(slide: SlideBackend) -> PixelLayout:
    """The (channels, dtype) tiles of ``slide`` are stored with."""
    if slide.is_rgb:
        return PixelLayout(3, np.dtype(np.uint8))
    z, c, t = slide.sizes
    return PixelLayout(int(z * c * t), np.dtype(np.uint8))


def as_channels_last(image: np.ndarray, channels: int) -> np.ndarray:
    """A tile as a contiguous (h, w, channels) array (z, c, t flattened)."""
    return np.ascontiguousarray(image.reshape(image.shape[0], image.shape[1], channels))


def channel_sizes(slide: SlideBackend) -> tuple[int, int, int]:
    """The (z, c, t) sizes behind the stored channels: (1, 3, 1) for RGB."""
    if slide.is_rgb:
        return 1, 3, 1
    z, c, t = slide.sizes
    return int(z), int(c), int(t)
