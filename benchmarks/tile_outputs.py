"""``wsikit tile`` end to end, per output format, beside the reader and libvips.

On the benchmark's 20,000 x 20,000 Aperio-style slide (``slides.big_svs``, 256-pixel JPEG
tiles, 6,084 level-0 tiles of 256), each command runs in a fresh process, in turns (one
repeat of every command, then the next repeat), and the table gives medians:

* the reader: ``generate_tiles(256)`` over the whole slide, tiles/s (in a fresh process,
  timed around the loop only);
* ``wsikit tile SLIDE --out OUT --shape 256`` with the default Zarr output (lz4), with
  ``--codec zstd``, ``--format jpeg`` (passthrough of the slide's own JPEG tiles),
  ``--format jpeg --no-passthrough`` (decoded and re-encoded), ``--format png`` and the
  default with ``--workers 2`` (a local Dask cluster, started by the command);
* ``vips dzsave SLIDE OUT --depth one --suffix .jpg --tile-size 256 --overlap 0`` (the
  same grid) when the ``vips`` command is present.

End-to-end rates are tiles / (wall time - the wall time of ``wsikit info`` on the same
slide), the process start-up taken out. Then the Dask path on a cluster already running
(1 and 2 workers: the scaling without the cluster's start-up), one large slide and three
slides; then the rate this disk creates files at (write-then-rename, no pixels: the bound
of every one-file-per-tile output); then the lossless codecs' throughput on real tiles beside the decode rate (the
bound a lossless output meets on this machine); then the goals.

``--quick``: one repeat, fewer codec samples. ``main(argv)`` returns 0.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

import slides  # noqa: E402

PYTHON = sys.executable
READER = """
import sys, time, wsikit
with wsikit.open_slide(sys.argv[1]) as slide:
    start = time.perf_counter()
    count = sum(1 for _ in slide.generate_tiles(256))
    print(count, time.perf_counter() - start)
"""


def wsikit_command(*args: str) -> list[str]:
    return [PYTHON, "-m", "wsikit.cli", *args]


def run_timed(command: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {done.stderr[-2000:]}")
    return wall, done.stdout


def disk_use(folder: Path) -> tuple[int, int]:
    """(bytes, files) under ``folder``."""
    total, files = 0, 0
    for root, _, names in os.walk(folder):
        for name in names:
            total += os.path.getsize(os.path.join(root, name))
            files += 1
    return total, files


class Command:
    """One end-to-end command: its wall times, and what it left on disk."""

    def __init__(self, name: str, make, note: str = "", repeats: int | None = None):
        self.name, self.make, self.note, self.repeats = name, make, note, repeats
        self.walls: list[float] = []
        self.bytes = self.files = 0

    def once(self, work: Path) -> None:
        out = work / "out"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        wall, _ = run_timed(self.make(out))
        self.walls.append(wall)
        self.bytes, self.files = disk_use(out)
        shutil.rmtree(out, ignore_errors=True)

    @property
    def wall(self) -> float:
        return statistics.median(self.walls)


def reader_rate(svs: Path, repeats: int) -> tuple[int, float]:
    rates, count = [], 0
    for _ in range(repeats):
        out = subprocess.run([PYTHON, "-c", READER, str(svs)], capture_output=True, text=True, check=True).stdout
        count, seconds = out.split()
        rates.append(int(count) / float(seconds))
    return int(count), statistics.median(rates)


def passthrough_identical(svs: Path, work: Path, sample: int) -> tuple[bool, int]:
    """Whether ``--format jpeg`` files decode (Pillow) to generate_tiles' pixels, on a sample."""
    import numpy as np
    from PIL import Image

    import wsikit
    from wsikit.sinks import TileOptions, tile_slide

    out = work / "check"
    shutil.rmtree(out, ignore_errors=True)
    result = tile_slide(svs, out, TileOptions(shape=256, format="jpeg"))
    same, compared = True, 0
    with wsikit.open_slide(svs) as slide:
        plan = slide.tile_plan(256)
        step = max(1, len(plan) // sample)
        positions = list(range(0, len(plan), step))
        for k, tile in zip(positions, slide.read_plan(plan.take(positions))):
            path = os.path.join(result.folder, "images", f"{tile.coords[0]}_{tile.coords[1]}.jpg")
            same &= bool(np.array_equal(np.asarray(Image.open(path).convert("RGB")), tile.image))
            compared += 1
    shutil.rmtree(out, ignore_errors=True)
    return same, compared


def file_creation_rate(work: Path, count: int, size: int) -> float:
    """Files/s of wsikit's write-then-rename of ``count`` files of ``size`` bytes into one
    folder (what one tile file costs on this disk, without any pixels), on two threads."""
    from concurrent.futures import ThreadPoolExecutor

    from wsikit.sinks.atomic import write_atomic

    folder = work / "files"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    data = os.urandom(size)
    names = [str(folder / f"{k}.jpg") for k in range(count)]
    start = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda name: write_atomic(name, data), names))
    rate = count / (time.perf_counter() - start)
    shutil.rmtree(folder, ignore_errors=True)
    return rate


