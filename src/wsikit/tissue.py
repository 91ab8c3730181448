"""Tissue masks: which parts of a slide hold tissue, computed at a low resolution.

The mask is made from a small picture of the whole slide (about ``size`` pixels on its
longer side), so it costs one thumbnail read however large the slide is:

- brightfield RGB slides: HSV saturation of the thumbnail (glass is grey-white, stain is
  coloured); other images (fluorescence, grayscale, z-stacks): the mean of all channels,
  planes and time points, scaled to [0, 1] (the channel sum divided by the channel count);
- a light Gaussian blur (``smooth_um`` microns; wider for fluorescence, where tissue shows
  as separate nuclei that must merge into one region);
- a threshold by Otsu's method on that feature. Otsu always splits an image in two, even
  one that holds a single kind of pixel, so two guards keep it honest: the threshold is
  never below a floor (glass and empty background lie under it), and when the lower class
  Otsu found is itself too coloured (bright) to be background the slide is taken as all
  tissue and the floor is used. So a slide of glass alone gives an empty mask and a slide
  of tissue alone a full one;
- clean-up: connected specks smaller than ``min_speck_um2`` are dropped, holes smaller
  than ``max_hole_um2`` are filled (areas in square microns; 0.5 micron per level-0 pixel
  is assumed when the slide does not say, and neither bound exceeds a small fraction of
  the mask so that tiny images keep their detail).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from .checks import as_int
from .tiling import thumbnail_shape

if TYPE_CHECKING:  # for the checker only: at run time a mask needs no part of the backend layer
    from .backends.base import SlideBackend

#: longer side of the mask, in mask pixels
DEFAULT_SIZE = 2048
#: (floor, most a background class may average, blur in microns) of the feature of
#: brightfield slides (saturation) and of other images (channel mean)
BRIGHTFIELD = (0.04, 0.1, 2.0)
MULTICHANNEL = (0.01, 0.03, 10.0)
#: micron per pixel assumed at level 0 when the slide carries no mpp
ASSUMED_MPP = 0.5
#: the clean-up never removes or fills more than these fractions of the mask at once
MAX_SPECK_FRACTION = 0.001
MAX_HOLE_FRACTION = 0.005
_BAND_BYTES = 64 * 1024**2


@dataclass(frozen=True, eq=False)
class TissueMask:
    """A boolean tissue mask of a whole slide at a low resolution.

    Attributes:
        mask: (h, w) bool, True where there is tissue.
        scale: (i, j) level-0 pixels per mask pixel along each axis.
        threshold: the feature value above which a pixel counts as tissue (None when the
            mask was given by the caller).
    """

    mask: np.ndarray
    scale: tuple[float, float]
    threshold: float | None = None

    def __post_init__(self) -> None:
        mask = np.asarray(self.mask)
        if mask.ndim != 2 or mask.size == 0:
            raise ValueError(f"mask must be a non-empty 2-D array, got shape {mask.shape}")
        mask = mask.astype(bool, copy=False)
        mask.setflags(write=False)
        object.__setattr__(self, "mask", mask)
        si, sj = (float(s) for s in self.scale)
        if not (si > 0 and sj > 0 and math.isfinite(si) and math.isfinite(sj)):
            raise ValueError(f"scale must be two positive numbers, got {self.scale!r}")
        object.__setattr__(self, "scale", (si, sj))

    @classmethod
    def from_array(cls, mask: ArrayLike, slide_shape: Sequence[int]) -> TissueMask:
        """A mask given by the caller, covering a level 0 of ``slide_shape`` (h, w) pixels."""
        mask = np.asarray(mask)
        if mask.ndim != 2 or mask.size == 0:
            raise ValueError(f"tissue_mask must be a non-empty 2-D array, got shape {mask.shape}")
        h0, w0 = slide_shape
        return cls(mask != 0, (h0 / mask.shape[0], w0 / mask.shape[1]))

    @property
    def downsample(self) -> float:
        """Level-0 pixels per mask pixel (the mean of the two axes, as level downsamples)."""
        return (self.scale[0] + self.scale[1]) / 2

    @property
    def shape(self) -> tuple[int, int]:
        """(h, w) of the mask, in mask pixels."""
        h, w = self.mask.shape
        return h, w

    @property
    def tissue_fraction(self) -> float:
        """Fraction of the slide covered by tissue."""
        return float(self.mask.mean())

    def fraction(self, location0: Sequence[float], size0: Sequence[float]) -> float:
        """Fraction of the level-0 box at ``location0`` (i, j) of ``size0`` (h, w) that is tissue."""
        (i, j), (h, w) = location0, size0
        return float(self.fractions(np.array([[i, j, i + h, j + w]], dtype=np.float64))[0])

    def fractions(self, boxes0: ArrayLike) -> np.ndarray:
        """Tissue fraction of each level-0 box (i0, j0, i1, j1) of an (n, 4) array.

        Mask pixels partly inside a box count by the area they share with it (the mask is
        taken as constant over each of its pixels); parts of a box outside the slide count
        as no tissue.
        """
        boxes = np.asarray(boxes0, dtype=np.float64).reshape(-1, 4)
        if len(boxes) == 0:
            return np.zeros(0)
        si, sj = self.scale
        h, w = self.mask.shape
        integral = np.zeros((h + 1, w + 1), dtype=np.float64)
        np.cumsum(np.cumsum(self.mask, axis=0, dtype=np.float64), axis=1, out=integral[1:, 1:])
        y0, x0, y1, x1 = boxes[:, 0] / si, boxes[:, 1] / sj, boxes[:, 2] / si, boxes[:, 3] / sj
        area = (y1 - y0) * (x1 - x0)
        inside = (
            _integral_at(integral, y1, x1) - _integral_at(integral, y0, x1)
            - _integral_at(integral, y1, x0) + _integral_at(integral, y0, x0)
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.where(area > 0, inside / np.where(area > 0, area, 1), 0.0)
        return np.clip(out, 0.0, 1.0)

    def __repr__(self) -> str:
        return (f"TissueMask(shape={self.mask.shape}, downsample={self.downsample:.3g}, "
                f"tissue={self.tissue_fraction:.1%})")


def _integral_at(integral: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The summed-area table at real-valued points: bilinear between nodes, which is exact
    for a mask constant over each pixel."""
    h, w = integral.shape[0] - 1, integral.shape[1] - 1
    y = np.clip(y, 0, h)
    x = np.clip(x, 0, w)
    a = np.minimum(np.floor(y).astype(np.int64), max(h - 1, 0))
    b = np.minimum(np.floor(x).astype(np.int64), max(w - 1, 0))
    u, v = y - a, x - b
    s00, s10 = integral[a, b], integral[a + 1, b]
    s01, s11 = integral[a, b + 1], integral[a + 1, b + 1]
    return s00 * (1 - u) * (1 - v) + s10 * u * (1 - v) + s01 * (1 - u) * v + s11 * u * v


