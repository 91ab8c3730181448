"""DICOMBackend: DICOM whole-slide images (VL Whole Slide Microscopy), a file or a series.

``open_slide(folder)`` or ``open_slide(any_file_of_the_series)`` gathers the series: VOLUME
instances become levels (largest first, exact downsamples), THUMBNAIL / LABEL / OVERVIEW
instances become the associated images "thumbnail", "label" and "macro". Each level is a
:class:`~wsikit.reader.TileGrid` of frames, read through the shared cached reader; a frame
is found through an index built once at open (:mod:`.dicom_frames`), read with ``os.pread``
and decoded from its bytes by imagecodecs (:mod:`.dicom_codecs`).

Positions where a sparse tiling (TILED_SPARSE) stores no frame read as a uniform fill: the
file's Recommended Absent Pixel CIELab Value when it has one, else white for colour
images (brightfield glass) and black for grayscale ones (fluorescence background).

Several focal planes or optical paths: reads use those of the first frame of level 0
unless ``focal_plane=`` (an index into :attr:`DICOMBackend.focal_planes`) or
``optical_path=`` (an identifier from :attr:`DICOMBackend.optical_paths`, or its index)
is given when opening, or to ``extract_region`` / ``generate_tiles`` for one call.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass

import numpy as np

from ...errors import CorruptSlideError, SlideError
from ...checks import as_int, as_pair
from ...limits import check_allocation
from ...reader import TileGrid
from ..base import SlideBackend
from .codecs import (
    EXPLICIT_LITTLE,
    IMPLICIT_LITTLE,
    NATIVE,
    FrameShapeError,
    frame_decoder,
    guess_transfer_syntax,
    is_encapsulated,
)
from .frames import FrameIndex, frames_of, native_frames, offset_table, pixel_data_element
from .series import (
    FramePositions,
    Instance,
    first_item,
    folder_files,
    frame_positions,
    gather_series,
    get,
    is_wsi_file,
    number,
    quiet,
)

_ASSOCIATED_NAMES = {"THUMBNAIL": "thumbnail", "LABEL": "label", "OVERVIEW": "macro"}
_PROPERTY_KEYWORDS = (
    "Manufacturer", "ManufacturerModelName", "DeviceSerialNumber", "SoftwareVersions", "InstitutionName",
    "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID", "FrameOfReferenceUID", "PyramidUID",
    "ContainerIdentifier", "StudyID", "StudyDate", "SeriesNumber", "SeriesDescription", "AcquisitionDateTime",
    "ContentDate", "ImageType", "DimensionOrganizationType", "PhotometricInterpretation", "SamplesPerPixel",
    "BitsAllocated", "BitsStored", "NumberOfFrames", "Rows", "Columns", "TotalPixelMatrixRows",
    "TotalPixelMatrixColumns", "TotalPixelMatrixFocalPlanes", "NumberOfOpticalPaths", "ImagedVolumeWidth",
    "ImagedVolumeHeight", "ImagedVolumeDepth", "LossyImageCompression", "LossyImageCompressionMethod",
    "LossyImageCompressionRatio", "FocusMethod", "ExtendedDepthOfField", "SpecimenLabelInImage",
    "BurnedInAnnotation", "ImageOrientationSlide", "RecommendedAbsentPixelCIELabValue",
)


@dataclass
class _Source:
    """An instance made readable: its frames' byte ranges and the decoder of its codec."""

    instance: Instance
    frames: FrameIndex
    decode: object  # bytes -> (h, w, samples)
    transfer_syntax: str
    invert: bool  # MONOCHROME1


