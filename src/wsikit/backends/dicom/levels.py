"""A DICOM image made readable: its instances' frames indexed, decoded and placed on a grid.

A :class:`Level` is one image (a pyramid level or an associated image) made of the frames
of one or more instances (concatenations, focal planes, optical paths). Opening it reads
headers only: each instance's Pixel Data element is located, its frames indexed
(:mod:`.frames`) and a decoder chosen by transfer syntax (:mod:`.codecs`). A file whose
meta header names no transfer syntax, or an encapsulated one over data that is not
encapsulated, is read as what its pixel data shows. :func:`frame_table` says which frame
fills each grid cell of one plane (-1: none, a sparse tiling), and :func:`decode_frame`
turns frame ``k`` into (th, tw) + pixel shape, a broken frame being a CorruptSlideError.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ...errors import CorruptSlideError, SlideError, UnsupportedFormatError
from ...remote.source import ByteSource
from ...limits import check_allocation
from .codecs import (
    EXPLICIT_BIG,
    EXPLICIT_LITTLE,
    IMPLICIT_LITTLE,
    NATIVE,
    FrameDecoder,
    FrameShapeError,
    frame_decoder,
    guess_transfer_syntax,
    is_encapsulated,
)
from .frames import FrameIndex, PixelDataElement, frames_of, native_frames, offset_table, pixel_data_element
from .header import element_value
from .layout import blank_frame
from .metadata import syntax_name
from .positions import FramePositions, frame_positions
from .series import Instance

#: (optical path identifier, focal plane) of the frames read
Plane = tuple[str, float]


@dataclass
class Source:
    """An instance made readable: its frames' byte ranges and the decoder of its codec."""

    instance: Instance
    frames: FrameIndex
    decode: FrameDecoder  # bytes -> (h, w, samples)
    transfer_syntax: str
    invert: bool  # MONOCHROME1


