"""Reading JPEG levels at 1/2, 1/4 or 1/8 of their resolution with libjpeg-turbo's scaled IDCT.

Tiling at a physical resolution coarser than the level read (20x tiles from a 40x scan)
area-averages each box of the level to the tile's shape. With ``resampling="fast"``, a
level whose native tiles are JPEG (``SlideBackend.native_tile_jpeg`` gives their streams)
is instead decoded straight to a reduced size: libjpeg-turbo's scaled inverse DCT (through
simplejpeg's ``min_height`` / ``min_width``) computes each 8 x 8 block at 4 x 4, 2 x 2 or
1 x 1 pixels, which costs less than a full decode, and the area averaging of the full
decode is skipped. A remaining non-integer part of the factor is then area-averaged as on
the exact path (:func:`wsikit.pixels.resample_box`).

The reduction chosen for a box read at a ratio r (level pixels per tile pixel) is the
largest d of 2, 4, 8 that divides the native tile shape with d <= r * (1 + tolerance),
:data:`FAST_TOLERANCE` = 2 %: "the nearest of 1/2, 1/4, 1/8 above a non-integer factor".
A factor just under a power of two (1.98, 3.96: a scan of 0.2525 mpp tiled at 0.5) is thus
decoded at 1/2 or 1/4 and the rest, an enlargement of at most 2 %, area-resampled (softer
than the exact path: see :data:`FAST_TOLERANCE`); beyond that tolerance the largest d <= r
is taken. The scaled decode is not the exact area mean: libjpeg-turbo's reduced
IDCT keeps the low frequencies of each block and upsamples subsampled chroma in its own
way. The README gives the measured difference; ``resampling="exact"`` keeps area means of
the full decode, bit for bit.

A tile whose stream the decoder refuses (or a level tile the backend stores otherwise) is
decoded in full and area-averaged, so a scaled grid reads any tile the level reads.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import TYPE_CHECKING, Callable

import numpy as np

from ..pixels import resample_area
from .tile_grid import TileGrid, decoded_tile

if TYPE_CHECKING:
    from ..backends.base import SlideBackend

#: the read options' values: decode at a reduced size where it can ("fast"), or area means
#: of full decodes only ("exact")
RESAMPLING = ("fast", "exact")
#: the default of ``generate_tiles`` / ``read_plan`` (see the README's measurements)
DEFAULT_RESAMPLING = "fast"
#: the reductions libjpeg-turbo's scaled IDCT gives exactly (8 x 8 blocks to 4, 2, 1 pixels)
JPEG_REDUCTIONS = (8, 4, 2)
#: how much a reduced decode may fall short of the box's resolution and be enlarged after
#: (area resampling to up to 2 % more pixels). The enlargement mixes neighbouring reduced
#: pixels where output pixels straddle them, a visible softening: measured on small_HE.svs
#: (128-pixel tiles), mean absolute difference from the exact path 1.9 grey levels at 1.98
#: (6.7 % of values > 8 off) and 3.3 at 3.96 (14 %), against 0.07-0.11 at 2, 4, 8; the
#: speed gained, 1.8x at 1.98 and 1.3x at 3.96 (benchmarks/scaled_decode.py's slide)
FAST_TOLERANCE = 0.02


def check_resampling(value: object) -> str:
    """``value`` when it is one of :data:`RESAMPLING`, else a ValueError saying what is."""
    if not isinstance(value, str) or value not in RESAMPLING:
        raise ValueError(f"resampling must be one of {', '.join(repr(r) for r in RESAMPLING)}, got {value!r}")
    return value


def jpeg_reduction(ratio: float, tile_shape: tuple[int, int], tolerance: float = FAST_TOLERANCE) -> int:
    """The reduction d (1 = none) to decode a level's tiles at for boxes read at ``ratio``
    level pixels per tile pixel (the smaller of the two axes' ratios): the largest of
    :data:`JPEG_REDUCTIONS` dividing ``tile_shape`` with d <= ratio * (1 + ``tolerance``)."""
    for d in JPEG_REDUCTIONS:
        if d <= ratio * (1 + tolerance) and tile_shape[0] % d == 0 and tile_shape[1] % d == 0:
            return d
    return 1


class ScaledGrids:
    """The reduced grids of one slide's JPEG levels, made on first use."""

    def __init__(self, slide: SlideBackend, grids: list[TileGrid]) -> None:
        self.slide = slide
        self.grids = grids
        self._made: dict[tuple[int, int], TileGrid | None] = {}
        self._jpeg_levels: dict[int, bool] = {}

    def grid(self, level: int, d: int) -> TileGrid | None:
        """Level ``level`` decoded at 1/``d``, or None when its tiles are not JPEG streams."""
        key = (level, d)
        if key not in self._made:
            self._made[key] = self._make(level, d) if self._is_jpeg(level) else None
        return self._made[key]

    def _is_jpeg(self, level: int) -> bool:
        """Whether the backend hands out the level's tiles as JPEG streams (a few tiles are
        asked: one may be missing, e.g. in a sparse DICOM tiling)."""
        known = self._jpeg_levels.get(level)
        if known is None:
            if not self.slide.is_rgb or self.grids[level].pixel_shape != (3,):
                known = False
            else:
                rows, cols = self.grids[level].tile_counts
                probes = {(0, 0), (rows // 2, cols // 2), (rows - 1, cols - 1)}
                try:
                    known = any(self.slide._native_tile_jpeg(level, ti, tj) is not None for ti, tj in probes)
                except Exception:  # a broken tile: the exact path reads (and reports) it
                    known = False
            self._jpeg_levels[level] = known
        return known

    def _make(self, level: int, d: int) -> TileGrid:
        grid = self.grids[level]
        th, tw = grid.tile_shape
        h, w = grid.shape
        # The grid keeps its class and extra fields (a remote file's prefetch hook: scaled
        # tile (ti, tj) is native tile (ti, tj)).
        return dataclasses.replace(grid, key=(grid.key, "1/", d), shape=(-(-h // d), -(-w // d)),
                                   tile_shape=(th // d, tw // d),
                                   decode=scaled_decoder(self.slide, level, grid, d))


def scaled_decoder(slide: SlideBackend, level: int, grid: TileGrid, d: int) -> Callable[[int, int], np.ndarray]:
    """``decode(ti, tj)``: native tile (ti, tj) of ``level`` at 1/``d`` of its size."""
    import simplejpeg

    th, tw = grid.tile_shape
    rows, cols = th // d, tw // d
    decode_jpeg = simplejpeg.decode_jpeg
    # A backend may hand out a reader of the level's streams made once (no per-tile lookups).
    source = getattr(slide, "_native_jpeg_source", None)
    stream_of: Callable[[int, int], bytes | None] | None = None if source is None else source(level)
    if stream_of is None:
        stream_of = functools.partial(slide._native_tile_jpeg, level)

    def decode(ti: int, tj: int) -> np.ndarray:
        data = stream_of(ti, tj)
        if data is not None:
            try:
                pixels = decode_jpeg(data, colorspace="RGB", min_height=rows, min_width=cols)
            except ValueError:
                pixels = None  # decoded in full below, which reports a broken tile
            if pixels is not None and pixels.shape == (rows, cols, 3):
                return pixels
        full = decoded_tile(grid, ti, tj)
        return resample_area(full, (math.ceil(full.shape[0] / d), math.ceil(full.shape[1] / d)))

    return decode


__all__ = ["DEFAULT_RESAMPLING", "FAST_TOLERANCE", "JPEG_REDUCTIONS", "RESAMPLING", "ScaledGrids", "check_resampling",
           "jpeg_reduction", "scaled_decoder"]
