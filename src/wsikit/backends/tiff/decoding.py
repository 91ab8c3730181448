"""Decoding a TIFF's own tiles and strips, and whole pictures, for the TIFF backend.

What the backend can decode:

- :func:`page_layout`: whether wsikit reads a page's pixels at all, and as what (8-bit RGB
  or YCbCr JPEG brightfield, or samples of an integer, float or bool type);
- :func:`compression_problem`: why no decoder here reads a page's compression (a value
  tifffile does not know, one it knows but cannot decode, or a codec imagecodecs was built
  without), None when one does.

How: :class:`NativeTiles` holds the file's own descriptor and reads bytes with
``os.pread`` (no lock, no shared file offset, so threads and forked processes read at
once), then decodes them with tifffile's decoder for the page. Each level becomes a
:class:`~wsikit.reader.TileGrid` of the file's tiles (or strips), so every native tile is
decoded once, whatever the reads:

- a tile or strip the file stores no bytes for (offset or byte count 0) reads as zeros,
  as tifffile and libtiff read it;
- a byte count running past the end of the file, an encoded header declaring another size
  than the tile (:func:`~wsikit.limits.check_encoded_tile`), data the codec refuses, or a
  tile table shorter than the level needs, is a CorruptSlideError naming the tile;
- 8-bit RGB JPEG tiles, the hot loop of tiling brightfield slides, call libjpeg-turbo
  directly with the arguments tifffile would pass; a tile that fails any check there is
  decoded again by the general path, which reports it.

Whole pictures (associated images) are read by tifffile, but a strip past the end of the
file or a decoding error that tifffile only logs is an error here, not zeros.
"""
from __future__ import annotations

import array
import logging
import os
import threading
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

import imagecodecs
import numpy as np

from ...errors import CorruptSlideError
from ...codestreams import jpeg_frame
from ...limits import check_allocation, check_encoded_tile
from ...reader import TileGrid
from ...remote.source import ByteSource, LocalSource

#: decode(ti, tj) of one native tile
TileDecoder = Callable[[int, int], np.ndarray]
# tifffile refuses these (EER) compressions outside EER files, although imagecodecs has a codec.
_EER_COMPRESSIONS = (65000, 65001, 65002)


def open_for_pread(path: str) -> int:
    """A read-only descriptor of ``path`` for ``os.pread``."""
    return os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))


