"""SlideBackend: the one interface every reader offers.

The base class owns everything that is the same for every format: argument checking,
zero padding outside the image, dtype normalisation, the tile grid, thumbnails, parallel
tiling, pickling and fork safety. A backend only describes its levels and reads pixels
of a box that lies wholly inside one level (:meth:`SlideBackend._read_region`).
"""
from __future__ import annotations

import math
import os
import threading
import warnings
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Callable, ClassVar, Iterable, Iterator

import numpy as np

from ..errors import CorruptSlideError, SlideError
from .metadata import positive_float  # noqa: F401  (re-exported for backends)
from ..checks import as_int, as_pair
from ..tiling import clip_box
from ..limits import check_allocation
from ..pixels import block_mean, display_rgb, resize_area, to_uint8
from ..plan import Plan
from ..reader import DEFAULT_CACHE_BYTES, TiledReader, TileGrid, UseCounter, count_uses, ordered_map
from ..tile import Tile


class SkippedTileWarning(UserWarning):
    """A tile could not be read and was skipped (``generate_tiles(errors="skip")``)."""


class _LazyImages(Mapping):
    """Read-only name -> image mapping that loads each image on first access."""

    def __init__(self, loaders: dict[str, Callable[[], np.ndarray]], path: str | None = None):
        self._loaders = dict(loaders)
        self._images: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()
        self._path = path

    def __getitem__(self, name: str) -> np.ndarray:
        with self._lock:
            if name not in self._images:
                image = self._load(name, self._loaders[name])
                image.setflags(write=False)
                self._images[name] = image
            return self._images[name]

    def _load(self, name: str, loader) -> np.ndarray:
        # A broken file fails here as a SlideError like any other read, never raw.
        try:
            image = loader()
        except SlideError:
            raise
        except MemoryError:
            raise CorruptSlideError(self._path, f"associated image {name!r}: out of memory") from None
        except Exception as exc:
            raise CorruptSlideError(self._path, f"associated image {name!r} cannot be read: {type(exc).__name__}: {exc}") from exc
        if not (isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8):
            raise CorruptSlideError(self._path, f"associated image {name!r} read as {getattr(image, 'shape', None)}, not (h, w, 3) uint8")
        return image

    def __iter__(self):
        return iter(self._loaders)

    def __len__(self) -> int:
        return len(self._loaders)

    def __repr__(self) -> str:
        return f"<associated images: {', '.join(self._loaders) or 'none'}>"