def dask_scaling(svs: Path, work: Path, repeats: int) -> dict[tuple[str, int], tuple[float, float]]:
    """{(workload, workers): (seconds, CPU seconds)} on a cluster already running (workers 1
    or 2; CPU of the workers and of this process, which runs the scheduler) and in-process
    (workers 0), each cluster run right after an in-process run of the same workload.

    CPU seconds tell the two paths' cost apart from the machine's load: on a shared machine
    a process of four threads gets more of the CPU than two processes of one thread each.
    """
    import logging

    import psutil
    from distributed import Client, LocalCluster

    from wsikit.distributed import run_jobs
    from wsikit.sinks import SlideJob, TileOptions, assign_folders

    many = work / "many"
    many.mkdir(exist_ok=True)
    copies = []
    for name in ("a", "b", "c"):
        link = many / f"{name}.svs"
        if not link.exists():
            link.symlink_to(svs)
        copies.append(str(link))
    workloads = {"1 slide": [str(svs)], "3 slides": copies}
    options = TileOptions(shape=256)

    def cpu(pids: list[int]) -> float:
        return sum(sum(psutil.Process(pid).cpu_times()[:2]) for pid in pids)

    def timed(paths: list[str], pids: list[int], **how) -> tuple[float, float]:
        out = work / "dask-out"
        shutil.rmtree(out, ignore_errors=True)
        jobs = [SlideJob(p, f, options) for p, f in zip(paths, assign_folders(paths, out))]
        used = cpu(pids)
        start = time.perf_counter()
        results = run_jobs(jobs, progress=False, **how)
        seconds = time.perf_counter() - start
        used = cpu(pids) - used
        if not all(r.status == "written" for r in results):
            raise RuntimeError(f"dask run failed: {[r.reason for r in results]}")
        shutil.rmtree(out, ignore_errors=True)
        return seconds, used

    runs: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for workers in (1, 2):
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                          dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR) as cluster:
            with Client(cluster) as client:
                pids = [os.getpid()] + list(client.run(os.getpid).values())
            address = cluster.scheduler_address
            timed(workloads["1 slide"], pids, scheduler=address)  # warm-up: imports on the workers
            for name, paths in workloads.items():
                for _ in range(repeats):
                    runs.setdefault((name, 0), []).append(timed(paths, [os.getpid()]))
                    runs.setdefault((name, workers), []).append(timed(paths, pids, scheduler=address))
    return {key: (statistics.median(s for s, _ in values), statistics.median(c for _, c in values))
            for key, values in runs.items()}


