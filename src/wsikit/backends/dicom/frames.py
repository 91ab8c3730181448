"""Where each frame of a DICOM Pixel Data element lies in the file.

The index is computed once, when a file is opened, without reading the pixel data
itself: frames are later read with ``os.pread`` (no shared file offset, so threads and
forked processes read at once). The ways of finding frames, one function each:

- :func:`native_frames`: uncompressed data, frame ``k`` at ``k * frame_bytes``;
- :func:`extended_table_frames`: the Extended Offset Table gives offset and length;
- :func:`basic_table_frames`: the Basic Offset Table gives where each frame starts;
- :func:`walked_frames`: no table: the fragment headers are walked once, and where a
  frame spans several fragments, frames are told apart by their codestream's start marker.

Every inconsistency (a table pointing outside the data, too few fragments for the frame
count, data cut short) is a :class:`CorruptSlideError` that says what is wrong.
"""
from __future__ import annotations

from abc import ABC, abstractmethod

import struct
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from ...errors import CorruptSlideError, UnsupportedFormatError
from ...remote.source import ByteSource

_ITEM = b"\xfe\xff\x00\xe0"
_SEQUENCE_END = b"\xfe\xff\xdd\xe0"
_UNDEFINED = 0xFFFFFFFF
# Explicit-VR value representations whose length field is 4 bytes after 2 reserved ones.
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
# How each compressed codestream begins: used to find frame starts among fragments.
_START_MARKERS = (
    b"\xff\xd8\xff",  # JPEG, JPEG-LS, lossless JPEG (SOI)
    b"\xff\x4f\xff\x51",  # JPEG 2000 / HTJ2K codestream (SOC, SIZ)
    b"\x00\x00\x00\x0cjP  ",  # JP2 file format
    b"\xff\x0a",  # JPEG XL codestream
    b"\x00\x00\x00\x0cJXL ",  # JPEG XL container
)


@dataclass(frozen=True)
class PixelDataElement:
    """The Pixel Data element of a file: where its value starts and how long it is."""

    value_offset: int
    length: int | None  # None: undefined length (encapsulated)


def _pread_exact(fd: ByteSource, n: int, offset: int, path: str, what: str) -> bytes:
    data = fd.read(offset, n)
    if len(data) != n:
        raise CorruptSlideError(path, f"pixel data is truncated: {what} at byte {offset} needs {n} bytes, the file "
                                      f"ends at {offset + len(data)}")
    return data


def pixel_data_element(fd: ByteSource, tag_offset: int, path: str, *, explicit_vr: bool,
                       little_endian: bool) -> PixelDataElement:
    """Parse the Pixel Data element header that starts at ``tag_offset``."""
    header = fd.read_at(tag_offset, 12)
    if len(header) < 8:
        raise CorruptSlideError(path, "the file has no Pixel Data (it ends before the pixel data element)")
    endian = "<" if little_endian else ">"
    group, element = struct.unpack_from(endian + "HH", header)
    if (group, element) != (0x7FE0, 0x0010):
        if group == 0x7FE0 and element in (0x0008, 0x0009):
            raise UnsupportedFormatError(path, "float pixel data is not a whole-slide image wsikit reads")
        raise CorruptSlideError(path, f"the file has no Pixel Data (found tag ({group:04X},{element:04X}) where it "
                                       "should start)")
    vr = header[4:6]
    if explicit_vr and vr.isalpha() and vr.isupper():
        if vr in _LONG_VRS:
            if len(header) < 12:
                raise CorruptSlideError(path, "pixel data is truncated: its element header is cut short")
            (length,) = struct.unpack_from(endian + "I", header, 8)
            start = tag_offset + 12
        else:
            (length,) = struct.unpack_from(endian + "H", header, 6)
            start = tag_offset + 8
    else:
        # Implicit VR (also tolerated when the transfer syntax claims explicit VR).
        (length,) = struct.unpack_from(endian + "I", header, 4)
        start = tag_offset + 8
    return PixelDataElement(start, None if length == _UNDEFINED else int(length))


