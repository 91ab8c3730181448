"""DICOMSlideModel: a DICOM whole-slide series over its instances and a way to read frames.

The part of reading a VL Whole Slide Microscopy series that does not depend on where its
frames come from: which VOLUME instances become levels (largest first, one pyramid, one
layout), the THUMBNAIL / LABEL / OVERVIEW instances as the associated images "thumbnail",
"label" and "macro", the choice of focal plane and optical path, the properties, the tile
grids (sparse positions read as the fill) and thumbnails from the THUMBNAIL instance.

It is no backend of its own (the registry does not list it). The DICOM backend (local
files, or a file / series behind a URL) and the DICOMweb backend (frames fetched by
WADO-RS) subclass it, each saying only how a group of instances becomes a
:class:`~.levels.Level` (:meth:`_open_level`) and how a grid reaches its frames' bytes
(:meth:`_frame_access`); both hand the instances they found to :meth:`_open_instances`.
"""
from __future__ import annotations

from abc import abstractmethod

import functools
import threading
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np

from ...checks import as_int, as_pair
from ...errors import CorruptSlideError, SlideError
from ...limits import check_allocation
from ...reader import TileGrid
from ...remote.prefetch import prefetch_box, with_prefetch
from ...tiling import thumbnail_shape
from ..base import SlideBackend
from .layout import absent_fill, blank_frame, layout, pixel_shape
from .levels import Level, Plane, decode_frame, frame_table
from .metadata import header_properties, icc_profile, resolution, syntax_name
from .series import Instance

ASSOCIATED_NAMES = {"THUMBNAIL": "thumbnail", "LABEL": "label", "OVERVIEW": "macro"}

# How a grid reaches the bytes of its frames (see DICOMSlideModel._frame_access).
FileOf = Callable[[str], Any]  # an instance's path -> what its frames are read from
Touch = Callable[[int], None]  # told the grid cell (row * columns + column) of each frame decoded
Prefetch = Callable[[Sequence[tuple[int, int]]], None]  # told the grid cells that reads will need


class DICOMSlideModel(SlideBackend):
    """A DICOM VL Whole Slide Microscopy series; subclasses say how frames are fetched."""

    # -- what a subclass supplies ------------------------------------------------------------
    def _prepare_levels(self, groups: list[list[Instance]], associated: list[Instance]) -> None:
        """Called with the instances of every level and the associated ones before any level
        is opened (the DICOMweb backend registers them with its frame store)."""

    @abstractmethod
    def _open_level(self, members: list[Instance]) -> Level:
        """The level read from ``members`` (instances of one shape, in frame order)."""

    @abstractmethod
    def _frame_access(self, key: Hashable, level: Level, table: np.ndarray
                      ) -> tuple[FileOf, Touch | None, Prefetch | None]:
        """How the grid ``key`` of ``level`` (``table``: frame per cell) reads its frames: what
        :func:`~.levels.decode_frame` reads them from, a hook told each cell decoded, and the
        hook of :func:`wsikit.remote.prefetch.with_prefetch` (None: no such hook)."""

    def _extra_properties(self, props: dict[str, str]) -> None:
        """Properties a subclass adds after the DICOM ones."""

    # -- opening ---------------------------------------------------------------------------
    def _open_instances(self, instances: list[Instance], optical_path: str | int | None,
                        focal_plane: int | None) -> None:
        """Levels, associated images, planes and properties of the series ``instances``."""
        self._selection_grids: dict[tuple[int, Plane], TileGrid] = {}
        self._tables: dict[Hashable, np.ndarray] = {}  # grid key -> frame index per grid cell (-1: none)
        self._grid_lock = threading.Lock()
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
        associated = [i for i in instances if i.kind in ASSOCIATED_NAMES and i not in volumes]

        by_shape: dict[tuple[int, int], list[Instance]] = {}
        for volume in volumes:
            by_shape.setdefault(volume.shape, []).append(volume)
        groups: list[list[Instance]] = []
        for shape in sorted(by_shape, key=lambda s: (-s[0] * s[1], -s[0])):
            members = by_shape[shape]
            tile = members[0].tile_shape
            groups.append(sorted((m for m in members if m.tile_shape == tile),
                                 key=lambda m: (m.concatenation, m.concatenation_number, m.frame_offset, m.uid)))
        self._prepare_levels(groups, associated)
        self._levels: list[Level] = [self._open_level(group) for group in groups]
        self._level_shapes = [level.shape for level in self._levels]

        level0 = self._levels[0]
        self.optical_paths: list[str] = list(level0.positions.paths)
        self.focal_planes: list[float] = sorted(set(level0.positions.z.tolist()))
        first_plane = (level0.positions.path[0], float(level0.positions.z[0]))
        self._selection = self._select(optical_path, focal_plane, default=first_plane)
        self._grids = [self._grid(level, self._selection) for level in range(len(self._levels))]
        self._read_metadata(main, instances)
        self._add_associated(associated)

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
        self._extra_properties(props)
        self._mpp, self._objective_power = resolution(main.ds)
        self.icc_profile = icc_profile(main.ds, self._selection[0])
        props["wsikit.vendor"] = "dicom"

    def _add_associated(self, instances: list[Instance]) -> None:
        self._associated_levels: dict[str, Level] = {}
        for instance in sorted(instances, key=lambda i: -i.shape[0] * i.shape[1]):
            name = ASSOCIATED_NAMES[instance.kind]
            k = 2
            while name in self._associated_levels:
                name, k = f"{ASSOCIATED_NAMES[instance.kind]}{k}", k + 1
            try:
                level = self._open_level([instance])
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
                    key = (self.name, level) + plane
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
        file_of, touch, prefetch = self._frame_access(key, level, table)
        cols = table.shape[1]

        def decode(r: int, c: int) -> np.ndarray:
            k = int(table[r, c])
            if k < 0:
                return blank  # no frame stored here (sparse tiling)
            if touch is not None:
                touch(r * cols + c)
            return decode_frame(level, k, file_of, pixels, fill)

        self._tables[key] = table
        grid = TileGrid(key, level.shape, level.tile_shape, pixels, dtype, decode)
        return grid if prefetch is None else with_prefetch(grid, prefetch)

    def _read_region(self, level: int, i: int, j: int, h: int, w: int, *, optical_path: str | int | None = None,
                     focal_plane: int | None = None) -> np.ndarray:
        grid = None  # the plane chosen when opening: the base reads self._grids
        if optical_path is not None or focal_plane is not None:
            grid = self._grid(level, self._select(optical_path, focal_plane, default=self._selection))
        try:
            if grid is None:
                return super()._read_region(level, i, j, h, w)
            prefetch_box(grid, i, j, i + h, j + w)  # as the base does for the plane chosen when opening
            return self._reader.read(grid, i, j, i + h, j + w)
        except ValueError as exc:  # the reader's: a frame decoded to another shape than the header's
            raise CorruptSlideError(self.path, str(exc)) from None

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


__all__ = ["ASSOCIATED_NAMES", "DICOMSlideModel", "FileOf", "Prefetch", "Touch"]
