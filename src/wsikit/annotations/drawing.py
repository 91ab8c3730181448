"""Annotations drawn over a picture of the slide (``wsikit thumbnail --overlay annotations``).

Each class is filled with its colour at :data:`FILL_ALPHA` opacity (holes left clear) and
outlined opaquely, :data:`OUTLINE_FRACTION` of the picture's longer side wide; label-image
classes are filled where their pixels are. Classes are drawn in order, later ones on top.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .regions import LabelRegion, PolygonRegion

if TYPE_CHECKING:
    from PIL import Image as PILImage

    from .model import Annotations

FILL_ALPHA = 90
OUTLINE_FRACTION = 1 / 500


def draw_annotations(annotations: Annotations, size: tuple[int, int],
                     scale: tuple[float, float]) -> PILImage.Image:
    """An RGBA layer of ``size`` (width, height) with the classes drawn; ``scale`` is the
    picture's (i, j) pixels per level-0 pixel."""
    import shapely
    from PIL import Image, ImageDraw

    fi, fj = scale
    layer = Image.new("RGBA", size, (0, 0, 0, 0))
    width = max(1, round(max(size) * OUTLINE_FRACTION))
    for name, region in annotations.regions.items():
        r, g, b = annotations.colors[name]
        if isinstance(region, LabelRegion):
            di, dj = region.downsample
            rows = np.clip(((np.arange(size[1]) + 0.5) / fi / di).astype(np.int64), 0, region.image.shape[0] - 1)
            cols = np.clip(((np.arange(size[0]) + 0.5) / fj / dj).astype(np.int64), 0, region.image.shape[1] - 1)
            hit = region.image[rows][:, cols] == region.value
            coverage = Image.fromarray((hit * FILL_ALPHA).astype(np.uint8))
        elif isinstance(region, PolygonRegion):
            coverage = Image.new("L", size, 0)
            draw = ImageDraw.Draw(coverage)
            outline = Image.new("L", size, 0)
            draw_outline = ImageDraw.Draw(outline)
            for polygon in shapely.get_parts(region.geometry):
                rings = [polygon.exterior, *polygon.interiors]
                for k, ring in enumerate(rings):
                    xy = [(x * fj, y * fi) for x, y in np.asarray(ring.coords)]
                    if len(xy) >= 3:
                        draw.polygon(xy, fill=FILL_ALPHA if k == 0 else 0)
                        draw_outline.line(xy, fill=255, width=width)
            coverage = Image.fromarray(np.maximum(np.asarray(coverage), np.asarray(outline)))
        else:
            continue
        colour = Image.new("RGBA", size, (r, g, b, 0))
        colour.putalpha(coverage)
        layer = Image.alpha_composite(layer, colour)
    return layer
