"""Deep Zoom tiles of a slide, as openslide-python's ``openslide.deepzoom``.

:class:`DeepZoomGenerator` takes the same arguments and gives the same results as
openslide-python's: the same Deep Zoom levels and tile grid, the same ``read_region``
arguments for every tile (``get_tile_coordinates``), the same DZI XML, tiles composited on
the slide's background colour and reduced with Lanczos as there. The regions are read by
the slide's own ``read_region`` (for :class:`wsikit.compat.openslide.OpenSlide`, wsikit's
parallel reader); :meth:`DeepZoomGenerator.get_tiles` reads many tiles on a thread pool.

Coordinate planes, as in openslide-python: tile (t), Deep Zoom level pixel (z), slide level
pixel (l) and slide level-0 pixel (l0).
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from io import BytesIO
from typing import TYPE_CHECKING
from xml.etree.ElementTree import Element, ElementTree, SubElement

from . import (PROPERTY_NAME_BACKGROUND_COLOR, PROPERTY_NAME_BOUNDS_HEIGHT, PROPERTY_NAME_BOUNDS_WIDTH,
               PROPERTY_NAME_BOUNDS_X, PROPERTY_NAME_BOUNDS_Y, AbstractSlide)

if TYPE_CHECKING:
    from PIL import Image

_DZI_NAMESPACE = "http://schemas.microsoft.com/deepzoom/2008"
ReadArgs = tuple[tuple[int, int], int, tuple[int, int]]


class DeepZoomGenerator:
    """Deep Zoom tiles and DZI metadata of a slide object."""

    BOUNDS_OFFSET_PROPS = (PROPERTY_NAME_BOUNDS_X, PROPERTY_NAME_BOUNDS_Y)
    BOUNDS_SIZE_PROPS = (PROPERTY_NAME_BOUNDS_WIDTH, PROPERTY_NAME_BOUNDS_HEIGHT)

    def __init__(self, osr: AbstractSlide, tile_size: int = 254, overlap: int = 1, limit_bounds: bool = False) -> None:
        """``tile_size``: tile width and height (tile_size + 2 * overlap is best a power of two);
        ``overlap``: pixels added to each interior edge of a tile; ``limit_bounds``: show only
        the slide's non-empty region (OpenSlide's ``bounds-*`` properties) where it has one."""
        self._osr = osr
        self._tile_size = tile_size
        self._overlap = overlap
        self._limit_bounds = limit_bounds
        props = osr.properties
        if limit_bounds:
            self._l0_offset = tuple(int(props.get(name, 0)) for name in self.BOUNDS_OFFSET_PROPS)
            scale = [int(props.get(name, full)) / full for name, full in zip(self.BOUNDS_SIZE_PROPS, osr.dimensions)]
            self._l_dimensions = tuple((math.ceil(w * scale[0]), math.ceil(h * scale[1]))
                                       for w, h in osr.level_dimensions)
        else:
            self._l0_offset = (0, 0)
            self._l_dimensions = tuple(tuple(d) for d in osr.level_dimensions)  # type: ignore[misc]
        self._l0_dimensions = self._l_dimensions[0]
        # Deep Zoom levels: halve (rounding up) until one pixel; level 0 is the smallest.
        sizes = [self._l0_dimensions]
        while sizes[-1][0] > 1 or sizes[-1][1] > 1:
            w, h = sizes[-1]
            sizes.append((max(1, math.ceil(w / 2)), max(1, math.ceil(h / 2))))
        self._z_dimensions = tuple(reversed(sizes))
        self._t_dimensions = tuple((math.ceil(w / tile_size), math.ceil(h / tile_size)) for w, h in self._z_dimensions)
        self._dz_levels = len(self._z_dimensions)
        l0_z_downsamples = [2 ** (self._dz_levels - level - 1) for level in range(self._dz_levels)]
        self._slide_level = tuple(osr.get_best_level_for_downsample(d) for d in l0_z_downsamples)
        self._l0_l_downsamples = osr.level_downsamples
        self._l_z_downsamples = tuple(l0_z_downsamples[z] / self._l0_l_downsamples[self._slide_level[z]]
                                      for z in range(self._dz_levels))
        self._background = "#" + props.get(PROPERTY_NAME_BACKGROUND_COLOR, "ffffff")

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self._osr!r}, tile_size={self._tile_size!r}, overlap={self._overlap!r}, "
                f"limit_bounds={self._limit_bounds!r})")

    @property
    def level_count(self) -> int:
        """The number of Deep Zoom levels."""
        return self._dz_levels

    @property
    def level_tiles(self) -> tuple[tuple[int, int], ...]:
        """(columns, rows) of tiles of every Deep Zoom level."""
        return self._t_dimensions

    @property
    def level_dimensions(self) -> tuple[tuple[int, int], ...]:
        """(width, height) in pixels of every Deep Zoom level."""
        return self._z_dimensions

    @property
    def tile_count(self) -> int:
        """The number of tiles of all Deep Zoom levels."""
        return sum(columns * rows for columns, rows in self._t_dimensions)

    def get_tile(self, level: int, address: tuple[int, int]) -> Image.Image:
        """The RGB PIL image of tile ``address`` (column, row) of Deep Zoom ``level``."""
        args, size = self._tile_info(level, address)
        return self._finish(self._osr.read_region(*args), size)

    def get_tiles(self, level: int, addresses: Iterable[tuple[int, int]], workers: int | None = None
                  ) -> Iterator[Image.Image]:
        """``get_tile`` for many addresses of one level, read on ``workers`` threads (default:
        the CPU count), yielded in order. Each bad address raises at its turn."""
        infos = [self._tile_info(level, address) for address in addresses]
        with ThreadPoolExecutor(max_workers=workers) as pool:
            yield from pool.map(lambda info: self._finish(self._osr.read_region(*info[0]), info[1]), infos)

    def _finish(self, region: Image.Image, size: tuple[int, int]) -> Image.Image:
        from PIL import Image

        profile = region.info.get("icc_profile")
        tile = Image.composite(region, Image.new("RGB", region.size, self._background), region)
        if tile.size != size:
            tile.thumbnail(size, Image.Resampling.LANCZOS)
        if profile is not None:
            tile.info["icc_profile"] = profile
        return tile

    def _tile_info(self, dz_level: int, address: tuple[int, int]) -> tuple[ReadArgs, tuple[int, int]]:
        if not 0 <= dz_level < self._dz_levels:
            raise ValueError("Invalid level")
        tiles = self._t_dimensions[dz_level]
        if len(address) != 2 or any(not 0 <= t < limit for t, limit in zip(address, tiles)):
            raise ValueError("Invalid address")
        slide_level = self._slide_level[dz_level]
        # Overlap on the sides that have a neighbouring tile.
        before = [self._overlap if t != 0 else 0 for t in address]
        after = [self._overlap if t != limit - 1 else 0 for t, limit in zip(address, tiles)]
        z_size = tuple(min(self._tile_size, z_full - self._tile_size * t) + b + a
                       for t, z_full, b, a in zip(address, self._z_dimensions[dz_level], before, after))
        l_location = [self._l_z_downsamples[dz_level] * (self._tile_size * t - b) for t, b in zip(address, before)]
        # Location rounded down, size rounded up, both clipped to the slide level.
        l0_location = tuple(int(self._l0_l_downsamples[slide_level] * start + offset)
                            for start, offset in zip(l_location, self._l0_offset))
        l_size = tuple(int(min(math.ceil(self._l_z_downsamples[dz_level] * z), l_full - math.ceil(start)))
                       for start, z, l_full in zip(l_location, z_size, self._l_dimensions[slide_level]))
        return ((l0_location[0], l0_location[1]), slide_level, (l_size[0], l_size[1])), (z_size[0], z_size[1])

    def get_tile_coordinates(self, level: int, address: tuple[int, int]) -> ReadArgs:
        """The ``read_region`` arguments ((x, y), level, (w, h)) that tile ``address`` of ``level`` reads."""
        return self._tile_info(level, address)[0]

    def get_tile_dimensions(self, level: int, address: tuple[int, int]) -> tuple[int, int]:
        """(width, height) of tile ``address`` of Deep Zoom ``level``."""
        return self._tile_info(level, address)[1]

    def get_dzi(self, format: str) -> str:
        """The DZI XML describing the image, for tiles in ``format`` ('jpeg' or 'png')."""
        image = Element("Image", TileSize=str(self._tile_size), Overlap=str(self._overlap), Format=format,
                        xmlns=_DZI_NAMESPACE)
        width, height = self._l0_dimensions
        SubElement(image, "Size", Width=str(width), Height=str(height))
        buffer = BytesIO()
        ElementTree(element=image).write(buffer, encoding="UTF-8")
        return buffer.getvalue().decode("UTF-8")


__all__ = ["DeepZoomGenerator"]

