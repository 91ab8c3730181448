"""TiffBackend: TIFF-family slides read directly with tifffile + imagecodecs.

tifffile parses the file structure; pixels come from decoding the file's own tiles or
strips (``TiffPage.decode`` on bytes read with ``os.pread``, which needs no lock and has
no shared file offset, so threads and forked processes can read at once). Every level is
read in its own pixel frame, whatever its downsample.
"""
from __future__ import annotations

import array
import os
import re
import threading

import imagecodecs
import numpy as np

from ...errors import CorruptSlideError, SlideError, UnsupportedFormatError
from ...limits import check_allocation, check_encoded_tile, jpeg_frame
from ...reader import TileGrid
from ..base import SlideBackend, positive_float
from ...tiff_structure import has_tiff_magic, ifd_chain_problem
from .planes import UnsupportedLayout, plane_layout

# Associated-image names as vendors write them -> the names users look up.
_ASSOCIATED_NAMES = {"thumbnail": "thumbnail", "label": "label", "macro": "macro", "overview": "macro"}
# A native tile or strip larger than this is better left to OpenSlide when it can read
# the file (e.g. NDPI levels stored as one JPEG).
_LARGE_CHUNK_BYTES = 256 * 1024**2


def _openslide_reads(path: str) -> bool:
    try:
        import openslide

        return openslide.OpenSlide.detect_format(path) is not None
    except Exception:
        return False


