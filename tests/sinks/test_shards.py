"""Zarr shards written without zarr: zarr-python reads them back, the index and checksum are
Zarr's, a shard is written whole once all its tiles are in, and the bytes do not depend on
the order or the threads the tiles came in."""
from __future__ import annotations

import os
import struct
from concurrent.futures import ThreadPoolExecutor

import google_crc32c
import numpy as np
import pytest
import zarr

from tests.helpers import tree_bytes
from wsikit.sinks.channels import PixelLayout
from wsikit.sinks.codecs import CHUNK_CODECS
from wsikit.sinks.writers import PendingTile, ZarrTileWriter
from wsikit.sinks.writers.shards import SHARD_BYTES, SHARD_TILES, ShardedArrayWriter, shard_tiles_for

RGB = PixelLayout(3, np.dtype(np.uint8))


def tiles_of(count: int, shape=(20, 24, 3), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # Smooth enough to compress, varied enough that every chunk differs.
    base = rng.integers(0, 40, (count,) + shape, dtype=np.uint8)
    return (base + np.arange(count, dtype=np.uint8)[:, None, None, None]).astype(np.uint8)


def write_all(folder, tiles, codec="lz4", order=None, threads=1):
    writer = ZarrTileWriter(str(folder), len(tiles), tiles.shape[1:3], PixelLayout(tiles.shape[3], tiles.dtype),
                            {"test": True}, codec=codec)
    order = range(len(tiles)) if order is None else order
    runs = [[PendingTile(k, None, tiles[k])] for k in order]
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(writer.write_run, runs))
    return writer


@pytest.mark.parametrize("codec", sorted(CHUNK_CODECS))
def test_zarr_reads_the_shards_back(tmp_path, codec, monkeypatch):
    monkeypatch.setattr("wsikit.sinks.writers.shards.SHARD_TILES", 16)
    tiles = tiles_of(40)  # two whole shards and a last one of 8 tiles
    writer = write_all(tmp_path, tiles, codec)
    assert writer.shard_tiles == 16 and writer.tiles.pending_tiles() == 0
    array = zarr.open_group(str(tmp_path / "tiles.zarr"), mode="r")["tiles"]
    assert array.shape == (40, 20, 24, 3) and array.chunks == (1, 20, 24, 3) and array.shards == (16, 20, 24, 3)
    np.testing.assert_array_equal(array[:], tiles)
    for k in (0, 15, 16, 39):
        np.testing.assert_array_equal(array[k], tiles[k])
    shard_files = sorted(os.listdir(tmp_path / "tiles.zarr" / "tiles" / "c"))
    assert shard_files == ["0", "1", "2"]


def test_the_shard_index_and_checksum_are_zarrs(tmp_path, monkeypatch):
    monkeypatch.setattr("wsikit.sinks.writers.shards.SHARD_TILES", 8)
    tiles = tiles_of(11)
    write_all(tmp_path, tiles)
    data = (tmp_path / "tiles.zarr" / "tiles" / "c" / "1" / "0" / "0" / "0").read_bytes()
    index = np.frombuffer(data[-4 - 8 * 16 : -4], dtype="<u8").reshape(8, 2)
    assert struct.unpack("<I", data[-4:])[0] == google_crc32c.value(data[-4 - 8 * 16 : -4])
    # Tiles 8, 9, 10 one after the other from offset 0; the five slots past the array are absent.
    assert index[0, 0] == 0 and index[1, 0] == index[0, 1] and index[2, 0] == index[1, 0] + index[1, 1]
    assert index[2, 0] + index[2, 1] == len(data) - 4 - 8 * 16
    assert (index[3:] == 2**64 - 1).all()
    codec = CHUNK_CODECS["lz4"]
    assert data[index[1, 0] : index[1, 0] + index[1, 1]] == codec.encode(tiles[9])


