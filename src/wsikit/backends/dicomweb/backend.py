"""DICOMwebBackend: a DICOM whole-slide series read from a DICOMweb server.

``open_slide("https://host/dicom-web/studies/S/series/R")`` (or ``backend="dicomweb"``)
reads the series the way the local DICOM backend reads a series folder: both are a
:class:`~wsikit.backends.dicom.slide_model.DICOMSlideModel`, this one supplying how
instances are found (QIDO-RS, WADO-RS metadata) and how frames are fetched. VOLUME
instances become levels, THUMBNAIL / LABEL / OVERVIEW instances the associated images
"thumbnail", "label" and "macro"; TILED_SPARSE frames are placed by their positions,
absent ones read as the fill; focal planes and optical paths are chosen with
``focal_plane=`` / ``optical_path=``; ICC profiles come with the slide and its associated
images. Pixels equal the local backend's for the same files, bit for bit: frames come in
their stored transfer syntax and are decoded here, by the same decoders.

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

from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from ...errors import BackendUnavailableError, SlideError, UnsupportedFormatError
from ...limits import check_allocation
from ...plan import Plan, TileSpec
from ...reader.tiles import TileStream
from ..dicom.codecs import EXPLICIT_LITTLE, NATIVE, frame_decoder, guess_transfer_syntax, is_encapsulated
from ..dicom.frames import FrameIndex
from ..dicom.header import pydicom_warnings_silenced
from ..dicom.levels import Level, Plane, Source
from ..dicom.positions import frame_positions
from ..dicom.series import Instance
from ..dicom.slide_model import DICOMSlideModel, FileOf, Prefetch, Touch
from .client import HTTPClient
from .fetch import FrameStore, ReadAhead, RemoteInstance, plan_cells
from .instances import Listed, series_instances
from .url import SeriesURL, is_dicomweb_url, parse_series_url

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


class DICOMwebBackend(DICOMSlideModel):
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

    def _frame_store(self) -> FrameStore:
        """The frame store made when the series was found (none before, or after a failed start)."""
        if self._store is None:
            raise SlideError(self.path, "the DICOMweb series is not connected")
        return self._store

    def _open_series(self, series: SeriesURL, optical_path: str | int | None, focal_plane: int | None) -> None:
        self._readaheads: dict[Hashable, ReadAhead] = {}
        store = self._frame_store()
        self._open_instances(series_instances(store.client, series, self._probe), optical_path, focal_plane)

    def _prepare_levels(self, groups: list[list[Instance]], associated: list[Instance]) -> None:
        self._indices = self._register([m for group in groups for m in group] + associated)

    def _probe(self, listed: list[Listed]) -> None:
        """Called with the instances as soon as QIDO-RS lists them: the first frames of those
        whose transfer syntax the server does not give are fetched at once (their answer says
        it), while the metadata is still on its way; a read from the start then finds them."""
        store = self._frame_store()
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
        store = self._frame_store()
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
        store = self._frame_store()
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

    def _open_level(self, members: list[Instance]) -> Level:
        first = members[0]
        counts = first.tile_counts
        check_allocation(counts, 8, f"frame table of {counts[0]} x {counts[1]} positions", first.path)
        sources = [self._source(m, self._indices[m.path]) for m in members]
        return Level(first.shape, first.tile_shape, sources, frame_positions(members))

    def _extra_properties(self, props: dict[str, str]) -> None:
        props["dicomweb.url"] = self._series.url

    def _frame_access(self, key: Hashable, level: Level, table: np.ndarray
                      ) -> tuple[FileOf, Touch | None, Prefetch | None]:
        store = self._frame_store()
        # Where each frame of the level is fetched from: (store instance, 1-based frame number).
        instance_of = np.array([s.frames.instance_index for s in level.sources if isinstance(s.frames, RemoteFrames)])
        where = np.stack([instance_of[level.positions.instance], level.positions.local + 1], axis=1)
        ahead = self._readaheads[key] = ReadAhead(store, table, where)
        cols = table.shape[1]

        def announce(tiles: Sequence[tuple[int, int]]) -> None:
            cells = np.asarray(tiles, dtype=np.int64).reshape(-1, 2)
            ahead.announce(cells[:, 0] * cols + cells[:, 1])

        # The stream's look-ahead and large regions announce their tiles (wsikit.remote.prefetch).
        return _no_file, ahead.touch, announce

    # -- pixels ----------------------------------------------------------------------------
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
