"""DICOMBackend: DICOM whole-slide images (VL Whole Slide Microscopy), a file or a series.

``open_slide(folder)`` or ``open_slide(any_file_of_the_series)`` gathers the series: VOLUME
instances become levels (largest first, exact downsamples), THUMBNAIL / LABEL / OVERVIEW
instances become the associated images "thumbnail", "label" and "macro". Each level is a
:class:`~wsikit.reader.TileGrid` of frames, read through the shared cached reader; a frame
is found through an index built once at open (:mod:`.frames`), read with ``os.pread`` and
decoded from its bytes by imagecodecs (:mod:`.codecs`). ``whole_series=False`` reads only
the file given, not the other instances of its series in the same folder.

Positions where a sparse tiling (TILED_SPARSE) stores no frame read as a uniform fill
(:mod:`.layout`).

Several focal planes or optical paths: reads use those of the first frame of level 0
unless ``focal_plane=`` (an index into :attr:`DICOMBackend.focal_planes`) or
``optical_path=`` (an identifier from :attr:`DICOMBackend.optical_paths`, or its index)
is given when opening, or to ``extract_region`` / ``generate_tiles`` for one call.
"""
from __future__ import annotations

import os
from collections.abc import Hashable
from typing import Any

import numpy as np

from ...checks import as_int, as_pair
from ...remote.dicom import dicom_prefetcher, gather_remote_series
from ...remote.source import ByteSource, LocalSource
from ...remote.urls import is_url
from .codecs import frame_jpeg
from .header import folder_files, has_dicom_magic, is_wsi_file, pydicom_warnings_silenced
from .levels import Level, decode_frame, open_level
from .series import Instance, gather_series
from .slide_model import DICOMSlideModel, FileOf, Prefetch, Touch


