"""Tile plans: which boxes of which level a tiling reads, as plain data.

A plan is computed from shapes and metadata alone, before any pixel is read (a tissue
filter reads one low-resolution thumbnail); it can be printed, filtered, saved and sent
to other processes.

Tiling by physical resolution
-----------------------------
``mpp=X`` asks for tiles of X microns per pixel. The tiles live in a *target frame*: the
slide as it would look scanned at X mpp; ``shape`` and ``stride`` are in its pixels and
so are the tiles' ``coords``. Pixels come from the coarsest level whose resolution is at
least the target's (level mpp <= X; a level within 1 % of X counts), and are area-averaged
to ``shape`` when that level's box is larger. A target finer than level 0 upsamples
level 0, at most ``MAX_UPSAMPLE`` times: beyond that a ValueError says so (metadata such
as a 72 dpi resolution tag read as a pixel size would otherwise ask for billions of tiles).

``magnification=M`` asks for what an M x objective would show: with the slide's objective
power P (and level-0 mpp m0 when known) that is P / M level-0 pixels per target pixel
(mpp m0 * P / M); when the slide records its mpp but no objective power, the usual
convention mpp = 10 / M is used (20x = 0.5 mpp, 40x = 0.25 mpp).
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .grid import as_pair, grid_shape
from .limits import check_allocation

#: a level whose resolution is within this fraction of the target counts as the target's
LEVEL_TOLERANCE = 0.01
#: the most a physical-resolution tiling may enlarge level 0
MAX_UPSAMPLE = 2.0


@dataclass(frozen=True)
class TileSpec:
    """One tile of a plan.

    ``coords`` is in the frame the tiles were asked for; the pixels come from the box
    ``read_location`` + ``read_size`` (pixels of ``level``), resized to ``shape`` when the
    two differ. ``coords0`` is the tile's top-left corner in level-0 pixels, ``mpp`` the
    (i, j) microns per pixel of the tile (None when the slide does not say), ``tissue``
    the tissue fraction of the tile (None without a tissue mask).
    """

    coords: tuple[int, int]
    level: int
    read_location: tuple[int, int]
    read_size: tuple[int, int]
    shape: tuple[int, int]
    coords0: tuple[int, int]
    mpp: tuple[float, float] | None = None
    tissue: float | None = None


class Plan(Sequence):
    """A tile plan: a read-only sequence of :class:`TileSpec`, in reading order.

    Held as a few numpy columns (about 80 bytes a tile) and turned into TileSpecs one at
    a time as it is read, so that planning a 50,000 x 50,000 slide costs a few MB, not
    tens, and memory while tiling does not grow with the slide. It pickles as its arrays.
    """

    __slots__ = ("_table", "_tissue", "level", "shape", "mpp")

    def __init__(self, table: np.ndarray, tissue: np.ndarray | None, level: int, shape, mpp):
        # table columns: i, j, read_i, read_j, read_h, read_w, i0, j0
        self._table = np.ascontiguousarray(table, dtype=np.int64).reshape(-1, 8)
        self._tissue = None if tissue is None else np.asarray(tissue, dtype=np.float64)
        self.level, self.shape, self.mpp = level, tuple(shape), mpp

    def __len__(self) -> int:
        return len(self._table)

    def _spec(self, row, tissue) -> TileSpec:
        i, j, ri, rj, rh, rw, i0, j0 = row
        return TileSpec(coords=(i, j), level=self.level, read_location=(ri, rj), read_size=(rh, rw),
                        shape=self.shape, coords0=(i0, j0), mpp=self.mpp, tissue=tissue)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[k] for k in range(*index.indices(len(self)))]
        row = self._table[index].tolist()
        return self._spec(row, None if self._tissue is None else float(self._tissue[index]))

    def __iter__(self):
        tissue = self._tissue
        for k in range(0, len(self._table), 4096):  # tolist in blocks: fast and bounded
            rows = self._table[k : k + 4096].tolist()
            fractions = [None] * len(rows) if tissue is None else tissue[k : k + 4096].tolist()
            for row, t in zip(rows, fractions):
                yield self._spec(row, t)

    def __eq__(self, other) -> bool:
        if isinstance(other, (Plan, list, tuple)):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other))
        return NotImplemented

    __hash__ = None

    def __repr__(self) -> str:
        return f"Plan({len(self)} tiles of {self.shape} from level {self.level})"


# What one planned tile costs while the plan is built (the columns plus temporaries).
_PLAN_BYTES_PER_TILE = 200


def level_plan(slide, shape, stride=None, pad=False, level=0) -> Plan:
    """The seed's grid on one level: tiles of ``shape`` every ``stride`` pixels of ``level``."""
    return make_plan(slide, shape, stride, pad, level)