@dataclass
class _Level:
    """One image (a pyramid level or an associated image) as frames on a grid."""

    shape: tuple[int, int]
    tile_shape: tuple[int, int]
    sources: list[_Source]
    positions: FramePositions

    @property
    def grid(self) -> tuple[int, int]:
        return -(-self.shape[0] // self.tile_shape[0]), -(-self.shape[1] // self.tile_shape[1])

    planes: list[tuple[str, float]] = None  # (optical path, focal plane) pairs, in order of first appearance

    def __post_init__(self):
        self.planes = list(dict.fromkeys(zip(self.positions.path, self.positions.z.tolist())))


def cielab_to_rgb(lab) -> np.ndarray:
    """DICOM-encoded CIELab (three uint16, D50) to sRGB uint8."""
    L = lab[0] / 65535.0 * 100.0
    a = lab[1] / 65535.0 * 255.0 - 128.0
    b = lab[2] / 65535.0 * 255.0 - 128.0
    fy = (L + 16.0) / 116.0
    fx, fz = fy + a / 500.0, fy - b / 200.0

    def finv(t):
        return t**3 if t**3 > 216 / 24389 else (116 * t - 16) / (24389 / 27)

    xyz50 = np.array([0.9642 * finv(fx), 1.0 * finv(fy), 0.8249 * finv(fz)])
    # Bradford D50 -> D65, then XYZ -> linear sRGB.
    d50_to_d65 = np.array([[0.9555766, -0.0230393, 0.0631636], [-0.0282895, 1.0099416, 0.0210077],
                           [0.0122982, -0.0204830, 1.3299098]])
    to_srgb = np.array([[3.2404542, -1.5371385, -0.4985314], [-0.9692660, 1.8760108, 0.0415560],
                        [0.0556434, -0.2040259, 1.0572252]])
    linear = np.clip(to_srgb @ (d50_to_d65 @ xyz50), 0.0, 1.0)
    srgb = np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)
    return np.clip(np.rint(srgb * 255.0), 0, 255).astype(np.uint8)


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

    # -- opening ---------------------------------------------------------------------------
    def _open(self, *, optical_path=None, focal_plane=None, whole_series: bool = True, **options) -> None:
        if options:
            raise TypeError(f"unexpected options for DICOMBackend: {', '.join(options)}")
        with quiet():
            self._open_series(optical_path, focal_plane, whole_series)

    def _open_series(self, optical_path, focal_plane, whole_series) -> None:
        self._fds: dict[str, int] = {}
        self._grids: dict[tuple, TileGrid] = {}
        self._tables: dict[tuple, np.ndarray] = {}  # grid key -> frame index per grid cell (-1: none)
        self._grid_lock = threading.Lock()
        instances = gather_series(self.path, bool(whole_series))
        volumes = [i for i in instances if i.kind == "VOLUME"]
        if not volumes:  # a series of only a label or overview still shows what it has
            volumes = [max(instances, key=lambda i: i.shape[0] * i.shape[1])]
        main = max(volumes, key=lambda i: i.shape[0] * i.shape[1])
        if main.pyramid:
            volumes = [v for v in volumes if v.pyramid in (main.pyramid, "")]
        layout = _layout(main)
        volumes = [v for v in volumes if _layout(v) == layout]
        self.is_rgb = layout[0]
        self.dtype = np.dtype(main.dtype)
        self.sizes = (1, main.samples, 1)
        self.channel_names = ["R", "G", "B"] if self.is_rgb else [f"C{k}" for k in range(main.samples)]
        self._pixel = _pixel_of(main)
        self._fill = self._fill_value(main)

        by_shape: dict[tuple[int, int], list[Instance]] = {}
        for volume in volumes:
            by_shape.setdefault(volume.shape, []).append(volume)
        self._levels: list[_Level] = []
        for shape in sorted(by_shape, key=lambda s: (-s[0] * s[1], -s[0])):
            members = by_shape[shape]
            tile = members[0].tile_shape
            members = sorted((m for m in members if m.tile_shape == tile),
                             key=lambda m: (m.concatenation, m.concatenation_number, m.frame_offset, m.uid))
            self._levels.append(self._level(members))
        self._level_shapes = [level.shape for level in self._levels]

        level0 = self._levels[0]
        self.optical_paths: list[str] = list(level0.positions.paths)
        self.focal_planes: list[float] = sorted(set(level0.positions.z.tolist()))
        self._selection = self._select(optical_path, focal_plane, default=(level0.positions.path[0], float(level0.positions.z[0])))
        self._read_metadata(main, instances)
        self._add_associated([i for i in instances if i.kind in _ASSOCIATED_NAMES and i not in volumes])

    def _level(self, members: list[Instance]) -> _Level:
        first = members[0]
        # One table cell per frame position: a header of tiny frames over a huge image
        # (1 x 1 frames, say) must not make it unbounded.
        check_allocation(first.grid, 8, f"frame table of {first.grid[0]} x {first.grid[1]} positions", first.path)
        sources = [self._source(m) for m in members]
        return _Level(members[0].shape, members[0].tile_shape, sources, frame_positions(members))

    def _fd(self, path: str) -> int:
        fd = self._fds.get(path)
        if fd is None:
            fd = self._fds[path] = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        return fd

    def _source(self, instance: Instance) -> _Source:
        """Index the frames of an instance and pick its decoder (reads headers only)."""
        path = instance.path
        fd = self._fd(path)
        ts = instance.transfer_syntax
        implicit, little = getattr(instance.ds, "original_encoding", (None, True))
        if ts is not None:
            implicit, little = ts == IMPLICIT_LITTLE, ts != "1.2.840.10008.1.2.2"
        element = pixel_data_element(fd, instance.pixel_tag_offset, path, explicit_vr=not implicit, little_endian=little is not False)
        rows, cols = instance.tile_shape
        frame_bytes = rows * cols * instance.samples * instance.dtype.itemsize
        if instance.photometric == "YBR_FULL_422" and instance.samples == 3:
            frame_bytes = rows * cols * 2 * instance.dtype.itemsize
        if ts is None or (ts not in NATIVE and not is_encapsulated(ts)):
            ts = self._guess_transfer_syntax(fd, element, instance, implicit) or ts
        if is_encapsulated(ts) and element.length is not None:
            if element.length in (frame_bytes * instance.frame_count, frame_bytes * instance.frame_count + 1):
                ts = IMPLICIT_LITTLE if implicit else EXPLICIT_LITTLE  # mislabelled: the data is not compressed
            else:
                raise CorruptSlideError(path, f"the transfer syntax {ts} is compressed but the pixel data is not encapsulated")
        check_allocation((rows, cols, instance.samples), instance.dtype.itemsize, "decoded frame", path)
        decode = frame_decoder(ts, photometric=instance.photometric, samples=instance.samples, rows=rows, cols=cols,
                               dtype=instance.dtype, planar=instance.planar, path=path)
        if ts in NATIVE:
            frames = native_frames(path, element, frame_bytes, instance.frame_count, instance.file_size)
        else:
            extended = None
            eot, lengths = get(instance.ds, "ExtendedOffsetTable"), get(instance.ds, "ExtendedOffsetTableLengths")
            if eot is not None and lengths is not None:
                extended = (np.frombuffer(bytes(eot), dtype="<u8"), np.frombuffer(bytes(lengths), dtype="<u8"))
            frames = frames_of(path, fd, element, instance.frame_count, instance.file_size, extended=extended)
        return _Source(instance, frames, decode, ts, instance.photometric == "MONOCHROME1")

    @staticmethod
    def _guess_transfer_syntax(fd: int, element, instance: Instance, implicit) -> str | None:
        if element.length is not None:
            return IMPLICIT_LITTLE if implicit else EXPLICIT_LITTLE
        _, first = offset_table(fd, element, instance.path, instance.file_size)
        return guess_transfer_syntax(os.pread(fd, 16, first + 8))

    def _fill_value(self, instance: Instance) -> np.ndarray:
        lab = get(instance.ds, "RecommendedAbsentPixelCIELabValue")
        if lab is not None and len(lab) == 3:
            rgb = cielab_to_rgb([float(v) for v in lab])
            if self.is_rgb:
                return rgb
            top = np.iinfo(self.dtype).max if self.dtype.kind in "ui" else 1
            return np.array([round(float(lab[0]) / 65535.0 * top)], dtype=self.dtype)
        if self.is_rgb:
            return np.full(3, 255, dtype=np.uint8)
        return np.zeros(1, dtype=self.dtype)

    def _select(self, optical_path, focal_plane, default) -> tuple[str, float]:
        path, z = default
        if optical_path is not None:
            if isinstance(optical_path, (int, np.integer)) and not isinstance(optical_path, bool):
                if not 0 <= int(optical_path) < len(self.optical_paths):
                    raise ValueError(f"optical_path index must be in [0, {len(self.optical_paths) - 1}], got {optical_path}")
                path = self.optical_paths[int(optical_path)]
            elif str(optical_path) in self.optical_paths:
                path = str(optical_path)
            else:
                raise ValueError(f"optical_path must be one of {self.optical_paths} (or an index), got {optical_path!r}")
        if focal_plane is not None:
            index = as_int(focal_plane, "focal_plane")
            if not 0 <= index < len(self.focal_planes):
                raise ValueError(f"focal_plane must be in [0, {len(self.focal_planes) - 1}], got {index}")
            z = self.focal_planes[index]
        return path, z

    # -- metadata --------------------------------------------------------------------------
    def _read_metadata(self, main: Instance, instances: list[Instance]) -> None:
        ds = main.ds
        props = self._properties
        for keyword in _PROPERTY_KEYWORDS:
            value = get(ds, keyword)
            if value is not None:
                props[f"dicom.{keyword}"] = _text(value)
        source0 = self._levels[0].sources[0]
        props["dicom.TransferSyntaxUID"] = source0.transfer_syntax
        props["dicom.transfer-syntax"] = _syntax_name(source0.transfer_syntax)
        props["dicom.tiling"] = "TILED_SPARSE" if main.sparse else "TILED_FULL"
        props["dicom.frame-index"] = getattr(source0.frames, "how", "native")
        props["dicom.instances"] = str(len(instances))
        props["dicom.optical-paths"] = ", ".join(self.optical_paths)
        props["dicom.focal-planes"] = ", ".join(f"{z:g}" for z in self.focal_planes)
        for k, level in enumerate(self._levels):
            props[f"dicom.level[{k}].frames"] = str(sum(s.frames.count for s in level.sources))
            props[f"dicom.level[{k}].frame-shape"] = f"{level.tile_shape[0]} x {level.tile_shape[1]}"
            props[f"dicom.level[{k}].transfer-syntax"] = _syntax_name(level.sources[0].transfer_syntax)
        spacing = get(first_item(ds, "SharedFunctionalGroupsSequence", "PixelMeasuresSequence"), "PixelSpacing")
        if spacing is None:
            spacing = get(first_item(ds, "PerFrameFunctionalGroupsSequence", "PixelMeasuresSequence"), "PixelSpacing")
        if spacing is None:
            spacing = get(ds, "PixelSpacing")
        try:
            mpp = (float(spacing[0]) * 1000.0, float(spacing[1]) * 1000.0) if spacing is not None and len(spacing) == 2 else None
        except (TypeError, ValueError):
            mpp = None
        if mpp and all(np.isfinite(v) and v > 0 for v in mpp):
            self._mpp = mpp
        power = number(get(first_item(ds, "OpticalPathSequence"), "ObjectiveLensPower"), float)
        if power and np.isfinite(power) and power > 0:
            self._objective_power = power
        props["wsikit.vendor"] = "dicom"
        if self._mpp:
            props["wsikit.mpp-y"], props["wsikit.mpp-x"] = (repr(v) for v in self._mpp)
        if self._objective_power:
            props["wsikit.objective-power"] = repr(self._objective_power)

    def _add_associated(self, instances: list[Instance]) -> None:
        self._associated_levels: dict[str, _Level] = {}
        for instance in sorted(instances, key=lambda i: -i.shape[0] * i.shape[1]):
            name = _ASSOCIATED_NAMES[instance.kind]
            k = 2
            while name in self._associated_levels:
                name, k = f"{_ASSOCIATED_NAMES[instance.kind]}{k}", k + 1
            try:
                level = self._level([instance])
            except (SlideError, ValueError) as exc:  # a broken label must not hide the slide
                self._properties[f"dicom.unreadable.{name}"] = str(exc)
                continue
            self._associated_levels[name] = level
            self._associated[name] = lambda name=name: self._associated_image(name)

    def _associated_image(self, name: str) -> np.ndarray:
        from ...pixels import to_uint8

        level = self._associated_levels[name]
        source = level.sources[0].instance
        check_allocation(level.shape + (max(3, source.samples),), source.dtype.itemsize, f"associated image {name!r}", self.path)
        plane = level.planes[0]
        grid = self._make_grid(("associated", name) + plane, level, plane, _pixel_of(source), self._fill_of(source))
        image = np.asarray(self._reader.read(grid, 0, 0, level.shape[0], level.shape[1]))
        image = to_uint8(image.reshape(image.shape[:2] + (-1,)))
        if image.shape[2] == 1:
            image = np.repeat(image, 3, axis=2)
        return np.ascontiguousarray(image[:, :, :3])

    def _fill_of(self, instance: Instance) -> np.ndarray:
        if _layout(instance) == _layout(self._levels[0].sources[0].instance):
            return self._fill
        return np.full(3, 255, np.uint8) if _layout(instance)[0] else np.zeros(1, instance.dtype)

    # -- pixels ----------------------------------------------------------------------------
    def _plane_of(self, level: _Level, selection: tuple[str, float]) -> tuple[str, float]:
        """The (path, z) of ``level`` for a selection made on level 0: same path, nearest z."""
        planes = level.planes
        if selection in planes:
            return selection
        path, z = selection
        candidates = [p for p in planes if p[0] == path] or [p for p in planes if p[0] == planes[0][0]]
        return min(candidates, key=lambda p: abs(p[1] - z))

    def _grid(self, level: int, selection: tuple[str, float]) -> TileGrid:
        grid = self._grids.get((level, selection))
        if grid is None:
            with self._grid_lock:
                grid = self._grids.get((level, selection))
                if grid is None:
                    data = self._levels[level]
                    plane = self._plane_of(data, selection)
                    key = ("dicom", level) + plane
                    # Selections that resolve to the same plane share one grid (and cache keys).
                    same = next((g for g in self._grids.values() if g.key == key), None)
                    grid = same or self._make_grid(key, data, plane, self._pixel, self._fill)
                    self._grids[(level, selection)] = grid
        return grid

    def _make_grid(self, key, level: _Level, plane: tuple[str, float], pixel_shape, fill) -> TileGrid:
        positions = level.positions
        rows, cols = level.grid
        th, tw = level.tile_shape
        chosen = np.flatnonzero((np.asarray(positions.path) == plane[0]) & (positions.z == plane[1]))
        ti, tj = positions.i[chosen] // th, positions.j[chosen] // tw
        inside = (ti >= 0) & (ti < rows) & (tj >= 0) & (tj < cols)
        chosen, ti, tj = chosen[inside], ti[inside], tj[inside]
        table = np.full((rows, cols), -1, dtype=np.int64)
        table[ti[::-1], tj[::-1]] = chosen[::-1]  # where frames repeat a position, the first wins
        dtype = np.dtype(level.sources[0].instance.dtype)
        blank = _blank(level.tile_shape, pixel_shape, fill, dtype)

        def decode(r: int, c: int) -> np.ndarray:
            k = int(table[r, c])
            if k < 0:
                return blank  # no frame stored here (sparse tiling)
            return self._frame(level, k, pixel_shape, fill)

        self._tables[key] = table
        return TileGrid(key, level.shape, level.tile_shape, pixel_shape, dtype, decode)

    def _frame(self, level: _Level, k: int, pixel_shape, fill) -> np.ndarray:
        """Frame ``k`` of a level, decoded to (th, tw) + pixel_shape."""
        positions = level.positions
        source = level.sources[int(positions.instance[k])]
        local = int(positions.local[k])
        path = source.instance.path
        th, tw = level.tile_shape
        try:
            data = source.frames.read(self._fd(path), local)
            array = source.decode(data)
        except SlideError:
            raise
        except FrameShapeError as exc:
            raise CorruptSlideError(path, f"frame {local}: {exc}") from None
        except Exception as exc:
            raise CorruptSlideError(path, f"frame {local} cannot be decoded ({_syntax_name(source.transfer_syntax)}): "
                                          f"{type(exc).__name__}: {exc}") from None
        if source.invert:
            array = np.iinfo(array.dtype).max - array if array.dtype.kind == "u" else -array
        h, w = array.shape[:2]
        if h > th or w > tw:
            raise CorruptSlideError(path, f"frame {local} decodes to {h} x {w} pixels, larger than the header's {th} x {tw}")
        samples = 3 if pixel_shape == (3,) else pixel_shape[1]
        if array.shape[2] != samples:
            if samples == 3 and array.shape[2] == 1:  # a grayscale frame in a colour image
                array = np.repeat(array, 3, axis=2)
            else:
                raise CorruptSlideError(path, f"frame {local} decodes to {array.shape[2]} samples per pixel, the header says {samples}")
        if pixel_shape != (3,):
            array = array.reshape((h, w) + pixel_shape)
        if (h, w) != (th, tw):  # a frame smaller than the header says: pad it
            full = np.array(_blank(level.tile_shape, pixel_shape, fill, array.dtype))
            full[:h, :w] = array
            array = full
        return array

    def _read_region(self, level: int, i: int, j: int, h: int, w: int, *, optical_path=None, focal_plane=None,
                     **kwargs) -> np.ndarray:
        if kwargs:
            raise TypeError(f"unexpected arguments for DICOMBackend.extract_region: {', '.join(kwargs)}")
        selection = self._selection
        if optical_path is not None or focal_plane is not None:
            selection = self._select(optical_path, focal_plane, default=self._selection)
        try:
            return self._reader.read(self._grid(level, selection), i, j, i + h, j + w)
        except ValueError as exc:
            raise CorruptSlideError(self.path, str(exc)) from None

    def _level_grid(self, level: int) -> TileGrid:
        return self._grid(level, self._selection)  # _read_region without options reads exactly this grid

    # -- thumbnails from the thumbnail instance ----------------------------------------------
    def get_thumbnail(self, size) -> np.ndarray:
        """As :meth:`SlideBackend.get_thumbnail`, from the series' THUMBNAIL image when it is
        large enough and smaller than the level that would be read."""
        from ...pixels import resize_area

        self._ensure_usable()
        thumb = getattr(self, "_associated_levels", {}).get("thumbnail")
        if thumb is None:
            return super().get_thumbnail(size)
        th, tw = as_pair(size, "size", minimum=1)
        h0, w0 = self._level_shapes[0]
        scale = min(th / h0, tw / w0)
        out_shape = (min(th, max(1, round(h0 * scale))), min(tw, max(1, round(w0 * scale))))
        lh, lw = self._level_shapes[self._thumbnail_level(out_shape)]
        h, w = thumb.shape
        same_aspect = abs(h / w - h0 / w0) <= 0.02 * (h0 / w0)
        if same_aspect and h >= out_shape[0] and w >= out_shape[1] and h * w < lh * lw:
            return resize_area(self.associated_images["thumbnail"], out_shape)
        return super().get_thumbnail(size)

    # -- frame addressing (the seed's DICOM interface) -------------------------------------
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

    def frame_index(self, coords, level: int | None = 0) -> int:
        """Index of the frame whose top-left corner is ``coords`` (i, j), in the focal plane
        and optical path read; ValueError when no frame starts there."""
        level = self._check_level(level)
        i, j = as_pair(coords, "coords")
        data = self._levels[level]
        th, tw = data.tile_shape
        h, w = data.shape
        if not (0 <= i < h and 0 <= j < w):
            raise ValueError(f"coords {(i, j)} lie outside level {level} of shape {(h, w)}")
        if i % th or j % tw:
            raise ValueError(f"coords {(i, j)} are not on a frame corner: frames are {th} x {tw} pixels")
        table = self._tables[self._grid(level, self._selection).key]
        k = int(table[i // th, j // tw])
        if k < 0:
            raise ValueError(f"no frame is stored at {(i, j)} of level {level} (sparse tiling)")
        return k

    def read_frame(self, index: int, level: int | None = 0) -> np.ndarray:
        """The pixels of frame ``index``, cut to the image where it overhangs the edge."""
        level = self._check_level(level)
        i, j = self.frame_coords(index, level)
        data = self._levels[level]
        th, tw = data.tile_shape
        h, w = min(th, data.shape[0] - i), min(tw, data.shape[1] - j)
        return self._frame(data, index, self._pixel, self._fill)[:h, :w]

    # -- lifecycle -------------------------------------------------------------------------
    def _close(self) -> None:
        for fd in list(getattr(self, "_fds", {}).values()):
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds = {}

    def _after_fork(self) -> None:
        # pread on inherited descriptors is safe, but the child gets its own so that the
        # parent closing the slide does not pull the files from under it.
        self._fds = {path: os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0)) for path in self._fds}


