"""The contract every backend keeps, checked the same way for each one.

Every backend (tiff, openslide, dicom, bioformats) opens its own small synthetic slide
(:func:`wsikit.samples.backends.write_sample`: an Aperio-style pyramid for the TIFF family,
a DICOM series for DICOM); a backend that cannot take part here is skipped with the reason
:func:`~wsikit.samples.backends.backend_unavailable` gives. In the manner of
openslide-python's shared abstract slide tests, one suite runs over all of them:

- levels: ``level_count``, ``level_shapes``, ``level_downsamples``, ``shape`` and
  ``get_image_shape`` agree with each other;
- reads: ``extract_region`` gives (h, w, 3) uint8 (brightfield) or (h, w, z, c, t), zero
  outside the image exactly as reading the inside part and pasting it into zeros would;
  ``read_regions`` and ``generate_tiles`` give what ``extract_region`` gives, tiles on the
  grid of :func:`wsikit.tiling.tile_locations`;
- ``get_thumbnail`` has the shape of :func:`wsikit.tiling.thumbnail_shape`;
- ``associated_images`` and ``properties`` are read-only;
- pickling reopens the same slide; a closed slide refuses to read (ValueError); the slide
  is a context manager that closes;
- bad arguments raise TypeError / ValueError.
"""
from __future__ import annotations

import pickle
from collections.abc import Iterator, Mapping

import numpy as np
import pytest

import wsikit
from tests.helpers import padded_box
from wsikit.samples.backends import SVS_SHAPE, Sample
from wsikit.tiling import grid_shape, thumbnail_shape, tile_locations

BACKENDS = ["tiff", "openslide", "dicom", "bioformats"]

# Boxes (i, j, h, w) of level 0 (512 x 768): inside, over each edge and corner, wholly outside.
BOXES = [
    (100, 200, 64, 96),      # inside, across native tile edges
    (-30, 40, 80, 50),       # over the top edge
    (300, -25, 60, 70),      # over the left edge
    (480, 700, 100, 120),    # over the bottom-right corner
    (-10, -20, 600, 820),    # the whole image and a frame around it
    (-200, -300, 50, 60),    # wholly outside, before the image
    (600, 900, 40, 30),      # wholly outside, after the image
]
# generate_tiles arguments: aligned with the native tiles, unaligned and overlapping with padding.
GRIDS = [dict(shape=128), dict(shape=(100, 150), stride=(90, 120), pad=True)]


@pytest.fixture(scope="module", params=BACKENDS)
def sample(request: pytest.FixtureRequest, backend_samples) -> Sample:
    return backend_samples(request.param)


def _open(sample: Sample) -> wsikit.SlideBackend:
    try:
        return wsikit.open_slide(sample.path, backend=sample.backend)
    except wsikit.BackendUnavailableError as exc:
        pytest.skip(f"{sample.backend}: {exc.reason}")


@pytest.fixture(scope="module")
def slide(sample: Sample) -> Iterator[wsikit.SlideBackend]:
    opened = _open(sample)
    yield opened
    opened.close()


@pytest.fixture(scope="module")
def levels(slide: wsikit.SlideBackend) -> list[np.ndarray]:
    """Every level read whole: the reference the other reads are compared with."""
    return [slide.extract_region((0, 0), shape, level=k) for k, shape in enumerate(slide.level_shapes)]


def _pixel_axes(slide: wsikit.SlideBackend) -> tuple[int, ...]:
    return (3,) if slide.is_rgb else tuple(slide.sizes)


# -- levels ---------------------------------------------------------------------------------
def test_the_backend_asked_for_opens_the_whole_sample(slide, sample):
    assert slide.name == sample.backend
    assert slide.level_count >= 1 and slide.level_shapes[0] == SVS_SHAPE == slide.shape


def test_level_shapes_and_downsamples_agree(slide):
    shapes, downsamples = slide.level_shapes, slide.level_downsamples
    assert len(shapes) == len(downsamples) == slide.level_count
    assert all(isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0 for h, w in shapes)
    assert downsamples[0] == 1.0
    (h0, w0) = shapes[0]
    for k, (h, w) in enumerate(shapes):
        assert downsamples[k] == pytest.approx((h0 / h + w0 / w) / 2)
        assert slide.get_image_shape(k) == (h, w)
    assert all(a[0] >= b[0] and a[1] >= b[1] for a, b in zip(shapes, shapes[1:])), shapes
    assert list(downsamples) == sorted(downsamples)
    assert slide.get_image_shape(None) == shapes[0] and slide.get_image_shape() == shapes[0]


def test_levels_read_whole_are_images_of_the_slide(slide, levels):
    for k, image in enumerate(levels):
        assert image.shape == slide.level_shapes[k] + _pixel_axes(slide)
        assert image.dtype == np.uint8
        assert image.std() > 5  # the sample is a texture: a blank read is no reference


