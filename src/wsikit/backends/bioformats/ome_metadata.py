"""A Bio-Formats file's metadata as wsikit shows it: properties, channel names, pixel size
and objective magnification, read from the reader's tables and its OME-XML store.

Every function here calls Java and runs under the backend's lock (see
:meth:`BioFormatsBackend._call <wsikit.backends.bioformats.backend.BioFormatsBackend._call>`).
OME getters throw (NullPointerException and friends) where an element is missing:
:func:`optional` turns that into None.
"""
from __future__ import annotations

from typing import Any, Callable

from ..metadata import positive_float
from .series import Series

# At most this many entries of each Bio-Formats metadata table become properties, and
# values are cut to this many characters: some files hold megabytes of metadata.
_MAX_TABLE_ENTRIES = 5000
_MAX_VALUE_CHARS = 4096


def optional(getter: Callable[..., Any], *args: Any) -> Any:
    """``getter(*args)``, or None when the metadata element is missing (OME getters then throw)."""
    try:
        return getter(*args)
    except Exception:  # noqa: BLE001 - NullPointerException and friends: no such element
        return None


def optional_str(getter: Callable[..., Any], *args: Any) -> str | None:
    """:func:`optional` as a str (None stays None)."""
    value = optional(getter, *args)
    return None if value is None else str(value)


def properties(reader: Any, ome: Any, series: list[Series], main: Series) -> dict[str, str]:
    """``bioformats.*`` properties (format, series, global and series metadata) and ``ome.xml``.

    ``reader`` is the open ``loci.formats.ImageReader``, ``ome`` its OME-XML store.
    """
    reader.setSeries(main.index)
    props = {
        "bioformats.format": str(reader.getFormat()),
        "bioformats.series": str(main.index),
        "bioformats.series-count": str(len(series)),
    }
    for each in series:
        props[f"bioformats.series.{each.index}.name"] = each.name
    for prefix, table in (("bioformats.global.", reader.getGlobalMetadata()),
                          ("bioformats.series-metadata.", reader.getSeriesMetadata())):
        for key in list(table.keySet())[:_MAX_TABLE_ENTRIES]:
            props[prefix + str(key)] = str(table.get(key))[:_MAX_VALUE_CHARS]
    props["ome.xml"] = str(ome.dumpXML())
    props["wsikit.vendor"] = "bioformats"
    return props


def microns_per_pixel(ome: Any, series_index: int) -> tuple[float, float] | None:
    """(i, j) microns per pixel of a series, or None when the file does not say both."""
    import jpype

    microns = jpype.JClass("ome.units.UNITS").MICROMETER
    mpp = []
    for getter in (ome.getPixelsPhysicalSizeY, ome.getPixelsPhysicalSizeX):
        length = optional(getter, series_index)
        mpp.append(positive_float(optional(length.value, microns)) if length is not None else None)
    mpp_y, mpp_x = mpp
    return (mpp_y, mpp_x) if mpp_y and mpp_x else None


def channel_names(ome: Any, main: Series) -> list[str]:
    """Names of the channels of ``main`` (R, G, B for brightfield; ``C<k>`` where unnamed)."""
    if main.is_rgb:
        return ["R", "G", "B"]
    c = main.sizes[1]
    count = int(optional(ome.getChannelCount, main.index) or 0)
    names = [optional_str(ome.getChannelName, main.index, k) for k in range(count)]
    if count == c:
        return [name or f"C{k}" for k, name in enumerate(names)]
    if count * main.samples == c:  # one named channel per RGB plane: number its samples
        return [f"{names[k // main.samples]}:{k % main.samples}" if names[k // main.samples] else f"C{k}"
                for k in range(c)]
    return [f"C{k}" for k in range(c)]


def objective_power(ome: Any, series_index: int) -> float | None:
    """The nominal magnification of the objective a series was taken with, or None."""
    wanted = optional_str(ome.getObjectiveSettingsID, series_index)
    for i in range(int(optional(ome.getInstrumentCount) or 0)):
        for o in range(int(optional(ome.getObjectiveCount, i) or 0)):
            if wanted is None or optional_str(ome.getObjectiveID, i, o) == wanted:
                return positive_float(optional(ome.getObjectiveNominalMagnification, i, o))
    return None