def _reopen(cls, path, options):
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

    def __init__(self, path, *, cache_bytes: int = DEFAULT_CACHE_BYTES, **options):
        if isinstance(path, (bytes, bytearray)):
            path = os.fsdecode(path)
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
        self.path = os.fspath(path)
        self._options = dict(options, cache_bytes=cache_bytes)
        self._cache_bytes = cache_bytes
        self._reader = TiledReader(cache_bytes)
        self._pid = os.getpid()
        self._closed = False
        self._properties = {}
        self._associated = {}
        self._level_shapes = []
        self.channel_names = []
        self._check_exists(self.path)
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
        if not self._level_shapes:
            raise CorruptSlideError(self.path, "the file holds no image")
        if any(h < 1 or w < 1 for h, w in self._level_shapes):
            self._safe_close()
            raise CorruptSlideError(self.path, f"a level has no pixels: level shapes {self._level_shapes}")
        self._associated_view = _LazyImages(self._associated, self.path)

    # -- the part each backend writes ----------------------------------------------------
    @classmethod
    @abstractmethod
    def can_read(cls, path: str) -> bool:
        """Whether this backend recognises the file (cheap; never raises)."""

    @abstractmethod
    def _open(self, **options) -> None:
        """Open the file and fill in levels, metadata and associated images."""

    @abstractmethod
    def _read_region(self, level: int, i: int, j: int, h: int, w: int, **kwargs) -> np.ndarray:
        """Pixels of the box (i, j, h, w) of ``level``, wholly inside it, in the native layout.

        (h, w, 3) uint8 when ``is_rgb``, else (h, w, z, c, t) of ``dtype``.
        """

    def _level_grid(self, level: int) -> TileGrid | None:
        """The native tile grid of ``level`` when ``_read_region`` reads exactly
        ``self._reader.read(grid, ...)`` (then tilings and batches read the grid directly,
        in parallel, each native tile decoded once); None otherwise."""
        return None

    def _close(self) -> None:
        """Release file handles."""

    def _after_fork(self) -> None:
        """Make handles inherited from a parent process safe to use in this child."""

    # -- metadata ------------------------------------------------------------------------
    @staticmethod
    def _check_exists(path: str) -> None:
        if not os.path.exists(path):
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
    def dimensions(self) -> tuple[int, int]:
        """(rows, columns) of level 0."""
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
        """The file's metadata as read-only str -> str."""
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
        return f"{type(self).__name__}({self.path!r}, {state})"

    # -- lifecycle -----------------------------------------------------------------------
    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._reader.cache.clear()
            self._safe_close()

    def _safe_close(self) -> None:
        try:
            self._close()
        except Exception:  # closing must not fail; the handle is gone either way
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __reduce__(self):
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
    def _check_level(self, level) -> int:
        if level is None:
            return 0
        level = as_int(level, "level")
        if not 0 <= level < self.level_count:
            raise ValueError(f"level must be in [0, {self.level_count - 1}] for this slide, got {level}")
        return level

    def _pixel_shape(self, normalize: bool) -> tuple[tuple[int, ...], np.dtype]:
        if self.is_rgb:
            return (3,), np.dtype(np.uint8)
        return tuple(self.sizes), np.dtype(np.uint8) if normalize else np.dtype(self.dtype)

    # -- reading -------------------------------------------------------------------------
    def extract_region(self, location, size, level: int | None = 0, normalize: bool = True, **kwargs) -> np.ndarray:
        """Pixels of the box at ``location`` (i, j) of ``size`` (h, w) in the frame of ``level``.

        Parts outside the image are zero. Brightfield RGB: (h, w, 3) uint8. Other images:
        (h, w, z, c, t), uint8 when ``normalize`` (scaled from the full range of the pixel
        type: uint16 v -> v >> 8), else the file's own dtype.
        """
        self._ensure_usable()
        level = self._check_level(level)
        location = as_pair(location, "location")
        size = as_pair(size, "size", minimum=1)
        return self._extract(level, location, size, bool(normalize), **kwargs)

    def _extract(self, level: int, location, size, normalize: bool, **kwargs) -> np.ndarray:
        pixel_shape, dtype = self._pixel_shape(normalize)
        check_allocation(size + pixel_shape, dtype.itemsize, "region", self.path)
        box = clip_box(location, size, self._level_shapes[level])
        if box is not None and box[1] == (0, 0) and (box[0][2] - box[0][0], box[0][3] - box[0][1]) == size:
            return self._normalized(self._read_checked(level, location, size, **kwargs), normalize)
        out = np.zeros(size + pixel_shape, dtype=dtype)
        if box is not None:
            (i0, j0, i1, j1), (di, dj) = box
            part = self._read_checked(level, (i0, j0), (i1 - i0, j1 - j0), **kwargs)
            out[di : di + i1 - i0, dj : dj + j1 - j0] = self._normalized(part, normalize)
        return out

    def _normalized(self, array: np.ndarray, normalize: bool) -> np.ndarray:
        return to_uint8(array) if normalize and not self.is_rgb else array

    def _read_checked(self, level: int, location, size, **kwargs) -> np.ndarray:
        try:
            array = self._read_region(level, location[0], location[1], size[0], size[1], **kwargs)
        except SlideError:
            raise
        except MemoryError:
            raise CorruptSlideError(self.path, f"out of memory reading {size} at {location} of level {level}") from None
        except Exception as exc:
            if kwargs and isinstance(exc, (TypeError, ValueError)):
                raise  # most likely about the caller's backend-specific arguments
            # Without such arguments it is the file: a library tripping over broken data.
            raise CorruptSlideError(
                self.path, f"cannot read {size} at {location} of level {level}: {type(exc).__name__}: {exc}"
            ) from exc
        # Backend arguments may change the trailing axes (e.g. series as channels), never (h, w).
        shape = getattr(array, "shape", None)
        expected = tuple(size) + (self._pixel_shape(False)[0] if not kwargs else tuple(shape[2:] if shape else ()))
        if shape != expected:
            raise CorruptSlideError(self.path, f"reading {size} at {location} of level {level} gave an array of shape "
                                               f"{getattr(array, 'shape', None)}, not {expected}")
        return array

    def read_regions(self, locations: Iterable, size, level: int | None = 0, *, workers: int | None = None,
                     normalize: bool = True, **kwargs) -> Iterator[np.ndarray]:
        """``extract_region`` for many locations, read in parallel, yielded in order."""
        self._ensure_usable()
        level = self._check_level(level)
        size = as_pair(size, "size", minimum=1)
        workers = self._check_workers(workers)

        def where(location):
            return level, as_pair(location, "location"), size, size

        def arrays():
            for _, image, error in self._read_stream(locations, where, bool(normalize), workers, kwargs):
                if error is not None:
                    raise error
                yield image

        return arrays()

    @staticmethod
    def _check_workers(workers) -> int | None:
        if workers is None:
            return None
        return as_int(workers, "workers", minimum=1)

    # -- tiling --------------------------------------------------------------------------
    def tile_plan(self, shape=3000, stride=None, pad: bool = False, level: int | None = 0, **plan_options):
        """The list of :class:`~wsikit.plan.TileSpec` that ``generate_tiles`` would read."""
        from ..plan import make_plan

        return make_plan(self, shape=shape, stride=stride, pad=pad, level=level, **plan_options)

    def generate_tiles(self, shape=3000, stride=None, pad: bool = False, level: int | None = 0, *,
                       workers: int | None = None, normalize: bool = True, errors: str = "raise",
                       **options) -> Iterator[Tile]:
        """Tiles of ``shape`` (h, w) every ``stride`` pixels, row-major, in the seed's grid.

        Without ``pad`` only tiles wholly inside the level; with ``pad``, tiles starting
        inside it, zero outside. Read on ``workers`` threads (default: all cores; 1 reads
        sequentially). ``errors="skip"`` skips unreadable tiles with a SkippedTileWarning
        (the skipped coordinates are kept in ``skipped_tiles``). Other keyword arguments
        select tiles (see :func:`wsikit.plan.make_plan`) or pass through to ``extract_region``.
        """
        self._ensure_usable()
        if errors not in ("raise", "skip"):
            raise ValueError(f"errors must be 'raise' or 'skip', got {errors!r}")
        workers = self._check_workers(workers)
        plan_keys = {"mpp", "magnification", "min_tissue", "tissue_mask"}
        plan_options = {k: options.pop(k) for k in list(options) if k in plan_keys}
        plan = self.tile_plan(shape, stride, pad, level, **plan_options)
        return self.read_plan(plan, workers=workers, normalize=normalize, errors=errors, **options)

    def read_plan(self, plan, *, workers: int | None = None, normalize: bool = True, errors: str = "raise",
                  **kwargs) -> Iterator[Tile]:
        """Read the tiles of a plan (see ``tile_plan``) in order, in parallel."""
        self._ensure_usable()
        normalize = bool(normalize)
        self.skipped_tiles: list[tuple[tuple[int, int], str]] = []
        skip = errors == "skip"
        if isinstance(plan, Plan):
            # A plan made by make_plan: its entries come as plain tuples (coords,
            # read_location, read_size, coords0, tissue), not TileSpecs, and its values
            # need no second check: the least work per tile in the calling thread.
            items, level, shape, mpp = plan.entries(), plan.level, plan.shape, plan.mpp

            def where(entry):
                return level, entry[1], entry[2], shape

            def tile_of(image, entry):
                return Tile._read(image, entry[0], level, entry[3], mpp, entry[4])
        else:
            items = plan

            def where(spec):
                return spec.level, spec.read_location, spec.read_size, spec.shape

            def tile_of(image, spec):
                return Tile(image, spec.coords, spec.level, coords0=spec.coords0, mpp=spec.mpp, tissue=spec.tissue)

        def tiles():
            for item, image, error in self._read_stream(items, where, normalize, workers, kwargs, plan=plan):
                if error is None:
                    yield tile_of(image, item)
                    continue
                if not (skip and isinstance(error, SlideError)):
                    raise error
                coords = item[0] if isinstance(item, tuple) else item.coords
                self.skipped_tiles.append((coords, str(error)))
                warnings.warn(f"skipped tile {coords}: {error}", SkippedTileWarning, stacklevel=2)

        return tiles()

    def _read_stream(self, items, where, normalize: bool, workers, kwargs, plan=None) -> Iterator[tuple]:
        """``(item, pixels, error)`` for every item, in order, read on ``workers`` threads.

        ``where(item)`` gives ``(level, location, size, shape)``: the box to read (zero
        outside the level) and the shape to area-average it to. A SlideError reading an
        item is handed back as its ``error``; an error of ``where`` (a bad argument) too.
        Backends whose levels are native tile grids (``_level_grid``) are read straight
        from the grids: native tiles decoded ahead on the workers, each decoded once.
        ``plan``, the Plan that ``items`` come from, lets the reader count native tile uses
        from its arrays.
        """
        grids = [self._level_grid(k) for k in range(self.level_count)]
        if kwargs or any(grid is None for grid in grids):
            def read(item):
                try:
                    level, location, size, shape = where(item)
                    image = self._extract(level, location, size, normalize, **kwargs)
                    return item, image if size == shape else self._resample(image, shape), None
                except SlideError as exc:
                    return item, None, exc

            return ordered_map(read, items, workers)
        pixel_shape, dtype = self._pixel_shape(normalize)
        checked: set = set()

        def jobs(items):
            for item in items:
                try:
                    yield (item, *where(item))
                except Exception as exc:  # raised in order, when the item's turn comes
                    yield item, exc

        def box_of(job):
            if len(job) == 2:
                raise job[1]
            _, level, (i, j), (h, w), _ = job
            if (h, w) not in checked:
                check_allocation((h, w) + pixel_shape, dtype.itemsize, "region", self.path)
                checked.add((h, w))
            grid = grids[level]
            i0, j0, i1, j1 = max(i, 0), max(j, 0), min(i + h, grid.shape[0]), min(j + w, grid.shape[1])
            return (grid, i0, j0, i1, j1) if i0 < i1 and j0 < j1 else None

        def finish(job, array):
            _, _, (i, j), size, shape = job
            if array is not None and array.shape[:2] == size:
                if not self.is_rgb:
                    array = self._normalized(array, normalize)
            else:  # partly or wholly outside the level: zero there
                out = np.zeros(size + pixel_shape, dtype=dtype)
                if array is not None:
                    di, dj = max(i, 0) - i, max(j, 0) - j
                    out[di : di + array.shape[0], dj : dj + array.shape[1]] = self._normalized(array, normalize)
                array = out
            return array if size == shape else self._resample(array, shape)

        uses = None
        # Knowing every native tile's uses lets the reader cache only tiles used again.
        if isinstance(plan, Plan):  # the plan ``items`` are the entries of
            uses = _plan_uses(plan, grids[plan.level])
        elif isinstance(items, (Sequence, np.ndarray)):
            def boxes():
                for job in jobs(items):
                    try:
                        yield box_of(job)
                    except Exception:
                        continue

            uses = count_uses(boxes())

        def results():
            for job, image, error in self._reader.stream(jobs(items), box_of, finish, workers=workers, uses=uses):
                yield job[0], image, None if error is None else self._read_error(error, job)

        return results()

    def _read_error(self, exc: BaseException, job) -> BaseException:
        """The error to report for a failed read of a stream job (see ``_read_stream``)."""
        if isinstance(exc, SlideError) or len(job) == 2 or not isinstance(exc, Exception):
            return exc
        _, level, location, size, _ = job
        if isinstance(exc, ValueError):
            return CorruptSlideError(self.path, str(exc))
        if isinstance(exc, MemoryError):
            return CorruptSlideError(self.path, f"out of memory reading {size} at {location} of level {level}")
        return CorruptSlideError(self.path, f"cannot read {size} at {location} of level {level}: {type(exc).__name__}: {exc}")

    def _resample(self, image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        """Area-average ``image`` to ``shape`` (h, w), keeping its dtype and trailing axes."""
        from ..pixels import resample_area

        return resample_area(image, shape)

    # -- thumbnails ----------------------------------------------------------------------
    def get_thumbnail(self, size) -> np.ndarray:
        """A uint8 RGB (h, w, 3) picture of the whole slide that fits in ``size`` = (h, w).

        The aspect ratio is kept; pixels come from the smallest level at least as large as
        the thumbnail, read in bands so memory stays bounded, averaged over areas.
        """
        self._ensure_usable()
        th, tw = as_pair(size, "size", minimum=1)
        h0, w0 = self._level_shapes[0]
        scale = min(th / h0, tw / w0)
        out_shape = (min(th, max(1, round(h0 * scale))), min(tw, max(1, round(w0 * scale))))
        check_allocation(out_shape + (3,), 1, "thumbnail", self.path)
        level = self._thumbnail_level(out_shape)
        return self._reduced_level(level, out_shape)

    def _thumbnail_level(self, out_shape) -> int:
        for level in range(self.level_count - 1, -1, -1):
            h, w = self._level_shapes[level]
            if h >= out_shape[0] and w >= out_shape[1]:
                return level
        return 0

    def _reduced_level(self, level: int, out_shape) -> np.ndarray:
        h, w = self._level_shapes[level]
        factor = max(1, min(h // out_shape[0], w // out_shape[1]))
        # float32 RGB while averaging, or the uint8 (z, c, t) planes read, whichever is more
        row_bytes = w * max(3 * 4, int(np.prod(self._pixel_shape(True)[0])))
        band = max(factor, (64 * 1024**2 // max(1, row_bytes)) // factor * factor)
        band = min(band, -(-h // factor) * factor)
        reduced_shape = (-(-h // factor), -(-w // factor), 3)
        check_allocation(reduced_shape, 4, "thumbnail intermediate", self.path)
        reduced = np.empty(reduced_shape, dtype=np.float32)
        for i in range(0, h, band):
            rows = min(band, h - i)
            part = display_rgb(self._extract(level, (i, 0), (rows, w), True))
            reduced[i // factor : i // factor + -(-rows // factor)] = block_mean(part, factor)
        return resize_area(reduced, out_shape)

    def thumbnail_level(self, size) -> int:
        """The level ``get_thumbnail(size)`` reads from."""
        th, tw = as_pair(size, "size", minimum=1)
        h0, w0 = self._level_shapes[0]
        scale = min(th / h0, tw / w0)
        return self._thumbnail_level((min(th, max(1, round(h0 * scale))), min(tw, max(1, round(w0 * scale)))))

    # -- helpers for backends ------------------------------------------------------------
    def _corrupt(self, reason: str) -> CorruptSlideError:
        return CorruptSlideError(self.path, reason)


def _plan_uses(plan: Plan, grid) -> dict:
    """:func:`~wsikit.reader.count_uses` for a plan, counted from its arrays a block at a time."""
    counter = UseCounter()
    h, w = grid.shape
    for start in range(0, len(plan), 8192):  # blocks of a few hundred KB
        b = plan.read_boxes(start, start + 8192)
        i0, j0 = np.maximum(b[:, 0], 0), np.maximum(b[:, 1], 0)
        i1, j1 = np.minimum(b[:, 0] + b[:, 2], h), np.minimum(b[:, 1] + b[:, 3], w)
        inside = (i0 < i1) & (j0 < j1)  # boxes wholly outside the level read nothing
        counter.add(grid, np.stack([i0, j0, i1, j1], axis=1)[inside])
    return counter.counts()


def average_downsample(shape0, shape) -> float:
    """OpenSlide's definition of a level's downsample: the mean of the two axis ratios."""
    return (shape0[0] / shape[0] + shape0[1] / shape[1]) / 2


__all__ = ["SlideBackend", "SkippedTileWarning", "average_downsample"]
