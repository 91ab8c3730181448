"""Reading many boxes of a slide in order, in parallel: what ``read_regions``, ``read_plan``
and ``generate_tiles`` run.

A request names one box: ``level``, ``read_location`` (i, j) and ``read_size`` (h, w) in
pixels of that level (zero outside it), area-averaged to ``shape`` when that differs from
``read_size``. A :class:`~wsikit.plan.TileSpec` is such a request, and so is a
:class:`RegionRequest`. A request refused while it was being made (a bad location passed
to ``read_regions``) travels as a :class:`RejectedRequest`, so that its error is raised at
its turn, after the requests before it were read.

When every level of the slide is a grid of native tiles (``_level_grid``) and no backend
options are given, boxes are stitched straight from the grids by the
:class:`~wsikit.reader.tiled.TiledReader`: the native tiles of the next boxes are decoded
ahead on worker threads, each once, and a tile is kept only until its last use among the
next :data:`~wsikit.reader.uses.USE_HORIZON` requests (counted as they are pulled, so memory
does not grow with the slide). With ``resampling="fast"``, a box read larger than its shape
from a JPEG level is read from that level decoded at 1/2, 1/4 or 1/8 (:mod:`.scaled`).
Otherwise each box is one ``_extract`` call, run on a thread pool in order.
"""
from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any, Iterable, Iterator, NamedTuple, Protocol, Union

import numpy as np

from ..errors import CorruptSlideError, SlideError
from ..limits import check_allocation
from ..pixels import padded, resample_area, resample_box
from ..remote.prefetch import has_prefetch, prefetch_ahead
from .scaled import DEFAULT_RESAMPLING, ScaledGrids, jpeg_reduction
from .tile_grid import TileGrid
from .uses import UseCounter, UseWindow, counted_ahead
from .workers import ordered_map

if TYPE_CHECKING:
    from ..backends.base import SlideBackend
    from ..plan import Plan


class BoxRequest(Protocol):
    """What a reader needs to know of a request (TileSpec and RegionRequest both have it)."""

    @property
    def level(self) -> int: ...
    @property
    def read_location(self) -> tuple[int, int]: ...
    @property
    def read_size(self) -> tuple[int, int]: ...
    @property
    def shape(self) -> tuple[int, int]: ...


class RegionRequest(NamedTuple):
    """A box of ``level`` read at its own size (``read_regions``)."""

    level: int
    read_location: tuple[int, int]
    read_size: tuple[int, int]
    shape: tuple[int, int]


class RejectedRequest(NamedTuple):
    """A request whose arguments were refused: ``error`` is reported at its turn."""

    error: Exception


class BadRequest(ValueError):
    """A request the caller got wrong (a level the slide does not have): raised as it is,
    never taken for a broken file."""


Request = Union[BoxRequest, RejectedRequest]
#: what a stream yields for each request: the request, its pixels or None, its error or None
Result = tuple[Any, Union[np.ndarray, None], Union[BaseException, None]]


def read_requests(slide: SlideBackend, requests: Iterable[Request], *, normalize: bool, workers: int | None,
                  options: dict[str, Any], plan: Plan | None = None,
                  resampling: str = DEFAULT_RESAMPLING) -> Iterator[Result]:
    """``(request, pixels, error)`` for every request, in order, read on ``workers`` threads.

    A SlideError reading a request comes back as its ``error`` and reading goes on; so does
    the error of a RejectedRequest. ``resampling="fast"`` reads boxes larger than their shape
    from JPEG levels decoded at a reduced size where it can (:mod:`.scaled`); "exact"
    area-averages full decodes. ``plan``, the Plan the requests come from, gives the ratio
    that chooses the reduction for all its tiles alike.
    """
    grids = [slide._level_grid(k) for k in range(slide.level_count)]
    if options or any(grid is None for grid in grids):
        return ordered_map(_ExtractReading(slide, normalize, options).read, requests, workers)
    reading = _GridReading(slide, [g for g in grids if g is not None], normalize, resampling == "fast",
                           None if plan is None else (plan.level, min(plan._ratio)))
    # Knowing the native tiles' uses over the requests ahead lets the reader cache only the
    # tiles used again, and drop each after its last use (memory flat for any slide).
    uses = UseWindow()
    requests = counted_ahead(requests, reading.count_box, uses)
    if has_prefetch(reading.grids):  # a remote file: announce the tiles of requests ahead (wsikit.remote)
        requests = prefetch_ahead(requests, reading.compute_box)
    stream = slide._reader.stream(requests, reading.box_of, reading.finish, workers=workers, uses=uses)
    return reading.results(stream)


