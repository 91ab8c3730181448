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

from .errors import LimitError

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
