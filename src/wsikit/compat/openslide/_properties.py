"""A slide's properties as OpenSlide names and writes them.

- ``openslide.vendor``, ``openslide.mpp-x`` / ``mpp-y``, ``openslide.objective-power``,
  ``openslide.level-count``, ``openslide.level[N].width / height / downsample /
  tile-width / tile-height``, ``openslide.associated.<name>.width / height``,
  ``openslide.icc-size``; numbers written as OpenSlide writes doubles (:func:`format_double`);
- TIFF files: ``tiff.<Tag>`` as OpenSlide's TIFF reader writes them (strings as stored,
  rationals as doubles, ``ResolutionUnit`` as ``inch`` / ``centimeter`` / ``none``, inch when
  absent), ``openslide.comment`` (the ImageDescription) and ``openslide.quickhash-1``,
  computed as OpenSlide computes it for TIFF-based formats: SHA-256 of the stored bytes of
  the smallest level's tiles or strips followed by the nine hashed TIFF string tags; absent,
  as in OpenSlide, when those bytes exceed 5 MiB. Other formats get no quickhash (OpenSlide
  hashes them in format-specific ways not reproduced here);
- the vendor's own keys as wsikit reads them (``aperio.*``, ``dicom.*``, ``qptiff.*``...);
  ``wsikit.*`` keys are left out;
- slides read by the OpenSlide backend: OpenSlide's own properties, unchanged.
"""
from __future__ import annotations

import hashlib
from typing import Any

#: TIFF string tags OpenSlide stores and hashes, in its order
_HASHED_TAGS = ("ImageDescription", "Make", "Model", "Software", "DateTime", "Artist", "HostComputer",
                "Copyright", "DocumentName")
#: TIFF float tags OpenSlide stores (not hashed)
_FLOAT_TAGS = ("XResolution", "YResolution", "XPosition", "YPosition")
_UNITS = {1: "none", 2: "inch", 3: "centimeter"}
#: OpenSlide leaves out the quickhash of a smallest level stored in more bytes than this
QUICKHASH_LIMIT = 5 << 20


def format_double(value: float) -> str:
    """A double as OpenSlide writes it (GLib's g_ascii_dtostr): 15 significant digits when
    they give the number back exactly, else 17."""
    short = "%.15g" % value
    return short if float(short) == value else "%.17g" % value


def openslide_properties(backend: Any, vendor: str) -> dict[str, str]:
    """The OpenSlide-style properties of an opened wsikit backend (see the module docstring)."""
    from ...backends.openslide import OpenSlideBackend

    source = dict(backend.properties)
    if isinstance(backend, OpenSlideBackend) and source.get("wsikit.vendor") != "plain-image":
        return {k: v for k, v in source.items() if not k.startswith("wsikit.")}
    properties = {k: v for k, v in source.items() if not k.startswith(("wsikit.", "tiff.", "dicom."))}
    if vendor == "dicom":
        properties.update(_dicom_properties(backend, source))
    properties.update(_tiff_properties(backend))
    properties["openslide.vendor"] = vendor
    if backend.mpp is not None:
        properties["openslide.mpp-y"] = format_double(backend.mpp[0])
        properties["openslide.mpp-x"] = format_double(backend.mpp[1])
    if backend.objective_power is not None:
        properties["openslide.objective-power"] = format_double(backend.objective_power)
    properties.update(level_properties(backend))
    for name, image in backend.associated_images.items():
        properties[f"openslide.associated.{name}.height"] = str(image.shape[0])
        properties[f"openslide.associated.{name}.width"] = str(image.shape[1])
    if backend.icc_profile is not None:
        properties["openslide.icc-size"] = str(len(backend.icc_profile))
    return properties


def level_properties(backend: Any) -> dict[str, str]:
    """``openslide.level-count`` and ``openslide.level[N].*``."""
    properties = {"openslide.level-count": str(backend.level_count)}
    grids = getattr(backend, "_grids", None)
    for k, ((h, w), downsample) in enumerate(zip(backend.level_shapes, backend.level_downsamples)):
        properties[f"openslide.level[{k}].width"] = str(w)
        properties[f"openslide.level[{k}].height"] = str(h)
        properties[f"openslide.level[{k}].downsample"] = format_double(downsample)
        if grids is not None and k < len(grids):
            th, tw = grids[k].tile_shape
            if (th, tw) != (h, w) or th < h:  # a level stored as one piece has no tile hint in OpenSlide
                properties[f"openslide.level[{k}].tile-height"] = str(th)
                properties[f"openslide.level[{k}].tile-width"] = str(tw)
    return properties