def tissue_mask(slide: SlideBackend, size: int = DEFAULT_SIZE, *, threshold: float | None = None, smooth_um: float | None = None,
                min_speck_um2: float = 5000.0, max_hole_um2: float = 20000.0) -> TissueMask:
    """The tissue mask of ``slide`` (any backend), about ``size`` pixels on its longer side.

    ``threshold`` fixes the feature threshold instead of Otsu's (saturation in [0, 1] for
    brightfield RGB slides, channel mean in [0, 1] otherwise). A white slide gives an empty
    mask, a slide covered with tissue a full one.
    """
    size = as_int(size, "size", minimum=1)
    if threshold is not None:
        threshold = float(threshold)
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    floor, background_max, default_smooth = BRIGHTFIELD if slide.is_rgb else MULTICHANNEL
    smooth_um = default_smooth if smooth_um is None else float(smooth_um)
    feature = tissue_feature(slide, size)
    h0, w0 = slide.level_shapes[0]
    scale = (h0 / feature.shape[0], w0 / feature.shape[1])
    mpp = slide.mpp or (ASSUMED_MPP, ASSUMED_MPP)
    sigma = (smooth_um / (mpp[0] * scale[0]), smooth_um / (mpp[1] * scale[1]))
    if max(sigma) >= 0.5:
        from scipy import ndimage

        feature = ndimage.gaussian_filter(feature, sigma, mode="nearest")
    if threshold is None:
        threshold = guarded_threshold(feature, floor, background_max)
    mask = feature > threshold
    pixel_um2 = mpp[0] * mpp[1] * scale[0] * scale[1]
    mask = clean_mask(
        mask,
        min_speck=min(min_speck_um2 / pixel_um2, MAX_SPECK_FRACTION * mask.size),
        max_hole=min(max_hole_um2 / pixel_um2, MAX_HOLE_FRACTION * mask.size),
    )
    return TissueMask(mask, scale, float(threshold))


