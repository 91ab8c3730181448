"""Tiling at a physical resolution (scaled JPEG decoding vs exact area means) and DICOM frames.

    .venv/bin/python benchmarks/scaled_decode.py [--repeats N] [--quick]

On the benchmark's 20,000 x 20,000 Aperio-style slide (benchmarks/slides.py, 256-pixel
JPEG tiles, 0.5 mpp), ``generate_tiles(shape=256)``:

* at level 0 (the reader's own rate, for reference);
* at 2x level 0's mpp (20x tiles from a 40x scan), ``resampling="fast"`` and ``"exact"``;
* at factors 1.98 and 3.96 (mpp 0.99 and 1.98), fast and exact (fast: decoded at 1/2 and
  1/4, within ``wsikit.reader.scaled.FAST_TOLERANCE``, then enlarged 1 %);
* at 3.96 from level 1 (4x), as a level tolerance of 2 % instead of ``wsikit.plan``'s 1 %
  would choose (not the default: the row shows what that choice would give);
* ``extract_region`` of 512 x 512 boxes from 4 threads: the reader's kept helper threads
  against a pool started and ended for every read (as before);

and on the benchmark's DICOM series (8,192 x 8,192, 256-pixel JPEG frames): wsikit's
``generate_tiles(256)`` against the seed's ``DICOMBackend.generate_tiles``.

All cases run in turns in one process (each repeat runs every case once, in the same
order), so that the ratios compare runs made under the same load; the table gives medians
over the repeats and the median of the per-turn ratios. Slow cases read the first rows of
their plan only (the slide repeats one picture, so the rows hold the same mix of tissue and
glass); the table says how many tiles. Prints the goals as met / NOT met.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import slides  # noqa: E402
from run import Case, load, load_seed, machine, run_in_turns, seed_dicom  # noqa: E402

#: (name, goal in tiles/s or None, what the goal says)
GOALS = {
    "2x fast": (4000.0, ">= 4,000 tiles/s at 2x (20x tiles from a 40x scan)"),
    "1.98 fast": (1500.0, ">= 1,500 tiles/s at factor 1.98"),
    "3.96 fast": (1500.0, ">= 1,500 tiles/s at factor 3.96"),
}
DICOM_GOAL = 4.0  # x the seed's DICOMBackend


def plan_reader(slide, factor: float | None, resampling: str, limit: int | None) -> Callable[[], int]:
    """A function reading (the first ``limit`` tiles of) the 256-pixel plan at ``factor`` x level 0's mpp."""
    if factor is None:
        plan = slide.tile_plan(256)
    else:
        plan = slide.tile_plan(256, mpp=factor * slide.mpp[0])
    if limit is not None and limit < len(plan):
        plan = plan.take(np.arange(limit))

    def run() -> int:
        n = 0
        for _ in slide.read_plan(plan, resampling=resampling):
            n += 1
        return n

    return run


def level_plan_reader(slide, factor: float, tolerance: float, limit: int) -> Callable[[], int]:
    """A plan at ``factor`` made with ``tolerance`` as the level tolerance (then restored), read fast."""
    import wsikit.plan as plan_module

    saved = plan_module.LEVEL_TOLERANCE
    plan_module.LEVEL_TOLERANCE = tolerance
    try:
        plan = slide.tile_plan(256, mpp=factor * slide.mpp[0])
    finally:
        plan_module.LEVEL_TOLERANCE = saved
    plan = plan.take(np.arange(min(limit, len(plan))))

    def run() -> int:
        return sum(1 for _ in slide.read_plan(plan, resampling="fast"))

    return run


class _PoolPerRead:
    """Stands in for a reader's kept helpers: every large read starts and ends its own pool."""

    def get(self, count: int) -> None:
        return None

    def close(self) -> None:
        pass


def region_reader(slide, kept: bool, reads: int, threads: int = 4) -> Callable[[], int]:
    """``reads`` extract_region calls of 512 x 512 at fixed random places, from ``threads`` threads."""
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(12)
    h, w = slide.shape[:2]
    places = [(int(rng.integers(0, h - 512)), int(rng.integers(0, w - 512))) for _ in range(reads)]
    kept_pool = slide._reader._read_pool

    def run() -> int:
        slide._reader._read_pool = kept_pool if kept else _PoolPerRead()
        slide._reader.cache.clear()
        try:
            with ThreadPoolExecutor(threads) as executor:
                return sum(1 for _ in executor.map(lambda at: slide.extract_region(at, (512, 512)), places))
        finally:
            slide._reader._read_pool = kept_pool

    return run


def wsikit_series(folder: Path) -> Callable[[], int]:
    import wsikit

    slide = wsikit.open_slide(str(folder))

    def run() -> int:
        n = 0
        for _ in slide.generate_tiles(256):
            n += 1
        return n

    return run