class FrameIndex(ABC):
    """Byte ranges of frames in one file; :meth:`read` returns a frame's codestream."""

    count: int

    @abstractmethod
    def read(self, fd: ByteSource, k: int) -> bytes | memoryview:
        """The bytes of frame ``k`` (0-based), read from ``fd``."""


class NativeFrames(FrameIndex):
    """Uncompressed frames stored back to back."""

    def __init__(self, path: str, start: int, frame_bytes: int, count: int):
        self.path, self.start, self.frame_bytes, self.count = path, start, frame_bytes, count

    def read(self, fd: ByteSource, k: int) -> bytes:
        return _pread_exact(fd, self.frame_bytes, self.start + k * self.frame_bytes, self.path, f"frame {k}")


class EncapsulatedFrames(FrameIndex):
    """Frames of encapsulated data: frame ``k`` is the items in ``[starts[k], ends[k])``."""

    def __init__(self, path: str, starts: np.ndarray, ends: np.ndarray, how: str):
        self.path = path
        self.starts = np.asarray(starts, dtype=np.int64)
        self.ends = np.asarray(ends, dtype=np.int64)
        self.count = len(self.starts)
        self.how = how  # which case found the frames, for properties and messages

    def read(self, fd: ByteSource, k: int) -> bytes | memoryview:
        start, end = int(self.starts[k]), int(self.ends[k])
        data = _pread_exact(fd, end - start, start, self.path, f"frame {k}")
        view = memoryview(data)
        if data[:4] != _ITEM:
            raise CorruptSlideError(self.path, f"frame {k} ({self.how}) does not start with a fragment item at byte "
                                               f"{start}")
        (length,) = struct.unpack_from("<I", data, 4)
        if length == len(data) - 8:
            return view[8:]  # the common case: one fragment, returned without a copy
        parts, pos = [], 0
        while pos < len(data):
            if data[pos : pos + 4] != _ITEM or pos + 8 > len(data):
                raise CorruptSlideError(self.path, f"frame {k} ({self.how}): no fragment item at byte {start + pos}")
            (length,) = struct.unpack_from("<I", data, pos + 4)
            if pos + 8 + length > len(data):
                raise CorruptSlideError(self.path, f"frame {k} ({self.how}): a fragment runs past the frame's end at "
                                                   f"byte {end}")
            parts.append(view[pos + 8 : pos + 8 + length])
            pos += 8 + length
        return b"".join(parts)


def native_frames(path: str, element: PixelDataElement, frame_bytes: int, count: int, file_size: int) -> NativeFrames:
    """Frames of uncompressed pixel data, checked against the element length and file size."""
    if element.length is None:
        raise CorruptSlideError(path, "the transfer syntax is uncompressed but the pixel data is encapsulated")
    needed = frame_bytes * count
    if element.length not in (needed, needed + 1):  # +1: the padding to an even length
        raise CorruptSlideError(
            path, f"frame count disagrees with the pixel data: {count} frames of {frame_bytes} bytes need {needed} "
                  f"bytes, the Pixel Data element holds {element.length}")
    if element.value_offset + needed > file_size:
        raise CorruptSlideError(
            path, f"pixel data is truncated: {needed} bytes from byte {element.value_offset} run past the end of the "
                  f"file at {file_size}")
    return NativeFrames(path, element.value_offset, frame_bytes, count)


def _item_header(fd: ByteSource, pos: int, path: str) -> tuple[bytes, int]:
    header = fd.read_at(pos, 8)
    if len(header) < 8:
        raise CorruptSlideError(path, f"pixel data is truncated: the file ends at byte {pos + len(header)} inside the "
                                       "fragment sequence")
    return header[:4], struct.unpack_from("<I", header, 4)[0]