def tissue_feature(slide: SlideBackend, size: int = DEFAULT_SIZE) -> np.ndarray:
    """The (h, w) float picture the mask thresholds: saturation or channel mean in [0, 1]."""
    # Never finer than level 0: a small image gains nothing from an upsampled mask.
    size = min(size, max(slide.level_shapes[0]))
    if slide.is_rgb:
        return saturation(slide.get_thumbnail((size, size)))
    return _channel_mean(slide, thumbnail_shape(slide.level_shapes[0], (size, size)))


def saturation(rgb: np.ndarray) -> np.ndarray:
    """HSV saturation (max - min) / max of an (h, w, 3) uint8 image, 0 where it is black."""
    rgb = np.asarray(rgb)
    hi = rgb.max(axis=2).astype(np.float32)
    lo = rgb.min(axis=2).astype(np.float32)
    return np.divide(hi - lo, hi, out=np.zeros_like(hi), where=hi > 0)


def guarded_threshold(feature: np.ndarray, floor: float, background_max: float) -> float:
    """Otsu's threshold, at least ``floor``; ``floor`` itself when the class below Otsu's
    threshold averages more than ``background_max`` (no background: all tissue)."""
    t = otsu_threshold(feature)
    below = feature[feature <= t]
    if below.size and float(below.mean()) > background_max:
        return float(floor)
    return max(t, float(floor))


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold of ``values``: the split of a ``bins``-bin histogram over their range
    that maximises the variance between the two classes. A constant image returns its value."""
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0:
        return 0.0
    lo, hi = float(values.min()), float(values.max())
    if not hi > lo:
        return lo
    hist, edges = np.histogram(values, bins=bins, range=(lo, hi))
    total = hist.sum()
    centres = (edges[:-1] + edges[1:]) / 2
    weight0 = np.cumsum(hist)[:-1]
    weight1 = total - weight0
    sum0 = np.cumsum(hist * centres)[:-1]
    mean0 = np.divide(sum0, weight0, out=np.zeros_like(sum0), where=weight0 > 0)
    mean1 = np.divide(sum0[-1] + hist[-1] * centres[-1] - sum0, weight1, out=np.zeros_like(sum0), where=weight1 > 0)
    between = weight0 * weight1 * (mean0 - mean1) ** 2
    return float(edges[1 + int(np.argmax(between))])


def clean_mask(mask: np.ndarray, min_speck: float, max_hole: float) -> np.ndarray:
    """``mask`` without connected specks of fewer than ``min_speck`` pixels and with holes
    of fewer than ``max_hole`` pixels filled."""
    from scipy import ndimage

    mask = np.asarray(mask, dtype=bool)
    if min_speck > 1 and mask.any():
        labels, n = ndimage.label(mask)
        sizes = np.bincount(labels.ravel(), minlength=n + 1)
        keep = sizes >= min_speck
        keep[0] = False
        mask = keep[labels]
    if max_hole > 1 and mask.any():
        holes = ndimage.binary_fill_holes(mask) & ~mask
        labels, n = ndimage.label(holes)
        sizes = np.bincount(labels.ravel(), minlength=n + 1)
        fill = sizes < max_hole
        fill[0] = False
        mask = mask | fill[labels]
    return mask


def _channel_mean(slide: SlideBackend, out_shape: tuple[int, int]) -> np.ndarray:
    """Mean over every channel, plane and time point, in [0, 1], area-averaged to ``out_shape``.

    Read from the smallest level at least as large as ``out_shape``, in bands of rows so
    memory stays bounded for single-level slides.
    """
    from .pixels import block_mean, resample_area

    shapes = slide.level_shapes
    level = next((k for k in range(len(shapes) - 1, -1, -1)
                  if shapes[k][0] >= out_shape[0] and shapes[k][1] >= out_shape[1]), 0)
    h, w = shapes[level]
    factor = max(1, min(h // out_shape[0], w // out_shape[1]))
    planes = max(1, int(np.prod(slide.sizes)))
    band = max(factor, (_BAND_BYTES // max(1, w * planes * 5)) // factor * factor)
    reduced = np.empty((-(-h // factor), -(-w // factor)), dtype=np.float64)
    for i in range(0, h, band):
        rows = min(band, h - i)
        part = np.asarray(slide.extract_region((i, 0), (rows, w), level=level, normalize=True))
        mean = part.reshape(rows, w, -1).mean(axis=2, dtype=np.float32) / 255.0
        reduced[i // factor: i // factor + -(-rows // factor)] = block_mean(mean, factor)
    return resample_area(reduced, out_shape)
