"""TileStream: the tiles of one ``generate_tiles`` / ``read_plan`` call, in plan order.

With ``errors="skip"`` a tile that cannot be read is left out with a
:class:`SkippedTileWarning`, and its coordinates and reason are kept in the stream's own
``skipped_tiles``: two tilings of one slide running at once keep separate lists.
"""
from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from typing import Callable, Generator, Iterator

from ..errors import SlideError
from ..plan import Plan, TileSpec
from ..tile import Tile
from .stream import RejectedRequest, Request, Result


class SkippedTileWarning(UserWarning):
    """A tile could not be read and was skipped (``generate_tiles(errors="skip")``)."""


class TileStream(Iterator[Tile]):
    """An iterator of :class:`~wsikit.tile.Tile`; ``skipped_tiles`` lists the ``((i, j), reason)``
    of the tiles skipped so far (only with ``errors="skip"``; otherwise the first unreadable
    tile raises its SlideError)."""

    def __init__(self, results: Iterator[Result], skip: bool,
                 labeller: Callable[[Generator[Tile, None, None]], Generator[Tile, None, None]] | None = None) -> None:
        self.skipped_tiles: list[tuple[tuple[int, int], str]] = []
        # The generator holds the list, not the stream: no reference cycle, so a stream
        # dropped half-read is closed (and its threads end) at once, not at the next GC.
        self._tiles = _tiles(results, skip, self.skipped_tiles)
        if labeller is not None:  # fills each tile's labels and masks (a plan with annotations)
            self._tiles = labeller(self._tiles)  # a generator that closes the one it wraps

    def __iter__(self) -> TileStream:
        return self

    def __next__(self) -> Tile:
        return next(self._tiles)

    def close(self) -> None:
        """Stop reading: the worker threads of the stream end."""
        self._tiles.close()


def _tiles(results: Iterator[Result], skip: bool,
           skipped: list[tuple[tuple[int, int], str]]) -> Generator[Tile, None, None]:
    make = Tile._read
    try:
        for spec, image, error in results:
            if error is None and image is not None:
                # One unpacking instead of six field lookups: this runs for every tile.
                coords, level, _, _, _, coords0, mpp, tissue = spec
                yield make(image, coords, level, coords if coords0 is None and not level else coords0, mpp, tissue)
                continue
            if not (skip and isinstance(error, SlideError)):
                raise error or ValueError(f"tile {spec.coords}: no pixels and no error")
            skipped.append((spec.coords, str(error)))
            warnings.warn(f"skipped tile {spec.coords}: {error}", SkippedTileWarning, stacklevel=3)
    finally:
        # Stop the readers now, also on an error: its traceback keeps this frame, and with
        # it the stream and its threads, alive for as long as the caller keeps the error.
        close_stream(results)


def close_stream(results: Iterator[Result]) -> None:
    """Close a stream of results (ending its worker threads) if it is a generator."""
    close = getattr(results, "close", None)
    if close is not None:
        close()


def plan_requests(plan: Plan | Iterable[TileSpec]) -> Iterable[Request]:
    """The requests of a plan: a Plan's own TileSpecs (checked when made), or the caller's
    items, each checked as a TileSpec (one that fails its checks is reported at its turn)."""
    if isinstance(plan, Plan):
        return plan
    if isinstance(plan, Sequence):
        return [_as_spec(item) for item in plan]
    return map(_as_spec, plan)


def _as_spec(item: object) -> Request:
    if type(item) is TileSpec:
        return item
    try:
        return TileSpec(*item)  # type: ignore[misc]  # a tuple of TileSpec's fields, or a TileSpec subclass
    except Exception as exc:  # reported when the item's turn comes
        return RejectedRequest(exc)
