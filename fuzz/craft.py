"""Small TIFF files written byte by byte, for shapes no honest writer produces.

:func:`build_tiff` lays out a classic little-endian TIFF from tag dictionaries and data
blobs, so tests and the fuzzer can declare anything: a 10^6 x 10^6 tile holding a few
bytes, an IFD chain that loops, offsets past the end of the file.
"""
from __future__ import annotations

import struct
import zlib

import numpy as np

SHORT, LONG, ASCII, UNDEFINED = 3, 4, 2, 7
_TYPE_FORMAT = {SHORT: "H", LONG: "I", ASCII: "s", UNDEFINED: "s"}

# TIFF tag codes used here.
IMAGE_WIDTH, IMAGE_LENGTH, BITS_PER_SAMPLE, COMPRESSION, PHOTOMETRIC = 256, 257, 258, 259, 262
STRIP_OFFSETS, SAMPLES_PER_PIXEL, ROWS_PER_STRIP, STRIP_BYTE_COUNTS, PLANAR_CONFIG = 273, 277, 278, 279, 284
TILE_WIDTH, TILE_LENGTH, TILE_OFFSETS, TILE_BYTE_COUNTS, JPEG_TABLES = 322, 323, 324, 325, 347


def _value_bytes(kind: int, values) -> tuple[bytes, int]:
    if kind in (ASCII, UNDEFINED):
        data = values if isinstance(values, bytes) else values.encode() + b"\0"
        return data, len(data)
    values = list(values) if isinstance(values, (list, tuple)) else [values]
    return struct.pack(f"<{len(values)}{_TYPE_FORMAT[kind]}", *values), len(values)


def build_tiff(pages: list[dict], blobs: list[list[bytes]], *, next_ifd: dict[int, int] | None = None) -> bytes:
    """A classic little-endian TIFF.

    ``pages[k]`` maps tag code -> (type, value(s)); the offsets tag of page k (tile or
    strip offsets, whichever the page declares) is filled in from ``blobs[k]``, and so is
    the byte-count tag unless the page gives it. ``next_ifd`` maps a page index to the
    page index its next-IFD pointer names (to make loops); by default pages chain in order.
    """
    out = bytearray(b"II*\0\0\0\0\0")
    data_offsets = []
    for page_blobs in blobs:
        offsets = []
        for blob in page_blobs:
            offsets.append(len(out))
            out += blob
            if len(out) % 2:
                out += b"\0"
        data_offsets.append(offsets)
    # IFDs go last; first compute where each starts.
    ifd_sizes, prepared = [], []
    for k, tags in enumerate(pages):
        tags = dict(tags)
        offsets_tag = TILE_OFFSETS if TILE_WIDTH in tags else STRIP_OFFSETS
        counts_tag = TILE_BYTE_COUNTS if TILE_WIDTH in tags else STRIP_BYTE_COUNTS
        tags.setdefault(offsets_tag, (LONG, data_offsets[k] or [0]))
        tags.setdefault(counts_tag, (LONG, [len(b) for b in blobs[k]] or [0]))
        entries = sorted(tags.items())
        extra = sum(len(_value_bytes(kind, v)[0]) + 1 for _, (kind, v) in entries)
        ifd_sizes.append(2 + 12 * len(entries) + 4 + extra + 1)
        prepared.append(entries)
    starts, position = [], len(out)
    for size in ifd_sizes:
        position += position % 2
        starts.append(position)
        position += size
    chain = {k: k + 1 for k in range(len(pages) - 1)}
    chain.update(next_ifd or {})
    struct.pack_into("<I", out, 4, starts[0] if starts else 0)
    for k, entries in enumerate(prepared):
        out += b"\0" * (starts[k] - len(out))
        ifd = bytearray(struct.pack("<H", len(entries)))
        values = bytearray()
        values_start = starts[k] + 2 + 12 * len(entries) + 4
        for code, (kind, value) in entries:
            data, count = _value_bytes(kind, value)
            if len(data) <= 4:
                field = data.ljust(4, b"\0")
            else:
                field = struct.pack("<I", values_start + len(values))
                values += data
                if len(values) % 2:
                    values += b"\0"
            ifd += struct.pack("<HHI", code, kind, count) + field
        target = chain.get(k)
        ifd += struct.pack("<I", starts[target] if target is not None else 0)
        out += ifd + values
    return bytes(out)


