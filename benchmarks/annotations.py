"""Benchmark: tile masks and labels from annotations, against tiling without them.

    .venv/bin/python benchmarks/annotations.py [--repeats N] [--polygons N] [--vertices N]

The benchmark slide (20,000 x 20,000, benchmarks/slides.py) is tiled into 256-pixel tiles
at level 0 with ``generate_tiles`` (all cores), once without annotations and once with
1,000 random polygons of about 200 vertices each (a third with holes, two classes, many
overlapping), every tile's masks and labels filled. Runs alternate; medians are compared.
Also timed: reading the polygons from GeoJSON, and planning with labels alone.
Goal (issue 16): masks and labels cost at most 20 % of the tiling time without them.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
if str(HERE.parent / "src") not in sys.path:
    sys.path.insert(0, str(HERE.parent / "src"))

GOAL_OVERHEAD = 0.20


def _tiling(slide, **options) -> tuple[float, float, int, int]:
    """Seconds (wall, CPU of the process) to read every tile (touching masks and labels),
    tiles, mask pixels sampled inside."""
    start, cpu = time.perf_counter(), time.process_time()
    count = inside = 0
    for tile in slide.generate_tiles(256, **options):
        count += 1
        for mask in tile.masks.values():
            inside += int(mask[::64, ::64].sum())  # touch each mask without timing a full pass over it
    return time.perf_counter() - start, time.process_time() - cpu, count, inside


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--polygons", type=int, default=1000)
    parser.add_argument("--vertices", type=int, default=200)
    args = parser.parse_args(argv)

    import slides

    import wsikit
    from wsikit.samples.annotations import random_polygons, write_geojson

    path, description = slides.big_svs()
    slide = wsikit.open_slide(str(path))
    h, w = slide.level_shapes[0]
    polygons = random_polygons((h, w), ("tumour", "stroma"), count=args.polygons, radius=(0.005, 0.02),
                               vertices=args.vertices, seed=1)
    vertices = sum(len(p.exterior.coords) + sum(len(r.coords) for r in p.interiors) for ps in polygons.values()
                   for p in ps)
    with tempfile.TemporaryDirectory() as tmp:
        geojson = write_geojson(Path(tmp) / "bench.geojson", polygons)
        start = time.perf_counter()
        annotations = wsikit.read_annotations(geojson)
        read_seconds = time.perf_counter() - start

    start = time.perf_counter()
    plan = slide.tile_plan(256, annotations=annotations)
    plan_seconds = time.perf_counter() - start
    covered = float((plan.labels.fractions > 0).any(axis=1).mean())

    plain: list[float] = []
    labelled: list[float] = []
    ratios: list[float] = []
    cpu_ratios: list[float] = []
    tiles = inside = 0
    _tiling(slide)  # warm the file cache
    for _ in range(args.repeats):
        a, cpu_a, tiles, _ = _tiling(slide)
        b, cpu_b, _, inside = _tiling(slide, annotations=annotations)
        plain.append(a)
        labelled.append(b)
        ratios.append(b / a)
        cpu_ratios.append(cpu_b / cpu_a)
    overhead = statistics.median(ratios) - 1
    cpu_overhead = statistics.median(cpu_ratios) - 1

    print(f"annotations benchmark: {path.name} ({description}), {h:,} x {w:,}, 256-pixel tiles at level 0\n")
    print(f"{args.polygons:,} polygons, {vertices:,} vertices, 2 classes; {covered:.0%} of the tiles touch one; "
          f"read from GeoJSON in {read_seconds:.2f} s; plan with labels alone {plan_seconds:.2f} s\n")
    print("| tiling | tiles | seconds (median) | tiles/s | vs plain |")
    print("|---|---:|---:|---:|---:|")
    tp, tl = statistics.median(plain), statistics.median(labelled)
    print(f"| generate_tiles, no annotations | {tiles:,} | {tp:.2f} | {tiles / tp:,.0f} | 1.00x |")
    print(f"| generate_tiles(annotations=...), masks + labels | {tiles:,} | {tl:.2f} | {tiles / tl:,.0f} | "
          f"{1 + overhead:.2f}x |")
    print(f"\nCPU time of the process (all threads): masks + labels add {cpu_overhead:+.0%}, a measure less "
          "sensitive to other load on the machine than wall time")
    print(f"(mask pixels sampled inside: {inside:,}; ratios = medians of per-turn ratios, {args.repeats} turns)")
    met = overhead <= GOAL_OVERHEAD
    print(f"\n- goal masks + labels cost <= {GOAL_OVERHEAD:.0%} of the tiling time: "
          f"{'met' if met else 'NOT met'} ({overhead:+.0%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
