"""A thumbnail of a slide with what a tiling would take drawn over it (``wsikit thumbnail``).

Three overlays: ``annotations``, the classes of an annotation file, each filled
translucently in its colour with an opaque outline (:mod:`wsikit.annotations.drawing`);
``tissue``, the outline of the tissue mask (:func:`wsikit.tissue.tissue_mask`)
in opaque green (0, 200, 0), about 1/400 of the picture's longer side wide; and ``tiles``,
every tile of the plan the tiling arguments select, as a translucent blue box with a blue
border. Pixels that no overlay covers are the thumbnail's, unchanged.
"""
from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING

import numpy as np

from .plan import TileSpec

if TYPE_CHECKING:
    from .annotations import Annotations
    from .backends.base import SlideBackend

#: the overlays :func:`overlay_picture` draws
OVERLAYS = ("tissue", "tiles", "annotations")
TILE_FILL = (40, 90, 255, 50)
TILE_BORDER = (20, 60, 220, 200)
TISSUE_OUTLINE = (0, 200, 0, 255)
# The tissue outline is this fraction of the picture's longer side wide (at least 1 pixel).
_OUTLINE_FRACTION = 1 / 400


def overlay_picture(slide: SlideBackend, size: int = 1024, overlays: Collection[str] = (), *,
                    shape: tuple[int, int] | int = 3000, stride: tuple[int, int] | int | None = None,
                    pad: bool = False, level: int | None = 0, mpp: float | None = None,
                    magnification: float | None = None, min_tissue: float | None = None,
                    annotations: Annotations | None = None) -> np.ndarray:
    """A uint8 RGB (h, w, 3) thumbnail of ``slide`` fitting in ``size`` x ``size``, with the
    ``overlays`` drawn over it: ``tissue`` (the tissue outline, green) and/or ``tiles`` (the
    tiles of ``slide.tile_plan`` for the keyword arguments, blue) and/or ``annotations`` (the
    classes of ``annotations``, in their colours). ``min_tissue`` selects tiles by the same
    tissue mask as the outline."""
    from PIL import Image, ImageDraw

    unknown = sorted(set(overlays) - set(OVERLAYS))
    if unknown:
        raise ValueError(f"overlays must be among {', '.join(OVERLAYS)}; got {', '.join(map(repr, unknown))}")
    if "annotations" in overlays and annotations is None:
        raise ValueError("the annotations overlay needs annotations (wsikit thumbnail --annotations FILE)")
    thumb = np.ascontiguousarray(slide.get_thumbnail((size, size)))
    h0, w0 = slide.level_shapes[0]
    fi, fj = thumb.shape[0] / h0, thumb.shape[1] / w0  # picture pixels per level-0 pixel
    picture = Image.fromarray(thumb).convert("RGBA")
    layer = Image.new("RGBA", picture.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    mask = None
    if "tissue" in overlays or min_tissue is not None:
        from .tissue import tissue_mask

        mask = tissue_mask(slide)
    if "tiles" in overlays:
        plan = slide.tile_plan(shape, stride, pad, level, mpp=mpp, magnification=magnification,
                               min_tissue=min_tissue, tissue_mask=mask)
        for spec in plan:
            si, sj = frame_scale(slide, spec)
            corner_i, corner_j = level0_corner(slide, spec)
            top, left = corner_i * fi, corner_j * fj
            bottom = top + spec.shape[0] * si * fi
            right = left + spec.shape[1] * sj * fj
            draw.rectangle([left, top, max(left, right - 1), max(top, bottom - 1)], fill=TILE_FILL,
                           outline=TILE_BORDER)
    if "tissue" in overlays and mask is not None:
        from scipy import ndimage

        tissue = Image.fromarray(mask.mask.astype(np.uint8) * 255).resize(picture.size, Image.Resampling.NEAREST)
        small = np.asarray(tissue) > 127
        width = max(1, round(max(picture.size) * _OUTLINE_FRACTION))
        edge = small & ~ndimage.binary_erosion(small, iterations=width, border_value=0)
        outline = np.zeros(small.shape + (4,), np.uint8)
        outline[edge] = TISSUE_OUTLINE
        layer = Image.alpha_composite(layer, Image.fromarray(outline))
    if "annotations" in overlays and annotations is not None:
        from .annotations.drawing import draw_annotations

        layer = Image.alpha_composite(layer, draw_annotations(annotations, picture.size, (fi, fj)))
    return np.asarray(Image.alpha_composite(picture, layer).convert("RGB"))


def level0_corner(slide: SlideBackend, spec: TileSpec) -> tuple[float, float]:
    """The tile's top-left corner in level-0 pixels (plans record it; a hand-made TileSpec
    may not, and then it is where its read box starts)."""
    if spec.coords0 is not None:
        return spec.coords0
    si, sj = slide.level_scale(spec.level)
    return spec.read_location[0] * si, spec.read_location[1] * sj


def frame_scale(slide: SlideBackend, spec: TileSpec) -> tuple[float, float]:
    """Level-0 pixels per pixel of the frame a TileSpec's shape is in."""
    if spec.mpp is not None and slide.mpp is not None:
        return spec.mpp[0] / slide.mpp[0], spec.mpp[1] / slide.mpp[1]
    if spec.read_size == spec.shape:
        return slide.level_scale(spec.level)
    li, lj = slide.level_scale(spec.level)
    return li * spec.read_size[0] / spec.shape[0], lj * spec.read_size[1] / spec.shape[1]
