"""Checks of a TIFF file's structure made before a TIFF library parses it.

Shared by the backends that read TIFF-based files (tifffile's and OpenSlide's) and by
remote reading (:mod:`wsikit.remote.tiff`), which walks the chain over a source's reads.

tifffile notices an IFD chain that loops only in some of its code paths; in others (the
series detection that walks the pages one by one) a loop makes it read pages forever.
So the chain is walked here first, with a set of the offsets already seen.
"""
from __future__ import annotations

import os
import struct
from collections.abc import Callable

TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
# A chain longer than this is not a slide (it would take minutes to parse anyway).
MAX_IFDS = 1_000_000
# read(offset, count) -> up to ``count`` bytes at ``offset`` (fewer only at the end of the file)
ReadAt = Callable[[int, int], bytes]


def has_tiff_magic(path: str) -> bool:
    """Whether the file starts as a classic or BigTIFF file does (either byte order)."""
    try:
        with open(path, "rb") as f:
            return f.read(4) in TIFF_MAGIC
    except OSError:
        return False


def ifd_chain_problem(path: str) -> str | None:
    """Why the file's chain of IFDs cannot be followed to its end, or None when it can.

    Only loops and absurd lengths are reported: a chain that stops early (an offset past
    the end of the file, a truncated IFD) is left to tifffile, which reads what is there.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    except OSError:
        return None
    try:
        return ifd_chain_problem_in(lambda offset, count: os.pread(fd, count, offset), os.fstat(fd).st_size)
    finally:
        os.close(fd)


def ifd_chain_problem_in(read: ReadAt, size: int) -> str | None:
    """As :func:`ifd_chain_problem`, for the ``size`` bytes that ``read(offset, count)``
    reads (a local file's, or a remote source's block-cached reads)."""
    header = read(0, 16)
    if len(header) < 8 or header[:2] not in (b"II", b"MM"):
        return None
    order = "<" if header[:2] == b"II" else ">"
    version = struct.unpack(order + "H", header[2:4])[0]
    if version == 42:
        if size > 2**32:
            return None  # NDPI and other >4 GB classic TIFFs extend offsets their own way
        count_fmt, entry_size, offset_fmt = "H", 12, "I"
        offset = struct.unpack(order + "I", header[4:8])[0]
    elif version == 43 and len(header) == 16:
        count_fmt, entry_size, offset_fmt = "Q", 20, "Q"
        offset = struct.unpack(order + "Q", header[8:16])[0]
    else:
        return None
    count_size, offset_size = struct.calcsize(count_fmt), struct.calcsize(offset_fmt)
    seen: dict[int, int] = {}
    while offset and offset + count_size <= size:
        if offset in seen:
            return f"the chain of IFDs loops: IFD {len(seen)} points back to IFD {seen[offset]} at offset {offset}"
        if len(seen) >= MAX_IFDS:
            return f"more than {MAX_IFDS:,} IFDs"
        seen[offset] = len(seen)
        count = struct.unpack(order + count_fmt, read(offset, count_size))[0]
        at = offset + count_size + count * entry_size
        if at + offset_size > size:
            return None
        offset = struct.unpack(order + offset_fmt, read(at, offset_size))[0]
    return None
