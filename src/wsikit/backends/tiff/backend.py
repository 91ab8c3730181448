"""TiffBackend: TIFF-family slides read directly with tifffile + imagecodecs.

tifffile parses the file structure; pixels come from decoding the file's own tiles or
strips (:mod:`.decoding`). Every level is read in its own pixel frame, whatever its
downsample.

Which files: ``can_read`` says yes to any TIFF (classic or BigTIFF) whose main image has a
layout wsikit reads (:func:`~.decoding.page_layout`), except Ventana BIF and Leica SCN
(whose layouts tifffile does not describe as a plain pyramid) and OME-TIFF / QPTIFF files
the plane reader does not handle (e.g. multi-file OME-TIFF); and, so that opening it says
why, to a TIFF whose chain of IFDs loops or whose main image's compression no installed
decoder reads. A TIFF whose level 0 is stored in chunks over
:data:`_LARGE_CHUNK_BYTES` (e.g. NDPI levels stored as one JPEG) is read, but
``defers_to_others`` asks the opener to try the other backends that recognise it first.

Opening refuses, as an UnsupportedFormatError naming the compression, a file whose main
image has a level page (or plane page) of a compression no installed decoder reads; an
associated image of such a compression, or of a layout wsikit does not read, is not offered.

Levels: the pages of the main series that share level 0's layout, from the largest down
(a page of another layout ends the pyramid). Multi-page levels (OME-TIFF, QPTIFF, one page
per z / channel / time point) are described by :mod:`.planes`. Associated images: the
other series, named as users look them up (``overview`` is ``macro``), read on first use.
"""
from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ...errors import CorruptSlideError, UnsupportedFormatError
from ...limits import check_allocation
from ...reader import TileGrid
from ...tiff_structure import has_tiff_magic, ifd_chain_problem
from ...remote.tiff import open_remote_tiff, prefetching_grids
from ...remote.urls import is_url
from ..base import SlideBackend
from .decoding import NativeTiles, as_rgb, chunk_bytes, compression_problem, jpeg_tile_colour, page_layout
from .metadata import icc_profile_of, read_slide_metadata
from .planes import PlaneLayout, UnsupportedLayout, plane_layout

# Associated-image names as vendors write them -> the names users look up.
_ASSOCIATED_NAMES = {"thumbnail": "thumbnail", "label": "label", "macro": "macro", "overview": "macro"}
# A native tile or strip larger than this is better left to another reader when one reads
# the file (OpenSlide decodes NDPI levels stored as one JPEG piece by piece).
_LARGE_CHUNK_BYTES = 256 * 1024**2
# wsikit.vendor of multi-plane images, by PlaneLayout.kind
_PLANE_VENDORS = {"ome": "ome-tiff", "qptiff": "perkinelmer-qptiff"}


