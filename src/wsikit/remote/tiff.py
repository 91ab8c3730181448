"""Opening a TIFF-family slide from a remote byte source, for the TIFF backend.

The checks the backend makes on a local file are made on the source: the TIFF magic, and
that the chain of IFDs ends (tifffile can loop forever on a chain that does not), here with
the source's block-cached reads. tifffile then parses the header from a file object over
the same source, and the level grids get prefetch hooks (:mod:`.prefetch`).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import IO, Any, cast

from ..errors import CorruptSlideError, UnsupportedFormatError
from ..reader.tile_grid import TileGrid
from ..tiff_structure import TIFF_MAGIC, ifd_chain_problem_in
from .fileobj import SourceFile
from .opening import take_source
from .prefetch import tiff_prefetcher, with_prefetch
from .source import ByteSource
from .urls import url_name


def open_remote_tiff(url: str, storage_options: dict[str, Any] | None) -> tuple[ByteSource, Any]:
    """(the byte source, a tifffile.TiffFile over it) of a remote TIFF; errors as for local files."""
    import tifffile

    source = take_source(url, storage_options)
    try:
        if source.read_at(0, 4) not in TIFF_MAGIC:
            raise UnsupportedFormatError(source.name, "not a TIFF file")
        problem = ifd_chain_problem_in(source.read_at, source.size)
        if problem:
            raise CorruptSlideError(source.name, problem)
        handle = cast(IO[bytes], SourceFile(source))  # a binary file object, as tifffile asks
        return source, tifffile.TiffFile(handle, name=url_name(url))
    except BaseException:
        source.close()
        raise


def prefetching_grids(grids: Sequence[TileGrid], levels: Sequence[Sequence[Any]], source: ByteSource) -> list[TileGrid]:
    """The level grids with prefetch hooks over the tile tables of each level's pages."""
    return [with_prefetch(grid, tiff_prefetcher(source, pages, grid)) for grid, pages in zip(grids, levels)]
