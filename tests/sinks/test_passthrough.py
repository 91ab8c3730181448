"""The jpeg format on the slide's own tile grid stores the scanner's JPEG tiles as they are:
Pillow and imagecodecs decode them to exactly generate_tiles' pixels (real RGB-coded SVS
tiles with shared tables, synthetic YCbCr tiles); tiles off the grid, resampled or past the
edge with other pixels are re-encoded; --no-passthrough re-encodes everything."""
from __future__ import annotations

import csv
import os

import imagecodecs
import numpy as np
import pytest
import tifffile
from PIL import Image

import wsikit
from tests.helpers import real_slide, tree_bytes
from wsikit.sinks import TileOptions, tile_slide


def stored_tiles(folder):
    with open(os.path.join(folder, "tiles.csv"), newline="") as f:
        return [row["file"] for row in csv.DictReader(f)]


def check_passthrough(path, out, *, level=0, pad=False, expect_native=None):
    """Tile ``path`` on its native grid; every file decodes (Pillow, imagecodecs) to the
    tile's pixels; returns (tiles, how many files are the slide's own JPEG bytes)."""
    with wsikit.open_slide(path) as slide:
        th, tw = slide._level_grid(level).tile_shape
        result = tile_slide(path, out, TileOptions(shape=(th, tw), level=level, pad=pad, format="jpeg"))
        tiles = list(slide.generate_tiles((th, tw), level=level, pad=pad))
        files = stored_tiles(result.folder)
        assert len(files) == len(tiles) > 0
        native = 0
        for name, tile in zip(files, tiles):
            data = open(os.path.join(result.folder, name), "rb").read()
            own = slide.native_tile_jpeg(level, tile.coords[0] // th, tile.coords[1] // tw)
            if data == own:
                native += 1
                with Image.open(os.path.join(result.folder, name)) as picture:
                    by_pillow = np.asarray(picture.convert("RGB") if tile.image.shape[2] == 3 else picture)
                by_imagecodecs = np.asarray(imagecodecs.jpeg8_decode(data))
                np.testing.assert_array_equal(by_pillow.reshape(tile.image.shape), tile.image)
                np.testing.assert_array_equal(by_imagecodecs.reshape(tile.image.shape), tile.image)
            else:  # re-encoded: close, not equal
                decoded = np.asarray(Image.open(os.path.join(result.folder, name)).convert("RGB"))
                assert np.abs(decoded.astype(int) - tile.image).mean() < 8
    if expect_native is not None:
        assert native == expect_native
    return len(tiles), native


def test_real_rgb_coded_svs_tiles_pass_through_with_the_right_colours(tmp_path):
    path = real_slide("small_HE.svs")
    count, native = check_passthrough(path, tmp_path)
    assert native == count  # every level-0 tile inside the slide is the scanner's own bitstream


def test_real_svs_lower_level(tmp_path):
    path = real_slide("small_HE.svs")
    with wsikit.open_slide(path) as slide:
        if slide.level_count < 2 or slide._level_grid(1) is None:
            pytest.skip("small_HE.svs has one tiled level")
    count, native = check_passthrough(path, tmp_path, level=1)
    assert native == count


@pytest.fixture(scope="module")
def ycbcr_tiff(tmp_path_factory):
    """A tiled JPEG TIFF of YCbCr-coded tiles (4:2:0), 600 x 700: edge tiles stick out."""
    from wsikit.samples.svs import tissue_texture

    path = tmp_path_factory.mktemp("ycbcr") / "ycbcr.tif"
    tifffile.imwrite(path, tissue_texture((600, 700), seed=4), tile=(256, 256), photometric="ycbcr",
                     compression="jpeg", compressionargs={"level": 85})
    return str(path)


def test_synthetic_ycbcr_tiles_pass_through(ycbcr_tiff, tmp_path):
    with tifffile.TiffFile(ycbcr_tiff) as tif:
        assert tif.pages[0].photometric == tifffile.PHOTOMETRIC.YCBCR
    count, native = check_passthrough(ycbcr_tiff, tmp_path)
    assert count == 2 * 2 and native == count


def test_edge_tiles_are_compared_before_passing_through(ycbcr_tiff, tmp_path):
    # Padded: 3 x 3 tiles; the 5 reaching past the edge hold zeros there, the stored JPEG
    # holds what the writer put there, so they are re-encoded; the 4 inside pass through.
    count, native = check_passthrough(ycbcr_tiff, tmp_path, pad=True)
    assert count == 9 and native == 4


def test_edge_tiles_whose_pixels_match_pass_through(tmp_path):
    # A slide whose stored edge tiles are zero past the edge: the padded tile equals them.
    from wsikit.samples.svs import tissue_texture

    image = np.zeros((512, 512, 3), np.uint8)
    image[:300, :400] = tissue_texture((300, 400), seed=5)
    full = tmp_path / "full.tif"
    tifffile.imwrite(full, image, tile=(256, 256), photometric="rgb", compression="jpeg",
                     compressionargs={"level": 95})
    # The same stored tiles, declared 300 x 400: the parts of edge tiles past the edge hold
    # near-zero pixels; whether a tile passes through is decided by comparing its pixels.
    with tifffile.TiffFile(full) as tif:
        page = tif.pages[0]
        segments = list(zip(page.dataoffsets, page.databytecounts))
    with open(full, "rb") as f:
        data = []
        for offset, count in segments:
            f.seek(offset)
            data.append(f.read(count))
    cut = tmp_path / "cut.tif"
    with tifffile.TiffWriter(cut) as tif:
        tif.write(iter(data), shape=(300, 400, 3), dtype=np.uint8, tile=(256, 256), photometric="rgb",
                  compression="jpeg")
    with wsikit.open_slide(str(cut)) as slide:
        tiles = list(slide.generate_tiles(256, pad=True))
        expected = sum(np.array_equal(imagecodecs.jpeg8_decode(slide.native_tile_jpeg(0, t.coords[0] // 256,
                                                                                       t.coords[1] // 256)),
                                      t.image) for t in tiles)
    count, native = check_passthrough(str(cut), tmp_path / "out", pad=True, expect_native=expected)
    assert count == 4 and native >= 1


def test_off_grid_and_no_passthrough_tiles_are_re_encoded(sample_svs, tmp_path):
    with wsikit.open_slide(sample_svs) as slide:
        native = slide.native_tile_jpeg(0, 0, 0)
    assert native is not None
    off = tile_slide(sample_svs, tmp_path / "off", TileOptions(shape=256, stride=(256, 128), format="jpeg"))
    files = stored_tiles(off.folder)
    first = open(os.path.join(off.folder, files[0]), "rb").read()
    second = open(os.path.join(off.folder, files[1]), "rb").read()
    assert first == native  # the tile at (0, 0) is on the grid
    with wsikit.open_slide(sample_svs) as slide:
        assert second not in {slide.native_tile_jpeg(0, 0, k) for k in range(6)}  # (0, 128) is not
    again = tile_slide(sample_svs, tmp_path / "encoded", TileOptions(shape=256, format="jpeg", passthrough=False))
    first_again = open(os.path.join(again.folder, stored_tiles(again.folder)[0]), "rb").read()
    assert first_again != native and first_again.startswith(b"\xff\xd8")
    resampled = tile_slide(sample_svs, tmp_path / "resampled", TileOptions(shape=256, mpp=0.5, format="jpeg"))
    with wsikit.open_slide(sample_svs) as slide:
        natives = {slide.native_tile_jpeg(0, i, j) for i in range(4) for j in range(6)}
    assert not natives & set(tree_bytes(resampled.folder).values())


def test_a_passthrough_run_resumes_to_the_same_bytes(sample_svs, tmp_path):
    options = TileOptions(shape=256, format="jpeg")
    whole = tile_slide(sample_svs, tmp_path / "whole", options)
    reference = tree_bytes(whole.folder)
    part = tile_slide(sample_svs, tmp_path / "part", options)
    names = sorted(os.listdir(os.path.join(part.folder, "images")))
    for name in names[::2]:
        os.unlink(os.path.join(part.folder, "images", name))
    os.unlink(os.path.join(part.folder, "tiles.csv"))
    again = tile_slide(sample_svs, tmp_path / "part", options)
    assert again.written == len(names[::2])
    assert tree_bytes(again.folder) == reference