# -- extract_region -----------------------------------------------------------------------------
@pytest.mark.parametrize("box", BOXES, ids=lambda b: "{},{}+{}x{}".format(*b))
def test_extract_region_is_zero_outside_the_image(slide, levels, box):
    i, j, h, w = box
    region = slide.extract_region((i, j), (h, w))
    assert region.shape == (h, w) + _pixel_axes(slide) and region.dtype == np.uint8
    np.testing.assert_array_equal(region, padded_box(levels[0], i, j, h, w))


def test_extract_region_at_every_level(slide, levels):
    for k, (h, w) in enumerate(slide.level_shapes):
        box = (h // 3, w // 4, max(1, h // 2), max(1, w // 2))
        region = slide.extract_region(box[:2], box[2:], level=k)
        np.testing.assert_array_equal(region, padded_box(levels[k], *box))
        over = (h - 10, w - 20, 40, 50)  # over the level's far corner
        np.testing.assert_array_equal(slide.extract_region(over[:2], over[2:], level=k), padded_box(levels[k], *over))


def test_extract_region_takes_an_int_for_a_square(slide, levels):
    np.testing.assert_array_equal(slide.extract_region(50, 70), padded_box(levels[0], 50, 50, 70, 70))


def test_extract_region_without_normalising_keeps_the_files_pixel_type(slide):
    region = slide.extract_region((0, 0), (16, 16), normalize=False)
    assert region.shape == (16, 16) + _pixel_axes(slide)
    assert region.dtype == (np.uint8 if slide.is_rgb else slide.dtype)


# -- read_regions and generate_tiles ---------------------------------------------------------------
@pytest.mark.parametrize("workers", [1, 3])
def test_read_regions_equals_extract_region(slide, workers):
    locations = [(i, j) for i, j, _, _ in BOXES]
    for level in range(slide.level_count):
        got = list(slide.read_regions(locations, (70, 90), level=level, workers=workers))
        assert len(got) == len(locations)
        for location, image in zip(locations, got):
            np.testing.assert_array_equal(image, slide.extract_region(location, (70, 90), level=level))


@pytest.mark.parametrize("grid", GRIDS, ids=lambda g: ",".join(f"{k}={v}" for k, v in g.items()))
@pytest.mark.parametrize("workers", [1, 3])
def test_generate_tiles_follows_the_tiling_grid(slide, grid, workers):
    size = grid["shape"] if isinstance(grid["shape"], tuple) else (grid["shape"], grid["shape"])
    for level, level_shape in enumerate(slide.level_shapes):
        tiles = list(slide.generate_tiles(level=level, workers=workers, **grid))
        expected = list(tile_locations(level_shape, grid["shape"], grid.get("stride"), grid.get("pad", False)))
        rows, cols = grid_shape(level_shape, grid["shape"], grid.get("stride"), grid.get("pad", False))
        assert len(tiles) == len(expected) == rows * cols
        assert [tile.coords for tile in tiles] == expected
        for tile in tiles:
            assert tile.level == level
            assert tile.image.shape == size + _pixel_axes(slide)
            np.testing.assert_array_equal(tile.image, slide.extract_region(tile.coords, size, level=level))
    assert len(list(slide.generate_tiles(**grid))) > 0  # level 0 has tiles for every grid here


def test_tiles_of_level_0_carry_their_level_0_corner(slide):
    for tile in slide.generate_tiles(shape=200, stride=150, pad=True):
        assert tile.coords0 == tile.coords


# -- thumbnails, associated images, properties ----------------------------------------------------
@pytest.mark.parametrize("size", [(100, 100), (64, 200), 50, (1000, 1000)])
def test_thumbnail_shape_is_the_one_rule(slide, levels, size):
    thumbnail = slide.get_thumbnail(size)
    pair = size if isinstance(size, tuple) else (size, size)
    assert thumbnail.shape == thumbnail_shape(slide.level_shapes[0], pair) + (3,)
    assert thumbnail.dtype == np.uint8
    # A picture of the slide: its mean colour is that of level 0 (areas are averaged).
    np.testing.assert_allclose(thumbnail.reshape(-1, 3).mean(axis=0), levels[0].reshape(-1, 3).mean(axis=0), atol=3)


def test_associated_images_are_read_only_rgb(slide):
    images = slide.associated_images
    assert isinstance(images, Mapping)
    assert "label" in images  # every sample file holds a label
    for name in images:
        image = images[name]
        assert isinstance(name, str)
        assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8 and min(image.shape[:2]) > 0
        assert not image.flags.writeable
        with pytest.raises(ValueError):
            image[0, 0, 0] = 1
    with pytest.raises(TypeError):
        images["label"] = np.zeros((2, 2, 3), np.uint8)  # type: ignore[index]
    with pytest.raises(KeyError):
        images["no such image"]


def test_properties_are_read_only_strings(slide):
    properties = slide.properties
    assert isinstance(properties, Mapping) and len(properties) > 0
    assert all(isinstance(key, str) and isinstance(value, str) for key, value in properties.items())
    with pytest.raises(TypeError):
        properties["wsikit.mpp-x"] = "1"  # type: ignore[index]
    assert slide.properties == properties


def test_resolution_is_read_and_written_the_same_by_every_backend(slide):
    # Every sample is written at 0.25 microns per pixel, objective power 40.
    assert slide.mpp == pytest.approx((0.25, 0.25))
    assert slide.objective_power == pytest.approx(40.0)
    assert float(slide.properties["wsikit.mpp-y"]) == pytest.approx(slide.mpp[0])
    assert float(slide.properties["wsikit.mpp-x"]) == pytest.approx(slide.mpp[1])
    assert float(slide.properties["wsikit.objective-power"]) == pytest.approx(40.0)


# -- lifecycle --------------------------------------------------------------------------------------
def test_pickling_reopens_the_same_slide(slide):
    clone = pickle.loads(pickle.dumps(slide))
    try:
        assert type(clone) is type(slide) and clone is not slide
        assert clone.path == slide.path and clone.level_shapes == slide.level_shapes
        for level in range(slide.level_count):
            np.testing.assert_array_equal(clone.extract_region((5, 7), (60, 80), level=level),
                                          slide.extract_region((5, 7), (60, 80), level=level))
        assert sorted(clone.associated_images) == sorted(slide.associated_images)
    finally:
        clone.close()


def test_a_closed_slide_refuses_to_read(sample):
    slide = _open(sample)
    assert slide.extract_region((0, 0), (8, 8)).shape[:2] == (8, 8)
    slide.close()
    slide.close()  # closing twice is harmless
    with pytest.raises(ValueError, match="closed"):
        slide.extract_region((0, 0), (8, 8))
    with pytest.raises(ValueError, match="closed"):
        slide.get_thumbnail((32, 32))
    with pytest.raises(ValueError, match="closed"):
        slide.read_regions([(0, 0)], (8, 8))
    with pytest.raises(ValueError, match="closed"):
        slide.generate_tiles(shape=64)


def test_the_slide_is_a_context_manager_that_closes(sample):
    opened = _open(sample)
    with opened as slide:
        assert slide is opened
        assert slide.extract_region((0, 0), (8, 8)).shape[:2] == (8, 8)
    with pytest.raises(ValueError, match="closed"):
        opened.extract_region((0, 0), (8, 8))


# -- argument checks --------------------------------------------------------------------------------
def test_levels_out_of_range_are_value_errors(slide):
    for level in (slide.level_count, -1, 99):
        with pytest.raises(ValueError, match="level"):
            slide.extract_region((0, 0), (8, 8), level=level)
        with pytest.raises(ValueError, match="level"):
            slide.get_image_shape(level)
        with pytest.raises(ValueError, match="level"):
            slide.read_regions([(0, 0)], (8, 8), level=level)
        with pytest.raises(ValueError, match="level"):
            slide.generate_tiles(shape=64, level=level)


def test_levels_of_another_type_are_type_errors(slide):
    for level in (1.0, "0", True):
        with pytest.raises(TypeError, match="level"):
            slide.extract_region((0, 0), (8, 8), level=level)


@pytest.mark.parametrize("size", [(-1, 8), (8, 0), 0, -5])
def test_sizes_below_one_pixel_are_value_errors(slide, size):
    with pytest.raises(ValueError, match="size"):
        slide.extract_region((0, 0), size)
    with pytest.raises(ValueError, match="size"):
        slide.read_regions([(0, 0)], size)
    with pytest.raises(ValueError, match="size"):
        slide.get_thumbnail(size)


@pytest.mark.parametrize("location,size", [((0.5, 0), (8, 8)), ((0, 0), (8, "8")), ("ab", (8, 8)), ((0, 0, 0), (8, 8))])
def test_locations_and_sizes_that_are_not_int_pairs_are_type_errors(slide, location, size):
    with pytest.raises(TypeError):
        slide.extract_region(location, size)


def test_a_bad_location_among_many_fails_at_its_turn(slide):
    regions = slide.read_regions([(0, 0), (0.5, 0), (8, 8)], (8, 8))
    assert next(regions).shape[:2] == (8, 8)
    with pytest.raises(TypeError, match="location"):
        next(regions)


def test_tiling_arguments_are_checked_when_asked(slide):
    with pytest.raises(ValueError, match="shape"):
        slide.generate_tiles(shape=0)
    with pytest.raises(ValueError, match="stride"):
        slide.generate_tiles(shape=64, stride=(0, 64))
    with pytest.raises(ValueError, match="errors"):
        slide.generate_tiles(shape=64, errors="ignore")
    with pytest.raises(ValueError, match="workers"):
        slide.generate_tiles(shape=64, workers=0)
    with pytest.raises(TypeError, match="shape"):
        slide.generate_tiles(shape=64.0)


def test_unknown_options_are_type_errors(slide, sample):
    with pytest.raises(TypeError, match="no_such_option"):
        slide.extract_region((0, 0), (8, 8), no_such_option=1)
    with pytest.raises(TypeError, match="no_such_option"):
        wsikit.open_slide(sample.path, backend=sample.backend, no_such_option=1)
