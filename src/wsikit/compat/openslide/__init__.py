"""A drop-in for openslide-python: ``import wsikit.compat.openslide as openslide``.

Code written against openslide-python's documented API runs unchanged on every slide
:func:`wsikit.open_slide` reads (TIFF-family slides and DICOM read by wsikit's own parallel
readers, the rest through OpenSlide or Bio-Formats):

- :class:`OpenSlide` (a whole-slide image), :class:`ImageSlide` (a plain picture through
  Pillow), :func:`open_slide` (OpenSlide, else ImageSlide), :class:`AbstractSlide`,
  :class:`OpenSlideCache`, the ``PROPERTY_NAME_*`` constants, ``__version__`` and
  ``__library_version__``;
- errors: :class:`OpenSlideError` is also a :class:`wsikit.errors.SlideError`,
  :class:`OpenSlideUnsupportedFormatError` also an :class:`~wsikit.errors.UnsupportedFormatError`;
  a broken file is also a :class:`~wsikit.errors.CorruptSlideError`. Using a closed slide
  raises ``ctypes.ArgumentError`` as openslide-python does (also a ValueError).

What differs, and why (see also :mod:`._regions` and :mod:`._properties`): reads run on
wsikit's thread-safe parallel readers (no OpenSlide handle to latch an error: a failed
read raises, and the next read is tried afresh); a region at a fractional level position
is read from the nearest whole pixel instead of interpolated; ``openslide.quickhash-1``
is given for TIFF-based slides only; ``set_cache`` resizes this slide's own tile cache
(caches are not shared between slides). Slide objects are picklable (they reopen the
file) and may be read from many threads at once.
"""
from __future__ import annotations

import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from io import BytesIO
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from ... import __version__ as _wsikit_version
from ...color import srgb_profile_bytes
from ...errors import SlideError
from ._errors import (OpenSlideError, OpenSlideUnsupportedFormatError, OpenSlideVersionError, _as_int,
                      _as_openslide_error, _ClosedImage, _ClosedSlide)
from ._formats import detect_vendor
from ._properties import openslide_properties
from ._regions import region_image

if TYPE_CHECKING:
    from PIL import Image, ImageCms

    from ...backends.base import SlideBackend

__version__ = _wsikit_version
#: the OpenSlide C library version whose API this module follows (ICC profiles, caches)
__library_version__ = "4.0.0"

PROPERTY_NAME_BACKGROUND_COLOR = "openslide.background-color"
PROPERTY_NAME_BARCODE = "openslide.barcode"
PROPERTY_NAME_BOUNDS_HEIGHT = "openslide.bounds-height"
PROPERTY_NAME_BOUNDS_WIDTH = "openslide.bounds-width"
PROPERTY_NAME_BOUNDS_X = "openslide.bounds-x"
PROPERTY_NAME_BOUNDS_Y = "openslide.bounds-y"
PROPERTY_NAME_COMMENT = "openslide.comment"
PROPERTY_NAME_MPP_X = "openslide.mpp-x"
PROPERTY_NAME_MPP_Y = "openslide.mpp-y"
PROPERTY_NAME_OBJECTIVE_POWER = "openslide.objective-power"
PROPERTY_NAME_QUICKHASH1 = "openslide.quickhash-1"
PROPERTY_NAME_VENDOR = "openslide.vendor"

_T = TypeVar("_T")


# Errors live in ._errors; the public ones are re-exported here.
def _pil() -> Any:
    from PIL import Image

    return Image


