"""Remote slides: tiling the benchmark slide over HTTP (nginx) and S3 (moto) with 20 ms
added to every request by a latency proxy, against the local file and tiffslide.

Measured, on this machine, for the 20,000 x 20,000 slide of ``slides.big_svs`` (aligned
256-pixel tiles of level 0, every core):

* wsikit on the local file; wsikit over ``http://`` through the proxy; wsikit over ``s3://``
  through the proxy (moto's server behind it); tiffslide on the same http URL through
  fsspec with its default options (row-major ``read_region`` per tile; a sample of whole
  tile rows, bounded in time, as it is much slower);
* requests per tile (nginx's access log) and the round trips of opening the slide (the
  time to open through the proxy less the time without it, in units of the added delay).

Runs are taken in turns and the table gives medians. ``--quick``: one repeat, smaller samples.
Goals (issue 13): remote >= 50% of local tiles/s, >= 4x tiffslide, < 0.05 requests per
tile, <= 3 round trips to open.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import slides  # noqa: E402

DELAY_MS = 20.0


def tile_all(slide: object, limit_seconds: float | None = None) -> tuple[int, float]:
    """(tiles, seconds) of reading every level-0 tile of 256 (aligned), every core."""
    start = time.perf_counter()
    count = 0
    for _ in slide.generate_tiles(256):  # type: ignore[attr-defined]
        count += 1
    return count, time.perf_counter() - start


def tiffslide_rows(url: str, shape: tuple[int, int], seconds: float) -> tuple[int, float]:
    """(tiles, seconds) of tiffslide reading whole rows of 256-pixel tiles row-major through
    fsspec's defaults, stopping after the row in which ``seconds`` ran out."""
    import tiffslide

    start = time.perf_counter()
    slide = tiffslide.TiffSlide(url)
    count = 0
    for i in range(0, shape[0] - 255, 256):
        for j in range(0, shape[1] - 255, 256):
            slide.read_region((j, i), 0, (256, 256))
            count += 1
        if time.perf_counter() - start > seconds:
            break
    seconds_taken = time.perf_counter() - start
    slide.close()
    return count, seconds_taken


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args(argv)
    repeats = args.repeats or (1 if args.quick else 3)

    import wsikit
    from tests.servers.latency_proxy import LatencyProxy
    from tests.servers.nginx import NginxServer, nginx_path
    from tests.servers.s3 import S3Server, moto_available

    if nginx_path() is None:
        print("- nginx is not installed: no remote benchmark (apt-get install nginx-light)")
        return 1
    path, origin = slides.big_svs()
    folder = tempfile.mkdtemp(prefix="wsikit-remote-bench-")
    os.symlink(path, os.path.join(folder, "bench.svs"))
    print(f"slide: {path.name} ({origin}), {path.stat().st_size / 1e6:.0f} MB; {DELAY_MS:g} ms added per request\n")
    rates: dict[str, list[float]] = {"local": [], "http": [], "s3": [], "tiffslide": []}
    per_tile: list[float] = []
    opens: list[float] = []
    open_requests: list[int] = []
    with NginxServer(folder) as nginx, LatencyProxy(nginx.port, DELAY_MS) as proxy:
        url = f"http://127.0.0.1:{proxy.port}/bench.svs"
        direct = f"http://127.0.0.1:{nginx.port}/bench.svs"
        s3 = None
        if moto_available():
            s3 = S3Server(own_process=True).start()
            s3.put(path, "bench.svs")
            s3_proxy = LatencyProxy(s3.port, DELAY_MS).start()
            s3_options = dict(s3.storage_options, endpoint_url=f"http://127.0.0.1:{s3_proxy.port}")
        try:
            for _ in range(repeats):
                with wsikit.open_slide(path) as slide:
                    n, t = tile_all(slide)
                    rates["local"].append(n / t)
                # Opening: through the proxy and without it, the difference in delays.
                t0 = time.perf_counter()
                wsikit.open_slide(direct).close()
                plain = time.perf_counter() - t0
                before = nginx.request_count()
                t0 = time.perf_counter()
                slide = wsikit.open_slide(url)
                opened = time.perf_counter() - t0
                open_requests.append(nginx.request_count() - before)
                opens.append(max(0.0, opened - plain) / (DELAY_MS / 1000))
                before = nginx.request_count()
                with slide:
                    n, t = tile_all(slide)
                rates["http"].append(n / t)
                per_tile.append((nginx.request_count() - before) / n)
                if s3 is not None:
                    with wsikit.open_slide("s3://slides/bench.svs", storage_options=s3_options) as slide:
                        n, t = tile_all(slide)
                    rates["s3"].append(n / t)
                n, t = tiffslide_rows(url, slide.shape, 4 if args.quick else 8)
                rates["tiffslide"].append(n / t)
        finally:
            if s3 is not None:
                s3_proxy.stop()
                s3.stop()
    med = {k: statistics.median(v) for k, v in rates.items() if v}
    local = med["local"]
    print("| reader | tiles/s (median) | vs local | vs tiffslide |")
    print("|---|---:|---:|---:|")
    for key, label in (("local", "wsikit, local file"), ("http", "wsikit, http:// (nginx) + 20 ms"),
                       ("s3", "wsikit, s3:// (moto) + 20 ms"), ("tiffslide", "tiffslide, http:// + 20 ms, fsspec defaults")):
        if key in med:
            print(f"| {label} | {med[key]:,.0f} | {med[key] / local:.0%} | {med[key] / med['tiffslide']:.1f}x |")
    rpt = statistics.median(per_tile)
    trips = statistics.median(opens)
    print(f"\nrequests per tile over http: {rpt:.4f}; opening: {statistics.median(open_requests):.0f} requests, "
          f"about {trips:.1f} round trips of {DELAY_MS:g} ms\n")

    def goal(text: str, met: bool) -> None:
        print(f"- goal {text}: {'met' if met else 'NOT met'}")

    goal(f"http >= 50% of local tiles/s ({med['http'] / local:.0%})", med["http"] >= 0.5 * local)
    goal(f"http >= 4x tiffslide ({med['http'] / med['tiffslide']:.1f}x)", med["http"] >= 4 * med["tiffslide"])
    goal(f"fewer than 0.05 requests per tile ({rpt:.4f})", rpt < 0.05)
    goal(f"at most 3 round trips to open ({trips:.1f})", trips <= 3.5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
