"""The benchmark's slides, written once and cached outside the repository.

* ``big_svs``: an Aperio-style pyramid (20,000 x 20,000 at level 0, 256-pixel JPEG tiles)
  whose pixels repeat the real H&E slide ``small_HE.svs`` from ../shared/testdata, or a
  synthetic tissue texture when that folder is absent. Written tile by tile, so memory
  stays low.
* ``shared_tile_tiff``: a tiled JPEG TIFF of any size whose tiles all point at the same
  JPEG bytes, so that a 50,000 x 50,000 slide is a file of a few kilobytes (for measuring
  peak memory while tiling, where what is in the tiles does not matter).
* ``dicom_series``: the same repeated pixels as a DICOM whole-slide series of 256-pixel
  JPEG frames, written by ``wsikit.samples.dicom.write_dicom_series`` (8,192 x 8,192: that
  writer holds the whole image in memory).

The cache folder is ``$WSIKIT_BENCH_CACHE`` or ``~/.cache/wsikit-bench``.
"""
from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
TESTDATA = Path(os.environ.get("WSIKIT_TESTDATA", HERE.parents[1] / "shared" / "testdata"))
# Bump when the way a slide is written changes, so that old cached files are not reused.
VERSION = 2


def cache_dir() -> Path:
    path = Path(os.environ.get("WSIKIT_BENCH_CACHE", Path.home() / ".cache" / "wsikit-bench"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def source_image() -> tuple[np.ndarray, str]:
    """(pixels, where they came from): the real H&E slide when present, else a texture."""
    real = TESTDATA / "small_HE.svs"
    if real.exists():
        import tifffile

        with tifffile.TiffFile(real) as tif:
            return tif.series[0].levels[0].asarray(), "small_HE.svs repeated"
    from wsikit.samples.svs import tissue_texture

    return tissue_texture((3000, 3000), seed=1), "synthetic tissue texture (../shared/testdata absent)"


def _repeated_tiles(source: np.ndarray, shape, tile: int):
    """Tiles of the image that repeats ``source`` to ``shape``, row-major, each (tile, tile, 3)."""
    h, w = source.shape[:2]
    rows, cols = -(-shape[0] // tile), -(-shape[1] // tile)
    for ti in range(rows):
        band = source[np.arange(ti * tile, ti * tile + tile) % h]
        for tj in range(cols):
            yield np.ascontiguousarray(band[:, np.arange(tj * tile, tj * tile + tile) % w])


def _reduced(source: np.ndarray, factor: int) -> np.ndarray:
    from wsikit.pixels import block_mean

    h, w = (source.shape[0] // factor) * factor, (source.shape[1] // factor) * factor
    return np.clip(np.rint(block_mean(source[:h, :w], factor)), 0, 255).astype(np.uint8)


def _atomic(path: Path, write) -> Path:
    if path.exists():
        return path
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def big_svs(size: int = 20000, tile: int = 256, quality: int = 80) -> tuple[Path, str]:
    """(path, description of the pixels) of the cached Aperio-style benchmark slide."""
    source, origin = source_image()
    tag = "he" if "small_HE" in origin else "synthetic"
    path = cache_dir() / f"bench-{tag}-{size}-t{tile}-q{quality}-v{VERSION}.svs"

    def write(tmp: Path) -> None:
        import tifffile

        shape = (size, size)
        description = (f"Aperio Image Library v12.0.0 \n{size}x{size} [0,0 {size}x{size}] ({tile}x{tile}) "
                       f"JPEG/RGB Q={quality}|AppMag = 20|MPP = 0.5|Filename = wsikit-bench")
        options = dict(photometric="rgb", compression="jpeg", compressionargs={"level": quality}, metadata=None,
                       dtype=np.uint8, tile=(tile, tile))
        with tifffile.TiffWriter(tmp, bigtiff=True) as tif:
            tif.write(_repeated_tiles(source, shape, tile), shape=shape + (3,), description=description,
                      subfiletype=0, **options)
            # Aperio files keep a stripped thumbnail as the second page; readers expect it there.
            thumb = _reduced(source, 8)
            tif.write(thumb, photometric="rgb", compression="jpeg", rowsperstrip=16, metadata=None,
                      description=f"Aperio Image Library v12.0.0 \n{size}x{size} -> thumbnail")
            for factor in (4, 16):
                reduced = _reduced(source, factor)
                lshape = (size // factor, size // factor)
                tif.write(_repeated_tiles(reduced, lshape, tile), shape=lshape + (3,), subfiletype=0,
                          description=f"Aperio Image Library v12.0.0 \n{size}x{size} -> {lshape[1]}x{lshape[0]}",
                          **options)

    return _atomic(path, write), origin


# -- a slide of any size in a few kilobytes -----------------------------------------------

def shared_tile_tiff(size: int, tile: int = 256, quality: int = 80) -> Path:
    """A (size, size) RGB tiled JPEG TIFF whose every tile is the same stored JPEG."""
    path = cache_dir() / f"shared-tile-{size}-t{tile}-q{quality}-v{VERSION}.tif"

    def write(tmp: Path) -> None:
        import imagecodecs

        source, _ = source_image()
        # A tile from the middle of the source: tissue, not background glass.
        i, j = (source.shape[0] - tile) // 2, (source.shape[1] - tile) // 2
        jpeg = bytes(imagecodecs.jpeg8_encode(np.ascontiguousarray(source[i : i + tile, j : j + tile]), level=quality))
        _write_tiled_jpeg_tiff(tmp, (size, size), tile, jpeg)

    return _atomic(path, write)


def _write_tiled_jpeg_tiff(path: Path, shape, tile: int, jpeg: bytes) -> None:
    """Classic little-endian TIFF, one IFD, every tile offset pointing at ``jpeg``."""
    rows, cols = -(-shape[0] // tile), -(-shape[1] // tile)
    n = rows * cols
    description = (f"Aperio Image Library v12.0.0 \n{shape[1]}x{shape[0]} [0,0 {shape[1]}x{shape[0]}] "
                   f"({tile}x{tile}) JPEG/RGB|AppMag = 20|MPP = 0.5").encode() + b"\0"
    SHORT, LONG, ASCII = 3, 4, 2
    # Layout: header | JPEG bytes | description | bits per sample | offsets | counts | IFD
    jpeg_at = 8
    desc_at = jpeg_at + len(jpeg) + (len(jpeg) & 1)
    bits_at = desc_at + len(description) + (len(description) & 1)
    offsets_at = bits_at + 6 + 2
    counts_at = offsets_at + 4 * n
    ifd_at = counts_at + 4 * n
    entries = [
        (256, LONG, 1, shape[1]),
        (257, LONG, 1, shape[0]),
        (258, SHORT, 3, bits_at),
        (259, SHORT, 1, 7),  # JPEG
        (262, SHORT, 1, 6),  # YCbCr, decoded to RGB by the JPEG codec
        (270, ASCII, len(description), desc_at),
        (277, SHORT, 1, 3),
        (284, SHORT, 1, 1),
        (322, LONG, 1, tile),
        (323, LONG, 1, tile),
        (324, LONG, n, offsets_at),
        (325, LONG, n, counts_at),
    ]
    with open(path, "wb") as f:
        f.write(b"II*\0" + struct.pack("<I", ifd_at))
        f.write(jpeg + b"\0" * (len(jpeg) & 1))
        f.write(description + b"\0" * (len(description) & 1))
        f.write(struct.pack("<3H", 8, 8, 8) + b"\0\0")
        f.write(np.full(n, jpeg_at, "<u4").tobytes())
        f.write(np.full(n, len(jpeg), "<u4").tobytes())
        f.write(struct.pack("<H", len(entries)))
        for tag, kind, count, value in entries:
            if kind == SHORT and count == 1:
                f.write(struct.pack("<HHIHH", tag, kind, count, value, 0))
            else:
                f.write(struct.pack("<HHII", tag, kind, count, value))
        f.write(struct.pack("<I", 0))


# -- DICOM ----------------------------------------------------------------------------------

def dicom_series(size: int = 8192, tile: int = 256, quality: int = 80) -> tuple[Path, Path]:
    """(folder, level-0 file) of a DICOM WSI series of the repeated source pixels."""
    source, origin = source_image()
    tag = "he" if "small_HE" in origin else "synthetic"
    folder = cache_dir() / f"dicom-{tag}-{size}-t{tile}-q{quality}-v{VERSION}"
    done = folder / ".complete"
    if not done.exists():
        import shutil

        from wsikit.samples.dicom import write_dicom_series

        if folder.exists():
            shutil.rmtree(folder)
        rows = np.arange(size) % source.shape[0]
        cols = np.arange(size) % source.shape[1]
        image = source[rows][:, cols]
        sample = write_dicom_series(folder, image, tile=tile, factors=(), thumbnail=False, label=False,
                                    overview=False, quality=quality, transfer_syntax="jpeg")
        del image, sample
        done.write_text("ok\n")
    files = sorted(folder.glob("level0*.dcm"))
    return folder, files[0]
