"""What one Bio-Formats series is to wsikit: its levels, native tiles and pixel type, whether
it is an associated picture, and the size of the tiles read from it at once.

Nothing here calls Java: :class:`Series` holds the plain values the backend read from
the ``ImageReader`` while opening.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Bio-Formats pixel type names -> numpy (BIT arrives as one byte per pixel, 0 or 1).
DTYPES: dict[str, type[np.generic]] = {
    "int8": np.int8, "uint8": np.uint8, "int16": np.int16, "uint16": np.uint16, "int32": np.int32,
    "uint32": np.uint32, "float": np.float32, "double": np.float64, "bit": np.bool_,
}

#: the most bytes one cached tile (all its planes) may hold; so no Java array nears 2 GB
MAX_TILE_BYTES = 16 * 1024**2
# Native tiles smaller than this (one-row strips, 16-pixel tiles) cost more in Java calls
# than in decoding: such tiles are read several at once. Larger ones are read as they are,
# so that a small region decodes no more than Bio-Formats itself must.
MIN_TILE_BYTES = 256 * 1024
# Series no larger than this (pixels) are taken as associated pictures, not as images.
SMALL_SERIES_PIXELS = 2048 * 2048


@dataclass(frozen=True)
class Series:
    """One Bio-Formats series: an image with its resolutions as levels."""

    index: int
    name: str
    thumbnail: bool
    level_shapes: tuple[tuple[int, int], ...]
    optimal_tiles: tuple[tuple[int, int], ...]
    sizes: tuple[int, int, int]      # (z, c, t), c counting every sample of an RGB plane
    samples: int                     # samples per plane (3 for an RGB plane)
    dtype: np.dtype
    is_rgb: bool                     # brightfield: one uint8 RGB(A) plane

    @property
    def pixels(self) -> int:
        """Pixels of one plane of the full resolution."""
        return self.level_shapes[0][0] * self.level_shapes[0][1]

    def stacks_with(self, other: Series) -> bool:
        """Whether ``other``'s channels can stand beside this series' (same levels, type, z and t)."""
        return (other.level_shapes == self.level_shapes and other.dtype == self.dtype
                and other.sizes[0] == self.sizes[0] and other.sizes[2] == self.sizes[2])


def associated_name(series_name: str) -> str | None:
    """``"thumbnail"``, ``"label"`` or ``"macro"`` when a series' name says it is one, else None."""
    lowered = series_name.lower()
    for word, mapped in (("thumbnail", "thumbnail"), ("label", "label"), ("barcode", "label"),
                         ("macro", "macro"), ("overview", "macro")):
        if word in lowered:
            return mapped
    return None


def tile_shape(shape: tuple[int, int], optimal: tuple[int, int], pixel_bytes: int) -> tuple[int, int]:
    """The tile (h, w) to read at once: Bio-Formats' optimal tile, grown when tiny, shrunk when huge.

    ``pixel_bytes`` counts every plane: a tile holds all (z, c, t) planes of its box.
    """
    h, w = shape
    th, tw = max(1, min(optimal[0], h)), max(1, min(optimal[1], w))
    while th * tw * pixel_bytes < MIN_TILE_BYTES and (th < h or tw < w):
        if th < h and (th <= tw or tw >= w):
            th = min(h, 2 * th)
        else:
            tw = min(w, 2 * tw)
    while th * tw * pixel_bytes > MAX_TILE_BYTES and (th > 1 or tw > 1):
        if th >= tw:
            th = -(-th // 2)
        else:
            tw = -(-tw // 2)
    return th, tw
