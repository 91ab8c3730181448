"""Gathering a DICOM whole-slide series: which files are its instances, and what each holds.

A series is the set of instances (files) that share a Series Instance UID: VOLUME
instances are the pyramid levels (an instance per level, or several when a level is
split by concatenation, focal plane or optical path), THUMBNAIL, LABEL and OVERVIEW
instances are associated images. This module reads headers only (:mod:`.header`, tolerant
of files that bend the standard: no Image Type, no functional groups, over-long values)
and describes each instance: its frame size and count, pixel type, tiling and where its
pixel data starts. Where each frame sits is :mod:`.positions`; pixels are read elsewhere.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ...errors import CorruptSlideError, UnsupportedFormatError
from .header import element_value, folder_files, int_or, is_wsi_header, read_header
from .positions import has_positions

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

IMAGE_KINDS = ("VOLUME", "THUMBNAIL", "LABEL", "OVERVIEW")


@dataclass
class Instance:
    """One DICOM image file of the series, described from its header."""

    path: str
    ds: Dataset
    pixel_tag_offset: int
    transfer_syntax: str | None
    kind: str
    shape: tuple[int, int]  # total pixel matrix (rows, columns)
    tile_shape: tuple[int, int]  # Rows, Columns of one frame
    frame_count: int
    samples: int
    photometric: str
    dtype: np.dtype
    planar: int
    sparse: bool
    concatenation: str  # the concatenation source UID, or the instance's own UID
    concatenation_number: int
    frame_offset: int  # Concatenation Frame Offset Number
    optical_path_ids: list[str]
    focal_plane_count: int | None
    uid: str = ""
    pyramid: str = ""
    file_size: int = 0

    @property
    def tile_counts(self) -> tuple[int, int]:
        """Frame positions down and across the total pixel matrix."""
        h, w = self.shape
        th, tw = self.tile_shape
        return -(-h // th), -(-w // tw)


def read_instance(path: str, header: tuple[Dataset, int] | None = None, *,
                  file_size: int | None = None) -> Instance | None:
    """The instance a file holds, or None when it is not a whole-slide image.

    ``file_size`` is the file's size when known (a header that came over the network
    rather than from a file at ``path``).

    Raises CorruptSlideError / UnsupportedFormatError for a whole-slide image whose header
    cannot describe a readable image.
    """
    ds, tag_offset = read_header(path) if header is None else header
    if not is_wsi_header(ds):
        return None
    meta = getattr(ds, "file_meta", None)
    transfer_syntax = str(element_value(meta, "TransferSyntaxUID", "")) or None if meta is not None else None
    if transfer_syntax == "1.2.840.10008.1.2.1.99":
        raise UnsupportedFormatError(path, "deflated DICOM (the whole dataset compressed) cannot be read frame by "
                                           "frame")
    kind = image_kind(ds)
    rows, cols = int_or(element_value(ds, "Rows"), None), int_or(element_value(ds, "Columns"), None)
    if not rows or not cols or rows <= 0 or cols <= 0:
        raise CorruptSlideError(path, "the header has no frame size (Rows / Columns)")
    frames = int_or(element_value(ds, "NumberOfFrames", 1), None)
    if frames is None or frames < 1:
        raise CorruptSlideError(path, f"invalid Number of Frames {element_value(ds, 'NumberOfFrames')!r}")
    total_rows = int_or(element_value(ds, "TotalPixelMatrixRows"), None)
    total_cols = int_or(element_value(ds, "TotalPixelMatrixColumns"), None)
    if total_rows is None or total_cols is None or total_rows <= 0 or total_cols <= 0:
        if kind != "VOLUME" and frames == 1:
            total_rows, total_cols = rows, cols  # a label or overview written as one plain frame
        else:
            missing = [name for name, v in (("Rows", total_rows), ("Columns", total_cols)) if v is None or v <= 0]
            raise CorruptSlideError(path, f"the header has no Total Pixel Matrix size (Total Pixel Matrix "
                                          f"{' and '.join(missing)} missing)")
    samples = int_or(element_value(ds, "SamplesPerPixel", 1), 1)
    bits = int_or(element_value(ds, "BitsAllocated", 8), 8)
    if bits not in (8, 16, 32):
        raise UnsupportedFormatError(path, f"{bits}-bit pixel data is not a layout wsikit reads")
    signed = int_or(element_value(ds, "PixelRepresentation", 0), 0) == 1
    dtype = np.dtype(f"{'i' if signed else 'u'}{bits // 8}")
    default_photometric = "RGB" if samples == 3 else "MONOCHROME2"
    photometric = str(element_value(ds, "PhotometricInterpretation", default_photometric)).strip().upper()
    if samples not in (1, 3) or photometric in ("PALETTE COLOR", "ARGB", "CMYK"):
        raise UnsupportedFormatError(path, f"{samples}-sample {photometric} images are not a layout wsikit reads")
    uid = str(element_value(ds, "SOPInstanceUID", "")) or path
    concatenation = str(element_value(ds, "SOPInstanceUIDOfConcatenationSource", "")) or uid
    organisation = str(element_value(ds, "DimensionOrganizationType", "")).strip().upper()
    # Without a stated organisation, frames with positions of their own make a sparse tiling.
    sparse = organisation == "TILED_SPARSE" or (organisation != "TILED_FULL" and has_positions(ds))
    path_items = element_value(ds, "OpticalPathSequence", []) or []
    paths = [str(element_value(item, "OpticalPathIdentifier", k)) for k, item in enumerate(path_items)]
    return Instance(
        path=path, ds=ds, pixel_tag_offset=tag_offset, transfer_syntax=transfer_syntax, kind=kind,
        shape=(total_rows, total_cols), tile_shape=(rows, cols), frame_count=frames, samples=samples,
        photometric=photometric, dtype=dtype, planar=int_or(element_value(ds, "PlanarConfiguration", 0), 0),
        sparse=sparse,
        concatenation=concatenation, concatenation_number=int_or(element_value(ds, "InConcatenationNumber", 0), 0),
        frame_offset=int_or(element_value(ds, "ConcatenationFrameOffsetNumber", 0), 0) or 0, optical_path_ids=paths,
        focal_plane_count=int_or(element_value(ds, "TotalPixelMatrixFocalPlanes"), None), uid=uid,
        pyramid=str(element_value(ds, "PyramidUID", "")),
        file_size=os.path.getsize(path) if file_size is None else file_size,
    )


def image_kind(ds: Dataset) -> str:
    """VOLUME, THUMBNAIL, LABEL or OVERVIEW from Image Type (VOLUME when it says none)."""
    values = element_value(ds, "ImageType", [])
    if isinstance(values, str):
        values = [values]
    values = [str(v).strip().upper() for v in values]
    if len(values) >= 3 and values[2] in IMAGE_KINDS:
        return values[2]
    for kind in IMAGE_KINDS[1:]:
        if kind in values:
            return kind
    return "VOLUME"


def gather_series(path: str, whole_series: bool = True) -> list[Instance]:
    """The whole-slide instances of the series at ``path`` (a folder, or any file of it).

    In a folder of several series the one with the largest VOLUME image is read. A
    VOLUME instance of the series that cannot be read makes the slide corrupt (silently
    dropping it would shift the levels); a broken label or overview is left out.
    """
    if os.path.isdir(path):
        headers = _wsi_headers(folder_files(path))
        if not headers:
            raise UnsupportedFormatError(path, "no DICOM whole-slide image found in the folder")
        by_series: dict[str, list[str]] = {}
        for candidate, (ds, _) in headers.items():
            by_series.setdefault(str(element_value(ds, "SeriesInstanceUID", "")), []).append(candidate)
        members = max(by_series.values(), key=lambda paths: max(_header_area(headers[p][0]) for p in paths))
    else:
        header = read_header(path)
        if not is_wsi_header(header[0]):
            raise UnsupportedFormatError(path, "not a DICOM whole-slide image (no WSI SOP class, no total pixel "
                                               "matrix)")
        headers = {path: header}
        members = [path]
        if whole_series:
            wanted = str(element_value(header[0], "SeriesInstanceUID", ""))
            folder = os.path.dirname(os.path.abspath(path)) or "."
            siblings = [p for p in folder_files(folder) if not _same_file(p, path)]
            for sibling, sibling_header in _wsi_headers(siblings).items():
                if str(element_value(sibling_header[0], "SeriesInstanceUID", "")) == wanted:
                    headers[sibling] = sibling_header
                    members.append(sibling)
    instances: list[Instance] = []
    seen: set[str] = set()
    for member in members:
        ds = headers[member][0]
        try:
            instance = read_instance(member, headers[member])
        except (CorruptSlideError, UnsupportedFormatError):
            if image_kind(ds) == "VOLUME" or member == path:
                raise
            continue
        if instance is None or instance.uid in seen:
            continue  # the same instance twice (a copy) counts once
        seen.add(instance.uid)
        instances.append(instance)
    return instances


def _wsi_headers(paths: list[str]) -> dict[str, tuple[Dataset, int]]:
    """path -> header of the files that parse as whole-slide image headers."""
    headers: dict[str, tuple[Dataset, int]] = {}
    for candidate in paths:
        try:
            header = read_header(candidate)
        except Exception:  # not parseable as DICOM: not part of any series
            continue
        if is_wsi_header(header[0]):
            headers[candidate] = header
    return headers


def _header_area(ds: Dataset) -> int:
    if image_kind(ds) != "VOLUME":
        return 0
    rows = int_or(element_value(ds, "TotalPixelMatrixRows"), 0) or 0
    cols = int_or(element_value(ds, "TotalPixelMatrixColumns"), 0) or 0
    return rows * cols


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


__all__ = ["IMAGE_KINDS", "Instance", "gather_series", "image_kind", "read_instance"]