class NativeTiles:
    """The open file of one TIFF and the decoders of its pages' tiles and strips.

    ``fd`` is read at every tile, not captured by the decoders: after a fork,
    :meth:`reopen` gives the child its own descriptor and every decoder uses it.
    """

    def __init__(self, path: str, source: ByteSource | None = None) -> None:
        self.path = path
        # Where the bytes come from: the local file (os.pread) or a remote URL (wsikit.remote).
        self.source: ByteSource = LocalSource(path) if source is None else source
        # The file does not change while it is open: one fstat, not one per tile (every
        # system call is a point where a reading thread gives up the GIL and waits for it).
        self.file_size = self.source.size

    def reopen(self) -> None:
        """A handle of its own for a forked child (see ByteSource.reopen)."""
        self.source.reopen()

    def close(self) -> None:
        self.source.close()

    # -- levels as grids -----------------------------------------------------------------
    def page_grid(self, level: int, page: Any, is_rgb: bool, sizes: tuple[int, int, int]) -> TileGrid:
        """Level ``level`` stored as the tiles or strips of one page.

        Pixels are (3,) uint8 when ``is_rgb`` (a fourth sample is dropped), else the
        page's samples as (z, c, t) = ``sizes`` of its own type.
        """
        prepare_page(page)
        shape, tile_shape, (rows, cols), samples, separate, expected = _chunk_layout(page)
        if len(page.dataoffsets) < expected or len(page.databytecounts) < expected:
            raise CorruptSlideError(
                self.path, f"level {level} lists {len(page.dataoffsets)} tiles or strips, its size needs {expected}")
        pixel_shape: tuple[int, ...] = (3,) if is_rgb else sizes
        check_allocation(tile_shape + (samples,), page.dtype.itemsize, f"native tile of level {level}", self.path)
        jpeg = jpeg8_arguments(page, tile_shape)

        if jpeg is not None and is_rgb and samples == 3:
            return TileGrid(("tiff", level), shape, tile_shape, pixel_shape, np.dtype(np.uint8),
                            self.jpeg_tile_decoder(page, cols, tile_shape, jpeg))

        def decode(ti: int, tj: int) -> np.ndarray:
            index = ti * cols + tj
            if separate:
                planes = [self.decode_segment(page, index + k * rows * cols, tile_shape, 1) for k in range(samples)]
                pixels = np.concatenate(planes, axis=2)
            else:
                pixels = self.decode_segment(page, index, tile_shape, samples, jpeg)
            if is_rgb:
                return pixels if pixels.shape[2] == 3 else pixels[:, :, :3]
            return pixels.reshape(pixels.shape[:2] + pixel_shape)

        dtype = np.dtype(np.uint8) if is_rgb else np.dtype(page.dtype)
        return TileGrid(("tiff", level), shape, tile_shape, pixel_shape, dtype, decode)

    def planes_grid(self, level: int, pages: Sequence[Any], planes: Sequence[tuple[int, int, int]],
                    sizes: tuple[int, int, int]) -> TileGrid:
        """Level ``level`` stored as several pages, one per (z, c, t) plane of ``planes``
        (None: a plane the file does not store, read as zeros), as one grid whose tiles
        hold every plane: pixels (z, c, t) = ``sizes`` of the pages' own type.

        Reads always return every plane, so one cached tile per position (not one per
        plane) keeps stitching and the cache as for single-page levels.
        """
        key = next(p for p in pages if p is not None)
        for page in pages:
            if page is not None:
                prepare_page(page)
        shape, tile_shape, (rows, cols), samples, separate, expected = _chunk_layout(key)
        for page in pages:
            if page is not None and (len(page.dataoffsets) < expected or len(page.databytecounts) < expected):
                raise CorruptSlideError(self.path, f"a plane of level {level} lists {len(page.dataoffsets)} tiles or "
                                                   f"strips, its size needs {expected}")
        pixel_shape = sizes
        dtype = np.dtype(key.dtype)
        check_allocation(tile_shape + pixel_shape, dtype.itemsize, f"native tile of level {level}", self.path)

        def decode(ti: int, tj: int) -> np.ndarray:
            index = ti * cols + tj
            out = None
            for page, (z, c, t) in zip(pages, planes):
                if page is None:
                    continue  # a plane the file does not store reads as zeros
                if separate:
                    plane = np.concatenate([self.decode_segment(page, index + k * rows * cols, tile_shape, 1)
                                            for k in range(samples)], axis=2)
                else:
                    plane = self.decode_segment(page, index, tile_shape, samples)
                if out is None:
                    out = np.zeros(plane.shape[:2] + pixel_shape, dtype=dtype)
                elif plane.shape[:2] != out.shape[:2]:
                    raise CorruptSlideError(self.path, f"tile {index} of level {level} differs in size between planes")
                s = plane.shape[2]
                out[:, :, z, c * s : (c + 1) * s, t] = plane
            return out if out is not None else np.zeros(tile_shape + pixel_shape, dtype=dtype)

        return TileGrid(("tiff-planes", level), shape, tile_shape, pixel_shape, dtype, decode)

    # -- one tile ------------------------------------------------------------------------
    def jpeg_tile_decoder(self, page: Any, cols: int, tile_shape: tuple[int, int],
                          jpeg: dict[str, Any]) -> TileDecoder:
        """``decode(ti, tj)`` for 8-bit RGB JPEG tiles: the hot loop of tiling brightfield slides.

        The same checks and decoder as :meth:`decode_segment`, with everything that does
        not change between tiles looked up once; a tile that fails any check goes through
        ``decode_segment``, which reports it.
        """
        offsets, counts = page.dataoffsets, page.databytecounts
        file_size = self.file_size
        rows, width = tile_shape
        # No JPEG tile of a sane file is larger than its pixels uncompressed (plus headers).
        largest = rows * width * 3 + 65536
        decoder, read, frame_of = imagecodecs.jpeg8_decode, self.source.read, jpeg_frame

        def decode(ti: int, tj: int) -> np.ndarray:
            index = ti * cols + tj
            offset, count = offsets[index], counts[index]
            if 0 < count <= largest and 0 < offset and offset + count <= file_size:
                data = read(offset, count)
                frame = frame_of(data)
                if frame is not None and frame[0] == rows and frame[1] == width and frame[2] == 3 and frame[3] == 8:
                    try:
                        pixels = decoder(data, **jpeg)
                    except Exception:
                        pass  # decode_segment tries tifffile and reports it
                    else:
                        if pixels.ndim == 3 and pixels.shape[2] == 3:
                            return pixels
            return self.decode_segment(page, index, tile_shape, 3, jpeg)

        return decode

    def decode_segment(self, page: Any, index: int, tile_shape: tuple[int, int], samples: int,
                       jpeg: dict[str, Any] | None = None) -> np.ndarray:
        """Tile or strip ``index`` of ``page`` as (rows, columns, samples); zeros when the
        file stores no bytes for it; CorruptSlideError when its bytes cannot be the tile."""
        data = self.stored_bytes(page, index)
        if data is None:
            # No data stored for this tile: tifffile and libtiff read it as empty (zero).
            return np.zeros(tile_shape + (samples,), dtype=page.dtype)
        check_encoded_tile(data, page.compression, tile_shape, path=self.path, what=f"tile/strip {index}",
                           exact=page.is_tiled, tables=page.jpegheader)
        if jpeg is not None:
            try:
                # libjpeg-turbo with the arguments tifffile would pass, without its wrapper.
                pixels = imagecodecs.jpeg8_decode(data, **jpeg)
                return pixels if pixels.ndim == 3 else pixels[:, :, None]
            except Exception:
                pass  # let tifffile try (and report) it
        try:
            decoded, _, _ = page.decode(data, index, jpegtables=page.jpegtables, jpegheader=page.jpegheader)
        except Exception as exc:
            raise CorruptSlideError(
                self.path, f"tile/strip {index} cannot be decoded: {type(exc).__name__}: {exc}") from None
        if decoded is None:
            return np.zeros(tile_shape + (samples,), dtype=page.dtype)
        return decoded.reshape(decoded.shape[-3:])  # drop the depth axis of 2-D images

    def stored_bytes(self, page: Any, index: int) -> bytes | None:
        """The bytes stored for tile/strip ``index`` of ``page``, None when the file stores
        none (offset or count 0); CorruptSlideError when they lie past the end of the file."""
        offset, count = int(page.dataoffsets[index]), int(page.databytecounts[index])
        if count == 0 or offset == 0:
            return None
        # A lying byte count must not size the read buffer: check it against the file first.
        if offset + count > self.file_size:
            raise CorruptSlideError(self.path, _past_the_end(index, offset, count))
        check_allocation((count,), 1, f"tile/strip {index} data", self.path)
        data = self.source.read(offset, count)
        if len(data) != count:
            raise CorruptSlideError(self.path, _past_the_end(index, offset, count))
        return data

    # -- stored JPEG streams -------------------------------------------------------------
    def native_jpeg(self, page: Any, index: int, tile_shape: tuple[int, int], colour: str | None) -> bytes | None:
        """Tile ``index`` of an 8-bit RGB JPEG ``page`` (one :func:`jpeg_tile_colour` says is
        such a page, with that ``colour``) as a standalone JPEG file (tables spliced in,
        colours stated; :func:`wsikit.jpeg_streams.standalone_jpeg`) that decodes to the
        tile's pixels as read here, or None when the tile is not one (no bytes stored, a
        frame header that is not the tile's)."""
        from ...jpeg_streams import NotAJPEG, standalone_jpeg

        data = self.stored_bytes(page, index)
        if data is None:
            return None  # read as zeros: there is no stream to pass on
        frame = jpeg_frame(data)
        if frame is None or (frame.rows, frame.columns, frame.components, frame.bits) != (*tile_shape, 3, 8):
            return None
        try:
            return standalone_jpeg(data, page.jpegtables, colour)  # type: ignore[arg-type]  # "rgb" or None
        except NotAJPEG:
            return None

    def native_jpeg_reader(self, page: Any, tile_shape: tuple[int, int],
                           colour: str | None) -> Callable[[int], bytes | None]:
        """``read(index)``: :meth:`native_jpeg` for a caller that checks what the stream
        decodes to itself (the scaled decoder): no frame header parse, Aperio-style RGB tiles
        spliced onto one prefix made once (:func:`wsikit.jpeg_streams.spliced`)."""
        from ...jpeg_streams import NotAJPEG, rgb_tiles_prefix, spliced, standalone_jpeg

        offsets, counts, tables = page.dataoffsets, page.databytecounts, page.jpegtables
        file_size, read = self.file_size, self.source.read
        prefix = rgb_tiles_prefix(tables) if colour == "rgb" else None
        largest = tile_shape[0] * tile_shape[1] * 3 + 65536  # as the full decoder's check

        def stream(index: int) -> bytes | None:
            offset, count = offsets[index], counts[index]
            if not (0 < count <= largest and 0 < offset and offset + count <= file_size):
                return self.native_jpeg(page, index, tile_shape, colour)  # None, or the error
            data = read(offset, count)
            try:
                if prefix is not None:
                    return spliced(prefix, data, tables)
                return standalone_jpeg(data, tables, colour)  # type: ignore[arg-type]  # "rgb" or None
            except NotAJPEG:
                return None

        return stream

    # -- whole pictures ------------------------------------------------------------------
    def whole_image(self, image: Any) -> np.ndarray:
        """``image.asarray()`` of a tifffile page or series, refusing what tifffile forgives.

        tifffile reads a strip that runs past the end of the file, or fails to decode, as
        zeros and only logs it; a picture read here is either the file's or a ValueError.
        """
        for page in getattr(image, "pages", None) or [image]:
            for offset, count in zip(getattr(page, "dataoffsets", ()), getattr(page, "databytecounts", ())):
                if count and offset + count > self.file_size:
                    raise ValueError(f"its data ({count} bytes at offset {offset}) runs past the end of the file")
        errors: list[str] = []
        thread = threading.get_ident()

        class CollectErrors(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                if record.thread == thread and record.levelno >= logging.ERROR:
                    errors.append(record.getMessage())

        logger = logging.getLogger("tifffile")
        handler = CollectErrors()
        logger.addHandler(handler)
        try:
            pixels = np.asarray(image.asarray())
        finally:
            logger.removeHandler(handler)
        if errors:
            raise ValueError(errors[0])
        return pixels


def _past_the_end(index: int, offset: int, count: int) -> str:
    return f"tile/strip {index} ends past the end of the file (offset {offset}, {count} bytes)"


# -- what can be decoded ---------------------------------------------------------------------
def page_layout(page: Any) -> tuple[bool, int] | None:
    """(is_rgb, samples) for a page whose pixels wsikit reads, else None."""
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


def compression_problem(page: Any) -> str | None:
    """Why no decoder here reads the page's compression, as words that follow "level 0 ",
    or None when tifffile has a decoder for it."""
    code = int(page.compression)
    if code == 1:
        return None
    if code in _EER_COMPRESSIONS and not page.parent.is_eer:
        available = False
    else:
        available = _decoder_available(code)
    if available:
        return None
    return f"uses TIFF compression {code} ({compression_name(code)}), which no installed decoder reads"


def compression_name(code: int) -> str:
    """tifffile's name of a TIFF compression value, or words saying it has none."""
    from tifffile import COMPRESSION

    try:
        return COMPRESSION(code).name
    except ValueError:
        return "a value tifffile does not know"


@lru_cache(maxsize=None)
def _decoder_available(code: int) -> bool:
    from tifffile import TIFF

    decoder = TIFF.DECOMPRESSORS.get(code)  # None for a value tifffile has no codec for
    if decoder is None:
        return False
    # For a codec it was built without, imagecodecs hands out a stand-in that raises
    # DelayedImportError when called; a real decoder called without data raises TypeError
    # before it decodes anything.
    try:
        decoder()
    except imagecodecs.DelayedImportError:
        return False
    except Exception:
        pass
    return True


# -- page tables -----------------------------------------------------------------------------
def _chunk_layout(page: Any) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int], int, bool, int]:
    """A page's (shape, chunk shape, (chunk rows, chunk columns), samples, whether samples are
    stored as separate planes, how many chunks its tables must list)."""
    shape = (int(page.imagelength), int(page.imagewidth))
    tile_shape = chunk_shape(page)
    rows, cols = -(-shape[0] // tile_shape[0]), -(-shape[1] // tile_shape[1])
    samples = int(page.samplesperpixel)
    separate = samples > 1 and int(page.planarconfig) == 2
    return shape, tile_shape, (rows, cols), samples, separate, rows * cols * (samples if separate else 1)


def chunk_shape(page: Any) -> tuple[int, int]:
    """(rows, columns) of the page's native tiles, or of its strips (cut to the image)."""
    if page.is_tiled:
        return int(page.tilelength), int(page.tilewidth)
    length = int(page.imagelength)
    return min(int(page.rowsperstrip or length), length), int(page.imagewidth)


def chunk_bytes(page: Any) -> int:
    """Bytes of one decoded native tile or strip (strips as declared, not cut to the image)."""
    if page.is_tiled:
        th, tw = int(page.tilelength), int(page.tilewidth)
    else:
        th, tw = int(page.rowsperstrip or page.imagelength), int(page.imagewidth)
    return th * tw * int(page.samplesperpixel) * np.dtype(page.dtype).itemsize


def prepare_page(page: Any) -> None:
    """Make a level page ready for reading from several threads at once.

    tifffile builds ``page.decode`` lazily and not thread-safely: build it here, once;
    and hold its tile tables compactly (:func:`compact_tables`).
    """
    page.decode  # noqa: B018
    compact_tables(page)


def compact_tables(page: Any) -> None:
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


def jpeg8_arguments(page: Any, tile_shape: tuple[int, int]) -> dict[str, Any] | None:
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


def jpeg_tile_colour(page: Any, tile_shape: tuple[int, int]) -> str | None | bool:
    """For :meth:`NativeTiles.native_jpeg`: False when the page's tiles are not 8-bit
    three-sample JPEG; else "rgb" when tifffile has libjpeg take them as RGB-coded (Aperio's
    Photometric RGB without a JFIF marker), None when libjpeg's own colour rules apply."""
    jpeg = jpeg8_arguments(page, tile_shape)
    if jpeg is None or int(page.samplesperpixel) != 3:
        return False
    return "rgb" if jpeg["colorspace"] == 2 else None


def as_rgb(pixels: np.ndarray) -> np.ndarray:
    """A decoded picture as (h, w, 3) uint8: grey repeated, extra samples dropped,
    planes-first (c, h, w) moved last; values scaled to uint8 from their type's range."""
    from ...pixels import to_uint8

    pixels = to_uint8(np.asarray(pixels))
    if pixels.ndim == 2:
        return np.repeat(pixels[:, :, None], 3, axis=2)
    if pixels.ndim == 3 and pixels.shape[2] >= 3:
        return np.ascontiguousarray(pixels[:, :, :3])
    if pixels.ndim == 3 and pixels.shape[0] in (1, 3) and pixels.shape[2] not in (1, 3):
        return as_rgb(np.moveaxis(pixels, 0, 2))
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        return np.repeat(pixels, 3, axis=2)
    raise ValueError(f"cannot show an image of shape {pixels.shape} as RGB")
