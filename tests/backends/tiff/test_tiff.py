"""TiffBackend against openslide-python and tifffile, on real and synthetic slides."""
import numpy as np
import openslide
import pytest
import tifffile

import wsikit
from wsikit import TiffBackend
from tests.helpers import padded_box, real_slide


def openslide_region(slide, location, size, level=0):
    """OpenSlide's pixels for (i, j) + (h, w) at a level whose downsample is an integer."""
    ds = slide.level_downsamples[level]
    i, j = location
    h, w = size
    rgba = np.asarray(slide.read_region((int(j * ds), int(i * ds)), level, (w, h)))
    return rgba[:, :, :3]


def test_svs_opens_with_tiff_backend():
    with wsikit.open_slide(real_slide("small_HE.svs")) as slide:
        assert isinstance(slide, TiffBackend)
        assert slide.level_count == 1
        assert slide.get_image_shape() == (2967, 2220)
        assert slide.mpp == pytest.approx((0.499, 0.499))
        assert slide.objective_power == 20
        assert slide.properties["aperio.AppMag"] == "20"
        assert slide.properties["wsikit.vendor"] == "aperio"


@pytest.mark.parametrize(
    "location, size",
    [((0, 0), (240, 240)), ((100, 200), (300, 400)), ((2900, 2100), (67, 120)), ((239, 239), (2, 2)),
     ((0, 0), (2967, 2220))],
)
def test_svs_regions_equal_openslide(location, size):
    path = real_slide("small_HE.svs")
    ours = wsikit.open_slide(path).extract_region(location, size)
    reference = openslide_region(openslide.OpenSlide(path), location, size)
    assert ours.dtype == np.uint8 and ours.shape == size + (3,)
    np.testing.assert_array_equal(ours, reference)


@pytest.mark.parametrize("shape, stride, pad", [(500, None, False), (500, None, True), (256, 200, True),
                                                ((300, 170), (250, 333), False)])
def test_svs_tiles_equal_openslide(shape, stride, pad):
    path = real_slide("small_HE.svs")
    slide = wsikit.open_slide(path)
    reference = openslide.OpenSlide(path)
    tiles = list(slide.generate_tiles(shape=shape, stride=stride, pad=pad))
    expected = list(wsikit.tiling.tile_locations(slide.get_image_shape(), shape, stride, pad))
    assert [t.coords for t in tiles] == expected
    h, w = wsikit.checks.as_pair(shape, "shape")
    for tile in tiles:
        i, j = tile.coords
        want = np.zeros((h, w, 3), np.uint8)
        hh, ww = min(h, 2967 - i), min(w, 2220 - j)
        want[:hh, :ww] = openslide_region(reference, (i, j), (hh, ww))
        np.testing.assert_array_equal(tile.image, want)


def test_svs_seed_tile_counts():
    slide = wsikit.open_slide(real_slide("small_HE.svs"))
    # (2967, 2220) with 500: 5 x 4 whole tiles; padded 6 x 5.
    assert len(list(slide.generate_tiles(500))) == 20
    assert len(list(slide.generate_tiles(500, pad=True))) == 30


def test_svs_associated_images_equal_openslide():
    path = real_slide("small_HE.svs")
    ours = wsikit.open_slide(path).associated_images
    reference = openslide.OpenSlide(path).associated_images
    assert set(ours) == {"thumbnail", "label", "macro"}
    shapes = {"thumbnail": (768, 574, 3), "label": (463, 387, 3), "macro": (431, 1280, 3)}
    for name, image in ours.items():
        assert image.shape == shapes[name] and image.dtype == np.uint8
        np.testing.assert_array_equal(image, np.asarray(reference[name].convert("RGB")))


