"""GeoJSON annotations, as QuPath exports them.

Accepted: a FeatureCollection, a list of Features, one Feature, or a bare geometry. Areas
are Polygon and MultiPolygon (holes included; a GeometryCollection is searched for them);
Point, MultiPoint, LineString and MultiLineString have no area and are skipped with a
warning; any other type is an error. A feature's class is ``properties.classification.name``
(QuPath), else ``properties.name``, else :data:`~wsikit.annotations.shapes.DEFAULT_CLASS`;
its colour ``properties.classification.color`` ([r, g, b]) or ``colorRGB`` (QuPath's packed
integer).

Coordinates: QuPath writes image pixels with x = column, y = row and (0, 0) the top-left
corner of the top-left pixel, which is wsikit's convention: they are taken as they are.

Large files: each ring's points are cut out of the text and parsed as flat lists of about
a million numbers at a time into numpy arrays before the rest goes to the ``json`` module,
so a polygon of millions of vertices costs 16 bytes a vertex (plus the text) instead of a
Python list and two floats per point.
"""
from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..limits import check_allocation
from .model import Annotations
from .shapes import DEFAULT_CLASS, AnnotationError, VertexBudget, make_polygon, ring_array

# The start of a ring: two brackets and a number (the innermost array of arrays), and its
# end: the first two closing brackets after it (points hold no brackets).
_RING_START = re.compile(r"\[\s*\[\s*[-+0-9.NI]")
_RING_END = re.compile(r"\]\s*\]")
_NOT_RING = re.compile(r"[^-+0-9.eE\s,\[\]NaIinfty]")
_NO_BRACKETS = str.maketrans("[]", "  ")
_RING_KEY = "__wsikit_ring__"
# Numbers parsed by the json module at once: a flat list of this many floats at a time.
_NUMBERS_AT_ONCE = 1 << 20
_NO_AREA = {"Point", "MultiPoint", "LineString", "MultiLineString"}


def read_geojson(path: str | os.PathLike[str], *, default_class: str = DEFAULT_CLASS, repair: bool = False,
                 max_vertices: int | None = None) -> Annotations:
    """The annotations of a GeoJSON file (see the module notes)."""
    budget = VertexBudget(path, max_vertices)
    try:
        size = os.path.getsize(path)
        check_allocation((size,), 4, "annotation file", os.fspath(path))  # text and parsed numbers together
        with open(path, encoding="utf-8-sig") as f:
            text = f.read()
    except UnicodeDecodeError as exc:
        raise AnnotationError(path, f"not a GeoJSON file (not UTF-8 text: {exc.reason})") from None
    rings: list[np.ndarray] = []
    try:
        reduced = _cut_rings(text, rings, budget)
        del text
        data = json.loads(reduced)
    except ValueError as exc:
        raise AnnotationError(path, f"not valid JSON: {exc}") from None
    except RecursionError:
        raise AnnotationError(path, "not valid JSON: nested too deeply") from None
    return _annotations(data, rings, os.fspath(path), default_class, repair, budget)


def _cut_rings(text: str, rings: list[np.ndarray], budget: VertexBudget) -> str:
    """``text`` with each ring of numbers replaced by ``{"__wsikit_ring__": k}``, rings[k]
    its (n, 2) points; rings that are not plain [[x, y], ...] arrays are left in place."""
    parts: list[str] = []
    done = 0
    position = 0
    while match := _RING_START.search(text, position):
        start = match.start()
        end_match = _RING_END.search(text, start)
        if end_match is None:
            break
        end = end_match.end()
        k = start - 1
        while k >= 0 and text[k] in " \t\r\n":
            k -= 1
        before = text[k] if k >= 0 else ""
        points = _ring_points(text[start:end], budget, len(rings)) if before in ("[", ",") else None
        if points is not None:
            parts.append(text[done:start])
            parts.append(f'{{"{_RING_KEY}": {len(rings)}}}')
            rings.append(points)
            done = end
        position = end
    parts.append(text[done:])
    return "".join(parts)


def _ring_points(body: str, budget: VertexBudget, index: int) -> np.ndarray | None:
    """The (n, 2) points of ``[[x, y], ...]``, or None when it is something else."""
    if _NOT_RING.search(body):
        return None
    count = body.count("[") - 1
    if count < 1 or body.count("]") != count + 1:
        return None
    budget.take(count, f"ring {index}")
    flat = body[1:-1].translate(_NO_BRACKETS)
    numbers = [np.array(json.loads(f"[{chunk}]"), dtype=np.float64) for chunk in _chunks(flat)]
    values = np.concatenate(numbers) if numbers else np.zeros(0)
    if len(values) % count or len(values) // count not in (2, 3):
        return None  # points of mixed sizes: left to the json module, which tells what is wrong
    return np.ascontiguousarray(values.reshape(count, -1)[:, :2])


