"""Which TIFF pages make up each level of a multi-plane image: OME-TIFF and PerkinElmer QPTIFF.

In these files one pyramid level is several pages, one per channel (and z-slice and
time point), and the file also holds pictures that are not levels (QPTIFF thumbnails,
overviews, labels; other OME images). :func:`plane_layout` works that out from the
file's own metadata (OME-XML, the QPTIFF per-page XML) and returns it as plain data;
:class:`~wsikit.backends.tiff.TiffBackend` reads the pixels.
"""
from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..metadata import positive_float

# OME length units -> microns
_MICRONS = {"µm": 1.0, "um": 1.0, "micron": 1.0, "nm": 1e-3, "pm": 1e-6, "Å": 1e-4, "mm": 1e3,
            "cm": 1e4, "m": 1e6}
# QPTIFF ImageType -> associated image name
_QPTIFF_ASSOCIATED = {"thumbnail": "thumbnail", "overview": "macro", "macro": "macro", "label": "label"}
_IMAGE_TYPE = re.compile(r"<ImageType>\s*([^<\s]+)\s*</ImageType>")


class UnsupportedLayout(ValueError):
    """An OME-TIFF or QPTIFF whose layout the native reader does not handle (Bio-Formats may)."""


@dataclass
class PlaneLayout:
    """The pages of every level of a multi-plane image, and what its metadata says.

    ``levels[k][n]`` is the page holding plane ``planes[n]`` = (z, c, t) of level k (c
    counts pages; a page of s samples fills channels c*s .. c*s+s-1), or None where the
    file stores no page (read as zeros).
    """

    kind: str
    levels: list[list[Any]]
    planes: list[tuple[int, int, int]]
    sizes: tuple[int, int, int]  # (z, pages per (z, t), t)
    channel_names: list[str] | None = None
    mpp: tuple[float, float] | None = None
    objective_power: float | None = None
    properties: dict[str, str] = field(default_factory=dict)
    #: (name, object with .asarray(), .shape, .dtype): pages or tifffile series
    associated: list[tuple[str, Any]] = field(default_factory=list)

    @property
    def first_page(self) -> Any:
        """The first page level 0 stores (a tifffile page)."""
        return next(page for page in self.levels[0] if page is not None)


def plane_layout(tif: Any) -> PlaneLayout | None:
    """The layout of an OME-TIFF or QPTIFF, None for any other TIFF.

    Raises UnsupportedLayout for OME-TIFF / QPTIFF files the native reader cannot read
    (e.g. planes in other files, axes other than z, c, t).
    """
    if tif.is_qpi:
        layout = _qptiff_layout(tif)
    elif tif.is_ome:
        layout = _ome_layout(tif)
    else:
        return None
    _check_levels(tif, layout)
    return layout


# -- OME-TIFF ------------------------------------------------------------------------------
def _ome_layout(tif: Any) -> PlaneLayout:
    series = tif.series[0]
    layout = _series_layout(tif, series, "ome")
    layout.properties["ome.xml"] = tif.ome_metadata or ""
    image = _ome_image(tif.ome_metadata, series, 0)
    if image is not None:
        _read_ome_image(image, layout, _ome_root(tif.ome_metadata))
    layout.associated = [(series.name or f"image{k}", series) for k, series in enumerate(tif.series[1:], 1)]
    return layout


def _series_layout(tif: Any, series: Any, kind: str) -> PlaneLayout:
    """Levels of a tifffile series whose planes are indexed by T, Z and C."""
    axes = series.get_axes(False)
    shape = series.get_shape(False)
    if not axes.endswith(("YX", "YXS")):
        raise UnsupportedLayout(f"series of axes {axes!r} does not end in YX")
    plane_axes = axes[: axes.index("YX")]
    plane_shape = shape[: len(plane_axes)]
    for axis, size in zip(plane_axes, plane_shape):
        if size > 1 and axis not in "TZC":
            raise UnsupportedLayout(f"axis {axis!r} of size {size} is not z, c or t")
    z, c, t = (_size(plane_axes, plane_shape, axis) for axis in "ZCT")
    sizes = (z, c, t)
    planes = []
    for n in range(math.prod(plane_shape)):
        index = dict(zip(plane_axes, _unravel(n, plane_shape)))
        planes.append((index.get("Z", 0), index.get("C", 0), index.get("T", 0)))
    levels = []
    for level in series.levels:
        pages = list(level.pages)
        if len(pages) != len(planes):
            raise UnsupportedLayout(f"a level lists {len(pages)} pages for {len(planes)} planes")
        levels.append([_as_page(page) for page in pages])
    return PlaneLayout(kind, levels, planes, sizes)


def _size(axes: str, shape: Sequence[int], axis: str) -> int:
    return int(shape[axes.index(axis)]) if axis in axes else 1


def _unravel(n: int, shape: Sequence[int]) -> tuple[int, ...]:
    index = []
    for size in reversed(shape):
        n, k = divmod(n, size)
        index.append(k)
    return tuple(reversed(index))


def _as_page(page: Any) -> Any:
    if page is None:
        return None
    import tifffile

    # TiffFrames carry offsets but not their own tags: make them pages.
    return page if isinstance(page, tifffile.TiffPage) else page.aspage()


