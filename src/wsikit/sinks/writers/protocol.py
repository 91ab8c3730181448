"""What the tiling of a slide needs from a tile writer (:class:`TileWriter`).

A writer stores tile k of a plan so that, once stored, it is whole (a killed run leaves
no half tile behind) and :meth:`TileWriter.has` finds it: a rerun asks which tiles exist
and writes only the others. Tiles come in runs of consecutive positions, so that a store
that can write several at once (a shard of Zarr chunks) pays its cost once per run.

A writer with ``passthrough`` can store some tiles without their pixels (the slide's own
JPEG tiles): the tiling first offers it the tiles to write (:meth:`TileWriter.write_native`)
and reads and hands in only those it gives back. Writers that need pixels for every tile
set ``passthrough = False`` and are never asked.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol

import numpy as np

from ...plan import TileSpec


class PendingTile(NamedTuple):
    """A tile read and not yet stored: its position in the plan, its spec and its pixels
    (h, w, channels) uint8."""

    position: int
    spec: TileSpec
    image: np.ndarray


class TileWriter(Protocol):
    """Stores the tiles of one slide's plan in one result folder."""

    #: whether :meth:`write_native` may store tiles without their pixels
    passthrough: bool
    #: tiles stored together (a shard): runs of positions cut at multiples of it can be
    #: written by different writers at once; a run always brings all tiles of its units
    unit: int

    def has(self, position: int, spec: TileSpec) -> bool:
        """Whether the tile at ``position`` in the plan (described by ``spec``) is already stored whole."""
        ...

    def write_run(self, run: Sequence[PendingTile]) -> None:
        """Store the tiles of ``run``, whose positions are consecutive and increasing."""
        ...

    def write_native(self, tiles: Sequence[tuple[int, TileSpec]]) -> list[int]:
        """Store what it can of ``tiles`` ((position, spec) pairs) without pixels; returns
        the positions still to be handed in with their pixels (called only with ``passthrough``)."""
        ...
