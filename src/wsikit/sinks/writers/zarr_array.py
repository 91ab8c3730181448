"""The ``zarr`` format: a Zarr v3 group ``tiles.zarr`` whose array ``tiles`` holds tile k
as chunk k, shape (n, h, w, channels), with the slide's metadata in the group's attributes
(key ``wsikit``, see :func:`group_attributes`).

Chunks are grouped into shards of many tiles (Zarr v3 sharding; 256 tiles a shard file for
256-pixel RGB tiles, see :mod:`wsikit.sinks.writers.shards`), compressed with a fast
lossless codec (``options.codec``, Blosc LZ4 by default, see :mod:`wsikit.sinks.codecs`),
so a slide of 150,000 tiles is about 600 files, and zarr-python alone reads it back
(``zarr.open_group(path)["tiles"][k]``).

Crash safety: the group's metadata is built in a temporary folder and renamed into place,
so the store exists whole or not at all; each shard file is written under a temporary name
and renamed, so a shard that exists is whole (which is how :meth:`ZarrTileWriter.has`
knows its tiles are stored).
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ...plan import TileSpec
from ..atomic import temporary_path
from ..channels import PixelLayout, channel_sizes
from ..codecs import CHUNK_CODECS
from ..jobs import TileOptions
from ..layout import MANIFEST, ZARR_STORE
from .protocol import PendingTile, TileWriter
from .shards import ShardedArrayWriter, shard_tiles_for

if TYPE_CHECKING:
    from ...backends.base import SlideBackend

#: the name of the array inside the group
ARRAY_NAME = "tiles"


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
            "slide": os.path.abspath(slide.path),
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
        self._check_existing()
        self.unit = self.shard_tiles
        self.tiles = ShardedArrayWriter(os.path.join(self.path, ARRAY_NAME), tile_count, self.shard_tiles, self.codec)

    def _create(self, folder: str, dtype: np.dtype, attributes: dict[str, Any]) -> None:
        import zarr

        tmp = temporary_path(folder)
        group = zarr.create_group(store=tmp, zarr_format=3, attributes=attributes)
        group.create_array(
            ARRAY_NAME, shape=self.shape, chunks=self.chunk_shape, shards=(self.shard_tiles,) + self.chunk_shape[1:],
            dtype=dtype, fill_value=0, compressors=self.codec.zarr_codec(),
            dimension_names=("tile", "i", "j", "channel"),
            chunk_key_encoding={"name": "default", "separator": "/"},
        )
        os.replace(tmp, self.path)

    def _check_existing(self) -> None:
        """The store found must be the one this writer writes (shard files are written
        without zarr, so their layout must be what the metadata says)."""
        import zarr

        array = zarr.open_group(self.path, mode="r")[ARRAY_NAME]
        if not isinstance(array, zarr.Array):
            raise ValueError(f"{self.path}: {ARRAY_NAME} is a group, expected an array")
        found = (array.shape, array.chunks, array.shards)
        expected = (self.shape, self.chunk_shape, (self.shard_tiles,) + self.chunk_shape[1:])
        if found != expected:
            raise ValueError(f"{self.path} holds an array of shape, chunks and shards {found}, expected {expected}")
        metadata: Any = array.metadata.to_dict()  # JSON: the sharding codec's inner codecs
        codecs = metadata["codecs"][0]["configuration"]["codecs"]
        if codecs[-1] != self.codec.zarr_codec().to_dict():
            raise ValueError(f"{self.path} holds chunks compressed with {codecs[-1]}, expected {self.codec.name}")

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