def test_levels_read_in_their_own_frame():
    path = real_slide("small_HE_levels.tiff")
    slide = wsikit.open_slide(path)
    assert slide.level_shapes == ((250, 300), (125, 150), (62, 75), (31, 37))
    assert slide.level_downsamples[2] == pytest.approx(4.016129, abs=1e-6)
    assert slide.level_downsamples == pytest.approx(openslide.OpenSlide(path).level_downsamples)
    with tifffile.TiffFile(path) as tif:
        levels = [page.asarray() for page in tif.pages]
    for level, truth in enumerate(levels):
        h, w = slide.get_image_shape(level)
        np.testing.assert_array_equal(slide.extract_region((0, 0), (h, w), level=level), truth)
        np.testing.assert_array_equal(slide.extract_region((h // 3, w // 4), (h // 2, w // 2), level=level),
                                      truth[h // 3: h // 3 + h // 2, w // 4: w // 4 + w // 2])
        tiles = list(slide.generate_tiles(16, level=level, pad=True))
        for tile in tiles:
            i, j = tile.coords
            np.testing.assert_array_equal(tile.image, padded_box(truth, i, j, 16, 16))
            assert tile.level == level


def test_levels_mostly_blue():
    slide = wsikit.open_slide(real_slide("small_HE_levels.tiff"))
    for level in range(slide.level_count):
        image = slide.extract_region((0, 0), slide.get_image_shape(level), level=level)
        # The README says "almost all": measured 69-75% per level, tifffile agreeing.
        assert (image[:, :, 2] > 250).mean() > 0.6


def test_plain_uint16_tiff_is_five_dimensional():
    path = real_slide("smalltif.tif")
    slide = wsikit.open_slide(path)
    truth = tifffile.imread(path)
    assert slide.get_image_shape() == (480, 640) and not slide.is_rgb
    raw = slide.extract_region((0, 0), (480, 640), normalize=False)
    assert raw.shape == (480, 640, 1, 1, 1) and raw.dtype == np.uint16
    np.testing.assert_array_equal(raw[:, :, 0, 0, 0], truth)
    scaled = slide.extract_region((10, 20), (100, 200))
    assert scaled.dtype == np.uint8
    np.testing.assert_array_equal(scaled[:, :, 0, 0, 0], (truth[10:110, 20:220] >> 8).astype(np.uint8))
    assert len(list(slide.generate_tiles(500))) == 0
    assert len(list(slide.generate_tiles(500, pad=True))) == 2
    assert len(list(slide.generate_tiles(160))) == 12
    assert len(list(slide.generate_tiles(160, pad=True))) == 12


def test_synthetic_pyramid_every_level_equals_openslide(sample_svs):
    slide = wsikit.open_slide(sample_svs)
    reference = openslide.OpenSlide(sample_svs)
    assert isinstance(slide, TiffBackend)
    assert slide.level_shapes == ((1024, 1536), (256, 384), (64, 96))
    assert slide.level_downsamples == pytest.approx(reference.level_downsamples)
    assert slide.mpp == (0.25, 0.25) and slide.objective_power == 40
    for level in range(slide.level_count):
        h, w = slide.get_image_shape(level)
        boxes = [((0, 0), (h, w)), ((h // 2 - 7, w // 3 + 5), (h // 3, w // 2)), ((h - 10, w - 20), (40, 50))]
        for location, size in boxes:
            ours = slide.extract_region(location, size, level=level)
            want = np.zeros(size + (3,), np.uint8)
            hh, ww = min(size[0], h - location[0]), min(size[1], w - location[1])
            want[:hh, :ww] = openslide_region(reference, location, (hh, ww), level)
            np.testing.assert_array_equal(ours, want)
    assert set(slide.associated_images) == set(reference.associated_images)
    for name in reference.associated_images:
        np.testing.assert_array_equal(slide.associated_images[name],
                                      np.asarray(reference.associated_images[name].convert("RGB")))


def test_region_outside_image_is_zero(sample_svs):
    slide = wsikit.open_slide(sample_svs)
    region = slide.extract_region((-10, -20), (30, 40))
    assert region[:10].max() == 0 and region[:, :20].max() == 0
    np.testing.assert_array_equal(region[10:, 20:], slide.extract_region((0, 0), (20, 20)))
    assert slide.extract_region((5000, 5000), (8, 8)).max() == 0


def test_thumbnail_fits_and_uses_small_level(sample_svs):
    slide = wsikit.open_slide(sample_svs)
    thumb = slide.get_thumbnail((100, 300))
    assert thumb.shape == (100, 150, 3) and thumb.dtype == np.uint8
    assert slide.thumbnail_level((100, 300)) == 1  # needs (100, 150): level 2 is (64, 96)
    assert slide.thumbnail_level((60, 300)) == 2
    assert slide.thumbnail_level((300, 300)) == 1
    assert slide.thumbnail_level((2000, 2000)) == 0
    # Area average of the smallest level, compared with a direct reduction of it.
    level2 = slide.extract_region((0, 0), (64, 96), level=2).astype(float)
    direct = level2.reshape(64, 1, 96, 1, 3).mean(axis=(1, 3))  # (64, 96) -> nothing to reduce
    small = slide.get_thumbnail((64, 96)).astype(float)
    assert np.abs(small - direct).max() <= 1


def test_thumbnail_of_single_level_slide():
    slide = wsikit.open_slide(real_slide("small_HE.svs"))
    thumb = slide.get_thumbnail((300, 300))
    assert thumb.shape == (300, 224, 3)
    full = slide.extract_region((0, 0), slide.get_image_shape()).astype(float)
    # Mean colour is preserved by area averaging.
    assert np.abs(thumb.reshape(-1, 3).mean(0) - full.reshape(-1, 3).mean(0)).max() < 2


def test_arguments_checked(sample_svs):
    slide = wsikit.open_slide(sample_svs)
    with pytest.raises(ValueError, match="level"):
        slide.extract_region((0, 0), 10, level=3)
    with pytest.raises(ValueError, match="level"):
        slide.get_image_shape(-1)
    with pytest.raises(TypeError, match="level"):
        slide.extract_region((0, 0), 10, level=1.0)
    with pytest.raises(ValueError, match="size"):
        slide.extract_region((0, 0), 0)
    with pytest.raises(TypeError, match="location"):
        slide.extract_region((0, 0.5), 4)
    with pytest.raises(ValueError, match="shape"):
        slide.generate_tiles(shape=-4)
    with pytest.raises(ValueError, match="stride"):
        slide.generate_tiles(shape=4, stride=0)
    with pytest.raises(TypeError, match="pad"):
        slide.generate_tiles(shape=4, pad="yes")
    assert slide.extract_region((0, 0), 4, level=None).shape == (4, 4, 3)


def test_context_manager_and_repr(sample_svs):
    with wsikit.open_slide(sample_svs) as slide:
        assert "TiffBackend" in repr(slide) and "levels=3" in repr(slide)
    assert "closed" in repr(slide)
    with pytest.raises(ValueError, match="closed"):
        slide.extract_region((0, 0), 4)


def test_properties_are_read_only(sample_svs):
    slide = wsikit.open_slide(sample_svs)
    with pytest.raises(TypeError):
        slide.properties["x"] = "y"
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in slide.properties.items())


def test_large_tile_tables_are_held_compactly_and_tifffile_still_reads_them(tmp_path):
    """Level tile tables become 8-byte int arrays (not tuples of Python ints); tifffile's
    own reads of the same page, and wsikit's, still give the file's pixels."""
    import array

    rng = np.random.default_rng(4)
    image = rng.integers(0, 255, (544, 528, 3), dtype=np.uint8)  # 34 x 33 = 1,122 tiles of 16
    path = str(tmp_path / "many-tiles.tif")
    tifffile.imwrite(path, image, tile=(16, 16), compression="zlib", photometric="rgb")
    slide = wsikit.open_slide(path)
    page = slide._tif.pages[0]
    assert isinstance(page.dataoffsets, array.array) and isinstance(page.databytecounts, array.array)
    assert page.tags[324].value is page.dataoffsets and page.tags[325].value is page.databytecounts
    with tifffile.TiffFile(path) as reference:
        assert list(page.dataoffsets) == list(reference.pages[0].dataoffsets)
    np.testing.assert_array_equal(page.asarray(), image)
    np.testing.assert_array_equal(slide.extract_region((0, 0), image.shape[:2]), image)
    tiles = list(slide.generate_tiles(100, stride=90, pad=True))
    for tile in tiles:
        i, j = tile.coords
        np.testing.assert_array_equal(tile.image[: 544 - i, : 528 - j], image[i : i + 100, j : j + 100])


def test_sample_texture_is_drawn_in_bands_without_changing_it(monkeypatch):
    """tissue_texture draws its random numbers band by band (bounded memory); the picture
    must be the one a single whole-image draw gives, whatever the band height."""
    from wsikit.samples import svs as sample

    shape = (301, 211)
    monkeypatch.setattr(sample, "TEXTURE_BAND_BYTES", 211 * 24 * 7)  # bands of 7 rows
    whole = sample.tissue_texture(shape, seed=5)
    rng = np.random.default_rng(5)
    h, w = shape
    coarse = rng.random((max(2, h // 256 + 2), max(2, w // 256 + 2))).astype(np.float32)
    tissue = sample._upsample(coarse, shape)
    tissue = tissue > np.quantile(tissue, 1.0 - 0.45)
    fine = sample._upsample(rng.random((max(2, h // 16 + 2), max(2, w // 16 + 2))).astype(np.float32), shape)
    pink, purple = np.array([232, 150, 190], np.float32), np.array([120, 60, 150], np.float32)
    stain = pink * (1 - fine[..., None]) + purple * fine[..., None]
    stain[rng.random((h, w)) > 0.985] = np.array([70, 30, 110], np.float32)
    image = np.where(tissue[..., None], stain, np.array([242, 242, 240], np.float32))
    image += rng.normal(0, 6, size=image.shape).astype(np.float32)
    np.testing.assert_array_equal(whole, np.clip(image, 0, 255).astype(np.uint8))
