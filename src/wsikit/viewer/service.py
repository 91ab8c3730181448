"""The viewer's work, apart from HTTP: slide descriptions, tiles, thumbnails and overlays.

A JPEG tile is the slide's stored JPEG tile where that is exactly the DZI tile (the same
pixels, see :meth:`~wsikit.viewer.deepzoom.TileReader.stored_jpeg`), else the pixels read
and encoded here (``passthrough=False``: always the latter).

Everything here is blocking (it reads slides) and thread-safe; the web layer
(:mod:`wsikit.viewer.app`) runs it on a thread pool. Per slide, the things that are costly
and the same for every request are made once and kept: the DZI tile reader, the tissue
mask, the auto contrast ranges. Encoded tiles, thumbnails and associated images share one
cache bounded in bytes.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Callable, Hashable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from ..inventory import slide_info
from ..remote.urls import is_url
from ..pixels import resample_area
from .catalog import SlideCatalog, SlideEntry
from .channels import ChannelDisplay, auto_ranges, composite, default_display, display_key, parse_display
from .deepzoom import TileReader
from .encoding import DEFAULT_CACHE_BYTES, BytesCache, encode
from .overlays import plan_options, plan_overlay, tissue_picture
from .results import ResultsError, read_results, result_folders, slide_key, written_tile

if TYPE_CHECKING:
    from ..backends.base import SlideBackend
    from ..tissue import TissueMask

T = TypeVar("T")
#: the largest thumbnail the index asks for
MAX_THUMBNAIL = 1024
#: the longer side of the low-resolution read the auto contrast ranges are computed from
AUTO_RANGE_SIZE = 512


class BadRequest(ValueError):
    """A request with a parameter the viewer refuses (answered 400)."""


class TileView:
    """How a request wants a slide shown: read options (DICOM optical path, focal plane) and
    the channels of a non-RGB slide. Built by :meth:`ViewerService.view`."""

    def __init__(self, options: dict[str, Any], display: tuple[ChannelDisplay, ...] | None) -> None:
        self.options = options
        self.display = display

    @property
    def key(self) -> Hashable:
        return (tuple(sorted(self.options.items())), None if self.display is None else display_key(self.display))


class ViewerService:
    """The slides under ``root`` and what the viewer makes of them."""

    def __init__(self, root: str | os.PathLike[str], results: str | os.PathLike[str] | None = None,
                 cache_bytes: int = DEFAULT_CACHE_BYTES, passthrough: bool = True) -> None:
        self.catalog = SlideCatalog(root)
        #: serve a slide's stored JPEG tiles as they are where they are exactly a DZI tile
        self.passthrough = passthrough
        self.cache = BytesCache(cache_bytes)
        self.results_root = None if results is None else os.path.abspath(os.fspath(results))
        self._results = {} if results is None else result_folders(results)
        self._lock = threading.Lock()
        self._readers: dict[str, TileReader] = {}
        self._masks: dict[str, TissueMask] = {}
        self._auto: dict[str, list[tuple[float, float]]] = {}
        self._mask_locks: dict[str, threading.Lock] = {}

    def close(self) -> None:
        self.catalog.close()
        self.cache.clear()

    def warm_up(self) -> None:
        """Import what opening and reading slides needs, and open the first slide, so that
        the first page does not wait for it (run on a background thread at start)."""
        from ..backends import backend_class_or_none, backend_names

        for name in backend_names():
            backend_class_or_none(name)
        entries = self.catalog.entries()
        if entries:
            try:
                self.reader(entries[0])
            except Exception:  # noqa: BLE001 - the slide's own requests will report it
                pass

    # -- per-slide state, made once --------------------------------------------------------
    def _once(self, store: dict[str, T], entry: SlideEntry, make: Callable[[], T]) -> T:
        value = store.get(entry.id)
        if value is not None:
            return value
        with self._lock:
            lock = self._mask_locks.setdefault(f"{id(store)}:{entry.id}", threading.Lock())
        with lock:  # one computation per slide; other slides are not held up
            value = store.get(entry.id)
            if value is None:
                value = make()
                store[entry.id] = value
            return value

    def reader(self, entry: SlideEntry) -> TileReader:
        return self._once(self._readers, entry, lambda: TileReader(entry.slide()))

    def tissue_mask(self, entry: SlideEntry) -> TissueMask:
        from ..tissue import tissue_mask

        return self._once(self._masks, entry, lambda: tissue_mask(entry.slide()))

    # -- descriptions ----------------------------------------------------------------------
    def summary(self, entry: SlideEntry) -> dict[str, Any]:
        """What ``GET /api/slides`` says of a slide (opening it if need be)."""
        out: dict[str, Any] = {"id": entry.id, "name": entry.name, "dzi": f"/dzi/{entry.id}.dzi",
                               "viewer": f"/slides/{entry.id}", "thumbnail": f"/api/slides/{entry.id}/thumbnail.jpg",
                               "format": _format_name(entry.path)}
        try:
            slide = entry.slide()
        except Exception as exc:  # listed with its error: one bad slide must not hide the rest
            out.update(error=str(exc), dzi=None, viewer=None, thumbnail=None)
            return out
        out.update(backend=slide.name, vendor=_vendor(slide), shape=list(slide.shape),
                   mpp=None if slide.mpp is None else list(slide.mpp), magnification=slide.objective_power,
                   levels=slide.level_count, is_rgb=bool(slide.is_rgb), error=None)
        return out

    def details(self, entry: SlideEntry) -> dict[str, Any]:
        """Everything the viewer page shows about a slide."""
        slide = entry.slide()
        out = self.summary(entry)
        info = slide_info(slide)
        dzi = self.reader(entry).dzi
        out.update(levels=info["levels"], dtype=info["dtype"], sizes=info["sizes"],
                   channel_names=info["channel_names"], dzi_format=self.default_format(slide),
                   dzi_tile_size=dzi.tile_size, dzi_overlap=0, dzi_tiles=f"/dzi/{entry.id}_files/",
                   associated=[name for name, shape in info["associated_images"].items() if isinstance(shape, list)],
                   properties=info["properties"])
        if not slide.is_rgb:
            low, high = _value_limits(slide)
            out["channels"] = [dict(channel.as_json(), name=_channel_name(slide, channel.index))
                               for channel in default_display(slide)]
            out["value_range"] = [low, high]
        out["optical_paths"] = list(getattr(slide, "optical_paths", []) or [])
        out["focal_planes"] = [float(z) for z in getattr(slide, "focal_planes", []) or []]
        out["results"] = self.results_folder(entry) is not None
        return out

    @staticmethod
    def default_format(slide: SlideBackend) -> str:
        """JPEG for brightfield RGB slides, PNG (lossless) for the others."""
        return "jpeg" if slide.is_rgb else "png"

    # -- tiles -----------------------------------------------------------------------------
    def view(self, entry: SlideEntry, query: Mapping[str, str]) -> TileView:
        """The TileView of a request's ``channels``, ``optical_path`` and ``focal_plane``
        parameters; BadRequest when one does not fit the slide."""
        slide = entry.slide()
        options: dict[str, Any] = {}
        paths = list(getattr(slide, "optical_paths", []) or [])
        planes = list(getattr(slide, "focal_planes", []) or [])
        if query.get("optical_path"):
            if query["optical_path"] not in paths:
                raise BadRequest(f"optical_path must be one of {paths}, got {query['optical_path']!r}")
            options["optical_path"] = query["optical_path"]
        if query.get("focal_plane"):
            text = query["focal_plane"]
            if not text.isdigit() or not 0 <= int(text) < len(planes):
                raise BadRequest(f"focal_plane must be an index in [0, {len(planes) - 1}], got {text!r}")
            options["focal_plane"] = int(text)
        display = None
        if query.get("channels"):
            if slide.is_rgb:
                raise BadRequest("channels are for multiplex / fluorescence slides; this one is RGB")
            try:
                display = parse_display(query["channels"], slide.sizes[1])
            except ValueError as exc:
                raise BadRequest(str(exc)) from None
        elif not slide.is_rgb:
            display = default_display(slide)
        return TileView(options, display)

    def cached_tile(self, entry: SlideEntry, level: int, column: int, row: int, fmt: str,
                    view: TileView) -> bytes | None:
        """The encoded DZI tile when the cache holds it, else None (never reads)."""
        return self.cache.get(("tile", entry.id, level, column, row, fmt, view.key))

    def tile(self, entry: SlideEntry, level: int, column: int, row: int, fmt: str, view: TileView) -> bytes:
        """The encoded DZI tile (TileOutOfRange when there is no such tile)."""
        key = ("tile", entry.id, level, column, row, fmt, view.key)
        data = self.cache.get(key)
        if data is None and self.passthrough and fmt == "jpeg" and not view.options and view.display is None:
            data = self.reader(entry).stored_jpeg(level, column, row)
            if data is not None:
                self.cache.put(key, data)
        if data is None:
            pixels = self.reader(entry).read(level, column, row, view.options)
            data = encode(self._displayed(pixels, view), fmt)
            self.cache.put(key, data)
        return data

    @staticmethod
    def _displayed(pixels: np.ndarray, view: TileView) -> np.ndarray:
        if view.display is None:
            return pixels
        if pixels.ndim == 3:  # a backend option turned a plane into RGB (none does today)
            return pixels
        return composite(pixels, view.display)

    # -- pictures --------------------------------------------------------------------------
    def thumbnail(self, entry: SlideEntry, size: int) -> bytes:
        key = ("thumbnail", entry.id, size)
        data = self.cache.get(key)
        if data is None:
            data = encode(entry.slide().get_thumbnail((size, size)), "jpeg")
            self.cache.put(key, data)
        return data

    def associated(self, entry: SlideEntry, name: str) -> bytes | None:
        """An associated image as JPEG, or None when the slide has none of that name."""
        images = entry.slide().associated_images
        if name not in images:
            return None
        key = ("associated", entry.id, name)
        data = self.cache.get(key)
        if data is None:
            image = np.asarray(images[name])
            if max(image.shape[:2]) > 2048:  # a macro image can be large; the panel is small
                f = max(image.shape[:2]) / 2048
                image = resample_area(image, (max(1, round(image.shape[0] / f)), max(1, round(image.shape[1] / f))))
            data = encode(np.ascontiguousarray(image), "jpeg")
            self.cache.put(key, data)
        return data

    def tissue_png(self, entry: SlideEntry) -> bytes:
        key = ("tissue", entry.id)
        data = self.cache.get(key)
        if data is None:
            data = encode(tissue_picture(self.tissue_mask(entry)), "png")
            self.cache.put(key, data)
        return data

    # -- overlays --------------------------------------------------------------------------
    def plan(self, entry: SlideEntry, query: Mapping[str, str]) -> dict[str, Any]:
        """The tile plan ``wsikit tile`` would cut with the query's options (OverlayError if bad)."""
        return plan_overlay(entry.slide(), plan_options(query), lambda: self.tissue_mask(entry))

    def results_folder(self, entry: SlideEntry) -> str | None:
        return self._results.get(slide_key(entry.path))

    def results(self, entry: SlideEntry) -> dict[str, Any]:
        folder = self.results_folder(entry)
        if folder is None:
            raise ResultsError(f"no results of {entry.name} in {self.results_root}" if self.results_root
                               else "the viewer was started without --results")
        return read_results(entry.slide(), folder)

    def written_tile(self, entry: SlideEntry, index: int) -> tuple[bytes, str]:
        """The image a ``wsikit tile`` run wrote for row ``index`` of tiles.csv, and its media type."""
        folder = self.results_folder(entry)
        if folder is None:
            raise ResultsError(f"no results of {entry.name}")
        return written_tile(folder, index)

    def auto_channels(self, entry: SlideEntry) -> list[dict[str, Any]]:
        """Contrast ranges (0.5 to 99.5 percentiles) per channel, from a small read of the whole slide."""
        slide = entry.slide()
        if slide.is_rgb:
            raise BadRequest("auto contrast is for multiplex / fluorescence slides; this one is RGB")

        def compute() -> list[tuple[float, float]]:
            level = slide.thumbnail_level(AUTO_RANGE_SIZE)
            h, w = slide.level_shapes[level]
            f = max(1, int(max(h, w) // AUTO_RANGE_SIZE))
            # One row and column in f: enough pixels for percentiles, a bounded read.
            image = np.asarray(slide.extract_region((0, 0), (h, w), level=level, normalize=False))[::f, ::f]
            return auto_ranges(image)

        ranges = self._once(self._auto, entry, compute)
        return [{"index": k, "low": low, "high": high} for k, (low, high) in enumerate(ranges)]


def _format_name(path: str) -> str:
    if is_url(path):
        path = path.split("?", 1)[0]
    elif os.path.isdir(path):
        return "DICOM folder"
    if path.endswith("/"):
        return "DICOM folder"
    name = os.path.basename(path).lower()
    for double in (".ome.tiff", ".ome.tif"):
        if name.endswith(double):
            return double[1:].upper()
    return os.path.splitext(name)[1][1:].upper() or "?"


def _vendor(slide: SlideBackend) -> str | None:
    props = slide.properties
    return props.get("wsikit.vendor") or props.get("openslide.vendor")


def _channel_name(slide: SlideBackend, index: int) -> str:
    names = list(slide.channel_names)
    return names[index] if index < len(names) and names[index] else f"C{index}"


def _value_limits(slide: SlideBackend) -> tuple[float, float]:
    from .channels import value_range

    return value_range(np.dtype(slide.dtype))


__all__ = ["BadRequest", "TileView", "ViewerService"]