# -- the abstract slide ------------------------------------------------------------------------
class AbstractSlide(ABC):
    """What every slide offers (openslide-python's AbstractSlide)."""

    def __init__(self) -> None:
        self._profile: bytes | None = None

    def __enter__(self: _T) -> _T:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc_value: BaseException | None,
                 traceback: TracebackType | None) -> Literal[False]:
        self.close()
        return False

    @classmethod
    @abstractmethod
    def detect_format(cls, filename: str | os.PathLike[str]) -> str | None:
        """A name for the format of ``filename``, or None when it is not recognised."""

    @abstractmethod
    def close(self) -> None:
        """Close the slide."""

    @property
    @abstractmethod
    def level_count(self) -> int:
        """The number of levels."""

    @property
    @abstractmethod
    def level_dimensions(self) -> tuple[tuple[int, int], ...]:
        """(width, height) of every level."""

    @property
    def dimensions(self) -> tuple[int, int]:
        """(width, height) of level 0."""
        return self.level_dimensions[0]

    @property
    @abstractmethod
    def level_downsamples(self) -> tuple[float, ...]:
        """The downsample factor of every level."""

    @property
    @abstractmethod
    def properties(self) -> Mapping[str, str]:
        """Metadata: property name -> value."""

    @property
    @abstractmethod
    def associated_images(self) -> Mapping[str, Image.Image]:
        """Associated images (label, macro, thumbnail...): name -> PIL image."""

    @property
    def color_profile(self) -> ImageCms.ImageCmsProfile | None:
        """The slide's ICC colour profile as a Pillow profile, or None."""
        if self._profile is None:
            return None
        from PIL import ImageCms

        return ImageCms.getOpenProfile(BytesIO(self._profile))

    @abstractmethod
    def get_best_level_for_downsample(self, downsample: float) -> int:
        """The level to read for showing the slide at ``downsample``."""

    @abstractmethod
    def read_region(self, location: tuple[int, int], level: int, size: tuple[int, int]) -> Image.Image:
        """An RGBA PIL image of ``size`` (w, h) at level-0 ``location`` (x, y) of ``level``."""

    def set_cache(self, cache: Any) -> None:  # noqa: B027 - a no-op unless a slide caches
        """Use ``cache`` for decoded tiles (slides without a cache ignore it)."""

    def get_thumbnail(self, size: tuple[int, int]) -> Image.Image:
        """An RGB PIL image of the whole slide fitting in ``size`` (w, h): the level best for
        the largest ratio of slide to thumbnail, on the background colour, reduced with Lanczos."""
        Image = _pil()
        ratio = max(full / wanted for full, wanted in zip(self.dimensions, size))
        level = self.get_best_level_for_downsample(ratio)
        region = self.read_region((0, 0), level, self.level_dimensions[level])
        background = "#" + self.properties.get(PROPERTY_NAME_BACKGROUND_COLOR, "ffffff")
        thumbnail = Image.new("RGB", region.size, background)
        thumbnail.paste(region, None, region)
        thumbnail.thumbnail(size, Image.Resampling.LANCZOS)
        if self._profile is not None:
            thumbnail.info["icc_profile"] = self._profile
        return thumbnail


