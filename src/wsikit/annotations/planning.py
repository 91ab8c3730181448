"""Annotations in tile plans and tile streams.

:func:`label_plan` gives a plan the label fractions of its tiles (and drops those below
``min_label``); the plan keeps them in a :class:`PlanLabels`, which travels with it through
``take`` and pickling. :func:`tile_labeller` is what a stream of the plan's tiles runs to
fill each tile's ``labels`` and ``masks``: masks are made a block of tiles at a time, in
plan order, from the plan's own TileSpecs.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Generator, Mapping
from functools import partial
from typing import TYPE_CHECKING

import numpy as np

from ..limits import check_allocation
from .frames import TileFrames
from .model import Annotations

if TYPE_CHECKING:
    from ..backends.base import SlideBackend
    from ..plan import Plan
    from ..tile import Tile

# Tiles whose masks are made together: numpy's per-call cost shared, a few MB at once.
MASK_BLOCK = 64
# Tiles whose fractions are computed together while planning.
_PLAN_BLOCK = 8192


class PlanLabels:
    """What a labelled plan carries: the annotations, the (tiles, classes) fractions of its
    tiles, and the read level's ``level_scale`` (level-0 pixels per read-level pixel)."""

    __slots__ = ("annotations", "fractions", "level_scale")

    def __init__(self, annotations: Annotations, fractions: np.ndarray, level_scale: tuple[float, float]) -> None:
        self.annotations = annotations
        self.fractions = fractions
        self.level_scale = level_scale

    @property
    def classes(self) -> tuple[str, ...]:
        return self.annotations.classes

    def take(self, positions: np.ndarray) -> PlanLabels:
        return PlanLabels(self.annotations, self.fractions[positions], self.level_scale)

    def __getstate__(self) -> tuple[Annotations, np.ndarray, tuple[float, float]]:
        return self.annotations, self.fractions, self.level_scale

    def __setstate__(self, state: tuple[Annotations, np.ndarray, tuple[float, float]]) -> None:
        self.annotations, self.fractions, self.level_scale = state


def check_min_label(min_label: object, annotations: Annotations | None) -> dict[str, float] | None:
    """``min_label`` as {class: fraction}, or TypeError/ValueError saying what is wrong."""
    if min_label is None:
        return None
    if not isinstance(min_label, Mapping):
        raise TypeError(f"min_label must be a dict of class name -> fraction, got {type(min_label).__name__}")
    if annotations is None:
        raise ValueError("min_label needs annotations (pass annotations=...)")
    out: dict[str, float] = {}
    for name, value in min_label.items():
        if name not in annotations.regions:
            raise ValueError(f"min_label names class {name!r}, which the annotations do not have "
                             f"(they have {', '.join(map(repr, annotations.classes)) or 'none'})")
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= float(value) <= 1 \
                or math.isnan(float(value)):
            raise ValueError(f"min_label[{name!r}] must be a fraction in [0, 1], got {value!r}")
        out[str(name)] = float(value)
    return out


def label_plan(slide: SlideBackend, plan: Plan, annotations: object, min_label: object = None) -> Plan:
    """``plan`` with its tiles' label fractions, keeping the tiles where every class named in
    ``min_label`` covers at least its fraction."""
    if annotations is not None and not isinstance(annotations, Annotations):
        raise TypeError(f"annotations must be wsikit Annotations (see wsikit.read_annotations), "
                        f"got {type(annotations).__name__}")
    minimum = check_min_label(min_label, annotations)
    if annotations is None:
        return plan
    classes = annotations.classes
    check_allocation((len(plan), max(1, len(classes))), 8, "label fractions", slide.path)
    level_scale = slide.level_scale(plan.level)
    fractions = np.zeros((len(plan), len(classes)))
    for start in range(0, len(plan), _PLAN_BLOCK):
        read = plan.read_boxes(start, start + _PLAN_BLOCK).astype(np.float64)
        frames = TileFrames(read, plan.shape, level_scale)
        fractions[start:start + len(read)] = annotations.fractions(frames.boxes())
    keep = np.ones(len(plan), dtype=bool)
    for name, value in (minimum or {}).items():
        keep &= fractions[:, classes.index(name)] >= value
    labelled = plan.take(np.flatnonzero(keep)) if minimum else plan
    labelled.labels = PlanLabels(annotations, fractions[keep] if minimum else fractions, level_scale)
    return labelled


def tile_labeller(plan: object) -> Callable[[Generator[Tile, None, None]], Generator[Tile, None, None]] | None:
    """What fills the labels and masks of a stream of ``plan``'s tiles (None: nothing to fill)."""
    from ..plan import Plan

    if not isinstance(plan, Plan) or plan.labels is None:
        return None
    return partial(_labelled, plan=plan, labels=plan.labels)


def _block(plan: Plan, labels: PlanLabels, start: int) -> tuple[list[tuple[int, int]], list[dict[str, np.ndarray]]]:
    """The coords and masks of the block of plan positions ``start`` .. ``start + MASK_BLOCK``."""
    stop = min(start + MASK_BLOCK, len(plan))
    specs = plan[start:stop]
    frames = TileFrames.of_specs(specs, labels.level_scale)
    return [s.coords for s in specs], labels.annotations.tile_masks(frames, labels.fractions[start:stop])


def _labelled(tiles: Generator[Tile, None, None], plan: Plan, labels: PlanLabels) -> Generator[Tile, None, None]:
    """The tiles of ``plan`` with labels and masks, made a block of plan positions at a time.
    (Making the next block on a thread of its own was measured slower here: the reading
    threads already use every core.)"""
    names = labels.classes
    start = -MASK_BLOCK  # the block of plan positions whose masks are at hand
    coords: list[tuple[int, int]] = []
    masks: list[dict[str, np.ndarray]] = []
    position = 0
    try:
        for tile in tiles:
            # Tiles come in plan order; a skipped tile (errors="skip") is stepped over.
            while True:
                if position >= len(plan):
                    raise RuntimeError(f"tile {tile.coords} is not in the plan being read")
                if position >= start + MASK_BLOCK:
                    start = position - position % MASK_BLOCK
                    coords, masks = _block(plan, labels, start)
                if coords[position - start] == tile.coords:
                    break
                position += 1
            tile.masks = masks[position - start]
            tile.labels = dict(zip(names, labels.fractions[position].tolist()))
            position += 1
            yield tile
    finally:
        tiles.close()
