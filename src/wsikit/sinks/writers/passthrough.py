"""JPEG passthrough: the ``jpeg`` format stores the slide's own JPEG tiles where it can.

A planned tile is the slide's native tile (``ti``, ``tj``) of its level when it is read
without resampling (read size = tile shape), has the native tile's shape and starts on the
native grid. Such a tile is stored as the scanner's own bitstream, made a standalone JPEG
by the backend (``SlideBackend.native_tile_jpeg``: tables merged, colour marker added):
no decoding, no re-encoding, no generational loss, and the file decodes to exactly the
pixels ``generate_tiles`` gives.

A tile reaching past the level's edge (``pad=True``) is compared first: the stored JPEG
covers the whole native tile, whatever the scanner put past the edge, while the tile is
zero there; it is passed through only when its decoded pixels equal the tile's, else it is
re-encoded like every other tile (off-grid, resampled, other compressions, backends
without native JPEG tiles).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ...plan import TileSpec

if TYPE_CHECKING:
    from ...backends.base import SlideBackend


class NativeJpegTiles:
    """Which planned tiles of ``slide`` are native JPEG tiles, and their standalone bytes."""

    def __init__(self, slide: SlideBackend) -> None:
        self.slide = slide
        self._grids: dict[int, tuple[tuple[int, int], tuple[int, int]] | None] = {}

    def _grid(self, level: int) -> tuple[tuple[int, int], tuple[int, int]] | None:
        """(native tile shape, level shape) of ``level``, None when it has no native grid."""
        if level not in self._grids:
            grid = self.slide._level_grid(level)
            self._grids[level] = None if grid is None else (grid.tile_shape, (int(grid.shape[0]), int(grid.shape[1])))
        return self._grids[level]

    def native_index(self, spec: TileSpec) -> tuple[int, int, bool] | None:
        """(ti, tj, inside) of the native tile ``spec`` is, ``inside`` when the tile lies wholly
        within the level; None when ``spec`` is not a native tile."""
        grid = self._grid(spec.level)
        if grid is None:
            return None
        (th, tw), (height, width) = grid
        i, j = spec.read_location
        if spec.read_size != (th, tw) or spec.shape != (th, tw) or i % th or j % tw or i < 0 or j < 0:
            return None
        if i >= height or j >= width:
            return None
        return i // th, j // tw, i + th <= height and j + tw <= width

    def inside_bytes(self, spec: TileSpec) -> bytes | None:
        """The standalone JPEG of ``spec`` when it is a native tile wholly inside its level
        and stored as JPEG; None when its pixels are needed."""
        index = self.native_index(spec)
        if index is None or not index[2]:
            return None
        return self.slide.native_tile_jpeg(spec.level, index[0], index[1])

    def matching_bytes(self, spec: TileSpec, image: np.ndarray) -> bytes | None:
        """The standalone JPEG of a native tile reaching past the level's edge when it decodes
        to exactly ``image`` (the tile as read, (h, w, channels)); else None."""
        import imagecodecs

        index = self.native_index(spec)
        if index is None:
            return None
        data = self.slide.native_tile_jpeg(spec.level, index[0], index[1])
        if data is None:
            return None
        try:
            decoded = np.asarray(imagecodecs.jpeg8_decode(data))
        except Exception:  # a stream our decoder refuses is simply not passed through
            return None
        if decoded.size != image.size or not np.array_equal(decoded.reshape(image.shape), image):
            return None
        return data
