"""Standalone JPEGs of stored tiles (wsikit.jpeg_streams, SlideBackend.native_tile_jpeg):
every decoder shows the pixels wsikit reads for the tile."""
from __future__ import annotations

import io
from pathlib import Path

import imagecodecs
import numpy as np
import pytest
import simplejpeg
from PIL import Image

import wsikit
from tests.helpers import real_slide
from wsikit.codestreams import jpeg_header
from wsikit.jpeg_streams import NotAJPEG, adobe_marker, decoded_colour, standalone_jpeg


def decoders(data: bytes) -> dict[str, np.ndarray]:
    """The pixels three independent decoders give a JPEG file."""
    return {
        "pillow": np.asarray(Image.open(io.BytesIO(data)).convert("RGB")),
        "imagecodecs": imagecodecs.jpeg8_decode(data),
        "simplejpeg": simplejpeg.decode_jpeg(data, colorspace="RGB"),
    }


def check_native_tiles(slide: wsikit.SlideBackend, level: int, tiles: list[tuple[int, int]]) -> int:
    """Each tile's standalone JPEG decodes, with every decoder, to the slide's own pixels."""
    grid = slide._level_grid(level)
    assert grid is not None
    th, tw = grid.tile_shape
    h, w = slide.level_shapes[level]
    checked = 0
    for ti, tj in tiles:
        data = slide.native_tile_jpeg(level, ti, tj)
        assert data is not None, (level, ti, tj)
        assert data.startswith(b"\xff\xd8") and data.endswith(b"\xff\xd9")
        expected = slide.extract_region((ti * th, tj * tw), (min(th, h - ti * th), min(tw, w - tj * tw)), level)
        for name, pixels in decoders(data).items():
            assert pixels.shape == (th, tw, 3), name  # the whole stored tile
            inside = pixels[: expected.shape[0], : expected.shape[1]]
            assert np.array_equal(inside, expected), f"{name} differs on tile {(ti, tj)} of level {level}"
        checked += 1
    return checked


def every_tile(slide: wsikit.SlideBackend, level: int) -> list[tuple[int, int]]:
    grid = slide._level_grid(level)
    assert grid is not None
    rows, cols = grid.tile_counts
    return [(ti, tj) for ti in range(rows) for tj in range(cols)]


def test_aperio_rgb_tiles_with_shared_tables() -> None:
    """small_HE.svs: JPEGTables + RGB-coded tiles without a colour marker (ids 0, 1, 2)."""
    path = real_slide("small_HE.svs")
    with wsikit.open_slide(path) as slide:
        level0 = slide.native_tile_jpeg(0, 0, 0)
        assert level0 is not None
        header = jpeg_header(level0)
        assert header.adobe_transform == 0 and not header.jfif
        for level in range(slide.level_count):
            assert check_native_tiles(slide, level, every_tile(slide, level)) == len(every_tile(slide, level))


def test_synthetic_ycbcr_tiles(sample_svs: str) -> None:
    """tifffile's own tiles: complete JFIF YCbCr streams, edge tiles past the level included."""
    with wsikit.open_slide(sample_svs) as slide:
        for level in range(slide.level_count):
            check_native_tiles(slide, level, every_tile(slide, level))
        assert jpeg_header(slide.native_tile_jpeg(0, 1, 1) or b"").jfif


def test_edge_tiles_of_an_uneven_slide(tmp_path: Path) -> None:
    from wsikit.samples.svs import write_sample_svs

    path = write_sample_svs(tmp_path / "uneven.svs", shape=(700, 900), factors=(2,), tile=256)
    with wsikit.open_slide(path) as slide:
        assert slide.level_shapes[0] == (700, 900)
        check_native_tiles(slide, 0, [(2, 3), (2, 0), (0, 3)])
        check_native_tiles(slide, 1, every_tile(slide, 1))


