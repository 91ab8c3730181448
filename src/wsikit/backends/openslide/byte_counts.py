"""Parts of a TIFF-based slide that OpenSlide must not be asked to read.

OpenSlide allocates a tile's byte count before reading it, and aborts the whole process
when that fails; a byte count running past the end of the file is a lie that can only
fail. So the byte counts of the TIFF directories that OpenSlide's levels and associated
images come from are checked here, with tifffile, before OpenSlide reads any of them.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from ...limits import get_max_bytes
from ...tiff_structure import has_tiff_magic, ifd_chain_problem


@dataclass
class UnreadableLevel:
    """Native tiles of one level that must not be read: (ti, tj) -> why."""

    tile_shape: tuple[int, int]
    tiles: dict[tuple[int, int], str] = field(default_factory=dict)


@dataclass
class UnreadableParts:
    """What :func:`unreadable_tiff_parts` found: bad tiles per level, bad associated images."""

    levels: dict[int, UnreadableLevel] = field(default_factory=dict)
    associated: dict[str, str] = field(default_factory=dict)  # name -> why

    def tile_problem(self, level: int, i: int, j: int, h: int, w: int) -> tuple[tuple[int, int], str] | None:
        """The first unreadable native tile (ti, tj) under the box (i, j, h, w) of ``level``
        and why it is unreadable, or None when every tile under it can be read."""
        bad = self.levels.get(level)
        if bad is None:
            return None
        th, tw = bad.tile_shape
        for ti in range(i // th, (i + h - 1) // th + 1):
            for tj in range(j // tw, (j + w - 1) // tw + 1):
                reason = bad.tiles.get((ti, tj))
                if reason:
                    return (ti, tj), reason
        return None


def unreadable_tiff_parts(path: str, properties: Mapping[str, str], levels: int) -> UnreadableParts:
    """The native tiles and associated images of an OpenSlide slide whose byte counts lie.

    A byte count lies when it runs past the end of the file or is over wsikit's memory
    limit. Levels and associated images are matched to TIFF directories by the shapes
    OpenSlide reports in ``properties``. Nothing is found for a file that is not a TIFF,
    whose IFD chain is broken, or that tifffile cannot parse (OpenSlide then reads it as
    it likes).
    """
    out = UnreadableParts()
    if not has_tiff_magic(path) or ifd_chain_problem(path):
        return out
    try:
        import tifffile

        size = os.path.getsize(path)
        limit = get_max_bytes()
        wanted = _levels_by_shape(properties, levels)
        names = _associated_by_shape(properties)
        with tifffile.TiffFile(path) as tif:
            for page in tif.pages:
                if not isinstance(page, tifffile.TiffPage):
                    continue
                shape = (int(page.imagelength), int(page.imagewidth))
                level: int | None
                if page.is_tiled:
                    tile = (int(page.tilelength), int(page.tilewidth))
                    level, name = wanted.get(shape + tile), None
                else:
                    tile = (max(1, min(int(page.rowsperstrip or shape[0]), shape[0])), shape[1])
                    level, name = None, names.get(shape)
                if level is None and name is None:
                    continue
                cols = max(1, -(-shape[1] // tile[1]))
                per_plane = max(1, -(-shape[0] // tile[0]) * cols)
                bad: dict[tuple[int, int], str] = {}
                for index, (offset, count) in enumerate(zip(page.dataoffsets, page.databytecounts)):
                    reason = _byte_count_problem(int(offset), int(count), size, limit)
                    if reason:
                        ti, tj = divmod(index % per_plane, cols)
                        bad.setdefault((ti, tj), reason)
                if not bad:
                    continue
                if level is not None:
                    out.levels.setdefault(level, UnreadableLevel(tile)).tiles.update(bad)
                elif name is not None:
                    out.associated[name] = next(iter(bad.values()))
    except Exception:
        return out  # what was found before tifffile gave up still holds
    return out


def _byte_count_problem(offset: int, count: int, file_size: int, limit: int) -> str | None:
    if count and offset + count > file_size:
        return f"its {count:,} bytes at offset {offset:,} run past the end of the file ({file_size:,} bytes)"
    if count > limit:
        return f"its {count:,} bytes are over the limit of {limit:,} bytes"
    return None


def _levels_by_shape(properties: Mapping[str, str], levels: int) -> dict[tuple[int, int, int, int], int]:
    """(height, width, tile height, tile width) -> the first level OpenSlide reports with them."""
    wanted: dict[tuple[int, int, int, int], int] = {}
    for level in range(levels):
        values = [properties.get(f"openslide.level[{level}].{key}", "")
                  for key in ("height", "width", "tile-height", "tile-width")]
        if all(v.isdigit() for v in values):
            h, w, th, tw = (int(v) for v in values)
            wanted.setdefault((h, w, th, tw), level)
    return wanted


def _associated_by_shape(properties: Mapping[str, str]) -> dict[tuple[int, int], str]:
    """(height, width) -> the first associated image OpenSlide reports with that shape."""
    prefix, suffix = "openslide.associated.", ".height"
    names: dict[tuple[int, int], str] = {}
    for prop, value in properties.items():
        if prop.startswith(prefix) and prop.endswith(suffix):
            name = prop[len(prefix):-len(suffix)]
            width = properties.get(f"{prefix}{name}.width", "")
            if value.isdigit() and width.isdigit():
                names.setdefault((int(value), int(width)), name)
    return names