def codec_table(svs: Path, sample: int) -> list[tuple[str, float, float, float]]:
    """(codec, tiles/s per core, MB/s per core, ratio) on real tiles, one thread; first the decode rate."""
    import itertools

    import imagecodecs
    import numpy as np

    import wsikit

    with wsikit.open_slide(svs) as slide:
        plan = slide.tile_plan(256)
        start = len(plan) // 3
        tiles = [t.image for t in itertools.islice(slide.read_plan(plan.take(range(start, start + sample))), sample)]
        started = time.perf_counter()
        for _ in slide.read_plan(plan.take(range(start, start + sample)), workers=1):
            pass
        decode = sample / (time.perf_counter() - started)
    raw = sum(t.nbytes for t in tiles)
    candidates = {
        "blosc lz4 clevel 1 (default)": lambda t: imagecodecs.blosc_encode(t, level=1, compressor="lz4", shuffle=0,
                                                                           typesize=1, numthreads=1),
        "blosc lz4 clevel 5": lambda t: imagecodecs.blosc_encode(t, level=5, compressor="lz4", shuffle=0,
                                                                 typesize=1, numthreads=1),
        "zstd level 1 (--codec zstd)": lambda t: imagecodecs.zstd_encode(t, level=1),
        "zstd level 3 (before)": lambda t: imagecodecs.zstd_encode(t, level=3),
        "blosc zstd 1 + bitshuffle": lambda t: imagecodecs.blosc_encode(t, level=1, compressor="zstd", shuffle=2,
                                                                        typesize=1, numthreads=1),
        "PNG zlib 1 (Pillow)": None,
    }
    rows = [("reader, 1 thread (decode)", decode, decode * raw / len(tiles) / 1e6, float("nan"))]
    for name, encode in candidates.items():
        if encode is None:
            from wsikit.sinks.writers.image_files import encode_png as encode
        encode(tiles[0])
        started = time.perf_counter()
        size = sum(len(encode(np.ascontiguousarray(t))) for t in tiles)
        seconds = time.perf_counter() - started
        rows.append((name, len(tiles) / seconds, raw / seconds / 1e6, raw / size))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one repeat, fewer samples")
    args = parser.parse_args(argv)
    repeats = 1 if args.quick else args.repeats
    svs, origin = slides.big_svs()
    print(f"slide: {svs.name} ({origin}); machine: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}\n")
    work = Path(tempfile.mkdtemp(prefix="wsikit-outputs-"))
    try:
        return _run(svs, work, repeats, args.quick)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run(svs: Path, work: Path, repeats: int, quick: bool) -> int:
    s = str(svs)
    tile = ["tile", s, "--shape", "256", "--quiet"]
    commands = [
        Command("wsikit info (start-up)", lambda out: wsikit_command("info", s)),
        Command("tile, zarr (default: lz4, shards)", lambda out: wsikit_command(*tile, "--out", str(out))),
        Command("tile, zarr --codec zstd", lambda out: wsikit_command(*tile, "--out", str(out), "--codec", "zstd")),
        Command("tile, jpeg (passthrough)", lambda out: wsikit_command(*tile, "--out", str(out), "--format", "jpeg")),
        Command("tile, jpeg --no-passthrough (q90)",
                lambda out: wsikit_command(*tile, "--out", str(out), "--format", "jpeg", "--no-passthrough")),
        Command("tile, png (zlib 1)", lambda out: wsikit_command(*tile, "--out", str(out), "--format", "png"),
                note="one run (slow)", repeats=1),
        Command("tile, zarr, --workers 2 (Dask)",
                lambda out: wsikit_command(*tile, "--out", str(out), "--workers", "2"),
                note="cluster start-up included"),
    ]
    if shutil.which("vips"):
        commands.append(Command("vips dzsave --depth one --suffix .jpg", lambda out: [
            "vips", "dzsave", s, str(out / "vips"), "--depth", "one", "--suffix", ".jpg", "--tile-size", "256",
            "--overlap", "0"], note="libvips, same grid", repeats=1))
    for k in range(repeats):
        for command in commands:
            if command.repeats is None or k < command.repeats:
                command.once(work)
    tiles, reader = reader_rate(svs, repeats)
    startup = commands[0].wall
    print(f"reader generate_tiles(256), workers=all: {reader:,.0f} tiles/s ({tiles:,} tiles; median of {repeats})")
    print(f"start-up (wsikit info): {startup:.2f} s\n")
    print("| command | wall s (median) | tiles/s | vs reader | MB on disk | files | tiles per file | note |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    rates = {}
    for command in commands[1:]:
        rate = tiles / max(command.wall - startup, 1e-3)
        rates[command.name] = rate
        per_file = tiles / command.files if command.files else float("nan")
        print(f"| {command.name} | {command.wall:.2f} | {rate:,.0f} | {rate / reader:.2f}x "
              f"| {command.bytes / 1e6:,.0f} | {command.files:,} | {per_file:,.0f} | {command.note} |")

    passthrough_command = next(c for c in commands if c.name == "tile, jpeg (passthrough)")
    files_rate = statistics.median(file_creation_rate(work, tiles, passthrough_command.bytes // tiles)
                                   for _ in range(repeats))
    print(f"\nfile creation on this disk (write-then-rename of {tiles:,} files of "
          f"{passthrough_command.bytes // tiles:,} bytes, 2 threads, no pixels): {files_rate:,.0f} files/s = "
          f"{files_rate / reader:.1f}x the reader's tiles/s: the bound of any one-file-per-tile output")
    same, compared = passthrough_identical(svs, work, 60 if quick else 300)
    print(f"\npassthrough JPEG decoded by Pillow == generate_tiles: {'identical' if same else 'DIFFERENT'} "
          f"({compared} tiles compared)")

    print("\nDask on a cluster already running (start-up excluded), zarr output: wall seconds and CPU seconds "
          "(medians; each cluster run right after an in-process run):\n")
    print("| workload | in-process | 1 worker | 2 workers | 2 workers vs in-process, wall | CPU, in-process "
          "| CPU, 2 workers | CPU ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    scaling = dask_scaling(svs, work, repeats)
    for name in ("1 slide", "3 slides"):
        (here, here_cpu), (one, _), (two, two_cpu) = (scaling[name, w] for w in (0, 1, 2))
        print(f"| {name} | {here:.2f} | {one:.2f} | {two:.2f} | {here / two:.2f}x | {here_cpu:.2f} | {two_cpu:.2f} "
              f"| {two_cpu / here_cpu:.2f} |")

    print("\nlossless codecs on real tiles, one thread (decode rate first):\n")
    print("| codec | tiles/s per core | MB/s per core | ratio |")
    print("|---|---:|---:|---:|")
    for name, per_core, mbs, ratio in codec_table(svs, 100 if quick else 400):
        print(f"| {name} | {per_core:,.0f} | {mbs:,.0f} | {'-' if ratio != ratio else f'{ratio:.2f}'} |")

    zarr = next(c for c in commands if c.name.startswith("tile, zarr (default"))
    dask = next(c for c in commands if "--workers 2" in c.name)
    passthrough = rates["tile, jpeg (passthrough)"]
    print("\ngoals\n")
    goal(f"zarr default: {rates[zarr.name] / reader:.0%} of the reader's tiles/s (goal >= 60%)",
         rates[zarr.name] >= 0.6 * reader)
    goal(f"zarr default: {zarr.files} files for {tiles:,} tiles (goal <= {tiles // 100})", zarr.files <= tiles / 100)
    goal(f"jpeg passthrough: {passthrough / reader:.1f}x the reader's tiles/s (goal >= 3x; creating the files alone "
         f"runs at {files_rate / reader:.1f}x)", passthrough >= 3 * reader)
    goal("jpeg passthrough pixels identical to generate_tiles", same)
    here, two = scaling["1 slide", 0][0], scaling["1 slide", 2][0]
    goal(f"Dask, cluster running, one slide: 2 workers {here / two:.2f}x in-process (goal >= 1x)", two <= here)
    goal(f"wsikit tile --workers 2 (cluster start-up included): {zarr.wall / dask.wall:.2f}x in-process "
         "(goal >= 1x)", dask.wall <= zarr.wall)
    return 0


def goal(text: str, met: bool) -> None:
    print(f"- [{'x' if met else ' '}] {text}: {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    sys.exit(main())