@pytest.mark.parametrize("syntax", ["jpeg", "jpeg-rgb"])
def test_dicom_frames(tmp_path: Path, syntax: str) -> None:
    from wsikit.samples.dicom import write_dicom_series

    sample = write_dicom_series(tmp_path / syntax, shape=(600, 700), tile=256, factors=(2,), transfer_syntax=syntax)
    with wsikit.open_slide(sample.folder) as slide:
        for level in range(slide.level_count):
            check_native_tiles(slide, level, every_tile(slide, level))
        colour = decoded_colour(slide.native_tile_jpeg(0, 0, 0) or b"")
        assert colour == ("rgb" if syntax == "jpeg-rgb" else "ycbcr")


def test_real_dicom_file() -> None:
    path = real_slide("small_dicom.dcm")
    with wsikit.open_slide(path) as slide:
        tiles = every_tile(slide, 0)
        check_native_tiles(slide, 0, tiles[:: max(1, len(tiles) // 40)])


def test_tiles_that_are_not_jpeg_give_none(tmp_path: Path) -> None:
    import tifffile

    image = np.random.default_rng(0).integers(0, 255, (300, 300, 3), dtype=np.uint8)
    path = tmp_path / "lzw.tif"
    tifffile.imwrite(path, image, tile=(256, 256), compression="zlib", photometric="rgb")
    with wsikit.open_slide(str(path)) as slide:
        assert slide.native_tile_jpeg(0, 0, 0) is None
        assert np.array_equal(slide.extract_region((0, 0), (300, 300)), image)
    from wsikit.samples.dicom import write_dicom_series

    sample = write_dicom_series(tmp_path / "j2k", shape=(300, 300), tile=256, factors=(),
                                transfer_syntax="jpeg2000-lossless")
    with wsikit.open_slide(sample.folder) as slide:
        assert slide.native_tile_jpeg(0, 0, 0) is None


def test_tile_indices_are_checked(sample_svs: str) -> None:
    with wsikit.open_slide(sample_svs) as slide:
        rows, cols = slide._level_grid(0).tile_counts  # type: ignore[union-attr]
        for ti, tj in [(rows, 0), (0, cols), (-1, 0)]:
            with pytest.raises(ValueError, match="outside level 0"):
                slide.native_tile_jpeg(0, ti, tj)
        with pytest.raises(ValueError, match="level"):
            slide.native_tile_jpeg(7, 0, 0)
        with pytest.raises(TypeError):
            slide.native_tile_jpeg(0, "a", 0)  # type: ignore[arg-type]


# -- the stream rewriting itself ---------------------------------------------------------------
def _rgb_stream_without_marker(image: np.ndarray) -> bytes:
    """An RGB-coded JPEG (no colour transform) with its Adobe marker cut out, as Aperio writes them."""
    data = bytes(imagecodecs.jpeg8_encode(image, level=90, outcolorspace="RGB"))
    marker = data.find(b"\xff\xee")
    assert marker > 0 and jpeg_header(data).adobe_transform == 0
    length = int.from_bytes(data[marker + 2 : marker + 4], "big")
    bare = bytearray(data[:marker] + data[marker + 2 + length :])
    sof = bare.find(b"\xff\xc0")
    sos = bare.find(b"\xff\xda")
    for c in range(3):  # component ids 0, 1, 2 (libjpeg writes R, G, B, which say RGB by themselves)
        bare[sof + 10 + 3 * c] = c
        bare[sos + 5 + 2 * c] = c
    return bytes(bare)


def test_rgb_coded_stream_needs_its_marker() -> None:
    image = np.random.default_rng(1).integers(0, 255, (64, 80, 3), dtype=np.uint8)
    bare = _rgb_stream_without_marker(image)
    truth = imagecodecs.jpeg8_decode(bare, colorspace="RGB", outcolorspace="RGB")
    assert np.abs(truth.astype(int) - image).mean() < 8  # lossy, but the right colours
    # Without a marker every decoder takes the components for YCbCr: false colours.
    assert not np.array_equal(imagecodecs.jpeg8_decode(bare), truth)
    fixed = standalone_jpeg(bare, colour="rgb")
    for name, pixels in decoders(fixed).items():
        assert np.array_equal(pixels, truth), name
    # A JFIF marker saying otherwise is replaced, not kept beside the Adobe one.
    jfif = b"\xff\xd8" + b"\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + bare[2:]
    again = standalone_jpeg(jfif, colour="rgb")
    header = jpeg_header(again)
    assert header.adobe_transform == 0 and not header.jfif
    assert np.array_equal(imagecodecs.jpeg8_decode(again), truth)


def test_tables_are_spliced_in() -> None:
    """A tables-only stream plus an abbreviated image stream make one decodable file."""
    image = np.random.default_rng(2).integers(0, 255, (48, 48, 3), dtype=np.uint8)
    full = bytes(imagecodecs.jpeg8_encode(image, level=85))
    sos = full.find(b"\xff\xda")
    sof = full.find(b"\xff\xc0")
    segments, k = [], 2
    while k < sos:
        length = int.from_bytes(full[k + 2 : k + 4], "big")
        segments.append(full[k : k + 2 + length])
        k += 2 + length
    tables = b"\xff\xd8" + b"".join(s for s in segments if s[1] in (0xDB, 0xC4)) + b"\xff\xd9"
    abbreviated = b"\xff\xd8" + full[sof:]
    assert sof > 0 and b"\xff\xdb" not in abbreviated[: abbreviated.find(b"\xff\xda")]
    out = standalone_jpeg(abbreviated, tables)
    assert decoded_colour(out) == "ycbcr" and jpeg_header(out).jfif
    expected = imagecodecs.jpeg8_decode(full)
    for name, pixels in decoders(out).items():
        assert np.array_equal(pixels, expected), name


def test_adobe_ycbcr_and_grey_streams() -> None:
    image = np.random.default_rng(3).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    full = bytes(imagecodecs.jpeg8_encode(image, level=85))
    with_adobe = b"\xff\xd8" + adobe_marker(1) + full[full.find(b"\xff\xdb"):]
    out = standalone_jpeg(with_adobe)
    assert jpeg_header(out).adobe_transform == 1 and out.count(b"Adobe") == 1
    assert np.array_equal(imagecodecs.jpeg8_decode(out), imagecodecs.jpeg8_decode(full))
    grey = bytes(imagecodecs.jpeg8_encode(np.ascontiguousarray(image[:, :, 0]), level=85))
    out = standalone_jpeg(grey, colour="rgb")  # one component: no colour marker is written
    assert jpeg_header(out).adobe_transform is None
    assert np.array_equal(imagecodecs.jpeg8_decode(out), imagecodecs.jpeg8_decode(grey))


@pytest.mark.parametrize("data", [b"", b"not a jpeg", b"\xff\xd8\xff\xdb\x00\xff\x00", b"\xff\xd8\x00\x00"])
def test_not_a_jpeg(data: bytes) -> None:
    with pytest.raises(NotAJPEG):
        standalone_jpeg(data)


def test_spliced_tiles_are_the_standalone_files() -> None:
    """The scaled decoder's per-level reader gives the same bytes as native_tile_jpeg."""
    with wsikit.open_slide(real_slide("small_HE.svs")) as slide:
        for level in range(slide.level_count):
            stream = slide._native_jpeg_source(level)  # type: ignore[attr-defined]
            assert stream is not None
            for ti, tj in every_tile(slide, level):
                assert stream(ti, tj) == slide.native_tile_jpeg(level, ti, tj)


def test_spliced_falls_back_for_tiles_with_colour_markers() -> None:
    from wsikit.jpeg_streams import rgb_tiles_prefix, spliced

    image = np.random.default_rng(6).integers(0, 255, (32, 40, 3), dtype=np.uint8)
    full = bytes(imagecodecs.jpeg8_encode(image, level=85))  # JFIF YCbCr: its marker must go
    out = spliced(rgb_tiles_prefix(None), full, None)
    assert out == standalone_jpeg(full, None, "rgb") and out.count(b"JFIF") == 0
    bare = _rgb_stream_without_marker(image)
    assert spliced(rgb_tiles_prefix(None), bare, None) == standalone_jpeg(bare, None, "rgb")
