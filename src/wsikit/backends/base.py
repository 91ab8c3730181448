"""SlideBackend: the one interface every reader offers.

A backend describes its levels and reads pixels; the base class does what is the same for
every format: checking arguments and options, zero padding outside the image, normalising
pixel types, thumbnails, the ``wsikit.*`` metadata properties, pickling, fork safety and
closing. Reading many boxes (tilings, batches) runs in the reader layer
(:mod:`wsikit.reader.stream`).

What a backend writes:

- ``can_read(path)`` (cheap, by content, never raises) and ``_open(**options)``, whose
  keyword parameters are the options the backend takes (any other option is refused here);
- either ``self._grids``, one :class:`~wsikit.reader.TileGrid` per level (then reading a box
  is stitching native tiles, done here), or its own ``_read_region``;
- ``_mpp`` / ``_objective_power``, ``_properties``, ``_associated`` loaders, and for images
  that are not brightfield RGB ``is_rgb = False``, ``sizes``, ``dtype``, ``channel_names``;
- optionally ``_close``, ``_after_fork``, ``defers_to_others`` and ``check_file`` (the
  opener's fallback policy, see :mod:`wsikit.opener`).
"""
from __future__ import annotations

import os
import threading
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import Any, Callable, ClassVar

import numpy as np

from ..checks import as_int, as_pair
from ..color import PixelConverter, check_color, slide_converter
from ..errors import CorruptSlideError, SlideError
from ..limits import check_allocation
from ..pixels import padded, to_uint8
from ..plan import Plan, TileSpec, make_plan
from ..reader import DEFAULT_CACHE_BYTES, TiledReader, TileGrid
from ..remote.prefetch import prefetch_box
from ..remote.urls import display_url, is_url
from ..reader.scaled import DEFAULT_RESAMPLING, check_resampling
from ..reader.stream import RegionRequest, RejectedRequest, Request, read_requests
from ..reader.tiles import SkippedTileWarning, TileStream, close_stream, plan_requests
from ..tiling import clip_box, thumbnail_shape
from ..annotations.planning import tile_labeller
from .associated import AssociatedImages
from .metadata import positive_float, write_resolution
from .options import check_errors, keyword_parameters, refuse_unknown_options
from .thumbnail import reduced_level, smallest_level_covering


def _reopen(cls: type[SlideBackend], path: str, options: dict[str, Any]) -> SlideBackend:
    return cls(path, **options)


