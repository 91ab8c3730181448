"""``make demo``: the main job of wsikit on an embedded default.

    python -m wsikit.demo [OUT [SLIDE ...]]

With no slides it writes a realistic sample slide (an Aperio-style pyramid of three
levels at 0.25 microns per pixel, H&E-like tissue on white glass) into OUT (default
``demo-out``), shows what wsikit reads from it, cuts it into 256 x 256 tiles at 0.5 mpp
keeping those at least half covered by tissue (``wsikit tile``), draws the tissue outline
and the selected tiles over a thumbnail (``wsikit thumbnail``) and says where all of it
is. Run it twice: the second run finds the result complete and skips it.
"""
from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence

#: the tiling the demo asks for: 256 x 256 tiles at 0.5 mpp, at least half tissue
TILING = ["--mpp", "0.5", "--shape", "256", "--min-tissue", "0.5"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo with ``argv`` = [OUT [SLIDE ...]] (default: ``sys.argv[1:]``); returns
    the exit status of ``wsikit tile``."""
    from .cli import main as wsikit

    argv = sys.argv[1:] if argv is None else list(argv)
    out = os.path.abspath(argv[0] if argv else "demo-out")
    slides = argv[1:]
    os.makedirs(out, exist_ok=True)
    if not slides:
        path = os.path.join(out, "sample.svs")
        if not os.path.exists(path):
            from .samples.svs import write_sample_svs

            print(f"writing a sample slide to {path} ...", flush=True)
            write_sample_svs(path)
        slides = [path]

    for slide in slides:
        print(f"\n$ wsikit info {slide}", flush=True)
        wsikit(["info", slide])

    tiles = os.path.join(out, "tiles")
    print(f"\n$ wsikit tile {' '.join(slides)} --out {tiles} {' '.join(TILING)}", flush=True)
    start = time.perf_counter()
    status = wsikit(["tile", *slides, "--out", tiles, *TILING])
    print(f"(took {time.perf_counter() - start:.1f} s)")

    pictures = []
    for slide in slides:
        stem = os.path.splitext(os.path.basename(slide))[0]
        picture = os.path.join(out, f"{stem}_overlay.png")
        print(f"\n$ wsikit thumbnail {slide} {picture} --overlay tissue --overlay tiles {' '.join(TILING)}", flush=True)
        if wsikit(["thumbnail", slide, picture, "--overlay", "tissue", "--overlay", "tiles", *TILING]) == 0:
            pictures.append(picture)

    print("\nwhere things are:")
    print(f"  tiles, one folder per slide:  {tiles}")
    for picture in pictures:
        print(f"  tissue outline (green) and selected tiles (blue): {picture}")
    print("  read them back with:")
    print("    import zarr, csv")
    print(f"    tiles = zarr.open_group('{os.path.join(tiles, '<slide>', 'tiles.zarr')}', mode='r')['tiles']")
    print(f"    rows = list(csv.DictReader(open('{os.path.join(tiles, '<slide>', 'tiles.csv')}')))  # row k <-> tiles[k]")
    return status


if __name__ == "__main__":
    sys.exit(main())