@dataclass
class Level:
    """One image (a pyramid level or an associated image) as frames on a grid."""

    shape: tuple[int, int]
    tile_shape: tuple[int, int]
    sources: list[Source]
    positions: FramePositions
    #: (optical path, focal plane) pairs, in order of first appearance
    planes: list[Plane] = field(init=False)

    def __post_init__(self) -> None:
        self.planes = list(dict.fromkeys(zip(self.positions.path, self.positions.z.tolist())))

    @property
    def tile_counts(self) -> tuple[int, int]:
        """Frame positions down and across the image."""
        return -(-self.shape[0] // self.tile_shape[0]), -(-self.shape[1] // self.tile_shape[1])

    def plane_of(self, selection: Plane) -> Plane:
        """The plane of this level for a selection made on level 0: same path, nearest z."""
        planes = self.planes
        if selection in planes:
            return selection
        path, z = selection
        candidates = [p for p in planes if p[0] == path] or [p for p in planes if p[0] == planes[0][0]]
        return min(candidates, key=lambda p: abs(p[1] - z))


def open_level(members: list[Instance], fd_of: Callable[[str], ByteSource]) -> Level:
    """The level the instances ``members`` (same size and frame shape) make; ``fd_of`` opens a file."""
    first = members[0]
    counts = first.tile_counts
    # One table cell per frame position: a header of tiny frames over a huge image
    # (1 x 1 frames, say) must not make it unbounded.
    check_allocation(counts, 8, f"frame table of {counts[0]} x {counts[1]} positions", first.path)
    sources = [open_source(m, fd_of(m.path)) for m in members]
    return Level(first.shape, first.tile_shape, sources, frame_positions(members))


def open_source(instance: Instance, fd: ByteSource) -> Source:
    """Index the frames of an instance and pick its decoder (reads headers only)."""
    path = instance.path
    ts = instance.transfer_syntax
    implicit, little = getattr(instance.ds, "original_encoding", (None, True))
    if ts is not None:
        implicit, little = ts == IMPLICIT_LITTLE, ts != EXPLICIT_BIG
    element = pixel_data_element(fd, instance.pixel_tag_offset, path, explicit_vr=not implicit,
                                 little_endian=little is not False)
    rows, cols = instance.tile_shape
    frame_bytes = rows * cols * instance.samples * instance.dtype.itemsize
    if instance.photometric == "YBR_FULL_422" and instance.samples == 3:
        frame_bytes = rows * cols * 2 * instance.dtype.itemsize
    if ts is None or (ts not in NATIVE and not is_encapsulated(ts)):
        ts = _shown_transfer_syntax(fd, element, instance, bool(implicit)) or ts
    if ts is None:
        raise UnsupportedFormatError(path, "the file names no transfer syntax, and its pixel data starts with no "
                                           "codestream wsikit decodes")
    if is_encapsulated(ts) and element.length is not None:
        if element.length in (frame_bytes * instance.frame_count, frame_bytes * instance.frame_count + 1):
            ts = IMPLICIT_LITTLE if implicit else EXPLICIT_LITTLE  # mislabelled: the data is not compressed
        else:
            raise CorruptSlideError(path, f"the transfer syntax {ts} is compressed but the pixel data is not "
                                           "encapsulated")
    check_allocation((rows, cols, instance.samples), instance.dtype.itemsize, "decoded frame", path)
    decode = frame_decoder(ts, photometric=instance.photometric, samples=instance.samples, rows=rows, cols=cols,
                           dtype=instance.dtype, planar=instance.planar, path=path)
    frames: FrameIndex
    if ts in NATIVE:
        frames = native_frames(path, element, frame_bytes, instance.frame_count, instance.file_size)
    else:
        extended = None
        table = element_value(instance.ds, "ExtendedOffsetTable")
        lengths = element_value(instance.ds, "ExtendedOffsetTableLengths")
        if table is not None and lengths is not None:
            extended = (np.frombuffer(bytes(table), dtype="<u8"), np.frombuffer(bytes(lengths), dtype="<u8"))
        frames = frames_of(path, fd, element, instance.frame_count, instance.file_size, extended=extended)
    return Source(instance, frames, decode, ts, instance.photometric == "MONOCHROME1")


def _shown_transfer_syntax(fd: ByteSource, element: PixelDataElement, instance: Instance, implicit: bool) -> str | None:
    """The transfer syntax the pixel data shows: native when it has a length, else by the
    first fragment's codestream."""
    if element.length is not None:
        return IMPLICIT_LITTLE if implicit else EXPLICIT_LITTLE
    _, first = offset_table(fd, element, instance.path, instance.file_size)
    return guess_transfer_syntax(fd.read_at(first + 8, 16))


def frame_table(level: Level, plane: Plane) -> np.ndarray:
    """(rows, columns) of frame indices of ``plane``, one per grid cell; -1 where no frame is stored."""
    positions = level.positions
    rows, cols = level.tile_counts
    th, tw = level.tile_shape
    chosen = np.flatnonzero((np.asarray(positions.path) == plane[0]) & (positions.z == plane[1]))
    ti, tj = positions.i[chosen] // th, positions.j[chosen] // tw
    inside = (ti >= 0) & (ti < rows) & (tj >= 0) & (tj < cols)
    chosen, ti, tj = chosen[inside], ti[inside], tj[inside]
    table = np.full((rows, cols), -1, dtype=np.int64)
    table[ti[::-1], tj[::-1]] = chosen[::-1]  # where frames repeat a position, the first wins
    return table


def decode_frame(level: Level, k: int, fd_of: Callable[[str], ByteSource], pixels: tuple[int, ...],
                 fill: np.ndarray) -> np.ndarray:
    """Frame ``k`` of a level, decoded to (th, tw) + ``pixels``; a smaller frame is padded with ``fill``."""
    positions = level.positions
    source = level.sources[int(positions.instance[k])]
    local = int(positions.local[k])
    path = source.instance.path
    th, tw = level.tile_shape
    try:
        data = source.frames.read(fd_of(path), local)
        array = source.decode(data)
    except SlideError:
        raise
    except FrameShapeError as exc:
        raise CorruptSlideError(path, f"frame {local}: {exc}") from None
    except Exception as exc:
        raise CorruptSlideError(path, f"frame {local} cannot be decoded ({syntax_name(source.transfer_syntax)}): "
                                      f"{type(exc).__name__}: {exc}") from None
    if source.invert:
        array = np.iinfo(array.dtype).max - array if array.dtype.kind == "u" else -array
    h, w = array.shape[:2]
    if h > th or w > tw:
        raise CorruptSlideError(path, f"frame {local} decodes to {h} x {w} pixels, larger than the header's "
                                      f"{th} x {tw}")
    samples = 3 if pixels == (3,) else pixels[1]
    if array.shape[2] != samples:
        if samples == 3 and array.shape[2] == 1:  # a grayscale frame in a colour image
            array = np.repeat(array, 3, axis=2)
        else:
            raise CorruptSlideError(path, f"frame {local} decodes to {array.shape[2]} samples per pixel, the header "
                                          f"says {samples}")
    if pixels != (3,):
        array = array.reshape((h, w) + pixels)
    if (h, w) != (th, tw):  # a frame smaller than the header says: pad it
        full = np.array(blank_frame(level.tile_shape, pixels, fill, array.dtype))
        full[:h, :w] = array
        array = full
    return array


__all__ = ["Level", "Plane", "Source", "decode_frame", "frame_table", "open_level", "open_source"]
