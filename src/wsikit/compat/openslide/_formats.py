"""Which files the drop-in opens as whole-slide images, under OpenSlide's vendor names.

:func:`detect_vendor` answers ``OpenSlide.detect_format``: OpenSlide's name for the formats
OpenSlide reads (``aperio``, ``hamamatsu``, ``philips``, ``ventana``, ``leica``,
``generic-tiff``, ``dicom`` and, through the OpenSlide library when installed, ``mirax``,
``hamamatsu`` VMS, ``sakura``, ...), wsikit's own vendor name for slides only wsikit reads
(``ome-tiff``, ``perkinelmer-qptiff``, ``bioformats``), and None for anything else, in
particular plain pictures (PNG, JPEG, a TIFF of one untiled image), which ``open_slide``
hands to :class:`ImageSlide` as openslide-python does.
"""
from __future__ import annotations

import os
from typing import Any

from ...backends import backend_class_or_none
from ...tiff_structure import has_tiff_magic


def detect_vendor(path: str) -> str | None:
    """The vendor name of the slide at ``path``, None when it is not a slide read here (never raises)."""
    try:
        if not os.path.exists(path):
            return None
        if os.path.isfile(path) and has_tiff_magic(path):
            return _tiff_vendor(path)
        dicom = backend_class_or_none("dicom")
        if dicom is not None and dicom.can_read(path):
            return "dicom"
        if not os.path.isfile(path):
            return None
        return _library_vendor(path)
    except Exception:
        return None


def _tiff_vendor(path: str) -> str | None:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages.first
            for flag, vendor in (("is_svs", "aperio"), ("is_ndpi", "hamamatsu"), ("is_philips", "philips"),
                                 ("is_bif", "ventana"), ("is_scn", "leica")):
                if getattr(page, flag, False):
                    return vendor
            if tif.is_ome or tif.is_qpi:
                kind = "ome-tiff" if tif.is_ome else "perkinelmer-qptiff"
                return kind if _wsikit_reads(path) else None
            levels = tif.series[0].levels if tif.series else []
            if page.is_tiled:
                return "generic-tiff"
            # An untiled image is a picture unless it is a pyramid (levels of strips).
            return "generic-tiff" if len(levels) > 1 and _wsikit_reads(path) else None
    except Exception:
        return _library_vendor(path)


def _wsikit_reads(path: str) -> bool:
    tiff = backend_class_or_none("tiff")
    return tiff is not None and tiff.can_read(path)


def _library_vendor(path: str) -> str | None:
    """OpenSlide's own answer where the OpenSlide library is installed; else Bio-Formats' formats."""
    openslide = _openslide_module()
    if openslide is not None:
        try:
            vendor = openslide.OpenSlide.detect_format(path)
        except Exception:
            vendor = None
        if vendor is not None:
            return str(vendor)
    from ...backends.openslide.plain import pillow_format

    bioformats = backend_class_or_none("bioformats")
    if bioformats is not None and pillow_format(path) is None and bioformats.can_read(path):
        return "bioformats"
    return None


def _openslide_module() -> Any:
    try:
        import openslide

        return openslide
    except Exception:  # not installed, or its library cannot be loaded
        return None


__all__ = ["detect_vendor"]