class _ExtractReading:
    """Requests read one ``_extract`` call each (backend options given, or levels that are
    not native tile grids)."""

    def __init__(self, slide: SlideBackend, normalize: bool, options: dict[str, Any]) -> None:
        self.slide, self.normalize, self.options = slide, normalize, options

    def read(self, request: Request) -> Result:
        try:
            if isinstance(request, RejectedRequest):
                raise request.error
            level = self.slide._check_level(request.level)
            image = self.slide._extract(level, request.read_location, request.read_size, self.normalize, **self.options)
            if request.read_size != request.shape:
                image = resample_area(image, request.shape)
            return request, image, None
        except SlideError as exc:
            return request, None, exc


class _GridReading:
    """The parts of a stream over native tile grids: the box each request reads, and turning
    the stitched pixels into the request's array (zero outside the level, normalised,
    area-averaged to its shape)."""

    def __init__(self, slide: SlideBackend, grids: list[TileGrid], normalize: bool, fast: bool = False,
                 plan_ratio: tuple[int, float] | None = None) -> None:
        self.slide = slide
        self.grids = grids
        self.normalize = normalize
        self.pixel_shape, self.dtype = slide._pixel_shape(normalize)
        self.checked: set[tuple[int, int]] = set()  # read sizes already checked against the memory limit
        self.scaled = ScaledGrids(slide, grids) if fast else None
        # A plan's (level, ratio): its boxes, rounded to whole pixels, all read at the reduction
        # of the ratio it was made with (a box one pixel larger must not decode differently).
        self.plan_ratio = plan_ratio
        # (request, box) of the requests counted ahead and not yet read: each box is computed once
        self.counted: deque[tuple[Any, tuple[TileGrid, int, int, int, int] | None]] = deque()
        # (level, read size, shape) -> the grid such requests read and its reduction (1: none)
        self.reductions: dict[tuple[int, tuple[int, int], tuple[int, int]], tuple[TileGrid, int]] = {}

    def source(self, request: BoxRequest) -> tuple[TileGrid, int]:
        """The grid a request is read from: its level's, or that level decoded at 1/d."""
        level, size, shape = request.level, request.read_size, request.shape
        if self.scaled is None or size == shape:
            return self.grids[level], 1
        key = (level, size, shape)
        found = self.reductions.get(key)
        if found is None:
            grid = self.grids[level]
            if self.plan_ratio is not None and self.plan_ratio[0] == level:
                ratio = self.plan_ratio[1]
            else:
                ratio = min(size[0] / shape[0], size[1] / shape[1])
            d = jpeg_reduction(ratio, grid.tile_shape)
            scaled = self.scaled.grid(level, d) if d > 1 else None
            found = self.reductions[key] = (grid, 1) if scaled is None else (scaled, d)
        return found

    def count_box(self, request: Request) -> tuple[TileGrid, int, int, int, int] | None:
        """:meth:`compute_box`, kept for the stream's :meth:`box_of` of the same request."""
        box = self.compute_box(request)
        self.counted.append((request, box))
        return box

    def box_of(self, request: Request) -> tuple[TileGrid, int, int, int, int] | None:
        """The box a request reads: counted ahead already (the requests come in the same
        order), or computed now."""
        counted = self.counted
        if counted and counted[0][0] is request:
            return counted.popleft()[1]
        return self.compute_box(request)

    def compute_box(self, request: Request) -> tuple[TileGrid, int, int, int, int] | None:
        """``(grid, i0, j0, i1, j1)``: the part inside its level of the box a request reads
        (on the level reduced d times where it is read so), None when nothing is inside."""
        if isinstance(request, RejectedRequest):
            raise request.error
        size = request.read_size
        if size not in self.checked:
            check_allocation(size + self.pixel_shape, self.dtype.itemsize, "region", self.slide.path)
            self.checked.add(size)
        level = request.level
        if not 0 <= level < len(self.grids):
            raise BadRequest(f"level must be in [0, {len(self.grids) - 1}] for this slide, got {level}")
        grid, d = self.source(request)
        (i, j), (h, w) = request.read_location, size
        if d > 1:  # the whole pixels of the reduced level that cover the box
            i, j, h, w = i // d, j // d, -(-(i + h) // d) - i // d, -(-(j + w) // d) - j // d
        i0, j0, i1, j1 = max(i, 0), max(j, 0), min(i + h, grid.shape[0]), min(j + w, grid.shape[1])
        return (grid, i0, j0, i1, j1) if i0 < i1 and j0 < j1 else None

    def boxes_of(self, requests: Iterable[Request]) -> Iterator[tuple[TileGrid, int, int, int, int] | None]:
        """The boxes of the requests that have one (the others fail when read, at their turn)."""
        for request in requests:
            try:
                yield self.compute_box(request)
            except Exception:
                continue

    def finish(self, request: BoxRequest, array: np.ndarray | None) -> np.ndarray:
        if self.scaled is not None and request.read_size != request.shape:
            grid, d = self.source(request)
            if d > 1:
                return self.finish_reduced(request, array, d)
        size = request.read_size
        if array is not None and array.shape[:2] == size:
            if not self.slide.is_rgb:
                array = self.slide._normalized(array, self.normalize)
        else:  # partly or wholly outside the level: zero there
            i, j = request.read_location
            part = None if array is None else self.slide._normalized(array, self.normalize)
            array = padded(part, (max(i, 0) - i, max(j, 0) - j), size, self.pixel_shape, self.dtype)
        return array if size == request.shape else resample_area(array, request.shape)

    def finish_reduced(self, request: BoxRequest, array: np.ndarray | None, d: int) -> np.ndarray:
        """The request's pixels from the whole pixels of its level reduced d times that
        cover its box: zero outside the level, the box's fractional part area-averaged."""
        (i, j), (h, w) = request.read_location, request.read_size
        ci, cj = i // d, j // d
        size = (-(-(i + h) // d) - ci, -(-(j + w) // d) - cj)
        if array is None or array.shape[:2] != size:  # partly or wholly outside the level
            array = padded(array, (max(ci, 0) - ci, max(cj, 0) - cj), size, self.pixel_shape, self.dtype)
        box = (i / d - ci, j / d - cj, (i + h) / d - ci, (j + w) / d - cj)
        if box == (0, 0) + size and size == request.shape:
            return array  # d divides the box and its ratio: the reduced decode is the tile
        return resample_box(array, box, request.shape)

    def results(self, stream: Iterator[Result]) -> Iterator[Result]:
        for request, image, error in stream:
            yield request, image, None if error is None else self.read_error(error, request)

    def read_error(self, exc: BaseException, request: Request) -> BaseException:
        """The error to report for a failed read: raw library errors become a CorruptSlideError
        naming the file and the box."""
        if isinstance(exc, (SlideError, BadRequest)) or isinstance(request, RejectedRequest) or not isinstance(exc, Exception):
            return exc
        path = self.slide.path
        where = f"{request.read_size} at {request.read_location} of level {request.level}"
        if isinstance(exc, ValueError):
            return CorruptSlideError(path, str(exc))
        if isinstance(exc, MemoryError):
            return CorruptSlideError(path, f"out of memory reading {where}")
        return CorruptSlideError(path, f"cannot read {where}: {type(exc).__name__}: {exc}")


def plan_uses(plan: Plan, grid: TileGrid) -> dict[Any, np.ndarray]:
    """:func:`~wsikit.reader.uses.count_uses` for a plan, counted from its arrays a block at a time."""
    counter = UseCounter()
    h, w = grid.shape
    for start in range(0, len(plan), 8192):  # blocks of a few hundred KB
        b = plan.read_boxes(start, start + 8192)
        i0, j0 = np.maximum(b[:, 0], 0), np.maximum(b[:, 1], 0)
        i1, j1 = np.minimum(b[:, 0] + b[:, 2], h), np.minimum(b[:, 1] + b[:, 3], w)
        inside = (i0 < i1) & (j0 < j1)  # boxes wholly outside the level read nothing
        counter.add(grid, np.stack([i0, j0, i1, j1], axis=1)[inside])
    return counter.counts()
