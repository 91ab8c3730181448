"""Annotations of slides, turned into tile masks and labels.

:func:`read_annotations` reads GeoJSON (QuPath exports), ASAP XML (CAMELYON) and label-mask
images into an :class:`Annotations` object: class name -> region, in level-0 pixels with
x = column, y = row and (0, 0) the top-left corner of the top-left pixel (each reader
converts its format's convention once, when reading; see their modules).

Given to ``slide.tile_plan(..., annotations=A)`` or ``generate_tiles``, every tile gets
``tile.labels`` (class -> fraction of the tile's area in the class, exact) and
``tile.masks`` (class -> (h, w) bool, True where the pixel's centre lies inside the class's
region, holes excluded), at any level or mpp; ``min_label={"tumour": 0.5}`` keeps the tiles
with at least that fraction of each class named.
"""
from __future__ import annotations

import os
from collections.abc import Mapping

from .frames import TileFrames
from .model import Annotations
from .shapes import DEFAULT_CLASS, MAX_VERTICES, AnnotationError

#: file suffixes read_annotations reads, by format
SUFFIXES = {"geojson": (".geojson", ".json"), "asap": (".xml",), "label-image": (".png", ".tif", ".tiff", ".npy")}


def read_annotations(path: str | os.PathLike[str], *, format: str | None = None,
                     classes: Mapping[int, str] | None = None,
                     downsample: float | tuple[float, float] | None = None,
                     slide_shape: tuple[int, int] | None = None, default_class: str = DEFAULT_CLASS,
                     repair: bool = False, max_vertices: int | None = None) -> Annotations:
    """Read an annotation file: GeoJSON, ASAP XML or a label-mask image.

    ``format`` ("geojson", "asap" or "label-image") is otherwise told by the suffix, else by
    the first bytes. For label images, ``classes`` maps values to names and ``downsample``
    (level-0 pixels per label pixel) defaults to ``slide_shape`` / the image's shape, else 1.
    For polygons, ``default_class`` names features without a class, ``repair=True`` mends
    self-intersecting polygons instead of refusing them, and ``max_vertices`` caps the
    vertices of one file (default :data:`MAX_VERTICES`). A broken file raises
    :class:`AnnotationError` naming the file and the feature.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise AnnotationError(path, "no such annotation file")
    kind = format or _format_of(path)
    if kind == "geojson":
        from .geojson import read_geojson

        return read_geojson(path, default_class=default_class, repair=repair, max_vertices=max_vertices)
    if kind == "asap":
        from .asap import read_asap

        return read_asap(path, default_class=default_class, repair=repair, max_vertices=max_vertices)
    if kind == "label-image":
        from .labelimage import read_label_image

        return read_label_image(path, classes=classes, downsample=downsample, slide_shape=slide_shape)
    raise ValueError(f"format must be one of {', '.join(SUFFIXES)}; got {format!r}")


def _format_of(path: str) -> str:
    lower = path.lower()
    for kind, suffixes in SUFFIXES.items():
        if lower.endswith(suffixes):
            return kind
    with open(path, "rb") as f:
        head = f.read(64).lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"<"):
        return "asap"
    if head.startswith((b"{", b"[")):
        return "geojson"
    if head.startswith((b"\x89PNG", b"II*\x00", b"MM\x00*", b"\x93NUMPY")):
        return "label-image"
    raise AnnotationError(path, "not an annotation file wsikit reads (GeoJSON, ASAP XML or a label-mask image)")


def is_annotation_file(path: str) -> bool:
    """Whether ``path`` has a suffix of a format read_annotations reads."""
    return path.lower().endswith(tuple(s for suffixes in SUFFIXES.values() for s in suffixes))


__all__ = ["Annotations", "AnnotationError", "TileFrames", "read_annotations", "DEFAULT_CLASS", "MAX_VERTICES",
           "is_annotation_file"]
