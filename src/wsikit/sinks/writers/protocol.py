"""What the tiling of a slide needs from a tile writer (:class:`TileWriter`).

A writer stores tile k of a plan so that, once stored, it is whole (a killed run leaves
no half tile behind) and :meth:`TileWriter.has` finds it: a rerun asks which tiles exist
and writes only the others. Tiles come in runs of consecutive positions, so that a store
that can write several at once (a slab of Zarr chunks) pays its cost once per run.
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

    def has(self, position: int, spec: TileSpec) -> bool:
        """Whether the tile at ``position`` in the plan (described by ``spec``) is already stored whole."""
        ...

    def write_run(self, run: Sequence[PendingTile]) -> None:
        """Store the tiles of ``run``, whose positions are consecutive and increasing."""
        ...
