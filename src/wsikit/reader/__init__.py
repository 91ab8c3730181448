"""The reader layer: decoding native tiles in parallel, caching them, stitching regions.

- :mod:`.tile_grid`: :class:`TileGrid`, a level as a grid of native tiles (TIFF tiles or
  strips, DICOM frames), and stitching a box from the tiles it touches;
- :mod:`.cache`: :class:`TileCache`, decoded tiles shared between readers, bounded in bytes;
- :mod:`.tiled`: :class:`TiledReader`, one region or a stream of regions out of tile grids;
- :mod:`.uses`: how many regions of a stream need each native tile;
- :mod:`.stream`: reading a slide's requests (a plan, a batch of regions) in order;
- :mod:`.workers`: worker threads and an in-order parallel map.
"""
from .cache import DEFAULT_CACHE_BYTES, TileCache
from .tile_grid import TileGrid
from .tiled import LOOKAHEAD_BYTES, PARALLEL_READ_TILES, TiledReader
from .uses import UseCounter, count_uses
from .workers import THREAD_EXIT_HOOKS, default_workers, ordered_map

__all__ = [
    "DEFAULT_CACHE_BYTES", "LOOKAHEAD_BYTES", "PARALLEL_READ_TILES", "THREAD_EXIT_HOOKS", "TileCache", "TileGrid",
    "TiledReader", "UseCounter", "count_uses", "default_workers", "ordered_map",
]
