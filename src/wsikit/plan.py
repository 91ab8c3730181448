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
from typing import TYPE_CHECKING, Iterator, NamedTuple, SupportsIndex, overload

import numpy as np

from .checks import IntOrPair, as_int, as_pair, fraction_or_none, positive_number, positive_pair
from .tiling import grid_shape
from .limits import check_allocation

if TYPE_CHECKING:  # backends.base imports this module; tissue is imported only when a mask is asked for
    from numpy.typing import ArrayLike

    from .annotations.model import Annotations
    from .annotations.planning import PlanLabels
    from .backends.base import SlideBackend
    from .tissue import TissueMask

#: a level whose resolution is within this fraction of the target counts as the target's
LEVEL_TOLERANCE = 0.01
#: the most a physical-resolution tiling may enlarge level 0
MAX_UPSAMPLE = 2.0


class _TileSpecFields(NamedTuple):
    coords: tuple[int, int]
    level: int
    read_location: tuple[int, int]
    read_size: tuple[int, int]
    shape: tuple[int, int]
    coords0: tuple[int, int] | None
    mpp: tuple[float, float] | None = None
    tissue: float | None = None


class TileSpec(_TileSpecFields):
    """One tile of a plan, and the request a reader reads it by.

    ``coords`` is in the frame the tiles were asked for; the pixels come from the box
    ``read_location`` + ``read_size`` (pixels of ``level``), area-averaged to ``shape`` when
    the two differ. ``coords0`` is the tile's top-left corner in level-0 pixels, ``mpp`` the
    (i, j) microns per pixel of the tile (None when the slide does not say), ``tissue``
    the tissue fraction of the tile (None without a tissue mask).

    A TileSpec made by a caller is checked here, once; plans make theirs from values they
    computed themselves, without the checks (:meth:`Plan.__iter__`), so that reading a plan
    costs no per-tile checking.
    """

    __slots__ = ()

    def __new__(cls, coords: tuple[int, int], level: int, read_location: tuple[int, int],
                read_size: tuple[int, int], shape: tuple[int, int], coords0: tuple[int, int] | None = None,
                mpp: tuple[float, float] | None = None, tissue: float | None = None) -> TileSpec:
        coords = as_pair(coords, "coords")
        level = as_int(level, "level", minimum=0)
        read_location = as_pair(read_location, "read_location")
        read_size = as_pair(read_size, "read_size", minimum=1)
        shape = as_pair(shape, "shape", minimum=1)
        if coords0 is not None:
            coords0 = as_pair(coords0, "coords0")
        if mpp is not None:
            mpp = positive_pair(mpp, "mpp")
        tissue = fraction_or_none(tissue, "tissue")
        return super().__new__(cls, coords, level, read_location, read_size, shape, coords0, mpp, tissue)


