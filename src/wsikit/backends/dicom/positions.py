"""Where each frame of a DICOM whole-slide level sits: position, focal plane, optical path.

TILED_FULL instances store frames in a fixed order (column fastest, then row, then focal
plane, then optical path), continued across the instances of a concatenation.
TILED_SPARSE instances give each frame's position in its Plane Position (Slide)
functional group; those are read from the raw bytes of the per-frame functional groups
where the encoding allows (:func:`raw_positions`), as pydicom is slow to build a dataset
per frame. A sparse frame off the frame grid is an UnsupportedFormatError; a frame count
that disagrees with the image size or with the functional groups is a CorruptSlideError.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from ...errors import CorruptSlideError, UnsupportedFormatError
from .header import element_value, first_sequence_item, float_or, int_or

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

    from .series import Instance


class _Placement(NamedTuple):
    """Where the frames of one instance sit, in the instance's frame order."""

    i: np.ndarray  # top-left row in level pixels
    j: np.ndarray  # top-left column
    path: list[str]  # optical path identifier of each frame
    z: np.ndarray  # focal plane


def has_positions(ds: Dataset) -> bool:
    """Whether the per-frame functional groups give frames positions of their own."""
    if "PerFrameFunctionalGroupsSequence" not in ds:
        return False
    fast = raw_positions(ds)
    if fast is not None:
        return len(fast[0]) > 0
    try:
        return first_sequence_item(ds.PerFrameFunctionalGroupsSequence[0], "PlanePositionSlideSequence") is not None
    except Exception:
        return False


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
    parts: list[tuple[int, _Placement]] = []
    groups: dict[str, list[int]] = {}
    for k, instance in enumerate(instances):
        groups.setdefault(instance.concatenation, []).append(k)
    for members in groups.values():
        total = sum(instances[k].frame_count for k in members)
        for k in members:
            instance = instances[k]
            if instance.sparse:
                parts.append((k, sparse_positions(instance)))
            else:
                parts.append((k, _full_positions(instance, total)))
    instance_ids = np.concatenate([np.full(len(p.i), k, dtype=np.int32) for k, p in parts])
    local = np.concatenate([np.arange(len(p.i), dtype=np.int64) for _, p in parts])
    i = np.concatenate([p.i for _, p in parts])
    j = np.concatenate([p.j for _, p in parts])
    z = np.concatenate([p.z for _, p in parts])
    path: list[str] = [identifier for _, p in parts for identifier in p.path]
    order = list(dict.fromkeys(path))
    return FramePositions(instance_ids, local, i, j, path, z, order)


