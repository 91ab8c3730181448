"""``make bench``: wsikit's tiling speed and memory, side by side with the other ways.

One run measures, on this machine, a 20,000 x 20,000 Aperio-style slide of 256-pixel JPEG
tiles (real H&E repeated; see ``slides.py``; built once and cached outside the repository):

* level-0 tiles of 256 (aligned with the native tiles) and 224 (unaligned), in tiles/s:
  the seed's way (its OpenSlideBackend.generate_tiles: one OpenSlide read_region per tile
  on one core), openslide-python with a thread pool, tiffslide, the raw decode bound
  (libjpeg-turbo through imagecodecs on the slide's own tile bytes, on every core, nothing
  else) and wsikit with every core and with one;
* a DICOM series of the same pixels: wsikit vs the seed's DICOMBackend.generate_tiles;
* peak RSS of a fresh process tiling a 50,000 x 50,000 and a 10,000 x 10,000 slide;
* that every parallel read gives the pixels of the sequential one;
* then the outer layers, one script each in a fresh process (``SECTIONS``): ``wsikit tile``
  per output format, tiling at a physical resolution, remote slides, DICOMweb, the viewer,
  the openslide-python drop-in, annotations (``--sections NAME...`` to choose,
  ``--only-sections`` to skip the reader's tables).

Methods are run in turns (one repeat of each, then the next repeat), so that a busy spell
on a shared machine hits all of them; the table gives medians. Slow methods read a sample
of whole tile rows covering two periods of the repeated picture. Options: ``--repeats N``,
``--quick`` (fewer repeats and smaller samples, for a smoke test).
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
SEED = HERE.parents[1] / "shared" / "seed"

import slides  # noqa: E402


# -- helpers ------------------------------------------------------------------------------

def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    except (ValueError, OSError, AttributeError):
        memory = float("nan")
    return f"{model}, {cores()} cores available, {memory:.0f} GiB RAM, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def load() -> str:
    try:
        return " ".join(open("/proc/loadavg").read().split()[:3])
    except OSError:
        return "?"


def bounded_map(fn, items, workers: int, lookahead: int = 32):
    """In-order map on a thread pool with a bounded queue (for the methods wsikit is compared with)."""
    from collections import deque

    with ThreadPoolExecutor(workers) as pool:
        pending = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= lookahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def grid_locations(shape, tile: int, rows: int | None = None) -> list[tuple[int, int]]:
    """The seed's grid without padding, row-major; only the first ``rows`` rows when given."""
    n_i, n_j = (shape[0] - tile) // tile + 1, (shape[1] - tile) // tile + 1
    if rows is not None:
        n_i = min(n_i, rows)
    return [(r * tile, c * tile) for r in range(n_i) for c in range(n_j)]


class Case:
    """One method on one workload: a function that reads and returns how many tiles it read."""

    def __init__(self, group: str, name: str, run, note: str = ""):
        self.group, self.name, self.run, self.note = group, name, run, note
        self.rates: list[float] = []
        self.tiles = 0

    def once(self) -> None:
        start = time.perf_counter()
        tiles = self.run()
        seconds = time.perf_counter() - start
        self.tiles = tiles
        self.rates.append(tiles / seconds)

    @property
    def median(self) -> float:
        return statistics.median(self.rates) if self.rates else float("nan")

    @property
    def spread(self) -> str:
        if len(self.rates) < 2:
            return ""
        return f"{min(self.rates):,.0f}-{max(self.rates):,.0f}"


def run_in_turns(cases: list[Case], repeats: int) -> None:
    for case in cases:  # warm-up: file cache, imports, lazy initialisation
        case.run()
    for _ in range(repeats):
        for case in cases:
            case.once()


# -- the methods --------------------------------------------------------------------------

def load_seed():
    if not (SEED / "load_seed.py").exists():
        return None
    sys.path.insert(0, str(SEED))
    import logging

    from load_seed import load_seed as _load

    seed = _load()
    try:  # the seed logs every file it opens through loguru: keep the table readable
        from loguru import logger

        logger.remove()
    except Exception:
        pass
    logging.getLogger().setLevel(logging.WARNING)
    return seed


def seed_tiles(seed, path, tile: int, limit: int):
    backend = seed.OpenSlideBackend(str(path))

    def run():
        n = 0
        for _ in itertools.islice(backend.generate_tiles(shape=tile, stride=tile, pad=False, level=0), limit):
            n += 1
        return n

    return run