def make_plan(slide, shape=3000, stride=None, pad=False, level=0, *, mpp=None, magnification=None,
              min_tissue: float | None = None, tissue_mask=None) -> Plan:
    """The tiles ``slide.generate_tiles`` reads for these arguments, in row-major order.

    ``level`` tiles one level in its own pixels; ``mpp`` or ``magnification`` tile the
    slide at a physical resolution instead (see the module's notes; not with a ``level``
    other than 0). ``min_tissue`` keeps the tiles whose tissue fraction is at least that;
    ``tissue_mask`` (a :class:`~wsikit.tissue.TissueMask`, a boolean 2-D array covering
    the whole slide, or True to compute one) gives the mask, else one is computed when
    ``min_tissue`` asks for it. With a mask every TileSpec carries its ``tissue`` fraction.
    """
    shape = as_pair(shape, "shape", minimum=1)
    stride = shape if stride is None else as_pair(stride, "stride", minimum=1)
    if not isinstance(pad, bool):
        raise TypeError(f"pad must be True or False, got {pad!r}")
    min_tissue = _check_fraction(min_tissue)
    if mpp is not None or magnification is not None:
        if level not in (None, 0):
            raise ValueError(f"pass either level or mpp/magnification, not both (got level={level!r})")
        scale = target_scale(slide, mpp=mpp, magnification=magnification)
        if min(scale) * MAX_UPSAMPLE < 1:
            asked = f"mpp={mpp}" if mpp is not None else f"magnification={magnification}"
            raise ValueError(
                f"{slide.path}: tiling at {asked} would enlarge level 0 {1 / min(scale):.3g} times "
                f"(level 0 has {_describe_resolution(slide)}; at most {MAX_UPSAMPLE:g} times is allowed)"
            )
        read_level = best_level(slide, scale)
        h0, w0 = slide.level_shapes[0]
        round_frame = math.ceil if pad else math.floor
        # A small tolerance so that float noise does not lose or add a whole row of tiles.
        frame = (int(round_frame(h0 / scale[0] + (-1e-9 if pad else 1e-9))),
                 int(round_frame(w0 / scale[1] + (-1e-9 if pad else 1e-9))))
    else:
        read_level = slide._check_level(level)
        scale = slide.level_scale(read_level)
        frame = tuple(slide.level_shapes[read_level])
    # A plan is held whole (it is data to print, filter and send): refuse one that would
    # not fit, as any other allocation, instead of running out of memory building it.
    rows, cols = grid_shape(frame, shape, stride, pad)
    check_allocation((rows * cols,), _PLAN_BYTES_PER_TILE, "tile plan", slide.path)
    grid_i = np.arange(rows, dtype=np.int64) * stride[0]
    grid_j = np.arange(cols, dtype=np.int64) * stride[1]
    locations = np.stack([np.repeat(grid_i, cols), np.tile(grid_j, rows)], axis=1)  # row-major
    tissue = None
    mask = _resolve_mask(slide, tissue_mask, min_tissue)
    if mask is not None:
        si, sj = scale
        boxes0 = np.stack([locations[:, 0] * si, locations[:, 1] * sj,
                           (locations[:, 0] + shape[0]) * si, (locations[:, 1] + shape[1]) * sj], axis=1)
        tissue = np.round(mask.fractions(boxes0), 6)
        if min_tissue is not None:
            keep = tissue >= min_tissue
            locations, tissue = locations[keep], tissue[keep]
    # The mpp asked for is the tiles' mpp, exactly (not the product of two rounded ratios).
    tile_mpp = _positive_pair(mpp, "mpp") if mpp is not None else None
    return _specs(slide, locations, shape, scale, read_level, tissue, tile_mpp)


