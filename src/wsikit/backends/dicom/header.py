"""Reading a DICOM file's header (its dataset up to the pixel data) with pydicom.

pydicom is used tolerantly (``force=True``: no preamble, no meta header, values that bend
the standard) and silently (its warnings about such values are common in real files and
harmless here). Values are read through :func:`element_value`, :func:`int_or`,
:func:`float_or` and :func:`first_sequence_item`, which give a default for an absent,
empty or malformed value instead of raising.

No read allocates more than the file holds: pydicom reads an element's value with one
``read(length)``, and a buffered read allocates ``length`` bytes before it reads any, so
a damaged length field of 2 GiB in a 5 KB file would allocate 2 GiB. A value read that
asks for more bytes than are left in the file is refused, before any allocation, with a
:class:`CorruptSlideError` that says an element's length runs past the end of the file.
"""
from __future__ import annotations

import contextlib
import io
import os
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from ...errors import CorruptSlideError

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

#: SOP Class UID of VL Whole Slide Microscopy Image Storage
WSI_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.77.1.6"
_HEADER_TAGS = ["SOPClassUID", "TotalPixelMatrixRows", "TotalPixelMatrixColumns", "SeriesInstanceUID", "ImageType"]
# Reads up to this size (element headers, the 128-byte preamble, pydicom's 8 KiB chunks
# when it searches for a delimiter) may meet the end of the file, which pydicom handles
# as it always has; only a longer read is an element's value that must fit in the file.
_LONGEST_FIXED_READ = 8192
# Element numbers (little endian) a bare dataset starting with group 0002 or 0008 may begin with.
_FIRST_ELEMENTS = (b"\x00\x00", b"\x01\x00", b"\x05\x00", b"\x08\x00", b"\x16\x00", b"\x18\x00")
_T = TypeVar("_T")


@contextlib.contextmanager
def pydicom_warnings_silenced() -> Iterator[None]:
    """Silence pydicom's warnings about values that bend the standard (over-long strings,
    odd formats): common in real files, harmless here. pydicom checks a value when it is
    first read, so every access to header values runs inside this."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


class _LengthCheckedFile(io.BufferedReader):
    """A file whose long reads must fit in what is left of it (see the module docstring)."""

    def __init__(self, path: str):
        super().__init__(io.FileIO(path, "rb"))
        self.path = path
        self.size = os.fstat(self.fileno()).st_size

    def read(self, size: int | None = -1) -> bytes:
        if size is not None and size > _LONGEST_FIXED_READ:
            start = self.tell()
            if size > self.size - start:
                raise CorruptSlideError(
                    self.path, f"an element's length runs past the end of the file: its value of {size:,} bytes "
                               f"would start at byte {start:,}, the file has {self.size:,} bytes")
        return super().read(size)


def _read_dataset(source: str | io.BufferedReader, **options: Any) -> Dataset:
    import pydicom

    with pydicom_warnings_silenced():
        return pydicom.dcmread(source, force=True, **options)


def read_header(path: str) -> tuple[Dataset, int]:
    """(dataset without pixels, byte where the pixel data element starts); parsed, not checked.

    Raises CorruptSlideError when an element's length runs past the end of the file.
    """
    with _LengthCheckedFile(path) as f:
        ds = _read_dataset(f, stop_before_pixels=True)
        return ds, f.tell()


def has_dicom_magic(path: str) -> bool:
    """A Part 10 preamble ('DICM' at byte 128), or a bare dataset starting with group 0002/0008."""
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    if len(head) == 132 and head[128:132] == b"DICM":
        return True
    return len(head) >= 8 and head[:2] in (b"\x02\x00", b"\x08\x00") and head[2:4] in _FIRST_ELEMENTS


def element_value(ds: Any, keyword: str, default: Any = None) -> Any:
    """The value of the element named ``keyword``, or ``default`` when absent, empty or unreadable.

    ``ds`` is a pydicom Dataset, or None (then ``default``).
    """
    try:
        value = getattr(ds, keyword, None)
    except Exception:  # a malformed value must not break reading the rest
        return default
    if value is None or (isinstance(value, (str, bytes, list, tuple)) and len(value) == 0):
        return default
    return value


def first_sequence_item(ds: Any, *keywords: str) -> Any:
    """The first item of nested sequences (``first_sequence_item(ds, "A", "B")`` = ds.A[0].B[0]), or None."""
    for keyword in keywords:
        sequence = element_value(ds, keyword)
        if not sequence:
            return None
        try:
            ds = sequence[0]
        except Exception:
            return None
    return ds


def int_or(value: Any, default: _T) -> int | _T:
    """``value`` as an int (a DICOM IS or US value, say), or ``default`` when it is not a number."""
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return default


def float_or(value: Any, default: _T) -> float | _T:
    """``value`` as a float (a DICOM DS or FD value, say), or ``default`` when it is not a number."""
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return default


def is_wsi_header(ds: Dataset) -> bool:
    """Whether a header describes a tiled whole-slide image (by SOP class or total pixel matrix)."""
    by_class = str(element_value(ds, "SOPClassUID", "")) == WSI_SOP_CLASS
    return by_class or element_value(ds, "TotalPixelMatrixColumns") is not None


def is_wsi_file(path: str) -> bool:
    """Cheap test: a DICOM file whose header says whole-slide image. Never raises."""
    if not os.path.isfile(path) or not has_dicom_magic(path):
        return False
    try:
        with pydicom_warnings_silenced(), _LengthCheckedFile(path) as f:
            return is_wsi_header(_read_dataset(f, stop_before_pixels=True, specific_tags=_HEADER_TAGS))
    except Exception:
        return False


def folder_files(folder: str) -> list[str]:
    """Files of a folder that may be DICOM (not recursive, hidden files skipped)."""
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return []
    return [e.path for e in entries if not e.name.startswith(".") and e.is_file() and has_dicom_magic(e.path)]


__all__ = [
    "WSI_SOP_CLASS",
    "element_value",
    "first_sequence_item",
    "float_or",
    "folder_files",
    "has_dicom_magic",
    "int_or",
    "is_wsi_file",
    "is_wsi_header",
    "pydicom_warnings_silenced",
    "read_header",
]