def openslide_pool(path, locations, tile: int, workers: int):
    import openslide

    slide = openslide.OpenSlide(str(path))

    def read(location):
        i, j = location
        return np.asarray(slide.read_region((j, i), 0, (tile, tile)).convert("RGB"))

    def run():
        n = 0
        for _ in bounded_map(read, locations, workers):
            n += 1
        return n

    return run


def tiffslide_tiles(path, locations, tile: int):
    import tiffslide

    slide = tiffslide.TiffSlide(str(path))

    def run():
        n = 0
        for i, j in locations:
            slide.read_region((j, i), 0, (tile, tile), as_array=True)
            n += 1
        return n

    return run


def decode_bound(path, workers: int):
    """Decode every level-0 tile's own bytes (read beforehand) on ``workers`` threads."""
    import imagecodecs
    import tifffile

    with tifffile.TiffFile(str(path)) as tif:
        page = tif.pages[0]
        tables = page.jpegtables
        with open(path, "rb") as f:
            data = []
            for offset, count in zip(page.dataoffsets, page.databytecounts):
                f.seek(int(offset))
                data.append(f.read(int(count)))
        from tifffile.tifffile import jpeg_decode_colorspace

        colorspace, outcolorspace = jpeg_decode_colorspace(page.photometric, page.planarconfig, page.extrasamples,
                                                           page.is_jfif)
    chunks = [data[k::workers] for k in range(workers)]

    def work(chunk):
        for tile in chunk:
            imagecodecs.jpeg8_decode(tile, tables=tables, colorspace=colorspace, outcolorspace=outcolorspace)

    def run():
        if workers == 1:
            work(data)
        else:
            with ThreadPoolExecutor(workers) as pool:
                list(pool.map(work, chunks))
        return len(data)

    return run, len(data)


def read_decode_bound(path, workers: int):
    """Read each level-0 tile's bytes from the file (os.pread) and decode them, on ``workers`` threads."""
    import imagecodecs
    import tifffile
    from tifffile.tifffile import jpeg_decode_colorspace

    with tifffile.TiffFile(str(path)) as tif:
        page = tif.pages[0]
        tables = page.jpegtables
        spans = [(int(o), int(c)) for o, c in zip(page.dataoffsets, page.databytecounts)]
        colorspace, outcolorspace = jpeg_decode_colorspace(page.photometric, page.planarconfig, page.extrasamples,
                                                           page.is_jfif)
    fd = os.open(str(path), os.O_RDONLY)

    def work(chunk):
        for offset, count in chunk:
            imagecodecs.jpeg8_decode(os.pread(fd, count, offset), tables=tables, colorspace=colorspace,
                                     outcolorspace=outcolorspace)

    def run():
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(work, [spans[k::workers] for k in range(workers)]))
        return len(spans)

    return run


def wsikit_tiles(path, tile: int, workers: int | None, **options):
    import wsikit

    slide = wsikit.open_slide(str(path))

    def run():
        n = 0
        for _ in slide.generate_tiles(tile, workers=workers, **options):
            n += 1
        return n

    return run


def seed_dicom(seed, path):
    backend = seed.DICOMBackend(str(path))

    def run():
        n = 0
        for _ in backend.generate_tiles(256, None, False):
            n += 1
        return n

    return run


# -- checks and memory --------------------------------------------------------------------

def same_pixels(path, workers: int, **grid) -> tuple[bool, int]:
    """Parallel tiling equals sequential tiling, tile by tile (coordinates and pixels)."""
    import wsikit

    with wsikit.open_slide(str(path)) as a, wsikit.open_slide(str(path)) as b:
        n = 0
        for x, y in itertools.zip_longest(a.generate_tiles(workers=workers, **grid), b.generate_tiles(workers=1, **grid)):
            if x is None or y is None or x.coords != y.coords or not np.array_equal(x.image, y.image):
                return False, n
            n += 1
    return True, n