class TiffBackend(SlideBackend):
    """Aperio SVS, generic pyramidal TIFF, NDPI, Philips TIFF and plain TIFF through tifffile."""

    name = "tiff"
    extensions = (".svs", ".tif", ".tiff", ".ndpi", ".qptiff", ".btf", ".ome.tif", ".ome.tiff")

    _tif: Any  # tifffile.TiffFile
    _tiles: NativeTiles
    _pages: list[Any]  # the first tifffile page of every level
    _grids: list[TileGrid]

    @classmethod
    def can_read(cls, path: str) -> bool:
        if not os.path.isfile(path) or not has_tiff_magic(path):
            return False
        if ifd_chain_problem(path):
            return True  # a TIFF, broken: _open says how
        return _probe(path) is not None

    @classmethod
    def defers_to_others(cls, path: str) -> bool:
        """Whether level 0 is stored in chunks over :data:`_LARGE_CHUNK_BYTES`: then another
        backend that recognises the file should be asked first."""
        if not os.path.isfile(path) or not has_tiff_magic(path) or ifd_chain_problem(path):
            return False
        level0_chunk = _probe(path)
        return level0_chunk is not None and level0_chunk > _LARGE_CHUNK_BYTES

    def _open(self, *, storage_options: dict[str, Any] | None = None) -> None:
        """``storage_options``: for a URL, the filesystem's options (see wsikit.remote)."""
        import tifffile

        if is_url(self.path):  # fetched from a URL, with the same checks (wsikit.remote.tiff)
            source, self._tif = open_remote_tiff(self.path, storage_options)
            self._tiles = NativeTiles(self.path, source)
        else:
            if not has_tiff_magic(self.path):
                raise UnsupportedFormatError(self.path, "not a TIFF file")
            problem = ifd_chain_problem(self.path)
            if problem:
                raise CorruptSlideError(self.path, problem)
            self._tiles = NativeTiles(self.path)
            self._tif = tifffile.TiffFile(self.path)
        try:
            planes = plane_layout(self._tif)
        except UnsupportedLayout as exc:
            raise UnsupportedFormatError(self.path, f"not read natively: {exc}") from None
        if planes is not None:
            self._open_planes(planes)
        else:
            self._open_pages()
        if is_url(self.path):  # tiles of the next reads are fetched ahead, coalesced
            levels = planes.levels if planes is not None else [[page] for page in self._pages]
            self._grids = prefetching_grids(self._grids, levels, self._tiles.source)

    def _open_pages(self) -> None:
        """Levels of one page each: every TIFF but OME-TIFF and QPTIFF."""
        main = self._tif.series[0]
        pages = [level.keyframe for level in main.levels]
        # Before the layouts: a level of a layout wsikit reads once decoded is not "another
        # layout" because no decoder here reads its compression.
        self._check_compressions([[page] for page in pages])
        layout = page_layout(pages[0])
        if layout is None:
            raise UnsupportedFormatError(
                self.path, f"TIFF image of axes {main.axes} and type {pages[0].dtype} is not a layout wsikit reads")
        self.is_rgb, samples = layout
        self.dtype = np.dtype(pages[0].dtype)
        self.sizes = (1, samples, 1)
        self._pages = []
        for page in pages:
            if page_layout(page) != layout:
                break  # a level of another layout is not part of the same pyramid
            self._pages.append(page)
        self._level_shapes = [(int(p.imagelength), int(p.imagewidth)) for p in self._pages]
        self._grids = [self._tiles.page_grid(k, page, self.is_rgb, self.sizes) for k, page in enumerate(self._pages)]
        self.channel_names = ["R", "G", "B"] if self.is_rgb else [f"C{k}" for k in range(samples)]
        self._apply_metadata(pages[0])
        for k, series in enumerate(self._tif.series[1:], start=1):
            self._add_associated_series(k, series)

    def _open_planes(self, layout: PlaneLayout) -> None:
        """Levels of one page per (z, c, t) plane: OME-TIFF and QPTIFF."""
        self._check_compressions(layout.levels)
        first = layout.first_page
        first_layout = page_layout(first)
        if first_layout is None:
            raise UnsupportedFormatError(
                self.path, f"{layout.kind} planes of type {first.dtype} are not a layout wsikit reads")
        z, pages_c, t = layout.sizes
        single = all(len(pages) == 1 for pages in layout.levels)
        self.is_rgb = first_layout[0] and single
        samples = 3 if self.is_rgb else int(first.samplesperpixel)
        self.dtype = np.dtype(first.dtype)
        self.sizes = (1, 3, 1) if self.is_rgb else (z, pages_c * samples, t)
        self._pages = [next(p for p in pages if p is not None) for pages in layout.levels]
        self._level_shapes = [(int(p.imagelength), int(p.imagewidth)) for p in self._pages]
        if single:  # one page per level: the plain path reads it
            self._grids = [self._tiles.page_grid(k, page, self.is_rgb, self.sizes)
                           for k, page in enumerate(self._pages)]
        else:
            self._grids = [self._tiles.planes_grid(k, pages, layout.planes, self.sizes)
                           for k, pages in enumerate(layout.levels)]
        c = self.sizes[1]
        if self.is_rgb:
            self.channel_names = ["R", "G", "B"]
        elif layout.channel_names and len(layout.channel_names) * samples == c:
            self.channel_names = [name if samples == 1 else f"{name}:{k % samples}"
                                  for name in layout.channel_names for k in range(samples)]
        else:
            self.channel_names = [f"C{k}" for k in range(c)]
        self._apply_metadata(first)
        # OME-XML sizes are the authority in OME-TIFF; QPTIFF keeps its resolution tags
        # (as Bio-Formats does) and falls back on the scan profile's pixel size.
        if layout.mpp and (layout.kind == "ome" or self._mpp is None):
            self._mpp = layout.mpp
        if layout.objective_power:
            self._objective_power = layout.objective_power
        self._properties.update(layout.properties)
        self._properties["wsikit.vendor"] = _PLANE_VENDORS.get(layout.kind, layout.kind)
        for name, image in layout.associated:
            self._add_associated_image(_ASSOCIATED_NAMES.get(name.strip().lower(), name.strip().lower()), image)

    def _check_compressions(self, levels: Sequence[Sequence[Any]]) -> None:
        """Refuse a level page (or plane page; None: a plane not stored) that no decoder reads."""
        for level, pages in enumerate(levels):
            for page in pages:
                problem = None if page is None else compression_problem(page)
                if problem:
                    raise UnsupportedFormatError(self.path, f"level {level} {problem}")

    def _apply_metadata(self, page: Any) -> None:
        metadata = read_slide_metadata(page)
        self._properties.update(metadata.properties)
        self._mpp = metadata.mpp
        self._objective_power = metadata.objective_power
        self.icc_profile = metadata.icc_profile

    # -- associated images ---------------------------------------------------------------
    def _add_associated_series(self, index: int, series: Any) -> None:
        """A tifffile series that is not the main image, offered when wsikit can read it."""
        name = _ASSOCIATED_NAMES.get((series.name or "").strip().lower())
        if name is None:
            name = (series.name or "").strip().lower() or f"image{index}"
        if name in self._associated:
            name = f"{name}{index}"
        if page_layout(series.keyframe) is None or len(series.shape) > 3 or not _decodable(series):
            return
        self._associated[name] = self._associated_loader(name, series)
        self._add_associated_icc(name, series.keyframe)

    def _add_associated_image(self, name: str, image: Any) -> None:
        """An associated picture from a page or a tifffile series, offered when wsikit can read it."""
        name = name or f"image{len(self._associated) + 1}"
        if name in self._associated:
            name = f"{name}{len(self._associated) + 1}"
        if len(image.shape) > 3 or np.dtype(image.dtype).kind not in "uifb" or not _decodable(image):
            return
        self._associated[name] = self._associated_loader(name, image)
        self._add_associated_icc(name, getattr(image, "keyframe", image))

    def _add_associated_icc(self, name: str, page: Any) -> None:
        profile = icc_profile_of(page)
        if profile is not None:
            self.associated_icc_profiles[name] = profile

    def _associated_loader(self, name: str, image: Any) -> Callable[[], np.ndarray]:
        """A function reading the whole associated ``image`` (a tifffile series or page) as RGB."""

        def load() -> np.ndarray:
            check_allocation(image.shape, np.dtype(image.dtype).itemsize, f"associated image {name!r}", self.path)
            try:
                pixels = self._tiles.whole_image(image)
            except Exception as exc:
                raise CorruptSlideError(self.path, f"associated image {name!r} cannot be decoded: {exc}") from None
            return as_rgb(pixels)

        return load

    def _jpeg_colour(self, level: int) -> str | None | bool:
        """:func:`~.decoding.jpeg_tile_colour` of a level (False: no standalone JPEG tiles,
        e.g. multi-page plane levels), looked up once."""
        colours = self.__dict__.setdefault("_jpeg_colours", {})
        if level not in colours:
            grid = self._grids[level]
            colours[level] = self.is_rgb and grid.key == ("tiff", level) and jpeg_tile_colour(
                self._pages[level], grid.tile_shape)
        return colours[level]

    def _native_tile_jpeg(self, level: int, ti: int, tj: int) -> bytes | None:
        colour = self._jpeg_colour(level)
        if colour is False:
            return None
        grid = self._grids[level]
        return self._tiles.native_jpeg(self._pages[level], ti * grid.tile_counts[1] + tj, grid.tile_shape,
                                       colour)  # type: ignore[arg-type]  # "rgb" or None here

    def _native_jpeg_source(self, level: int) -> Callable[[int, int], bytes | None] | None:
        """``stream(ti, tj)``: the level's standalone tile JPEGs for the scaled decoder
        (:mod:`wsikit.reader.scaled`), which checks what they decode to; None: no such tiles."""
        colour = self._jpeg_colour(level)
        if colour is False:
            return None
        grid = self._grids[level]
        cols = grid.tile_counts[1]
        read = self._tiles.native_jpeg_reader(self._pages[level], grid.tile_shape, colour)  # type: ignore[arg-type]
        return lambda ti, tj: read(ti * cols + tj)

    # -- lifecycle -----------------------------------------------------------------------
    def _close(self) -> None:
        tif = getattr(self, "_tif", None)
        if tif is not None:
            tif.close()
        tiles = getattr(self, "_tiles", None)
        if tiles is not None:
            tiles.close()

    def _after_fork(self) -> None:
        self._tiles.reopen()
        # tifffile reads associated images with seek + read on its own handle, whose file
        # position a child shares with its parent and siblings: reopen it, with a fresh
        # lock (a parent thread may have held the old one at the fork).
        handle = self._tif.filehandle
        locked = handle.has_lock
        handle.set_lock(False)
        handle.close()
        handle.open()
        handle.set_lock(locked)


