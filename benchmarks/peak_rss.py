"""Peak resident memory of one process that tiles a whole slide with wsikit.

    python benchmarks/peak_rss.py SLIDE SHAPE [WORKERS] [--streamed-plan]

``--streamed-plan`` reads the same tiles with ``read_plan`` from a generator of TileSpecs
instead of ``generate_tiles`` (whose plan is a list held for the whole tiling), to show
what the reader itself holds.

Prints one JSON line: tiles read, seconds, peak RSS (MiB) after the imports and opening
the slide, and peak RSS at the end (VmHWM of /proc/self/status). Run in a fresh process per measurement, so that one
measurement's peak does not hide another's.
"""
from __future__ import annotations

import json
import resource
import sys
import time


def peak_mib() -> float:
    # VmHWM is this program's own high-water mark; ru_maxrss would also count the parent's
    # memory at the fork that started this process.
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main(argv: list[str]) -> None:
    import wsikit

    streamed = "--streamed-plan" in argv
    argv = [a for a in argv if a != "--streamed-plan"]
    path, shape = argv[0], int(argv[1])
    workers = int(argv[2]) if len(argv) > 2 else None
    slide = wsikit.open_slide(path)
    opened = peak_mib()
    start = time.perf_counter()
    if streamed:
        from wsikit.tiling import tile_locations
        from wsikit.plan import TileSpec

        size = (shape, shape)
        plan = (TileSpec((i, j), 0, (i, j), size, size, (i, j)) for i, j in tile_locations(slide.shape, size))
        tiles_read = slide.read_plan(plan, workers=workers)
    else:
        tiles_read = slide.generate_tiles(shape, workers=workers)
    tiles = 0
    for _ in tiles_read:
        tiles += 1
    seconds = time.perf_counter() - start
    print(json.dumps({"tiles": tiles, "seconds": seconds, "opened_mib": opened, "peak_mib": peak_mib(),
                      "shape": slide.shape}))


if __name__ == "__main__":
    main(sys.argv[1:])
