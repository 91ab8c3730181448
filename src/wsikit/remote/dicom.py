"""Opening DICOM whole-slide images from URLs, for the DICOM backend.

A URL names one DICOM file (``https://host/slide/level0.dcm``, ``s3://bucket/s/level0.dcm``)
or a folder / prefix holding a series (``s3://bucket/series/``, listed through fsspec).
Each file gets a :class:`~.source.RemoteSource`; its header is parsed by pydicom from a
file object over that source (the first MiB, fetched when the source opens, holds it in
most files), then the series is gathered as the local backend gathers a folder: the
series with the largest VOLUME image, its labels and overviews. A single file's
siblings under the same prefix join it when ``whole_series`` and the protocol can list.
Frames are read through the sources, fetched ahead by :func:`dicom_prefetcher`.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import CorruptSlideError, UnsupportedFormatError
from .fileobj import SourceFile
from .filesystems import list_prefix
from .opening import is_dicom_head, take_source
from .settings import defaults_for, split_options
from .source import ByteSource, RemoteSource
from .urls import display_url, protocol_of

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

    from ..backends.dicom.levels import Level
    from ..backends.dicom.series import Instance

# Fixed-size reads pydicom makes (tags, lengths) never exceed this; longer reads are
# element values, whose length must fit in what is left of the file.
_LONGEST_FIXED_READ = 16


class _CheckedFile(SourceFile):
    """A remote file whose long reads must fit in what is left of it (as the local reader's)."""

    def read(self, size: int | None = -1) -> bytes:
        if size is not None and size > _LONGEST_FIXED_READ and size > self.source.size - self.tell():
            raise CorruptSlideError(self.name, f"an element's length runs past the end of the file: its value of "
                                               f"{size:,} bytes would start at byte {self.tell():,}, the file has "
                                               f"{self.source.size:,} bytes")
        return super().read(size)


def read_remote_header(source: ByteSource) -> tuple[Dataset, int]:
    """(dataset without pixels, byte where the pixel data element starts) of a remote file."""
    import pydicom

    from ..backends.dicom.header import pydicom_warnings_silenced

    handle = _CheckedFile(source)
    with pydicom_warnings_silenced():
        ds = pydicom.dcmread(handle, force=True, stop_before_pixels=True)
    return ds, handle.tell()


def gather_remote_series(url: str, storage_options: dict[str, Any] | None, whole_series: bool,
                         sources: dict[str, ByteSource]) -> list[Instance]:
    """The whole-slide instances at ``url`` (a file or a folder / prefix); the byte source of
    each member is put in ``sources`` (member URL -> source), which the caller closes."""
    from ..backends.dicom.header import element_value, is_wsi_header
    from ..backends.dicom.series import image_kind, read_instance

    options = defaults_for(protocol_of(url)) if storage_options is None else storage_options
    _, fs_options = split_options(options)
    name = display_url(url)
    listed = list_prefix(url, fs_options)
    if listed is not None:  # a folder / prefix: its files
        candidates, given = listed, None
    else:
        candidates, given = [url], url
        if whole_series:
            parent = url.rsplit("/", 1)[0] + "/"
            siblings = list_prefix(parent, fs_options) or []
            candidates += [sibling for sibling in siblings if sibling.rstrip("/") != url.rstrip("/")]
    headers = _headers(candidates, given, options, sources)
    if not headers:
        raise UnsupportedFormatError(name, "no DICOM whole-slide image found here")
    if given is not None:
        if given not in headers:
            raise UnsupportedFormatError(name, "not a DICOM whole-slide image (no WSI SOP class, no total pixel "
                                               "matrix)")
        wanted = str(element_value(headers[given][0], "SeriesInstanceUID", ""))
        members = [given] + [m for m in headers if m != given
                             and str(element_value(headers[m][0], "SeriesInstanceUID", "")) == wanted]
    else:
        by_series: dict[str, list[str]] = {}
        for member, (ds, _) in headers.items():
            by_series.setdefault(str(element_value(ds, "SeriesInstanceUID", "")), []).append(member)
        members = max(by_series.values(), key=lambda urls: max(_area(headers[u][0]) for u in urls))
    for unused in set(sources) - set(members):
        sources.pop(unused).close()
    instances: list[Instance] = []
    seen: set[str] = set()
    for member in members:
        ds = headers[member][0]
        try:
            instance = read_instance(member, headers[member], file_size=sources[member].size)
        except (CorruptSlideError, UnsupportedFormatError):
            if image_kind(ds) == "VOLUME" or member == given:
                raise
            continue
        if instance is None or instance.uid in seen or not is_wsi_header(ds):
            continue
        seen.add(instance.uid)
        instances.append(instance)
    return instances


def _headers(candidates: Sequence[str], given: str | None, options: dict[str, Any],
             sources: dict[str, ByteSource]) -> dict[str, tuple[Dataset, int]]:
    """member URL -> header of the candidates that are DICOM whole-slide files, opened in
    parallel (one round trip each, all at once). The file named (``given``) must open."""
    from ..backends.dicom.header import is_wsi_header

    def one(candidate: str) -> tuple[str, ByteSource | None, tuple[Dataset, int] | None]:
        try:
            source: ByteSource = take_source(candidate, options) if candidate == given else RemoteSource(
                candidate, options)
        except Exception:
            if candidate == given:
                raise
            return candidate, None, None
        try:
            if not is_dicom_head(source.read_at(0, 132)):
                raise UnsupportedFormatError(source.name, "not a DICOM file")
            return candidate, source, read_remote_header(source)
        except Exception:
            source.close()
            if candidate == given:
                raise
            return candidate, None, None

    headers: dict[str, tuple[Dataset, int]] = {}
    with ThreadPoolExecutor(max_workers=min(16, max(1, len(candidates)))) as pool:
        for candidate, source, header in pool.map(one, candidates):
            if source is None or header is None:
                continue
            if is_wsi_header(header[0]):
                headers[candidate] = header
                sources[candidate] = source
            else:
                source.close()
    return headers


def _area(ds: Dataset) -> int:
    from ..backends.dicom.header import element_value, int_or
    from ..backends.dicom.series import image_kind

    if image_kind(ds) != "VOLUME":
        return 0
    return (int_or(element_value(ds, "TotalPixelMatrixRows"), 0) or 0) * (
        int_or(element_value(ds, "TotalPixelMatrixColumns"), 0) or 0)


def dicom_prefetcher(level: Level, table: np.ndarray, fd_of: Callable[[str], ByteSource]
                     ) -> Callable[[Sequence[tuple[int, int]]], None]:
    """The prefetch hook of a DICOM level's grid: the byte ranges of the frames at the grid
    cells asked for, per file."""
    from ..backends.dicom.frames import EncapsulatedFrames, NativeFrames

    positions = level.positions

    def prefetch(tiles: Sequence[tuple[int, int]]) -> None:
        cells = np.asarray(tiles, dtype=np.int64).reshape(-1, 2)
        inside = (cells[:, 0] < table.shape[0]) & (cells[:, 1] < table.shape[1]) & (cells >= 0).all(axis=1)
        frames = table[cells[inside, 0], cells[inside, 1]]
        frames = frames[frames >= 0]
        ranges: dict[str, list[tuple[int, int]]] = {}
        for k in frames.tolist():
            source = level.sources[int(positions.instance[k])]
            local = int(positions.local[k])
            index = source.frames
            if isinstance(index, NativeFrames):
                span = (index.start + local * index.frame_bytes, index.frame_bytes)
            elif isinstance(index, EncapsulatedFrames):
                span = (int(index.starts[local]), int(index.ends[local] - index.starts[local]))
            else:
                continue
            ranges.setdefault(source.instance.path, []).append(span)
        for path, spans in ranges.items():
            fd_of(path).prefetch(spans)

    return prefetch
