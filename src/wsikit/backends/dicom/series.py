"""Gathering a DICOM whole-slide series and describing where each frame sits.

A series is the set of instances (files) that share a Series Instance UID: VOLUME
instances are the pyramid levels (an instance per level, or several when a level is
split by concatenation, focal plane or optical path), THUMBNAIL, LABEL and OVERVIEW
instances are associated images. This module reads headers only (pydicom with
``stop_before_pixels``, tolerant of files that bend the standard: no Image Type, no
functional groups, over-long values) and says, for every frame of a level, its optical
path, focal plane and (i, j) position. Pixels are read elsewhere.
"""
from __future__ import annotations

import contextlib
import os
import re
import warnings
from dataclasses import dataclass, field

import numpy as np

from ...errors import CorruptSlideError, UnsupportedFormatError

WSI_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.77.1.6"
IMAGE_KINDS = ("VOLUME", "THUMBNAIL", "LABEL", "OVERVIEW")
_HEADER_TAGS = ["SOPClassUID", "TotalPixelMatrixRows", "TotalPixelMatrixColumns", "SeriesInstanceUID", "ImageType"]


@contextlib.contextmanager
def quiet():
    """Silence pydicom's warnings about values that bend the standard (over-long strings,
    odd formats): common in real files, harmless here. pydicom checks a value when it is
    first read, so every access to header values runs inside this."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _quiet_read(source, **kwargs):
    import pydicom

    with quiet():
        return pydicom.dcmread(source, force=True, **kwargs)


def has_dicom_magic(path: str) -> bool:
    """A Part 10 preamble ('DICM' at byte 128), or a bare dataset starting with group 0002/0008."""
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    if len(head) == 132 and head[128:132] == b"DICM":
        return True
    return len(head) >= 8 and head[:2] in (b"\x02\x00", b"\x08\x00") and head[2:4] in (b"\x00\x00", b"\x01\x00", b"\x05\x00", b"\x08\x00", b"\x16\x00", b"\x18\x00")


def get(ds, keyword: str, default=None):
    """An attribute's value, or ``default`` when absent, empty or unreadable."""
    try:
        value = getattr(ds, keyword, None)
    except Exception:  # a malformed value must not break reading the rest
        return default
    if value is None or (isinstance(value, (str, bytes, list, tuple)) and len(value) == 0):
        return default
    return value


def first_item(ds, *keywords):
    """The first item of nested sequences (``first_item(ds, "A", "B")`` = ds.A[0].B[0]), or None."""
    for keyword in keywords:
        sequence = get(ds, keyword)
        if not sequence:
            return None
        try:
            ds = sequence[0]
        except Exception:
            return None
    return ds


def number(value, kind=float, default=None):
    try:
        return kind(value)
    except (TypeError, ValueError):
        return default


def is_wsi_header(ds) -> bool:
    """Whether a header describes a tiled whole-slide image (by SOP class or total pixel matrix)."""
    return str(get(ds, "SOPClassUID", "")) == WSI_SOP_CLASS or get(ds, "TotalPixelMatrixColumns") is not None


def is_wsi_file(path: str) -> bool:
    """Cheap test: a DICOM file whose header says whole-slide image. Never raises."""
    if not os.path.isfile(path) or not has_dicom_magic(path):
        return False
    try:
        with quiet():
            return is_wsi_header(_quiet_read(path, stop_before_pixels=True, specific_tags=_HEADER_TAGS))
    except Exception:
        return False


def folder_files(folder: str) -> list[str]:
    """Files of a folder that may be DICOM (not recursive, hidden files skipped)."""
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return []
    return [e.path for e in entries if not e.name.startswith(".") and e.is_file() and has_dicom_magic(e.path)]


