"""Decoding one DICOM frame from its bytes with imagecodecs, colour handled per codestream.

:func:`frame_decoder` picks, once per instance, a function that turns a frame's bytes
into an (h, w, samples) array of the instance's pixel type. Colour conversion follows the
codestream where it speaks for itself, whatever the header says:

- lossy JPEG: libjpeg's own rule (JFIF marker, Adobe transform flag, else component ids
  ``R G B`` mean RGB and anything else YCbCr), so a file that declares RGB but holds
  YCbCr JPEG frames (common; ``small_dicom.dcm`` is one) reads with the right colours;
- JPEG 2000 / HTJ2K: the decoder undoes the codestream's multiple component transform
  (YBR_ICT / YBR_RCT); a codestream without one is taken as it is, except that a header
  saying YBR_FULL is then converted;
- lossless JPEG, JPEG-LS, RLE and uncompressed data carry no colour transform of their
  own: YBR_FULL and YBR_FULL_422 in the header are converted to RGB here.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import DTypeLike

from ...codestreams import J2K_START, JP2_SIGNATURE, Buffer, FrameHeader, j2k_header, jpeg_frame, jpeg_header
from ...errors import UnsupportedFormatError

JPEG_LOSSY = {"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51"}
JPEG_LOSSLESS = {"1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70"}
JPEG_LS = {"1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"}
JPEG_2000 = {"1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.92", "1.2.840.10008.1.2.4.93"}
HTJ2K = {"1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203"}
JPEG_XL = {"1.2.840.10008.1.2.4.110", "1.2.840.10008.1.2.4.111", "1.2.840.10008.1.2.4.112"}
RLE = "1.2.840.10008.1.2.5"
IMPLICIT_LITTLE = "1.2.840.10008.1.2"
EXPLICIT_LITTLE = "1.2.840.10008.1.2.1"
EXPLICIT_BIG = "1.2.840.10008.1.2.2"
DEFLATED = "1.2.840.10008.1.2.1.99"
NATIVE = {IMPLICIT_LITTLE, EXPLICIT_LITTLE, EXPLICIT_BIG}
ENCAPSULATED = JPEG_LOSSY | JPEG_LOSSLESS | JPEG_LS | JPEG_2000 | HTJ2K | JPEG_XL | {RLE}

_YBR = {"YBR_FULL", "YBR_FULL_422"}
#: turns the bytes of one frame into an (h, w, samples) array
FrameDecoder = Callable[[Buffer], np.ndarray]


class FrameShapeError(ValueError):
    """A frame's codestream declares a size larger than the header's Rows x Columns."""


def is_encapsulated(transfer_syntax: str) -> bool:
    return transfer_syntax in ENCAPSULATED


def guess_transfer_syntax(head: bytes) -> str | None:
    """The transfer syntax a frame's first bytes show, for files whose meta header lacks it."""
    if head.startswith(b"\xff\xd8\xff"):
        return "1.2.840.10008.1.2.4.50"
    if head.startswith((J2K_START, JP2_SIGNATURE)):
        return "1.2.840.10008.1.2.4.91"
    if head.startswith((b"\xff\x0a", b"\x00\x00\x00\x0cJXL ")):
        return "1.2.840.10008.1.2.4.110"
    return None


def ybr_full_to_rgb(ybr: np.ndarray) -> np.ndarray:
    """Full-range YCbCr (JFIF / DICOM YBR_FULL) to RGB, same dtype."""
    dtype = ybr.dtype
    top = float(np.iinfo(dtype).max) if dtype.kind in "ui" else 1.0
    half = (top + 1) / 2 if dtype.kind in "ui" else 0.5
    y = ybr[..., 0].astype(np.float32)
    cb = ybr[..., 1].astype(np.float32) - half
    cr = ybr[..., 2].astype(np.float32) - half
    rgb = np.empty(ybr.shape, dtype=np.float32)
    rgb[..., 0] = y + 1.402 * cr
    rgb[..., 1] = y - 0.344136 * cb - 0.714136 * cr
    rgb[..., 2] = y + 1.772 * cb
    if dtype.kind in "ui":
        np.rint(rgb, out=rgb)
        np.clip(rgb, 0, top, out=rgb)
    return rgb.astype(dtype)


