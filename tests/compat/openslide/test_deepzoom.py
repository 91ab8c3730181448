"""wsikit.compat.openslide.deepzoom against openslide-python's DeepZoomGenerator: levels,
tile grid, read_region arguments of every tile, DZI XML, tiles; and openslide-python's own
scenarios (bad levels and addresses, ImageSlide)."""
from __future__ import annotations

import numpy as np
import pytest

import wsikit.compat.openslide as compat
from tests.compat.openslide.conftest import openslide_level_exact
from wsikit.compat.openslide.deepzoom import DeepZoomGenerator


@pytest.mark.parametrize("tile_size,overlap,limit_bounds", [(254, 1, False), (510, 2, True)])
def test_deepzoom_matches_openslide(slide_path, reference, tile_size, overlap, limit_bounds):
    from openslide.deepzoom import DeepZoomGenerator as ReferenceGenerator

    with compat.OpenSlide(slide_path) as ours, reference.OpenSlide(slide_path) as theirs:
        mine = DeepZoomGenerator(ours, tile_size, overlap, limit_bounds)
        expected = ReferenceGenerator(theirs, tile_size, overlap, limit_bounds)
        assert mine.level_count == expected.level_count
        assert mine.level_tiles == expected.level_tiles
        assert mine.level_dimensions == expected.level_dimensions
        assert mine.tile_count == expected.tile_count
        for fmt in ("jpeg", "png"):
            assert mine.get_dzi(fmt) == expected.get_dzi(fmt)
        checked = 0
        for level in range(mine.level_count):
            columns, rows = mine.level_tiles[level]
            for address in [(c, r) for c in range(columns) for r in range(rows)]:
                args = mine.get_tile_coordinates(level, address)
                assert args == expected.get_tile_coordinates(level, address)
                assert mine.get_tile_dimensions(level, address) == expected.get_tile_dimensions(level, address)
            # tiles: the corners and the middle of every level
            for address in {(0, 0), (columns - 1, rows - 1), (columns // 2, rows // 2)}:
                tile, reference_tile = mine.get_tile(level, address), expected.get_tile(level, address)
                assert tile.mode == reference_tile.mode == "RGB" and tile.size == reference_tile.size
                location, slide_level, _ = mine.get_tile_coordinates(level, address)
                difference = np.abs(np.asarray(tile, dtype=int) - np.asarray(reference_tile, dtype=int))
                if openslide_level_exact(location, ours.level_downsamples[slide_level]):
                    assert difference.max() == 0, (level, address)
                else:  # OpenSlide interpolates at a fractional position; wsikit reads the nearest pixel
                    assert difference.mean() < 12, (level, address)
                checked += 1
        assert checked >= mine.level_count


def test_get_tiles_reads_in_parallel_as_get_tile(synthetic):
    with compat.OpenSlide(synthetic["svs"]) as slide:
        generator = DeepZoomGenerator(slide, 254, 1)
        level = generator.level_count - 1
        columns, rows = generator.level_tiles[level]
        addresses = [(c, r) for r in range(rows) for c in range(columns)]
        for tile, address in zip(generator.get_tiles(level, addresses, workers=4), addresses, strict=True):
            np.testing.assert_array_equal(np.asarray(tile), np.asarray(generator.get_tile(level, address)))
        with pytest.raises(ValueError):
            list(generator.get_tiles(level, [(columns, 0)]))


@pytest.mark.parametrize("kind", ["slide", "image"])
def test_openslide_python_scenarios(synthetic, reference, tmp_path, kind):
    """openslide-python's test_deepzoom on a 300 x 250 picture and the same pyramid as a slide."""
    import tifffile
    from PIL import Image

    from openslide.deepzoom import DeepZoomGenerator as ReferenceGenerator

    pixels = np.asarray(Image.open(synthetic["png"]).convert("RGB"))
    if kind == "slide":
        path = str(tmp_path / "boxes.tiff")
        with tifffile.TiffWriter(path) as tif:
            for factor in (1, 2, 4, 8):
                tif.write(pixels[::factor, ::factor], tile=(64, 64), photometric="rgb")
        ours, theirs = compat.OpenSlide(path), reference.OpenSlide(path)
    else:
        ours, theirs = compat.ImageSlide(synthetic["png"]), reference.ImageSlide(synthetic["png"])
    with ours, theirs:
        dz, expected = DeepZoomGenerator(ours, 254, 1), ReferenceGenerator(theirs, 254, 1)
        assert repr(dz) == f"DeepZoomGenerator({ours!r}, tile_size=254, overlap=1, limit_bounds=False)"
        assert dz.level_count == 10 and dz.tile_count == 11
        assert dz.level_tiles == ((1, 1),) * 9 + ((2, 1),)
        assert dz.level_dimensions == ((1, 1), (2, 1), (3, 2), (5, 4), (10, 8), (19, 16), (38, 32), (75, 63),
                                       (150, 125), (300, 250))
        assert dz.get_tile(9, (1, 0)).size == (47, 250)
        assert dz.get_tile_coordinates(9, (1, 0)) == ((253, 0), 0, (47, 250))
        assert dz.get_tile_dimensions(9, (1, 0)) == (47, 250)
        np.testing.assert_array_equal(np.asarray(dz.get_tile(9, (1, 0))), np.asarray(expected.get_tile(9, (1, 0))))
        assert "http://schemas.microsoft.com/deepzoom/2008" in dz.get_dzi("jpeg")
        for level, address in ((-1, (0, 0)), (10, (0, 0))):
            with pytest.raises(ValueError):
                dz.get_tile(level, address)
        for address in ((-1, 0), (1, 0)):
            with pytest.raises(ValueError):
                dz.get_tile(0, address)
