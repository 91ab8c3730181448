"""Tile writers: one per storage format, each a :class:`TileWriter`.

``zarr`` -> :class:`ZarrTileWriter` (one Zarr array in shards of many tiles), ``png`` /
``jpeg`` -> :class:`ImageTileWriter` (one image file per tile; jpeg passes native JPEG
tiles through, :class:`NativeJpegTiles`). :func:`open_writer` picks the writer
of a job's format; a new format is a new module here and one more branch there.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..channels import PixelLayout
from ..jobs import TileOptions
from .image_files import IMAGE_CHANNELS, ImageTileWriter
from .passthrough import NativeJpegTiles
from .protocol import PendingTile, TileWriter
from .zarr_array import ZarrTileWriter, group_attributes

if TYPE_CHECKING:
    from ...backends.base import SlideBackend


def open_writer(folder: str, options: TileOptions, tile_count: int, layout: PixelLayout,
                slide: SlideBackend) -> TileWriter:
    """The writer of ``options.format`` for a plan of ``tile_count`` tiles of ``slide``,
    storing into ``folder`` (created by the caller); it finds tiles an earlier run stored."""
    if options.format == "zarr":
        return ZarrTileWriter(folder, tile_count, options.shape, layout, group_attributes(slide, options),
                              codec=options.codec)
    native = NativeJpegTiles(slide) if options.format == "jpeg" and options.passthrough else None
    return ImageTileWriter(folder, options, native)


__all__ = ["IMAGE_CHANNELS", "ImageTileWriter", "NativeJpegTiles", "PendingTile", "TileWriter", "ZarrTileWriter",
           "group_attributes", "open_writer"]
