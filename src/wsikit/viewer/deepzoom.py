"""Deep Zoom (DZI) geometry of a slide, and reading one DZI tile's pixels with wsikit.

DZI level ``L`` (0 .. ``max_level``) is the slide reduced ``2 ** (max_level - L)`` times,
``ceil(h / d) x ceil(w / d)`` pixels; ``max_level`` is the smallest with a 1 x 1 level 0
(the full-resolution image is the last level). Tiles are ``tile_size`` pixels square
without overlap, edge tiles smaller, named ``<column>_<row>``.

A tile's pixels come from the coarsest pyramid level at least as fine as its DZI level
(:func:`wsikit.plan.best_level`, the rule tile plans use), read with ``extract_region`` in
that level's own pixels and area-averaged (:func:`wsikit.pixels.resample_area`) to the
tile's size when the two differ; where a pyramid level is exactly a DZI level the tile is
``extract_region`` at that level, pixel for pixel. The coarse DZI levels of a brightfield
slide with no reduced level near them (a single-level scan) would read a large part of
level 0 per tile; when a tile would read more than ``MAX_DIRECT_PIXELS`` they are cut from
one thumbnail of the slide instead (``SlideBackend.get_thumbnail``, which reads in bands
with bounded memory). Where the source level's downsample divides the DZI level's, a DZI
pixel is the exact mean of the source pixels it covers (:func:`reduce_to`).

Where a DZI level is a pyramid level stored as JPEG tiles of the DZI tile size, a whole
JPEG tile may be served as stored (:meth:`TileReader.stored_jpeg`): decoded, it gives the
pixels ``extract_region`` gives, and it costs neither a decode nor an encode.
"""
from __future__ import annotations

import math
import threading
from typing import TYPE_CHECKING, Any

import numpy as np

from ..codestreams import jpeg_frame
from ..errors import SlideError
from ..pixels import resample_area
from ..plan import best_level

if TYPE_CHECKING:
    from ..backends.base import SlideBackend

TILE_SIZE = 256
#: DZI levels at most this many pixels on their longer side may be cut from one thumbnail
OVERVIEW_SIZE = 4096
#: a brightfield tile is cut from the thumbnail when reading it directly would read more
#: than this many pixels of its source level
MAX_DIRECT_PIXELS = 16 * 1024**2


class TileOutOfRange(ValueError):
    """A DZI level, column or row the slide does not have."""


