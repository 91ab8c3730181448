"""The ``zarr`` format: a Zarr v3 group ``tiles.zarr`` whose array ``tiles`` holds tile k
as chunk k, shape (n, h, w, channels), Zstandard level 3, with the slide's metadata in
the group's attributes (key ``wsikit``, see :func:`group_attributes`).

Crash safety: the group's metadata is built in a temporary folder and renamed into place,
so the store exists whole or not at all; Zarr (>= 3.1.3) writes each chunk file under a
temporary name and renames it, so a chunk file that exists is whole. Empty chunks are
written too, so that every stored tile has its file (which is how :meth:`ZarrTileWriter.has`
knows it).
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ...plan import TileSpec
from ..atomic import temporary_path
from ..channels import PixelLayout, channel_sizes
from ..jobs import TileOptions
from ..layout import MANIFEST, ZARR_STORE
from .protocol import PendingTile, TileWriter

if TYPE_CHECKING:
    from ...backends.base import SlideBackend

#: the name of the array inside the group
ARRAY_NAME = "tiles"
#: Zstandard compression level of the chunks
ZSTD_LEVEL = 3


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
    """Tile k of the plan is chunk k of the array ``tiles`` of ``<folder>/tiles.zarr``.

    Creates the store when the folder has none; raises ValueError when the store it finds
    holds an array of another shape.
    """

    def __init__(self, folder: str, tile_count: int, tile_shape: tuple[int, int], layout: PixelLayout,
                 attributes: dict[str, Any]) -> None:
        import zarr
        from zarr.codecs import ZstdCodec
        from zarr.core.array_spec import ArrayConfigParams

        self.path = os.path.join(folder, ZARR_STORE)
        h, w = tile_shape
        channels, dtype = layout
        shape = (tile_count, h, w, channels)
        if not os.path.isdir(self.path):
            # Every chunk is written, even one of zeros: a tile stored is a chunk file there.
            # (zarr declares the TypedDict's optional keys with typing.NotRequired, which
            # Python 3.10, mypy's target here, lacks: mypy then takes every key as required.)
            config: ArrayConfigParams = {"write_empty_chunks": True}  # type: ignore[typeddict-item]
            tmp = temporary_path(folder)
            group = zarr.create_group(store=tmp, zarr_format=3, attributes=attributes)
            group.create_array(
                ARRAY_NAME, shape=shape, chunks=(1, h, w, channels), dtype=dtype, fill_value=0,
                compressors=ZstdCodec(level=ZSTD_LEVEL), dimension_names=("tile", "i", "j", "channel"),
                chunk_key_encoding={"name": "default", "separator": "/"},
                config=config,
            )
            os.replace(tmp, self.path)
        array = zarr.open_group(self.path, mode="r+")[ARRAY_NAME]
        if not isinstance(array, zarr.Array):
            raise ValueError(f"{self.path}: {ARRAY_NAME} is a group, expected an array")
        self.array = array
        if self.array.shape != shape:
            raise ValueError(f"{self.path} holds an array of shape {self.array.shape}, expected {shape}")

    def has(self, position: int, spec: TileSpec) -> bool:
        """Whether chunk ``position``'s file exists (the chunk key ``c/<position>/0/0/0``)."""
        return os.path.isfile(os.path.join(self.path, ARRAY_NAME, "c", str(position), "0", "0", "0"))

    def write_run(self, run: Sequence[PendingTile]) -> None:
        """Write the run's tiles as one slab of chunks (one tile as one chunk)."""
        first = run[0].position
        if len(run) == 1:
            self.array[first] = run[0].image
        else:
            self.array[first : first + len(run)] = np.stack([tile.image for tile in run])
