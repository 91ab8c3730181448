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
from collections.abc import Sequence

from .codestreams import Buffer, FrameHeader, j2k_frame, jpeg_frame
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


def check_allocation(shape: Sequence[int], itemsize: int, what: str, path: str | None = None) -> int:
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
# crafted JPEG tile of a few hundred bytes can declare 65,500 x 65,500 pixels. The headers
# are read by wsikit.codestreams, before any decoder sees the data.
JPEG_COMPRESSIONS = frozenset({6, 7})
JPEG2000_COMPRESSIONS = frozenset({33003, 33004, 33005, 34712})


def _itemsize(bits: int) -> int:
    """Bytes a decoder gives each sample of ``bits`` bits."""
    return 1 if bits <= 8 else 2 if bits <= 16 else 4


def check_encoded_tile(data: Buffer, compression: int, shape: Sequence[int], *, path: str | None = None,
                       what: str = "tile", exact: bool = True, tables: Buffer | None = None) -> None:
    """Refuse a JPEG or JPEG 2000 tile whose own header declares another size than ``shape``.

    ``shape`` is the (rows, columns) the container says the tile has. A declared size
    over the limit raises LimitError (a decompression bomb); any other disagreement is a
    CorruptSlideError. With ``exact=False`` (a strip, whose last one may stop early) the
    stream may hold fewer rows. Other compressions pass: their decoders are given the
    output size. ``tables`` is a JPEGTables stream, searched when the tile has no frame.
    """
    frame: FrameHeader | None
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
    itemsize = _itemsize(bits)
    if rows * cols * max(1, components) * itemsize > _max_bytes:  # the message only when it is needed
        check_allocation((rows, cols, max(1, components)), itemsize, f"{what} ({kind} header)", path)
    h, w = int(shape[0]), int(shape[1])
    if cols != w or not (rows == h or (not exact and 0 < rows < h)):
        raise CorruptSlideError(path, f"{what}: its {kind} header declares {rows} x {cols} pixels, the file says {h} x "
                                      f"{w}")


__all__ = [
    "DEFAULT_MAX_BYTES",
    "JPEG2000_COMPRESSIONS",
    "JPEG_COMPRESSIONS",
    "check_allocation",
    "check_encoded_tile",
    "get_max_bytes",
    "set_max_bytes",
]
