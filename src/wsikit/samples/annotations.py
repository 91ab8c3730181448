"""Sample annotations for the demo, the tests and the benchmark: random polygons (with
holes and multi-part classes) and writers of the same polygons as QuPath GeoJSON and as
ASAP XML, in level-0 pixels (x = column, y = row, (0, 0) the top-left pixel's corner).
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from xml.sax.saxutils import quoteattr

import numpy as np
import shapely

Polygons = Mapping[str, Sequence[shapely.Polygon]]


def blob(rng: np.random.Generator, centre: tuple[float, float], radius: float, vertices: int = 200,
         hole: float = 0.0, jitter: float = 0.15) -> shapely.Polygon:
    """A star-shaped random polygon of ``vertices`` points around ``centre`` (x, y), its
    radius varying smoothly and by up to ``jitter`` from point to point; with ``hole`` > 0
    a hole of that fraction of the radius near the centre."""
    angles = np.sort(rng.uniform(0, 2 * np.pi, vertices))
    angles[0] = 0.0  # distinct angles: the ring never crosses itself
    r = radius * (1 + 0.25 * np.sin(angles * rng.integers(2, 7) + rng.uniform(0, 6))) \
        * rng.uniform(1.0 - jitter, 1.0, vertices)
    shell = np.stack([centre[0] + r * np.cos(angles), centre[1] + r * np.sin(angles)], axis=1)
    holes = []
    if hole > 0:
        t = np.linspace(0, 2 * np.pi, 24, endpoint=False)
        rh = radius * hole * 0.5
        holes.append(np.stack([centre[0] + rh * np.cos(t), centre[1] + rh * np.sin(t)], axis=1)[::-1])
    return shapely.Polygon(shell, holes or None)


def random_polygons(shape: tuple[int, int], classes: Sequence[str] = ("tumour", "stroma"), count: int = 12,
                    radius: tuple[float, float] = (0.05, 0.15), vertices: int = 200, seed: int = 0,
                    holes: bool = True, jitter: float = 0.15) -> dict[str, list[shapely.Polygon]]:
    """``count`` random polygons over a level-0 image of ``shape`` (rows, columns), shared
    round-robin among ``classes``; with ``holes`` every third has a hole; radii are fractions of the
    shorter side. Polygons of one class may overlap, and so may classes."""
    rng = np.random.default_rng(seed)
    out: dict[str, list[shapely.Polygon]] = {name: [] for name in classes}
    side = min(shape)
    for k in range(count):
        centre = (rng.uniform(0, shape[1]), rng.uniform(0, shape[0]))
        polygon = blob(rng, centre, rng.uniform(*radius) * side, vertices, hole=0.4 if holes and k % 3 == 0 else 0.0,
                       jitter=jitter)
        out[classes[k % len(classes)]].append(polygon)
    return out


def _parts(shape: shapely.Geometry) -> list[shapely.Polygon]:
    return [p for p in shapely.get_parts(shape) if isinstance(p, shapely.Polygon)]


def write_geojson(path: str | os.PathLike[str], polygons: Polygons,
                  colors: Mapping[str, tuple[int, int, int]] | None = None) -> str:
    """``polygons`` as a QuPath-style FeatureCollection (one Feature per polygon, the class
    in ``properties.classification``); returns the path."""
    features: list[dict[str, object]] = []
    for name, shapes in polygons.items():
        for shape in shapes:
            classification: dict[str, object] = {"name": name}
            if colors and name in colors:
                classification["color"] = list(colors[name])
            features.append({"type": "Feature", "id": f"{name}-{len(features)}",
                             "geometry": shapely.geometry.mapping(shape),
                             "properties": {"objectType": "annotation", "classification": classification}})
    with open(path, "w") as f:
        json.dump({"type": "FeatureCollection", "features": features}, f)
    return os.fspath(path)


def write_asap(path: str | os.PathLike[str], polygons: Polygons,
               colors: Mapping[str, tuple[int, int, int]] | None = None) -> str:
    """``polygons`` as ASAP XML (one Annotation per polygon, its class as PartOfGroup);
    returns the path. ASAP polygons have no holes: a polygon with one is refused."""
    lines = ['<?xml version="1.0"?>', "<ASAP_Annotations>", "\t<Annotations>"]
    count = 0

    def ring(coords: np.ndarray, group: str) -> None:
        nonlocal count
        lines.append(f'\t\t<Annotation Name="Annotation {count}" Type="Polygon" PartOfGroup={quoteattr(group)} '
                     'Color="#F4FA58">')
        lines.append("\t\t\t<Coordinates>")
        for k, (x, y) in enumerate(coords[:-1].tolist()):
            lines.append(f'\t\t\t\t<Coordinate Order="{k}" X="{x!r}" Y="{y!r}" />')
        lines.append("\t\t\t</Coordinates>")
        lines.append("\t\t</Annotation>")
        count += 1

    for name, shapes in polygons.items():
        for shape in shapes:
            for part in _parts(shape):
                if part.interiors:
                    raise ValueError(f"class {name!r}: ASAP XML cannot hold a polygon with holes")
                ring(np.asarray(part.exterior.coords), name)
    lines += ["\t</Annotations>", "\t<AnnotationGroups>"]
    for name in polygons:
        r, g, b = (colors or {}).get(name, (244, 250, 88))
        lines.append(f'\t\t<Group Name={quoteattr(name)} PartOfGroup="None" Color="#{r:02X}{g:02X}{b:02X}">'
                     "<Attributes /></Group>")
    lines += ["\t</AnnotationGroups>", "</ASAP_Annotations>", ""]
    with open(path, "w") as f:
        f.write("\n".join(lines))
    return os.fspath(path)


def write_sample_annotations(path: str | os.PathLike[str], shape: tuple[int, int], seed: int = 0) -> str:
    """A GeoJSON file of a few tumour and stroma regions over a slide of level-0 ``shape``
    (the demo's sample annotations); returns the path."""
    polygons = random_polygons(shape, ("tumour", "stroma"), count=8, radius=(0.08, 0.2), vertices=120, seed=seed,
                               jitter=0.02)
    return write_geojson(path, polygons, colors={"tumour": (200, 0, 0), "stroma": (0, 150, 255)})