def _ome_root(xml: str | None) -> ET.Element | None:
    if not xml:
        return None
    try:
        return ET.fromstring(xml)
    except ET.ParseError:
        return None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _children(element: ET.Element, name: str) -> list[ET.Element]:
    return [child for child in element if _local(child.tag) == name]


def _ome_image(xml: str | None, series: Any, index: int) -> ET.Element | None:
    root = _ome_root(xml)
    if root is None:
        return None
    images = _children(root, "Image")
    named = [image for image in images if image.get("Name") == series.name]
    if series.name and len(named) == 1:
        return named[0]
    return images[index] if index < len(images) else None


def _read_ome_image(image: ET.Element, layout: PlaneLayout, root: ET.Element | None) -> None:
    pixels = next(iter(_children(image, "Pixels")), None)
    if pixels is None:
        return
    mpp_y, mpp_x = _ome_length(pixels, "PhysicalSizeY"), _ome_length(pixels, "PhysicalSizeX")
    if mpp_y and mpp_x:
        layout.mpp = (mpp_y, mpp_x)
    channels = _children(pixels, "Channel")
    pages_c = layout.sizes[1]
    names = [ch.get("Name") or "" for ch in channels]
    if len(channels) == pages_c and all(names):
        layout.channel_names = names
    settings = next(iter(_children(image, "ObjectiveSettings")), None)
    if settings is not None and root is not None:
        for instrument in _children(root, "Instrument"):
            for objective in _children(instrument, "Objective"):
                if objective.get("ID") == settings.get("ID"):
                    layout.objective_power = positive_float(objective.get("NominalMagnification"))


def _ome_length(pixels: ET.Element, name: str) -> float | None:
    value = positive_float(pixels.get(name))
    factor = _MICRONS.get(pixels.get(name + "Unit", "µm"))
    return value * factor if value and factor else None


# -- QPTIFF --------------------------------------------------------------------------------
def _qptiff_layout(tif: Any) -> PlaneLayout:
    pages = tif.pages
    kinds = []
    for k in range(len(pages)):
        page = pages[k]
        match = _IMAGE_TYPE.search(page.description or "")
        kinds.append((match.group(1).lower() if match else None, _as_page(page)))
    full = [page for kind, page in kinds if kind == "fullresolution"]
    if not full:
        # An old QPTIFF without image types: trust tifffile's reading of it.
        layout = _series_layout(tif, tif.series[0], "qptiff")
        layout.associated = [(s.name.lower(), s) for s in tif.series[1:]]
        return layout
    levels = [full]
    run: list[Any] = []
    for kind, page in kinds + [(None, None)]:
        if kind == "reducedresolution" and (not run or run[0].shape == page.shape):
            run.append(page)
            continue
        if run:
            if len(run) != len(full):
                break  # an incomplete level ends the pyramid
            levels.append(run)
        run = [page] if kind == "reducedresolution" else []
    levels.sort(key=lambda pages: -pages[0].shape[0] * pages[0].shape[1])
    layout = PlaneLayout("qptiff", levels, [(0, c, 0) for c in range(len(full))], (1, len(full), 1))
    names = [_qptiff_field(page.description, "Name") or "" for page in full]
    if all(names):
        layout.channel_names = names
    root = _qptiff_root(full[0].description)
    if root is not None:
        for child in root:
            if len(child) == 0 and child.text and child.text.strip():
                layout.properties[f"qptiff.{child.tag}"] = child.text.strip()
        layout.objective_power = positive_float((root.findtext("Objective") or "").lower().removesuffix("x"))
        microns = positive_float(root.findtext("ScanProfile/root/ScanResolution/PixelSizeMicrons"))
        if microns:
            layout.mpp = (microns, microns)
    seen: set[str] = set()
    for kind, page in kinds:
        name = _QPTIFF_ASSOCIATED.get(kind or "")
        if name is not None:
            layout.associated.append((name if name not in seen else f"{name}{page.index}", page))
            seen.add(name)
    return layout


def _qptiff_root(description: str | None) -> ET.Element | None:
    try:
        return ET.fromstring(description or "")
    except ET.ParseError:
        return None


def _qptiff_field(description: str | None, name: str) -> str | None:
    root = _qptiff_root(description)
    text = root.findtext(name) if root is not None else None
    return text.strip() if text and text.strip() else None


# -- checks --------------------------------------------------------------------------------
def _check_levels(tif: Any, layout: PlaneLayout) -> None:
    if not layout.levels or all(page is None for page in layout.levels[0]):
        raise UnsupportedLayout("the image has no pages")
    for pages in layout.levels:
        present = [page for page in pages if page is not None]
        if not present:
            raise UnsupportedLayout("a level has no pages")
        key = present[0]
        for page in present:
            if page.parent is not tif:
                raise UnsupportedLayout("planes are stored in other files (multi-file OME-TIFF)")
            if _geometry(page) != _geometry(key):
                raise UnsupportedLayout("the planes of a level differ in size, tiling or pixel type")


def _geometry(page: Any) -> tuple[Any, ...]:
    return (page.imagelength, page.imagewidth, page.is_tiled, page.tilelength, page.tilewidth,
            page.rowsperstrip, str(page.dtype), page.samplesperpixel, page.planarconfig)