def rgb_tags(shape, tile=None, *, compression: int = 8, rows_per_strip=None) -> dict:
    """Tags of an 8-bit RGB image of ``shape`` (h, w), tiled or in strips."""
    h, w = shape
    tags = {
        IMAGE_WIDTH: (LONG, w), IMAGE_LENGTH: (LONG, h), BITS_PER_SAMPLE: (SHORT, [8, 8, 8]),
        COMPRESSION: (SHORT, compression), PHOTOMETRIC: (SHORT, 2), SAMPLES_PER_PIXEL: (SHORT, 3),
        PLANAR_CONFIG: (SHORT, 1),
    }
    if tile is not None:
        tags[TILE_WIDTH], tags[TILE_LENGTH] = (LONG, tile[1]), (LONG, tile[0])
    else:
        tags[ROWS_PER_STRIP] = (LONG, rows_per_strip or h)
    return tags


def deflated(nbytes: int) -> bytes:
    """A few bytes of deflate that inflate to ``nbytes`` zeros (capped at 1 MiB of input)."""
    return zlib.compress(bytes(min(nbytes, 1024**2)), 9)


def small_tiled_rgb(shape=(64, 96), tile=(32, 32), seed: int = 0) -> tuple[bytes, np.ndarray]:
    """An honest deflate-tiled RGB TIFF and its pixels."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, size=shape + (3,), dtype=np.uint8)
    th, tw = tile
    blobs = []
    for i in range(0, shape[0], th):
        for j in range(0, shape[1], tw):
            block = np.zeros((th, tw, 3), np.uint8)
            part = image[i : i + th, j : j + tw]
            block[: part.shape[0], : part.shape[1]] = part
            blobs.append(zlib.compress(block.tobytes()))
    return build_tiff([rgb_tags(shape, tile)], [blobs]), image


def tile_bomb(side: int = 10**6) -> bytes:
    """One deflate tile that declares ``side`` x ``side`` RGB pixels in a file of a few hundred bytes."""
    return build_tiff([rgb_tags((side, side), (side, side))], [[deflated(1024)]])


def strip_bomb(side: int = 10**6) -> bytes:
    """One deflate strip that declares ``side`` x ``side`` RGB pixels."""
    return build_tiff([rgb_tags((side, side), None, rows_per_strip=side)], [[deflated(1024)]])


def ifd_loop(self_loop: bool = False) -> bytes:
    """Two honest pages whose IFD chain loops (page 1 -> page 0, or page 0 -> itself)."""
    _, image = small_tiled_rgb()
    data, _ = small_tiled_rgb()
    page = rgb_tags((64, 96), (32, 32))
    blobs = [zlib.compress(np.zeros((32, 32, 3), np.uint8).tobytes())] * 6
    chain = {0: 0} if self_loop else {1: 0}
    return build_tiff([page, dict(page)], [blobs, blobs], next_ifd=chain)


def jpeg_sof_bomb(tile=(256, 256), declared=(65500, 65500)) -> bytes:
    """A JPEG-tiled RGB TIFF whose only tile's own SOF header declares ``declared`` (h, w)."""
    import imagecodecs

    jpeg = bytearray(imagecodecs.jpeg8_encode(np.full(tile + (3,), 200, np.uint8), level=90))
    set_jpeg_size(jpeg, declared)
    tags = rgb_tags(tile, tile, compression=7)
    tags[PHOTOMETRIC] = (SHORT, 6)
    return build_tiff([tags], [[bytes(jpeg)]])


def set_jpeg_size(jpeg: bytearray, shape) -> int:
    """Rewrite the (h, w) in a JPEG's first SOF marker in place; returns the marker's offset."""
    k = 2
    while k + 4 <= len(jpeg):
        if jpeg[k] != 0xFF:
            raise ValueError("not at a JPEG marker")
        marker = jpeg[k + 1]
        length = struct.unpack_from(">H", jpeg, k + 2)[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            struct.pack_into(">HH", jpeg, k + 5, shape[0], shape[1])
            return k
        k += 2 + length
    raise ValueError("no SOF marker")
