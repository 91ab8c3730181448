"""The drop-in's behaviour where openslide-python's users rely on it (scenarios adapted from
openslide-python's own tests): missing and unsupported files, bad arguments, closed slides,
errors catchable both ways, plain images through ImageSlide, caches, pickling, threads."""
from __future__ import annotations

import ctypes
import pickle
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import tifffile
from PIL import Image

import wsikit
import wsikit.compat.openslide as compat
from tests.helpers import real_slide
from wsikit.errors import CorruptSlideError, SlideError, UnsupportedFormatError


def test_module_surface():
    assert isinstance(compat.__version__, str) and isinstance(compat.__library_version__, str)
    names = ["BACKGROUND_COLOR", "BARCODE", "BOUNDS_HEIGHT", "BOUNDS_WIDTH", "BOUNDS_X", "BOUNDS_Y", "COMMENT",
             "MPP_X", "MPP_Y", "OBJECTIVE_POWER", "QUICKHASH1", "VENDOR"]
    import openslide

    for name in names:
        assert getattr(compat, f"PROPERTY_NAME_{name}") == getattr(openslide, f"PROPERTY_NAME_{name}")
    assert issubclass(compat.OpenSlide, compat.AbstractSlide) and issubclass(compat.ImageSlide, compat.AbstractSlide)


def test_detect_format_and_open_missing_or_unsupported(tmp_path, synthetic, reference):
    text = tmp_path / "setup.py"
    text.write_text("print('not a slide')\n")
    for path in (tmp_path / "__missing_file", text):
        assert compat.OpenSlide.detect_format(path) is None
        assert reference.OpenSlide.detect_format(str(path)) is None
        with pytest.raises(compat.OpenSlideUnsupportedFormatError) as info:
            compat.OpenSlide(path)
        assert isinstance(info.value, compat.OpenSlideError) and isinstance(info.value, UnsupportedFormatError)
        assert info.value.path == str(path)
    assert compat.OpenSlide.detect_format(synthetic["svs"]) == "aperio"
    assert compat.OpenSlide.detect_format(synthetic["png"]) is None  # a picture: ImageSlide's
    with pytest.raises(FileNotFoundError):
        compat.open_slide(tmp_path / "__missing_file")  # as openslide-python: ImageSlide's OSError
    with pytest.raises(OSError):
        compat.open_slide(text)


def test_unopenable_slide_is_openslide_and_wsikit_error(tmp_path):
    path = tmp_path / "unopenable.tiff"
    with tifffile.TiffWriter(path) as tif:
        tif.write(np.zeros((512, 512, 3), np.uint8), tile=(256, 256), photometric="rgb", compression="jpeg")
    data = bytearray(path.read_bytes())
    page = tifffile.TiffFile(path).pages[0]
    offset = page.dataoffsets[0]
    data[offset : offset + page.databytecounts[0]] = b"\xff" * page.databytecounts[0]
    path.write_bytes(bytes(data))
    with compat.OpenSlide(path) as slide:
        with pytest.raises(compat.OpenSlideError) as info:
            slide.read_region((0, 0), 0, (16, 16))
        assert isinstance(info.value, CorruptSlideError) and isinstance(info.value, SlideError)
        assert str(path) in str(info.value)
        # no latching: another part of the slide still reads
        assert np.asarray(slide.read_region((300, 300), 0, (16, 16)))[:, :, 3].min() == 255


def test_bad_arguments_as_openslide(synthetic, reference):
    with compat.OpenSlide(synthetic["svs"]) as ours, reference.OpenSlide(synthetic["svs"]) as theirs:
        assert ours.read_region((-10, -10), 1, (400, 400)).size == (400, 400)
        assert ours.read_region((0, 0), 1, (400, 0)).size == (400, 0)
        for level in (3, 7, -1):  # a level the slide does not have: transparent, as OpenSlide
            mine, expected = ours.read_region((0, 0), level, (100, 100)), theirs.read_region((0, 0), level, (100, 100))
            np.testing.assert_array_equal(np.asarray(mine), np.asarray(expected))
        with pytest.raises(compat.OpenSlideError):
            ours.read_region((0, 0), 1, (400, -5))
        with pytest.raises(ctypes.ArgumentError):
            ours.read_region((1.5, 0), 0, (10, 5))  # type: ignore[arg-type]
        assert ours.read_region((np.int64(3), np.int32(4)), np.int64(0), (np.int64(5), 6)).size == (5, 6)
        assert ours.get_thumbnail((100, 100)).size == theirs.get_thumbnail((100, 100)).size


