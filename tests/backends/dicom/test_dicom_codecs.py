"""Frame decoding: colour follows the codestream, and the header where the codestream is silent."""
from __future__ import annotations

import imagecodecs
import numpy as np
import pytest
from PIL import Image

from wsikit.backends.dicom.codecs import (
    EXPLICIT_LITTLE,
    FrameShapeError,
    frame_decoder,
    guess_transfer_syntax,
    ybr_full_to_rgb,
)
from wsikit.errors import UnsupportedFormatError
from wsikit.samples.svs import tissue_texture

RGB = tissue_texture((64, 96), seed=9)
YCC = np.asarray(Image.fromarray(RGB).convert("YCbCr"))  # JFIF full-range YCbCr, as DICOM YBR_FULL
# Pillow's own way back (the round trip itself is off by up to 3 from rounding).
YCC_AS_RGB = np.asarray(Image.fromarray(YCC, "YCbCr").convert("RGB"))


def decoder(syntax, photometric, samples=3, dtype=np.uint8, rows=64, cols=96):
    return frame_decoder(syntax, photometric=photometric, samples=samples, rows=rows, cols=cols, dtype=np.dtype(dtype))


def pillow_decoded(data) -> np.ndarray:
    import io

    return np.asarray(Image.open(io.BytesIO(bytes(data))).convert("RGB"))


def test_ybr_full_to_rgb_agrees_with_pillow():
    assert np.abs(ybr_full_to_rgb(YCC).astype(int) - YCC_AS_RGB).max() <= 1


def test_native_ybr_full():
    array = decoder(EXPLICIT_LITTLE, "YBR_FULL")(YCC.tobytes())
    assert np.abs(array.astype(int) - YCC_AS_RGB).max() <= 1


def test_native_ybr_full_422():
    # Two pixels share one Cb and one Cr: Y0 Y1 Cb Cr.
    pairs = YCC.reshape(64, 48, 2, 3)
    packed = np.stack([pairs[:, :, 0, 0], pairs[:, :, 1, 0], pairs[:, :, 0, 1], pairs[:, :, 0, 2]], axis=-1)
    array = decoder(EXPLICIT_LITTLE, "YBR_FULL_422")(packed.astype(np.uint8).tobytes())
    expected = ybr_full_to_rgb(np.concatenate([YCC[:, :, :1], np.repeat(YCC[:, ::2, 1:], 2, axis=1)], axis=2))
    np.testing.assert_array_equal(array, expected)


def test_native_planar_rgb():
    planar = np.ascontiguousarray(RGB.transpose(2, 0, 1))
    array = frame_decoder(EXPLICIT_LITTLE, photometric="RGB", samples=3, rows=64, cols=96, dtype=np.dtype(np.uint8),
                          planar=1)(planar.tobytes())
    np.testing.assert_array_equal(array, RGB)


def test_jpeg_that_says_rgb_is_not_converted():
    data = imagecodecs.jpeg8_encode(RGB, level=95, outcolorspace="RGB")  # Adobe marker, transform 0
    array = decoder("1.2.840.10008.1.2.4.50", "YBR_FULL_422")(data)  # the header is wrong here
    np.testing.assert_array_equal(array, pillow_decoded(data))
    assert np.abs(array.astype(int) - RGB).mean() < 6


def test_jpeg_with_jfif_is_converted_whatever_the_header():
    data = imagecodecs.jpeg8_encode(RGB, level=95)
    for photometric in ("RGB", "YBR_FULL_422", "YBR_FULL"):
        array = decoder("1.2.840.10008.1.2.4.50", photometric)(data)
        np.testing.assert_array_equal(array, pillow_decoded(data))
        assert np.abs(array.astype(int) - RGB).mean() < 6, photometric


def test_jpeg2000_without_transform_follows_a_ybr_header():
    data = imagecodecs.jpeg2k_encode(YCC, level=0, codecformat="J2K", reversible=True, mct=False)
    array = decoder("1.2.840.10008.1.2.4.90", "YBR_FULL")(data)
    assert np.abs(array.astype(int) - YCC_AS_RGB).max() <= 1
    # With the codestream's own transform (YBR_RCT) the decoder gives RGB back exactly.
    data = imagecodecs.jpeg2k_encode(RGB, level=0, codecformat="J2K", reversible=True, mct=True)
    np.testing.assert_array_equal(decoder("1.2.840.10008.1.2.4.90", "YBR_RCT")(data), RGB)