class DICOMBackend(DICOMSlideModel):
    """DICOM VL Whole Slide Microscopy images: one tolerant file, or a whole series folder."""

    name = "dicom"
    extensions = (".dcm",)
    reads_folders = True

    @classmethod
    def can_read(cls, path: str) -> bool:
        try:
            if os.path.isdir(path):
                return any(is_wsi_file(p) for p in folder_files(path))
            return is_wsi_file(path)
        except Exception:
            return False

    @classmethod
    def check_file(cls, path: str) -> None:
        """Open the one file (not the rest of its series, no cache) and close it: a file that
        looks like DICOM and is broken raises CorruptSlideError (the opener asks before it
        hands a DICOM file to OpenSlide, whose DICOM parser can crash on broken files). A
        DICOM file that is not a whole-slide image raises UnsupportedFormatError; anything
        that is not a DICOM file passes."""
        if os.path.isfile(path) and has_dicom_magic(path):
            cls(path, whole_series=False, cache_bytes=0).close()

    # -- opening ---------------------------------------------------------------------------
    def _open(self, *, optical_path: str | int | None = None, focal_plane: int | None = None,
              whole_series: bool = True, storage_options: dict[str, Any] | None = None) -> None:
        """``storage_options``: for a URL (a file, or a folder / prefix of a series), the
        filesystem's options (see wsikit.remote)."""
        with pydicom_warnings_silenced():
            self._open_series(optical_path, focal_plane, whole_series, storage_options)

    def _open_series(self, optical_path: str | int | None, focal_plane: int | None, whole_series: bool,
                     storage_options: dict[str, Any] | None = None) -> None:
        self._fds: dict[str, ByteSource] = {}  # path -> its bytes (a local file, or a URL's)
        if is_url(self.path):  # a file or a series fetched from a URL (wsikit.remote.dicom)
            instances = gather_remote_series(self.path, storage_options, bool(whole_series), self._fds)
        else:
            instances = gather_series(self.path, bool(whole_series))
        self._open_instances(instances, optical_path, focal_plane)

    def _open_level(self, members: list[Instance]) -> Level:
        return open_level(members, self._fd)

    def _frame_access(self, key: Hashable, level: Level, table: np.ndarray
                      ) -> tuple[FileOf, Touch | None, Prefetch | None]:
        # From a URL: frames of the next reads are fetched ahead, coalesced (wsikit.remote).
        return self._fd, None, dicom_prefetcher(level, table, self._fd) if is_url(self.path) else None

    def _fd(self, path: str) -> ByteSource:
        fd = self._fds.get(path)
        if fd is None:
            fd = self._fds[path] = LocalSource(path)
        return fd

    # -- pixels ----------------------------------------------------------------------------
    def _native_tile_jpeg(self, level: int, ti: int, tj: int) -> bytes | None:
        data = self._levels[level]
        k = int(self._tables[self._grid(level, self._selection).key][ti, tj])
        source = data.sources[int(data.positions.instance[k])] if k >= 0 else None
        if source is None or source.invert or not self.is_rgb:
            return None  # no frame stored (sparse), or pixels changed after decoding
        stream = source.frames.read(self._fd(source.instance.path), int(data.positions.local[k]))
        return frame_jpeg(stream, source.transfer_syntax, data.tile_shape)

    # -- frame addressing (the interface of the seed, PathML's DICOM slide backend) ---------
    @property
    def frame_shape(self) -> tuple[int, int]:
        """(rows, columns) of one frame of level 0."""
        return self._levels[0].tile_shape

    def frame_count(self, level: int | None = 0) -> int:
        """Frames stored for ``level`` (every focal plane and optical path)."""
        return len(self._levels[self._check_level(level)].positions.i)

    def frame_coords(self, index: int, level: int | None = 0) -> tuple[int, int]:
        """Top-left (i, j) in pixels of ``level`` of frame ``index`` (0-based, in file order)."""
        data = self._levels[self._check_level(level)]
        index = as_int(index, "index")
        count = len(data.positions.i)
        if not 0 <= index < count:
            raise ValueError(f"index must be in [0, {count - 1}] (the level has {count} frames), got {index}")
        return int(data.positions.i[index]), int(data.positions.j[index])

    def frame_index(self, coords: tuple[int, int], level: int | None = 0) -> int:
        """Index of the frame whose top-left corner is ``coords`` (i, j), in the focal plane
        and optical path read; ValueError when no frame starts there."""
        checked = self._check_level(level)
        i, j = as_pair(coords, "coords")
        data = self._levels[checked]
        th, tw = data.tile_shape
        h, w = data.shape
        if not (0 <= i < h and 0 <= j < w):
            raise ValueError(f"coords {(i, j)} lie outside level {checked} of shape {(h, w)}")
        if i % th or j % tw:
            raise ValueError(f"coords {(i, j)} are not on a frame corner: frames are {th} x {tw} pixels")
        table = self._tables[self._grid(checked, self._selection).key]
        k = int(table[i // th, j // tw])
        if k < 0:
            raise ValueError(f"no frame is stored at {(i, j)} of level {checked} (sparse tiling)")
        return k

    def read_frame(self, index: int, level: int | None = 0) -> np.ndarray:
        """The pixels of frame ``index``, cut to the image where it overhangs the edge."""
        checked = self._check_level(level)
        i, j = self.frame_coords(index, checked)
        data = self._levels[checked]
        th, tw = data.tile_shape
        h, w = min(th, data.shape[0] - i), min(tw, data.shape[1] - j)
        return decode_frame(data, index, self._fd, self._pixel, self._fill)[:h, :w]

    # -- lifecycle -------------------------------------------------------------------------
    def _close(self) -> None:
        for fd in list(getattr(self, "_fds", {}).values()):
            try:
                fd.close()
            except OSError:
                pass
        self._fds = {}

    def _after_fork(self) -> None:
        # pread on inherited descriptors is safe, but the child gets its own so that the
        # parent closing the slide does not pull the files from under it.
        for fd in self._fds.values():
            fd.reopen()


__all__ = ["DICOMBackend"]
