"""open_slide's choice of backend and the errors of unreadable files."""
import os

import numpy as np
import pytest
import tifffile

import wsikit
from wsikit import CorruptSlideError, SlideError, UnsupportedFormatError


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        wsikit.open_slide(tmp_path / "nope.svs")


def test_unsupported_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("not a slide at all\n" * 10)
    with pytest.raises(UnsupportedFormatError) as info:
        wsikit.open_slide(path)
    assert info.value.path == str(path) and "no backend" in info.value.reason
    assert isinstance(info.value, SlideError)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.svs"
    path.write_bytes(b"")
    with pytest.raises(SlideError):
        wsikit.open_slide(path)


def test_truncated_tiff_is_corrupt(sample_svs, tmp_path):
    data = open(sample_svs, "rb").read()
    path = tmp_path / "truncated.svs"
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(SlideError) as info:
        slide = wsikit.open_slide(path)
        for level in range(slide.level_count):
            slide.extract_region((0, 0), slide.get_image_shape(level), level=level)
    assert str(path) in str(info.value)


def test_corrupt_tile_data(tmp_path):
    image = (np.arange(64 * 64 * 3) % 251).astype(np.uint8).reshape(64, 64, 3)
    path = tmp_path / "bad.tif"
    tifffile.imwrite(path, image, tile=(32, 32), compression="jpeg", photometric="rgb")
    with tifffile.TiffFile(path) as tif:
        offset = tif.pages[0].dataoffsets[1]
    data = bytearray(path.read_bytes())
    data[offset: offset + 40] = b"\x00" * 40  # wipe the JPEG header of tile 1
    path.write_bytes(bytes(data))
    slide = wsikit.open_slide(path)
    with pytest.raises(CorruptSlideError) as info:
        slide.extract_region((0, 32), (32, 32))
    assert info.value.path == str(path)
    with pytest.raises(CorruptSlideError):
        slide.extract_region((0, 32), (32, 32))  # every time, not only the first
    assert slide.extract_region((0, 0), (32, 32)).shape == (32, 32, 3)  # the others still read


def test_forced_backend(sample_svs):
    assert type(wsikit.open_slide(sample_svs, backend="openslide")).__name__ == "OpenSlideBackend"
    assert type(wsikit.open_slide(sample_svs, backend="tiff")).__name__ == "TiffBackend"
    with pytest.raises(ValueError, match="backend"):
        wsikit.open_slide(sample_svs, backend="nope")


def test_forced_backend_that_cannot_read(tmp_path):
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, np.zeros((10, 10), np.uint8))  # untiled: OpenSlide refuses
    with pytest.raises(UnsupportedFormatError, match="openslide"):
        wsikit.open_slide(path, backend="openslide")
    assert wsikit.open_slide(path).get_image_shape() == (10, 10)


def test_directory_is_not_a_slide(tmp_path):
    with pytest.raises((IsADirectoryError, UnsupportedFormatError)):
        wsikit.open_slide(tmp_path)


def test_path_types(sample_svs):
    assert wsikit.open_slide(os.fsencode(sample_svs)).get_image_shape() == (1024, 1536)
    with pytest.raises(TypeError):
        wsikit.open_slide(123)


def test_pickle_reopens(sample_svs):
    import pickle

    slide = wsikit.open_slide(sample_svs)
    copy = pickle.loads(pickle.dumps(slide))
    assert copy.path == slide.path and type(copy) is type(slide)
    np.testing.assert_array_equal(copy.extract_region((5, 6), 50), slide.extract_region((5, 6), 50))


def test_options_a_reader_does_not_take_send_the_file_on_or_say_who_takes_them(tmp_path):
    """Detection skips backends that recognise the file but not the options asked for; when
    none of those that recognise it takes them, the TypeError names the file and who does."""
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, np.zeros((64, 64, 3), np.uint8), tile=(32, 32), photometric="rgb")
    with pytest.raises(TypeError) as info:
        wsikit.open_slide(path, optical_path="1")
    assert str(path) in str(info.value) and "optical_path" in str(info.value) and "dicom" in str(info.value)
    assert wsikit.DICOMBackend.open_options() >= {"optical_path", "focal_plane"}
    with wsikit.open_slide(path, cache_bytes=0) as slide:  # every backend takes cache_bytes
        assert slide.name == "tiff"
