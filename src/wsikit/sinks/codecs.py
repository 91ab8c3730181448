"""The lossless chunk codecs of the ``zarr`` format, chosen by measurement.

Each codec is a standard Zarr v3 codec (so zarr-python alone reads the store) paired with
the function wsikit compresses a chunk with: the same library and parameters the Zarr
metadata names, called directly on a worker thread (it releases the GIL) instead of through
zarr's codec pipeline, whose per-chunk overhead (about 1 ms) was the bottleneck.

Measured on real H&E tiles (256 x 256 x 3, decoded JPEG, one core of this 2-core machine;
the reader decodes about 5,200 such tiles/s per core)::

    codec                    MB/s per core   tiles/s per core   ratio
    blosc lz4, clevel 1           2,130           10,800         2.05   <- default "lz4"
    blosc lz4, clevel 5           1,810            9,200         2.06
    zstd, level 1                   550            2,800         2.35   <- "zstd"
    zstd, level 3                   280            1,450         2.38   (the former default)
    blosc zstd 1 + bitshuffle       430            2,170         2.42

Byte shuffles do nothing for one-byte samples and bit shuffle costs twice the time for 3%
smaller files; lz4 is the only lossless codec that leaves the cores to the JPEG decoder
(``benchmarks/tile_outputs.py`` prints this table on the machine it runs on).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ChunkCodec:
    """A lossless chunk codec: its name in the options, the Zarr v3 codec JSON the array's
    metadata declares (what zarr-python decodes with), and the function that compresses one
    chunk's C-order bytes exactly as that codec does."""

    name: str
    metadata: dict[str, Any]
    encode: Callable[[np.ndarray], bytes]


def _encode_blosc_lz4(chunk: np.ndarray) -> bytes:
    import imagecodecs

    data: Any = np.ascontiguousarray(chunk)  # imagecodecs takes any buffer; its stubs say bytes
    # One thread per call: the writer already runs one call per core; Blosc's own threads
    # would only contend with them.
    return bytes(imagecodecs.blosc_encode(data, level=1, compressor="lz4", shuffle=0, typesize=1,
                                          blocksize=0, numthreads=1))


def _encode_zstd(chunk: np.ndarray) -> bytes:
    import imagecodecs

    data: Any = np.ascontiguousarray(chunk)  # imagecodecs takes any buffer; its stubs say bytes
    return bytes(imagecodecs.zstd_encode(data, level=1))


#: the codecs ``TileOptions.codec`` names; the first is the default
CHUNK_CODECS: dict[str, ChunkCodec] = {
    "lz4": ChunkCodec("lz4", {"name": "blosc", "configuration": {
        "typesize": 1, "cname": "lz4", "clevel": 1, "shuffle": "noshuffle", "blocksize": 0}}, _encode_blosc_lz4),
    "zstd": ChunkCodec("zstd", {"name": "zstd", "configuration": {"level": 1, "checksum": False}}, _encode_zstd),
}
DEFAULT_CODEC = "lz4"