class SlideBackend(ABC):
    """A whole-slide image opened for reading.

    Coordinates are (i, j) = (row, column) in pixels of the level read; shapes are (h, w).
    Brightfield RGB slides read as (h, w, 3) uint8; every other image (several channels,
    z-stacks, time series, 16-bit or float data) reads as (h, w, z, c, t).
    Arrays returned by reads may be read-only views of cached tiles: copy before writing.
    """

    #: name used by ``open_slide(path, backend=...)``
    name: ClassVar[str] = ""
    #: reads a folder (DICOM series) rather than one file
    reads_folders: ClassVar[bool] = False
    #: file endings (lower case, with the dot) of the slides this backend reads, used when a
    #: folder is searched for slides; ``can_read`` decides by content, never by these alone
    extensions: ClassVar[tuple[str, ...]] = ()

    # -- what a backend fills in while opening ------------------------------------------
    _level_shapes: list[tuple[int, int]]
    #: one native tile grid per level, for backends whose levels are tile grids
    _grids: list[TileGrid] | None = None
    _mpp: tuple[float, float] | None = None
    _objective_power: float | None = None
    _properties: dict[str, str]
    _associated: dict[str, Callable[[], np.ndarray]]
    #: True when reads give (h, w, 3) uint8 brightfield RGB
    is_rgb: bool = True
    #: (z, c, t) sizes of 5-D images
    sizes: tuple[int, int, int] = (1, 3, 1)
    #: the file's own pixel type
    dtype: np.dtype = np.dtype(np.uint8)
    channel_names: list[str]
    #: the ICC colour profile embedded for the slide's pixels, None without one (:mod:`wsikit.color`)
    icc_profile: bytes | None = None
    #: name -> ICC profile of each associated image that embeds one
    associated_icc_profiles: dict[str, bytes]
    _color: PixelConverter | None = None  # the opt-in conversion of every read (color="srgb")

    def __init__(self, path: str | os.PathLike[str] | bytes, *, cache_bytes: int = DEFAULT_CACHE_BYTES,
                 color: str | None = None, **options: Any) -> None:
        if isinstance(path, (bytes, bytearray)):
            path = os.fsdecode(path)
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
        self.path: str = os.fspath(path)
        self._closed = True  # until opened: close() and __del__ have nothing to release
        refuse_unknown_options(type(self), options, type(self)._open, skip=1)
        self._options = dict(options, cache_bytes=cache_bytes, color=check_color(color))
        self._cache_bytes = cache_bytes
        self._reader = TiledReader(cache_bytes)
        self._pid = os.getpid()
        self._last_skipped = threading.local()
        self._properties = {}
        self._associated = {}
        self.associated_icc_profiles = {}
        self._level_shapes = []
        self.channel_names = []
        self._check_exists(self.path)
        self._closed = False
        self._open_checked(options)
        if not self._level_shapes:
            self._safe_close()
            raise CorruptSlideError(self.path, "the file holds no image")
        if any(h < 1 or w < 1 for h, w in self._level_shapes):
            self._safe_close()
            raise CorruptSlideError(self.path, f"a level has no pixels: level shapes {self._level_shapes}")
        if self._grids is None and type(self)._read_region is SlideBackend._read_region:
            self._safe_close()
            raise TypeError(f"{type(self).__name__} must fill _grids or define _read_region")
        write_resolution(self._properties, self._mpp, self._objective_power)
        self._color = slide_converter(self, color)
        self._associated_view = AssociatedImages(self._associated, self.path)

    def _open_checked(self, options: dict[str, Any]) -> None:
        """``_open``, every failure but the caller's own mistakes turned into a SlideError."""
        try:
            self._open(**options)
        except (SlideError, FileNotFoundError, PermissionError, IsADirectoryError):
            self._safe_close()
            raise
        except (ValueError, TypeError) as exc:
            self._safe_close()
            if options:
                raise  # most likely about the caller's options
            # Without options it is the file: a library tripping over broken data.
            raise CorruptSlideError(self.path, f"cannot open as {self.name}: {type(exc).__name__}: {exc}") from exc
        except MemoryError as exc:
            self._safe_close()
            raise CorruptSlideError(self.path, f"opening needs more memory than available ({exc})") from None
        except Exception as exc:
            self._safe_close()
            raise CorruptSlideError(self.path, f"cannot open as {self.name}: {type(exc).__name__}: {exc}") from exc

    # -- the part each backend writes ----------------------------------------------------
    @classmethod
    @abstractmethod
    def can_read(cls, path: str) -> bool:
        """Whether this backend recognises the file by its content (cheap; never raises)."""

    @classmethod
    def defers_to_others(cls, path: str) -> bool:
        """True when this backend reads the file but any other backend that recognises it
        should be tried first (e.g. levels stored as one huge JPEG that another reader
        decodes in parts)."""
        return False

    @classmethod
    def check_file(cls, path: str) -> None:
        """Raise CorruptSlideError when the file is of this backend's format and broken.

        The opener asks before it hands a file to a less tolerant reader; a file this
        backend does not read passes.
        """
        if cls.can_read(path):
            cls(path, cache_bytes=0).close()

    @classmethod
    def open_options(cls) -> set[str]:
        """The options this backend takes when opening (besides ``cache_bytes``)."""
        return keyword_parameters(cls._open, skip=1)[0]

    @abstractmethod
    def _open(self) -> None:
        """Open the file and fill in levels, metadata and associated images. The keyword
        parameters of a backend's ``_open`` are the options it takes."""

    def _read_region(self, level: int, i: int, j: int, h: int, w: int) -> np.ndarray:
        """Pixels of the box (i, j, h, w) of ``level``, wholly inside it, in the native layout:
        (h, w, 3) uint8 when ``is_rgb``, else (h, w, z, c, t) of ``dtype``. Stitched from
        ``_grids`` unless the backend reads otherwise; a backend's keyword parameters after
        (level, i, j, h, w) are the read options ``extract_region`` passes on."""
        if self._grids is None:
            raise TypeError(f"{type(self).__name__} must fill _grids or define _read_region")
        prefetch_box(self._grids[level], i, j, i + h, j + w)  # a remote file: its tiles fetched at once
        return self._reader.read(self._grids[level], i, j, i + h, j + w)

    def _level_grid(self, level: int) -> TileGrid | None:
        """The native tile grid of ``level`` when ``_read_region`` (without options) reads
        exactly that grid, so that tilings read it directly, in parallel; else None."""
        return None if self._grids is None or self._color else self._grids[level]

    def native_tile_jpeg(self, level: int, ti: int, tj: int) -> bytes | None:
        """Native tile (``ti``, ``tj``) of ``level``'s grid, as stored, made a standalone JPEG
        (:mod:`wsikit.jpeg_streams`) that any decoder shows as the pixels read here for the
        whole stored tile (edge tiles may reach past the level); None when it is not stored
        as such a JPEG (another compression or layout, no data, no native tiles)."""
        self._ensure_usable()
        level, ti, tj = self._check_level(level), as_int(ti, "ti"), as_int(tj, "tj")
        grid = self._level_grid(level)
        if grid is not None and not (0 <= ti < grid.tile_counts[0] and 0 <= tj < grid.tile_counts[1]):
            raise ValueError(f"tile ({ti}, {tj}) is outside level {level}'s grid of {grid.tile_counts} tiles")
        return None if grid is None else self._native_tile_jpeg(level, ti, tj)

    def _native_tile_jpeg(self, level: int, ti: int, tj: int) -> bytes | None:
        return None  # backends storing JPEG tiles say how

    def _close(self) -> None:
        """Release file handles."""

    def _after_fork(self) -> None:
        """Make handles inherited from a parent process safe to use in this child."""

    # -- metadata ------------------------------------------------------------------------
    @staticmethod
    def _check_exists(path: str) -> None:
        if not is_url(path) and not os.path.exists(path):  # a URL's backend says when it is missing
            raise FileNotFoundError(2, "No such file or directory", path)

    @property
    def level_count(self) -> int:
        return len(self._level_shapes)

    @property
    def level_shapes(self) -> tuple[tuple[int, int], ...]:
        """(rows, columns) of every level."""
        return tuple(self._level_shapes)

    @property
    def level_downsamples(self) -> tuple[float, ...]:
        """Level-0 pixels per level pixel, exact (the mean of the row and column ratios, as OpenSlide)."""
        return tuple(sum(self.level_scale(k)) / 2 for k in range(self.level_count))

    def level_scale(self, level: int) -> tuple[float, float]:
        """(rows, columns) ratio of level 0 to ``level``."""
        h0, w0 = self._level_shapes[0]
        h, w = self._level_shapes[level]
        return h0 / h, w0 / w

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns) of level 0."""
        return self._level_shapes[0]

    @property
    def dimensions(self) -> tuple[int, int]:
        """Deprecated: (rows, columns) of level 0, the opposite order of OpenSlide's
        ``dimensions`` (width, height). Use :attr:`shape`."""
        warnings.warn("SlideBackend.dimensions is (rows, columns), unlike OpenSlide's (width, height); "
                      "use .shape (rows, columns)", DeprecationWarning, stacklevel=2)
        return self._level_shapes[0]

    @property
    def mpp(self) -> tuple[float, float] | None:
        """(i, j) microns per pixel at level 0, or None when the file does not say."""
        return self._mpp

    @property
    def objective_power(self) -> float | None:
        """The scanner objective's magnification (e.g. 20.0), or None when unknown."""
        return self._objective_power

    @property
    def properties(self) -> Mapping[str, str]:
        """The file's metadata as read-only str -> str (with ``wsikit.mpp-y``, ``wsikit.mpp-x``
        and ``wsikit.objective-power`` where known, the same for every format)."""
        return MappingProxyType(self._properties)

    @property
    def associated_images(self) -> Mapping[str, np.ndarray]:
        """Read-only name -> uint8 RGB (h, w, 3) array: label, macro, thumbnail where present."""
        if not self._closed and os.getpid() != self._pid:
            self._ensure_usable()  # images load lazily, through handles a forked child must renew
        return self._associated_view

    def get_image_shape(self, level: int | None = 0) -> tuple[int, int]:
        """(rows, columns) of ``level``."""
        return self._level_shapes[self._check_level(level)]

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"levels={self.level_count}, shape={self._level_shapes[0] if self._level_shapes else None}"
        return f"{type(self).__name__}({display_url(self.path)!r}, {state})"  # a URL without password or query

    # -- lifecycle -----------------------------------------------------------------------
    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._reader.close()  # its cached tiles and the helper threads of large reads
            self._safe_close()

    def _safe_close(self) -> None:
        try:
            self._close()
        except Exception:  # closing must not fail; the handle is gone either way
            pass

    def __enter__(self) -> SlideBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def __reduce__(self) -> tuple[Any, ...]:
        # A backend travels as its path and options; the receiver reopens the file.
        return (_reopen, (type(self), self.path, self._options))

    def _ensure_usable(self) -> None:
        if self._closed:
            raise ValueError(f"{type(self).__name__} for {self.path!r} is closed")
        pid = os.getpid()
        if pid != self._pid:
            # Locks may have been held by other threads at fork time: start afresh.
            self._reader = TiledReader(self._cache_bytes)
            self._after_fork()
            self._pid = pid

    # -- argument checks -----------------------------------------------------------------
    def _check_level(self, level: object) -> int:
        if level is None:
            return 0
        number = as_int(level, "level")
        if not 0 <= number < self.level_count:
            raise ValueError(f"level must be in [0, {self.level_count - 1}] for this slide, got {number}")
        return number

    @staticmethod
    def _check_workers(workers: object) -> int | None:
        return None if workers is None else as_int(workers, "workers", minimum=1)

    def _check_read_options(self, options: dict[str, Any]) -> None:
        if options:
            refuse_unknown_options(type(self), options, type(self)._read_region, skip=6, where=".extract_region")

    def _pixel_shape(self, normalize: bool) -> tuple[tuple[int, ...], np.dtype]:
        """The trailing axes and dtype of what reads return."""
        if self.is_rgb:
            return (3,), np.dtype(np.uint8)
        return tuple(self.sizes), np.dtype(np.uint8) if normalize else np.dtype(self.dtype)

    # -- reading -------------------------------------------------------------------------
    def extract_region(self, location: tuple[int, int] | int, size: tuple[int, int] | int, level: int | None = 0,
                       normalize: bool = True, **options: Any) -> np.ndarray:
        """Pixels of the box at ``location`` (i, j) of ``size`` (h, w) in the frame of ``level``.

        Parts outside the image are zero. Brightfield RGB: (h, w, 3) uint8. Other images:
        (h, w, z, c, t), uint8 when ``normalize`` (scaled from the full range of the pixel
        type: uint16 v -> v >> 8), else the file's own dtype. ``options`` are the backend's
        read options (e.g. DICOM's ``optical_path``); others raise TypeError.
        """
        self._ensure_usable()
        self._check_read_options(options)
        level = self._check_level(level)
        return self._extract(level, as_pair(location, "location"), as_pair(size, "size", minimum=1),
                             bool(normalize), **options)

    def _extract(self, level: int, location: tuple[int, int], size: tuple[int, int], normalize: bool,
                 **options: Any) -> np.ndarray:
        pixel_shape, dtype = self._pixel_shape(normalize)
        check_allocation(size + pixel_shape, dtype.itemsize, "region", self.path)
        box = clip_box(location, size, self._level_shapes[level])
        if box is not None and box[1] == (0, 0) and (box[0][2] - box[0][0], box[0][3] - box[0][1]) == size:
            return self._normalized(self._read_checked(level, location, size, **options), normalize)
        if box is None:
            return padded(None, (0, 0), size, pixel_shape, dtype)
        (i0, j0, i1, j1), offset = box
        part = self._read_checked(level, (i0, j0), (i1 - i0, j1 - j0), **options)
        return padded(self._normalized(part, normalize), offset, size, part.shape[2:] if options else pixel_shape,
                      dtype)

    def _normalized(self, array: np.ndarray, normalize: bool) -> np.ndarray:
        return to_uint8(array) if normalize and not self.is_rgb else array

    def _read_checked(self, level: int, location: tuple[int, int], size: tuple[int, int],
                      **options: Any) -> np.ndarray:
        """``_read_region``, any failure a SlideError naming the box, its result's shape checked."""
        try:
            array = self._read_region(level, location[0], location[1], size[0], size[1], **options)
        except SlideError:
            raise
        except MemoryError:
            raise CorruptSlideError(self.path, f"out of memory reading {size} at {location} of level {level}") from None
        except Exception as exc:
            if options and isinstance(exc, (TypeError, ValueError)):
                raise  # most likely about the caller's backend-specific arguments
            # Without such arguments it is the file: a library tripping over broken data.
            raise CorruptSlideError(
                self.path, f"cannot read {size} at {location} of level {level}: {type(exc).__name__}: {exc}"
            ) from exc
        # Backend options may change the trailing axes (e.g. series as channels), never (h, w).
        shape = getattr(array, "shape", None)
        expected = tuple(size) + (self._pixel_shape(False)[0] if not options else tuple(shape[2:] if shape else ()))
        if shape != expected:
            raise CorruptSlideError(self.path, f"reading {size} at {location} of level {level} gave an array of shape "
                                               f"{shape}, not {expected}")
        return array if self._color is None else self._color(array)

    def read_regions(self, locations: Iterable[tuple[int, int]], size: tuple[int, int] | int,
                     level: int | None = 0, *, workers: int | None = None, normalize: bool = True,
                     **options: Any) -> Iterator[np.ndarray]:
        """``extract_region`` for many locations, read in parallel, yielded in order."""
        self._ensure_usable()
        self._check_read_options(options)
        level = self._check_level(level)
        size = as_pair(size, "size", minimum=1)
        workers = self._check_workers(workers)

        def requests() -> Iterator[Request]:
            for location in locations:
                try:
                    yield RegionRequest(level, as_pair(location, "location"), size, size)
                except Exception as exc:  # raised at its turn, after the regions before it
                    yield RejectedRequest(exc)

        def arrays() -> Iterator[np.ndarray]:
            results = read_requests(self, requests(), normalize=bool(normalize), workers=workers, options=options)
            try:
                for _, image, error in results:
                    if error is not None:
                        raise error
                    yield image  # type: ignore[misc]  # an image whenever there is no error
            finally:
                close_stream(results)

        return arrays()

    # -- tiling --------------------------------------------------------------------------
    def tile_plan(self, shape: tuple[int, int] | int = 3000, stride: tuple[int, int] | int | None = None,
                  pad: bool = False, level: int | None = 0, *, mpp: float | tuple[float, float] | None = None,
                  magnification: float | None = None, min_tissue: float | None = None,
                  tissue_mask: Any = None, annotations: Any = None, min_label: dict[str, float] | None = None) -> Plan:
        """The :class:`~wsikit.plan.Plan` (a sequence of TileSpecs) that ``generate_tiles``
        reads for these arguments; see :func:`wsikit.plan.make_plan`."""
        return make_plan(self, shape=shape, stride=stride, pad=pad, level=level, mpp=mpp,
                         magnification=magnification, min_tissue=min_tissue, tissue_mask=tissue_mask,
                         annotations=annotations, min_label=min_label)

    def generate_tiles(self, shape: tuple[int, int] | int = 3000, stride: tuple[int, int] | int | None = None,
                       pad: bool = False, level: int | None = 0, *, mpp: float | tuple[float, float] | None = None,
                       magnification: float | None = None, min_tissue: float | None = None, tissue_mask: Any = None,
                       annotations: Any = None, min_label: dict[str, float] | None = None, workers: int | None = None, normalize: bool = True, errors: str = "raise",
                       resampling: str = DEFAULT_RESAMPLING, **options: Any) -> TileStream:
        """Tiles of ``shape`` (h, w) every ``stride`` pixels, row-major, on the tiling grid of
        PathML's ``generate_tiles`` (see :mod:`wsikit.tiling`).

        Without ``pad`` only tiles wholly inside the level; with ``pad``, tiles starting
        inside it, zero outside. Read on ``workers`` threads (default: all cores; 1 reads
        sequentially). ``errors="skip"`` skips unreadable tiles with a SkippedTileWarning,
        listed in the returned iterator's ``skipped_tiles``. The keyword arguments
        ``mpp``, ``magnification``, ``min_tissue``, ``tissue_mask``, ``annotations`` (tiles get
        ``labels`` and ``masks``) and ``min_label`` choose tiles (see :meth:`tile_plan`); others
        are the backend's read options (see ``extract_region``). ``resampling``: "fast" decodes
        JPEG levels at 1/2, 1/4, 1/8 where tiles are coarser than the level, "exact" area-averages
        full decodes (:mod:`wsikit.reader.scaled`).
        """
        self._ensure_usable()
        check_errors(errors)
        self._check_read_options(options)
        plan = self.tile_plan(shape, stride, pad, level, mpp=mpp, magnification=magnification, min_tissue=min_tissue,
                              tissue_mask=tissue_mask, annotations=annotations, min_label=min_label)
        return self.read_plan(plan, workers=workers, normalize=normalize, errors=errors, resampling=resampling,
                              **options)

    def read_plan(self, plan: Plan | Iterable[TileSpec], *, workers: int | None = None, normalize: bool = True,
                  errors: str = "raise", resampling: str = DEFAULT_RESAMPLING, **options: Any) -> TileStream:
        """The tiles of a plan (``tile_plan``'s, part of one, or TileSpecs of the caller's
        own), in order, read in parallel; see ``generate_tiles`` for the arguments."""
        self._ensure_usable()
        check_errors(errors)
        self._check_read_options(options)
        workers = self._check_workers(workers)
        results = read_requests(self, plan_requests(plan), normalize=bool(normalize), workers=workers,
                                options=options, plan=plan if isinstance(plan, Plan) else None,
                                resampling=check_resampling(resampling))
        stream = TileStream(results, skip=errors == "skip", labeller=tile_labeller(plan))
        self._last_skipped.tiles = stream.skipped_tiles
        return stream

    @property
    def skipped_tiles(self) -> list[tuple[tuple[int, int], str]]:
        """Deprecated: the ``skipped_tiles`` of the last tiling this thread started on this
        slide. Use the ``skipped_tiles`` of the iterator ``generate_tiles`` returns."""
        warnings.warn("slide.skipped_tiles is deprecated: use the skipped_tiles of the iterator that "
                      "generate_tiles / read_plan return", DeprecationWarning, stacklevel=2)
        return getattr(self._last_skipped, "tiles", [])

    # -- thumbnails ----------------------------------------------------------------------
    def get_thumbnail(self, size: tuple[int, int] | int) -> np.ndarray:
        """A uint8 RGB (h, w, 3) picture of the whole slide that fits in ``size`` = (h, w).

        The aspect ratio is kept (:func:`wsikit.tiling.thumbnail_shape`); pixels come from the
        smallest level at least as large as the thumbnail, read in bands so memory stays
        bounded, averaged over areas.
        """
        self._ensure_usable()
        out_shape = thumbnail_shape(self._level_shapes[0], as_pair(size, "size", minimum=1))
        check_allocation(out_shape + (3,), 1, "thumbnail", self.path)
        return reduced_level(self, self._thumbnail_level(out_shape), out_shape)

    def _thumbnail_level(self, out_shape: tuple[int, int]) -> int:
        return smallest_level_covering(self.level_shapes, out_shape)

    def thumbnail_level(self, size: tuple[int, int] | int) -> int:
        """The level ``get_thumbnail(size)`` reads from."""
        return self._thumbnail_level(thumbnail_shape(self._level_shapes[0], as_pair(size, "size", minimum=1)))


__all__ = ["SlideBackend", "SkippedTileWarning", "keyword_parameters", "positive_float"]
