"""Telling a byte source which tiles come next, so it fetches them ahead in few requests.

- :class:`PrefetchingGrid`: a :class:`~wsikit.reader.TileGrid` with a ``prefetch(tiles)``
  hook, given (row, column) pairs of native tiles that will be decoded soon;
- :func:`prefetch_ahead`: wraps the requests a stream reads, pulling them
  :data:`LOOKAHEAD_TILES` native tiles ahead of the decoders and handing the tiles of the
  requests it pulled to their grids' hooks in batches of :data:`BATCH_TILES`: each batch
  becomes a few coalesced range requests, long before the decoders need the bytes;
- :func:`prefetch_box`: the same for one large region (``extract_region``);
- :func:`tiff_prefetcher`: the hook of a TIFF level, from its pages' tile tables.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from ..reader.tile_grid import TileGrid
from .source import ByteSource

#: native tiles pulled ahead of the ones being decoded
LOOKAHEAD_TILES = 2048
#: tiles handed to a grid's hook at once (fewer, larger requests)
BATCH_TILES = 256

_Request = TypeVar("_Request")
Prefetch = Callable[[Sequence[tuple[int, int]]], None]


@dataclass(frozen=True)
class PrefetchingGrid(TileGrid):
    """A tile grid whose bytes are worth fetching ahead (a remote file)."""

    prefetch: Prefetch | None = None


def with_prefetch(grid: TileGrid, prefetch: Prefetch) -> PrefetchingGrid:
    """``grid`` with a prefetch hook."""
    return PrefetchingGrid(grid.key, grid.shape, grid.tile_shape, grid.pixel_shape, grid.dtype, grid.decode,
                           prefetch)


def _tiles_of(grid: TileGrid, i0: int, j0: int, i1: int, j1: int) -> list[tuple[int, int]]:
    th, tw = grid.tile_shape
    ti, tj = i0 // th, j0 // tw
    if (i1 - 1) // th == ti and (j1 - 1) // tw == tj:
        return [(ti, tj)]  # the common case: a tile aligned with the native ones
    return [(ti, tj) for ti in range(i0 // th, (i1 - 1) // th + 1) for tj in range(j0 // tw, (j1 - 1) // tw + 1)]


def has_prefetch(grids: Iterable[TileGrid | None]) -> bool:
    """Whether any of the grids wants to hear about tiles ahead."""
    return any(getattr(grid, "prefetch", None) is not None for grid in grids)


def prefetch_box(grid: TileGrid, i0: int, j0: int, i1: int, j1: int) -> None:
    """Announce the native tiles of one box (a large ``extract_region``)."""
    hook = getattr(grid, "prefetch", None)
    if hook is not None and i0 < i1 and j0 < j1:
        tiles = _tiles_of(grid, i0, j0, i1, j1)
        if len(tiles) > 1:
            hook(tiles)


def prefetch_ahead(requests: Iterable[_Request], box_of: Callable[[_Request], Any],
                   lookahead: int = LOOKAHEAD_TILES, batch: int = BATCH_TILES) -> Iterator[_Request]:
    """The requests, in order, pulled ahead so that their tiles are announced early.

    ``box_of(request)`` gives ``(grid, i0, j0, i1, j1)`` or None (as a stream's); a request
    whose box cannot be had is passed on untouched (the stream reports it at its turn).
    """
    iterator = iter(requests)
    buffered: deque[tuple[_Request, int]] = deque()
    pending: dict[int, tuple[Any, list[tuple[int, int]]]] = {}
    waiting = 0  # tiles collected, not yet announced
    ahead = 0
    exhausted = False

    def flush() -> None:
        for hook, tiles in pending.values():
            hook(tiles)
        pending.clear()

    while True:
        while not exhausted and ahead < lookahead:
            try:
                request = next(iterator)
            except StopIteration:
                exhausted = True
                break
            count = 0
            try:
                box = box_of(request)
            except Exception:
                box = None
            if box is not None:
                grid = box[0]
                hook = getattr(grid, "prefetch", None)
                if hook is not None:
                    tiles = _tiles_of(*box)
                    pending.setdefault(id(grid), (hook, []))[1].extend(tiles)
                    count = len(tiles)
                    waiting += count
            buffered.append((request, count))
            ahead += count
            if waiting >= batch:
                flush()
                waiting = 0
        if exhausted and waiting:
            flush()
            waiting = 0
        if not buffered:
            return
        request, count = buffered.popleft()
        ahead -= count
        yield request


def tiff_prefetcher(source: ByteSource, pages: Sequence[Any], grid: TileGrid) -> Prefetch:
    """The hook of a TIFF level stored in ``pages`` (one per plane; None: a plane not
    stored): the byte ranges of the tiles (of every sample plane) asked for."""
    rows, cols = grid.tile_counts
    tables: list[tuple[np.ndarray, np.ndarray, int]] = []
    for page in pages:
        if page is None:
            continue
        separate = int(page.samplesperpixel) if int(page.samplesperpixel) > 1 and int(page.planarconfig) == 2 else 1
        tables.append((np.asarray(page.dataoffsets, dtype=np.int64), np.asarray(page.databytecounts, dtype=np.int64),
                       separate))
    size = source.size

    def prefetch(tiles: Sequence[tuple[int, int]]) -> None:
        cells = np.asarray(tiles, dtype=np.int64).reshape(-1, 2)
        index = cells[:, 0] * cols + cells[:, 1]
        ranges: list[tuple[int, int]] = []
        for offsets, counts, planes in tables:
            for k in range(planes):
                at = index + k * rows * cols
                at = at[(at >= 0) & (at < len(offsets)) & (at < len(counts))]
                o, c = offsets[at], counts[at]
                keep = (o > 0) & (c > 0) & (o + c <= size)
                ranges.extend(zip(o[keep].tolist(), c[keep].tolist()))
        if ranges:
            source.prefetch(ranges)

    return prefetch
