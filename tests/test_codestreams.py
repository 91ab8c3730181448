"""Codestream headers (wsikit.codestreams): what JPEG (ITU-T T.81), JPEG-LS (T.87) and
JPEG 2000 streams and JP2 files (T.800, Annex I) declare, read before any decoder sees
them; malformed data is "unknown", never an exception. The memory limit (check_encoded_tile)
and the DICOM frame decoders both read headers through this one parser."""
from __future__ import annotations

import struct

import imagecodecs
import numpy as np
import pytest

import wsikit
from wsikit.codestreams import (
    SOF55,
    FrameHeader,
    j2k_codestream,
    j2k_frame,
    j2k_header,
    jpeg_frame,
    jpeg_header,
)
from wsikit.limits import check_encoded_tile

RGB = np.zeros((64, 48, 3), np.uint8)


def segment(marker: int, content: bytes) -> bytes:
    """A JPEG marker segment: 0xFF, marker, a length that counts itself, content."""
    return bytes([0xFF, marker]) + struct.pack(">H", len(content) + 2) + content


def frame_header(marker: int, rows: int, columns: int, components: int = 1, bits: int = 8) -> bytes:
    content = struct.pack(">BHHB", bits, rows, columns, components)
    content += b"".join(bytes([k + 1, 0x11, 0]) for k in range(components))
    return segment(marker, content)


def oversize(rows: int, columns: int, width: int = 4) -> bytes:
    """A JPEG-LS LSE segment of id 4 (oversize image dimension), Ye and Xe in ``width`` bytes."""
    return segment(0xF8, bytes([4, width]) + rows.to_bytes(width, "big") + columns.to_bytes(width, "big"))


SOI, EOI = b"\xff\xd8", b"\xff\xd9"
SCAN = segment(0xDA, b"\x01\x01\x00\x00\x00\x00") + b"\x00" * 4 + EOI


# -- JPEG ----------------------------------------------------------------------------------
def test_baseline_jpeg():
    data = imagecodecs.jpeg8_encode(RGB)
    assert jpeg_frame(data) == FrameHeader(64, 48, 3, 8) == (64, 48, 3, 8)
    header = jpeg_header(data)
    assert header.frame == (64, 48, 3, 8) and header.frame_marker == 0xC0
    assert header.jfif and header.adobe_transform is None and header.component_ids == (1, 2, 3)
    assert not header.lossless and not header.jpeg_ls
    assert jpeg_frame(memoryview(data)) == jpeg_frame(bytearray(data)) == (64, 48, 3, 8)


def test_lossless_jpeg_and_the_adobe_marker():
    data = imagecodecs.jpeg8_encode(RGB, lossless=True, predictor=1)
    header = jpeg_header(data)
    assert header.frame == (64, 48, 3, 8) and header.frame_marker == 0xC3 and header.lossless
    assert header.adobe_transform == 0 and not header.jfif  # Adobe, transform 0: the components are RGB


@pytest.mark.parametrize("marker",
                         [0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF, SOF55])
def test_every_frame_header_marker(marker):
    data = SOI + frame_header(marker, 40, 30, 3, 12) + SCAN
    assert jpeg_frame(data) == (40, 30, 3, 12)
    assert jpeg_header(data).lossless == (marker in (0xC3, 0xC7, 0xCB, 0xCF))
    assert jpeg_header(data).jpeg_ls == (marker == SOF55)


@pytest.mark.parametrize("marker", [0xC4, 0xC8, 0xCC])  # DHT, JPG, DAC: segments, not frame headers
def test_segments_that_are_not_frame_headers(marker):
    data = SOI + segment(marker, struct.pack(">BHHB", 8, 9999, 9999, 3)) + frame_header(0xC0, 40, 30) + SCAN
    assert jpeg_frame(data) == (40, 30, 1, 8)


def test_fill_bytes_and_standalone_markers_before_the_frame_header():
    fill, tem = b"\xff\xff\xff", b"\xff\x01"
    data = SOI + fill + tem + segment(0xFE, b"a comment") + b"\xff\xff" + frame_header(0xC1, 7, 9) + SCAN
    assert jpeg_frame(data) == (7, 9, 1, 8)


@pytest.mark.parametrize("data", [
    b"",
    b"not a jpeg at all",
    SOI + SCAN,  # the scan comes first: the tables hold the frame header (TIFF)
    SOI + EOI + frame_header(0xC0, 40, 30),  # after the end of the image
    SOI + segment(0xE0, b"JFIF\x00") + b"\x00\x01",  # not a marker where one must be
    SOI + b"\xff\xc0\x00\x01",  # a length shorter than itself
    SOI + frame_header(0xC0, 40, 30)[:8],  # cut inside the frame header
    SOI + b"\xff\xe0\xff\xff" + b"\x00" * 10 + frame_header(0xC0, 40, 30),  # a segment past the end
])
def test_no_frame_header_is_unknown(data):
    assert jpeg_frame(data) is None
    assert jpeg_header(data).frame is None and jpeg_header(data).frame_marker is None


