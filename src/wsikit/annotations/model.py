"""Annotations: named classes, each a region of the slide in level-0 pixels, with a colour.

The object tiling is given (``generate_tiles(annotations=...)``) and what
:func:`~wsikit.annotations.read_annotations` returns. Classes may overlap; within a class,
overlapping polygons count once. ``fractions`` gives exact area fractions of boxes and
``tile_masks`` the masks of tiles (a pixel is in a class when its centre is inside the
class's region; see :mod:`wsikit.annotations.frames` for where a tile's pixels lie).
"""
from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from . import scanline
from .frames import TileFrames
from .regions import LabelRegion, PolygonRegion, Region

if TYPE_CHECKING:
    from shapely import Geometry

#: colours given to classes whose file names none (RGB), in order
PALETTE = ((230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
           (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (170, 110, 40))


def _union(shapes: list[Geometry]) -> Geometry:
    """The union of valid (multi)polygons: their parts as they are when no two of them meet
    (the common case, and much quicker), else shapely's ``union_all``."""
    import shapely

    parts = shapely.get_parts(np.asarray(shapes, dtype=np.object_))
    if len(parts) == 1:
        return parts[0]
    pairs = shapely.STRtree(parts).query(parts, predicate="intersects")
    if not (pairs[0] != pairs[1]).any():
        return shapely.MultiPolygon(list(parts))
    return shapely.union_all(parts)


@functools.lru_cache(maxsize=16)
def _constant_mask(value: bool, h: int, w: int) -> np.ndarray:
    """A read-only (h, w) bool array all ``value``, shared by every tile mask that is."""
    mask = np.full((h, w), value, dtype=bool)
    mask.flags.writeable = False
    return mask


class Annotations:
    """Classes of a slide: ``classes`` (names, in file order), ``regions`` (name -> region),
    ``colors`` (name -> (r, g, b)), ``source`` (the file read, or None)."""

    def __init__(self, regions: Mapping[str, Region], colors: Mapping[str, tuple[int, int, int]] | None = None,
                 source: str | os.PathLike[str] | None = None) -> None:
        self.regions: dict[str, Region] = dict(regions)
        given = dict(colors or {})
        self.colors: dict[str, tuple[int, int, int]] = {
            name: tuple(int(c) for c in given.get(name, PALETTE[k % len(PALETTE)]))  # type: ignore[misc]
            for k, name in enumerate(self.regions)}
        self.source = None if source is None else os.fspath(source)
        self._edge_cache: tuple[np.ndarray, np.ndarray, dict[str, int]] | None = None

    @classmethod
    def from_polygons(cls, polygons: Mapping[str, Iterable[Geometry]],
                      colors: Mapping[str, tuple[int, int, int]] | None = None,
                      source: str | os.PathLike[str] | None = None) -> Annotations:
        """Annotations of shapely (Multi)Polygons per class, in level-0 pixels (x = column,
        y = row, (0, 0) the top-left corner of the top-left pixel). They must be valid."""
        import shapely

        regions: dict[str, Region] = {}
        for name, shapes in polygons.items():
            shapes = list(shapes)
            if not shapes:
                continue
            bad = [k for k, s in enumerate(shapes) if shapely.get_type_id(s) not in (3, 6) or not shapely.is_valid(s)]
            if bad:
                raise ValueError(f"class {name!r}: shape {bad[0]} is not a valid Polygon or MultiPolygon")
            regions[str(name)] = PolygonRegion(_union(shapes))
        return cls(regions, colors, source)

    @classmethod
    def from_label_image(cls, image: np.ndarray, classes: Mapping[int, str] | None = None,
                         downsample: float | tuple[float, float] = 1.0,
                         colors: Mapping[str, tuple[int, int, int]] | None = None,
                         source: str | os.PathLike[str] | None = None) -> Annotations:
        """Annotations of an integer label image whose pixel (i, j) covers level-0
        [i * d_i, (i + 1) * d_i) x [j * d_j, (j + 1) * d_j), d = ``downsample``.
        ``classes`` maps values to class names (default: every non-zero value, named by its
        number); values not in it are background."""
        image = np.asarray(image)
        if image.ndim != 2 or image.dtype.kind not in "uib":
            raise ValueError(f"a label image must be a 2-D integer array, got {image.dtype} of shape {image.shape}")
        d = (float(downsample), float(downsample)) if isinstance(downsample, (int, float)) else (
            float(downsample[0]), float(downsample[1]))
        if not (min(d) > 0 and np.isfinite(d).all()):
            raise ValueError(f"downsample must be positive, got {downsample!r}")
        if classes is None:
            classes = {int(v): str(int(v)) for v in np.unique(image) if v != 0}
        regions: dict[str, Region] = {str(name): LabelRegion(image, int(value), d) for value, name in classes.items()}
        return cls(regions, colors, source)

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.regions)

    def __len__(self) -> int:
        return len(self.regions)

    def geometry(self, name: str) -> Geometry | None:
        """The united polygons of class ``name`` (None for a label-image class)."""
        region = self.regions[name]
        return region.geometry if isinstance(region, PolygonRegion) else None

    def fractions(self, boxes: np.ndarray) -> np.ndarray:
        """(n, classes) fraction of each level-0 box (x0, y0, x1, y1) covered by each class."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        out = np.zeros((len(boxes), len(self.regions)))
        for k, region in enumerate(self.regions.values()):
            if len(boxes):
                with np.errstate(invalid="ignore", divide="ignore"):
                    out[:, k] = np.clip(region.areas_in(boxes) / area, 0.0, 1.0)
        return np.nan_to_num(out)

    def tile_masks(self, frames: TileFrames, fractions: np.ndarray | None = None) -> list[dict[str, np.ndarray]]:
        """The masks of each tile of ``frames``: class -> (h, w) bool. ``fractions`` (from
        :meth:`fractions` of the same boxes) lets classes absent from a tile skip the work.

        The polygon classes of all tiles are filled in one pass (:func:`scanline.fill`); a
        tile outside a class is all False without it. A mask all False, or all True for a
        tile wholly inside a class, is one shared read-only array (per tile shape), not a
        fresh one: most tiles of a slide are wholly outside most classes, and 64 KB per tile
        and class cost more than the rest of the work (copy a mask before writing into it)."""
        if fractions is None:
            fractions = self.fractions(frames.boxes())
        h, w = frames.shape
        boxes = frames.boxes()
        out: list[dict[str, np.ndarray]] = [{} for _ in range(len(frames))]
        edges, starts, first_piece = self._edges()
        pair_piece: list[np.ndarray] = []
        pair_slot: list[np.ndarray] = []
        slot_tile: list[int] = []
        slot_full: list[np.ndarray] = []  # per slot: the tile wholly covered by area
        slot_name: list[str] = []
        slot_geometry: list[Geometry] = []
        for k, (name, region) in enumerate(self.regions.items()):
            touched = fractions[:, k] > 0
            if isinstance(region, LabelRegion):
                present = np.flatnonzero(touched)
                for t, mask in zip(present.tolist(), region.masks(frames, present)):
                    out[t][name] = mask
                continue
            present = np.flatnonzero(touched)
            if not len(present):
                continue
            box_of, piece = region.candidates(boxes[present])
            pair_piece.append(piece + first_piece[name])
            pair_slot.append(box_of + len(slot_tile))
            slot_tile.extend(present.tolist())
            slot_full.append(fractions[present, k] >= 1.0)
            slot_name.extend([name] * len(present))
            slot_geometry.extend([region.geometry] * len(present))
        if slot_tile:
            slot_full_flags = np.concatenate(slot_full)
            masks = scanline.fill(edges, starts, np.concatenate(pair_piece), np.concatenate(pair_slot),
                                  np.array(slot_tile), frames, slot_geometry)
            # Tiles wholly covered by area are filled too (quicker than asking GEOS whether the
            # box is in the region's interior); those whose pixels all are share one mask.
            whole = np.flatnonzero(slot_full_flags)
            all_true = np.zeros(len(slot_tile), dtype=bool)
            if len(whole):
                all_true[whole] = masks[whole].reshape(len(whole), -1).all(axis=1)
            inside = _constant_mask(True, h, w)
            for t, name, mask, shared in zip(slot_tile, slot_name, masks, all_true.tolist()):
                out[t][name] = inside if shared else mask
        empty = _constant_mask(False, h, w)
        return [{name: m.get(name, empty) for name in self.regions} for m in out]  # in class order

    def _edges(self) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
        """The polygon classes' edges and piece offsets together, so that one fill does all."""
        if self._edge_cache is None:
            polygons = {n: r for n, r in self.regions.items() if isinstance(r, PolygonRegion)}
            first: dict[str, int] = {}
            edges, starts, count, offset = [], [np.zeros(1, np.int64)], 0, 0
            for name, region in polygons.items():
                first[name] = count
                edges.append(region.edges)
                starts.append(region.starts[1:] + offset)
                count += len(region.pieces)
                offset += len(region.edges)
            self._edge_cache = (np.concatenate(edges) if edges else np.zeros((0, 4)), np.concatenate(starts), first)
        return self._edge_cache

    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        state["_edge_cache"] = None  # rebuilt where needed
        return state

    def masks_of(self, specs: Sequence[object], level_scale: tuple[float, float]) -> list[dict[str, np.ndarray]]:
        """Masks of TileSpecs (one shape, one level whose ``slide.level_scale`` is ``level_scale``)."""
        return self.tile_masks(TileFrames.of_specs(specs, level_scale))

    def __repr__(self) -> str:
        where = f" from {self.source}" if self.source else ""
        return f"Annotations({', '.join(map(repr, self.classes))}{where})"