def _tiff_properties(backend: Any) -> dict[str, str]:
    """``tiff.*``, ``openslide.comment`` and ``openslide.quickhash-1`` of a TIFF slide."""
    pages = getattr(backend, "_pages", None)
    if not pages:
        return {}
    first = pages[0]
    properties: dict[str, str] = {}
    digest = hashlib.sha256()
    hashed = _hash_level(digest, backend.path, pages[-1])
    for tag in _HASHED_TAGS:
        value = _string_tag(first, tag)
        if value is not None:
            properties[f"tiff.{tag}"] = value
        digest.update(f"tiff.{tag}".encode() + b"\0")
        digest.update((value or "").encode("utf-8", "replace") + b"\0")
    if "tiff.ImageDescription" in properties:
        properties["openslide.comment"] = properties["tiff.ImageDescription"]
    for tag in _FLOAT_TAGS:
        value = first.tags.valueof(tag)
        if isinstance(value, tuple) and len(value) == 2 and value[1]:
            properties[f"tiff.{tag}"] = format_double(value[0] / value[1])
        elif isinstance(value, (int, float)):
            properties[f"tiff.{tag}"] = format_double(float(value))
    unit = first.tags.valueof("ResolutionUnit")
    properties["tiff.ResolutionUnit"] = _UNITS.get(int(unit) if unit is not None else 2, "unknown")
    if hashed:
        properties["openslide.quickhash-1"] = digest.hexdigest()
    return properties


def _string_tag(page: Any, tag: str) -> str | None:
    value = page.tags.valueof(tag)
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return str(value).split("\0", 1)[0]


def _hash_level(digest: Any, path: str, page: Any) -> bool:
    """Feed the stored bytes of ``page``'s tiles or strips to ``digest``; False (nothing
    fed) when they exceed :data:`QUICKHASH_LIMIT` or cannot be read."""
    offsets, counts = page.dataoffsets, page.databytecounts
    if not offsets or len(offsets) != len(counts) or sum(int(c) for c in counts) > QUICKHASH_LIMIT:
        return False
    try:
        with open(path, "rb") as file:
            for offset, count in zip(offsets, counts):
                file.seek(int(offset))
                digest.update(file.read(int(count)))
    except OSError:
        return False
    return True


def _dicom_properties(backend: Any, source: dict[str, str]) -> dict[str, str]:
    """``dicom.*`` as OpenSlide's DICOM reader names them: every element of level 0's header,
    sequences and multiple values indexed (``dicom.ImageType[0]``)."""
    levels = getattr(backend, "_levels", None)
    if not levels:
        return {k: v for k, v in source.items() if k.startswith("dicom.")}
    from ...backends.dicom.header import pydicom_warnings_silenced

    instance = levels[0].sources[0].instance
    properties: dict[str, str] = {}
    meta = getattr(instance.ds, "file_meta", None)
    with pydicom_warnings_silenced():  # values that bend the standard are common and harmless here
        if meta is not None:
            _walk(meta, "dicom.", properties)
        _walk(instance.ds, "dicom.", properties)
    return properties


# Value representations OpenSlide writes as numbers it formats itself, and binary ones it skips.
_BINARY_FLOAT_VRS = {"FL", "FD"}
_SKIPPED_VRS = {"OB", "OW", "OF", "OD", "OL", "OV", "UN", "SQ"}


def _walk(dataset: Any, prefix: str, out: dict[str, str]) -> None:
    for element in dataset:
        keyword = element.keyword
        if not keyword or keyword in ("PixelData", "FileMetaInformationGroupLength", "FileMetaInformationVersion"):
            continue
        name = prefix + keyword
        if element.VR == "SQ":
            for k, item in enumerate(element.value or []):
                _walk(item, f"{name}[{k}].", out)
            continue
        if element.VR in _SKIPPED_VRS:
            continue
        value = element.value
        values = list(value) if element.VM > 1 else [value]
        texts = [_dicom_text(v, element.VR) for v in values]
        if len(texts) == 1:
            out[name] = texts[0]
        else:
            for k, text in enumerate(texts):
                out[f"{name}[{k}]"] = text
    return None


def _dicom_text(value: Any, vr: str) -> str:
    if value is None:
        return ""
    if vr in _BINARY_FLOAT_VRS:
        return format_double(float(value))
    original = getattr(value, "original_string", None)  # DS / IS as the file writes them
    if isinstance(original, str):
        return original.strip()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


__all__ = ["QUICKHASH_LIMIT", "format_double", "level_properties", "openslide_properties"]
