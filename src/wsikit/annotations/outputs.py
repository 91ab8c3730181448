"""Labels and masks in ``wsikit tile`` results (the hooks the sinks call).

With annotations (``wsikit tile --annotations FILE_OR_FOLDER``), a slide's results gain:

- ``tiles.csv``: one column ``label:<class>`` per class, the tile's area fraction of the
  class (6 significant digits); for PNG / JPEG results also ``mask_file``.
- Zarr: an array ``masks`` in ``tiles.zarr`` beside ``tiles``, shape (n, h, w), one chunk
  per tile in shards of the same tiles as ``tiles`` (same codec), mask k of tile k.
- PNG / JPEG: ``masks/<i>_<j>.png``, a lossless PNG per tile.

Encoding: bit-packed class planes, bit c of a pixel's value set when the pixel is in class
c (the order of the ``label:`` columns; also in the ``masks`` array's attributes): uint8
for up to 8 classes, uint16 up to 16 (16-bit grey PNG), uint32 / uint64 beyond (Zarr only;
PNG holds 16 bits). ``mask = (value >> c) & 1``; :func:`wsikit.dataset.unpack_masks` does it.

A folder of annotation files is matched to slides by file stem (``a.svs`` <- ``a.geojson``,
``a.xml``, ``a.png`` ...); a slide without one is tiled without labels.
"""
from __future__ import annotations

import io
import os
import shutil
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..dataset import LABEL_PREFIX, MASK_FILE_COLUMN, MASKS_ARRAY, mask_dtype, pack_masks
from .frames import TileFrames

if TYPE_CHECKING:
    from ..backends.base import SlideBackend
    from ..plan import Plan, TileSpec
    from ..sinks.writers.protocol import PendingTile, TileWriter

#: the folder of mask images in PNG / JPEG results
MASK_FOLDER = "masks"


def annotation_file_for(source: str, slide: str) -> str | None:
    """The annotation file of ``slide``: ``source`` itself when it is a file, else the file
    in the folder ``source`` whose stem is the slide's (None when there is none)."""
    from . import is_annotation_file
    from ..sinks.layout import slide_stem

    if not os.path.isdir(source):
        return source
    stem = slide_stem(slide)
    names = sorted(n for n in os.listdir(source) if is_annotation_file(n) and slide_stem(n) == stem)
    return os.path.join(source, names[0]) if names else None


def label_arguments(source: str | None, min_label: dict[str, float] | None, slide_path: str,
                    slide: SlideBackend) -> dict[str, Any]:
    """The ``annotations`` / ``min_label`` arguments of ``tile_plan`` for one slide of a run."""
    from . import read_annotations

    if source is None:
        return {}
    path = annotation_file_for(source, slide_path)
    if path is None:
        return {}
    annotations = read_annotations(path, slide_shape=slide.level_shapes[0])
    return {"annotations": annotations, "min_label": min_label}


# -- tiles.csv ---------------------------------------------------------------------------
def label_header(plan: Plan, fmt: str) -> list[str]:
    """The extra columns of tiles.csv for ``plan`` (none without labels)."""
    if plan.labels is None:
        return []
    return [LABEL_PREFIX + name for name in plan.labels.classes] + ([MASK_FILE_COLUMN] if fmt != "zarr" else [])


def label_cells(plan: Plan, fmt: str, position: int, spec: TileSpec) -> list[str]:
    """The extra cells of tiles.csv for tile ``position`` of ``plan``."""
    if plan.labels is None:
        return []
    cells = [f"{f:.6g}" for f in plan.labels.fractions[position].tolist()]
    return cells + ([mask_name(spec)] if fmt != "zarr" else [])


def mask_name(spec: TileSpec) -> str:
    """A tile's mask image, relative to the slide's folder."""
    return f"{MASK_FOLDER}/{spec.coords[0]}_{spec.coords[1]}.png"


# -- writers -----------------------------------------------------------------------------
def with_masks(writer: TileWriter, plan: Plan, folder: str, fmt: str) -> TileWriter:
    """``writer``, storing also each tile's masks when ``plan`` has labels."""
    if plan.labels is None:
        return writer
    return MaskWriter(writer, plan, folder, fmt)


