"""``make demo``: the main job of wsikit on an embedded default.

    python -m wsikit.demo [OUT [SLIDE ...]]

With no slides it writes a realistic sample slide (an Aperio-style pyramid of three
levels at 0.25 microns per pixel, H&E-like tissue on white glass) and its annotations
(``sample.geojson``: tumour and stroma regions, QuPath-style) into OUT (default
``demo-out``), shows what wsikit reads from it, cuts it into 256 x 256 tiles at 0.5 mpp
keeping those at least half covered by tissue, each with its label fractions and masks
(``wsikit tile --annotations``), draws the tissue outline, the selected tiles and the
annotations over a thumbnail (``wsikit thumbnail``) and says where all of it is. Slides
given on the command line get the annotation files of OUT whose stem is theirs. Run it twice: the second run finds the result complete and skips it.
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
    from .annotations.outputs import annotation_file_for
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
        notes = os.path.join(out, "sample.geojson")
        if not os.path.exists(notes):
            from .samples.annotations import write_sample_annotations
            from .opener import open_slide

            with open_slide(path) as opened:
                shape = opened.level_shapes[0]
            print(f"writing its annotations to {notes} ...", flush=True)
            write_sample_annotations(notes, shape)
        slides = [path]

    for slide in slides:
        print(f"\n$ wsikit info {slide}", flush=True)
        wsikit(["info", slide])

    tiles = os.path.join(out, "tiles")
    labels = ["--annotations", out]  # annotation files matched to slides by stem
    print(f"\n$ wsikit tile {' '.join(slides)} --out {tiles} {' '.join(TILING + labels)}", flush=True)
    start = time.perf_counter()
    status = wsikit(["tile", *slides, "--out", tiles, *TILING, *labels])
    print(f"(took {time.perf_counter() - start:.1f} s)")

    pictures = []
    for slide in slides:
        stem = os.path.splitext(os.path.basename(slide))[0]
        picture = os.path.join(out, f"{stem}_overlay.png")
        overlays = ["--overlay", "tissue", "--overlay", "tiles"]
        if annotation_file_for(out, slide) is not None:
            overlays += ["--overlay", "annotations", *labels]
        print(f"\n$ wsikit thumbnail {slide} {picture} {' '.join(overlays + TILING)}", flush=True)
        if wsikit(["thumbnail", slide, picture, *overlays, *TILING]) == 0:
            pictures.append(picture)

    print("\nwhere things are:")
    print(f"  tiles, one folder per slide:  {tiles}")
    for picture in pictures:
        print(f"  tissue outline (green), selected tiles (blue), annotations (their colours): {picture}")
    print("  read them back with:")
    print("    import zarr, csv")
    print(f"    tiles = zarr.open_group('{os.path.join(tiles, '<slide>', 'tiles.zarr')}', mode='r')['tiles']")
    print(f"    rows = list(csv.DictReader(open('{os.path.join(tiles, '<slide>', 'tiles.csv')}')))  # row k <-> tiles[k]")
    print("  labels: the label:<class> columns of tiles.csv; masks: the 'masks' array (bit c = class c)")
    print("  or, for a training loop:")
    print(f"    dataset = wsikit.TileDataset('{tiles}')  # items: image, labels, masks, coords, slide")
    return status


if __name__ == "__main__":
    sys.exit(main())