class Plan(Sequence[TileSpec]):
    """A tile plan: a read-only sequence of :class:`TileSpec`, in reading order.

    A plan is a grid (rows x columns of tiles every ``stride`` pixels of the target frame)
    and, when a tissue filter dropped tiles, the kept cells' indices. TileSpecs are
    computed from that a block at a time as the plan is read, so a whole-grid plan costs
    the same few bytes for any slide and a filtered one 8 bytes a kept tile (16 with
    tissue fractions): memory while tiling does not grow with the slide. It pickles as
    those few numbers and arrays.
    """

    __slots__ = ("_counts", "_stride", "_scale", "_ratio", "_cells", "_tissue", "level", "shape", "mpp", "labels")

    _counts: tuple[int, int]
    _stride: tuple[int, int]
    _scale: tuple[float, float]
    _ratio: tuple[float, float]
    _cells: np.ndarray | None
    _tissue: np.ndarray | None
    level: int
    shape: tuple[int, int]
    mpp: tuple[float, float] | None
    #: the tiles' label fractions and annotations (``tile_plan(annotations=...)``), else None
    labels: PlanLabels | None

    def __init__(self, counts: tuple[int, int], stride: tuple[int, int], shape: tuple[int, int],
                 scale: tuple[float, float], ratio: tuple[float, float], level: int,
                 mpp: tuple[float, float] | None, cells: np.ndarray | None = None,
                 tissue: np.ndarray | None = None, labels: PlanLabels | None = None) -> None:
        self._counts = (int(counts[0]), int(counts[1]))  # rows and columns of the tiling grid
        self._stride = (int(stride[0]), int(stride[1]))
        self._scale = (float(scale[0]), float(scale[1]))  # level-0 pixels per frame pixel
        self._ratio = (float(ratio[0]), float(ratio[1]))  # read-level pixels per frame pixel
        self._cells = None if cells is None else np.ascontiguousarray(cells, dtype=np.int64)
        self._tissue = None if tissue is None else np.ascontiguousarray(tissue, dtype=np.float64)
        self.level, self.shape, self.mpp = int(level), (int(shape[0]), int(shape[1])), mpp
        self.labels = labels

    def __len__(self) -> int:
        return self._counts[0] * self._counts[1] if self._cells is None else len(self._cells)

    def _cells_of(self, start: int, stop: int) -> np.ndarray:
        """Grid cells (row-major flat indices) of plan entries ``start:stop``."""
        return np.arange(start, stop, dtype=np.int64) if self._cells is None else self._cells[start:stop]

    def _columns(self, cells: np.ndarray) -> np.ndarray:
        """(n, 8) int64 rows i, j, read_i, read_j, read_h, read_w, i0, j0 of grid cells."""
        cols = max(1, self._counts[1])
        i = cells // cols * self._stride[0]
        j = cells % cols * self._stride[1]
        h, w = self.shape
        ri, rj = self._ratio
        if (ri, rj) == (1.0, 1.0):
            read_i, read_j, read_h, read_w = i, j, np.full_like(i, h), np.full_like(j, w)
        else:
            read_i, read_j = np.rint(i * ri), np.rint(j * rj)
            read_h = np.maximum(np.rint((i + h) * ri), read_i + 1) - read_i
            read_w = np.maximum(np.rint((j + w) * rj), read_j + 1) - read_j
        si, sj = self._scale
        i0, j0 = np.rint(i * si), np.rint(j * sj)
        return np.stack([i, j, read_i, read_j, read_h, read_w, i0, j0], axis=1).astype(np.int64)

    def read_boxes(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """(n, 4) int64 boxes read_i, read_j, read_h, read_w (pixels of ``level``) of entries ``start:stop``."""
        start, stop, _ = slice(start, stop).indices(len(self))
        return self._columns(self._cells_of(start, max(start, stop)))[:, 2:6]

    def _specs(self, start: int, stop: int) -> list[TileSpec]:
        """TileSpecs of entries ``start:stop``, made without TileSpec's checks: every value
        comes from this plan's own arithmetic."""
        rows = self._columns(self._cells_of(start, stop)).tolist()
        tissue = [None] * len(rows) if self._tissue is None else self._tissue[start:stop].tolist()
        level, shape, mpp, make = self.level, self.shape, self.mpp, tuple.__new__
        return [make(TileSpec, ((i, j), level, (ri, rj), (rh, rw), shape, (i0, j0), mpp, t))
                for (i, j, ri, rj, rh, rw, i0, j0), t in zip(rows, tissue)]

    @overload
    def __getitem__(self, index: SupportsIndex) -> TileSpec: ...
    @overload
    def __getitem__(self, index: slice) -> list[TileSpec]: ...

    def __getitem__(self, index: SupportsIndex | slice) -> TileSpec | list[TileSpec]:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step == 1:
                return self._specs(start, max(start, stop))
            return [self[k] for k in range(start, stop, step)]
        if isinstance(index, bool) or not isinstance(index, numbers.Integral):
            raise TypeError(f"plan indices must be integers or slices, got {type(index).__name__}")
        n = len(self)
        k = int(index) + n if index < 0 else int(index)
        if not 0 <= k < n:
            raise IndexError(f"plan index {index} out of range for a plan of {n} tiles")
        return self._specs(k, k + 1)[0]

    def __iter__(self) -> Iterator[TileSpec]:
        # Small blocks: numpy's per-call cost is shared by many tiles, and no more than a
        # few hundred TileSpecs exist at once.
        for start in range(0, len(self), 256):
            yield from self._specs(start, min(start + 256, len(self)))

    def take(self, positions: ArrayLike) -> Plan:
        """The plan of the entries at ``positions`` (in that order), e.g. those not yet written."""
        positions = np.asarray(positions, dtype=np.int64).reshape(-1)
        if positions.size and (positions.min() < 0 or positions.max() >= len(self)):
            raise IndexError(f"plan positions must be in [0, {len(self)}), got {positions.min()}..{positions.max()}")
        cells = positions if self._cells is None else self._cells[positions]
        tissue = None if self._tissue is None else self._tissue[positions]
        return Plan(self._counts, self._stride, self.shape, self._scale, self._ratio, self.level, self.mpp,
                    cells, tissue, None if self.labels is None else self.labels.take(positions))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (Plan, list, tuple)):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # compared by content, like a list: unhashable

    def __repr__(self) -> str:
        return f"Plan({len(self)} tiles of {self.shape} from level {self.level})"


