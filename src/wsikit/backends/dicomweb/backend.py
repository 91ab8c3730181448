"""DICOMwebBackend: a DICOM whole-slide series read from a DICOMweb server.

``open_slide("https://host/dicom-web/studies/S/series/R")`` (or ``backend="dicomweb"``)
reads the series the way the local DICOM backend reads a series folder, with the same
helpers (:mod:`wsikit.backends.dicom`): VOLUME instances become levels, THUMBNAIL / LABEL /
OVERVIEW instances the associated images "thumbnail", "label" and "macro"; TILED_SPARSE
frames are placed by their positions, absent ones read as the fill; focal planes and
optical paths are chosen with ``focal_plane=`` / ``optical_path=``; ICC profiles come with
the slide and its associated images. Pixels equal the local
backend's for the same files, bit for bit: frames come in their stored transfer syntax and
are decoded here, by the same decoders.

Opening asks for the metadata (QIDO-RS and WADO-RS at once); when the server does not say
there how frames are stored, the first frames of each instance are asked for as soon as
QIDO-RS lists them (their answer says it), while the metadata is on its way. Frames are
fetched in batches, ahead of use, several requests in flight (:mod:`.fetch`).

Options (``open_slide`` keywords): ``headers`` (HTTP headers sent with every request, e.g.
``{"Authorization": "Bearer ..."}``) and ``storage_options``, whose ``headers`` key is
taken the same way and whose ``wsikit_*`` keys tune requests (timeout, retries, requests
in flight, cache and request sizes; :mod:`wsikit.remote.settings`). Headers never appear in
errors, logs or ``repr``; a pickled slide carries its URL and options, headers included,
so that a worker process can reopen it.
"""
from __future__ import annotations

import functools
import threading
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from ...checks import as_int, as_pair
from ...errors import BackendUnavailableError, CorruptSlideError, SlideError, UnsupportedFormatError
from ...limits import check_allocation
from ...plan import Plan, TileSpec
from ...reader import TileGrid
from ...reader.tiles import TileStream
from ...remote.prefetch import prefetch_box, with_prefetch
from ...tiling import thumbnail_shape
from ..base import SlideBackend
from ..dicom.codecs import EXPLICIT_LITTLE, NATIVE, frame_decoder, guess_transfer_syntax, is_encapsulated
from ..dicom.frames import FrameIndex
from ..dicom.header import pydicom_warnings_silenced
from ..dicom.layout import absent_fill, blank_frame, layout, pixel_shape
from ..dicom.levels import Level, Plane, Source, decode_frame, frame_table
from ..dicom.metadata import header_properties, icc_profile, resolution, syntax_name
from ..dicom.positions import frame_positions
from ..dicom.series import Instance
from .client import HTTPClient
from .fetch import FrameStore, ReadAhead, RemoteInstance, plan_cells
from .instances import Listed, series_instances
from .url import SeriesURL, is_dicomweb_url, parse_series_url

_ASSOCIATED_NAMES = {"THUMBNAIL": "thumbnail", "LABEL": "label", "OVERVIEW": "macro"}
# At most this many requests for frames in flight at once (whatever wsikit_requests says):
# DICOMweb servers cut frames out of instances, and their cost is per request.
_MAX_FRAME_REQUESTS = 4
# The first frames of each instance fetched while opening, when the server does not say how they
# are stored (the answer says): what a read from the start needs first.
_PROBED_FRAMES = 32
_PROBED_FRAMES_LARGEST = 256
# Plans of up to this many tiles have their frames fetched in the plan's order (larger: row-major).
_PLANNED_TILES = 1 << 20


class RemoteFrames(FrameIndex):
    """The frames of one remote instance, as the local helpers read frames: ``read(_, k)``."""

    def __init__(self, store: FrameStore, instance_index: int, count: int) -> None:
        self.store, self.instance_index, self.count = store, instance_index, count
        self.how = "dicomweb"

    def read(self, fd: object, k: int) -> bytes:
        return self.store.frame(self.instance_index, k + 1)  # fd: the local helpers' file, unused


def _no_file(_path: str) -> Any:
    return None  # remote frames are read from no file


def _native_frame_bytes(instance: Instance) -> int:
    rows, cols = instance.tile_shape
    if instance.photometric == "YBR_FULL_422" and instance.samples == 3:
        return rows * cols * 2 * instance.dtype.itemsize
    return rows * cols * instance.samples * instance.dtype.itemsize