# -- whole-slide images ------------------------------------------------------------------------
class OpenSlide(AbstractSlide):
    """A whole-slide image, read by wsikit.

    ``OpenSlide(filename)`` opens what :func:`wsikit.open_slide` reads; keyword ``options`` go
    to it (e.g. ``backend="dicom"``, ``cache_bytes=``, ``color="srgb"``: pixels converted from
    the embedded profile to sRGB, then described by the sRGB profile). A file that is not a slide (missing,
    a plain picture, anything unrecognised) raises OpenSlideUnsupportedFormatError; a broken
    slide raises OpenSlideError.
    """

    def __init__(self, filename: str | os.PathLike[str] | bytes, **options: Any) -> None:
        AbstractSlide.__init__(self)
        self._filename = filename
        self._options = options
        path = os.fsdecode(filename) if isinstance(filename, (bytes, bytearray)) else os.fspath(filename)
        vendor = detect_vendor(path)
        if vendor is None:
            raise OpenSlideUnsupportedFormatError(path, "Unsupported or missing image file")
        from ...opener import open_slide as wsikit_open

        try:
            backend = wsikit_open(path, **options)
        except (FileNotFoundError, IsADirectoryError):
            raise OpenSlideUnsupportedFormatError(path, "Unsupported or missing image file") from None
        except SlideError as exc:
            raise _as_openslide_error(exc) from None
        self._backend: SlideBackend | None = backend
        self._vendor = vendor
        # Pixels converted on reading (color="srgb") are described by the sRGB profile.
        self._profile = backend.icc_profile if backend._color is None else srgb_profile_bytes()
        self._properties: dict[str, str] | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._filename!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # A slide travels as its file name and options; the receiver reopens the file.
        return (_reopen, (type(self), self._filename, self._options))

    @classmethod
    def detect_format(cls, filename: str | os.PathLike[str] | bytes) -> str | None:
        """OpenSlide's vendor name for the slide (``aperio``, ``generic-tiff``, ``dicom``...),
        wsikit's for slides only wsikit reads, None for anything else (missing files too)."""
        path = os.fsdecode(filename) if isinstance(filename, (bytes, bytearray)) else os.fspath(filename)
        return detect_vendor(path)

    @property
    def backend(self) -> SlideBackend:
        """The wsikit slide behind this object (its tilings, batches, options)."""
        return self._open_backend()

    def _open_backend(self) -> SlideBackend:
        backend = self._backend
        if backend is None:
            raise _ClosedSlide("argument 1: ValueError: Passing closed slide object")
        return backend

    def close(self) -> None:
        """Close the slide; closing it again raises, as openslide-python does."""
        backend = self._open_backend()
        self._backend = None
        backend.close()

    def __del__(self) -> None:
        backend = getattr(self, "_backend", None)
        if backend is not None:
            try:
                backend.close()
            except Exception:
                pass

    @property
    def level_count(self) -> int:
        return self._open_backend().level_count

    @property
    def level_dimensions(self) -> tuple[tuple[int, int], ...]:
        return tuple((w, h) for h, w in self._open_backend().level_shapes)

    @property
    def level_downsamples(self) -> tuple[float, ...]:
        return tuple(float(d) for d in self._open_backend().level_downsamples)

    @property
    def properties(self) -> Mapping[str, str]:
        """OpenSlide-style properties (see :mod:`wsikit.compat.openslide._properties`), read-only."""
        backend = self._open_backend()
        with self._lock:
            if self._properties is None:
                try:
                    self._properties = openslide_properties(backend, self._vendor)
                except SlideError as exc:
                    raise _as_openslide_error(exc) from None
        return _PropertyMap(self, self._properties)

    @property
    def associated_images(self) -> Mapping[str, Image.Image]:
        """name -> RGBA PIL image (opaque), loaded when asked for, with its ICC profile."""
        return _AssociatedImageMap(self)

    def get_best_level_for_downsample(self, downsample: float) -> int:
        """The largest level whose downsample is not above ``downsample`` (0 below level 0's), as OpenSlide."""
        downsamples = self.level_downsamples
        for level in range(1, len(downsamples)):
            if downsample < downsamples[level]:
                return level - 1
        return len(downsamples) - 1

    def read_region(self, location: tuple[int, int], level: int, size: tuple[int, int]) -> Image.Image:
        """An RGBA PIL image of ``size`` (w, h) of ``level``, at level-0 ``location`` (x, y);
        transparent outside the slide (see :mod:`wsikit.compat.openslide._regions`)."""
        backend = self._open_backend()
        x, y = _as_int(location[0], "location x"), _as_int(location[1], "location y")
        level = _as_int(level, "level")
        width, height = _as_int(size[0], "width"), _as_int(size[1], "height")
        if width < 0 or height < 0:
            raise OpenSlideError(f"negative width ({width}) or negative height ({height}) not allowed")
        if width == 0 or height == 0:
            return _pil().new("RGBA", (width, height))
        try:
            image = region_image(backend, x, y, level, width, height)
        except SlideError as exc:
            raise _as_openslide_error(exc) from None
        if self._profile is not None:
            image.info["icc_profile"] = self._profile
        return image

    def set_cache(self, cache: Any) -> None:
        """Size this slide's tile cache as ``cache`` says: an :class:`OpenSlideCache` (this
        module's or openslide-python's) or a number of bytes. Each slide keeps its own cache."""
        capacity = _cache_capacity(cache)
        backend = self._open_backend()
        from ...reader import TiledReader

        # Reads in flight keep the reader they started with; new reads use the new cache.
        backend._reader = TiledReader(capacity)
        backend._cache_bytes = capacity


