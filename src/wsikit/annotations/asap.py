"""ASAP XML annotations (the CAMELYON16/17 format).

    <ASAP_Annotations><Annotations>
      <Annotation Name="..." Type="Polygon" PartOfGroup="tumor" Color="#F4FA58">
        <Coordinates><Coordinate Order="0" X="1210.5" Y="3021.0"/> ...</Coordinates>
      </Annotation> ...
    </Annotations><AnnotationGroups><Group Name="tumor" Color="#..."/></AnnotationGroups></ASAP_Annotations>

The class of an annotation is its ``PartOfGroup`` (``None`` or missing: the default class);
its colour the group's ``Color``, else the annotation's. Types ``Polygon``, ``Rectangle``
and ``Spline`` (taken as the polygon of its points) are areas; ``Dot``, ``PointSet`` and
``Measurement`` have none and are skipped with a warning; any other type is an error.
Points are joined in their ``Order``. A decimal comma (``X="12,5"``, written by ASAP on some
locales) is read as a point. CAMELYON16 marks non-tumour areas inside tumour with group
``_2``: it is a class like any other here (subtract it yourself where you need to).

Coordinates: ASAP stores level-0 image coordinates with x = column and y = row, measured
from the top-left corner of the image (the viewer draws pixel (x, y) over [x, x + 1)), the
same convention as wsikit's: they are taken as they are.

Safety: the file is parsed by expat as a stream, 1 MiB at a time; a document type
declaration (the carrier of entity-expansion bombs and external entities) is refused.
"""
from __future__ import annotations

import array
import os
import warnings
from typing import Any
from xml.parsers import expat

import numpy as np

from .model import Annotations
from .shapes import DEFAULT_CLASS, AnnotationError, VertexBudget, make_polygon, rectangle

_AREAS = {"polygon", "rectangle", "spline"}
_NO_AREA = {"dot", "pointset", "measurement"}


class _Refused(Exception):
    pass


class _Handler:
    def __init__(self, path: str, budget: VertexBudget) -> None:
        self.path, self.budget = path, budget
        self.annotations: list[dict[str, Any]] = []
        self.groups: dict[str, str] = {}
        self.current: dict[str, Any] | None = None

    def start(self, tag: str, attrs: dict[str, str]) -> None:
        if tag == "Annotation":
            self.current = {"attrs": attrs, "order": array.array("d"), "x": array.array("d"),
                            "y": array.array("d"), "index": len(self.annotations)}
        elif tag == "Coordinate" and self.current is not None:
            where = self.where(self.current)
            self.budget.take(1, where)
            try:
                self.current["order"].append(float(attrs.get("Order", len(self.current["x"]))))
                self.current["x"].append(float(attrs["X"].replace(",", ".")))
                self.current["y"].append(float(attrs["Y"].replace(",", ".")))
            except KeyError as exc:
                raise AnnotationError(self.path, f"{where}: a Coordinate without {exc.args[0]}") from None
            except ValueError:
                raise AnnotationError(self.path, f"{where}: a Coordinate whose X, Y or Order is not a number "
                                                 f"({dict(attrs)})") from None
        elif tag == "Group" and "Name" in attrs and attrs.get("Color"):
            self.groups[attrs["Name"]] = attrs["Color"]

    def end(self, tag: str) -> None:
        if tag == "Annotation" and self.current is not None:
            self.annotations.append(self.current)
            self.current = None

    def where(self, annotation: dict[str, Any]) -> str:
        attrs = annotation["attrs"]
        name = f" {attrs['Name']!r}" if attrs.get("Name") else ""
        return f"annotation {annotation['index']}{name}"


def _refuse_doctype(*_: object) -> None:
    raise _Refused("the file declares a document type (DTD), which ASAP files never do; refused so that "
                   "no entity is expanded")


def read_asap(path: str | os.PathLike[str], *, default_class: str = DEFAULT_CLASS, repair: bool = False,
              max_vertices: int | None = None) -> Annotations:
    """The annotations of an ASAP XML file (see the module notes)."""
    name = os.fspath(path)
    handler = _Handler(name, VertexBudget(path, max_vertices))
    parser = expat.ParserCreate()
    parser.StartElementHandler = handler.start
    parser.EndElementHandler = handler.end
    parser.StartDoctypeDeclHandler = _refuse_doctype
    parser.EntityDeclHandler = _refuse_doctype
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                parser.Parse(chunk, False)
            parser.Parse(b"", True)
    except expat.ExpatError as exc:
        raise AnnotationError(path, f"not valid XML: {expat.ErrorString(exc.code)} at line {exc.lineno}, "
                                    f"column {exc.offset}") from None
    except _Refused as exc:
        raise AnnotationError(path, str(exc)) from None
    return _annotations(handler, name, default_class, repair)


def _annotations(handler: _Handler, path: str, default_class: str, repair: bool) -> Annotations:
    polygons: dict[str, list[Any]] = {}
    colors: dict[str, tuple[int, int, int]] = {}
    skipped: dict[str, int] = {}
    for annotation in handler.annotations:
        attrs = annotation["attrs"]
        kind = attrs.get("Type", "Polygon")
        group = attrs.get("PartOfGroup")
        name = group if group and group != "None" else default_class
        where = f"{handler.where(annotation)} of class {name!r}"
        if kind.lower() in _NO_AREA:
            skipped[kind] = skipped.get(kind, 0) + 1
            continue
        if kind.lower() not in _AREAS:
            raise AnnotationError(path, f"{where}: unknown annotation type {kind!r} (expected Polygon, Rectangle "
                                        "or Spline)")
        order = np.frombuffer(annotation["order"], dtype=np.float64)
        points = np.stack([np.frombuffer(annotation["x"], dtype=np.float64),
                           np.frombuffer(annotation["y"], dtype=np.float64)], axis=1)[np.argsort(order, kind="stable")]
        if kind.lower() == "rectangle" and len(points) == 2:
            shape = rectangle(points[0, 0], points[0, 1], points[1, 0], points[1, 1], path, where)
        else:
            shape = make_polygon(points, [], path, where, repair)
        polygons.setdefault(name, []).append(shape)
        color = _hex_color(handler.groups.get(name) or attrs.get("Color"))
        if color is not None:
            colors.setdefault(name, color)
    if skipped:
        kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(skipped.items()))
        warnings.warn(f"{path}: skipped annotations without an area ({kinds})", UserWarning, stacklevel=4)
    return Annotations.from_polygons(polygons, colors, source=path)


def _hex_color(text: str | None) -> tuple[int, int, int] | None:
    if not text or not text.startswith("#") or len(text) != 7:
        return None
    try:
        value = int(text[1:], 16)
    except ValueError:
        return None
    return (value >> 16) & 255, (value >> 8) & 255, value & 255