def _chunks(flat: str) -> Iterator[str]:
    """``flat`` (numbers and commas) cut at commas into pieces of about _NUMBERS_AT_ONCE numbers."""
    size = _NUMBERS_AT_ONCE * 8
    start = 0
    while start < len(flat):
        cut = flat.find(",", start + size) if start + size < len(flat) else -1
        yield flat[start:] if cut < 0 else flat[start:cut]
        start = len(flat) if cut < 0 else cut + 1


def _annotations(data: Any, rings: list[np.ndarray], path: str, default_class: str, repair: bool,
                 budget: VertexBudget) -> Annotations:
    if isinstance(data, dict) and data.get("type") == "FeatureCollection":
        features = data.get("features")
    elif isinstance(data, dict) and data.get("type") == "Feature":
        features = [data]
    elif isinstance(data, dict) and "coordinates" in data:
        features = [{"type": "Feature", "geometry": data, "properties": {}}]
    else:
        features = data
    if not isinstance(features, list):
        raise AnnotationError(path, "not GeoJSON annotations: expected a FeatureCollection, a list of features, "
                                    "a Feature or a geometry")
    polygons: dict[str, list[Any]] = {}
    colors: dict[str, tuple[int, int, int]] = {}
    skipped: dict[str, int] = {}
    for k, feature in enumerate(features):
        if not isinstance(feature, dict):
            raise AnnotationError(path, f"feature {k}: not a JSON object")
        props = feature.get("properties")
        props = props if isinstance(props, dict) else {}
        name, color = _class_of(props, default_class)
        where = f"feature {k}" + (f" (id {feature['id']!r})" if isinstance(feature.get("id"), (str, int)) else "") \
            + f" of class {name!r}"
        geometry = feature.get("geometry")
        if geometry is None and feature.get("type") != "Feature" and "coordinates" in feature:
            geometry = feature
        found = _polygons(geometry, rings, path, where, repair, skipped)
        if found:
            polygons.setdefault(name, []).extend(found)
            if color is not None:
                colors.setdefault(name, color)
    if skipped:
        kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(skipped.items()))
        warnings.warn(f"{path}: skipped features without an area ({kinds})", UserWarning, stacklevel=4)
    return Annotations.from_polygons(polygons, colors, source=path)


def _class_of(props: dict[str, Any], default_class: str) -> tuple[str, tuple[int, int, int] | None]:
    classification = props.get("classification")
    color: tuple[int, int, int] | None = None
    name: Any = None
    if isinstance(classification, dict):
        name = classification.get("name")
        rgb = classification.get("color")
        packed = classification.get("colorRGB")
        if isinstance(rgb, list) and len(rgb) >= 3 and all(isinstance(c, (int, float)) for c in rgb[:3]):
            color = (int(rgb[0]) & 255, int(rgb[1]) & 255, int(rgb[2]) & 255)
        elif isinstance(packed, int) and not isinstance(packed, bool):
            color = ((packed >> 16) & 255, (packed >> 8) & 255, packed & 255)
    elif isinstance(classification, str):
        name = classification
    if not isinstance(name, str) or not name:
        name = props.get("name")
    if not isinstance(name, str) or not name:
        name = default_class
    return name, color


def _polygons(geometry: Any, rings: list[np.ndarray], path: str, where: str, repair: bool,
              skipped: dict[str, int]) -> list[Any]:
    if geometry is None:
        skipped["features without a geometry"] = skipped.get("features without a geometry", 0) + 1
        return []
    if not isinstance(geometry, dict):
        raise AnnotationError(path, f"{where}: the geometry is not a JSON object")
    kind = geometry.get("type")
    if kind == "GeometryCollection":
        members = geometry.get("geometries")
        if not isinstance(members, list):
            raise AnnotationError(path, f"{where}: a GeometryCollection without a list of geometries")
        return [p for m in members for p in _polygons(m, rings, path, where, repair, skipped)]
    if kind in _NO_AREA:
        skipped[kind] = skipped.get(kind, 0) + 1
        return []
    coords = geometry.get("coordinates")
    if kind == "Polygon":
        return [_polygon(coords, rings, path, where, repair)]
    if kind == "MultiPolygon":
        if not isinstance(coords, list):
            raise AnnotationError(path, f"{where}: MultiPolygon coordinates must be a list of polygons")
        return [_polygon(c, rings, path, f"{where}, polygon {k}", repair) for k, c in enumerate(coords)]
    raise AnnotationError(path, f"{where}: unknown geometry type {kind!r} (expected Polygon or MultiPolygon)")


def _polygon(coords: Any, rings: list[np.ndarray], path: str, where: str, repair: bool) -> Any:
    if not isinstance(coords, list) or not coords:
        raise AnnotationError(path, f"{where}: an empty polygon (no rings)")
    arrays = []
    for k, ring in enumerate(coords):
        if isinstance(ring, dict) and _RING_KEY in ring:
            arrays.append(rings[ring[_RING_KEY]])
        elif isinstance(ring, list) and not ring:
            raise AnnotationError(path, f"{where}: ring {k} is empty")
        else:
            arrays.append(ring_array(ring, path, f"{where}, ring {k}"))
    return make_polygon(arrays[0], arrays[1:], path, where, repair)