def test_lossless_jpeg_without_markers_follows_the_header():
    data = bytearray(imagecodecs.jpeg8_encode(YCC, lossless=True, predictor=1))
    # Drop the Adobe marker and name the components 1, 2, 3: the stream says nothing of colour.
    at = data.index(b"\xff\xee")
    (length,) = np.frombuffer(bytes(data[at + 2 : at + 4]), ">u2")
    del data[at : at + 2 + int(length)]
    sof = data.index(b"\xff\xc3")
    for k in range(3):
        data[sof + 10 + 3 * k] = k + 1
    np.testing.assert_array_equal(decoder("1.2.840.10008.1.2.4.70", "RGB")(bytes(data)), YCC)
    assert np.abs(decoder("1.2.840.10008.1.2.4.70", "YBR_FULL")(bytes(data)).astype(int) - YCC_AS_RGB).max() <= 1


def test_codestream_larger_than_the_header_is_refused():
    data = imagecodecs.jpeg8_encode(RGB, level=90)
    with pytest.raises(FrameShapeError):
        decoder("1.2.840.10008.1.2.4.50", "YBR_FULL_422", rows=32, cols=96)(data)
    data = imagecodecs.jpeg2k_encode(RGB, level=0, codecformat="J2K", reversible=True)
    with pytest.raises(FrameShapeError):
        decoder("1.2.840.10008.1.2.4.90", "RGB", rows=64, cols=48)(data)
    data = imagecodecs.jpeg2k_encode(RGB, level=0, codecformat="JP2", reversible=True)
    with pytest.raises(FrameShapeError):
        decoder("1.2.840.10008.1.2.4.90", "RGB", rows=64, cols=48)(data)


def test_jpeg_ls_size_is_read_before_decoding():
    """JPEG-LS declares its size in SOF55 (0xFFF7), or, over 65,535, in an LSE segment: a
    frame that declares more than the header's frame is refused before CharLS allocates it."""
    data = imagecodecs.jpegls_encode(np.zeros((3, 70000), np.uint8))
    with pytest.raises(FrameShapeError, match="3 x 70000"):
        decoder("1.2.840.10008.1.2.4.80", "MONOCHROME2", samples=1, rows=64, cols=96)(data)
    data = imagecodecs.jpegls_encode(RGB[:, :, 0])
    with pytest.raises(FrameShapeError, match="64 x 96"):
        decoder("1.2.840.10008.1.2.4.80", "MONOCHROME2", samples=1, rows=32, cols=96)(data)
    array = decoder("1.2.840.10008.1.2.4.80", "MONOCHROME2", samples=1)(data)
    np.testing.assert_array_equal(array[:, :, 0], RGB[:, :, 0])


def test_rle_sixteen_bit_grayscale():
    from pydicom.pixels.encoders import RLELosslessEncoder

    gray = (RGB[:, :, 0].astype(np.uint16) * 257)
    data = RLELosslessEncoder.encode(gray, rows=64, columns=96, samples_per_pixel=1, bits_allocated=16, bits_stored=16,
                                     pixel_representation=0, photometric_interpretation="MONOCHROME2",
                                     number_of_frames=1)
    array = decoder("1.2.840.10008.1.2.5", "MONOCHROME2", samples=1, dtype=np.uint16)(data)
    np.testing.assert_array_equal(array[:, :, 0], gray)


def test_guessing_the_syntax_from_the_first_bytes():
    assert guess_transfer_syntax(bytes(imagecodecs.jpeg8_encode(RGB))[:16]) == "1.2.840.10008.1.2.4.50"
    j2k = bytes(imagecodecs.jpeg2k_encode(RGB, codecformat="J2K"))
    assert guess_transfer_syntax(j2k[:16]) == "1.2.840.10008.1.2.4.91"
    assert guess_transfer_syntax(b"\x00" * 16) is None


def test_unknown_syntax_is_unsupported():
    with pytest.raises(UnsupportedFormatError, match="not one wsikit decodes"):
        decoder("1.2.3.4", "RGB")
    with pytest.raises(UnsupportedFormatError, match="deflated"):
        decoder("1.2.840.10008.1.2.1.99", "RGB")