class DeepZoom:
    """The DZI pyramid of an image whose level 0 is ``shape0`` (h, w)."""

    def __init__(self, shape0: tuple[int, int], tile_size: int = TILE_SIZE) -> None:
        h, w = int(shape0[0]), int(shape0[1])
        if h < 1 or w < 1 or tile_size < 1:
            raise ValueError(f"a DZI pyramid needs a positive shape and tile size, got {shape0}, {tile_size}")
        self.shape0 = (h, w)
        self.tile_size = tile_size
        self.max_level = (max(h, w) - 1).bit_length()
        self.level_shapes = [(-(-h // self.downsample(k)), -(-w // self.downsample(k)))
                             for k in range(self.max_level + 1)]

    def downsample(self, level: int) -> int:
        """Level-0 pixels per pixel of DZI level ``level``."""
        return 1 << (self.max_level - level)

    def tile_counts(self, level: int) -> tuple[int, int]:
        """(rows, columns) of tiles of DZI level ``level``."""
        h, w = self.level_shapes[level]
        return -(-h // self.tile_size), -(-w // self.tile_size)

    def tile_box(self, level: int, column: int, row: int) -> tuple[int, int, int, int]:
        """(i, j, h, w) of a tile in the pixels of its DZI level; TileOutOfRange when the
        pyramid has no such tile."""
        if not 0 <= level <= self.max_level:
            raise TileOutOfRange(f"DZI level must be in [0, {self.max_level}], got {level}")
        rows, cols = self.tile_counts(level)
        if not (0 <= row < rows and 0 <= column < cols):
            raise TileOutOfRange(f"DZI level {level} has {cols} x {rows} tiles (columns x rows), "
                                 f"no tile {column}_{row}")
        h, w = self.level_shapes[level]
        i, j = row * self.tile_size, column * self.tile_size
        return i, j, min(self.tile_size, h - i), min(self.tile_size, w - j)

    def descriptor(self, fmt: str) -> str:
        """The ``.dzi`` XML descriptor for tiles stored as ``fmt`` (jpeg or png)."""
        h, w = self.shape0
        return ('<?xml version="1.0" encoding="UTF-8"?>\n'
                f'<Image xmlns="http://schemas.microsoft.com/deepzoom/2008" Format="{fmt}" Overlap="0" '
                f'TileSize="{self.tile_size}"><Size Width="{w}" Height="{h}"/></Image>\n')


class TileReader:
    """Reads DZI tiles of one open slide (thread-safe: the slide is, and the thumbnail is
    made once under a lock)."""

    def __init__(self, slide: SlideBackend, tile_size: int = TILE_SIZE) -> None:
        self.slide = slide
        self.dzi = DeepZoom(slide.level_shapes[0], tile_size)
        self._overview: tuple[int, np.ndarray] | None = None
        self._lock = threading.Lock()
        # DZI level -> whether its tiles are the stored JPEG tiles (unknown until tried)
        self._stored: dict[int, bool] = {}

    def source_level(self, level: int) -> int:
        """The pyramid level a DZI level's tiles are read from."""
        d = float(self.dzi.downsample(level))
        return best_level(self.slide, (d, d))

    def read(self, level: int, column: int, row: int, options: dict[str, Any] | None = None) -> np.ndarray:
        """The tile's pixels: (h, w, 3) uint8 for brightfield slides, else (h, w, z, c, t)
        in the slide's own dtype. ``options`` are the backend's read options (DICOM's
        ``optical_path``, ``focal_plane``)."""
        options = options or {}
        i, j, h, w = self.dzi.tile_box(level, column, row)
        d = self.dzi.downsample(level)
        h0, w0 = self.dzi.shape0
        top, left = i * d, j * d
        bottom, right = min((i + h) * d, h0), min((j + w) * d, w0)
        source = self.source_level(level)
        si, sj = self.slide.level_scale(source)
        lh, lw = self.slide.level_shapes[source]
        a, c = min(int(round(top / si)), lh - 1), min(int(round(left / sj)), lw - 1)
        b = min(max(a + 1, int(math.ceil(bottom / si - 1e-6))), lh)
        e = min(max(c + 1, int(math.ceil(right / sj - 1e-6))), lw)
        if (b - a) * (e - c) > MAX_DIRECT_PIXELS and self.slide.is_rgb and not options:
            overview = self._overview_for(level)
            if overview is not None:
                return self._cut_overview(overview, level, (i, j, h, w))
        pixels = np.asarray(self.slide.extract_region((a, c), (b - a, e - c), level=source, normalize=False,
                                                      **options))
        return reduce_to(pixels, (h, w), d / si, d / sj)

    def stored_jpeg(self, level: int, column: int, row: int) -> bytes | None:
        """The tile as the slide stores it, when that JPEG is exactly this DZI tile: the DZI
        level is a pyramid level (same shape), the slide stores it in JPEG tiles of the DZI
        tile size, and the tile is whole (not cut by the image's edge). Decoded, it is the
        pixels ``read`` gives, without a decode and an encode here. None otherwise."""
        i, j, h, w = self.dzi.tile_box(level, column, row)
        size = self.dzi.tile_size
        if (h, w) != (size, size) or self._stored.get(level) is False:
            return None
        source = self.source_level(level)
        if tuple(self.slide.level_shapes[source]) != tuple(self.dzi.level_shapes[level]):
            self._stored[level] = False
            return None
        try:
            data = self.slide.native_tile_jpeg(source, row, column)
        except (ValueError, SlideError):  # outside a grid of larger tiles, or unreadable: decode instead
            data = None
        if data is None:
            return None
        frame = jpeg_frame(data)
        usable = frame is not None and (frame.rows, frame.columns, frame.components, frame.bits) == (size, size, 3, 8)
        self._stored[level] = usable
        return data if usable else None

    def _overview_for(self, level: int) -> tuple[int, np.ndarray] | None:
        """(DZI level, pixels) of the thumbnail that covers ``level``, or None when ``level``
        is too fine to be cut from a thumbnail."""
        if max(self.dzi.level_shapes[level]) > OVERVIEW_SIZE:
            return None
        with self._lock:
            if self._overview is None:
                top = max(k for k in range(self.dzi.max_level + 1) if max(self.dzi.level_shapes[k]) <= OVERVIEW_SIZE)
                shape = self.dzi.level_shapes[top]
                thumb = np.asarray(self.slide.get_thumbnail(shape))
                self._overview = (top, resample_area(thumb, shape))
            return self._overview

    def _cut_overview(self, overview: tuple[int, np.ndarray], level: int, box: tuple[int, int, int, int]) -> np.ndarray:
        top, image = overview
        f = 1 << (top - level)
        i, j, h, w = box
        part = image[i * f: (i + h) * f, j * f: (j + w) * f]
        return reduce_to(part, (h, w), f, f)


def reduce_to(pixels: np.ndarray, shape: tuple[int, int], fi: float, fj: float) -> np.ndarray:
    """``pixels`` reduced ``fi`` x ``fj`` times to ``shape``: whole-block means when the
    factors are the same whole number (a DZI pixel is the mean of the source pixels it
    covers, fewer at the image's edge), area averaging otherwise; the dtype is kept."""
    if pixels.shape[:2] == tuple(shape):
        return pixels
    f = int(round(fi))
    if f >= 1 and f == int(round(fj)) and abs(fi - f) < 1e-9 and abs(fj - f) < 1e-9:
        H, W = pixels.shape[:2]
        if (-(-H // f), -(-W // f)) == tuple(shape):
            return _block_means(pixels, f)
    return resample_area(pixels, shape)


def _block_means(pixels: np.ndarray, f: int) -> np.ndarray:
    """Means of f x f blocks, the last row and column of blocks cut by the image's edge.

    Each of the (up to) four parts whose blocks are whole goes through resample_area's
    exact whole-block path, many times faster than a general per-block reduction.
    """
    H, W = pixels.shape[:2]
    rows, cols = H // f, W // f
    out = np.empty((-(-H // f), -(-W // f)) + pixels.shape[2:], dtype=pixels.dtype)
    for i0, i1, oi, oh in ((0, rows * f, 0, rows), (rows * f, H, rows, 1)):
        for j0, j1, oj, ow in ((0, cols * f, 0, cols), (cols * f, W, cols, 1)):
            if i1 > i0 and j1 > j0 and oh and ow:
                out[oi: oi + oh, oj: oj + ow] = resample_area(pixels[i0:i1, j0:j1], (oh, ow))
    return out