def _decodable(image: Any) -> bool:
    """Whether a decoder here reads the compression of every page of ``image`` (a tifffile
    page or series)."""
    pages = getattr(image, "pages", None) or [image]
    return not any(compression_problem(page) for page in pages if page is not None)


@functools.lru_cache(maxsize=8)
def _probe_cached(path: str, size: int, mtime_ns: int) -> int | None:
    """Bytes of one native chunk of the file's main level, None when tifffile finds none
    (or cannot parse it). Cached per file version: the opener asks ``can_read`` and
    ``defers_to_others`` about the same file one after the other."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            page = _main_level_page(tif)
            chunk = None if page is None else chunk_bytes(page)
    except Exception:
        chunk = None
    return chunk


def _probe(path: str) -> int | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return _probe_cached(path, stat.st_size, stat.st_mtime_ns)


def _main_level_page(tif: Any) -> Any | None:
    """The first page of level 0 of a TIFF wsikit reads natively, None for any other."""
    page = tif.pages.first
    # Formats whose layout tifffile does not describe as a plain pyramid:
    # Ventana BIF (overlapping tiles), Leica SCN (several placed images).
    if page.is_bif or page.is_scn:
        return None
    try:
        plane_layout(tif)
    except UnsupportedLayout:
        return None  # e.g. a multi-file OME-TIFF: Bio-Formats reads it
    keyframe = tif.series[0].levels[0].keyframe
    if page_layout(keyframe) is None and compression_problem(keyframe) is None:
        return None  # a TIFF wsikit does not read; one it cannot decode, opening says so
    return keyframe