def same_as_openslide(path, tile: int, count: int) -> tuple[bool, int]:
    """wsikit's tiles equal OpenSlide's read_region for a sample spread over the slide."""
    import openslide

    import wsikit

    reference = openslide.OpenSlide(str(path))
    with wsikit.open_slide(str(path)) as slide:
        plan = slide.tile_plan(tile)
        sample = plan[:: max(1, len(plan) // count)]
        for t in slide.read_plan(sample):
            i, j = t.coords
            expected = np.asarray(reference.read_region((j, i), 0, (tile, tile)).convert("RGB"))
            if not np.array_equal(t.image, expected):
                return False, len(sample)
    return True, len(sample)


def peak_rss(path, tile: int, streamed: bool = False) -> dict:
    command = [sys.executable, str(HERE / "peak_rss.py"), str(path), str(tile)] + (["--streamed-plan"] if streamed else [])
    out = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- the run ------------------------------------------------------------------------------

def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats of each method (default 7; 2 with --quick)")
    parser.add_argument("--quick", action="store_true", help="a smoke test: fewer repeats, smaller samples")
    parser.add_argument("--sections", nargs="*", default=list(SECTIONS), choices=list(SECTIONS), metavar="NAME",
                        help=f"which outer-layer sections to run after the reader's tables (default all: "
                             f"{', '.join(SECTIONS)})")
    parser.add_argument("--only-sections", action="store_true", help="skip the reader's tables")
    args = parser.parse_args(argv)
    repeats = args.repeats or (2 if args.quick else 7)
    if args.only_sections:
        print(f"wsikit benchmark — {machine()}")
        run_sections(args.sections, quick=args.quick)
        return 0
    started = time.perf_counter()
    workers = cores()

    print(f"wsikit benchmark — {machine()}")
    print(f"load average at start: {load()}\n")
    t = time.perf_counter()
    svs, origin = slides.big_svs()
    small_rss, large_rss = slides.shared_tile_tiff(10000), slides.shared_tile_tiff(50000)
    source_rows = slides.source_image()[0].shape[0]
    print(f"slide: {svs} ({origin}); slides ready in {time.perf_counter() - t:.1f} s")

    import wsikit

    with wsikit.open_slide(str(svs)) as probe:
        shape = probe.shape
        grid0 = probe._level_grid(0)
        native = grid0.tile_shape if grid0 is not None else None
    print(f"level 0: {shape[0]:,} x {shape[1]:,} pixels, native tiles {native}\n")

    seed = load_seed()
    # Slow methods read whole tile rows covering two periods of the repeated picture, so
    # that their sample holds the same mix of tissue and glass as the whole slide.
    periods = 1 if args.quick else 2

    cases: list[Case] = []
    bound_run, native_count = decode_bound(svs, workers)
    bound = Case("256", f"decode bound ({workers} threads)", bound_run, "imagecodecs on the tiles' own bytes")
    bound1 = Case("256", "decode bound (1 thread)", decode_bound(svs, 1)[0], "")
    for tile in (256, 224):
        group = str(tile)
        rows = max(1, round(periods * source_rows / tile))
        locations = grid_locations(shape, tile, rows)
        # Within a turn, each pair compared in the table runs back to back (seed, wsikit,
        # bound): on a shared machine the ratios are taken per turn, then their median.
        if seed is not None:
            cases.append(Case(group, "seed OpenSlideBackend.generate_tiles", seed_tiles(seed, svs, tile, len(locations)),
                              f"first {rows} rows, 1 core"))
        cases.append(Case(group, "wsikit generate_tiles, workers=all", wsikit_tiles(svs, tile, None), "whole slide"))
        if tile == 256:
            cases += [bound, Case(group, f"read + decode bound ({workers} threads)", read_decode_bound(svs, workers),
                                  "os.pread + imagecodecs, nothing kept"), bound1]
        cases.append(Case(group, "wsikit generate_tiles, workers=1", wsikit_tiles(svs, tile, 1), "whole slide"))
        cases.append(Case(group, f"openslide-python, {workers}-thread pool", openslide_pool(svs, locations, tile, workers),
                          f"first {rows} rows"))
        cases.append(Case(group, "tiffslide read_region", tiffslide_tiles(svs, locations, tile), f"first {rows} rows, 1 thread"))

    dicom_cases: list[Case] = []
    dicom_note = ""
    try:
        import wsikit.backends.dicom  # noqa: F401

        folder, dicom_file = slides.dicom_series()
        if seed is not None:
            dicom_cases.append(Case("dicom", "seed DICOMBackend.generate_tiles", seed_dicom(seed, dicom_file),
                                    "whole file (it skips the last row and column)"))
        dicom_cases.append(Case("dicom", "wsikit generate_tiles, workers=all", wsikit_tiles(folder, 256, None), "whole series"))
        dicom_cases.append(Case("dicom", "wsikit generate_tiles, workers=1", wsikit_tiles(folder, 256, 1), "whole series"))
        dicom_note = f"{folder.name}: written by wsikit.samples.dicom.write_dicom_series (JPEG baseline, 256-pixel frames)"
    except ImportError as exc:
        dicom_note = f"skipped: wsikit.backends.dicom does not import ({exc})"

    print(f"timing {len(cases) + len(dicom_cases)} cases x {repeats} repeats, in turns ...", flush=True)
    run_in_turns(cases + dicom_cases, repeats)

    # -- tables --
    def paired(case: Case, reference: Case | None, factor: float = 1.0) -> float | None:
        """Median over turns of case / reference measured in the same turn."""
        if reference is None or not reference.rates:
            return None
        return statistics.median(a / (b * factor) for a, b in zip(case.rates, reference.rates))

    def row(case: Case, seed_case: Case | None, bound_case: Case | None, factor: float = 1.0) -> str:
        vs_seed, vs_bound = paired(case, seed_case), paired(case, bound_case, factor)
        ratio = f"{vs_seed:5.1f}x" if vs_seed else "    -"
        share = f"{vs_bound:5.0%}" if vs_bound else "    -"
        return f"| {case.name:<40} | {case.tiles:>6,} | {case.median:>9,.0f} | {case.spread:>15} | {ratio:>8} | {share:>8} | {case.note} |"

    header = ("| method | tiles | tiles/s (median) | range | vs seed | vs bound | sample |\n"
              "|---|---:|---:|---:|---:|---:|---|")
    results: dict = {}
    lines = ["\nratios are medians of ratios measured in the same turn (the pairs run back to back)"]
    for tile in ("256", "224"):
        group = [c for c in cases if c.group == tile]
        seed_case = next((c for c in group if c.name.startswith("seed")), None)
        # The bound for unaligned tiles: the native tiles they need, decoded once each.
        n_tiles = len(grid_locations(shape, int(tile)))
        factor = 1.0 if tile == "256" else n_tiles / native_count
        title = ("aligned 256-pixel tiles" if tile == "256" else "unaligned 224-pixel tiles") + " at level 0"
        lines.append(f"\n{title} (decode bound: {bound.median * factor:,.0f} tiles/s"
                     + ("" if tile == "256" else f" = native-tile bound x {n_tiles:,} tiles / {native_count:,} native tiles")
                     + ")\n")
        lines.append(header)
        for case in group:
            lines.append(row(case, seed_case, bound, factor))
        fast = next(c for c in group if c.name.endswith("workers=all"))
        results[tile] = {"seed": paired(fast, seed_case), "bound": paired(fast, bound, factor)}
    if dicom_cases:
        seed_case = next((c for c in dicom_cases if c.name.startswith("seed")), None)
        lines.append(f"\nDICOM series, 256-pixel frames ({dicom_note})\n")
        lines.append(header)
        for case in dicom_cases:
            lines.append(row(case, seed_case, None))
        fast = next(c for c in dicom_cases if c.name.endswith("workers=all"))
        results["dicom"] = {"seed": paired(fast, seed_case)}
    else:
        lines.append(f"\nDICOM: {dicom_note}")
    print("\n".join(lines), flush=True)
    scaling = bound.median / bound1.median if bound1.median else float("nan")
    print(f"\nparallel decoding scaled {scaling:.2f}x from 1 to {workers} threads (decode bound rows)"
          + ("" if scaling >= 0.8 * workers else
             f": other work held the cores part of the time, so every parallel row above is low; rerun when the "
             f"machine is quiet (load average now {load()})"), flush=True)

    # -- memory --
    print("\npeak RSS of a fresh process tiling a whole slide, workers=all (slides whose tiles all hold the same "
          "stored JPEG of tissue)\n", flush=True)
    print("| slide | call | tiles | peak RSS | after opening | seconds |\n|---|---|---:|---:|---:|---:|")
    memory = {}
    for tile, streamed in ((256, False), (224, False), (256, True), (224, True)):
        for size, path in ((10000, small_rss), (50000, large_rss)):
            m = peak_rss(path, tile, streamed)
            memory[(tile, streamed, size)] = m["peak_mib"]
            call = "read_plan(generator of TileSpecs)" if streamed else "generate_tiles"
            print(f"| {size:,} x {size:,}, tiles of {tile} | {call} | {m['tiles']:,} | {m['peak_mib']:,.0f} MiB | "
                  f"{m['opened_mib']:,.0f} MiB | {m['seconds']:.1f} |", flush=True)

    # -- pixels --
    print("\npixels\n")
    checks = {}
    for name, path, grid in (
        ("aligned 256, level 0", svs, dict(shape=256)),
        ("unaligned 224, level 0", svs, dict(shape=224)),
        ("overlapping 300/200 padded, level 1", svs, dict(shape=300, stride=200, pad=True, level=1)),
    ) + ((("DICOM 256 padded", slides.dicom_series()[0], dict(shape=256, pad=True)),) if dicom_cases else ()):
        ok, n = same_pixels(path, workers, **grid)
        checks[name] = ok
        print(f"- parallel == sequential, {name}: {'identical' if ok else 'DIFFERENT'} ({n:,} tiles compared)")
    ok, n = same_as_openslide(svs, 256, 200 if not args.quick else 50)
    print(f"- wsikit == OpenSlide read_region, aligned 256 sample: {'identical' if ok else 'different'} ({n} tiles)")

    # -- goals --
    print("\ngoals\n")
    goals = []

    def goal(text: str, ok: bool | None) -> None:
        goals.append(ok)
        print(f"- [{'x' if ok else ' '}] {text}{'' if ok is not None else ' (not measured)'}")

    a, u = results["256"], results["224"]
    if a["seed"]:
        goal(f"aligned 256: {a['seed']:.1f}x the seed (goal >= 10x)", a["seed"] >= 10)
        goal(f"unaligned 224: {u['seed']:.1f}x the seed (goal >= 8x)", u["seed"] >= 8)
    goal(f"aligned 256: {a['bound']:.0%} of the decode bound (goal >= 80%)", a["bound"] >= 0.8)
    if results.get("dicom", {}).get("seed"):
        d = results["dicom"]["seed"]
        goal(f"DICOM: {d:.1f}x the seed's DICOMBackend (goal >= 4x)", d >= 4)
    else:
        goal("DICOM >= 4x the seed", None)
    for streamed in (False, True):
        big, small = memory[(256, streamed, 50000)], memory[(256, streamed, 10000)]
        call = "read_plan of a streamed plan" if streamed else "generate_tiles"
        goal(f"peak RSS tiling 50,000 x 50,000 with {call}: {big:,.0f} MiB (goal < 1 GB), {big / small - 1:+.0%} "
             f"vs 10,000 x 10,000 (goal within 10%)", big < 1000 and abs(big / small - 1) <= 0.1)
    goal("pixels of every parallel read identical to the sequential path", all(checks.values()))
    run_sections(args.sections, quick=args.quick)
    print(f"\nload average at end: {load()}; total {time.perf_counter() - started:.0f} s")
    return 0


# The benchmarks of the outer layers, each its own script (one section of the report):
# run in a fresh process each, so that one's threads, caches and servers do not disturb
# the next one's timings.
SECTIONS = {
    "outputs": ("tile_outputs.py", "wsikit tile end to end, per output format"),
    "resolution": ("scaled_decode.py", "tiling at a physical resolution; DICOM frames"),
    "remote": ("remote.py", "remote slides over HTTP and S3, 20 ms per request"),
    "dicomweb": ("dicomweb.py", "DICOMweb from Orthanc, 20 ms per request"),
    "viewer": ("viewer.py", "the viewer's DZI tiles"),
    "compat": ("compat.py", "the openslide-python drop-in"),
    "annotations": ("annotations.py", "masks and labels from annotations"),
}


def run_sections(names: list[str], quick: bool) -> None:
    for name in names:
        script, title = SECTIONS[name]
        path = HERE / script
        print(f"\n## {title} (benchmarks/{script})\n", flush=True)
        if not path.exists():
            print(f"- section {name}: benchmarks/{script} is missing", flush=True)
            continue
        started = time.perf_counter()
        code = subprocess.call([sys.executable, str(path)] + (["--quick"] if quick else []), cwd=HERE.parent)
        print(f"\n(section {name}: exit status {code}, {time.perf_counter() - started:.0f} s)", flush=True)


if __name__ == "__main__":
    sys.exit(main())