def offset_table(fd: ByteSource, element: PixelDataElement, path: str, file_size: int) -> tuple[np.ndarray, int]:
    """The Basic Offset Table (may be empty) and the byte where the first fragment starts."""
    tag, length = _item_header(fd, element.value_offset, path)
    if tag != _ITEM:
        raise CorruptSlideError(path, "encapsulated pixel data does not start with the basic offset table item")
    if length % 4 or element.value_offset + 8 + length > file_size:
        raise CorruptSlideError(path, f"the basic offset table item has an invalid length {length}")
    raw = _pread_exact(fd, length, element.value_offset + 8, path, "the basic offset table")
    return np.frombuffer(raw, dtype="<u4").astype(np.int64), element.value_offset + 8 + length


def _walk(fd: ByteSource, pos: int, path: str, file_size: int, *, limit: int | None = None,
          peek: bool = False) -> tuple[list[int], list[int], list[bytes], int]:
    """Fragments from ``pos`` to the sequence delimiter: (item offsets, value lengths, first
    bytes when ``peek``, the byte after the last fragment)."""
    offsets: list[int] = []
    lengths: list[int] = []
    heads: list[bytes] = []
    while limit is None or len(offsets) < limit:
        header = fd.read_at(pos, 14 if peek else 8)
        if len(header) < 8:
            raise CorruptSlideError(path, f"pixel data is truncated: the file ends at byte {pos + len(header)} before "
                                           "the end of the fragment sequence")
        tag = header[:4]
        if tag == _SEQUENCE_END:
            break
        if tag != _ITEM:
            raise CorruptSlideError(path, f"pixel data is damaged: expected a fragment item at byte {pos}, found "
                                          f"{tag.hex()}")
        (length,) = struct.unpack_from("<I", header, 4)
        if length == _UNDEFINED or pos + 8 + length > file_size:
            raise CorruptSlideError(
                path, f"pixel data is truncated: fragment {len(offsets)} at byte {pos} claims {length} bytes, the file "
                      f"ends at {file_size}")
        offsets.append(pos)
        lengths.append(length)
        if peek:
            heads.append(header[8 : 8 + min(length, 6)])
        pos += 8 + length
    return offsets, lengths, heads, pos