def test_jpeg_ls_frame_header_sof55():
    """T.87's SOF55 (0xFFF7): the limits parser missed it, the DICOM decoder's found it."""
    data = imagecodecs.jpegls_encode(np.zeros((64, 48), np.uint16))
    assert jpeg_frame(data) == (64, 48, 1, 16)
    header = jpeg_header(data)
    assert header.jpeg_ls and header.frame_marker == SOF55 and not header.lossless


def test_jpeg_ls_oversize_image_dimension_from_charls():
    """Over 65,535 columns the frame header says 0 and an LSE segment of id 4 gives the size."""
    data = imagecodecs.jpegls_encode(np.zeros((3, 70000), np.uint8))
    assert jpeg_frame(data) == (3, 70000, 1, 8)
    assert imagecodecs.jpegls_decode(data).shape == (3, 70000)


@pytest.mark.parametrize("width", [2, 3, 4])
@pytest.mark.parametrize("before", [False, True])
def test_jpeg_ls_oversize_image_dimension(width, before):
    rows, columns = (300, 400) if width == 2 else (70000, 80000)
    lse = oversize(rows, columns, width)
    sof = frame_header(SOF55, 0, 0, 3)
    data = SOI + (lse + sof if before else sof + lse) + SCAN
    assert jpeg_frame(data) == (rows, columns, 3, 8)
    # The frame header's own nonzero numbers stand; the LSE fills in the zeros.
    assert jpeg_frame(SOI + frame_header(SOF55, 5, 0) + lse + SCAN) == (5, columns, 1, 8)
    assert jpeg_frame(SOI + frame_header(SOF55, 5, 6) + lse + SCAN) == (5, 6, 1, 8)


def test_jpeg_ls_malformed_oversize_segment_is_ignored():
    bad_width = segment(0xF8, bytes([4, 5]) + b"\x00" * 10)
    data = SOI + frame_header(SOF55, 0, 0) + bad_width + SCAN
    assert jpeg_frame(data) == (0, 0, 1, 8)
    other_id = segment(0xF8, bytes([1]) + b"\x00" * 10)  # preset coding parameters
    assert jpeg_frame(SOI + other_id + frame_header(SOF55, 20, 10) + SCAN) == (20, 10, 1, 8)


def test_oversize_is_not_for_plain_jpeg():
    data = SOI + oversize(70000, 80000) + frame_header(0xC0, 0, 30) + SCAN
    assert jpeg_frame(data) == (0, 30, 1, 8)  # T.81: 0 lines means a DNL segment follows the scan