def test_closed_slide_raises_as_openslide(synthetic):
    slide = compat.OpenSlide(synthetic["svs"])
    props, associated = slide.properties, slide.associated_images
    slide.close()
    for use in (lambda: slide.read_region((0, 0), 0, (100, 100)), slide.close, lambda: props["openslide.vendor"],
                lambda: associated["label"], lambda: slide.level_count):
        with pytest.raises(ctypes.ArgumentError):
            use()
    with pytest.raises(ValueError):  # also a ValueError, as wsikit's closed slides
        slide.read_region((0, 0), 0, (1, 1))
    with compat.OpenSlide(synthetic["svs"]) as other:
        assert other.level_count == 3
    with pytest.raises(ctypes.ArgumentError):
        other.level_count


def test_open_slide_gives_image_slide_for_pictures(synthetic, reference):
    with compat.open_slide(synthetic["svs"]) as slide:
        assert isinstance(slide, compat.OpenSlide)
    with compat.open_slide(synthetic["png"]) as picture:
        assert isinstance(picture, compat.ImageSlide)


def test_plain_16_bit_tiff_reads_as_pillow(reference):
    path = real_slide("smalltif.tif")
    with compat.open_slide(path) as ours, reference.open_slide(path) as theirs:
        assert isinstance(ours, compat.ImageSlide) and isinstance(theirs, reference.ImageSlide)
        assert ours.level_dimensions == theirs.level_dimensions
        for location, size in (((0, 0), (640, 480)), ((600, -10), (100, 100)), ((-20, 300), (200, 300))):
            np.testing.assert_array_equal(np.asarray(ours.read_region(location, 0, size)),
                                          np.asarray(theirs.read_region(location, 0, size)))
    # wsikit's OpenSlide backend takes it the same way (OpenSlide itself refuses it)
    from wsikit.backends.openslide import OpenSlideBackend

    with OpenSlideBackend(path) as backend:
        pillow = np.asarray(Image.open(path).convert("RGBA"))[:, :, :3]
        np.testing.assert_array_equal(backend.extract_region((0, 0), backend.shape), pillow)
        assert backend.properties["wsikit.vendor"] == "plain-image"


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_openslide_backend_reads_plain_pictures_as_pillow(tmp_path, fmt):
    from wsikit.backends.openslide import OpenSlideBackend

    path = tmp_path / f"picture.{fmt.lower()}"
    Image.fromarray(np.random.default_rng(5).integers(0, 256, (70, 90, 3), dtype=np.uint8)).save(path, fmt)
    with OpenSlideBackend(path) as backend:
        np.testing.assert_array_equal(backend.extract_region((0, 0), (70, 90)),
                                      np.asarray(Image.open(path).convert("RGB")))
    (tmp_path / "notes.txt").write_text("no image")
    with pytest.raises(UnsupportedFormatError):
        OpenSlideBackend(tmp_path / "notes.txt")


def test_image_slide_as_openslide_python(synthetic, reference):
    path = synthetic["png"]
    assert compat.ImageSlide.detect_format(path) == "PNG"
    assert compat.ImageSlide.detect_format(path + ".missing") is None
    with pytest.raises(OSError):
        compat.ImageSlide(path + ".missing")
    with compat.ImageSlide(path) as ours, reference.ImageSlide(path) as theirs:
        assert repr(ours) == f"ImageSlide({path!r})"
        assert ours.level_count == 1 and ours.level_dimensions == ((300, 250),) and ours.dimensions == (300, 250)
        assert ours.level_downsamples == (1.0,)
        assert ours.get_best_level_for_downsample(0.5) == 0 and ours.get_best_level_for_downsample(3) == 0
        assert ours.properties == {} and ours.associated_images == {}
        assert ours.read_region((-10, -10), 0, (400, 400)).size == (400, 400)
        assert ours.read_region((0, 0), 0, (400, 0)).size == (400, 0)
        np.testing.assert_array_equal(np.asarray(ours.read_region((-10, -10), 0, (400, 400))),
                                      np.asarray(theirs.read_region((-10, -10), 0, (400, 400))))
        with pytest.raises(compat.OpenSlideError):
            ours.read_region((0, 0), 1, (100, 100))
        with pytest.raises(compat.OpenSlideError):
            ours.read_region((0, 0), 0, (400, -5))
        assert ours.get_thumbnail((100, 100)).size == (100, 83)
        ours.set_cache(compat.OpenSlideCache(64 << 10))
    with pytest.raises((ValueError, AttributeError)):
        ours.read_region((0, 0), 0, (100, 100))
    with Image.open(path) as image:
        with compat.ImageSlide(image) as slide:
            assert slide.dimensions == (300, 250) and repr(slide) == f"ImageSlide({image!r})"
        assert image.getpixel((0, 0)) is not None  # a PIL image passed in is left open