def _reopen(cls: type[OpenSlide], filename: Any, options: dict[str, Any]) -> OpenSlide:
    return cls(filename, **options)


def _cache_capacity(cache: Any) -> int:
    for attribute in ("capacity", "_capacity"):
        value = getattr(cache, attribute, None)
        if isinstance(value, int) and not isinstance(value, bool):
            return max(0, value)
    if isinstance(cache, int) and not isinstance(cache, bool) and cache >= 0:
        return cache
    raise TypeError("Not a cache object")


class OpenSlideCache:
    """A tile cache size for :meth:`OpenSlide.set_cache` (openslide-python's OpenSlideCache)."""

    def __init__(self, capacity: int) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 0:
            raise ValueError(f"capacity must be a non-negative number of bytes, got {capacity!r}")
        self.capacity = capacity

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.capacity!r})"


class _SlideMap(Mapping[str, _T], ABC):
    """A read-only view that fails, as openslide-python's, once its slide is closed."""

    def __init__(self, slide: OpenSlide) -> None:
        self._slide = slide

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {dict(self)!r}>"

    @abstractmethod
    def _names(self) -> list[str]: ...

    def __len__(self) -> int:
        return len(self._names())

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())


class _PropertyMap(_SlideMap[str]):
    def __init__(self, slide: OpenSlide, values: dict[str, str]) -> None:
        super().__init__(slide)
        self._values = values

    def _names(self) -> list[str]:
        self._slide._open_backend()
        return sorted(self._values)

    def __getitem__(self, key: str) -> str:
        self._slide._open_backend()
        return self._values[key]


class _AssociatedImageMap(_SlideMap["Image.Image"]):
    def _names(self) -> list[str]:
        return list(self._slide._open_backend().associated_images)

    def __getitem__(self, key: str) -> Image.Image:
        backend = self._slide._open_backend()
        if key not in backend.associated_images:
            raise KeyError(key)
        import numpy as np

        try:
            rgb = backend.associated_images[key]
        except SlideError as exc:
            raise _as_openslide_error(exc) from None
        rgba = np.empty(rgb.shape[:2] + (4,), dtype=np.uint8)
        rgba[:, :, :3] = rgb
        rgba[:, :, 3] = 255
        image = _pil().fromarray(rgba, "RGBA")
        profile = backend.associated_icc_profiles.get(key)
        if profile == self._slide._profile:
            profile = self._slide._profile
        if profile is not None:
            image.info["icc_profile"] = profile
        return image