# -- JPEG 2000 -----------------------------------------------------------------------------
def boxes(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, content) of each top-level box of a JP2 file with plain 32-bit lengths."""
    found, k = [], 0
    while k < len(data):
        length, kind = struct.unpack_from(">I4s", data, k)
        length = length or len(data) - k
        found.append((kind, data[k + 8 : k + length]))
        k += length
    return found


def box(kind: bytes, content: bytes, form: str = "plain") -> bytes:
    if form == "extended":  # LBox 1: the length is in the 8 bytes after the type
        return struct.pack(">I4sQ", 1, kind, len(content) + 16) + content
    if form == "to-end":  # LBox 0: the box runs to the end of the file
        return struct.pack(">I4s", 0, kind) + content
    return struct.pack(">I4s", len(content) + 8, kind) + content


def test_j2k_codestream_and_its_cod_segment():
    lossless = imagecodecs.jpeg2k_encode(RGB, codecformat="J2K", reversible=True, mct=True)
    header = j2k_header(lossless)
    assert header.frame == j2k_frame(lossless) == (64, 48, 3, 8)
    assert header.reversible and header.multiple_component_transform
    lossy = imagecodecs.jpeg2k_encode(RGB, codecformat="J2K", level=40, reversible=False, mct=False)
    header = j2k_header(lossy)
    assert header.frame == (64, 48, 3, 8) and not header.reversible and not header.multiple_component_transform
    assert j2k_frame(imagecodecs.jpeg2k_encode(np.zeros((30, 20), np.uint16), codecformat="J2K")) == (30, 20, 1, 16)


def test_j2k_image_offsets_are_taken_off_the_size():
    stream = bytearray(imagecodecs.jpeg2k_encode(RGB, codecformat="J2K"))
    struct.pack_into(">II", stream, 8, 48 + 10, 64 + 20)  # Xsiz, Ysiz
    struct.pack_into(">II", stream, 16, 10, 20)  # XOsiz, YOsiz
    assert j2k_frame(bytes(stream)) == (64, 48, 3, 8)


@pytest.mark.parametrize("form", ["plain", "extended", "to-end"])
def test_jp2_box_lengths(form):
    """T.800 I.4: LBox 1 means a 64-bit XLBox follows the type; LBox 0, to the end of the file."""
    jp2 = imagecodecs.jpeg2k_encode(RGB, codecformat="JP2")
    signature, *others = boxes(jp2)
    assert signature[0] == b"jP  "
    codestream = dict(others)[b"jp2c"]
    middle = b"".join(box(kind, content, "extended" if form == "extended" else "plain")
                      for kind, content in others if kind != b"jp2c")
    data = jp2[:12] + middle + box(b"jp2c", codestream, form)
    assert bytes(j2k_codestream(data)) == codestream
    assert j2k_frame(data) == (64, 48, 3, 8)
    assert j2k_header(data).frame == (64, 48, 3, 8)


def test_jp2_codestream_box_is_found_by_walking_the_boxes():
    """A box whose content holds the bytes "jp2c" (an XML box, say) is not the codestream box."""
    jp2 = imagecodecs.jpeg2k_encode(RGB, codecformat="JP2")
    decoy = bytearray(imagecodecs.jpeg2k_encode(RGB[:16, :16], codecformat="J2K"))
    struct.pack_into(">II", decoy, 8, 60000, 60000)
    xml = box(b"xml ", b"<a>jp2c</a>" + b"jp2c" + bytes(decoy))
    data = jp2[:12] + xml + jp2[12:]
    assert j2k_frame(data) == (64, 48, 3, 8)


@pytest.mark.parametrize("length", [2, 7])
def test_jp2_invalid_box_length_is_unknown(length):
    jp2 = imagecodecs.jpeg2k_encode(RGB, codecformat="JP2")
    data = jp2[:12] + struct.pack(">I4s", length, b"ftyp") + jp2[20:]
    assert j2k_codestream(data) is None and j2k_frame(data) is None and j2k_header(data).frame is None


def test_jp2_without_a_codestream_box_is_unknown():
    jp2 = imagecodecs.jpeg2k_encode(RGB, codecformat="JP2")
    without = b"".join(box(kind, content) for kind, content in boxes(jp2) if kind != b"jp2c")
    assert j2k_frame(without) is None
    to_end = jp2[:12] + box(b"xml ", b"<a/>" + dict(boxes(jp2))[b"jp2c"], "to-end")
    assert j2k_frame(to_end) is None  # a box to the end of the file is the last box
    cut = jp2[:12] + struct.pack(">I4s", 1, b"jp2c") + b"\x00\x00"  # XLBox cut short
    assert j2k_frame(cut) is None


@pytest.mark.parametrize("data", [b"", b"\xff\x4f\xff\x51" + b"\x00" * 10, b"random bytes" * 10])
def test_no_siz_is_unknown(data):
    assert j2k_frame(data) is None and j2k_header(data).frame is None


# -- the memory limit reads the same headers -------------------------------------------------
def test_check_encoded_tile_reads_a_jp2_with_extended_box_lengths():
    jp2 = imagecodecs.jpeg2k_encode(RGB, codecformat="JP2")
    codestream = bytearray(dict(boxes(jp2))[b"jp2c"])
    struct.pack_into(">II", codestream, 8, 60000, 60000)  # Xsiz, Ysiz: 10 GiB of RGB
    data = jp2[:12] + b"".join(box(k, c, "extended") for k, c in boxes(jp2)[1:] if k != b"jp2c")
    data += box(b"jp2c", bytes(codestream), "extended")
    with pytest.raises(wsikit.LimitError, match="JPEG 2000 header"):
        check_encoded_tile(data, 34712, (64, 48), path="x.tif")


def test_check_encoded_tile_counts_bytes_by_precision():
    """Samples over 16 bits are decoded to 4 bytes each: the limit counts them so."""
    previous = wsikit.set_max_bytes(64 * 48 * 3 * 2)
    try:
        stream = bytearray(imagecodecs.jpeg2k_encode(RGB, codecformat="J2K"))
        check_encoded_tile(bytes(stream), 33005, (64, 48))
        stream[42] = stream[43] = stream[44] = 23  # Ssiz: 24-bit components
        with pytest.raises(wsikit.LimitError):
            check_encoded_tile(bytes(stream), 33005, (64, 48))
    finally:
        wsikit.set_max_bytes(previous)
