"""Checked polygons from the coordinates an annotation file gives, and the error for bad files.

Every reader hands its rings here as float arrays of (x, y) = (column, row) in level-0
pixels, already converted to wsikit's convention (the point (0, 0) is the top-left corner
of the top-left pixel; pixel (x, y) covers [x, x + 1) x [y, y + 1)). What is refused,
each with an :class:`AnnotationError` naming the file and the feature:

- a coordinate that is not a finite number (NaN, infinity);
- a ring with fewer than three distinct points, or a polygon of zero area;
- a self-intersecting polygon (shapely's validity test), unless ``repair=True``, which
  mends it with ``shapely.make_valid`` and keeps the polygonal part;
- more vertices in one file than ``max_vertices`` (default :data:`MAX_VERTICES`).
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..errors import SlideError

if TYPE_CHECKING:
    from shapely import Geometry

#: the class of a feature that names none
DEFAULT_CLASS = "unclassified"
#: the most vertices one annotation file may hold (10 million polygons' worth of points
#: take 160 MB as coordinates; the limit keeps a hostile file from taking all memory)
MAX_VERTICES = 20_000_000

class AnnotationError(SlideError):
    """An annotation file could not be read: ``path`` names the file, ``reason`` the feature
    and the problem."""


class VertexBudget:
    """Counts the vertices a reader has taken from one file and refuses more than the limit."""

    def __init__(self, path: str | os.PathLike[str] | None, limit: int | None) -> None:
        self.path, self.limit, self.used = path, MAX_VERTICES if limit is None else int(limit), 0

    def take(self, count: int, where: str) -> None:
        self.used += int(count)
        if self.used > self.limit:
            raise AnnotationError(self.path, f"{where}: the file holds more than {self.limit:,} vertices "
                                             "(pass max_vertices= to read_annotations to allow more)")


def ring_array(values: object, path: str | os.PathLike[str] | None, where: str) -> np.ndarray:
    """(n, 2) float64 (x, y) of a ring from any nested sequence of numbers or an array;
    extra coordinates (z) are dropped."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise AnnotationError(path, f"{where}: coordinates are not numbers ({exc})") from None
    if array.ndim != 2 or array.shape[1] < 2:
        raise AnnotationError(path, f"{where}: a ring must be a list of [x, y] points, got an array of shape "
                                    f"{array.shape}")
    return np.ascontiguousarray(array[:, :2])


def make_polygon(shell: np.ndarray, holes: Sequence[np.ndarray], path: str | os.PathLike[str] | None,
                 where: str, repair: bool = False) -> Geometry:
    """A valid shapely Polygon (or, repaired, MultiPolygon) of ``shell`` and ``holes``."""
    import shapely

    rings = [shell, *holes]
    for k, ring in enumerate(rings):
        name = "outer ring" if k == 0 else f"hole {k}"
        if not np.isfinite(ring).all():
            bad = int(np.flatnonzero(~np.isfinite(ring).all(axis=1))[0])
            raise AnnotationError(path, f"{where}: {name} has a coordinate that is not a finite number "
                                        f"(point {bad}: {ring[bad].tolist()})")
        # A ring of 3 points counts even when they are in a line: the area test below
        # refuses it with its own reason.
        if len(ring) < 3 or (len(ring) == 3 and (ring[0] == ring[2]).all()):
            raise AnnotationError(path, f"{where}: {name} is empty or has fewer than 3 distinct points")
    polygon = shapely.Polygon(shell, holes or None)
    if shapely.is_valid(polygon):
        if not polygon.area > 0:  # never for a valid polygon; kept for degenerate input GEOS accepts
            raise AnnotationError(path, f"{where}: the polygon has zero area")
        return polygon
    if shapely.convex_hull(polygon).area == 0:
        raise AnnotationError(path, f"{where}: the polygon has zero area (its points lie on a line)")
    if not repair:
        raise AnnotationError(path, f"{where}: invalid polygon ({shapely.is_valid_reason(polygon)}); "
                                    "pass repair=True to mend it with shapely.make_valid")
    mended = polygonal_part(shapely.make_valid(polygon))
    if mended is None:
        raise AnnotationError(path, f"{where}: the polygon has no area once its self-intersections are mended")
    return mended


def polygonal_part(geometry: Geometry) -> Geometry | None:
    """The polygons of a geometry (a collection's lines and points dropped), or None."""
    import shapely

    parts = shapely.get_parts(geometry)
    polygons = [p for p in parts if shapely.get_type_id(p) in (3, 6) and p.area > 0]
    if not polygons:
        return None
    return polygons[0] if len(polygons) == 1 else shapely.MultiPolygon(
        [q for p in polygons for q in shapely.get_parts(p)])


def rectangle(x0: float, y0: float, x1: float, y1: float, path: str | os.PathLike[str] | None,
              where: str) -> Geometry:
    """The rectangle between two corners (either order), checked like any polygon."""
    ring = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)
    return make_polygon(ring, [], path, where)
