"""The memory limit (wsikit.limits): reads that would need more memory in one piece than
the limit allows are refused before anything is allocated, with a LimitError naming the
file; the limit comes from $WSIKIT_MAX_BYTES or set_max_bytes; encoded JPEG / JPEG 2000
tiles are measured from their headers before they are decoded."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import wsikit
from fuzz import craft
from wsikit.samples.backends import backend_unavailable


def _available(name: str) -> bool:
    return backend_unavailable(name) is None


@pytest.fixture
def limit():
    previous = wsikit.get_max_bytes()
    yield wsikit.set_max_bytes
    wsikit.set_max_bytes(previous)


def test_region_and_thumbnail_over_the_limit_are_refused_before_allocation(limit, sample_svs):
    limit(10 * 1024**2)
    with wsikit.open_slide(sample_svs) as slide:
        with pytest.raises(wsikit.LimitError) as info:
            slide.extract_region((0, 0), (4000, 4000))
        message = str(info.value)
        assert "48,000,000" in message and "10,485,760" in message and info.value.path == sample_svs
        assert isinstance(info.value, ValueError) and isinstance(info.value, wsikit.SlideError)
        with pytest.raises(wsikit.LimitError):
            slide.get_thumbnail((3000, 3000))
        with pytest.raises(wsikit.LimitError):
            list(slide.generate_tiles(shape=2000, pad=True))
        assert slide.extract_region((0, 0), (256, 256)).shape == (256, 256, 3)  # still usable


@pytest.mark.parametrize("backend", ["tiff", "openslide"])
def test_native_tiles_over_the_limit_are_refused_at_open(limit, sample_svs, backend):
    if not _available(backend):
        pytest.skip(backend_unavailable(backend))
    limit(128 * 128 * 3 - 1)  # one 256 x 256 native tile no longer fits
    with pytest.raises(wsikit.LimitError, match="native tile"):
        wsikit.open_slide(sample_svs, backend=backend)


@pytest.mark.parametrize("backend", ["tiff", "openslide"])
def test_associated_images_over_the_limit_are_refused(limit, sample_svs, backend):
    if not _available(backend):
        pytest.skip(backend_unavailable(backend))
    with wsikit.open_slide(sample_svs, backend=backend) as slide:
        limit(200 * 200 * 3)
        with pytest.raises(wsikit.LimitError, match="associated image 'label'"):
            slide.associated_images["label"]  # 300 x 300


def test_limit_comes_from_the_environment():
    code = "import wsikit; print(wsikit.get_max_bytes())"
    env = dict(os.environ, WSIKIT_MAX_BYTES="64M")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(64 * 1024**2)
    env["WSIKIT_MAX_BYTES"] = "1.5G"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(int(1.5 * 1024**3))
    assert wsikit.limits.DEFAULT_MAX_BYTES == 2 * 1024**3


def test_set_max_bytes_checks_its_argument(limit):
    previous = wsikit.get_max_bytes()
    assert limit(12345) == previous and wsikit.get_max_bytes() == 12345
    with pytest.raises(ValueError):
        wsikit.set_max_bytes(0)
    with pytest.raises(TypeError):
        wsikit.set_max_bytes(1.5)


def test_jpeg_and_jpeg2000_headers_are_read_before_decoding():
    import imagecodecs

    from wsikit.codestreams import j2k_frame, jpeg_frame
    from wsikit.limits import check_encoded_tile

    tile = np.zeros((64, 48, 3), np.uint8)
    jpeg = imagecodecs.jpeg8_encode(tile)
    assert jpeg_frame(jpeg) == (64, 48, 3, 8)
    check_encoded_tile(jpeg, 7, (64, 48))
    with pytest.raises(wsikit.CorruptSlideError, match="64 x 48"):
        check_encoded_tile(jpeg, 7, (32, 48), path="x.tif")
    check_encoded_tile(jpeg, 7, (80, 48), exact=False)  # a last strip may stop early
    big = bytearray(jpeg)
    craft.set_jpeg_size(big, (65500, 65500))
    with pytest.raises(wsikit.LimitError, match="JPEG header"):
        check_encoded_tile(bytes(big), 7, (64, 48), path="x.tif")
    assert jpeg_frame(b"\xff\xd8\xff\xda\x00\x02") is None and jpeg_frame(b"not a jpeg") is None
    j2k = imagecodecs.jpeg2k_encode(tile, codecformat="J2K")
    assert j2k_frame(j2k)[:3] == (64, 48, 3)
    jp2 = imagecodecs.jpeg2k_encode(tile, codecformat="JP2")
    assert j2k_frame(jp2)[:3] == (64, 48, 3)
    with pytest.raises(wsikit.CorruptSlideError):
        check_encoded_tile(j2k, 33005, (64, 64))
    check_encoded_tile(b"\x00" * 10, 8, (64, 64))  # deflate: its decoder is given the size
