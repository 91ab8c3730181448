"""The per-process ceiling on what a single operation may allocate.

Slides can be far larger than memory; what one call must hold at once (a region, a
thumbnail, one decoded native tile or strip) cannot. Every such allocation is checked
here *before* it is made, so a crafted file that declares a 10^6 x 10^6 tile is refused
with a LimitError instead of exhausting memory.

The limit is read from the environment variable ``WSIKIT_MAX_BYTES`` (an integer number
of bytes, suffixes K/M/G accepted) when wsikit is imported, and can be changed at run
time with :func:`set_max_bytes`. The default is 2 GiB of decoded pixels.
"""
from __future__ import annotations

import math
import os
import struct

from .errors import CorruptSlideError, LimitError

DEFAULT_MAX_BYTES = 2 * 1024**3
_SUFFIXES = {"K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def _parse_bytes(text: str) -> int:
    text = text.strip().upper().removesuffix("B")
    factor = 1
    if text and text[-1] in _SUFFIXES:
        factor = _SUFFIXES[text[-1]]
        text = text[:-1]
    value = int(float(text) * factor)
    if value <= 0:
        raise ValueError(f"WSIKIT_MAX_BYTES must be positive, got {text!r}")
    return value


_max_bytes = _parse_bytes(os.environ["WSIKIT_MAX_BYTES"]) if os.environ.get("WSIKIT_MAX_BYTES") else DEFAULT_MAX_BYTES


def get_max_bytes() -> int:
    """The largest number of bytes one operation may allocate in one piece."""
    return _max_bytes


def set_max_bytes(limit: int) -> int:
    """Set the per-process allocation limit in bytes; returns the previous limit."""
    global _max_bytes
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise TypeError(f"limit must be an int number of bytes, got {limit!r}")
    if limit <= 0:
        raise ValueError(f"limit must be positive, got {limit}")
    previous, _max_bytes = _max_bytes, limit
    return previous


def check_allocation(shape, itemsize: int, what: str, path=None) -> int:
    """Raise LimitError when an array of ``shape`` x ``itemsize`` bytes exceeds the limit.

    Returns the number of bytes. Called before allocating, never after.
    """
    nbytes = math.prod(int(s) for s in shape) * int(itemsize)
    if nbytes > _max_bytes:
        raise LimitError(
            path,
            f"{what} of shape {tuple(int(s) for s in shape)} needs {nbytes:,} bytes, "
            f"over the limit of {_max_bytes:,} bytes (set WSIKIT_MAX_BYTES or wsikit.set_max_bytes to change it)",
        )
    return nbytes


# -- sizes that compressed tiles declare in their own headers -----------------------------
# A codec allocates what the stream's header declares, not what the container says; a
# crafted JPEG tile of a few hundred bytes can declare 65,500 x 65,500 pixels. These
# headers are read here, before any decoder sees the data.
JPEG_COMPRESSIONS = frozenset({6, 7})
JPEG2000_COMPRESSIONS = frozenset({33003, 33004, 33005, 34712})
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_STANDALONE_MARKERS = frozenset(range(0xD0, 0xD9)) | {0x01}


_MARKER = struct.Struct(">BBH")  # 0xFF, marker, segment length
_FRAME = struct.Struct(">BHHB")  # bits, rows, columns, components


def jpeg_frame(data: bytes) -> tuple[int, int, int, int] | None:
    """(rows, columns, components, bits) from a JPEG stream's frame header, or None.

    None when the stream holds no frame header before its first scan (or is not JPEG).
    """
    n = len(data)
    if n < 4 or data[0] != 0xFF or data[1] != 0xD8:
        return None
    k = 2
    while k + 4 <= n:
        ff, marker, length = _MARKER.unpack_from(data, k)
        if ff != 0xFF:
            return None
        if marker == 0xFF:  # fill byte
            k += 1
        elif marker in _STANDALONE_MARKERS:
            k += 2
        elif marker == 0xDA:  # start of scan: no frame header came first
            return None
        elif marker in _SOF_MARKERS:
            if k + 10 > n or length < 8:
                return None
            bits, rows, cols, components = _FRAME.unpack_from(data, k + 4)
            return rows, cols, components, bits
        elif length < 2:
            return None
        else:
            k += 2 + length
    return None


def j2k_frame(data: bytes) -> tuple[int, int, int, int] | None:
    """(rows, columns, components, bits) from a JPEG 2000 codestream's SIZ marker, or None."""
    start = 0
    if data[:4] == b"\x00\x00\x00\x0c" and data[4:8] == b"jP  ":
        start = data.find(b"jp2c")  # JP2 file: the codestream is in the jp2c box
        if start < 0:
            return None
        start += 4
    if data[start : start + 4] != b"\xff\x4f\xff\x51" or len(data) < start + 42:
        return None
    siz = start + 4
    xsiz, ysiz, xosiz, yosiz = (int.from_bytes(data[siz + 4 + 4 * k : siz + 8 + 4 * k], "big") for k in range(4))
    components = int.from_bytes(data[siz + 36 : siz + 38], "big")
    bits = (data[siz + 38] & 0x7F) + 1 if len(data) > siz + 38 else 8
    return max(0, ysiz - yosiz), max(0, xsiz - xosiz), components, bits


def check_encoded_tile(data: bytes, compression: int, shape, *, path=None, what: str = "tile",
                       exact: bool = True, tables: bytes | None = None) -> None:
    """Refuse a JPEG or JPEG 2000 tile whose own header declares another size than ``shape``.

    ``shape`` is the (rows, columns) the container says the tile has. A declared size
    over the limit raises LimitError (a decompression bomb); any other disagreement is a
    CorruptSlideError. With ``exact=False`` (a strip, whose last one may stop early) the
    stream may hold fewer rows. Other compressions pass: their decoders are given the
    output size. ``tables`` is a JPEGTables stream, searched when the tile has no frame.
    """
    if compression in JPEG_COMPRESSIONS:
        frame = jpeg_frame(data)
        if frame is None and tables:
            frame = jpeg_frame(tables)
        kind = "JPEG"
    elif compression in JPEG2000_COMPRESSIONS:
        frame = j2k_frame(data)
        kind = "JPEG 2000"
    else:
        return
    if frame is None:
        return  # nothing declared: the decoder fails on its own, bounded by the data
    rows, cols, components, bits = frame
    itemsize = 2 if bits > 8 else 1
    if rows * cols * max(1, components) * itemsize > _max_bytes:  # the message only when it is needed
        check_allocation((rows, cols, max(1, components)), itemsize, f"{what} ({kind} header)", path)
    h, w = int(shape[0]), int(shape[1])
    if cols != w or not (rows == h or (not exact and 0 < rows < h)):
        raise CorruptSlideError(path, f"{what}: its {kind} header declares {rows} x {cols} pixels, the file says {h} x {w}")