# What a tissue-filtered plan holds per grid cell while it is built (fractions, indices).
_MASKED_BYTES_PER_TILE = 24
# Grid cells handled at once while planning and reading a plan.
_BLOCK = 8192


def make_plan(slide: SlideBackend, shape: IntOrPair = 3000, stride: IntOrPair | None = None, pad: bool = False,
              level: int | None = 0, *, mpp: float | tuple[float, float] | None = None,
              magnification: float | None = None, min_tissue: float | None = None,
              tissue_mask: TissueMask | np.ndarray | bool | None = None, annotations: Annotations | None = None,
              min_label: dict[str, float] | None = None) -> Plan:
    """The tiles ``slide.generate_tiles`` reads for these arguments, in row-major order.

    ``level`` tiles one level in its own pixels; ``mpp`` or ``magnification`` tile the
    slide at a physical resolution instead (see the module's notes; not with a ``level``
    other than 0). ``min_tissue`` keeps the tiles whose tissue fraction is at least that;
    ``tissue_mask`` (a :class:`~wsikit.tissue.TissueMask`, a boolean 2-D array covering
    the whole slide, or True to compute one) gives the mask, else one is computed when
    ``min_tissue`` asks for it. With a mask every TileSpec carries its ``tissue`` fraction.
    ``annotations`` (:func:`wsikit.read_annotations`) give the plan its tiles' label fractions
    (``plan.labels``; tiles read from it get ``labels`` and ``masks``); ``min_label``
    ({class: fraction}) keeps the tiles with at least that fraction of every class named.
    """
    shape = as_pair(shape, "shape", minimum=1)
    stride = shape if stride is None else as_pair(stride, "stride", minimum=1)
    if not isinstance(pad, bool):
        raise TypeError(f"pad must be True or False, got {pad!r}")
    min_tissue = fraction_or_none(min_tissue, "min_tissue")
    frame: tuple[int, ...]  # (rows, columns) of the frame the tiling grid covers
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
    rows, cols = grid_shape(frame, shape, stride, pad)
    tile_scale = slide.level_scale(read_level)
    ratio = (scale[0] / tile_scale[0], scale[1] / tile_scale[1])  # read-level pixels per frame pixel
    # The mpp asked for is the tiles' mpp, exactly (not the product of two rounded ratios).
    mpp0 = slide.mpp
    tile_mpp: tuple[float, float] | None
    if mpp is not None:
        tile_mpp = positive_pair(mpp, "mpp")
    else:
        tile_mpp = None if mpp0 is None else (float(mpp0[0] * scale[0]), float(mpp0[1] * scale[1]))
    cells: np.ndarray | None = None
    tissue: np.ndarray | None = None
    mask = _resolve_mask(slide, tissue_mask, min_tissue)
    if mask is not None:
        # Every cell's tissue fraction is held (and the kept cells' indices): refuse a grid
        # whose arrays would not fit, as any other allocation, instead of running out of memory.
        check_allocation((rows * cols,), _MASKED_BYTES_PER_TILE, "tile plan", slide.path)
        tissue = np.concatenate([_tissue_fractions(mask, start, min(start + _BLOCK, rows * cols), cols, stride,
                                                   shape, scale)
                                 for start in range(0, rows * cols, _BLOCK)] or [np.zeros(0)])
        if min_tissue is not None:
            cells = np.flatnonzero(tissue >= min_tissue)
            tissue = tissue[cells]
    plan = Plan((rows, cols), stride, shape, scale, ratio, read_level, tile_mpp, cells, tissue)
    if annotations is not None or min_label is not None:
        from .annotations.planning import label_plan

        plan = label_plan(slide, plan, annotations, min_label)
    return plan


