"""The ``zarr`` format: a Zarr v3 group ``tiles.zarr`` whose array ``tiles`` holds tile k
as chunk k, shape (n, h, w, channels), with the slide's metadata in the group's attributes
(key ``wsikit``, see :func:`group_attributes`).

Chunks are grouped into shards of many tiles (Zarr v3 sharding; 256 tiles a shard file for
256-pixel RGB tiles, see :mod:`wsikit.sinks.writers.shards`), compressed with a fast
lossless codec (``options.codec``, Blosc LZ4 by default, see :mod:`wsikit.sinks.codecs`),
so a slide of 150,000 tiles is about 600 files, and zarr-python alone reads it back
(``zarr.open_group(path)["tiles"][k]``).

The metadata documents are written by :mod:`wsikit.sinks.writers.zarr_metadata` (what
zarr-python writes, without its import cost). Crash safety: the group's metadata is built
in a temporary folder and renamed into place,
so the store exists whole or not at all; each shard file is written under a temporary name
and renamed, so a shard that exists is whole (which is how :meth:`ZarrTileWriter.has`
knows its tiles are stored).
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ...plan import TileSpec
from ...remote.urls import display_url, is_url
from ..atomic import temporary_path, write_atomic
from ..channels import PixelLayout, channel_sizes
from ..codecs import CHUNK_CODECS
from ..jobs import TileOptions
from ..layout import MANIFEST, ZARR_STORE
from .protocol import PendingTile, TileWriter
from .shards import ShardedArrayWriter, shard_tiles_for
from .zarr_metadata import METADATA_FILE, document_bytes, group_document, read_document, sharded_array_document

if TYPE_CHECKING:
    from ...backends.base import SlideBackend

#: the name of the array inside the group
ARRAY_NAME = "tiles"
#: the names of the array's axes
DIMENSION_NAMES = ("tile", "i", "j", "channel")


def _jsonable(value: Any) -> Any:
    """Metadata as JSON data: numpy numbers as Python ones, tuples as lists, non-finite floats as None."""
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (float, np.floating)):
        number = float(value)
        return number if np.isfinite(number) else None
    return value


def group_attributes(slide: SlideBackend, options: TileOptions) -> dict[str, Any]:
    """The group's attributes: where the tiles come from and how to read them back."""
    props = dict(slide.properties)
    z, c, t = channel_sizes(slide)
    return {
        "wsikit": {
            "slide": display_url(slide.path) if is_url(slide.path) else os.path.abspath(slide.path),
            "backend": slide.name,
            "vendor": props.get("wsikit.vendor") or props.get("openslide.vendor"),
            "level_shapes": _jsonable(slide.level_shapes),
            "level_downsamples": _jsonable(slide.level_downsamples),
            "mpp": _jsonable(slide.mpp),
            "objective_power": _jsonable(slide.objective_power),
            "is_rgb": bool(slide.is_rgb),
            "dtype": str(np.dtype(slide.dtype)),
            "sizes": {"z": z, "c": c, "t": t},
            "channel_names": list(slide.channel_names) if slide.channel_names else (
                ["R", "G", "B"] if slide.is_rgb else []),
            "channels": "R, G, B" if slide.is_rgb else "z, c, t flattened: channel = (z * c_size + c) * t_size + t",
            "tile_axes": ["tile", "i", "j", "channel"],
            "options": options.as_json(),
            "manifest": MANIFEST,
            "properties": {str(k): str(v) for k, v in sorted(props.items())},
        }
    }


class ZarrTileWriter(TileWriter):
    """Tile k of the plan is chunk k of the array ``tiles`` of ``<folder>/tiles.zarr``,
    stored in shard k // shard_tiles.

    Creates the store when the folder has none; raises ValueError when the store it finds
    holds an array of another shape, chunking or codec.
    """

    passthrough = False

    def __init__(self, folder: str, tile_count: int, tile_shape: tuple[int, int], layout: PixelLayout,
                 attributes: dict[str, Any], codec: str = "lz4") -> None:
        self.path = os.path.join(folder, ZARR_STORE)
        h, w = tile_shape
        channels, dtype = layout
        self.shape = (tile_count, h, w, channels)
        self.chunk_shape = (1, h, w, channels)
        self.shard_tiles = shard_tiles_for(h * w * channels * np.dtype(dtype).itemsize)
        self.codec = CHUNK_CODECS[codec]
        if not os.path.isdir(self.path):
            self._create(folder, dtype, attributes)
        self._check_existing(dtype)
        self.unit = self.shard_tiles
        self.tiles = ShardedArrayWriter(os.path.join(self.path, ARRAY_NAME), tile_count, self.shard_tiles, self.codec)

    def _document(self, dtype: np.dtype) -> dict[str, Any]:
        return sharded_array_document(self.shape, self.chunk_shape, (self.shard_tiles,) + self.chunk_shape[1:],
                                      dtype, self.codec.metadata, DIMENSION_NAMES)

    def _create(self, folder: str, dtype: np.dtype, attributes: dict[str, Any]) -> None:
        tmp = temporary_path(folder)
        os.makedirs(os.path.join(tmp, ARRAY_NAME))
        try:
            write_atomic(os.path.join(tmp, METADATA_FILE), document_bytes(group_document(attributes)))
            write_atomic(os.path.join(tmp, ARRAY_NAME, METADATA_FILE), document_bytes(self._document(dtype)))
            os.replace(tmp, self.path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def _check_existing(self, dtype: np.dtype) -> None:
        """The store found must be the one this writer writes (shards are written without
        zarr, so their layout must be what the metadata says)."""
        found = read_document(os.path.join(self.path, ARRAY_NAME, METADATA_FILE))
        if found is None:
            raise ValueError(f"{self.path} holds no readable array {ARRAY_NAME}")
        expected = self._document(dtype)
        if found != expected:
            keys = sorted(k for k in expected if found.get(k) != expected[k])
            raise ValueError(f"{self.path} holds an array whose {', '.join(keys)} differ from what this run writes "
                             f"(shape {found.get('shape')}, expected {expected['shape']})")

    def has(self, position: int, spec: TileSpec) -> bool:
        """Whether the shard holding tile ``position`` is stored."""
        return self.tiles.has(position)

    def write_native(self, tiles: Sequence[tuple[int, TileSpec]]) -> list[int]:
        """Every tile needs its pixels here."""
        return [position for position, _ in tiles]

    def write_run(self, run: Sequence[PendingTile]) -> None:
        """Compress the run's tiles on this thread; a shard completed by them is written."""
        for tile in run:
            self.tiles.add(tile.position, tile.image)
