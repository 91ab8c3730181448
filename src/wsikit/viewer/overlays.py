"""What the viewer draws over a slide: the tissue mask and a tile plan.

- The tissue mask is :func:`wsikit.tissue.tissue_mask` of the slide (the mask a tiling
  with ``min_tissue`` uses), drawn as a translucent green picture covering the slide.
- The tile plan is ``slide.tile_plan(**TileOptions(...).plan_kwargs())``: exactly the plan
  ``wsikit tile`` cuts for the same options. It is sent as the level-0 corner of every tile
  and the tiles' common level-0 size (every tile of a plan has the same shape and frame),
  so that a browser draws it at any zoom.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from ..overlay import frame_scale, level0_corner
from ..sinks import TileOptions

if TYPE_CHECKING:
    from ..backends.base import SlideBackend
    from ..tissue import TissueMask

#: RGBA of tissue in the mask picture (the rest is transparent)
TISSUE_RGBA = (0, 200, 0, 90)
#: the most tiles a plan overlay sends (a finer plan is refused, saying how many tiles it has)
MAX_PLAN_TILES = 250_000


class OverlayError(ValueError):
    """A request for an overlay that cannot be drawn (bad options, too many tiles)."""


def tissue_picture(mask: TissueMask) -> np.ndarray:
    """The (h, w, 4) uint8 RGBA picture of ``mask``: tissue green and translucent, the rest clear."""
    picture = np.zeros(mask.shape + (4,), dtype=np.uint8)
    picture[mask.mask] = TISSUE_RGBA
    return picture


def plan_options(query: Mapping[str, str]) -> TileOptions:
    """The tiling options of a plan request (the ``wsikit tile`` options of the same names:
    shape, stride, pad, level, mpp, magnification, min_tissue); OverlayError when bad."""
    try:
        shape = _pair(query.get("shape", "256"), "shape")
        stride = _pair(query["stride"], "stride") if query.get("stride") else None
        pad = query.get("pad", "false").lower() in ("1", "true", "yes", "on")
        resolution = {name: query[name] for name in ("level", "mpp", "magnification") if query.get(name)}
        level = int(resolution["level"]) if "level" in resolution else None
        mpp = _positive(resolution["mpp"], "mpp") if "mpp" in resolution else None
        magnification = _positive(resolution["magnification"], "magnification") if "magnification" in resolution \
            else None
        min_tissue = float(query["min_tissue"]) if query.get("min_tissue") else None
        if min_tissue is not None and not 0.0 <= min_tissue <= 1.0:
            raise ValueError(f"min_tissue must be in [0, 1], got {min_tissue}")
        return TileOptions(shape=shape, stride=stride, pad=pad, level=level, mpp=mpp, magnification=magnification,
                           min_tissue=min_tissue)
    except (TypeError, ValueError) as exc:
        raise OverlayError(str(exc)) from None


def _pair(text: str, name: str) -> tuple[int, int]:
    parts = [p for p in text.replace("x", ",").split(",") if p.strip()]
    if len(parts) not in (1, 2) or not all(p.strip().isdigit() for p in parts):
        raise ValueError(f"{name} must be N or N,M (positive integers), got {text!r}")
    values = [int(p) for p in parts]
    if min(values) < 1 or max(values) > 1_000_000:
        raise ValueError(f"{name} must be positive (at most 1000000), got {text!r}")
    return values[0], values[-1]


def _positive(text: str, name: str) -> float:
    value = float(text)
    if not (value > 0 and value != float("inf")):
        raise ValueError(f"{name} must be a positive number, got {text!r}")
    return value


def plan_overlay(slide: SlideBackend, options: TileOptions, mask: Callable[[], TissueMask]) -> dict[str, Any]:
    """The plan of ``options`` on ``slide`` as JSON data: ``tiles`` (count), ``level`` (read),
    ``shape`` (h, w of a tile in its frame), ``mpp`` (of a tile, or None), ``size0`` (a tile's
    (h, w) in level-0 pixels), ``corners`` ([i0, j0, i0, j0, ...] level-0 corners) and
    ``tissue`` (fractions, or None without ``min_tissue``). ``mask`` gives the slide's
    tissue mask, computed once, when ``min_tissue`` asks for one."""
    kwargs = options.plan_kwargs()
    if options.min_tissue is not None:
        kwargs["tissue_mask"] = mask()  # the mask wsikit tile computes: tissue_mask(slide)
    try:
        plan = slide.tile_plan(**kwargs)
    except (TypeError, ValueError) as exc:
        raise OverlayError(str(exc)) from None
    if len(plan) > MAX_PLAN_TILES:
        raise OverlayError(f"the plan has {len(plan)} tiles, more than the {MAX_PLAN_TILES} the viewer draws; "
                           "choose a larger shape or a coarser resolution")
    corners: list[int] = []
    tissue: list[float] | None = [] if options.min_tissue is not None else None
    size0: tuple[float, float] = (0.0, 0.0)
    for spec in plan:
        if not corners:
            si, sj = frame_scale(slide, spec)
            size0 = (spec.shape[0] * si, spec.shape[1] * sj)
        i0, j0 = level0_corner(slide, spec)
        corners.extend((int(round(i0)), int(round(j0))))
        if tissue is not None:
            tissue.append(0.0 if spec.tissue is None else spec.tissue)
    return {"tiles": len(plan), "level": plan.level, "shape": list(plan.shape),
            "mpp": None if plan.mpp is None else list(plan.mpp), "size0": list(size0), "corners": corners,
            "tissue": tissue, "options": options.as_json()}