@dataclass
class Instance:
    """One DICOM image file of the series, described from its header."""

    path: str
    ds: object
    pixel_tag_offset: int
    transfer_syntax: str | None
    kind: str
    shape: tuple[int, int] | None  # total pixel matrix (rows, columns)
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
    def grid(self) -> tuple[int, int]:
        h, w = self.shape
        th, tw = self.tile_shape
        return -(-h // th), -(-w // tw)


def read_header(path: str):
    """(dataset without pixels, byte where the pixel data element starts); parsed, not checked."""
    with open(path, "rb") as f:
        ds = _quiet_read(f, stop_before_pixels=True)
        return ds, f.tell()


def read_instance(path: str, header=None) -> Instance | None:
    """The instance a file holds, or None when it is not a whole-slide image.

    Raises CorruptSlideError / UnsupportedFormatError for a whole-slide image whose header
    cannot describe a readable image.
    """
    ds, tag_offset = read_header(path) if header is None else header
    if not is_wsi_header(ds):
        return None
    meta = getattr(ds, "file_meta", None)
    transfer_syntax = str(get(meta, "TransferSyntaxUID", "")) or None if meta is not None else None
    if transfer_syntax == "1.2.840.10008.1.2.1.99":
        raise UnsupportedFormatError(path, "deflated DICOM (the whole dataset compressed) cannot be read frame by frame")
    kind = image_kind(ds)
    rows, cols = number(get(ds, "Rows"), int), number(get(ds, "Columns"), int)
    if not rows or not cols or rows <= 0 or cols <= 0:
        raise CorruptSlideError(path, "the header has no frame size (Rows / Columns)")
    frames = number(get(ds, "NumberOfFrames", 1), int, None)
    if frames is None or frames < 1:
        raise CorruptSlideError(path, f"invalid Number of Frames {get(ds, 'NumberOfFrames')!r}")
    total = (number(get(ds, "TotalPixelMatrixRows"), int), number(get(ds, "TotalPixelMatrixColumns"), int))
    if total[0] is None or total[1] is None or total[0] <= 0 or total[1] <= 0:
        if kind != "VOLUME" and frames == 1:
            total = (rows, cols)  # a label or overview written as one plain frame
        else:
            missing = [name for name, v in zip(("Rows", "Columns"), total) if v is None or v <= 0]
            raise CorruptSlideError(path, f"the header has no Total Pixel Matrix size (Total Pixel Matrix {' and '.join(missing)} missing)")
    samples = number(get(ds, "SamplesPerPixel", 1), int, 1)
    bits = number(get(ds, "BitsAllocated", 8), int, 8)
    if bits not in (8, 16, 32):
        raise UnsupportedFormatError(path, f"{bits}-bit pixel data is not a layout wsikit reads")
    signed = number(get(ds, "PixelRepresentation", 0), int, 0) == 1
    dtype = np.dtype(f"{'i' if signed else 'u'}{bits // 8}")
    photometric = str(get(ds, "PhotometricInterpretation", "RGB" if samples == 3 else "MONOCHROME2")).strip().upper()
    if samples not in (1, 3) or photometric in ("PALETTE COLOR", "ARGB", "CMYK"):
        raise UnsupportedFormatError(path, f"{samples}-sample {photometric} images are not a layout wsikit reads")
    uid = str(get(ds, "SOPInstanceUID", "")) or path
    concatenation = str(get(ds, "SOPInstanceUIDOfConcatenationSource", "")) or uid
    organisation = str(get(ds, "DimensionOrganizationType", "")).strip().upper()
    # Without a stated organisation, frames with positions of their own make a sparse tiling.
    sparse = organisation == "TILED_SPARSE" or (organisation != "TILED_FULL" and _has_positions(ds))
    paths = [str(get(item, "OpticalPathIdentifier", k)) for k, item in enumerate(get(ds, "OpticalPathSequence", []) or [])]
    return Instance(
        path=path, ds=ds, pixel_tag_offset=tag_offset, transfer_syntax=transfer_syntax, kind=kind,
        shape=(int(total[0]), int(total[1])), tile_shape=(rows, cols), frame_count=frames, samples=samples,
        photometric=photometric, dtype=dtype, planar=number(get(ds, "PlanarConfiguration", 0), int, 0), sparse=sparse,
        concatenation=concatenation, concatenation_number=number(get(ds, "InConcatenationNumber", 0), int, 0),
        frame_offset=number(get(ds, "ConcatenationFrameOffsetNumber", 0), int, 0) or 0, optical_path_ids=paths,
        focal_plane_count=number(get(ds, "TotalPixelMatrixFocalPlanes"), int), uid=uid,
        pyramid=str(get(ds, "PyramidUID", "")), file_size=os.path.getsize(path),
    )


def _has_positions(ds) -> bool:
    if "PerFrameFunctionalGroupsSequence" not in ds:
        return False
    fast = _raw_positions(ds)
    if fast is not None:
        return len(fast[0]) > 0
    try:
        return first_item(ds.PerFrameFunctionalGroupsSequence[0], "PlanePositionSlideSequence") is not None
    except Exception:
        return False


def image_kind(ds) -> str:
    """VOLUME, THUMBNAIL, LABEL or OVERVIEW from Image Type (VOLUME when it says none)."""
    values = get(ds, "ImageType", [])
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
            by_series.setdefault(str(get(ds, "SeriesInstanceUID", "")), []).append(candidate)
        members = max(by_series.values(), key=lambda paths: max(_header_area(headers[p][0]) for p in paths))
    else:
        header = read_header(path)
        if not is_wsi_header(header[0]):
            raise UnsupportedFormatError(path, "not a DICOM whole-slide image (no WSI SOP class, no total pixel matrix)")
        headers = {path: header}
        members = [path]
        if whole_series:
            wanted = str(get(header[0], "SeriesInstanceUID", ""))
            siblings = [p for p in folder_files(os.path.dirname(os.path.abspath(path)) or ".") if not _same_file(p, path)]
            for sibling, sibling_header in _wsi_headers(siblings).items():
                if str(get(sibling_header[0], "SeriesInstanceUID", "")) == wanted:
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


def _wsi_headers(paths: list[str]) -> dict:
    """path -> header of the files that parse as whole-slide image headers."""
    headers = {}
    for candidate in paths:
        try:
            header = read_header(candidate)
        except Exception:  # not parseable as DICOM: not part of any series
            continue
        if is_wsi_header(header[0]):
            headers[candidate] = header
    return headers


def _header_area(ds) -> int:
    if image_kind(ds) != "VOLUME":
        return 0
    rows = number(get(ds, "TotalPixelMatrixRows"), int, 0) or 0
    cols = number(get(ds, "TotalPixelMatrixColumns"), int, 0) or 0
    return rows * cols


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


# -- frame positions -----------------------------------------------------------------------
@dataclass
class FramePositions:
    """Per frame of a level (in the level's frame order): source instance and where it sits."""

    instance: np.ndarray  # index into the level's instances
    local: np.ndarray  # frame number within that instance
    i: np.ndarray  # top-left row in level pixels
    j: np.ndarray  # top-left column
    path: list[str]  # optical path identifier of each frame
    z: np.ndarray  # focal plane (microns when known, else the plane's index)
    paths: list[str] = field(default_factory=list)  # identifiers in order of first appearance


def frame_positions(instances: list[Instance]) -> FramePositions:
    """Positions of every frame of instances that make one level (same size and frame shape)."""
    parts = []
    groups: dict[str, list[int]] = {}
    for k, instance in enumerate(instances):
        groups.setdefault(instance.concatenation, []).append(k)
    for members in groups.values():
        total = sum(instances[k].frame_count for k in members)
        for k in members:
            instance = instances[k]
            if instance.sparse:
                parts.append((k,) + _sparse_positions(instance))
            else:
                parts.append((k,) + _full_positions(instance, total))
    instance_ids = np.concatenate([np.full(len(p[1]), p[0], dtype=np.int32) for p in parts])
    local = np.concatenate([np.arange(len(p[1]), dtype=np.int64) for p in parts])
    i = np.concatenate([p[1] for p in parts])
    j = np.concatenate([p[2] for p in parts])
    z = np.concatenate([p[4] for p in parts])
    path: list[str] = [identifier for p in parts for identifier in p[3]]
    order = list(dict.fromkeys(path))
    return FramePositions(instance_ids, local, i, j, path, z, order)


def _full_positions(instance: Instance, concatenated_frames: int):
    """TILED_FULL: column fastest, then row, then focal plane, then optical path."""
    rows, cols = instance.grid
    tiles = rows * cols
    paths = instance.optical_path_ids or ["0"]
    planes = instance.focal_plane_count or 1
    declared_paths = number(get(instance.ds, "NumberOfOpticalPaths"), int) or len(paths)
    if instance.focal_plane_count is None and declared_paths == 1 and concatenated_frames > tiles and concatenated_frames % tiles == 0:
        planes = concatenated_frames // tiles  # focal planes the header forgot to count
    needed = tiles * planes * max(1, declared_paths)
    if concatenated_frames < needed:
        raise CorruptSlideError(
            instance.path,
            f"frame count disagrees with the image size: TILED_FULL {instance.shape[0]} x {instance.shape[1]} in "
            f"{instance.tile_shape[0]} x {instance.tile_shape[1]} frames needs {needed} frames "
            f"({rows} x {cols} tiles x {planes} planes x {max(1, declared_paths)} paths), Number of Frames says {concatenated_frames}")
    g = instance.frame_offset + np.arange(instance.frame_count, dtype=np.int64)
    t = g % tiles
    plane = (g // tiles) % planes
    path_index = g // (tiles * planes)
    z0 = number(get(first_item(instance.ds, "SharedFunctionalGroupsSequence", "PlanePositionSlideSequence"), "ZOffsetInSlideCoordinateSystem"), float, 0.0) or 0.0
    spacing = number(get(first_item(instance.ds, "SharedFunctionalGroupsSequence", "PixelMeasuresSequence"), "SpacingBetweenSlices"), float)
    z = z0 + plane * spacing * 1000.0 if spacing else plane.astype(np.float64) + (z0 if planes == 1 else 0.0)
    ids = [paths[p] if p < len(paths) else str(p) for p in path_index.tolist()]
    return (t // cols) * instance.tile_shape[0], (t % cols) * instance.tile_shape[1], ids, np.round(np.asarray(z, dtype=np.float64), 3)


# Elements of the per-frame functional groups, as they appear in little-endian bytes:
# (group, element) then, in explicit VR, the VR and a 2-byte length, else a 4-byte length.
_COLUMN, _ROW = b"\x48\x00\x1e\x02", b"\x48\x00\x1f\x02"
_Z_OFFSET, _PATH_ID = b"\x40\x00\x4a\x07", b"\x48\x00\x06\x01"


def _raw_positions(ds):
    """Frame positions read straight from the raw bytes of the per-frame functional groups.

    pydicom builds a Dataset per frame when the sequence is first touched: seconds for
    the 10^4 - 10^5 frames of a real sparse slide. The four elements needed have fixed
    encodings, so they are found by pattern in the raw value instead. Returns (rows,
    columns, z strings or None, path ids or None), 1-based positions; None when the raw
    value is not at hand or the counts do not add up (then pydicom reads it, slowly).
    """
    try:
        raw = ds.get_item(0x52009230)
    except Exception:
        return None
    value = getattr(raw, "value", None)
    if type(raw).__name__ != "RawDataElement" or not isinstance(value, bytes) or not raw.is_little_endian:
        return None
    if raw.is_implicit_VR:
        def fixed(tag):
            return re.compile(re.escape(tag + b"\x04\x00\x00\x00") + b"(.{4})", re.DOTALL)

        def text(tag):
            return re.compile(re.escape(tag) + b"(.{4})", re.DOTALL), "<I"
    else:
        def fixed(tag):
            return re.compile(re.escape(tag + b"SL\x04\x00") + b"(.{4})", re.DOTALL)

        def text(tag):
            vr = b"DS" if tag == _Z_OFFSET else b"SH"
            return re.compile(re.escape(tag + vr) + b"(.{2})", re.DOTALL), "<H"

    columns = b"".join(m.group(1) for m in fixed(_COLUMN).finditer(value))
    rows = b"".join(m.group(1) for m in fixed(_ROW).finditer(value))
    if len(columns) != len(rows):
        return None
    strings = []
    for tag in (_Z_OFFSET, _PATH_ID):
        pattern, length_format = text(tag)
        found = []
        for m in pattern.finditer(value):
            (length,) = np.frombuffer(m.group(1), length_format)
            found.append(value[m.end() : m.end() + int(length)].decode("ascii", "replace").strip(" \x00"))
        strings.append(found)
    return np.frombuffer(rows, "<i4").astype(np.int64), np.frombuffer(columns, "<i4").astype(np.int64), strings[0], strings[1]


def _sparse_positions(instance: Instance):
    """TILED_SPARSE: each frame's position from its Plane Position (Slide) functional group."""
    fast = _raw_positions(instance.ds)
    n = instance.frame_count
    if fast is not None and len(fast[0]) == n and len(fast[2]) in (0, n) and len(fast[3]) in (0, n):
        return _positions_from_raw(instance, *fast)
    per_frame = get(instance.ds, "PerFrameFunctionalGroupsSequence") or []
    if len(per_frame) != instance.frame_count:
        raise CorruptSlideError(
            instance.path, f"frame count disagrees with the per-frame functional groups: they describe {len(per_frame)} frames, "
                           f"Number of Frames says {instance.frame_count}")
    default_path = _default_path(instance)
    n = instance.frame_count
    i = np.empty(n, dtype=np.int64)
    j = np.empty(n, dtype=np.int64)
    z = np.zeros(n, dtype=np.float64)
    ids = []
    th, tw = instance.tile_shape
    for k, item in enumerate(per_frame):
        position = first_item(item, "PlanePositionSlideSequence")
        row = number(get(position, "RowPositionInTotalImagePixelMatrix"), int)
        col = number(get(position, "ColumnPositionInTotalImagePixelMatrix"), int)
        if row is None or col is None:
            raise CorruptSlideError(instance.path, f"TILED_SPARSE frame {k} has no position in the total pixel matrix")
        i[k], j[k] = row - 1, col - 1
        if i[k] % th or j[k] % tw:
            raise UnsupportedFormatError(
                instance.path, f"TILED_SPARSE frame {k} at (i, j) = ({i[k]}, {j[k]}) is not on the {th} x {tw} frame grid")
        z[k] = number(get(position, "ZOffsetInSlideCoordinateSystem"), float, 0.0) or 0.0
        path_id = get(first_item(item, "OpticalPathIdentificationSequence"), "OpticalPathIdentifier")
        ids.append(str(path_id) if path_id is not None else default_path)
    return i, j, ids, np.round(z, 3)


def _default_path(instance: Instance) -> str:
    shared = get(first_item(instance.ds, "SharedFunctionalGroupsSequence", "OpticalPathIdentificationSequence"), "OpticalPathIdentifier")
    return str(shared) if shared is not None else (instance.optical_path_ids or ["0"])[0]


def _positions_from_raw(instance: Instance, rows, columns, z_texts, path_ids):
    i, j = rows - 1, columns - 1
    th, tw = instance.tile_shape
    off_grid = np.flatnonzero((i % th != 0) | (j % tw != 0))
    if len(off_grid):
        k = int(off_grid[0])
        raise UnsupportedFormatError(
            instance.path, f"TILED_SPARSE frame {k} at (i, j) = ({i[k]}, {j[k]}) is not on the {th} x {tw} frame grid")
    z = np.array([number(t, float, 0.0) or 0.0 for t in z_texts], dtype=np.float64) if z_texts else np.zeros(len(i))
    ids = [str(p) for p in path_ids] if path_ids else [_default_path(instance)] * len(i)
    return i, j, ids, np.round(z, 3)


__all__ = [
    "FramePositions",
    "Instance",
    "first_item",
    "folder_files",
    "frame_positions",
    "gather_series",
    "get",
    "has_dicom_magic",
    "image_kind",
    "is_wsi_file",
    "is_wsi_header",
    "number",
    "quiet",
    "read_header",
    "read_instance",
]
