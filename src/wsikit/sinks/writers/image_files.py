"""The ``png`` and ``jpeg`` formats: one image file per tile in ``<folder>/images/``,
named ``<i>_<j>.png`` / ``<i>_<j>.jpg`` after the tile's corner (see
:func:`wsikit.sinks.layout.image_name`). One-channel tiles are stored as grey images,
three-channel tiles as RGB; other channel counts cannot be stored this way (the tiling
refuses them before writing anything). Each file is written through a temporary name.
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
from .protocol import PendingTile, TileWriter

#: tiles of these channel counts can be stored as PNG or JPEG
IMAGE_CHANNELS = (1, 3)


class ImageTileWriter(TileWriter):
    """Writes each tile as a PNG or JPEG file (``options.format``, ``options.jpeg_quality``)."""

    def __init__(self, folder: str, options: TileOptions) -> None:
        self.folder = os.path.join(folder, IMAGE_FOLDER)
        self.format = options.format
        self.quality = options.jpeg_quality
        os.makedirs(self.folder, exist_ok=True)

    def has(self, position: int, spec: TileSpec) -> bool:
        """Whether the tile's image file exists."""
        return os.path.isfile(os.path.join(self.folder, image_name(spec, self.format)))

    def write_run(self, run: Sequence[PendingTile]) -> None:
        """Encode and write each tile of the run."""
        for tile in run:
            self.write(tile.spec, tile.image)

    def write(self, spec: TileSpec, image: np.ndarray) -> None:
        """Encode one (h, w, 1) or (h, w, 3) uint8 tile and write its file."""
        from PIL import Image

        picture = Image.fromarray(image[:, :, 0] if image.shape[2] == 1 else image)
        buffer = io.BytesIO()
        if self.format == "png":
            picture.save(buffer, format="PNG")
        else:
            picture.save(buffer, format="JPEG", quality=self.quality)
        write_atomic(os.path.join(self.folder, image_name(spec, self.format)), buffer.getvalue())
