"""The region of one class, as polygons or as the pixels of a label image, with the two
things tiling asks of it: exact area fractions of boxes, and masks of tile pixels.

Polygons (:class:`PolygonRegion`): the class's polygons are united once (shapely
``union_all``: overlaps count once, holes stay holes) and the union is cut into pieces of
at most :data:`PIECE_VERTICES` vertices (``clip_by_rect`` halves), indexed by an STRtree,
so that the work for a tile is proportional to the boundary near it, not to the
size of the polygons. Fractions are exact intersection areas (a piece wholly inside a box
adds its own area, one wholly containing it the box's, others are clipped).

Label images (:class:`LabelRegion`): level-0 pixel (x, y) has the value of label pixel
(floor(y / d_i), floor(x / d_j)); a class is the union of its label pixels' squares
(outside the image: no class). Fractions are exact areas of those squares in the box,
from a summed-area table interpolated bilinearly (exact for a piecewise-constant image).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from . import scanline
from .frames import TileFrames

if TYPE_CHECKING:
    from shapely import Geometry, STRtree

#: pieces of a united region hold at most this many vertices
PIECE_VERTICES = 64


class PolygonRegion:
    """A class's polygons: ``geometry`` is their union (a valid Polygon or MultiPolygon)."""

    def __init__(self, geometry: Geometry) -> None:
        import shapely

        self.geometry = geometry
        shapely.prepare(geometry)
        self.pieces = _cut(geometry)
        self.edges, self.starts = scanline.ring_edges(self.pieces)
        self.areas = shapely.area(self.pieces)
        self.bounds = shapely.bounds(self.pieces)  # (n, 4) x0, y0, x1, y1
        self._tree: STRtree | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_tree"] = None  # rebuilt on first use: an STRtree does not pickle
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        import shapely

        self.__dict__.update(state)
        shapely.prepare(self.geometry)

    @property
    def tree(self) -> STRtree:
        if self._tree is None:
            import shapely

            self._tree = shapely.STRtree(self.pieces)
        return self._tree

    def candidates(self, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(box index, piece index) of the pieces whose bounds meet each box's."""
        import shapely

        found = self.tree.query(shapely.box(boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]))
        return found[0], found[1]

    def areas_in(self, boxes: np.ndarray) -> np.ndarray:
        """(n,) exact area of the region inside each (x0, y0, x1, y1) box."""
        import shapely

        box_of, piece = self.candidates(boxes)
        b, pb = boxes[box_of], self.bounds[piece]
        inside = (pb[:, 0] >= b[:, 0]) & (pb[:, 1] >= b[:, 1]) & (pb[:, 2] <= b[:, 2]) & (pb[:, 3] <= b[:, 3])
        area = np.where(inside, self.areas[piece], 0.0)
        rest = np.flatnonzero(~inside)
        if len(rest):
            box_geoms = shapely.box(b[rest, 0], b[rest, 1], b[rest, 2], b[rest, 3])
            covering = shapely.contains_properly(self.pieces[piece[rest]], box_geoms)
            area[rest[covering]] = shapely.area(box_geoms[covering])
            clip = rest[~covering]
            area[clip] = shapely.area(_clip_by_rects(self.pieces[piece[clip]], b[clip]))
        return np.bincount(box_of, area, minlength=len(boxes))

    def __repr__(self) -> str:
        return f"PolygonRegion({len(self.pieces)} pieces, {len(self.edges)} edges)"


