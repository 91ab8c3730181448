"""Whole Zarr v3 shards written directly: many tiles per file, each file whole or absent.

An array of one chunk per tile, shape (n, h, w, c), is stored in shards of ``shard_tiles``
consecutive tiles (shard s holds tiles s * shard_tiles ... and is the file
``<array>/c/<s>/0/0/0``). The shard format is Zarr v3's ``sharding_indexed`` codec with its
defaults, which zarr-python reads:

- the inner chunks' encoded bytes, one after the other, in tile order;
- then the index: per inner chunk (offset, nbytes) as little-endian uint64, 2**64 - 1 for
  both when the chunk is absent (the slots of the last shard past the end of the array);
- then the CRC-32C of the index (the ``crc32c`` index codec), little-endian uint32.

Why not ``array[a:b] = tiles``: zarr's codec pipeline costs about 1 ms of Python per inner
chunk on a single event loop, 10x what compressing a tile with lz4 costs. Here each chunk
is compressed on the thread that hands it in (the codecs release the GIL), and a shard is
assembled and written, through a temporary name, by the thread completing it.

Resume: a shard file that exists is whole (write-then-rename), so a rerun writes exactly
the missing shards, with the bytes an uninterrupted run writes (compression is
deterministic).
"""
from __future__ import annotations

import os
import threading

import numpy as np

from ..atomic import write_atomic
from ..codecs import ChunkCodec

#: the index entry of an absent inner chunk
_ABSENT = np.uint64(2**64 - 1)
#: raw bytes of the tiles of one shard at most (so a pending shard's memory stays bounded)
SHARD_BYTES = 64 * 1024**2
#: tiles per shard at most: with about 5 other files, 256 keeps a slide of 700 tiles or
#: more within one file per 100 tiles
SHARD_TILES = 256


def shard_tiles_for(tile_nbytes: int) -> int:
    """Tiles per shard for tiles of ``tile_nbytes`` raw bytes: :data:`SHARD_TILES`, fewer for
    tiles so large that a shard would exceed :data:`SHARD_BYTES`."""
    return max(1, min(SHARD_TILES, SHARD_BYTES // max(1, tile_nbytes)))


class ShardedArrayWriter:
    """Writes the shards of one array of ``count`` per-tile chunks under ``array_path``.

    :meth:`add` takes chunk k (a C-contiguous array of the chunk's shape); the shard is
    written once all its chunks are in. Safe to call from several threads.
    """

    def __init__(self, array_path: str, count: int, shard_tiles: int, codec: ChunkCodec) -> None:
        self.folder = os.path.join(array_path, "c")
        self.count = count
        self.shard_tiles = shard_tiles
        self.codec = codec
        self._lock = threading.Lock()
        self._pending: dict[int, dict[int, bytes]] = {}
        self._stored = self._find_stored()

    # -- what is there ---------------------------------------------------------------------
    def _find_stored(self) -> set[int]:
        try:
            names = os.listdir(self.folder)
        except FileNotFoundError:
            return set()
        return {int(name) for name in names if name.isdigit() and os.path.isfile(self.shard_path(int(name)))}

    def shard_path(self, shard: int) -> str:
        """The file of shard ``shard`` (chunk key ``c/<shard>/0/0/0``)."""
        return os.path.join(self.folder, str(shard), "0", "0", "0")

    def shard_size(self, shard: int) -> int:
        """How many tiles shard ``shard`` holds (the last one may hold fewer)."""
        return min(self.shard_tiles, self.count - shard * self.shard_tiles)

    def has(self, position: int) -> bool:
        """Whether the shard of tile ``position`` is stored."""
        return position // self.shard_tiles in self._stored

    # -- writing -----------------------------------------------------------------------------
    def add(self, position: int, chunk: np.ndarray) -> None:
        """Compress chunk ``position`` (on this thread) and write its shard when complete."""
        if not 0 <= position < self.count:
            raise IndexError(f"tile {position} is outside the array of {self.count} tiles")
        encoded = self.codec.encode(chunk)
        shard = position // self.shard_tiles
        with self._lock:
            chunks = self._pending.setdefault(shard, {})
            chunks[position] = encoded
            complete = len(chunks) == self.shard_size(shard)
            if complete:
                del self._pending[shard]
        if complete:
            self._write_shard(shard, chunks)

    def _write_shard(self, shard: int, chunks: dict[int, bytes]) -> None:
        first = shard * self.shard_tiles
        index = np.full((self.shard_tiles, 2), _ABSENT, dtype="<u8")
        pieces: list[bytes] = []
        offset = 0
        for slot in range(len(chunks)):
            data = chunks[first + slot]
            index[slot] = (offset, len(data))
            offset += len(data)
            pieces.append(data)
        index_bytes = index.tobytes()
        pieces += [index_bytes, _crc32c(index_bytes)]
        path = self.shard_path(shard)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_atomic(path, pieces)
        with self._lock:
            self._stored.add(shard)

    def pending_tiles(self) -> int:
        """Tiles handed in whose shard is not written yet (0 once every shard is whole)."""
        with self._lock:
            return sum(len(chunks) for chunks in self._pending.values())


def _crc32c(data: bytes) -> bytes:
    """CRC-32C (Castagnoli) of ``data`` as 4 little-endian bytes, as Zarr's crc32c codec stores it."""
    import google_crc32c

    return int(google_crc32c.value(data)).to_bytes(4, "little")
