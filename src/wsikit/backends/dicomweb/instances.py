"""The instances of a DICOMweb series, described from the server's metadata.

Two requests, sent at once: QIDO-RS (``.../series/R/instances``) lists the instances, and
WADO-RS (``.../series/R/metadata``) gives every instance's header as DICOM JSON. Each
header becomes a pydicom Dataset and then the same :class:`~wsikit.backends.dicom.series.Instance`
the local DICOM backend reads from a file (:func:`~wsikit.backends.dicom.series.read_instance`),
its ``path`` the instance's URL, so that levels, frame positions, colour and metadata
follow the local backend's rules exactly.

The stored transfer syntax is taken from the metadata when the server gives it (Transfer
Syntax UID, or Available Transfer Syntax UID); otherwise the first frame's answer says it.
A series the server does not list is a :class:`~.client.DICOMwebError` (HTTP 404); an
instance listed without metadata, or metadata that is not DICOM JSON, a CorruptSlideError.
"""
from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, NamedTuple

from ...errors import CorruptSlideError, UnsupportedFormatError
from ..dicom.header import pydicom_warnings_silenced
from ..dicom.series import Instance, image_kind, read_instance
from .client import DICOMwebError, HTTPClient
from .url import SeriesURL

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

_SOP_INSTANCE_UID = "00080018"
_NUMBER_OF_FRAMES = "00280008"
_TRANSFER_SYNTAX_TAGS = ("00020010", "00083002")  # Transfer Syntax UID, Available Transfer Syntax UID


class Listed(NamedTuple):
    """An instance as QIDO-RS lists it."""

    uid: str
    frames: int  # Number of Frames (1 when not given)
    transfer_syntax: str | None  # when the server says


def _listed(item: Any) -> Listed:
    frames = _first_value(item, _NUMBER_OF_FRAMES)
    syntax = next((value for tag in _TRANSFER_SYNTAX_TAGS if (value := _first_value(item, tag))), None)
    return Listed(str(_first_value(item, _SOP_INSTANCE_UID)), int(frames) if frames and frames.isdigit() else 1,
                  syntax)


def _first_value(item: Any, tag: str) -> str | None:
    try:
        value = item[tag]["Value"][0]
    except (KeyError, IndexError, TypeError):
        return None
    return str(value) if value is not None else None


def fetch_series(client: HTTPClient, series: SeriesURL,
                 on_listed: Callable[[list[Listed]], None] | None = None) -> list[dict[str, Any]]:
    """The DICOM JSON header of every instance of the series (QIDO-RS and WADO-RS at once).

    ``on_listed`` is called with the instances QIDO-RS lists as soon as they are known,
    while the metadata (slower on most servers) is still on its way.
    """
    with ThreadPoolExecutor(2, thread_name_prefix="wsikit-dicomweb-open") as pool:
        listed_future = pool.submit(client.get_json, f"{series.url}/instances", "the list of the series' instances")
        metadata_future = pool.submit(client.get_json, f"{series.url}/metadata", "the series metadata")
        try:
            listed = listed_future.result()
        except DICOMwebError:
            metadata_future.cancel()
            raise
        if not isinstance(listed, list):
            raise CorruptSlideError(series.url, "the list of instances (QIDO-RS) is not a JSON array")
        if not listed:
            metadata_future.cancel()
            raise DICOMwebError(series.url, "the server has no instances of this series (no such study or series)",
                                404)
        if on_listed is not None:
            on_listed([_listed(item) for item in listed if _first_value(item, _SOP_INSTANCE_UID)])
        metadata = metadata_future.result()
    if not isinstance(metadata, list) or not all(isinstance(item, dict) for item in metadata):
        raise CorruptSlideError(series.url, "the series metadata (WADO-RS) is not a JSON array of datasets")
    uids = {_first_value(item, _SOP_INSTANCE_UID) for item in metadata}
    missing = [uid for item in listed if (uid := _first_value(item, _SOP_INSTANCE_UID)) not in uids]
    if missing:
        raise CorruptSlideError(series.url, f"the series metadata lacks {len(missing)} of the {len(listed)} instances "
                                            f"the server lists (first: {missing[0]})")
    return metadata


def dataset_of(item: dict[str, Any], url: str) -> Dataset:
    """A pydicom Dataset of one instance's DICOM JSON, with the transfer syntax where the server gives it."""
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import UID

    try:
        with pydicom_warnings_silenced():
            # Bulk data (offset tables, ICC profiles) is not needed: the server cuts frames out.
            ds = pydicom.Dataset.from_json(item, bulk_data_uri_handler=lambda *_: None)
    except Exception as exc:
        raise CorruptSlideError(url, f"the instance's metadata is not valid DICOM JSON: {type(exc).__name__}: "
                                     f"{exc}") from None
    syntax = next((value for tag in _TRANSFER_SYNTAX_TAGS if (value := _first_value(item, tag))), None)
    if syntax:
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = UID(syntax)
    return ds


def series_instances(client: HTTPClient, series: SeriesURL,
                     on_listed: Callable[[list[Listed]], None] | None = None) -> list[Instance]:
    """The whole-slide instances of the series, as the local DICOM backend describes files.

    A broken VOLUME instance makes the slide unreadable (dropping it would shift levels);
    a broken label, overview or thumbnail is left out, as for local series.
    """
    instances: list[Instance] = []
    seen: set[str] = set()
    for item in fetch_series(client, series, on_listed):
        uid = _first_value(item, _SOP_INSTANCE_UID)
        if not uid or uid in seen:
            continue
        seen.add(uid)
        url = series.instance_url(uid)
        ds = dataset_of(item, url)
        try:
            with pydicom_warnings_silenced():
                instance = read_instance(url, (ds, 0), file_size=0)
        except (CorruptSlideError, UnsupportedFormatError):
            if image_kind(ds) == "VOLUME":
                raise
            continue
        if instance is not None:
            instances.append(instance)
    if not instances:
        raise UnsupportedFormatError(series.url, "the series holds no DICOM whole-slide image (no instance of the VL "
                                                 "Whole Slide Microscopy class or with a total pixel matrix)")
    return instances


__all__ = ["Listed", "dataset_of", "fetch_series", "series_instances"]