def extended_table_frames(path: str, fd: ByteSource, first: int, offsets: ArrayLike, lengths: ArrayLike, count: int,
                          file_size: int) -> EncapsulatedFrames:
    """Frames from the Extended Offset Table (one fragment per frame, as the standard requires)."""
    offsets = np.asarray(offsets, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    if len(offsets) != count or len(lengths) != count:
        raise CorruptSlideError(
            path, f"frame count disagrees with the extended offset table: it lists {len(offsets)} offsets and "
                  f"{len(lengths)} lengths, "
                  f"Number of Frames says {count}")
    starts = first + offsets
    ends = starts + 8 + lengths
    _check_table(path, starts, ends, file_size, "extended offset table")
    if count:
        _expect_sequence_end(fd, int(ends[-1]), path, file_size)
    return EncapsulatedFrames(path, starts, ends, "extended offset table")


def basic_table_frames(path: str, fd: ByteSource, first: int, table: np.ndarray, count: int,
                       file_size: int) -> EncapsulatedFrames:
    """Frames from a non-empty Basic Offset Table; the last frame's end is found by walking it."""
    if len(table) != count:
        raise CorruptSlideError(
            path, f"frame count disagrees with the basic offset table: it lists {len(table)} frames, Number of Frames "
                  f"says {count}")
    if file_size > 2**32 and np.any(np.diff(table) < 0):
        # Some writers let 32-bit offsets wrap around in files over 4 GiB: unwrap them.
        table = table + (np.cumsum(np.diff(table, prepend=table[:1]) < 0) << 32)
    starts = first + table
    if count and starts[0] != first:
        raise CorruptSlideError(path, f"the basic offset table's first entry is {table[0]}, not 0")
    if count and starts[-1] + 8 > file_size:
        raise CorruptSlideError(
            path, f"the basic offset table points outside the data: frame {count - 1} at byte {int(starts[-1])} is "
                  f"past the end of the file at {file_size} (the file is truncated or the table is wrong)")
    end = _walk(fd, int(starts[-1]), path, file_size)[3] if count else first
    ends = np.append(starts[1:], end)
    _check_table(path, starts, ends, file_size, "basic offset table")
    return EncapsulatedFrames(path, starts, ends, "basic offset table")


def walked_frames(path: str, fd: ByteSource, first: int, count: int, file_size: int) -> EncapsulatedFrames:
    """Frames found by walking every fragment header (empty offset table)."""
    offsets, lengths, heads, _ = _walk(fd, first, path, file_size, peek=True)
    n = len(offsets)
    ends = np.asarray(offsets, dtype=np.int64) + 8 + np.asarray(lengths, dtype=np.int64)
    if n < count:
        raise CorruptSlideError(path, f"frame count disagrees with the pixel data: Number of Frames says {count}, the "
                                      f"pixel data holds {n} fragments")
    if n == count:
        return EncapsulatedFrames(path, np.asarray(offsets, dtype=np.int64), ends, "fragment walk")
    if count == 1:
        return EncapsulatedFrames(path, np.asarray(offsets[:1], dtype=np.int64), ends[-1:], "fragment walk")
    frame_starts = [k for k, head in enumerate(heads) if head.startswith(_START_MARKERS)]
    if len(frame_starts) != count or (frame_starts and frame_starts[0] != 0):
        raise CorruptSlideError(
            path, f"frame count disagrees with the pixel data: Number of Frames says {count}, the {n} fragments hold "
                  f"{len(frame_starts)} codestream starts")
    first_fragment = np.asarray(frame_starts, dtype=np.int64)
    last_fragment = np.append(first_fragment[1:] - 1, n - 1)
    starts = np.asarray(offsets, dtype=np.int64)[first_fragment]
    return EncapsulatedFrames(path, starts, ends[last_fragment], "fragment walk")


def _check_table(path: str, starts: np.ndarray, ends: np.ndarray, file_size: int, what: str) -> None:
    if len(starts) == 0:
        return
    if np.any(np.diff(starts) <= 0):
        bad = int(np.argmax(np.diff(starts) <= 0)) + 1
        raise CorruptSlideError(path, f"the {what} is not increasing at frame {bad}")
    if np.any(ends > file_size) or np.any(ends <= starts):
        bad = int(np.argmax((ends > file_size) | (ends <= starts)))
        raise CorruptSlideError(
            path, f"the {what} points outside the data: frame {bad} spans bytes {int(starts[bad])}..{int(ends[bad])}, "
                  f"the file has {file_size} (the file is truncated or the table is wrong)")


def _expect_sequence_end(fd: ByteSource, pos: int, path: str, file_size: int) -> None:
    tag, _ = _item_header(fd, pos, path)
    if tag not in (_SEQUENCE_END, _ITEM):
        raise CorruptSlideError(path, f"pixel data is damaged: no fragment item or sequence end at byte {pos} after "
                                       "the last frame")


def frames_of(path: str, fd: ByteSource, element: PixelDataElement, count: int, file_size: int, *,
              extended: tuple[np.ndarray, np.ndarray] | None = None) -> EncapsulatedFrames:
    """The frame index of encapsulated pixel data, by whichever case the file presents."""
    table, first = offset_table(fd, element, path, file_size)
    if extended is not None and len(table) == 0:
        return extended_table_frames(path, fd, first, extended[0], extended[1], count, file_size)
    if len(table):
        return basic_table_frames(path, fd, first, table, count, file_size)
    return walked_frames(path, fd, first, count, file_size)


__all__ = [
    "EncapsulatedFrames",
    "FrameIndex",
    "NativeFrames",
    "PixelDataElement",
    "basic_table_frames",
    "extended_table_frames",
    "frames_of",
    "native_frames",
    "offset_table",
    "pixel_data_element",
    "walked_frames",
]