def test_a_shard_is_written_only_once_complete(tmp_path, monkeypatch):
    monkeypatch.setattr("wsikit.sinks.writers.shards.SHARD_TILES", 4)
    tiles = tiles_of(10)
    writer = ZarrTileWriter(str(tmp_path), 10, (20, 24), RGB, {})
    writer.write_run([PendingTile(k, None, tiles[k]) for k in (0, 1, 2, 4, 5, 6, 7)])
    assert [writer.has(k, None) for k in range(10)] == [False] * 4 + [True] * 4 + [False] * 2
    assert writer.tiles.pending_tiles() == 3
    writer.write_run([PendingTile(3, None, tiles[3])])
    assert all(writer.has(k, None) for k in range(8)) and writer.tiles.pending_tiles() == 0
    # A new writer on the same store finds the stored shards.
    again = ZarrTileWriter(str(tmp_path), 10, (20, 24), RGB, {})
    assert [again.has(k, None) for k in range(10)] == [True] * 8 + [False] * 2


def test_bytes_do_not_depend_on_order_or_threads(tmp_path, monkeypatch):
    monkeypatch.setattr("wsikit.sinks.writers.shards.SHARD_TILES", 8)
    tiles = tiles_of(30)
    write_all(tmp_path / "a", tiles)
    order = list(np.random.default_rng(3).permutation(30))
    write_all(tmp_path / "b", tiles, order=order, threads=4)
    assert tree_bytes(tmp_path / "a") == tree_bytes(tmp_path / "b")


def test_a_store_of_other_layout_is_refused(tmp_path, monkeypatch):
    ZarrTileWriter(str(tmp_path), 10, (20, 24), RGB, {})
    with pytest.raises(ValueError, match="whose codecs differ"):
        ZarrTileWriter(str(tmp_path), 10, (20, 24), RGB, {}, codec="zstd")
    with pytest.raises(ValueError, match=r"whose shape differ.*shape \[10, 20, 24, 3\], expected \[11, 20, 24, 3\]"):
        ZarrTileWriter(str(tmp_path), 11, (20, 24), RGB, {})
    monkeypatch.setattr("wsikit.sinks.writers.shards.SHARD_TILES", 4)
    with pytest.raises(ValueError, match="whose chunk_grid differ"):
        ZarrTileWriter(str(tmp_path), 10, (20, 24), RGB, {})
    (tmp_path / "tiles.zarr" / "tiles" / "zarr.json").write_text("not json")
    with pytest.raises(ValueError, match="no readable array"):
        ZarrTileWriter(str(tmp_path), 10, (20, 24), RGB, {})


@pytest.mark.parametrize("codec", sorted(CHUNK_CODECS))
def test_metadata_documents_are_the_ones_zarr_writes(tmp_path, codec):
    import json

    from zarr.codecs import BloscCodec, ZstdCodec

    compressor = {"lz4": BloscCodec(typesize=1, cname="lz4", clevel=1, shuffle="noshuffle", blocksize=0),
                  "zstd": ZstdCodec(level=1, checksum=False)}[codec]
    attributes = {"wsikit": {"slide": "/x/é.svs", "mpp": [0.25, None], "sizes": {"z": 1}}}
    group = zarr.create_group(store=str(tmp_path / "by-zarr"), zarr_format=3, attributes=attributes)
    group.create_array("tiles", shape=(300, 20, 24, 3), chunks=(1, 20, 24, 3), shards=(256, 20, 24, 3),
                       dtype=np.uint8, fill_value=0, compressors=compressor,
                       dimension_names=("tile", "i", "j", "channel"),
                       chunk_key_encoding={"name": "default", "separator": "/"})
    ZarrTileWriter(str(tmp_path / "ours"), 300, (20, 24), RGB, attributes, codec=codec)
    for name in ("zarr.json", "tiles/zarr.json"):
        theirs = json.loads((tmp_path / "by-zarr" / name).read_text())
        ours = json.loads((tmp_path / "ours" / "tiles.zarr" / name).read_text())
        assert ours == theirs


def test_shard_size_bounds_memory_and_tiles():
    assert shard_tiles_for(256 * 256 * 3) == SHARD_TILES
    assert shard_tiles_for(SHARD_BYTES // 3) == 3
    assert shard_tiles_for(SHARD_BYTES * 2) == 1


def test_tiles_outside_the_array_are_refused(tmp_path):
    writer = ShardedArrayWriter(str(tmp_path), 3, 2, CHUNK_CODECS["lz4"])
    with pytest.raises(IndexError, match="outside"):
        writer.add(3, np.zeros((2, 2, 3), np.uint8))
