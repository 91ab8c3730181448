"""What JPEG, JPEG-LS and JPEG 2000 codestreams declare in their own headers.

A decoder allocates the size a codestream's header declares, not the size its container
(a TIFF tile, a DICOM frame) says it has: a crafted stream of a few hundred bytes can
declare 65,500 x 65,500 pixels. This module reads those headers, and only the headers,
before any decoder sees the data. It is the one parser of them: :mod:`wsikit.limits`
checks the declared size against the memory limit and the container, and the DICOM
frame decoders pick their colour rules and decoder from what it finds.

What is read, by standard:

- JPEG (ITU-T T.81, Annex B): after SOI, marker segments up to the first SOS, each with a
  two-byte length that counts itself; any marker may be preceded by fill bytes 0xFF; RSTn,
  SOI, EOI and TEM stand alone. The frame header is one of SOF0-3, 5-7, 9-11, 13-15
  (0xFFC4 DHT, 0xFFC8 JPG and 0xFFCC DAC are not frame headers): P (bits), Y (lines),
  X (columns), Nf (components), then an id, sampling factors and table per component.
  Y = 0 means the number of lines comes after the first scan (a DNL segment): the size
  read is then 0 lines. JFIF (APP0) and Adobe (APP14, its transform flag) are noted for
  the colour rules.
- JPEG-LS (ITU-T T.87, C.2): the same frame header under SOF55 (0xFFF7). An image over
  65,535 lines or columns writes 0 there and gives the size in an LSE segment (0xFFF8)
  of id 4, "oversize image dimension": Wxy (2, 3 or 4), then Y and X in Wxy bytes each,
  before or after the frame header, before the scan.
- JPEG 2000 (ITU-T T.800, Annex A): SOC (0xFF4F), then SIZ (0xFF51): Lsiz, Rsiz, Xsiz,
  Ysiz, XOsiz, YOsiz, tile sizes and offsets, Csiz, and per component Ssiz (precision
  minus one in the low seven bits). The image is (Ysiz - YOsiz) x (Xsiz - XOsiz). The
  COD segment of the main header gives the multiple component transform and the wavelet
  (5-3 reversible or 9-7 irreversible).
- JP2 files (ITU-T T.800, Annex I): a sequence of boxes, each LBox (4 bytes), TBox
  (4 bytes), and XLBox (8 bytes) when LBox is 1; LBox 0 means the box runs to the end of
  the file, and LBox 2 to 7 is invalid. The first box is the 12-byte signature box
  ``jP  ``; the codestream is the content of the contiguous codestream box ``jp2c``.

Nothing here raises on malformed data: what cannot be read is reported as unknown
(``None``), and the decoder then fails on its own, bounded by the data it is given.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import NamedTuple, TypeAlias, Union

Buffer: TypeAlias = Union[bytes, bytearray, memoryview]


class FrameHeader(NamedTuple):
    """Size, components and precision a codestream declares."""

    rows: int
    columns: int
    components: int
    bits: int  # bits per sample


# -- JPEG and JPEG-LS ----------------------------------------------------------------------
SOF55 = 0xF7  # JPEG-LS frame header (T.87)
LSE = 0xF8  # JPEG-LS preset parameters (T.87)
_SOI, _EOI, _SOS, _APP0, _APP14 = 0xD8, 0xD9, 0xDA, 0xE0, 0xEE
_FRAME_MARKERS = (frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}) | {SOF55}
_LOSSLESS_MARKERS = frozenset({0xC3, 0xC7, 0xCB, 0xCF})  # T.81 lossless processes
_STANDALONE_MARKERS = frozenset(range(0xD0, 0xD9)) | {0x01}  # RST0-7, SOI, TEM
_END_OF_HEADERS = frozenset({_SOS, _EOI, 0x00})  # 0xFF00 is no marker: the data is not JPEG
_OVERSIZE_IMAGE_DIMENSION = 4  # LSE id (T.87 C.2.4.1.4)
_MARKER = struct.Struct(">BBH")  # 0xFF, marker, segment length
_FRAME = struct.Struct(">BHHB")  # P, Y, X, Nf


@dataclass(frozen=True)
class JPEGHeader:
    """The frame header of a JPEG or JPEG-LS stream and the markers that decide its colours."""

    frame: FrameHeader | None  # None: not JPEG, or no frame header before the first scan
    frame_marker: int | None  # second byte of the frame header's marker (0xC0..0xCF, 0xF7)
    component_ids: tuple[int, ...]
    jfif: bool  # an APP0 JFIF segment: the components are YCbCr
    adobe_transform: int | None  # the transform flag of an APP14 Adobe segment

    @property
    def lossless(self) -> bool:
        """A T.81 lossless process (SOF3, 7, 11, 15); JPEG-LS is told by :attr:`jpeg_ls`."""
        return self.frame_marker in _LOSSLESS_MARKERS

    @property
    def jpeg_ls(self) -> bool:
        return self.frame_marker == SOF55


_NO_JPEG = JPEGHeader(None, None, (), False, None)


def _jpeg_segments(data: Buffer, colour: bool) -> tuple[int, int, FrameHeader, bool, int | None] | None:
    """Walk a JPEG stream's marker segments to its frame header.

    Returns (offset of the frame header, its marker, what it declares, JFIF seen, Adobe
    transform), or None when there is no frame header before the first scan. APP
    segments are looked at only with ``colour`` (tile reads need the size alone).
    """
    n = len(data)
    if n < 4 or data[0] != 0xFF or data[1] != _SOI:
        return None
    k = 2
    frame: tuple[int, int, int, int, int, int] | None = None  # offset, marker, P, Y, X, Nf
    oversize: tuple[int, int] | None = None
    jfif, adobe = False, None
    while k + 4 <= n:
        ff, marker, length = _MARKER.unpack_from(data, k)
        if ff != 0xFF:
            break
        if marker == 0xFF:  # fill byte
            k += 1
            continue
        if marker in _STANDALONE_MARKERS:
            k += 2
            continue
        if marker in _END_OF_HEADERS or length < 2:
            break
        if marker in _FRAME_MARKERS:
            if frame is not None or length < 8 or k + 10 > n:
                break
            bits, rows, columns, components = _FRAME.unpack_from(data, k + 4)
            frame = (k, marker, bits, rows, columns, components)
            # Only a JPEG-LS frame header of 0 lines or columns needs an LSE segment after it.
            if marker != SOF55 or oversize is not None or (rows and columns):
                break
        elif marker == LSE:
            if length >= 4 + 2 * 2 and k + 5 < n and data[k + 4] == _OVERSIZE_IMAGE_DIMENSION:
                oversize = _oversize_dimension(data, k, length) or oversize
                if frame is not None:
                    break
        elif colour:
            if marker == _APP0 and length >= 7 and bytes(data[k + 4 : k + 9]) == b"JFIF\x00":
                jfif = True
            elif marker == _APP14 and length >= 14 and k + 15 < n and bytes(data[k + 4 : k + 9]) == b"Adobe":
                adobe = data[k + 15]
        k += 2 + length
    if frame is None:
        return None
    at, marker, bits, rows, columns, components = frame
    if marker == SOF55 and oversize is not None:
        rows, columns = rows or oversize[0], columns or oversize[1]
    return at, marker, FrameHeader(rows, columns, components, bits), jfif, adobe


def _oversize_dimension(data: Buffer, k: int, length: int) -> tuple[int, int] | None:
    """(Ye, Xe) of an LSE oversize-image-dimension segment at ``k``, None when malformed."""
    width = data[k + 5]
    if width not in (2, 3, 4) or length != 4 + 2 * width or k + 6 + 2 * width > len(data):
        return None
    start = k + 6
    rows = int.from_bytes(bytes(data[start : start + width]), "big")
    columns = int.from_bytes(bytes(data[start + width : start + 2 * width]), "big")
    return rows, columns


def jpeg_frame(data: Buffer) -> FrameHeader | None:
    """What a JPEG or JPEG-LS stream's frame header declares, or None.

    None when the data is not a JPEG stream or holds no frame header before its first
    scan (a TIFF tile whose tables are elsewhere, say).
    """
    found = _jpeg_segments(data, False)
    return None if found is None else found[2]


def jpeg_header(data: Buffer) -> JPEGHeader:
    """The frame header and colour markers of a JPEG or JPEG-LS stream (all unknown when it is none)."""
    found = _jpeg_segments(data, True)
    if found is None:
        return _NO_JPEG
    at, marker, frame, jfif, adobe = found
    end = min(len(data), at + 2 + ((data[at + 2] << 8) | data[at + 3]))
    ids = tuple(data[at + 10 + 3 * c] for c in range(frame.components) if at + 10 + 3 * c < end)
    return JPEGHeader(frame, marker, ids, jfif, adobe)


# -- JPEG 2000 -----------------------------------------------------------------------------
JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  "  # LBox 12 and TBox of the signature box
J2K_START = b"\xff\x4f\xff\x51"  # SOC then SIZ
_COD, _SOT = 0xFF52, 0xFF90


@dataclass(frozen=True)
class J2KHeader:
    """The main header of a JPEG 2000 codestream, as far as decoding choices need it."""

    frame: FrameHeader | None  # None: no SOC / SIZ at the start of the codestream
    multiple_component_transform: bool  # COD: components 0-2 are YCbCr (ICT or RCT)
    reversible: bool  # COD: the 5-3 reversible wavelet (lossless), not the 9-7


def _u32(data: Buffer, k: int) -> int:
    return int.from_bytes(bytes(data[k : k + 4]), "big")


def j2k_codestream(data: Buffer) -> Buffer | None:
    """The raw codestream of a JPEG 2000 stream: ``data`` itself, or a JP2 file's ``jp2c`` box.

    None for a JP2 file without a readable contiguous codestream box.
    """
    if bytes(data[:8]) != JP2_SIGNATURE:
        return data
    n = len(data)
    k = 0
    while k + 8 <= n:
        length, header = _u32(data, k), 8
        if length == 1:  # a 64-bit extended length follows the box type
            if k + 16 > n:
                return None
            length, header = int.from_bytes(bytes(data[k + 8 : k + 16]), "big"), 16
            if length < 16:
                return None
        elif length == 0:  # the last box: it runs to the end of the file
            length = n - k
        elif length < 8:
            return None
        if bytes(data[k + 4 : k + 8]) == b"jp2c":
            return data[k + header : k + length]
        k += length
    return None


def _j2k_frame(stream: Buffer) -> FrameHeader | None:
    if bytes(stream[:4]) != J2K_START or len(stream) < 43:
        return None
    xsiz, ysiz, xosiz, yosiz = (_u32(stream, 8 + 4 * k) for k in range(4))
    components = (stream[40] << 8) | stream[41]
    bits = (stream[42] & 0x7F) + 1
    return FrameHeader(max(0, ysiz - yosiz), max(0, xsiz - xosiz), components, bits)


def j2k_frame(data: Buffer) -> FrameHeader | None:
    """What a JPEG 2000 codestream's (or JP2 file's) SIZ segment declares, or None.

    ``bits`` is the precision of the first component.
    """
    stream = j2k_codestream(data)
    return None if stream is None else _j2k_frame(stream)


def j2k_header(data: Buffer) -> J2KHeader:
    """Size, multiple component transform and wavelet of a JPEG 2000 codestream or JP2 file."""
    stream = j2k_codestream(data)
    frame = None if stream is None else _j2k_frame(stream)
    if stream is None or frame is None:
        return J2KHeader(frame, False, False)
    mct = reversible = False
    k, n = 2, len(stream)  # SIZ, right after the 2-byte SOC
    while k + 4 <= n:
        marker, length = (stream[k] << 8) | stream[k + 1], (stream[k + 2] << 8) | stream[k + 3]
        if marker == _COD:
            # Lcod, Scod, progression order, layers (2), MCT; then levels, code-block
            # width and height, code-block style, wavelet.
            if k + 13 < n:
                mct, reversible = stream[k + 8] == 1, stream[k + 13] == 1
            break
        if marker == _SOT or marker & 0xFF00 != 0xFF00 or length < 2:  # the main header is over
            break
        k += 2 + length
    return J2KHeader(frame, mct, reversible)


__all__ = [
    "JP2_SIGNATURE",
    "J2K_START",
    "Buffer",
    "FrameHeader",
    "J2KHeader",
    "JPEGHeader",
    "j2k_codestream",
    "j2k_frame",
    "j2k_header",
    "jpeg_frame",
    "jpeg_header",
]