# -- plain pictures ---------------------------------------------------------------------------
class ImageSlide(AbstractSlide):
    """A plain picture (PNG, JPEG, TIFF...) or a PIL image with the slide interface, one level,
    pixels as Pillow gives them (openslide-python's ImageSlide)."""

    def __init__(self, file: str | os.PathLike[str] | Image.Image) -> None:
        AbstractSlide.__init__(self)
        Image = _pil()
        self._file_arg = file
        self._owns_image = not isinstance(file, Image.Image)
        image: Any = Image.open(file) if self._owns_image else file
        self._image: Any = image
        self._profile = image.info.get("icc_profile")
        self._lock = threading.Lock()  # Pillow decodes on first use: one thread at a time

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._file_arg!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        if not self._owns_image:
            raise TypeError("an ImageSlide of an in-memory PIL image cannot be pickled (it has no file to reopen)")
        return (ImageSlide, (self._file_arg,))

    @classmethod
    def detect_format(cls, filename: str | os.PathLike[str]) -> str | None:
        """Pillow's name for the image format (``PNG``, ``JPEG``, ``TIFF``...), None when Pillow
        does not read it."""
        try:
            with _pil().open(filename) as image:
                return str(image.format) if image.format else None
        except (OSError, ValueError):
            return None

    def _opened(self) -> Image.Image:
        if self._image is None:
            raise _ClosedImage("Cannot read from a closed slide")
        return self._image

    def close(self) -> None:
        """Close the image (an image given as a PIL image is left open)."""
        if self._owns_image and self._image is not None:
            self._image.close()
        self._image = None

    @property
    def level_count(self) -> int:
        return 1

    @property
    def level_dimensions(self) -> tuple[tuple[int, int], ...]:
        return (tuple(self._opened().size),)  # type: ignore[return-value]

    @property
    def level_downsamples(self) -> tuple[float, ...]:
        return (1.0,)

    @property
    def properties(self) -> Mapping[str, str]:
        return {}

    @property
    def associated_images(self) -> Mapping[str, Image.Image]:
        return {}

    def get_best_level_for_downsample(self, downsample: float) -> int:
        return 0

    def read_region(self, location: tuple[int, int], level: int, size: tuple[int, int]) -> Image.Image:
        """An RGBA image of ``size`` at ``location``: the picture's pixels converted by Pillow,
        transparent outside it. Only level 0 exists (another raises OpenSlideError)."""
        image = self._opened()
        if level != 0:
            raise OpenSlideError("Invalid level")
        x, y = _as_int(location[0], "location x"), _as_int(location[1], "location y")
        width, height = _as_int(size[0], "width"), _as_int(size[1], "height")
        if width < 0 or height < 0:
            raise OpenSlideError(f"Size {(width, height)} must be non-negative")
        Image = _pil()
        tile = Image.new("RGBA", (width, height), (0, 0, 0, 0))
        full_w, full_h = image.size
        left, top = max(x, 0), max(y, 0)
        right, bottom = min(x + width, full_w), min(y + height, full_h)
        if right > left and bottom > top:
            with self._lock:
                part = image.crop((left, top, right, bottom))
            tile.paste(part, (left - x, top - y))
        if self._profile is not None:
            tile.info["icc_profile"] = self._profile
        return tile


def open_slide(filename: str | os.PathLike[str]) -> OpenSlide | ImageSlide:
    """An :class:`OpenSlide` for a whole-slide image, an :class:`ImageSlide` for anything
    else Pillow reads (as openslide-python's open_slide)."""
    try:
        return OpenSlide(filename)
    except OpenSlideUnsupportedFormatError:
        return ImageSlide(filename)


__all__ = [
    "AbstractSlide", "ImageSlide", "OpenSlide", "OpenSlideCache", "OpenSlideError", "OpenSlideUnsupportedFormatError",
    "OpenSlideVersionError", "PROPERTY_NAME_BACKGROUND_COLOR", "PROPERTY_NAME_BARCODE", "PROPERTY_NAME_BOUNDS_HEIGHT",
    "PROPERTY_NAME_BOUNDS_WIDTH", "PROPERTY_NAME_BOUNDS_X", "PROPERTY_NAME_BOUNDS_Y", "PROPERTY_NAME_COMMENT",
    "PROPERTY_NAME_MPP_X", "PROPERTY_NAME_MPP_Y", "PROPERTY_NAME_OBJECTIVE_POWER", "PROPERTY_NAME_QUICKHASH1",
    "PROPERTY_NAME_VENDOR", "__library_version__", "__version__", "open_slide",
]
