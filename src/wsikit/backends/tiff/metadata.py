"""Slide metadata from a TIFF's tags and its vendor's own fields.

:func:`read_slide_metadata` fills one :class:`SlideMetadata` from the first page of the
main image:

- ``tiff.<Tag>`` for each tag of :data:`TIFF_TAG_PROPERTIES` the page holds, as text
  (a rational as its quotient, an enum as its name);
- the vendor's own fields, by one ``parse_<vendor>`` function per vendor (Aperio SVS,
  Hamamatsu NDPI, Philips TIFF): ``aperio.<Field>`` for every ``key = value`` of an
  Aperio description; microns per pixel and objective power where the vendor records them;
- microns per pixel from the resolution tags when the vendor's fields do not give them
  (centimetre or inch units only, as OpenSlide's generic TIFF reader);
- ``wsikit.vendor``: ``aperio``, ``hamamatsu``, ``philips`` or ``generic-tiff``;
- the embedded ICC colour profile (tag 34675 InterColorProfile), see :mod:`wsikit.color`.

Adding a vendor is one ``parse_<vendor>`` function and one row of :data:`_VENDORS`.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..metadata import positive_float

#: the baseline TIFF tags copied to ``tiff.<Tag>`` properties
TIFF_TAG_PROPERTIES = ("ImageDescription", "Make", "Model", "Software", "DateTime", "Artist",
                       "HostComputer", "Copyright", "XResolution", "YResolution", "ResolutionUnit")
# ResolutionUnit -> microns per unit (2: inch, 3: centimetre; 1, "no unit", says nothing)
_MICRONS_PER_UNIT = {2: 25400.0, 3: 10000.0}
# Philips writes its pixel spacing (millimetres, rows then columns) in its XML description.
_PHILIPS_PIXEL_SPACING = re.compile(r'DICOM_PIXEL_SPACING".*?>\s*"?([\d.eE+-]+)"?\s+"?([\d.eE+-]+)', re.S)


@dataclass
class SlideMetadata:
    """What a TIFF says about its slide: properties (str -> str), (i, j) microns per pixel
    at level 0 and the objective power, each None when the file does not say."""

    properties: dict[str, str] = field(default_factory=dict)
    mpp: tuple[float, float] | None = None
    objective_power: float | None = None
    icc_profile: bytes | None = None


def read_slide_metadata(page: Any) -> SlideMetadata:
    """The metadata of a slide whose main image starts with tifffile page ``page``."""
    metadata = SlideMetadata(tiff_tag_properties(page))
    vendor = vendor_of(page)
    parse = _VENDORS.get(vendor)
    if parse is not None:
        parse(page, metadata)
    if metadata.mpp is None:
        metadata.mpp = resolution_mpp(page)
    metadata.properties["wsikit.vendor"] = vendor
    metadata.icc_profile = icc_profile_of(page)
    return metadata


def icc_profile_of(page: Any) -> bytes | None:
    """The ICC profile a tifffile page embeds (tag 34675 InterColorProfile), None without one."""
    try:
        value = page.tags.valueof(34675)
    except Exception:  # a broken tag must not hide the slide: it only has no profile
        return None
    if isinstance(value, (bytes, bytearray)) and value:
        return bytes(value)
    tobytes = getattr(value, "tobytes", None)  # stored as an array of bytes
    if tobytes is not None and len(data := bytes(tobytes())) > 0:
        return data
    return None


def vendor_of(page: Any) -> str:
    """The vendor name tifffile's format flags give the page: the ``wsikit.vendor`` value."""
    if page.is_svs:
        return "aperio"
    if page.is_ndpi:
        return "hamamatsu"
    if page.is_philips:
        return "philips"
    return "generic-tiff"


def tiff_tag_properties(page: Any) -> dict[str, str]:
    """``tiff.<Tag>`` -> text for each tag of :data:`TIFF_TAG_PROPERTIES` the page holds."""
    properties = {}
    for tag in TIFF_TAG_PROPERTIES:
        value = page.tags.valueof(tag)
        if value is None:
            continue
        if isinstance(value, tuple) and len(value) == 2:  # a rational: numerator, denominator
            value = value[0] / value[1] if value[1] else 0.0
        properties[f"tiff.{tag}"] = str(getattr(value, "name", value))
    return properties


# -- one parser per vendor ------------------------------------------------------------------
def parse_aperio(page: Any, metadata: SlideMetadata) -> None:
    """Aperio SVS: the ``key = value`` fields after the first ``|`` of the description."""
    fields = aperio_fields(page.description or "")
    for key, value in fields.items():
        metadata.properties[f"aperio.{key}"] = value
    mpp = positive_float(fields.get("MPP"))
    if mpp:
        metadata.mpp = (mpp, mpp)
    metadata.objective_power = positive_float(fields.get("AppMag"))


def parse_hamamatsu(page: Any, metadata: SlideMetadata) -> None:
    """Hamamatsu NDPI: the objective power from tifffile's reading of the NDPI tags."""
    ndpi = getattr(page, "ndpi_tags", None) or {}
    metadata.objective_power = positive_float(ndpi.get("Magnification"))


def parse_philips(page: Any, metadata: SlideMetadata) -> None:
    """Philips TIFF: microns per pixel from the pixel spacing (millimetres) in its XML."""
    match = _PHILIPS_PIXEL_SPACING.search(page.description or "")
    if match:
        metadata.mpp = (float(match.group(1)) * 1000, float(match.group(2)) * 1000)


_VENDORS: dict[str, Callable[[Any, SlideMetadata], None]] = {
    "aperio": parse_aperio,
    "hamamatsu": parse_hamamatsu,
    "philips": parse_philips,
}


def aperio_fields(description: str) -> dict[str, str]:
    """The ``key = value`` fields of an Aperio description (``|``-separated after its header)."""
    fields = {}
    for part in description.split("|")[1:]:
        if "=" in part:
            key, value = part.split("=", 1)
            fields[key.strip()] = value.strip()
    return fields


def resolution_mpp(page: Any) -> tuple[float, float] | None:
    """(i, j) microns per pixel from the TIFF resolution tags, None without a length unit."""
    unit = page.tags.valueof("ResolutionUnit")
    microns = _MICRONS_PER_UNIT.get(int(unit) if unit is not None else 0)
    if microns is None:
        return None
    mpp = []
    for tag in ("YResolution", "XResolution"):
        value = page.tags.valueof(tag)
        if not (isinstance(value, tuple) and len(value) == 2 and value[0] > 0 and value[1] > 0):
            return None
        mpp.append(microns * value[1] / value[0])
    return mpp[0], mpp[1]