def _clip_by_rects(pieces: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """``pieces[k]`` clipped to ``boxes[k]`` (x0, y0, x1, y1): GEOS's rectangle clipping, one
    call for all (shapely's ufunc takes arrays of rectangles; its public wrapper only one)."""
    import shapely

    x0, y0, x1, y1 = (np.ascontiguousarray(boxes[:, k]) for k in range(4))
    try:
        return np.asarray(shapely.lib.clip_by_rect(pieces, x0, y0, x1, y1))
    except (AttributeError, TypeError):  # a shapely whose ufunc is not there or takes scalars only
        return np.array([shapely.clip_by_rect(p, *box) for p, box in zip(pieces, boxes.tolist())], dtype=np.object_)


def _cut(geometry: Geometry) -> np.ndarray:
    """The polygons of ``geometry`` cut in halves by horizontal lines until each has at most
    PIECE_VERTICES vertices (more for a region of over PIECE_VERTICES * 2048 vertices).

    Horizontal cuts only: the cut edges are horizontal, and a horizontal edge crosses no
    row of pixel centres, so the pieces cost the scanline nothing extra."""
    import shapely

    done: list[np.ndarray] = []
    todo = shapely.get_parts(geometry)
    # Huge regions get larger pieces: a few thousand of them, so that cutting stays quick.
    limit = max(PIECE_VERTICES, int(shapely.get_num_coordinates(geometry)) // 2048)
    while len(todo):
        bounds = shapely.bounds(todo)
        big = (shapely.get_num_coordinates(todo) > limit) & (bounds[:, 3] - bounds[:, 1] > 1e-6)
        done.append(todo[~big])
        parts, b = todo[big], bounds[big]
        middle = (b[:, 1] + b[:, 3]) / 2
        upper = np.stack([b[:, 0], b[:, 1], b[:, 2], middle], axis=1)
        lower = np.stack([b[:, 0], middle, b[:, 2], b[:, 3]], axis=1)
        halves = shapely.get_parts(_clip_by_rects(np.concatenate([parts, parts]), np.concatenate([upper, lower])))
        todo = halves[(shapely.get_type_id(halves) == 3) & (shapely.area(halves) > 0)]
    return np.concatenate(done) if done else np.array([], dtype=np.object_)


class LabelRegion:
    """The pixels of one value of a label image; ``downsample`` (d_i, d_j) is level-0 pixels
    per label pixel."""

    def __init__(self, image: np.ndarray, value: int, downsample: tuple[float, float]) -> None:
        self.image, self.value = image, int(value)
        self.downsample = (float(downsample[0]), float(downsample[1]))
        hit = (image == value).astype(np.float64)
        # Summed-area table with a zero row and column in front: table[i, j] = hits above-left.
        self.table = np.zeros((hit.shape[0] + 1, hit.shape[1] + 1))
        self.table[1:, 1:] = hit.cumsum(0).cumsum(1)

    def __getstate__(self) -> dict[str, Any]:
        return {"image": self.image, "value": self.value, "downsample": self.downsample}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["image"], state["value"], state["downsample"])  # type: ignore[misc]

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        return (0.0, 0.0, self.image.shape[1] * self.downsample[1], self.image.shape[0] * self.downsample[0])

    def _integral(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Area (in label pixels) of the class above-left of label coordinates (u, v)."""
        t = self.table
        u = np.clip(u, 0, t.shape[0] - 1)
        v = np.clip(v, 0, t.shape[1] - 1)
        a, b = np.minimum(np.floor(u).astype(np.int64), t.shape[0] - 2), np.minimum(np.floor(v).astype(np.int64),
                                                                                    t.shape[1] - 2)
        a, b = np.maximum(a, 0), np.maximum(b, 0)
        s, r = u - a, v - b
        return ((1 - s) * (1 - r) * t[a, b] + s * (1 - r) * t[a + 1, b] + (1 - s) * r * t[a, b + 1]
                + s * r * t[a + 1, b + 1])

    def areas_in(self, boxes: np.ndarray) -> np.ndarray:
        """(n,) exact level-0 area of the class inside each (x0, y0, x1, y1) box."""
        di, dj = self.downsample
        u0, v0, u1, v1 = boxes[:, 1] / di, boxes[:, 0] / dj, boxes[:, 3] / di, boxes[:, 2] / dj
        f = self._integral
        return (f(u1, v1) - f(u0, v1) - f(u1, v0) + f(u0, v0)) * di * dj

    def masks(self, frames: TileFrames, tiles: np.ndarray) -> np.ndarray:
        """(len(tiles), h, w) bool: the label pixel under each tile pixel's centre is the value."""
        h, w = frames.shape
        di, dj = self.downsample
        out = np.zeros((len(tiles), h, w), dtype=bool)
        rows, cols = np.arange(h), np.arange(w)
        for k, t in enumerate(tiles.tolist()):
            at = np.array([t])
            li = np.floor(frames.row_centres(at, rows) / di).astype(np.int64)
            lj = np.floor(frames.column_centres(at, cols) / dj).astype(np.int64)
            oki = (li >= 0) & (li < self.image.shape[0])
            okj = (lj >= 0) & (lj < self.image.shape[1])
            patch = self.image[np.clip(li, 0, self.image.shape[0] - 1)][:, np.clip(lj, 0, self.image.shape[1] - 1)]
            out[k] = (patch == self.value) & oki[:, None] & okj[None, :]
        return out

    def __repr__(self) -> str:
        return f"LabelRegion(value {self.value} of a {self.image.shape} label image, downsample {self.downsample})"


Region = PolygonRegion | LabelRegion
