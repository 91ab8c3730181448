"""DICOMBackend on the real minimal file small_dicom.dcm, against a reference built here.

The reference mosaic comes from pydicom's own encapsulation helpers (the frames as pydicom
splits them) decoded by Pillow, a decoder wsikit does not use: region by region, frames
crossing, right and bottom edges, padding, tiles and frame addressing must agree bit for bit.
"""
from __future__ import annotations

import io
import pickle
import shutil
import warnings

import numpy as np
import pytest

import wsikit
from tests.helpers import TESTDATA, padded_box, real_slide
from wsikit import CorruptSlideError, DICOMBackend

SHAPE = (2638, 3236)
FRAME = 500


@pytest.fixture(scope="module")
def small_dicom() -> str:
    return real_slide("small_dicom.dcm")


@pytest.fixture(scope="module")
def slide(small_dicom):
    with wsikit.open_slide(small_dicom) as s:
        yield s


@pytest.fixture(scope="module")
def reference(small_dicom) -> np.ndarray:
    """The whole image stitched from pydicom's frames, each decoded by Pillow."""
    import pydicom
    from PIL import Image
    from pydicom.encaps import generate_frames

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(small_dicom, force=True)
    frames = list(generate_frames(ds.PixelData, number_of_frames=int(ds.NumberOfFrames)))
    rows, cols = -(-SHAPE[0] // FRAME), -(-SHAPE[1] // FRAME)
    assert len(frames) == rows * cols == 42
    mosaic = np.zeros((rows * FRAME, cols * FRAME, 3), dtype=np.uint8)
    for k, data in enumerate(frames):
        image = Image.open(io.BytesIO(data))
        assert image.mode == "RGB"  # Pillow follows the JFIF marker: YCbCr converted
        r, c = divmod(k, cols)
        mosaic[r * FRAME : (r + 1) * FRAME, c * FRAME : (c + 1) * FRAME] = np.asarray(image)
    return mosaic[: SHAPE[0], : SHAPE[1]]


def test_opens_the_minimal_file(slide):
    assert isinstance(slide, DICOMBackend)
    assert slide.level_count == 1
    assert slide.shape == SHAPE
    with pytest.deprecated_call():
        assert slide.dimensions == SHAPE  # (rows, columns), unlike OpenSlide's
    assert slide.get_image_shape() == SHAPE
    assert slide.frame_shape == (FRAME, FRAME)
    assert slide.frame_count() == 42
    assert slide.is_rgb
    assert slide.mpp is None  # no Pixel Spacing in the file
    assert dict(slide.associated_images) == {}


def test_no_pydicom_warnings_escape(small_dicom):
    # The file's over-long values make pydicom warn; opening must stay quiet.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with DICOMBackend(small_dicom) as s:
            s.extract_region((0, 0), (10, 10))
    assert [str(w.message) for w in caught] == []


def test_properties(slide):
    props = slide.properties
    assert props["dicom.TransferSyntaxUID"] == "1.2.840.10008.1.2.4.50"
    assert props["dicom.StudyInstanceUID"].startswith("1.2.826.0.1.3680043.8.498.")
    assert props["dicom.SeriesInstanceUID"].startswith("1.2.826.0.1.3680043.8.498.")
    assert props["dicom.tiling"] == "TILED_FULL"
    assert props["dicom.frame-index"] == "basic offset table"
    assert props["dicom.PhotometricInterpretation"] == "RGB"
    assert props["wsikit.vendor"] == "dicom"
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in props.items())


def test_frames_equal_the_reference(slide, reference):
    for index in range(42):
        i, j = slide.frame_coords(index)
        frame = slide.read_frame(index)
        np.testing.assert_array_equal(frame, reference[i : i + FRAME, j : j + FRAME])


def test_declared_rgb_is_read_as_the_ycbcr_it_is(slide, small_dicom, reference):
    # A reader that trusts the header (RGB) and skips the YCbCr conversion is far off.
    import imagecodecs

    data = bytes(slide._levels[0].sources[0].frames.read(slide._fd(small_dicom), 0))
    raw = imagecodecs.jpeg8_decode(data, colorspace="YCbCr", outcolorspace="YCbCr")
    assert np.abs(raw.astype(int) - reference[:FRAME, :FRAME]).mean() > 20
    np.testing.assert_array_equal(slide.extract_region((0, 0), (FRAME, FRAME)), reference[:FRAME, :FRAME])


@pytest.mark.parametrize("location, size", [
    ((0, 0), (1, 1)),
    ((480, 470), (45, 60)),  # four frames meet
    ((250, 250), (1000, 1000)),  # nine frames
    ((0, 3000), (600, 236)),  # right edge, partial frames
    ((2500, 0), (138, 3236)),  # bottom band
    ((2637, 3235), (1, 1)),  # last pixel
    ((0, 0), SHAPE),  # everything
])
def test_regions_equal_the_reference(slide, reference, location, size):
    (i, j), (h, w) = location, size
    np.testing.assert_array_equal(slide.extract_region(location, size), reference[i : i + h, j : j + w])


def test_regions_past_the_edges_are_zero(slide, reference):
    region = slide.extract_region((2600, 3200), (100, 100))
    np.testing.assert_array_equal(region[:38, :36], reference[2600:, 3200:])
    assert not region[38:].any() and not region[:, 36:].any()
    region = slide.extract_region((-10, -20), (30, 40))
    np.testing.assert_array_equal(region[10:, 20:], reference[:20, :20])
    assert not region[:10].any() and not region[:, :20].any()


