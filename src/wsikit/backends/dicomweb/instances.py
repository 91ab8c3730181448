"""The instances of a DICOMweb series, described from the server's metadata.

Two requests, sent at once: QIDO-RS (``.../series/R/instances``) lists the instances, and
WADO-RS (``.../series/R/metadata``) gives every instance's header as DICOM JSON. Each
header becomes a pydicom Dataset and then the same :class:`~wsikit.backends.dicom.series.Instance`
the local DICOM backend reads from a file (:func:`~wsikit.backends.dicom.series.read_instance`),
its ``path`` the instance's URL, so that levels, frame positions, colour and metadata
follow the local backend's rules exactly.

The stored transfer syntax is taken from the metadata when the server gives it (Transfer
Syntax UID, or Available Transfer Syntax UID); otherwise the first frame's answer says it.
A series the server does not list is a :class:`~.client.DICOMwebNotFoundError` (also a
FileNotFoundError); an
instance listed without metadata, or metadata that is not DICOM JSON, a CorruptSlideError.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, NamedTuple

from ...errors import CorruptSlideError, UnsupportedFormatError
from ..dicom.header import pydicom_warnings_silenced
from ..dicom.series import Instance, image_kind, read_instance
from .client import Answer, DICOMwebError, DICOMwebNotFoundError, HTTPClient
from .multipart import BadAnswer, media_type, split_multipart
from .url import SeriesURL

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

_SOP_INSTANCE_UID = "00080018"
_NUMBER_OF_FRAMES = "00280008"
_FETCHED_BULK = {"00282000"}  # ICC Profile
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
            raise DICOMwebNotFoundError(series.url, "the server has no instances of this series (no such study or "
                                                    "series)", 404)
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


def dataset_of(item: dict[str, Any], url: str, bulk: Callable[[str], bytes | None] | None = None) -> Dataset:
    """A pydicom Dataset of one instance's DICOM JSON, with the transfer syntax where the server gives it.

    Of the values the server leaves out as bulk data, only ICC profiles are fetched (with
    ``bulk``); offset tables and the like are not needed: the server cuts frames out.
    """
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import UID

    def bulk_value(tag: str, vr: str, uri: str) -> bytes | None:
        return bulk(uri) if bulk is not None and tag.upper() in _FETCHED_BULK else None

    try:
        with pydicom_warnings_silenced():
            ds = pydicom.Dataset.from_json(item, bulk_data_uri_handler=bulk_value)
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
        ds = dataset_of(item, url, functools.partial(fetch_bulk, client, series))
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


def fetch_bulk(client: HTTPClient, series: SeriesURL, uri: str) -> bytes | None:
    """The value at a BulkDataURI, fetched from the series' own server only (the request
    headers, credentials maybe, go nowhere else): a URI on another origin is taken to be
    the same server seen from elsewhere (behind a proxy) when its path is under the
    series' path, and is otherwise not fetched (None)."""
    own, other = urlsplit(series.url), urlsplit(uri)
    if (other.scheme, other.netloc) != (own.scheme, own.netloc):
        if not other.path.startswith(own.path + "/"):
            return None
        uri = urlunsplit((own.scheme, own.netloc, other.path, other.query, ""))

    def check(answer: Answer) -> bytes:
        kind, _ = media_type(answer.content_type)
        if kind.startswith("multipart/"):
            parts = split_multipart(answer.content_type, answer.body)
            if len(parts) != 1:
                raise BadAnswer(f"{len(parts)} parts for one bulk data value")
            return parts[0].data
        if kind != "application/octet-stream":
            raise BadAnswer(f"expected bulk data, got {kind or 'no Content-Type'}")
        return answer.body

    return client.get(uri, 'multipart/related; type="application/octet-stream"', check, "a bulk data value")


__all__ = ["Listed", "dataset_of", "fetch_bulk", "fetch_series", "series_instances"]