class DICOMwebBackend(SlideBackend):
    """A DICOM VL Whole Slide Microscopy series on a DICOMweb server (WADO-RS / QIDO-RS)."""

    name = "dicomweb"
    extensions = ()

    @classmethod
    def can_read(cls, path: str) -> bool:
        return is_dicomweb_url(path)

    @classmethod
    def check_file(cls, path: str) -> None:
        return None  # nothing local to vet

    @staticmethod
    def _check_exists(path: str) -> None:
        return None  # whether the series exists is the server's answer, when opening

    # -- opening ---------------------------------------------------------------------------
    def _open(self, *, headers: Mapping[str, str] | None = None, storage_options: Mapping[str, Any] | None = None,
              optical_path: str | int | None = None, focal_plane: int | None = None) -> None:
        self._store: FrameStore | None = None
        series = self._connect(headers, storage_options)
        with pydicom_warnings_silenced():
            self._open_series(series, optical_path, focal_plane)

    def _connect(self, headers: Mapping[str, str] | None,
                 storage_options: Mapping[str, Any] | None) -> SeriesURL:
        from ...remote.settings import split_options

        try:
            series, from_url = parse_series_url(self.path)
        except ValueError as exc:
            from ...remote.urls import display_url

            raise UnsupportedFormatError(display_url(self.path), str(exc)) from None
        try:
            import urllib3  # noqa: F401  (the HTTP client)
        except ImportError:
            raise BackendUnavailableError(series.url, "reading DICOMweb needs the package urllib3 (pip install "
                                                      "'urllib3>=2')") from None
        settings, rest = split_options(storage_options)
        given = rest.pop("headers", None)
        if rest:
            raise TypeError(f"storage option(s) {', '.join(sorted(map(str, rest)))} are not used by DICOMweb (it takes "
                            "'headers' and wsikit's wsikit_* options)")
        sent = dict(from_url)
        for extra, name in ((given, "storage_options['headers']"), (headers, "headers")):
            if extra is None:
                continue
            if not isinstance(extra, Mapping):
                raise TypeError(f"{name} must be a dict of HTTP headers, got {type(extra).__name__}")
            sent.update({str(k): str(v) for k, v in extra.items()})
        self.path = series.url  # the URL in one form, without credentials (shown in errors and repr)
        if from_url:  # the credentials leave the URL for the headers, which are never shown
            self._options = dict(self._options, headers=dict(sent))
        client = HTTPClient(sent, timeout=settings.timeout, stall=settings.stall, retries=settings.retries,
                            connections=settings.requests + 2, backoff=settings.backoff)
        self._store = FrameStore(client, cache_bytes=settings.cache_bytes, request_bytes=settings.request_bytes,
                                 requests=min(settings.requests, _MAX_FRAME_REQUESTS))
        self._series = series
        self._probed: dict[str, int] = {}
        return series

    def _open_series(self, series: SeriesURL, optical_path: str | int | None, focal_plane: int | None) -> None:
        self._selection_grids: dict[tuple[int, Plane], TileGrid] = {}
        self._tables: dict[Hashable, np.ndarray] = {}
        self._readaheads: dict[Hashable, ReadAhead] = {}
        self._grid_lock = threading.Lock()
        store = self._store
        assert store is not None  # set by _connect
        instances = series_instances(store.client, series, self._probe)
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
        associated = [i for i in instances if i.kind in _ASSOCIATED_NAMES and i not in volumes]

        by_shape: dict[tuple[int, int], list[Instance]] = {}
        for volume in volumes:
            by_shape.setdefault(volume.shape, []).append(volume)
        groups: list[list[Instance]] = []
        for shape in sorted(by_shape, key=lambda s: (-s[0] * s[1], -s[0])):
            members = by_shape[shape]
            tile = members[0].tile_shape
            groups.append(sorted((m for m in members if m.tile_shape == tile),
                                 key=lambda m: (m.concatenation, m.concatenation_number, m.frame_offset, m.uid)))
        indices = self._register([m for group in groups for m in group] + associated)
        self._levels = [self._level(group, indices) for group in groups]
        self._level_shapes = [level.shape for level in self._levels]

        level0 = self._levels[0]
        self.optical_paths: list[str] = list(level0.positions.paths)
        self.focal_planes: list[float] = sorted(set(level0.positions.z.tolist()))
        first_plane = (level0.positions.path[0], float(level0.positions.z[0]))
        self._selection = self._select(optical_path, focal_plane, default=first_plane)
        self._grids = [self._grid(level, self._selection) for level in range(len(self._levels))]
        self._read_metadata(main, instances)
        self._add_associated(associated, indices)

    def _probe(self, listed: list[Listed]) -> None:
        """Called with the instances as soon as QIDO-RS lists them: the first frames of those
        whose transfer syntax the server does not give are fetched at once (their answer says
        it), while the metadata is still on its way; a read from the start then finds them."""
        store = self._store
        assert store is not None
        largest = max(item.frames for item in listed)
        for item in listed:
            url = self._series.instance_url(item.uid)
            index = store.add_instance(RemoteInstance(url, item.transfer_syntax))
            self._probed[url] = index
            if item.transfer_syntax is None:
                # Most frames from the largest instance (level 0, most likely): what a tiling
                # decodes while the large batches behind are served.
                count = _PROBED_FRAMES_LARGEST if item.frames == largest else _PROBED_FRAMES
                store.prefetch([(index, n) for n in range(1, min(item.frames, count) + 1)])

    def _register(self, instances: list[Instance]) -> dict[str, int]:
        """Each instance's index in the frame store (by URL), its transfer syntax known: from
        the metadata, else from the answer of its first frames (fetched by :meth:`_probe`)."""
        store = self._store
        assert store is not None
        indices: dict[str, int] = {}
        for instance in instances:
            if instance.path in indices:
                continue
            index = self._probed.get(instance.path)
            if index is None:
                index = store.add_instance(RemoteInstance(instance.path, instance.transfer_syntax))
                if instance.transfer_syntax is None:
                    store.prefetch([(index, 1)])
            target = store.instances[index]
            target.transfer_syntax = target.transfer_syntax or instance.transfer_syntax
            indices[instance.path] = index
        unknown = [k for k in indices.values() if store.instances[k].transfer_syntax is None]
        for k in unknown:
            first = store.frame(k, 1)
            target = store.instances[k]
            if target.transfer_syntax is None:  # the server did not say: what the bytes show
                target.transfer_syntax = guess_transfer_syntax(bytes(first[:16])) or EXPLICIT_LITTLE
        return indices

    def _source(self, instance: Instance, index: int) -> Source:
        store = self._store
        assert store is not None
        target = store.instances[index]
        syntax = target.transfer_syntax or EXPLICIT_LITTLE
        if syntax in NATIVE:
            target.native_frame_bytes = _native_frame_bytes(instance)
        elif not is_encapsulated(syntax):
            raise UnsupportedFormatError(instance.path, f"transfer syntax {syntax} is not one wsikit decodes")
        rows, cols = instance.tile_shape
        check_allocation((rows, cols, instance.samples), instance.dtype.itemsize, "decoded frame", instance.path)
        decode = frame_decoder(syntax, photometric=instance.photometric, samples=instance.samples, rows=rows,
                               cols=cols, dtype=instance.dtype, planar=instance.planar, path=instance.path)
        frames = RemoteFrames(store, index, instance.frame_count)
        return Source(instance, frames, decode, syntax, instance.photometric == "MONOCHROME1")

    def _level(self, members: list[Instance], indices: dict[str, int]) -> Level:
        first = members[0]
        counts = first.tile_counts
        check_allocation(counts, 8, f"frame table of {counts[0]} x {counts[1]} positions", first.path)
        sources = [self._source(m, indices[m.path]) for m in members]
        return Level(first.shape, first.tile_shape, sources, frame_positions(members))

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
        props["dicom.frame-index"] = "dicomweb"
        props["dicom.instances"] = str(len(instances))
        props["dicom.optical-paths"] = ", ".join(self.optical_paths)
        props["dicom.focal-planes"] = ", ".join(f"{z:g}" for z in self.focal_planes)
        for k, level in enumerate(self._levels):
            props[f"dicom.level[{k}].frames"] = str(sum(s.frames.count for s in level.sources))
            props[f"dicom.level[{k}].frame-shape"] = f"{level.tile_shape[0]} x {level.tile_shape[1]}"
            props[f"dicom.level[{k}].transfer-syntax"] = syntax_name(level.sources[0].transfer_syntax)
        props["dicomweb.url"] = self._series.url
        self._mpp, self._objective_power = resolution(main.ds)
        self.icc_profile = icc_profile(main.ds, self._selection[0])
        props["wsikit.vendor"] = "dicom"

    def _add_associated(self, instances: list[Instance], indices: dict[str, int]) -> None:
        self._associated_levels: dict[str, Level] = {}
        for instance in sorted(instances, key=lambda i: -i.shape[0] * i.shape[1]):
            name = _ASSOCIATED_NAMES[instance.kind]
            k = 2
            while name in self._associated_levels:
                name, k = f"{_ASSOCIATED_NAMES[instance.kind]}{k}", k + 1
            try:
                level = self._level([instance], indices)
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
                    key = ("dicomweb", level) + plane
                    # Selections that resolve to the same plane share one grid (and cache keys).
                    same = next((g for g in self._selection_grids.values() if g.key == key), None)
                    grid = same or self._make_grid(key, data, plane, self._pixel, self._fill)
                    self._selection_grids[(level, selection)] = grid
        return grid

    def _make_grid(self, key: tuple[Any, ...], level: Level, plane: Plane, pixels: tuple[int, ...],
                   fill: np.ndarray) -> TileGrid:
        store = self._store
        assert store is not None
        table = frame_table(level, plane)
        dtype = np.dtype(level.sources[0].instance.dtype)
        blank = blank_frame(level.tile_shape, pixels, fill, dtype)
        # Where each frame of the level is fetched from: (store instance, 1-based frame number).
        instance_of = np.array([s.frames.instance_index for s in level.sources if isinstance(s.frames, RemoteFrames)])
        where = np.stack([instance_of[level.positions.instance], level.positions.local + 1], axis=1)
        ahead = self._readaheads[key] = ReadAhead(store, table, where)
        cols = table.shape[1]

        def decode(r: int, c: int) -> np.ndarray:
            k = int(table[r, c])
            if k < 0:
                return blank  # no frame stored here (sparse tiling)
            ahead.touch(r * cols + c)
            return decode_frame(level, k, _no_file, pixels, fill)

        def announce(tiles: Sequence[tuple[int, int]]) -> None:
            cells = np.asarray(tiles, dtype=np.int64).reshape(-1, 2)
            ahead.announce(cells[:, 0] * cols + cells[:, 1])

        self._tables[key] = table
        # The stream's look-ahead and large regions announce their tiles (wsikit.remote.prefetch).
        return with_prefetch(TileGrid(key, level.shape, level.tile_shape, pixels, dtype, decode), announce)

    def _read_region(self, level: int, i: int, j: int, h: int, w: int, *, optical_path: str | int | None = None,
                     focal_plane: int | None = None) -> np.ndarray:
        grid = None  # the plane chosen when opening: the base reads self._grids
        if optical_path is not None or focal_plane is not None:
            grid = self._grid(level, self._select(optical_path, focal_plane, default=self._selection))
        try:
            if grid is None:
                return super()._read_region(level, i, j, h, w)
            prefetch_box(grid, i, j, i + h, j + w)
            return self._reader.read(grid, i, j, i + h, j + w)
        except ValueError as exc:  # the reader's: a frame decoded to another shape than the header's
            raise CorruptSlideError(self.path, str(exc)) from None

    def get_thumbnail(self, size: tuple[int, int] | int) -> np.ndarray:
        """As :meth:`SlideBackend.get_thumbnail`, from the series' THUMBNAIL image when it is
        large enough and smaller than the level that would be read (as for local series)."""
        from ...pixels import resize_area

        self._ensure_usable()
        thumb = getattr(self, "_associated_levels", {}).get("thumbnail")
        if thumb is None:
            return super().get_thumbnail(size)
        out_shape = thumbnail_shape(self._level_shapes[0], as_pair(size, "size", minimum=1))
        h0, w0 = self._level_shapes[0]
        lh, lw = self._level_shapes[self._thumbnail_level(out_shape)]
        h, w = thumb.shape
        same_aspect = abs(h / w - h0 / w0) <= 0.02 * (h0 / w0)
        if same_aspect and h >= out_shape[0] and w >= out_shape[1] and h * w < lh * lw:
            return resize_area(self.associated_images["thumbnail"], out_shape)
        return super().get_thumbnail(size)

    def read_plan(self, plan: Plan | Iterable[TileSpec], *, workers: int | None = None, normalize: bool = True,
                  errors: str = "raise", **options: Any) -> TileStream:
        """As :meth:`SlideBackend.read_plan`; the frames of a :class:`~wsikit.plan.Plan` are
        fetched ahead in the order its tiles read them, a full window from the first tile."""
        self._ensure_usable()
        if isinstance(plan, Plan) and 0 < len(plan) <= _PLANNED_TILES and 0 <= plan.level < self.level_count:
            selection: Plane | None = self._selection
            if options.get("optical_path") is not None or options.get("focal_plane") is not None:
                try:
                    selection = self._select(options.get("optical_path"), options.get("focal_plane"),
                                             default=self._selection)
                except (TypeError, ValueError):
                    selection = None  # refused when read, as without a plan
            if selection is not None:
                grid = self._grid(plan.level, selection)
                boxes = plan.read_boxes()
                self._readaheads[grid.key].follow(plan_cells(boxes, grid.shape, grid.tile_shape))
        return super().read_plan(plan, workers=workers, normalize=normalize, errors=errors, **options)

    # -- requests --------------------------------------------------------------------------
    @property
    def requests_made(self) -> int:
        """HTTP requests sent so far (metadata and frames, retries included)."""
        return 0 if self._store is None else self._store.client.requests

    # -- lifecycle -------------------------------------------------------------------------
    def _close(self) -> None:
        store = getattr(self, "_store", None)
        if store is not None:
            store.close()

    def _after_fork(self) -> None:
        if self._store is not None:
            self._store.after_fork()


__all__ = ["DICOMwebBackend"]
