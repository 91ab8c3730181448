"""Opening a TIFF-family slide from a remote byte source, for the TIFF backend.

The checks the backend makes on a local file are made on the source: the TIFF magic, and
that the chain of IFDs ends (tifffile can loop forever on a chain that does not), here with
the source's block-cached reads. tifffile then parses the header from a file object over
the same source, and the level grids get prefetch hooks (:mod:`.prefetch`).
"""
from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import IO, Any, cast

from ..errors import CorruptSlideError, UnsupportedFormatError
from ..reader.tile_grid import TileGrid
from .fileobj import SourceFile
from .opening import take_source
from .prefetch import tiff_prefetcher, with_prefetch
from .source import ByteSource
from .urls import url_name

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_MAX_IFDS = 1_000_000


def open_remote_tiff(url: str, storage_options: dict[str, Any] | None) -> tuple[ByteSource, Any]:
    """(the byte source, a tifffile.TiffFile over it) of a remote TIFF; errors as for local files."""
    import tifffile

    source = take_source(url, storage_options)
    try:
        if source.read_at(0, 4) not in _TIFF_MAGIC:
            raise UnsupportedFormatError(source.name, "not a TIFF file")
        problem = ifd_chain_problem_of(source)
        if problem:
            raise CorruptSlideError(source.name, problem)
        handle = cast(IO[bytes], SourceFile(source))  # a binary file object, as tifffile asks
        return source, tifffile.TiffFile(handle, name=url_name(url))
    except BaseException:
        source.close()
        raise


def ifd_chain_problem_of(source: ByteSource) -> str | None:
    """Why the chain of IFDs cannot be followed to its end (a loop, an absurd length), or None."""
    size = source.size
    header = source.read_at(0, 16)
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
        if len(seen) >= _MAX_IFDS:
            return f"more than {_MAX_IFDS:,} IFDs"
        seen[offset] = len(seen)
        count = struct.unpack(order + count_fmt, source.read_at(offset, count_size))[0]
        at = offset + count_size + count * entry_size
        if at + offset_size > size:
            return None
        offset = struct.unpack(order + offset_fmt, source.read_at(at, offset_size))[0]
    return None


def prefetching_grids(grids: Sequence[TileGrid], levels: Sequence[Sequence[Any]], source: ByteSource) -> list[TileGrid]:
    """The level grids with prefetch hooks over the tile tables of each level's pages."""
    return [with_prefetch(grid, tiff_prefetcher(source, pages, grid)) for grid, pages in zip(grids, levels)]