def test_generate_tiles_counts_and_pixels(slide, reference):
    tiles = list(slide.generate_tiles(shape=500, stride=500, pad=False))
    assert len(tiles) == 30
    padded = list(slide.generate_tiles(shape=500, stride=500, pad=True))
    assert len(padded) == 42
    for tile in tiles[:3] + padded[-3:]:
        i, j = tile.coords
        np.testing.assert_array_equal(tile.image, padded_box(reference, i, j, 500, 500))


def test_generate_tiles_any_shape_and_stride(slide, reference):
    tiles = list(slide.generate_tiles(shape=(300, 700), stride=(450, 650), pad=False, workers=2))
    rows, cols = (SHAPE[0] - 300) // 450 + 1, (SHAPE[1] - 700) // 650 + 1
    assert len(tiles) == rows * cols
    for tile in tiles:
        i, j = tile.coords
        np.testing.assert_array_equal(tile.image, reference[i : i + 300, j : j + 700])


@pytest.mark.parametrize("index, coords", [(0, (0, 0)), (1, (0, 500)), (14, (1000, 0)), (41, (2500, 3000))])
def test_frame_addressing(slide, index, coords):
    assert slide.frame_coords(index) == coords
    assert slide.frame_index(coords) == index


def test_frame_addressing_round_trips(slide):
    assert [slide.frame_index(slide.frame_coords(k)) for k in range(42)] == list(range(42))


@pytest.mark.parametrize("index", [42, 43, -1])
def test_frame_index_out_of_range(slide, index):
    # The seed let index 42 through (its bound check was off by one).
    with pytest.raises(ValueError, match="index"):
        slide.frame_coords(index)


@pytest.mark.parametrize("coords", [(1, 0), (0, 499), (250, 250), (3000, 0), (0, 3500), (-500, 0)])
def test_frame_coords_not_on_a_corner(slide, coords):
    with pytest.raises(ValueError):
        slide.frame_index(coords)


def test_frame_addressing_argument_types(slide):
    with pytest.raises(TypeError):
        slide.frame_coords(1.5)
    with pytest.raises(TypeError):
        slide.frame_index("a")


def test_thumbnail(slide, reference):
    thumb = slide.get_thumbnail((200, 200))
    assert thumb.shape == (163, 200, 3) and thumb.dtype == np.uint8
    # A reduction of the reference (the base class's resampling, not an exact area average).
    from wsikit.pixels import resample_area

    expected = resample_area(reference, (163, 200))
    assert np.abs(thumb.astype(int) - expected).mean() < 10


def test_pickles_and_reopens(slide, reference):
    clone = pickle.loads(pickle.dumps(slide))
    try:
        np.testing.assert_array_equal(clone.extract_region((100, 100), (50, 50)), reference[100:150, 100:150])
    finally:
        clone.close()


def test_reads_after_fork(small_dicom, reference):
    import multiprocessing

    with DICOMBackend(small_dicom) as s:
        s.extract_region((0, 0), (10, 10))  # the parent has used its descriptors and cache
        context = multiprocessing.get_context("fork")
        with context.Pool(1) as pool:
            region = pool.apply(_read_corner, (s,))
    np.testing.assert_array_equal(region, reference[1000:1100, 1000:1100])


def _read_corner(slide):
    return slide.extract_region((1000, 1000), (100, 100))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the seed's pydicom calls
def test_matches_the_seed_frames(small_dicom):
    """The seed (PathML's slide backends) has a DICOMBackend that decodes whole frames with
    Pillow: same pixels."""
    import importlib.util

    loader = TESTDATA.parent / "seed" / "load_seed.py"
    if not loader.exists():
        pytest.skip("the seed is not in ../shared")
    try:
        spec = importlib.util.spec_from_file_location("load_seed", loader)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        seed = module.load_seed()
        old = seed.DICOMBackend(small_dicom)
    except Exception as exc:  # the seed's own dependencies (loguru, ...) may be missing
        pytest.skip(f"the seed does not load here: {exc}")
    with DICOMBackend(small_dicom) as s:
        for index in (0, 6, 20, 41):
            frame = s.read_frame(index)
            seed_frame = np.asarray(old.extract_region(index))
            np.testing.assert_array_equal(seed_frame[: frame.shape[0], : frame.shape[1]], frame)


def test_open_slide_picks_dicom_for_file_and_folder(small_dicom, tmp_path):
    copy = tmp_path / "slide" / "one.dcm"
    copy.parent.mkdir()
    shutil.copy(small_dicom, copy)
    with wsikit.open_slide(copy) as s:
        assert isinstance(s, DICOMBackend)
    with wsikit.open_slide(copy.parent) as s:
        assert isinstance(s, DICOMBackend) and s.shape == SHAPE
    with wsikit.open_slide(copy.parent, backend="dicom") as s:
        assert s.shape == SHAPE


def test_truncated_copy_is_corrupt(small_dicom, tmp_path):
    data = open(small_dicom, "rb").read()
    for cut in (len(data) // 2, len(data) - 20, 1400):
        path = tmp_path / f"cut{cut}.dcm"
        path.write_bytes(data[:cut])
        with pytest.raises(CorruptSlideError, match="truncated|Pixel Data"):
            DICOMBackend(path)