def difference(slide, factor: float, count: int) -> tuple[float, int]:
    """Mean and largest absolute difference (grey levels) of fast vs exact tiles."""
    plan = slide.tile_plan(256, mpp=factor * slide.mpp[0])
    plan = plan.take(np.linspace(0, len(plan) - 1, min(count, len(plan))).astype(np.int64))
    total, largest, n = 0.0, 0, 0
    for a, b in zip(slide.read_plan(plan, resampling="fast"), slide.read_plan(plan, resampling="exact")):
        d = np.abs(a.image.astype(np.int16) - b.image.astype(np.int16))
        total += float(d.sum())
        n += d.size
        largest = max(largest, int(d.max()))
    return total / max(1, n), largest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=None, help="timed turns (default 3; 2 with --quick)")
    parser.add_argument("--quick", action="store_true", help="fewer turns and tiles")
    args = parser.parse_args(argv)
    repeats = args.repeats or (2 if args.quick else 3)
    limit = 300 if args.quick else 600  # tiles of the 2x and 1.98 cases
    slow_limit = 150 if args.quick else 361  # tiles at 3.96 (361: the whole plan)

    import wsikit

    print(f"scaled JPEG decoding and DICOM frames — {machine()}")
    print(f"load average at start: {load()}\n")
    svs, origin = slides.big_svs()
    slide = wsikit.open_slide(str(svs))
    print(f"slide: {svs.name} ({origin}), {slide.shape[0]:,} x {slide.shape[1]:,}, mpp {slide.mpp[0]:g}")

    cases = [Case("svs", "level 0", plan_reader(slide, None, "fast", limit), "reader's own rate")]
    for factor, label in ((2.0, "2x"), (1.98, "1.98"), (3.96, "3.96")):
        for resampling in ("fast", "exact"):
            n = limit if factor < 3 else slow_limit
            cases.append(Case("svs", f"{label} {resampling}", plan_reader(slide, factor, resampling, n)))
    if slide.level_count > 1:
        cases.append(Case("svs", "3.96 from level 1 (2 % level tolerance)",
                          level_plan_reader(slide, 3.96, 0.02, slow_limit)))
    reads = 80 if args.quick else 200
    regions = [Case("regions", "512 x 512, 4 threads, pool per read (before)", region_reader(slide, False, reads)),
               Case("regions", "512 x 512, 4 threads, kept helpers", region_reader(slide, True, reads))]
    seed = load_seed()
    folder, dicom_file = slides.dicom_series()
    dicom = [Case("dicom", "wsikit generate_tiles", wsikit_series(folder), "whole series")]
    if seed is not None:
        dicom.insert(0, Case("dicom", "seed DICOMBackend.generate_tiles", seed_dicom(seed, dicom_file),
                             "whole file"))
    started = time.perf_counter()
    run_in_turns(cases + regions + dicom, repeats)
    print(f"{repeats} turns in {time.perf_counter() - started:.0f} s; load average now: {load()}\n")

    by_name = {case.name: case for case in cases + dicom}

    def paired(a: Case, b: Case) -> float:
        return statistics.median(x / y for x, y in zip(a.rates, b.rates))

    print("| case | tiles | tiles/s (median) | range | fast / exact |")
    print("| --- | ---: | ---: | --- | ---: |")
    for case in cases:
        ratio = ""
        if case.name.endswith("fast") and case.name.replace("fast", "exact") in by_name:
            ratio = f"{paired(case, by_name[case.name.replace('fast', 'exact')]):.2f}x"
        print(f"| {case.name} | {case.tiles} | {case.median:,.0f} | {case.spread} | {ratio} |")
    print()
    print("| extract_region | reads | reads/s (median) | range | vs pool per read |")
    print("| --- | ---: | ---: | --- | ---: |")
    for case in regions:
        vs = f"{paired(case, regions[0]):.2f}x" if case is not regions[0] else ""
        print(f"| {case.name} | {case.tiles} | {case.median:,.0f} | {case.spread} | {vs} |")
    print()
    seed_case = dicom[0] if seed is not None else None
    print("| DICOM series | tiles | tiles/s (median) | range | vs seed |")
    print("| --- | ---: | ---: | --- | ---: |")
    for case in dicom:
        vs = f"{paired(case, seed_case):.2f}x" if seed_case is not None and case is not seed_case else ""
        print(f"| {case.name} | {case.tiles} | {case.median:,.0f} | {case.spread} | {vs} |")
    print()
    print("| factor | fast vs exact: mean abs difference | largest |")
    print("| --- | ---: | ---: |")
    for factor in (2.0, 1.98, 3.96, 4.0 if slide.level_count < 2 else 8.0):
        mean, largest = difference(slide, factor, 40 if args.quick else 100)
        print(f"| {factor:g} | {mean:.3f} | {largest} |")
    print()
    for name, (goal, words) in GOALS.items():
        rate = by_name[name].median
        print(f"goal {words}: {'met' if rate >= goal else 'NOT met'} ({rate:,.0f})")
    if seed_case is not None:
        ratio = paired(dicom[1], seed_case)
        print(f"goal DICOM frames >= {DICOM_GOAL:g}x the seed's DICOMBackend: "
              f"{'met' if ratio >= DICOM_GOAL else 'NOT met'} ({ratio:.2f}x)")
    else:
        print("goal DICOM frames vs the seed: not measured (../shared/seed absent)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
