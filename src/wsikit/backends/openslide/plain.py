"""Plain images (PNG, JPEG, TIFF, ...) read through Pillow, as openslide-python's ImageSlide.

openslide-python's ``open_slide`` falls back to ``ImageSlide`` for a file OpenSlide does
not recognise; ImageSlide pastes Pillow's image into an RGBA canvas, which converts it with
Pillow's own rules (``Image.convert("RGBA")``: a 16-bit grey image saturates at 255, a
palette image takes its palette's colours). :func:`open_plain_image` gives those same
pixels, decoded once, as uint8 RGB.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from ...errors import CorruptSlideError
from ...limits import check_allocation

#: Pillow formats taken as plain images (raster pictures, not documents or containers)
PLAIN_FORMATS = frozenset({"PNG", "JPEG", "MPO", "TIFF", "BMP", "GIF", "WEBP", "PPM"})


@dataclass
class PlainImage:
    """A plain image's pixels (h, w, 3) uint8, its embedded ICC profile and its properties."""

    pixels: np.ndarray
    icc_profile: bytes | None
    properties: dict[str, str] = field(default_factory=dict)


def pillow_format(path: str) -> str | None:
    """Pillow's name for the image format of ``path`` when it is one of :data:`PLAIN_FORMATS`,
    else None (never raises)."""
    try:
        from PIL import Image

        with Image.open(path) as image:
            return image.format if image.format in PLAIN_FORMATS else None
    except Exception:
        return None


def open_plain_image(path: str) -> PlainImage | None:
    """The pixels of a plain image, or None when Pillow does not read ``path`` as one.

    Raises CorruptSlideError when Pillow recognises the image and cannot decode it, and
    LimitError when its RGBA conversion would exceed wsikit's memory limit.
    """
    from PIL import Image

    fmt = pillow_format(path)
    if fmt is None:
        return None
    try:
        with Image.open(path) as image:
            w, h = image.size
            check_allocation((h, w, 4), 1, "plain image (RGBA, as Pillow converts it)", path)
            profile = image.info.get("icc_profile") or None
            rgba = np.asarray(image.convert("RGBA"))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise CorruptSlideError(path, f"Pillow cannot decode this {fmt} image: {exc}") from None
    pixels = np.ascontiguousarray(rgba[:, :, :3])
    pixels.setflags(write=False)
    properties = {"wsikit.vendor": "plain-image", "wsikit.image-format": fmt,
                  "wsikit.image-file-size": str(os.path.getsize(path))}
    return PlainImage(pixels, bytes(profile) if profile else None, properties)


__all__ = ["PLAIN_FORMATS", "PlainImage", "open_plain_image", "pillow_format"]