def _specs(slide, locations: np.ndarray, shape, scale, level: int, tissue, tile_mpp=None) -> Plan:
    si, sj = scale
    li, lj = slide.level_scale(level)
    ri, rj = si / li, sj / lj  # level pixels per frame pixel
    i, j = locations[:, 0], locations[:, 1]
    if (ri, rj) == (1.0, 1.0):
        read_i, read_j = i, j
        end_i, end_j = i + shape[0], j + shape[1]
    else:
        read_i, read_j = np.rint(i * ri), np.rint(j * rj)
        end_i = np.maximum(np.rint((i + shape[0]) * ri), read_i + 1)
        end_j = np.maximum(np.rint((j + shape[1]) * rj), read_j + 1)
    i0, j0 = np.rint(i * si), np.rint(j * sj)
    mpp0 = slide.mpp
    mpp = tile_mpp if tile_mpp is not None or mpp0 is None else (float(mpp0[0] * si), float(mpp0[1] * sj))
    table = np.stack([i, j, read_i, read_j, end_i - read_i, end_j - read_j, i0, j0], axis=1)
    return Plan(table.astype(np.int64), tissue, level, shape, mpp)


def target_scale(slide, *, mpp=None, magnification=None) -> tuple[float, float]:
    """(i, j) level-0 pixels per target pixel for ``mpp`` (microns per pixel, a number or
    an (i, j) pair) or ``magnification`` (an objective power such as 20)."""
    if mpp is not None and magnification is not None:
        raise ValueError("pass either mpp or magnification, not both")
    mpp0 = slide.mpp
    if mpp is not None:
        target = _positive_pair(mpp, "mpp")
        if mpp0 is None:
            raise ValueError(
                f"{slide.path}: the slide records no pixel size (mpp), so it cannot be tiled at mpp={mpp}; "
                "tile it by level instead"
            )
        return target[0] / mpp0[0], target[1] / mpp0[1]
    m = _positive(magnification, "magnification")
    power = slide.objective_power
    if power:
        return float(power) / m, float(power) / m
    if mpp0 is None:
        raise ValueError(
            f"{slide.path}: the slide records neither its objective power nor its pixel size (mpp), "
            f"so it cannot be tiled at magnification={magnification}; tile it by level instead"
        )
    return (10.0 / m) / mpp0[0], (10.0 / m) / mpp0[1]


def _describe_resolution(slide) -> str:
    parts = []
    if slide.mpp is not None:
        parts.append(f"{slide.mpp[0]:.4g} x {slide.mpp[1]:.4g} microns per pixel")
    if slide.objective_power:
        parts.append(f"objective power {slide.objective_power:g}")
    return ", ".join(parts)


def best_level(slide, scale) -> int:
    """The coarsest level at least as fine as ``scale`` (level-0 pixels per target pixel)."""
    fine_enough = [
        k for k in range(len(slide.level_shapes))
        if slide.level_scale(k)[0] <= scale[0] * (1 + LEVEL_TOLERANCE)
        and slide.level_scale(k)[1] <= scale[1] * (1 + LEVEL_TOLERANCE)
    ]
    return max(fine_enough, key=lambda k: sum(slide.level_scale(k)), default=0)


def _resolve_mask(slide, tissue_mask, min_tissue):
    from .tissue import TissueMask
    from .tissue import tissue_mask as compute_mask

    if isinstance(tissue_mask, TissueMask):
        return tissue_mask
    if tissue_mask is True or (tissue_mask is None and min_tissue is not None):
        return compute_mask(slide)
    if tissue_mask is None or tissue_mask is False:
        return None
    if isinstance(tissue_mask, np.ndarray):
        return TissueMask.from_array(tissue_mask, slide.level_shapes[0])
    raise TypeError(f"tissue_mask must be a TissueMask, a 2-D boolean array, True or None; got {type(tissue_mask).__name__}")


def _check_fraction(value):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"min_tissue must be a number in [0, 1] or None, got {value!r}")
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"min_tissue must be in [0, 1], got {value}")
    return value


def _positive(value, name) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a positive number, got {value!r}")
    value = float(value)
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a positive number, got {value}")
    return value


def _positive_pair(value, name) -> tuple[float, float]:
    if isinstance(value, (tuple, list, np.ndarray)) and len(value) == 2:
        return _positive(value[0], f"{name}[0]"), _positive(value[1], f"{name}[1]")
    v = _positive(value, name)
    return v, v
