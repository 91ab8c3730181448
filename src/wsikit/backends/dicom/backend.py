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

import functools
import os
import threading
from collections.abc import Hashable
from typing import Any

import numpy as np

from ...checks import as_int, as_pair
from ...errors import CorruptSlideError, SlideError
from ...limits import check_allocation
from ...reader import TileGrid
from ...tiling import thumbnail_shape
from ...remote.dicom import dicom_prefetcher, gather_remote_series
from ...remote.prefetch import with_prefetch
from ...remote.source import ByteSource, LocalSource
from ...remote.urls import is_url
from ..base import SlideBackend
from .codecs import frame_jpeg
from .header import folder_files, has_dicom_magic, is_wsi_file, pydicom_warnings_silenced
from .layout import absent_fill, blank_frame, layout, pixel_shape
from .levels import Level, Plane, decode_frame, frame_table, open_level
from .metadata import header_properties, icc_profile, resolution, syntax_name
from .series import Instance, gather_series

_ASSOCIATED_NAMES = {"THUMBNAIL": "thumbnail", "LABEL": "label", "OVERVIEW": "macro"}


class DICOMBackend(SlideBackend):
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
        self._selection_grids: dict[tuple[int, Plane], TileGrid] = {}
        self._tables: dict[Hashable, np.ndarray] = {}  # grid key -> frame index per grid cell (-1: none)
        self._grid_lock = threading.Lock()
        if is_url(self.path):  # a file or a series fetched from a URL (wsikit.remote.dicom)
            instances = gather_remote_series(self.path, storage_options, bool(whole_series), self._fds)
        else:
            instances = gather_series(self.path, bool(whole_series))
        volumes = [i for i in instances if i.kind == "VOLUME"]
        if not volumes:  # a series of only a label or overview still shows what it has
            volumes = [max(instances, key=lambda i: i.shape[0] * i.shape[1])]
        main = max(volumes, key=lambda i: i.shape[0] * i.shape[1])
        if main.pyramid:
            volumes = [v for v in volumes if v.pyramid in (main.pyramid, "")]
        main_layout = layout(main)
        volumes = [v for v in volumes if layout(v) == main_layout]
        self.is_rgb = main_layout[0]
        self.dtype = np.dtype(main.dtype)
        self.sizes = (1, main.samples, 1)
        self.channel_names = ["R", "G", "B"] if self.is_rgb else [f"C{k}" for k in range(main.samples)]
        self._pixel = pixel_shape(main)
        self._fill = absent_fill(main)

        by_shape: dict[tuple[int, int], list[Instance]] = {}
        for volume in volumes:
            by_shape.setdefault(volume.shape, []).append(volume)
        self._levels: list[Level] = []
        for shape in sorted(by_shape, key=lambda s: (-s[0] * s[1], -s[0])):
            members = by_shape[shape]
            tile = members[0].tile_shape
            members = sorted((m for m in members if m.tile_shape == tile),
                             key=lambda m: (m.concatenation, m.concatenation_number, m.frame_offset, m.uid))
            self._levels.append(open_level(members, self._fd))
        self._level_shapes = [level.shape for level in self._levels]

        level0 = self._levels[0]
        self.optical_paths: list[str] = list(level0.positions.paths)
        self.focal_planes: list[float] = sorted(set(level0.positions.z.tolist()))
        first_plane = (level0.positions.path[0], float(level0.positions.z[0]))
        self._selection = self._select(optical_path, focal_plane, default=first_plane)
        self._grids = [self._grid(level, self._selection) for level in range(len(self._levels))]
        self._read_metadata(main, instances)
        self._add_associated([i for i in instances if i.kind in _ASSOCIATED_NAMES and i not in volumes])

    def _fd(self, path: str) -> ByteSource:
        fd = self._fds.get(path)
        if fd is None:
            fd = self._fds[path] = LocalSource(path)
        return fd

    def _select(self, optical_path: object, focal_plane: object, default: Plane) -> Plane:
        """The (optical path, focal plane) that ``optical_path=`` / ``focal_plane=`` ask for."""
        path, z = default
        if optical_path is not None:
            if isinstance(optical_path, (int, np.integer)) and not isinstance(optical_path, bool):
                if not 0 <= int(optical_path) < len(self.optical_paths):
                    raise ValueError(f"optical_path index must be in [0, {len(self.optical_paths) - 1}], got "
                                     f"{optical_path}")
                path = self.optical_paths[int(optical_path)]
            elif str(optical_path) in self.optical_paths:
                path = str(optical_path)
            else:
                raise ValueError(f"optical_path must be one of {self.optical_paths} (or an index), "
                                 f"got {optical_path!r}")
        if focal_plane is not None:
            index = as_int(focal_plane, "focal_plane")
            if not 0 <= index < len(self.focal_planes):
                raise ValueError(f"focal_plane must be in [0, {len(self.focal_planes) - 1}], got {index}")
            z = self.focal_planes[index]
        return path, z

    # -- metadata --------------------------------------------------------------------------
    def _read_metadata(self, main: Instance, instances: list[Instance]) -> None:
        props = self._properties
        props.update(header_properties(main.ds))
        source0 = self._levels[0].sources[0]
        props["dicom.TransferSyntaxUID"] = source0.transfer_syntax
        props["dicom.transfer-syntax"] = syntax_name(source0.transfer_syntax)
        props["dicom.tiling"] = "TILED_SPARSE" if main.sparse else "TILED_FULL"
        props["dicom.frame-index"] = getattr(source0.frames, "how", "native")
        props["dicom.instances"] = str(len(instances))
        props["dicom.optical-paths"] = ", ".join(self.optical_paths)
        props["dicom.focal-planes"] = ", ".join(f"{z:g}" for z in self.focal_planes)
        for k, level in enumerate(self._levels):
            props[f"dicom.level[{k}].frames"] = str(sum(s.frames.count for s in level.sources))
            props[f"dicom.level[{k}].frame-shape"] = f"{level.tile_shape[0]} x {level.tile_shape[1]}"
            props[f"dicom.level[{k}].transfer-syntax"] = syntax_name(level.sources[0].transfer_syntax)
        self._mpp, self._objective_power = resolution(main.ds)
        self.icc_profile = icc_profile(main.ds, self._selection[0])
        props["wsikit.vendor"] = "dicom"

    def _add_associated(self, instances: list[Instance]) -> None:
        self._associated_levels: dict[str, Level] = {}
        for instance in sorted(instances, key=lambda i: -i.shape[0] * i.shape[1]):
            name = _ASSOCIATED_NAMES[instance.kind]
            k = 2
            while name in self._associated_levels:
                name, k = f"{_ASSOCIATED_NAMES[instance.kind]}{k}", k + 1
            try:
                level = open_level([instance], self._fd)
            except (SlideError, ValueError) as exc:  # a broken label must not hide the slide
                self._properties[f"dicom.unreadable.{name}"] = str(exc)
                continue
            self._associated_levels[name] = level
            self._associated[name] = functools.partial(self._associated_image, name)
            profile = icc_profile(instance.ds)
            if profile is not None:
                self.associated_icc_profiles[name] = profile

    def _associated_image(self, name: str) -> np.ndarray:
        from ...pixels import to_uint8

        level = self._associated_levels[name]
        source = level.sources[0].instance
        check_allocation(level.shape + (max(3, source.samples),), source.dtype.itemsize, f"associated image {name!r}",
                         self.path)
        plane = level.planes[0]
        grid = self._make_grid(("associated", name) + plane, level, plane, pixel_shape(source), self._fill_of(source))
        image = np.asarray(self._reader.read(grid, 0, 0, level.shape[0], level.shape[1]))
        image = to_uint8(image.reshape(image.shape[:2] + (-1,)))
        if image.shape[2] == 1:
            image = np.repeat(image, 3, axis=2)
        return np.ascontiguousarray(image[:, :, :3])

    def _fill_of(self, instance: Instance) -> np.ndarray:
        """The fill of an associated image: the slide's when it has the slide's layout."""
        if layout(instance) == layout(self._levels[0].sources[0].instance):
            return self._fill
        return np.full(3, 255, np.uint8) if layout(instance)[0] else np.zeros(1, instance.dtype)

    # -- pixels ----------------------------------------------------------------------------
    def _grid(self, level: int, selection: Plane) -> TileGrid:
        grid = self._selection_grids.get((level, selection))
        if grid is None:
            with self._grid_lock:
                grid = self._selection_grids.get((level, selection))
                if grid is None:
                    data = self._levels[level]
                    plane = data.plane_of(selection)
                    key = ("dicom", level) + plane
                    # Selections that resolve to the same plane share one grid (and cache keys).
                    same = next((g for g in self._selection_grids.values() if g.key == key), None)
                    grid = same or self._make_grid(key, data, plane, self._pixel, self._fill)
                    self._selection_grids[(level, selection)] = grid
        return grid

    def _make_grid(self, key: tuple[Any, ...], level: Level, plane: Plane, pixels: tuple[int, ...],
                   fill: np.ndarray) -> TileGrid:
        table = frame_table(level, plane)
        dtype = np.dtype(level.sources[0].instance.dtype)
        blank = blank_frame(level.tile_shape, pixels, fill, dtype)
        fd_of = self._fd

        def decode(r: int, c: int) -> np.ndarray:
            k = int(table[r, c])
            if k < 0:
                return blank  # no frame stored here (sparse tiling)
            return decode_frame(level, k, fd_of, pixels, fill)

        self._tables[key] = table
        grid = TileGrid(key, level.shape, level.tile_shape, pixels, dtype, decode)
        # From a URL: frames of the next reads are fetched ahead, coalesced (wsikit.remote).
        return with_prefetch(grid, dicom_prefetcher(level, table, fd_of)) if is_url(self.path) else grid

    def _read_region(self, level: int, i: int, j: int, h: int, w: int, *, optical_path: str | int | None = None,
                     focal_plane: int | None = None) -> np.ndarray:
        grid = None  # the plane chosen when opening: the base reads self._grids
        if optical_path is not None or focal_plane is not None:
            grid = self._grid(level, self._select(optical_path, focal_plane, default=self._selection))
        try:
            if grid is None:
                return super()._read_region(level, i, j, h, w)
            return self._reader.read(grid, i, j, i + h, j + w)
        except ValueError as exc:  # the reader's: a frame decoded to another shape than the header's
            raise CorruptSlideError(self.path, str(exc)) from None

    def _native_tile_jpeg(self, level: int, ti: int, tj: int) -> bytes | None:
        data = self._levels[level]
        k = int(self._tables[self._grid(level, self._selection).key][ti, tj])
        source = data.sources[int(data.positions.instance[k])] if k >= 0 else None
        if source is None or source.invert or not self.is_rgb:
            return None  # no frame stored (sparse), or pixels changed after decoding
        stream = source.frames.read(self._fd(source.instance.path), int(data.positions.local[k]))
        return frame_jpeg(stream, source.transfer_syntax, data.tile_shape)

    # -- thumbnails from the thumbnail instance ----------------------------------------------
    def get_thumbnail(self, size: tuple[int, int] | int) -> np.ndarray:
        """As :meth:`SlideBackend.get_thumbnail`, from the series' THUMBNAIL image when it is
        large enough and smaller than the level that would be read."""
        from ...pixels import resize_area

        self._ensure_usable()
        thumb = getattr(self, "_associated_levels", {}).get("thumbnail")
        if thumb is None or self._color is not None:  # the thumbnail instance is not colour-converted
            return super().get_thumbnail(size)
        out_shape = thumbnail_shape(self._level_shapes[0], as_pair(size, "size", minimum=1))
        h0, w0 = self._level_shapes[0]
        lh, lw = self._level_shapes[self._thumbnail_level(out_shape)]
        h, w = thumb.shape
        same_aspect = abs(h / w - h0 / w0) <= 0.02 * (h0 / w0)
        if same_aspect and h >= out_shape[0] and w >= out_shape[1] and h * w < lh * lw:
            return resize_area(self.associated_images["thumbnail"], out_shape)
        return super().get_thumbnail(size)

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
