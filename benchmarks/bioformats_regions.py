"""100 small region reads through Bio-Formats: one reader kept open versus one per read.

    .venv/bin/python benchmarks/bioformats_regions.py [slide] [--regions 100] [--size 256]

The slide defaults to ../shared/testdata/small_vectra.qptiff (a 3-channel QPTIFF), or
a synthetic 4-channel OME-TIFF pyramid written to a temporary folder when that is absent.
Timed, each in one run, on the same random locations:

* wsikit's BioFormatsBackend: the file opened once, kept open (tile cache off, so every
  read decodes; then again with the default cache, starting cold);
* a fresh Bio-Formats reader per read through JPype (what the seed's javabridge backend
  did on every ``extract_region``; javabridge itself no longer installs);
* wsikit's native TiffBackend, for scale.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import wsikit

HERE = Path(__file__).resolve().parent
TESTDATA = Path(os.environ.get("WSIKIT_TESTDATA", HERE.parents[1] / "shared" / "testdata"))


def default_slide(folder: str) -> str:
    real = TESTDATA / "small_vectra.qptiff"
    if real.exists():
        return str(real)
    import tifffile

    data = np.random.default_rng(0).integers(0, 4096, (4, 2048, 2048), dtype=np.uint16)
    path = os.path.join(folder, "bench.ome.tif")
    with tifffile.TiffWriter(path, ome=True) as tif:
        options = {"tile": (256, 256), "compression": "zlib"}
        tif.write(data, subifds=2, metadata={"axes": "CYX"}, **options)
        tif.write(data[:, ::2, ::2], subfiletype=1, **options)
        tif.write(data[:, ::4, ::4], subfiletype=1, **options)
    return path


def locations(shape, size: int, count: int) -> list[tuple[int, int]]:
    rng = np.random.default_rng(42)
    return [(int(rng.integers(0, shape[0] - size)), int(rng.integers(0, shape[1] - size))) for _ in range(count)]


def time_reads(read, boxes) -> float:
    start = time.perf_counter()
    for box in boxes:
        read(box)
    return time.perf_counter() - start


def fresh_reader_per_read(path: str, size: int):
    """One region read the seed's way: a new reader opened (setId) and closed for every call."""
    import jpype

    image_reader = jpype.JClass("loci.formats.ImageReader")

    def read(location):
        reader = image_reader()
        try:
            reader.setId(path)
            planes = [np.frombuffer(memoryview(reader.openBytes(k, location[1], location[0], size, size)), np.uint8)
                      for k in range(reader.getImageCount())]
        finally:
            reader.close()
        return planes

    return read


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("slide", nargs="?")
    parser.add_argument("--regions", type=int, default=100)
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = args.slide or default_slide(folder)
        start = time.perf_counter()
        slide = wsikit.open_slide(path, backend="bioformats", cache_bytes=0)
        opened = time.perf_counter() - start
        boxes = locations(slide.shape, args.size, args.regions)
        print(f"slide: {path} {slide.shape} sizes (z, c, t) {slide.sizes}, {args.regions} regions "
              f"of {args.size}x{args.size}; JVM start + first open {opened:.2f} s")
        slide.extract_region(boxes[0], (args.size, args.size))  # warm the JIT on this reader's code paths
        kept = time_reads(lambda box: slide.extract_region(box, (args.size, args.size)), boxes)
        fresh = time_reads(fresh_reader_per_read(path, args.size), boxes)
        cached_slide = wsikit.open_slide(path, backend="bioformats")  # the default tile cache, cold
        cached = time_reads(lambda box: cached_slide.extract_region(box, (args.size, args.size)), boxes)
        cached_slide.close()
        results = [("wsikit BioFormatsBackend (file kept open)", kept),
                   ("  the same with the tile cache on (cold)", cached),
                   ("JPype, a fresh reader per read (the seed's way)", fresh)]
        try:
            native = wsikit.open_slide(path, backend="tiff", cache_bytes=0)
            native.extract_region(boxes[0], (args.size, args.size))
            results.append(("wsikit TiffBackend (native)", time_reads(
                lambda box: native.extract_region(box, (args.size, args.size)), boxes)))
        except wsikit.SlideError as exc:
            print(f"(no native reading: {exc.reason})")
        slide.close()
        for name, seconds in results:
            print(f"{name:50s} {args.regions / seconds:9.1f} regions/s  ({1000 * seconds / args.regions:.2f} ms each)")
        print(f"kept open / fresh reader per read: {fresh / kept:.1f}x faster")


if __name__ == "__main__":
    sys.exit(main())
