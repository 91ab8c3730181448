"""OpenSlideBackend: same interface, pixels from OpenSlide with exact level scaling."""
import numpy as np
import openslide
import pytest

import wsikit
from wsikit import OpenSlideBackend, TiffBackend
from tests.helpers import real_slide


def test_forced_openslide_backend_reads_svs_like_tiff_backend():
    path = real_slide("small_HE.svs")
    ours = wsikit.open_slide(path, backend="openslide")
    native = wsikit.open_slide(path, backend="tiff")
    assert isinstance(ours, OpenSlideBackend) and isinstance(native, TiffBackend)
    assert ours.get_image_shape() == (2967, 2220)
    assert ours.mpp == pytest.approx((0.499, 0.499)) and ours.objective_power == 20
    for location, size in [((0, 0), (500, 500)), ((1234, 567), (345, 456)), ((2900, 2200), (100, 100))]:
        np.testing.assert_array_equal(ours.extract_region(location, size), native.extract_region(location, size))
    assert set(ours.associated_images) == {"thumbnail", "label", "macro"}
    np.testing.assert_array_equal(ours.associated_images["label"], native.associated_images["label"])


def test_level_coordinates_use_exact_downsample():
    """At level 2 (downsample 4.016), (i, j) maps to level 0 by 4.016, not by int(4.016) = 4."""
    path = real_slide("small_HE_levels.tiff")
    ours = wsikit.open_slide(path, backend="openslide")
    reference = openslide.OpenSlide(path)
    ds = reference.level_downsamples[2]
    assert ours.level_downsamples[2] == pytest.approx(4.016129, abs=1e-6)
    i, j = 40, 50
    want = np.asarray(reference.read_region((round(j * ds), round(i * ds)), 2, (10, 12)))[:, :, :3]
    np.testing.assert_array_equal(ours.extract_region((i, j), (12, 10), level=2), want)
    # the seed's int(downsample) lands 40 * 0.016 = 0.6 level-0 pixels off: a different box.
    assert round(j * ds) != j * int(ds)


def test_openslide_tiles_and_padding(sample_svs):
    slide = wsikit.open_slide(sample_svs, backend="openslide")
    native = wsikit.open_slide(sample_svs)
    for level in range(slide.level_count):
        a = [t.image for t in slide.generate_tiles(100, stride=90, pad=True, level=level)]
        b = [t.image for t in native.generate_tiles(100, stride=90, pad=True, level=level)]
        assert len(a) == len(b) > 0
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)


def test_openslide_thumbnail(sample_svs):
    slide = wsikit.open_slide(sample_svs, backend="openslide")
    thumb = slide.get_thumbnail((64, 96))
    assert thumb.shape == (64, 96, 3)
    np.testing.assert_array_equal(thumb, wsikit.open_slide(sample_svs).get_thumbnail((64, 96)))