def _full_positions(instance: Instance, concatenated_frames: int) -> _Placement:
    """TILED_FULL: column fastest, then row, then focal plane, then optical path."""
    rows, cols = instance.tile_counts
    tiles = rows * cols
    paths = instance.optical_path_ids or ["0"]
    planes = instance.focal_plane_count or 1
    declared_paths = int_or(element_value(instance.ds, "NumberOfOpticalPaths"), None) or len(paths)
    if (instance.focal_plane_count is None and declared_paths == 1 and concatenated_frames > tiles
            and concatenated_frames % tiles == 0):
        planes = concatenated_frames // tiles  # focal planes the header forgot to count
    needed = tiles * planes * max(1, declared_paths)
    if concatenated_frames < needed:
        raise CorruptSlideError(
            instance.path,
            f"frame count disagrees with the image size: TILED_FULL {instance.shape[0]} x {instance.shape[1]} in "
            f"{instance.tile_shape[0]} x {instance.tile_shape[1]} frames needs {needed} frames "
            f"({rows} x {cols} tiles x {planes} planes x {max(1, declared_paths)} paths), Number of Frames says "
            f"{concatenated_frames}")
    g = instance.frame_offset + np.arange(instance.frame_count, dtype=np.int64)
    t = g % tiles
    plane = (g // tiles) % planes
    path_index = g // (tiles * planes)
    shared_position = first_sequence_item(instance.ds, "SharedFunctionalGroupsSequence", "PlanePositionSlideSequence")
    shared_measures = first_sequence_item(instance.ds, "SharedFunctionalGroupsSequence", "PixelMeasuresSequence")
    z0 = float_or(element_value(shared_position, "ZOffsetInSlideCoordinateSystem"), 0.0) or 0.0
    spacing = float_or(element_value(shared_measures, "SpacingBetweenSlices"), None)
    z = z0 + plane * spacing * 1000.0 if spacing else plane.astype(np.float64) + (z0 if planes == 1 else 0.0)
    ids = [paths[p] if p < len(paths) else str(p) for p in path_index.tolist()]
    return _Placement((t // cols) * instance.tile_shape[0], (t % cols) * instance.tile_shape[1], ids,
                      np.round(np.asarray(z, dtype=np.float64), 3))


# Elements of the per-frame functional groups, as they appear in little-endian bytes:
# (group, element) then, in explicit VR, the VR and a 2-byte length, else a 4-byte length.
_COLUMN, _ROW = b"\x48\x00\x1e\x02", b"\x48\x00\x1f\x02"
_Z_OFFSET, _PATH_ID = b"\x40\x00\x4a\x07", b"\x48\x00\x06\x01"


def raw_positions(ds: Dataset) -> tuple[np.ndarray, np.ndarray, list[str], list[str]] | None:
    """Frame positions read straight from the raw bytes of the per-frame functional groups.

    pydicom builds a Dataset per frame when the sequence is first touched: seconds for
    the 10^4 - 10^5 frames of a real sparse slide. The four elements needed have fixed
    encodings, so they are found by pattern in the raw value instead. Returns (rows,
    columns, z strings, path ids), 1-based positions, the lists empty where the frames
    give none; None when the raw value is not at hand or the counts do not add up (then
    pydicom reads it, slowly).
    """
    from pydicom.dataelem import RawDataElement

    try:
        raw = ds.get_item(0x52009230)
    except Exception:
        return None
    value = getattr(raw, "value", None)
    if not isinstance(raw, RawDataElement) or not isinstance(value, bytes) or not raw.is_little_endian:
        return None
    if raw.is_implicit_VR:
        def fixed(tag: bytes) -> re.Pattern[bytes]:
            return re.compile(re.escape(tag + b"\x04\x00\x00\x00") + b"(.{4})", re.DOTALL)

        def text(tag: bytes) -> tuple[re.Pattern[bytes], str]:
            return re.compile(re.escape(tag) + b"(.{4})", re.DOTALL), "<I"
    else:
        def fixed(tag: bytes) -> re.Pattern[bytes]:
            return re.compile(re.escape(tag + b"SL\x04\x00") + b"(.{4})", re.DOTALL)

        def text(tag: bytes) -> tuple[re.Pattern[bytes], str]:
            vr = b"DS" if tag == _Z_OFFSET else b"SH"
            return re.compile(re.escape(tag + vr) + b"(.{2})", re.DOTALL), "<H"

    columns = b"".join(m.group(1) for m in fixed(_COLUMN).finditer(value))
    rows = b"".join(m.group(1) for m in fixed(_ROW).finditer(value))
    if len(columns) != len(rows):
        return None
    strings: list[list[str]] = []
    for tag in (_Z_OFFSET, _PATH_ID):
        pattern, length_format = text(tag)
        found: list[str] = []
        for m in pattern.finditer(value):
            (length,) = np.frombuffer(m.group(1), length_format)
            found.append(value[m.end() : m.end() + int(length)].decode("ascii", "replace").strip(" \x00"))
        strings.append(found)
    rows_array = np.frombuffer(rows, "<i4").astype(np.int64)
    columns_array = np.frombuffer(columns, "<i4").astype(np.int64)
    return rows_array, columns_array, strings[0], strings[1]


def sparse_positions(instance: Instance) -> _Placement:
    """TILED_SPARSE: each frame's position from its Plane Position (Slide) functional group."""
    fast = raw_positions(instance.ds)
    n = instance.frame_count
    if fast is not None and len(fast[0]) == n and len(fast[2]) in (0, n) and len(fast[3]) in (0, n):
        return _positions_from_raw(instance, *fast)
    per_frame = element_value(instance.ds, "PerFrameFunctionalGroupsSequence") or []
    if len(per_frame) != instance.frame_count:
        raise CorruptSlideError(
            instance.path, f"frame count disagrees with the per-frame functional groups: they describe "
                           f"{len(per_frame)} frames, "
                           f"Number of Frames says {instance.frame_count}")
    default_path = _default_path(instance)
    n = instance.frame_count
    i = np.empty(n, dtype=np.int64)
    j = np.empty(n, dtype=np.int64)
    z = np.zeros(n, dtype=np.float64)
    ids: list[str] = []
    th, tw = instance.tile_shape
    for k, item in enumerate(per_frame):
        position = first_sequence_item(item, "PlanePositionSlideSequence")
        row = int_or(element_value(position, "RowPositionInTotalImagePixelMatrix"), None)
        col = int_or(element_value(position, "ColumnPositionInTotalImagePixelMatrix"), None)
        if row is None or col is None:
            raise CorruptSlideError(instance.path, f"TILED_SPARSE frame {k} has no position in the total pixel matrix")
        i[k], j[k] = row - 1, col - 1
        if i[k] % th or j[k] % tw:
            raise UnsupportedFormatError(
                instance.path, f"TILED_SPARSE frame {k} at (i, j) = ({i[k]}, {j[k]}) is not on the {th} x {tw} frame "
                                "grid")
        z[k] = float_or(element_value(position, "ZOffsetInSlideCoordinateSystem"), 0.0) or 0.0
        path_id = element_value(first_sequence_item(item, "OpticalPathIdentificationSequence"), "OpticalPathIdentifier")
        ids.append(str(path_id) if path_id is not None else default_path)
    return _Placement(i, j, ids, np.round(z, 3))


def _default_path(instance: Instance) -> str:
    groups = first_sequence_item(instance.ds, "SharedFunctionalGroupsSequence", "OpticalPathIdentificationSequence")
    shared = element_value(groups, "OpticalPathIdentifier")
    return str(shared) if shared is not None else (instance.optical_path_ids or ["0"])[0]


def _positions_from_raw(instance: Instance, rows: np.ndarray, columns: np.ndarray, z_texts: list[str],
                        path_ids: list[str]) -> _Placement:
    i, j = rows - 1, columns - 1
    th, tw = instance.tile_shape
    off_grid = np.flatnonzero((i % th != 0) | (j % tw != 0))
    if len(off_grid):
        k = int(off_grid[0])
        raise UnsupportedFormatError(
            instance.path, f"TILED_SPARSE frame {k} at (i, j) = ({i[k]}, {j[k]}) is not on the {th} x {tw} frame grid")
    z = np.array([float_or(t, 0.0) or 0.0 for t in z_texts], dtype=np.float64) if z_texts else np.zeros(len(i))
    ids = [str(p) for p in path_ids] if path_ids else [_default_path(instance)] * len(i)
    return _Placement(i, j, ids, np.round(z, 3))


__all__ = ["FramePositions", "frame_positions", "has_positions", "raw_positions", "sparse_positions"]
