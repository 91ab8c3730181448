"""How an instance's pixels are laid out in reads, and the colour of frames a file leaves out.

Reads of 8-bit three-sample images are brightfield RGB, (h, w, 3); every other image reads
as (h, w, z, c, t) = (h, w, 1, samples, 1). Positions where a sparse tiling stores no
frame read as a uniform fill: the file's Recommended Absent Pixel CIELab Value when it
has one, else white for colour images (brightfield glass) and black for grayscale ones
(fluorescence background).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from .header import element_value

if TYPE_CHECKING:
    from .series import Instance

# CIE D50 white, Bradford D50 -> D65 adaptation, then XYZ (D65) -> linear sRGB.
_D50_WHITE = np.array([0.9642, 1.0, 0.8249])
_D50_TO_D65 = np.array([[0.9555766, -0.0230393, 0.0631636], [-0.0282895, 1.0099416, 0.0210077],
                        [0.0122982, -0.0204830, 1.3299098]])
_XYZ_TO_LINEAR_SRGB = np.array([[3.2404542, -1.5371385, -0.4985314], [-0.9692660, 1.8760108, 0.0415560],
                                [0.0556434, -0.2040259, 1.0572252]])


def cielab_to_rgb(lab: Sequence[float]) -> np.ndarray:
    """DICOM-encoded CIELab (three uint16 values, D50) to sRGB uint8."""
    L = lab[0] / 65535.0 * 100.0
    a = lab[1] / 65535.0 * 255.0 - 128.0
    b = lab[2] / 65535.0 * 255.0 - 128.0
    fy = (L + 16.0) / 116.0
    fx, fz = fy + a / 500.0, fy - b / 200.0

    def finv(t: float) -> float:
        return t**3 if t**3 > 216 / 24389 else (116 * t - 16) / (24389 / 27)

    xyz50 = _D50_WHITE * np.array([finv(fx), finv(fy), finv(fz)])
    linear = np.clip(_XYZ_TO_LINEAR_SRGB @ (_D50_TO_D65 @ xyz50), 0.0, 1.0)
    srgb = np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)
    return np.clip(np.rint(srgb * 255.0), 0, 255).astype(np.uint8)


def layout(instance: Instance) -> tuple[bool, int, str]:
    """(reads as brightfield RGB, samples per pixel, pixel type): instances of one layout mix."""
    is_rgb = instance.samples == 3 and instance.dtype == np.uint8
    return is_rgb, instance.samples, instance.dtype.str


def pixel_shape(instance: Instance) -> tuple[int, ...]:
    """Trailing axes of a read: (3,) for uint8 RGB, else (z, c, t) = (1, samples, 1)."""
    return (3,) if layout(instance)[0] else (1, instance.samples, 1)


def absent_fill(instance: Instance) -> np.ndarray:
    """The value of each sample where no frame is stored (see the module docstring)."""
    is_rgb = layout(instance)[0]
    lab = element_value(instance.ds, "RecommendedAbsentPixelCIELabValue")
    if lab is not None and len(lab) == 3:
        if is_rgb:
            return cielab_to_rgb([float(v) for v in lab])
        dtype = instance.dtype
        top = np.iinfo(dtype).max if dtype.kind in "ui" else 1
        return np.array([round(float(lab[0]) / 65535.0 * top)], dtype=dtype)
    if is_rgb:
        return np.full(3, 255, dtype=np.uint8)
    return np.zeros(1, dtype=instance.dtype)


def blank_frame(tile_shape: tuple[int, int], pixels: tuple[int, ...], fill: ArrayLike, dtype: DTypeLike) -> np.ndarray:
    """A read-only frame of the fill colour, shared by every empty grid cell."""
    fill = np.asarray(fill).astype(dtype).ravel()
    shape = tuple(tile_shape) + tuple(pixels)
    if tuple(pixels) == (3,) and fill.size == 3 and not np.all(fill == fill[0]):
        row = np.tile(fill, shape[1]).reshape(shape[1], 3)  # copying whole rows is fast
        blank = np.ascontiguousarray(np.broadcast_to(row, shape))
    else:
        blank = np.full(shape, fill[0], dtype=dtype)
    blank.setflags(write=False)
    return blank


__all__ = ["absent_fill", "blank_frame", "cielab_to_rgb", "layout", "pixel_shape"]
