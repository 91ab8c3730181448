"""ICC colour profiles: what a slide embeds, and the opt-in conversion of its pixels to sRGB.

Scanners embed an ICC profile describing the colour of their pixels (TIFF tag 34675
InterColorProfile in Aperio SVS and other TIFFs, ICC Profile (0028,2000) in a DICOM
optical path, OpenSlide 4's ``openslide_read_icc_profile``). A backend exposes it as
``slide.icc_profile`` (the profile's bytes, or None) and, for associated images that carry
their own, ``slide.associated_icc_profiles``.

Reading converts nothing by default: pixels stay bit-exact with the file.
``open_slide(path, color="srgb")`` converts every read (regions, tiles, thumbnails) from
the embedded profile to sRGB with littlecms through Pillow's :mod:`PIL.ImageCms`
(perceptual intent, as ``ImageCms.profileToProfile`` by default), in the threads that
read the pixels. A slide without a profile, or whose pixels are not RGB, reads unchanged:
there is nothing to convert from.
"""
from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

if TYPE_CHECKING:
    from PIL import ImageCms

#: the values ``open_slide(..., color=)`` takes: None (no conversion) or "srgb"
COLOR_TARGETS = (None, "srgb")

PixelConverter = Callable[[np.ndarray], np.ndarray]


def check_color(color: object) -> str | None:
    """The ``color=`` option checked: None or "srgb" (any case); else ValueError."""
    if color is None:
        return None
    if isinstance(color, str) and color.lower() in ("srgb", "s-rgb"):
        return "srgb"
    raise ValueError(f"color must be None (pixels as stored) or 'srgb', got {color!r}")


def profile_color_space(profile: bytes) -> str:
    """The data colour space an ICC profile describes ('RGB', 'GRAY', 'CMYK', ...), from its header."""
    return profile[16:20].decode("ascii", "replace").strip() if len(profile) >= 20 else ""


def open_profile(profile: bytes) -> ImageCms.ImageCmsProfile:
    """A Pillow profile object of ICC bytes; ValueError when littlecms cannot parse them."""
    from PIL import ImageCms

    try:
        return ImageCms.ImageCmsProfile(io.BytesIO(profile))
    except (OSError, ImageCms.PyCMSError, TypeError) as exc:
        raise ValueError(f"not a readable ICC profile ({len(profile)} bytes): {exc}") from None


def srgb_profile() -> ImageCms.ImageCmsProfile:
    """littlecms's built-in sRGB profile."""
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def srgb_profile_bytes() -> bytes:
    """The bytes of littlecms's built-in sRGB profile: the profile of converted pixels."""
    return bytes(srgb_profile().tobytes())


class SrgbConverter:
    """Converts uint8 RGB (h, w, 3) arrays from an embedded profile to sRGB.

    Built once per slide; safe to call from many threads at once: the littlecms transform
    is built without its one-pixel cache (the only state a transform changes while it runs),
    which does not change any result.
    """

    def __init__(self, profile: bytes) -> None:
        from PIL import ImageCms

        self.profile = profile
        self._transform = ImageCms.buildTransform(open_profile(profile), srgb_profile(), "RGB", "RGB",
                                                  renderingIntent=ImageCms.Intent.PERCEPTUAL,
                                                  flags=ImageCms.Flags.NOCACHE)

    def __call__(self, array: np.ndarray) -> np.ndarray:
        from PIL import Image, ImageCms

        if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8 or array.size == 0:
            return array
        image = Image.fromarray(np.ascontiguousarray(array), "RGB")
        converted = ImageCms.applyTransform(image, self._transform)
        # applyTransform returns a new image unless asked to work in place
        return np.asarray(converted if converted is not None else image)

    def __reduce__(self) -> tuple[Any, ...]:
        return (SrgbConverter, (self.profile,))


def pixel_converter(color: object, profile: bytes | None, is_rgb: bool) -> PixelConverter | None:
    """The conversion ``color=`` asks for on pixels described by ``profile``, or None when
    reads stay as stored (no conversion asked, no profile, or pixels that are not RGB).

    A profile littlecms cannot read is a ValueError naming the problem, raised when the
    slide is opened rather than on every read.
    """
    target = check_color(color)
    if target is None or profile is None or not is_rgb or profile_color_space(profile) != "RGB":
        return None
    return SrgbConverter(profile)


def slide_converter(slide: Any, color: object) -> PixelConverter | None:
    """The conversion an opened slide applies to every read for ``color=`` (None: none).

    A profile littlecms cannot read closes the slide and raises CorruptSlideError, so that
    ``open_slide(path, color="srgb")`` fails at once rather than on every read.
    """
    try:
        return pixel_converter(color, slide.icc_profile, slide.is_rgb)
    except ValueError as exc:
        slide._safe_close()
        if check_color(color) is None:
            raise
        from .errors import CorruptSlideError

        raise CorruptSlideError(slide.path, f"the embedded ICC profile cannot be used: {exc}") from None


def convert_image_to_srgb(image: Any, profile: bytes) -> Any:
    """A PIL image converted from ``profile`` to sRGB exactly as :class:`SrgbConverter`
    converts arrays (the reference the tests compare with is ``ImageCms.profileToProfile``)."""
    from PIL import Image

    rgb = np.asarray(image.convert("RGB"))
    return Image.fromarray(SrgbConverter(profile)(rgb), "RGB")


__all__ = ["COLOR_TARGETS", "PixelConverter", "SrgbConverter", "check_color", "convert_image_to_srgb",
           "open_profile", "pixel_converter", "profile_color_space", "slide_converter", "srgb_profile",
           "srgb_profile_bytes"]
