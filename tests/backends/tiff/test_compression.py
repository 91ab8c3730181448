"""A TIFF whose compression no decoder here reads is refused when opened, naming it (issue 11);
TiffBackend.can_read asks no other library, and a level stored as one huge chunk defers.

The files are written with tifffile, then the Compression tag (259) of chosen IFDs is
rewritten in the bytes: the data stays what it was, only the declared compression changes.
"""
from __future__ import annotations

import struct

import imagecodecs
import numpy as np
import pytest
import tifffile

import wsikit
from wsikit.backends.tiff import TiffBackend
from wsikit.errors import UnsupportedFormatError
from wsikit.samples.svs import write_sample_svs

from .test_multichannel import write_ome_tiff

_COMPRESSION_TAG = 259


def set_compression(path: str, code: int, ifds: set[int] | None = None) -> str:
    """Declare ``code`` as the compression of the IFDs numbered ``ifds`` (every IFD of the
    main chain when None) of a classic little-endian TIFF; returns ``path``."""
    data = bytearray(open(path, "rb").read())
    assert data[:4] == b"II*\x00", "a classic little-endian TIFF"
    offset, number, patched = struct.unpack_from("<I", data, 4)[0], 0, 0
    while offset:
        count = struct.unpack_from("<H", data, offset)[0]
        for k in range(count):
            entry = offset + 2 + 12 * k
            tag, kind = struct.unpack_from("<HH", data, entry)
            if tag == _COMPRESSION_TAG and (ifds is None or number in ifds):
                assert kind == 3, "Compression is a SHORT"
                struct.pack_into("<H", data, entry + 8, code)
                patched += 1
        offset = struct.unpack_from("<I", data, offset + 2 + 12 * count)[0]
        number += 1
    assert patched, "no Compression tag rewritten"
    with open(path, "wb") as f:
        f.write(data)
    return path


def tiled_rgb(path: str) -> str:
    image = np.random.default_rng(0).integers(0, 256, (96, 128, 3), dtype=np.uint8)
    tifffile.imwrite(path, image, tile=(32, 32), compression="zlib", photometric="rgb")
    return path


# 65000: known to tifffile (EER_V0), decoded only inside EER files; 32809: known, no
# decoder (THUNDERSCAN); 12345: not a compression tifffile knows.
@pytest.mark.parametrize("code, name", [(65000, "EER_V0"), (32809, "THUNDERSCAN"),
                                        (12345, "a value tifffile does not know")])
def test_unknown_compression_is_refused_when_opening(tmp_path, code, name):
    path = set_compression(tiled_rgb(str(tmp_path / f"compression-{code}.tif")), code)
    assert TiffBackend.can_read(path) and not TiffBackend.defers_to_others(path)
    with pytest.raises(UnsupportedFormatError, match=f"level 0 uses TIFF compression {code} \\({name}\\)") as error:
        wsikit.open_slide(path, backend="tiff")
    assert error.value.path == path


# OpenSlide's libtiff does not know these either (32809 it knows: a 4-bit ThunderScan TIFF
# is OpenSlide's to read, so open_slide may hand that one on).
@pytest.mark.parametrize("code, name", [(65000, "EER_V0"), (12345, "a value tifffile does not know")])
def test_file_no_backend_decodes_ends_with_the_compression(tmp_path, code, name):
    """open_slide ends with the TIFF backend's reason, not with another reader's."""
    path = set_compression(tiled_rgb(str(tmp_path / f"compression-{code}.tif")), code)
    with pytest.raises(UnsupportedFormatError, match=f"level 0 uses TIFF compression {code} \\({name}\\)") as error:
        wsikit.open_slide(path)
    assert error.value.path == path


def test_compression_imagecodecs_was_built_without_is_refused(tmp_path):
    if imagecodecs.JETRAW.available:
        pytest.skip("this imagecodecs has the Jetraw codec")
    path = set_compression(tiled_rgb(str(tmp_path / "jetraw.tif")), 48124)
    with pytest.raises(UnsupportedFormatError, match=r"compression 48124 \(JETRAW\)"):
        wsikit.open_slide(path, backend="tiff")


def test_unknown_compression_of_ycbcr_level_0_is_refused(tmp_path):
    """A YCbCr page that is not JPEG is no layout wsikit reads; one of an unknown
    compression is still recognised, so that opening names the compression."""
    path = write_sample_svs(tmp_path / "sample.svs", shape=(512, 768), factors=(4,), tile=128)
    set_compression(path, 65000, {0})
    assert TiffBackend.can_read(path)
    for backend in ("tiff", None):
        with pytest.raises(UnsupportedFormatError, match=r"level 0 uses TIFF compression 65000 \(EER_V0\)"):
            wsikit.open_slide(path, backend=backend)


def test_unknown_compression_of_a_lower_level_is_refused(tmp_path):
    path = write_sample_svs(tmp_path / "sample.svs", shape=(512, 768), factors=(4,), tile=128)
    # IFDs: level 0, thumbnail, level 1, label, macro
    set_compression(path, 65000, {2})
    with pytest.raises(UnsupportedFormatError, match=r"level 1 uses TIFF compression 65000 \(EER_V0\)"):
        wsikit.open_slide(path, backend="tiff")


def test_associated_image_of_unknown_compression_is_not_offered(tmp_path):
    path = write_sample_svs(tmp_path / "sample.svs", shape=(512, 768), factors=(4,), tile=128)
    with wsikit.open_slide(path, backend="tiff") as slide:
        label = slide.associated_images["label"].copy()
        region = slide.extract_region((0, 0), (512, 768))
    set_compression(path, 12345, {1})  # the thumbnail
    with wsikit.open_slide(path, backend="tiff") as slide:
        assert set(slide.associated_images) == {"label", "macro"}
        np.testing.assert_array_equal(slide.associated_images["label"], label)
        np.testing.assert_array_equal(slide.extract_region((0, 0), (512, 768)), region)


def test_unknown_compression_of_a_plane_is_refused(tmp_path):
    data = np.random.default_rng(1).integers(0, 2**16, (1, 1, 3, 128, 128), dtype=np.uint16)
    path = write_ome_tiff(tmp_path / "planes.ome.tif", data, levels=2, label=False)
    with wsikit.open_slide(path, backend="tiff") as slide:
        assert slide.sizes == (1, 3, 1)
    set_compression(path, 65000, {1})  # the second channel of level 0
    with pytest.raises(UnsupportedFormatError, match=r"level 0 uses TIFF compression 65000 \(EER_V0\)"):
        wsikit.open_slide(path, backend="tiff")


def test_can_read_and_defers_to_others_ask_no_other_library(tmp_path, monkeypatch):
    """A level stored as one chunk over 256 MB is read, but other readers are asked first;
    deciding that opens no other library (OpenSlide is not asked)."""
    import openslide

    from fuzz.craft import tile_bomb

    def forbidden(*args, **kwargs):
        raise AssertionError("the TIFF backend asked OpenSlide")

    monkeypatch.setattr(openslide.OpenSlide, "detect_format", forbidden)
    huge = tmp_path / "one-huge-tile.tif"
    huge.write_bytes(tile_bomb())
    assert TiffBackend.can_read(str(huge)) and TiffBackend.defers_to_others(str(huge))
    plain = tiled_rgb(str(tmp_path / "plain.tif"))
    assert TiffBackend.can_read(plain) and not TiffBackend.defers_to_others(plain)
    text = tmp_path / "notes.tif"
    text.write_text("not a TIFF")
    assert not TiffBackend.can_read(str(text)) and not TiffBackend.defers_to_others(str(text))