def _layout(instance: Instance) -> tuple[bool, int, str]:
    is_rgb = instance.samples == 3 and instance.dtype == np.uint8
    return is_rgb, instance.samples, instance.dtype.str


def _pixel_of(instance: Instance) -> tuple[int, ...]:
    """Trailing axes of a read: (3,) for uint8 RGB, else (z, c, t) = (1, samples, 1)."""
    return (3,) if _layout(instance)[0] else (1, instance.samples, 1)


def _blank(tile_shape, pixel_shape, fill, dtype) -> np.ndarray:
    """A read-only frame of the fill colour, shared by every empty grid cell."""
    fill = np.asarray(fill).astype(dtype).ravel()
    shape = tuple(tile_shape) + tuple(pixel_shape)
    if tuple(pixel_shape) == (3,) and fill.size == 3 and not np.all(fill == fill[0]):
        row = np.tile(fill, shape[1]).reshape(shape[1], 3)  # copying whole rows is fast
        blank = np.ascontiguousarray(np.broadcast_to(row, shape))
    else:
        blank = np.full(shape, fill[0], dtype=dtype)
    blank.setflags(write=False)
    return blank


def _text(value) -> str:
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def _syntax_name(uid: str) -> str:
    try:
        from pydicom.uid import UID

        name = UID(uid).name
        return name if name and name != uid else uid
    except Exception:
        return str(uid)


__all__ = ["DICOMBackend"]