def _tissue_fractions(mask: TissueMask, start: int, stop: int, cols: int, stride: tuple[int, int],
                      shape: tuple[int, int], scale: tuple[float, float]) -> np.ndarray:
    """Tissue fractions (rounded to 1e-6) of grid cells ``start:stop`` of a plan's grid."""
    cells = np.arange(start, stop, dtype=np.int64)
    i, j = cells // cols * stride[0], cells % cols * stride[1]
    si, sj = scale
    boxes0 = np.stack([i * si, j * sj, (i + shape[0]) * si, (j + shape[1]) * sj], axis=1)
    return np.round(mask.fractions(boxes0), 6)


def target_scale(slide: SlideBackend, *, mpp: float | tuple[float, float] | None = None,
                 magnification: float | None = None) -> tuple[float, float]:
    """(i, j) level-0 pixels per target pixel for ``mpp`` (microns per pixel, a number or
    an (i, j) pair) or ``magnification`` (an objective power such as 20)."""
    if mpp is not None and magnification is not None:
        raise ValueError("pass either mpp or magnification, not both")
    mpp0 = slide.mpp
    if mpp is not None:
        target = positive_pair(mpp, "mpp")
        if mpp0 is None:
            raise ValueError(
                f"{slide.path}: the slide records no pixel size (mpp), so it cannot be tiled at mpp={mpp}; "
                "tile it by level instead"
            )
        return target[0] / mpp0[0], target[1] / mpp0[1]
    m = positive_number(magnification, "magnification")
    power = slide.objective_power
    if power:
        return float(power) / m, float(power) / m
    if mpp0 is None:
        raise ValueError(
            f"{slide.path}: the slide records neither its objective power nor its pixel size (mpp), "
            f"so it cannot be tiled at magnification={magnification}; tile it by level instead"
        )
    return (10.0 / m) / mpp0[0], (10.0 / m) / mpp0[1]


def _describe_resolution(slide: SlideBackend) -> str:
    parts: list[str] = []
    if slide.mpp is not None:
        parts.append(f"{slide.mpp[0]:.4g} x {slide.mpp[1]:.4g} microns per pixel")
    if slide.objective_power:
        parts.append(f"objective power {slide.objective_power:g}")
    return ", ".join(parts)


def best_level(slide: SlideBackend, scale: tuple[float, float]) -> int:
    """The coarsest level at least as fine as ``scale`` (level-0 pixels per target pixel)."""
    fine_enough = [
        k for k in range(len(slide.level_shapes))
        if slide.level_scale(k)[0] <= scale[0] * (1 + LEVEL_TOLERANCE)
        and slide.level_scale(k)[1] <= scale[1] * (1 + LEVEL_TOLERANCE)
    ]
    return max(fine_enough, key=lambda k: sum(slide.level_scale(k)), default=0)


def _resolve_mask(slide: SlideBackend, tissue_mask: TissueMask | np.ndarray | bool | None,
                  min_tissue: float | None) -> TissueMask | None:
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
    raise TypeError("tissue_mask must be a TissueMask, a 2-D boolean array, True or None; "
                    f"got {type(tissue_mask).__name__}")