def test_set_cache_takes_openslide_caches_and_sizes(synthetic, reference):
    with compat.OpenSlide(synthetic["svs"]) as slide:
        before = np.asarray(slide.read_region((100, 100), 0, (300, 300)))
        for cache in (compat.OpenSlideCache(1 << 20), reference.OpenSlideCache(64 << 10), 0, 32 << 20):
            slide.set_cache(cache)
            np.testing.assert_array_equal(np.asarray(slide.read_region((100, 100), 0, (300, 300))), before)
        assert slide.backend._cache_bytes == 32 << 20
        with pytest.raises(TypeError):
            slide.set_cache("big")


def test_pickled_slide_reopens_and_reads_the_same(synthetic):
    with compat.OpenSlide(synthetic["svs"]) as slide:
        copy = pickle.loads(pickle.dumps(slide))
        with copy:
            assert copy.level_dimensions == slide.level_dimensions
            np.testing.assert_array_equal(np.asarray(copy.read_region((123, 45), 1, (90, 70))),
                                          np.asarray(slide.read_region((123, 45), 1, (90, 70))))
    with compat.ImageSlide(synthetic["png"]) as picture:
        assert pickle.loads(pickle.dumps(picture)).dimensions == (300, 250)


def test_reads_from_many_threads_match_sequential_reads(synthetic):
    rng = np.random.default_rng(7)
    with compat.OpenSlide(synthetic["svs"]) as slide:
        w, h = slide.dimensions
        calls = [((int(rng.integers(-100, w)), int(rng.integers(-100, h))), int(rng.integers(0, 3)), (128, 96))
                 for _ in range(60)]
        sequential = [np.asarray(slide.read_region(*call)) for call in calls]
        slide.set_cache(0)  # every thread decodes for itself
        with ThreadPoolExecutor(4) as pool:
            parallel = list(pool.map(lambda call: np.asarray(slide.read_region(*call)), calls))
        for a, b in zip(sequential, parallel, strict=True):
            np.testing.assert_array_equal(a, b)


def test_options_reach_wsikit(synthetic):
    with compat.OpenSlide(synthetic["svs"], backend="tiff", cache_bytes=0) as slide:
        assert isinstance(slide.backend, wsikit.TiffBackend)


@pytest.mark.parametrize("backend", ["tiff", "openslide"])
def test_read_region_images_can_be_drawn_on(synthetic, reference, backend):
    """openslide-python's regions are ordinary images: pixel access and paste write to them."""
    with compat.OpenSlide(synthetic["svs"], backend=backend) as slide:
        for location in ((100, 50), (-30, -20)):  # inside; partly outside (transparent edge)
            image = slide.read_region(location, 0, (64, 48))
            expected = np.asarray(image).copy()
            image.load()[3, 2] = (1, 2, 3, 4)
            image.paste((9, 9, 9, 255), (0, 0, 2, 2))
            expected[2, 3] = (1, 2, 3, 4)
            expected[:2, :2] = (9, 9, 9, 255)
            np.testing.assert_array_equal(np.asarray(image), expected)


def test_large_regions_from_many_threads_equal_openslide_python(synthetic, reference):
    """Regions of many native tiles read by 4 threads at once (each decoding its own tiles
    while the others read) give openslide-python's pixels."""
    rng = np.random.default_rng(11)
    with compat.OpenSlide(synthetic["svs"]) as slide, reference.OpenSlide(synthetic["svs"]) as theirs:
        w, h = slide.dimensions
        calls = [((int(rng.integers(0, w - 600)), int(rng.integers(0, h - 600))), 0, (600, 600)) for _ in range(24)]
        calls.append(((w - 300, h - 200), 0, (600, 600)))  # past the corner: transparent there
        with ThreadPoolExecutor(4) as pool:
            ours = list(pool.map(lambda call: np.asarray(slide.read_region(*call)), calls))
        for call, pixels in zip(calls, ours, strict=True):
            np.testing.assert_array_equal(pixels, np.asarray(theirs.read_region(*call)))
