"""The openslide-python drop-in against openslide-python: random 512 x 512 read_region calls
from 4 threads on the benchmark slide.

    .venv/bin/python benchmarks/compat.py [--quick] [--regions 200] [--repeats 5]

The slide is ``slides.big_svs()`` (20,000 x 20,000, 256-pixel JPEG tiles). Each turn draws
fresh random level-0 locations (so both readers start cold on them) and times the same calls
through ``wsikit.compat.openslide.OpenSlide`` and ``openslide.OpenSlide``, one slide object
shared by 4 threads each (as a DataLoader or a tile server uses it), in alternating order.
Ratios are medians of the per-turn ratios. The goal: the drop-in at least 3x openslide-python.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

GOAL = 3.0
SIZE = 512
THREADS = 4


def locations(rng: np.random.Generator, dimensions: tuple[int, int], count: int) -> list[tuple[int, int]]:
    w, h = dimensions
    return [(int(x), int(y)) for x, y in zip(rng.integers(0, w - SIZE, count), rng.integers(0, h - SIZE, count))]


def timed(slide, calls: list[tuple[int, int]]) -> float:
    """Seconds to read every call's region on a pool of THREADS threads sharing ``slide``."""
    started = time.perf_counter()
    with ThreadPoolExecutor(THREADS) as pool:
        for image in pool.map(lambda xy: slide.read_region(xy, 0, (SIZE, SIZE)), calls):
            assert image.size == (SIZE, SIZE)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer regions and turns")
    parser.add_argument("--regions", type=int, default=None, help="regions per turn (default 200, quick 60)")
    parser.add_argument("--repeats", type=int, default=None, help="turns (default 5, quick 3)")
    args = parser.parse_args(argv)
    regions = args.regions or (60 if args.quick else 200)
    repeats = args.repeats or (3 if args.quick else 5)
    try:
        import openslide
    except Exception as exc:  # the reference is not installed here
        print(f"- openslide-python unavailable ({exc}): nothing to compare with")
        return 0
    import wsikit.compat.openslide as compat
    from slides import big_svs

    path, source = big_svs()
    ours, theirs = compat.OpenSlide(str(path)), openslide.OpenSlide(str(path))
    print(f"slide: {path.name} ({source}), {ours.dimensions[0]:,} x {ours.dimensions[1]:,}; "
          f"{regions} random {SIZE} x {SIZE} read_region calls at level 0 per turn, {THREADS} threads, "
          f"{repeats} turns; {os.cpu_count()} CPUs\n")
    rng = np.random.default_rng(2026)
    # warm-up: libraries loaded, thread pools started, outside the timings
    warm = locations(rng, ours.dimensions, 8)
    timed(ours, warm), timed(theirs, warm)
    rates: dict[str, list[float]] = {"compat": [], "openslide": []}
    ratios = []
    for turn in range(repeats):
        calls = locations(rng, ours.dimensions, regions)
        order = [("compat", ours), ("openslide", theirs)]
        if turn % 2:
            order.reverse()
        seconds = {name: timed(slide, calls) for name, slide in order}
        for name in seconds:
            rates[name].append(regions / seconds[name])
        ratios.append(seconds["openslide"] / seconds["compat"])
    same = all(np.array_equal(np.asarray(ours.read_region(xy, 0, (SIZE, SIZE))),
                              np.asarray(theirs.read_region(xy, 0, (SIZE, SIZE))))
               for xy in locations(rng, ours.dimensions, 10))
    ratio = statistics.median(ratios)
    print("| reader | regions/s (median) | range | vs openslide-python |")
    print("|---|---:|---:|---:|")
    for name, label in (("compat", "wsikit.compat.openslide"), ("openslide", "openslide-python")):
        values = rates[name]
        vs = f"{ratio:.1f}x" if name == "compat" else "1.0x"
        print(f"| {label} | {statistics.median(values):,.0f} | {min(values):,.0f}-{max(values):,.0f} | {vs} |")
    print(f"\n- pixels of 10 random regions identical to openslide-python's (RGBA): {'yes' if same else 'NO'}")
    print(f"- goal: drop-in >= {GOAL:.0f}x openslide-python on 4-thread random 512 x 512 read_region: "
          f"{ratio:.1f}x: {'met' if ratio >= GOAL else 'NOT met'}")
    ours.close()
    theirs.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
