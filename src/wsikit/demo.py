"""``make demo``: make a sample slide, show what wsikit reads from it, tile it, draw a thumbnail."""
from __future__ import annotations

import os
import sys
import time

import numpy as np


def main(argv=None) -> int:
    import wsikit
    from wsikit.sample import write_sample_svs

    out = os.path.abspath((argv or sys.argv[1:] or ["demo-out"])[0])
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "sample.svs")
    if not os.path.exists(path):
        print(f"writing a sample slide to {path} ...")
        write_sample_svs(path)
    with wsikit.open_slide(path) as slide:
        print(slide)
        print(f"  vendor {slide.properties.get('wsikit.vendor')}, mpp {slide.mpp}, objective {slide.objective_power}x")
        for level in range(slide.level_count):
            print(f"  level {level}: shape {slide.get_image_shape(level)}, downsample {slide.level_downsamples[level]:g}")
        print(f"  associated images: {', '.join(f'{k} {v.shape}' for k, v in slide.associated_images.items())}")
        start = time.perf_counter()
        tiles = list(slide.generate_tiles(shape=256, level=1, pad=True))
        took = time.perf_counter() - start
        print(f"  {len(tiles)} tiles of 256 x 256 at level 1 in {took:.2f} s")
        thumb = slide.get_thumbnail((512, 512)).copy()
        scale = thumb.shape[0] / slide.get_image_shape(1)[0]
        for tile in tiles:
            i, j = (int(round(c * scale)) for c in tile.coords)
            thumb[i:i + 1, j:] = thumb[i:i + 1, j:] // 2
            thumb[i:, j:j + 1] = thumb[i:, j:j + 1] // 2
        png = os.path.join(out, "thumbnail_tiles.png")
        from PIL import Image

        Image.fromarray(np.ascontiguousarray(thumb)).save(png)
        print(f"thumbnail with the tile grid: {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
