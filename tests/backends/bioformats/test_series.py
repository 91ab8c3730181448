"""Tiles read from a Bio-Formats series: strips grouped, huge tiles split."""
from __future__ import annotations

from wsikit.backends.bioformats import series


def test_tile_shape_grows_strips_and_bounds_java_arrays():
    assert series.tile_shape((1440, 1920), (16, 1920), 3) == (64, 1920)  # strips: a few at once
    assert series.tile_shape((1440, 1920), (512, 512), 3) == (512, 512)  # tiles: as they are
    assert series.tile_shape((4096, 4096), (16, 16), 2) == (512, 256)
    assert series.tile_shape((100, 100), (512, 512), 8) == (100, 100)
    th, tw = series.tile_shape((100_000, 100_000), (100_000, 100_000), 40)
    assert th * tw * 40 <= series.MAX_TILE_BYTES


def test_associated_pictures_are_named_by_their_series():
    assert series.associated_name("Label Image") == "label"
    assert series.associated_name("barcode") == "label"
    assert series.associated_name("Overview 1") == "macro"
    assert series.associated_name("THUMBNAIL") == "thumbnail"
    assert series.associated_name("Scene #2") is None