class MaskWriter:
    """A TileWriter that stores the masks of every tile it stores (see the module notes);
    a tile counts as stored when its pixels and its masks are."""

    def __init__(self, inner: TileWriter, plan: Plan, folder: str, fmt: str) -> None:
        if plan.labels is None:
            raise ValueError("a MaskWriter needs a plan with labels (tile_plan(annotations=...))")
        self.inner, self.plan, self.labels, self.folder, self.format = inner, plan, plan.labels, folder, fmt
        self.passthrough, self.unit = inner.passthrough, inner.unit
        self.classes = list(self.labels.classes)
        self.dtype = mask_dtype(len(self.classes))
        self.shards: Any = None
        if fmt == "zarr":
            self.shards = self._mask_array(inner)
        else:
            if self.dtype.itemsize > 2:
                raise ValueError(f"masks of {len(self.classes)} classes do not fit a PNG (16 classes at most); "
                                 "use the zarr format")
            os.makedirs(os.path.join(folder, MASK_FOLDER), exist_ok=True)

    def _mask_array(self, inner: Any) -> Any:
        """The shard writer of the ``masks`` array, created beside ``tiles`` when missing."""
        from ..sinks.atomic import temporary_path
        from ..sinks.writers.shards import ShardedArrayWriter

        store = inner.path
        path = os.path.join(store, MASKS_ARRAY)
        count, h, w = inner.shape[:3]
        if not os.path.isdir(path):
            import zarr

            tmp = temporary_path(self.folder)
            try:
                group = zarr.create_group(store=tmp, zarr_format=3)
                group.create_array(
                    MASKS_ARRAY, shape=(count, h, w), chunks=(1, h, w), shards=(inner.shard_tiles, h, w),
                    dtype=self.dtype, fill_value=0, compressors=_codec_json(inner.codec),
                    dimension_names=("tile", "i", "j"), chunk_key_encoding={"name": "default", "separator": "/"},
                    attributes={"wsikit": {"classes": self.classes,
                                           "colors": {k: list(v) for k, v in self.labels.annotations.colors.items()},
                                           "encoding": "bit c of each value is class c (the classes' order)"}})
                try:
                    os.replace(os.path.join(tmp, MASKS_ARRAY), path)
                except OSError:
                    if not os.path.isdir(path):  # another process created it first: keep theirs
                        raise
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        class MaskShards(ShardedArrayWriter):
            """Shards of the 3-D ``masks`` array: chunk key ``c/<shard>/0/0``."""

            def shard_path(self, shard: int) -> str:
                return os.path.join(self.folder, str(shard), "0", "0")

        return MaskShards(path, count, inner.shard_tiles, inner.codec)

    def has(self, position: int, spec: TileSpec) -> bool:
        if not self.inner.has(position, spec):
            return False
        if self.shards is not None:
            return bool(self.shards.has(position))
        return os.path.isfile(os.path.join(self.folder, mask_name(spec)))

    def write_native(self, tiles: Sequence[tuple[int, TileSpec]]) -> list[int]:
        left = self.inner.write_native(tiles)
        pending = set(left)
        self._write_masks([(k, spec) for k, spec in tiles if k not in pending])
        return left

    def write_run(self, run: Sequence[PendingTile]) -> None:
        self.inner.write_run(run)
        self._write_masks([(tile.position, tile.spec) for tile in run])

    def _write_masks(self, tiles: Sequence[tuple[int, TileSpec]]) -> None:
        if not tiles:
            return
        from ..sinks.atomic import write_atomic

        positions = np.array([k for k, _ in tiles])
        specs = [spec for _, spec in tiles]
        frames = TileFrames.of_specs(specs, self.labels.level_scale)
        masks = self.labels.annotations.tile_masks(frames, self.labels.fractions[positions])
        for (k, spec), tile_masks in zip(tiles, masks):
            packed = pack_masks(tile_masks, self.classes)
            if self.shards is not None:
                self.shards.add(k, np.ascontiguousarray(packed))
            else:
                write_atomic(os.path.join(self.folder, mask_name(spec)), _png(packed))


def _codec_json(codec: Any) -> dict[str, Any]:
    """The Zarr v3 JSON of the tiles' chunk codec (the same codec compresses the masks)."""
    metadata = getattr(codec, "metadata", None)
    return dict(metadata) if isinstance(metadata, dict) else dict(codec.zarr_codec().to_dict())


def _png(packed: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(packed).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()