class TiffBackend(SlideBackend):
    """Aperio SVS, generic pyramidal TIFF, NDPI, Philips TIFF and plain TIFF through tifffile."""

    name = "tiff"
    extensions = (".svs", ".tif", ".tiff", ".ndpi", ".qptiff", ".btf", ".ome.tif", ".ome.tiff")

    @classmethod
    def can_read(cls, path: str) -> bool:
        if not os.path.isfile(path) or not has_tiff_magic(path):
            return False
        if ifd_chain_problem(path):
            return True  # a TIFF, broken: _open says how
        try:
            import tifffile

            with tifffile.TiffFile(path) as tif:
                page = tif.pages.first
                # Formats whose layout tifffile does not describe as a plain pyramid:
                # Ventana BIF (overlapping tiles), Leica SCN (several placed images).
                if page.is_bif or page.is_scn:
                    return False
                try:
                    plane_layout(tif)
                except UnsupportedLayout:
                    return False  # e.g. a multi-file OME-TIFF: Bio-Formats reads it
                series = tif.series[0]
                if _level_layout(series.levels[0].keyframe) is None:
                    return False
                chunk = _chunk_bytes(series.levels[0].keyframe)
                if chunk > _LARGE_CHUNK_BYTES and _openslide_reads(path):
                    return False
            return True
        except Exception:
            return False

    def _open(self, **options) -> None:
        if options:
            raise TypeError(f"unexpected options for TiffBackend: {', '.join(options)}")
        import tifffile

        if not has_tiff_magic(self.path):
            raise UnsupportedFormatError(self.path, "not a TIFF file")
        problem = ifd_chain_problem(self.path)
        if problem:
            raise CorruptSlideError(self.path, problem)
        self._fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        self._tif = tifffile.TiffFile(self.path)
        try:
            planes = plane_layout(self._tif)
        except UnsupportedLayout as exc:
            raise UnsupportedFormatError(self.path, f"not read natively: {exc}") from None
        if planes is not None:
            return self._open_planes(planes)
        main = self._tif.series[0]
        pages = [level.keyframe for level in main.levels]
        layout = _level_layout(pages[0])
        if layout is None:
            raise UnsupportedFormatError(self.path, f"TIFF image of axes {main.axes} and type {pages[0].dtype} is not a layout wsikit reads")
        self.is_rgb, samples = layout
        self.dtype = np.dtype(pages[0].dtype)
        self.sizes = (1, samples, 1)
        self._pages = []
        for page in pages:
            if _level_layout(page) != layout:
                break  # a level of another layout is not part of the same pyramid
            self._pages.append(page)
        self._level_shapes = [(int(p.imagelength), int(p.imagewidth)) for p in self._pages]
        self._grids = [self._tile_grid(k, page) for k, page in enumerate(self._pages)]
        self.channel_names = ["R", "G", "B"] if self.is_rgb else [f"C{k}" for k in range(samples)]
        self._read_metadata(pages[0])
        for k, series in enumerate(self._tif.series[1:], start=1):
            self._add_associated(k, series)

    def _close(self) -> None:
        tif = getattr(self, "_tif", None)
        if tif is not None:
            tif.close()
        fd = getattr(self, "_fd", None)
        if fd is not None:
            os.close(fd)
            self._fd = None

    # -- metadata ------------------------------------------------------------------------
    def _read_metadata(self, page) -> None:
        props = self._properties
        for tag in ("ImageDescription", "Make", "Model", "Software", "DateTime", "Artist",
                    "HostComputer", "Copyright", "XResolution", "YResolution", "ResolutionUnit"):
            value = page.tags.valueof(tag)
            if value is None:
                continue
            if isinstance(value, tuple) and len(value) == 2:
                value = value[0] / value[1] if value[1] else 0.0
            props[f"tiff.{tag}"] = str(getattr(value, "name", value))
        vendor = "generic-tiff"
        description = page.description or ""
        if page.is_svs:
            vendor = "aperio"
            for key, value in _aperio_fields(description).items():
                props[f"aperio.{key}"] = value
            mpp = positive_float(props.get("aperio.MPP"))
            if mpp:
                self._mpp = (mpp, mpp)
            self._objective_power = positive_float(props.get("aperio.AppMag"))
        elif page.is_ndpi:
            vendor = "hamamatsu"
            ndpi = getattr(page, "ndpi_tags", None) or {}
            self._objective_power = positive_float(ndpi.get("Magnification"))
        elif page.is_philips:
            vendor = "philips"
            match = re.search(r'DICOM_PIXEL_SPACING".*?>\s*"?([\d.eE+-]+)"?\s+"?([\d.eE+-]+)', description, re.S)
            if match:
                self._mpp = (float(match.group(1)) * 1000, float(match.group(2)) * 1000)
        if self._mpp is None:
            self._mpp = _resolution_mpp(page)
        props["wsikit.vendor"] = vendor
        if self._mpp:
            props["wsikit.mpp-y"], props["wsikit.mpp-x"] = (repr(v) for v in self._mpp)
        if self._objective_power:
            props["wsikit.objective-power"] = repr(self._objective_power)

    def _add_associated(self, index: int, series) -> None:
        name = _ASSOCIATED_NAMES.get((series.name or "").strip().lower())
        if name is None:
            name = (series.name or "").strip().lower() or f"image{index}"
        if name in self._associated:
            name = f"{name}{index}"
        page = series.keyframe
        if _level_layout(page) is None or len(series.shape) > 3:
            return

        self._associated[name] = self._associated_loader(name, series)

    # -- multi-plane images: OME-TIFF, QPTIFF (levels of one page per z, c, t plane) ------
    def _open_planes(self, layout) -> None:
        first = layout.first_page
        page_layout = _level_layout(first)
        if page_layout is None:
            raise UnsupportedFormatError(self.path, f"{layout.kind} planes of type {first.dtype} are not a layout wsikit reads")
        z, pages_c, t = layout.sizes
        single = all(len(pages) == 1 for pages in layout.levels)
        self.is_rgb = page_layout[0] and single
        samples = 3 if self.is_rgb else int(first.samplesperpixel)
        self.dtype = np.dtype(first.dtype)
        self.sizes = (1, 3, 1) if self.is_rgb else (z, pages_c * samples, t)
        self._pages = [next(p for p in pages if p is not None) for pages in layout.levels]
        self._level_shapes = [(int(p.imagelength), int(p.imagewidth)) for p in self._pages]
        if single:  # one page per level: the plain path reads it
            self._grids = [self._tile_grid(k, page) for k, page in enumerate(self._pages)]
        else:
            self._grids = [self._planes_grid(k, pages, layout.planes) for k, pages in enumerate(layout.levels)]
        c = self.sizes[1]
        if self.is_rgb:
            self.channel_names = ["R", "G", "B"]
        elif layout.channel_names and len(layout.channel_names) * samples == c:
            self.channel_names = [name if samples == 1 else f"{name}:{k % samples}"
                                  for name in layout.channel_names for k in range(samples)]
        else:
            self.channel_names = [f"C{k}" for k in range(c)]
        self._read_metadata(first)
        # OME-XML sizes are the authority in OME-TIFF; QPTIFF keeps its resolution tags
        # (as Bio-Formats does) and falls back on the scan profile's pixel size.
        if layout.mpp and (layout.kind == "ome" or self._mpp is None):
            self._mpp = layout.mpp
        if layout.objective_power:
            self._objective_power = layout.objective_power
        props = self._properties
        props.update(layout.properties)
        props["wsikit.vendor"] = {"ome": "ome-tiff", "qptiff": "perkinelmer-qptiff"}.get(layout.kind, layout.kind)
        if self._mpp:
            props["wsikit.mpp-y"], props["wsikit.mpp-x"] = (repr(v) for v in self._mpp)
        if self._objective_power:
            props["wsikit.objective-power"] = repr(self._objective_power)
        for name, image in layout.associated:
            self._add_associated_image(_ASSOCIATED_NAMES.get(name.strip().lower(), name.strip().lower()), image)

    def _add_associated_image(self, name: str, image) -> None:
        """An associated picture from a page or a tifffile series, loaded on first use."""
        name = name or f"image{len(self._associated) + 1}"
        if name in self._associated:
            name = f"{name}{len(self._associated) + 1}"
        if len(image.shape) > 3 or np.dtype(image.dtype).kind not in "uifb":
            return

        self._associated[name] = self._associated_loader(name, image)

    def _associated_loader(self, name: str, image):
        """A function reading the whole associated ``image`` (a tifffile series or page) as RGB."""

        def load():
            check_allocation(image.shape, np.dtype(image.dtype).itemsize, f"associated image {name!r}", self.path)
            try:
                array = _whole_image(image, self._fd)
            except Exception as exc:
                raise CorruptSlideError(self.path, f"associated image {name!r} cannot be decoded: {exc}") from None
            return _as_rgb(array)

        return load

    def _planes_grid(self, level: int, pages, planes) -> TileGrid:
        """One level of several pages as one grid: a tile holds every (z, c, t) plane.

        Reads always return every plane, so one cached tile per position (not one per
        plane) keeps stitching and the cache as for single-page levels.
        """
        key = next(p for p in pages if p is not None)
        for page in pages:
            if page is not None:
                page.decode  # noqa: B018  (tifffile builds it lazily, not thread-safely)
                _compact_tables(page)
        shape = (int(key.imagelength), int(key.imagewidth))
        if key.is_tiled:
            tile_shape = (int(key.tilelength), int(key.tilewidth))
        else:
            tile_shape = (min(int(key.rowsperstrip or shape[0]), shape[0]), shape[1])
        rows, cols = -(-shape[0] // tile_shape[0]), -(-shape[1] // tile_shape[1])
        samples = int(key.samplesperpixel)
        separate = samples > 1 and int(key.planarconfig) == 2
        expected = rows * cols * (samples if separate else 1)
        for page in pages:
            if page is not None and (len(page.dataoffsets) < expected or len(page.databytecounts) < expected):
                raise CorruptSlideError(
                    self.path, f"a plane of level {level} lists {len(page.dataoffsets)} tiles or strips, its size needs {expected}")
        pixel_shape = self.sizes
        dtype = np.dtype(key.dtype)
        check_allocation(tile_shape + pixel_shape, dtype.itemsize, f"native tile of level {level}", self.path)

        def decode(ti: int, tj: int) -> np.ndarray:
            index = ti * cols + tj
            out = None
            for page, (z, c, t) in zip(pages, planes):
                if page is None:
                    continue  # a plane the file does not store reads as zeros
                if separate:
                    array = np.concatenate([self._decode_segment(page, index + k * rows * cols, tile_shape, 1)
                                            for k in range(samples)], axis=2)
                else:
                    array = self._decode_segment(page, index, tile_shape, samples)
                if out is None:
                    out = np.zeros(array.shape[:2] + pixel_shape, dtype=dtype)
                elif array.shape[:2] != out.shape[:2]:
                    raise CorruptSlideError(self.path, f"tile {index} of level {level} differs in size between planes")
                s = array.shape[2]
                out[:, :, z, c * s : (c + 1) * s, t] = array
            return out if out is not None else np.zeros(tile_shape + pixel_shape, dtype=dtype)

        return TileGrid(("tiff-planes", level), shape, tile_shape, pixel_shape, dtype, decode)

    # -- pixels --------------------------------------------------------------------------
    def _tile_grid(self, level: int, page) -> TileGrid:
        # tifffile builds page.decode lazily and not thread-safely: build it here, once.
        page.decode  # noqa: B018
        _compact_tables(page)
        shape = (int(page.imagelength), int(page.imagewidth))
        if page.is_tiled:
            tile_shape = (int(page.tilelength), int(page.tilewidth))
        else:
            rows = int(page.rowsperstrip or shape[0])
            tile_shape = (min(rows, shape[0]), shape[1])
        rows, cols = -(-shape[0] // tile_shape[0]), -(-shape[1] // tile_shape[1])
        samples = int(page.samplesperpixel)
        separate = samples > 1 and int(page.planarconfig) == 2
        expected = rows * cols * (samples if separate else 1)
        if len(page.dataoffsets) < expected or len(page.databytecounts) < expected:
            raise CorruptSlideError(
                self.path, f"level {level} lists {len(page.dataoffsets)} tiles or strips, its size needs {expected}")
        pixel_shape = (3,) if self.is_rgb else self.sizes
        check_allocation(tile_shape + (samples,), page.dtype.itemsize, f"native tile of level {level}", self.path)
        jpeg = _jpeg8_arguments(page, tile_shape)

        if jpeg is not None and self.is_rgb and samples == 3:
            return TileGrid(("tiff", level), shape, tile_shape, pixel_shape, np.dtype(np.uint8),
                            self._jpeg_tile_decoder(page, cols, tile_shape, jpeg))

        def decode(ti: int, tj: int) -> np.ndarray:
            index = ti * cols + tj
            if separate:
                planes = [self._decode_segment(page, index + k * rows * cols, tile_shape, 1) for k in range(samples)]
                array = np.concatenate(planes, axis=2)
            else:
                array = self._decode_segment(page, index, tile_shape, samples, jpeg)
            if self.is_rgb:
                return array if array.shape[2] == 3 else array[:, :, :3]
            return array.reshape(array.shape[:2] + pixel_shape)

        return TileGrid(("tiff", level), shape, tile_shape, pixel_shape, np.dtype(page.dtype) if not self.is_rgb else np.dtype(np.uint8), decode)

    def _jpeg_tile_decoder(self, page, cols: int, tile_shape, jpeg: dict):
        """``decode(ti, tj)`` for 8-bit RGB JPEG tiles: the hot loop of tiling brightfield slides.

        The same checks and decoder as :meth:`_decode_segment`, with everything that does
        not change between tiles looked up once; a tile that fails any check goes through
        ``_decode_segment``, which reports it.
        """
        offsets, counts = page.dataoffsets, page.databytecounts
        file_size = self._data_size()
        rows, width = tile_shape
        # No JPEG tile of a sane file is larger than its pixels uncompressed (plus headers).
        largest = rows * width * 3 + 65536
        decoder, pread, frame_of = imagecodecs.jpeg8_decode, os.pread, jpeg_frame

        def decode(ti: int, tj: int) -> np.ndarray:
            index = ti * cols + tj
            offset, count = offsets[index], counts[index]
            if 0 < count <= largest and 0 < offset and offset + count <= file_size:
                data = pread(self._fd, count, offset)
                frame = frame_of(data)
                if frame is not None and frame[0] == rows and frame[1] == width and frame[2] == 3 and frame[3] == 8:
                    try:
                        array = decoder(data, **jpeg)
                    except Exception:
                        pass  # _decode_segment tries tifffile and reports it
                    else:
                        if array.ndim == 3 and array.shape[2] == 3:
                            return array
            return self._decode_segment(page, index, tile_shape, 3, jpeg)

        return decode

    def _data_size(self) -> int:
        # The file does not change while it is open: one fstat, not one per tile (every
        # system call is a point where a reading thread gives up the GIL and waits for it).
        size = self.__dict__.get("_file_size")
        if size is None:
            size = self._file_size = os.fstat(self._fd).st_size
        return size

    def _decode_segment(self, page, index: int, tile_shape, samples: int, jpeg: dict | None = None) -> np.ndarray:
        offset = int(page.dataoffsets[index])
        count = int(page.databytecounts[index])
        if count == 0 or offset == 0:
            # No data stored for this tile: tifffile and libtiff read it as empty (zero).
            return np.zeros(tile_shape + (samples,), dtype=page.dtype)
        # A lying byte count must not size the read buffer: check it against the file first.
        if offset + count > self._data_size():
            raise CorruptSlideError(self.path, f"tile/strip {index} ends past the end of the file (offset {offset}, {count} bytes)")
        check_allocation((count,), 1, f"tile/strip {index} data", self.path)
        data = os.pread(self._fd, count, offset)
        if len(data) != count:
            raise CorruptSlideError(self.path, f"tile/strip {index} ends past the end of the file (offset {offset}, {count} bytes)")
        check_encoded_tile(data, page.compression, tile_shape, path=self.path, what=f"tile/strip {index}",
                           exact=page.is_tiled, tables=page.jpegheader)
        if jpeg is not None:
            try:
                # libjpeg-turbo with the arguments tifffile would pass, without its wrapper.
                array = imagecodecs.jpeg8_decode(data, **jpeg)
                return array if array.ndim == 3 else array[:, :, None]
            except Exception:
                pass  # let tifffile try (and report) it
        try:
            array, _, _ = page.decode(data, index, jpegtables=page.jpegtables, jpegheader=page.jpegheader)
        except Exception as exc:
            raise CorruptSlideError(self.path, f"tile/strip {index} cannot be decoded: {type(exc).__name__}: {exc}") from None
        if array is None:
            return np.zeros(tile_shape + (samples,), dtype=page.dtype)
        array = array.reshape(array.shape[-3:])  # drop the depth axis of 2-D images
        return array

    def _read_region(self, level: int, i: int, j: int, h: int, w: int, **kwargs) -> np.ndarray:
        if kwargs:
            raise TypeError(f"unexpected arguments for TiffBackend.extract_region: {', '.join(kwargs)}")
        try:
            return self._reader.read(self._grids[level], i, j, i + h, j + w)
        except SlideError:  # a LimitError is a ValueError too: keep it as it is
            raise
        except ValueError as exc:
            raise CorruptSlideError(self.path, str(exc)) from None

    def _level_grid(self, level: int) -> TileGrid:
        return self._grids[level]  # _read_region above reads exactly this grid

    def _after_fork(self) -> None:
        # The inherited descriptor is safe with pread, but give the child its own so
        # that a parent closing the file does not pull it from under the child.
        self._fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        # tifffile reads associated images with seek + read on its own handle, whose file
        # position a child shares with its parent and siblings: reopen it, with a fresh
        # lock (a parent thread may have held the old one at the fork).
        handle = self._tif.filehandle
        locked = handle.has_lock
        handle.set_lock(False)
        handle.close()
        handle.open()
        handle.set_lock(locked)


def _compact_tables(page) -> None:
    """Hold a level page's tile offsets and byte counts as arrays of 8-byte ints.

    tifffile keeps them as tuples of Python ints, about 80 bytes a tile for the two; a
    100,000 x 100,000 slide of 256-pixel tiles has 150,000 tiles at level 0 alone, so the
    tables would be most of what tiling holds and grow with the slide. ``array.array``
    stays a sequence of ints for tifffile's own code (indexing, len, truth, iteration).
    """
    for name, codes in (("dataoffsets", (324, 273)), ("databytecounts", (325, 279))):
        values = getattr(page, name, None)
        if not isinstance(values, tuple) or len(values) < 1024:
            continue
        try:
            table = array.array("Q", values)
        except (OverflowError, TypeError):  # not plain non-negative 64-bit ints: keep tifffile's
            continue
        setattr(page, name, table)
        for code in codes:  # the tag holds the same tuple: replace it too, or it stays alive
            tag = page.tags.get(code)
            if tag is not None and tag.value is values:
                tag.value = table


def _whole_image(image, fd: int) -> np.ndarray:
    """``image.asarray()`` of a tifffile page or series, refusing what tifffile forgives.

    tifffile reads a strip that runs past the end of the file, or fails to decode, as
    zeros and only logs it; a picture read here is either the file's or an error.
    """
    import logging

    size = os.fstat(fd).st_size
    for page in getattr(image, "pages", None) or [image]:
        for offset, count in zip(getattr(page, "dataoffsets", ()), getattr(page, "databytecounts", ())):
            if count and offset + count > size:
                raise ValueError(f"its data ({count} bytes at offset {offset}) runs past the end of the file")
    errors: list[str] = []
    thread = threading.get_ident()

    class Collect(logging.Handler):
        def emit(self, record):
            if record.thread == thread and record.levelno >= logging.ERROR:
                errors.append(record.getMessage())

    logger = logging.getLogger("tifffile")
    handler = Collect()
    logger.addHandler(handler)
    try:
        array = image.asarray()
    finally:
        logger.removeHandler(handler)
    if errors:
        raise ValueError(errors[0])
    return array


def _level_layout(page):
    """(is_rgb, samples) for a page wsikit reads, else None."""
    try:
        if page.is_tiled and int(getattr(page, "tiledepth", 1) or 1) > 1:
            return None
        if int(getattr(page, "imagedepth", 1) or 1) > 1:
            return None
        dtype = np.dtype(page.dtype)
        samples = int(page.samplesperpixel)
        photometric = int(page.photometric)
    except Exception:
        return None
    if dtype.kind not in "uifb":
        return None
    # RGB (2) and YCbCr (6, decoded to RGB by the JPEG codec) 8-bit: brightfield.
    if dtype == np.uint8 and samples in (3, 4) and photometric in (2, 6):
        if photometric == 6 and int(page.compression) not in (6, 7):
            return None  # subsampled raw YCbCr: leave to OpenSlide
        return True, 3
    if photometric in (0, 1, 2, 5) or samples == 1:
        if photometric == 3:  # palette
            return None
        return False, samples
    return None


def _jpeg8_arguments(page, tile_shape) -> dict | None:
    """Arguments of ``imagecodecs.jpeg8_decode`` that decode a tile of ``page`` exactly as
    ``page.decode`` does, for 8-bit interleaved JPEG tiles; None for anything else."""
    try:
        from tifffile.tifffile import jpeg_decode_colorspace

        if not (page.is_tiled and int(page.compression) == 7 and int(page.bitspersample) == 8
                and np.dtype(page.dtype) == np.uint8 and int(page.planarconfig) == 1
                and int(page.samplesperpixel) in (1, 3) and page.jpegheader is None):
            return None
        colorspace, outcolorspace = jpeg_decode_colorspace(
            page.photometric, page.planarconfig, page.extrasamples, page.is_jfif)
    except Exception:  # an older tifffile: keep its own decoder
        return None
    return {"tables": page.jpegtables, "colorspace": colorspace, "outcolorspace": outcolorspace,
            "shape": tuple(tile_shape)}


def _chunk_bytes(page) -> int:
    if page.is_tiled:
        th, tw = int(page.tilelength), int(page.tilewidth)
    else:
        th, tw = int(page.rowsperstrip or page.imagelength), int(page.imagewidth)
    return th * tw * int(page.samplesperpixel) * np.dtype(page.dtype).itemsize


def _as_rgb(array: np.ndarray) -> np.ndarray:
    from ...pixels import to_uint8

    array = to_uint8(np.asarray(array))
    if array.ndim == 2:
        return np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim == 3 and array.shape[2] >= 3:
        return np.ascontiguousarray(array[:, :, :3])
    if array.ndim == 3 and array.shape[0] in (1, 3) and array.shape[2] not in (1, 3):
        return _as_rgb(np.moveaxis(array, 0, 2))
    if array.ndim == 3 and array.shape[2] == 1:
        return np.repeat(array, 3, axis=2)
    raise ValueError(f"cannot show an image of shape {array.shape} as RGB")


def _aperio_fields(description: str) -> dict[str, str]:
    fields = {}
    for part in description.split("|")[1:]:
        if "=" in part:
            key, value = part.split("=", 1)
            fields[key.strip()] = value.strip()
    return fields




def _resolution_mpp(page) -> tuple[float, float] | None:
    """Microns per pixel from the TIFF resolution tags, as OpenSlide's generic TIFF reader does."""
    unit = page.tags.valueof("ResolutionUnit")
    microns = {2: 25400.0, 3: 10000.0}.get(int(unit) if unit is not None else 0)
    if microns is None:
        return None
    mpp = []
    for tag in ("YResolution", "XResolution"):
        value = page.tags.valueof(tag)
        if not (isinstance(value, tuple) and len(value) == 2 and value[0] > 0 and value[1] > 0):
            return None
        mpp.append(microns * value[1] / value[0])
    return mpp[0], mpp[1]
