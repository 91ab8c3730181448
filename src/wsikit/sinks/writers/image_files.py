"""The ``png`` and ``jpeg`` formats: one image file per tile in ``<folder>/images/``,
named ``<i>_<j>.png`` / ``<i>_<j>.jpg`` after the tile's corner (see
:func:`wsikit.sinks.layout.image_name`). One-channel tiles are stored as grey images,
three-channel tiles as RGB; other channel counts cannot be stored this way (the tiling
refuses them before writing anything). Each file is written through a temporary name.

Encoders (measured on 256-pixel H&E tiles, one core): PNG with zlib level 1 through
Pillow, about 2.3x faster than its default level 6 for files about 5% larger, lossless
either way (Pillow releases the GIL while encoding, so the writing threads run on every
core; imagecodecs' PNG encoder does not); JPEG with libjpeg-turbo through imagecodecs (baseline, 4:2:0
chroma subsampling, quality ``options.jpeg_quality``), about 1.4x Pillow's speed. With
``options.passthrough`` the jpeg format stores native JPEG tiles as they are
(:mod:`wsikit.sinks.writers.passthrough`).
"""
from __future__ import annotations

import io
import os
from collections.abc import Sequence

import numpy as np

from ...plan import TileSpec
from ..atomic import write_atomic
from ..jobs import TileOptions
from ..layout import IMAGE_FOLDER, image_name
from .passthrough import NativeJpegTiles
from .protocol import PendingTile, TileWriter

#: tiles of these channel counts can be stored as PNG or JPEG
IMAGE_CHANNELS = (1, 3)
#: zlib level of PNG tiles: level 1 is 2.5x faster than 6 and costs about 5% in size
PNG_LEVEL = 1


def encode_png(image: np.ndarray) -> bytes:
    """A (h, w, 1) or (h, w, 3) uint8 tile as PNG bytes (grey or RGB, zlib level 1)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image[:, :, 0] if image.shape[2] == 1 else image).save(buffer, format="PNG",
                                                                           compress_level=PNG_LEVEL)
    return buffer.getvalue()


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    """A (h, w, 1) or (h, w, 3) uint8 tile as a baseline JPEG (JFIF, YCbCr 4:2:0 for RGB)."""
    import imagecodecs

    pixels = np.ascontiguousarray(image[:, :, 0]) if image.shape[2] == 1 else image
    return bytes(imagecodecs.jpeg8_encode(pixels, level=min(int(quality), 100)))


class ImageTileWriter(TileWriter):
    """Writes each tile as a PNG or JPEG file (``options.format``, ``options.jpeg_quality``);
    with ``native`` (jpeg format, ``options.passthrough``) native JPEG tiles as stored."""

    def __init__(self, folder: str, options: TileOptions, native: NativeJpegTiles | None = None) -> None:
        self.folder = os.path.join(folder, IMAGE_FOLDER)
        self.format = options.format
        self.quality = options.jpeg_quality
        self.native = native if self.format == "jpeg" else None
        self.passthrough = self.native is not None
        self.unit = 1
        os.makedirs(self.folder, exist_ok=True)
        # One listing instead of one stat per tile; files written later are this writer's own.
        self._found = {entry.name for entry in os.scandir(self.folder) if entry.is_file()}

    def has(self, position: int, spec: TileSpec) -> bool:
        """Whether the tile's image file exists (was there when the writer opened)."""
        return image_name(spec, self.format) in self._found

    def write_native(self, tiles: Sequence[tuple[int, TileSpec]]) -> list[int]:
        """Store the native JPEG tiles among ``tiles`` as they are; the positions of the
        others, whose pixels are needed."""
        if self.native is None:
            return [position for position, _ in tiles]
        left = []
        for position, spec in tiles:
            data = self.native.inside_bytes(spec)
            if data is None:
                left.append(position)
            else:
                write_atomic(os.path.join(self.folder, image_name(spec, self.format)), data)
        return left

    def write_run(self, run: Sequence[PendingTile]) -> None:
        """Encode and write each tile of the run."""
        for tile in run:
            self.write(tile.spec, tile.image)

    def write(self, spec: TileSpec, image: np.ndarray) -> None:
        """Encode one (h, w, 1) or (h, w, 3) uint8 tile and write its file (a native JPEG
        tile past the level's edge as stored when it decodes to exactly ``image``)."""
        data = None if self.native is None else self.native.matching_bytes(spec, image)
        if data is None:
            data = encode_png(image) if self.format == "png" else encode_jpeg(image, self.quality)
        write_atomic(os.path.join(self.folder, image_name(spec, self.format)), data)