def _check_shape(frame: FrameHeader | None, rows: int, cols: int) -> None:
    """A codestream may be smaller than the header's frame (it is padded), never larger."""
    if frame is not None and (frame.rows > rows or frame.columns > cols):
        raise FrameShapeError(f"the codestream is {frame.rows} x {frame.columns} pixels, larger than the header's "
                              f"frame of {rows} x {cols}")


# -- decoders ------------------------------------------------------------------------------
def frame_decoder(transfer_syntax: str, *, photometric: str, samples: int, rows: int, cols: int, dtype: DTypeLike,
                  planar: int = 0, path: str | None = None) -> FrameDecoder:
    """A function ``bytes -> (h, w, samples) array`` for the frames of one instance.

    Raises UnsupportedFormatError for a transfer syntax or layout no codec here reads.
    """
    import imagecodecs as typed_imagecodecs

    # imagecodecs' stubs say bytes | bytearray | mmap, its decoders take any buffer, and
    # frames come as memoryviews (read without a copy): the module is used untyped here.
    imagecodecs: Any = typed_imagecodecs
    ybr = photometric in _YBR and samples == 3
    dtype = np.dtype(dtype)

    def finish(array: np.ndarray, convert: bool) -> np.ndarray:
        if array.ndim == 2:
            array = array[:, :, None]
        if array.dtype != dtype:
            array = array.astype(dtype)
        if convert and array.shape[2] == 3:
            array = ybr_full_to_rgb(array)
        return array

    if transfer_syntax in JPEG_LOSSY or transfer_syntax in JPEG_LOSSLESS:
        def decode_jpeg(data: Buffer) -> np.ndarray:
            header = jpeg_header(data)
            _check_shape(header.frame, rows, cols)
            marked = header.jfif or header.adobe_transform is not None
            if header.lossless and not marked and len(header.component_ids) == 3:
                # No colour transform in a lossless stream that names none: the header decides.
                array = _first_that_decodes(data, (
                    lambda d: imagecodecs.jpeg8_decode(d, colorspace="RGB", outcolorspace="RGB"),
                    imagecodecs.ljpeg_decode, imagecodecs.jpegsof3_decode))
                return finish(array, ybr)
            array = _first_that_decodes(
                data, (imagecodecs.jpeg8_decode, imagecodecs.ljpeg_decode, imagecodecs.jpegsof3_decode))
            return finish(array, False)

        if transfer_syntax in JPEG_LOSSY and dtype == np.uint8 and samples in (1, 3):
            return _baseline_decoder(rows, cols, samples, decode_jpeg)
        return decode_jpeg

    if transfer_syntax in JPEG_LS:
        def decode_jpegls(data: Buffer) -> np.ndarray:
            _check_shape(jpeg_frame(data), rows, cols)
            return finish(imagecodecs.jpegls_decode(data), ybr)

        return decode_jpegls

    if transfer_syntax in JPEG_2000 or transfer_syntax in HTJ2K:
        openjpeg: tuple[Callable[[Buffer], Any], ...] = (imagecodecs.jpeg2k_decode,)
        openjph = openjpeg
        if transfer_syntax in HTJ2K and getattr(imagecodecs.HTJ2K, "available", False):
            openjph = (imagecodecs.htj2k_decode, imagecodecs.jpeg2k_decode)

        def decode_j2k(data: Buffer) -> np.ndarray:
            header = j2k_header(data)
            _check_shape(header.frame, rows, cols)
            # OpenJPH is about twice as fast on HTJ2K but does not clip the output of the
            # irreversible wavelet (values past 255 wrap to 0), so it decodes lossless only.
            array = _first_that_decodes(data, openjph if header.reversible else openjpeg)
            return finish(array, photometric == "YBR_FULL" and not header.multiple_component_transform)

        return decode_j2k

    if transfer_syntax in JPEG_XL:
        def decode_jpegxl(data: Buffer) -> np.ndarray:
            return finish(imagecodecs.jpegxl_decode(data), False)

        return decode_jpegxl

    if transfer_syntax == RLE:
        segment_dtype = dtype.newbyteorder("<")

        def decode_rle(data: Buffer) -> np.ndarray:
            raw = imagecodecs.dicomrle_decode(data, dtype=segment_dtype)
            planes = np.frombuffer(raw, dtype=segment_dtype)
            if planes.size != rows * cols * samples:
                raise ValueError(f"RLE frame decodes to {planes.size} samples, the header's frame has "
                                 f"{rows * cols * samples}")
            return finish(planes.reshape(samples, rows, cols).transpose(1, 2, 0), ybr)

        return decode_rle

    if transfer_syntax in NATIVE:
        native = dtype.newbyteorder(">" if transfer_syntax == EXPLICIT_BIG else "<")
        if photometric == "YBR_FULL_422" and samples == 3:
            if cols % 2 or dtype.itemsize != 1:
                raise UnsupportedFormatError(path, "uncompressed YBR_FULL_422 needs an even number of 8-bit columns")

            def decode_422(data: Buffer) -> np.ndarray:
                pairs = np.frombuffer(data, dtype=np.uint8, count=rows * cols * 2).reshape(rows, cols // 2, 4)
                ybr_full = np.empty((rows, cols, 3), dtype=np.uint8)
                ybr_full[:, 0::2, 0], ybr_full[:, 1::2, 0] = pairs[..., 0], pairs[..., 1]
                ybr_full[:, :, 1] = np.repeat(pairs[..., 2], 2, axis=1)
                ybr_full[:, :, 2] = np.repeat(pairs[..., 3], 2, axis=1)
                return ybr_full_to_rgb(ybr_full)

            return decode_422

        def decode_native(data: Buffer) -> np.ndarray:
            array = np.frombuffer(data, dtype=native, count=rows * cols * samples)
            if planar == 1 and samples > 1:
                array = array.reshape(samples, rows, cols).transpose(1, 2, 0)
            else:
                array = array.reshape(rows, cols, samples)
            return finish(array.astype(dtype, copy=False), ybr)

        return decode_native

    if transfer_syntax == DEFLATED:
        raise UnsupportedFormatError(path, "deflated DICOM (the whole dataset compressed) cannot be read frame by "
                                           "frame")
    raise UnsupportedFormatError(path, f"transfer syntax {transfer_syntax} is not one wsikit decodes")


def _baseline_decoder(rows: int, cols: int, samples: int, general: FrameDecoder) -> FrameDecoder:
    """8-bit lossy JPEG frames, the hot loop of reading JPEG series: libjpeg-turbo through
    simplejpeg, whose header read and decode cost less per frame than the general path
    (same library, same colour rules: JFIF, Adobe transform, else component ids). A frame
    it does not read (lossless, CMYK, a damaged stream) goes to ``general``, which reports it."""
    import simplejpeg

    header_of, decode = simplejpeg.decode_jpeg_header, simplejpeg.decode_jpeg
    colorspace = "RGB" if samples == 3 else "GRAY"

    def decode_baseline(data: Buffer) -> np.ndarray:
        try:
            height, width = header_of(data)[:2]
        except ValueError:
            return general(data)
        if height > rows or width > cols:
            return general(data)  # which refuses it, saying why
        try:
            array = decode(data, colorspace=colorspace)
        except ValueError:
            return general(data)
        return array if array.ndim == 3 else array[:, :, None]

    return decode_baseline


def frame_jpeg(data: Buffer, transfer_syntax: str, frame_shape: tuple[int, int]) -> bytes | None:
    """A lossy 8-bit three-component JPEG frame as a standalone JPEG file whose colour
    transform is stated (:func:`wsikit.jpeg_streams.standalone_jpeg`): it decodes, with any
    decoder, as :func:`frame_decoder` decodes the frame (libjpeg's own colour rules). None
    for another transfer syntax or a frame whose header is not a full ``frame_shape``
    colour frame (such frames are padded or converted when read)."""
    from ...jpeg_streams import NotAJPEG, standalone_jpeg

    if transfer_syntax not in JPEG_LOSSY:
        return None
    header = jpeg_header(data)
    frame = header.frame
    if frame is None or header.lossless or (frame.rows, frame.columns, frame.components, frame.bits) != (
            *frame_shape, 3, 8):
        return None
    try:
        return standalone_jpeg(data)
    except NotAJPEG:
        return None


def _first_that_decodes(data: Buffer, codecs: Sequence[Callable[[Buffer], Any]]) -> np.ndarray:
    """Decode with the first codec that accepts the stream (e.g. lossless JPEG variants)."""
    error: Exception | None = None
    for codec in codecs:
        try:
            return codec(data)
        except Exception as exc:  # the next codec may read what this one refuses
            error = error or exc
    raise error or ValueError("no decoder was tried")


__all__ = [
    "FrameDecoder",
    "FrameShapeError",
    "frame_decoder",
    "frame_jpeg",
    "guess_transfer_syntax",
    "is_encapsulated",
    "ybr_full_to_rgb",
]
