"""BioFormatsBackend through JPype: the same pixels as the native readers and the sources.

The JVM starts once for the whole test session (a process can hold only one); tests
that need it skip, saying why, where no Java runtime or Bio-Formats jar is installed.
"""
from __future__ import annotations

import multiprocessing
import os
import pickle
import sys

import numpy as np
import pytest
import tifffile

import wsikit
from tests.backends.tiff.test_multichannel import (OME_NAMES, as_5d, decimate, make_qptiff_pyramid, write_ome_series,
                                                   write_ome_tiff)
from tests.helpers import padded_box, real_slide
from wsikit.backends.bioformats import java, series
from wsikit.errors import BackendUnavailableError, SlideError, UnsupportedFormatError
from wsikit.pixels import to_uint8


def _unavailable() -> str | None:
    try:
        java.bioformats_jar()
        java.jvm_library()
    except BackendUnavailableError as exc:
        return exc.reason
    except ImportError as exc:
        return f"JPype is not installed ({exc})"
    return None


@pytest.fixture(scope="session")
def jvm():
    reason = _unavailable()
    if reason:
        pytest.skip(f"Bio-Formats cannot run here: {reason}")
    java.ensure_jvm()


@pytest.fixture(scope="session")
def open_bf(jvm):
    opened = []

    def open_(path, **options):
        slide = wsikit.open_slide(path, backend="bioformats", **options)
        opened.append(slide)
        return slide

    yield open_
    for slide in opened:
        slide.close()


# -- the real slides -----------------------------------------------------------------------


def test_vectra_qptiff_same_as_native(open_bf):
    path = real_slide("small_vectra.qptiff")
    slide = open_bf(path)
    native = wsikit.open_slide(path, backend="tiff")
    assert slide.level_count == 1 and slide.shape == (1440, 1920)
    assert slide.channel_names == ["DAPI", "FITC", "Cy3"] == native.channel_names
    assert slide.mpp == pytest.approx(native.mpp)
    region = slide.extract_region((1000, 1500), (440, 420))
    assert region.shape == (440, 420, 1, 3, 1) and region.dtype == np.uint8
    np.testing.assert_array_equal(region, native.extract_region((1000, 1500), (440, 420)))
    whole = slide.extract_region((0, 0), (1440, 1920), normalize=False)
    np.testing.assert_array_equal(whole, native.extract_region((0, 0), (1440, 1920), normalize=False))
    assert len(list(slide.generate_tiles(500, pad=False))) == 6
    assert len(list(slide.generate_tiles(500, pad=True))) == 12
    assert set(slide.associated_images) == {"thumbnail", "macro", "label"}
    for name in slide.associated_images:
        np.testing.assert_array_equal(slide.associated_images[name], native.associated_images[name])
    np.testing.assert_array_equal(slide.get_thumbnail((300, 300)), native.get_thumbnail((300, 300)))
    assert "<OME" in slide.properties["ome.xml"] and "DAPI" in slide.properties["ome.xml"]
    native.close()


def test_smalltif_uint16(open_bf):
    path = real_slide("smalltif.tif")
    reference = tifffile.imread(path)
    slide = open_bf(path)
    raw = slide.extract_region((0, 0), (480, 640), normalize=False)
    assert raw.shape == (480, 640, 1, 1, 1) and raw.dtype == np.uint16 and slide.dtype == np.uint16
    np.testing.assert_array_equal(raw[:, :, 0, 0, 0], reference)
    np.testing.assert_array_equal(slide.extract_region((0, 0), (480, 640))[:, :, 0, 0, 0], reference >> 8)
    assert len(list(slide.generate_tiles(500, pad=False))) == 0
    assert len(list(slide.generate_tiles(500, pad=True))) == 2
    assert len(list(slide.generate_tiles(160))) == 12


# -- synthetic files -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def ome_files(tmp_path_factory):
    rng = np.random.default_rng(10)
    folder = tmp_path_factory.mktemp("bf")
    u16 = rng.integers(0, 65536, (2, 3, 4, 160, 224), dtype=np.uint16)
    f32 = rng.uniform(-0.1, 1.1, (3, 2, 2, 120, 150)).astype(np.float32)
    return {
        "uint16": (write_ome_tiff(folder / "u16.ome.tif", u16, names=OME_NAMES), u16),
        "float32": (write_ome_tiff(folder / "f32.ome.tif", f32, levels=2, tile=None, label=False), f32),
    }


@pytest.mark.parametrize("kind", ["uint16", "float32"])
def test_ome_tiff_both_backends_match_the_source(open_bf, ome_files, kind):
    path, data = ome_files[kind]
    slide = open_bf(path)
    native = wsikit.open_slide(path)
    assert isinstance(native, wsikit.TiffBackend)
    t, z, c = data.shape[:3]
    assert slide.sizes == native.sizes == (z, c, t)
    assert slide.dtype == native.dtype == data.dtype
    assert slide.level_shapes == native.level_shapes and slide.level_count > 1
    assert slide.channel_names == native.channel_names
    assert slide.mpp == native.mpp
    for level in range(slide.level_count):
        source = as_5d(decimate(data, 2**level), "TZCYX")
        h, w = source.shape[:2]
        for backend in (slide, native):
            np.testing.assert_array_equal(backend.extract_region((0, 0), (h, w), level=level, normalize=False), source)
            np.testing.assert_array_equal(backend.extract_region((0, 0), (h, w), level=level), to_uint8(source))
        box = slide.extract_region((h // 2, w // 3), (h, w), level=level, normalize=False)  # runs off the edges
        np.testing.assert_array_equal(
            box, native.extract_region((h // 2, w // 3), (h, w), level=level, normalize=False))
    native.close()


def test_qptiff_pyramid_levels_are_resolutions_not_series(open_bf, tmp_path):
    path, channels, names = make_qptiff_pyramid(tmp_path)
    slide = open_bf(path)
    native = wsikit.open_slide(path)
    assert slide.level_shapes == native.level_shapes == ((256, 320), (128, 160), (64, 80))
    assert slide.channel_names == names
    assert slide.mpp == pytest.approx(native.mpp) and slide.objective_power == native.objective_power == 20.0
    for level in range(3):
        source = np.moveaxis(decimate(channels, 2**level), 0, 2)[:, :, None, :, None]
        h, w = source.shape[:2]
        np.testing.assert_array_equal(slide.extract_region((0, 0), (h, w), level=level), source)
    assert set(slide.associated_images) == set(native.associated_images) == {"thumbnail", "macro", "label"}
    for name in slide.associated_images:
        np.testing.assert_array_equal(slide.associated_images[name], native.associated_images[name])
    native.close()
    # series= is a Bio-Formats option: detection passes the native reader over for it
    with wsikit.open_slide(path, series=0) as by_series:
        assert isinstance(by_series, wsikit.BioFormatsBackend) and by_series.level_shapes == slide.level_shapes


def test_ome_tiff_metadata_and_series_option(open_bf, ome_files):
    path, _ = ome_files["uint16"]
    slide = open_bf(path)
    assert slide.channel_names == OME_NAMES
    assert slide.mpp == (0.25, 0.5)
    assert list(slide.associated_images) == ["label"]
    label = open_bf(path, series=1)  # the label image opened as the image itself
    assert label.is_rgb and label.shape == (40, 56)
    np.testing.assert_array_equal(label.extract_region((0, 0), (40, 56)), slide.associated_images["label"])
    with pytest.raises(ValueError, match="series"):
        open_bf(path, series=5)


def test_series_as_channels(open_bf, tmp_path):
    planes = list(np.random.default_rng(11).integers(0, 65536, (3, 100, 130), dtype=np.uint16))
    slide = open_bf(write_ome_series(tmp_path / "series.ome.tif", planes))
    assert slide.sizes == (1, 1, 1)
    stacked = slide.extract_region((10, 20), (90, 120), normalize=False, series_as_channels=True)
    assert stacked.shape == (90, 120, 1, 3, 1) and stacked.dtype == np.uint16
    expected = np.zeros((90, 120, 3), dtype=np.uint16)
    expected[:, :110] = np.stack(planes, axis=2)[10:, 20:]
    np.testing.assert_array_equal(stacked[:, :, 0, :, 0], expected)
    tiles = list(slide.generate_tiles(50, series_as_channels=True))
    assert len(tiles) == 4 and tiles[0].image.shape == (50, 50, 1, 3, 1) and tiles[0].image.dtype == np.uint8


def test_open_slide_falls_back_to_bioformats(jvm, tmp_path):
    from PIL import Image

    rgb = np.random.default_rng(12).integers(0, 256, (70, 90, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "picture.png")
    with wsikit.open_slide(tmp_path / "picture.png") as slide:  # nothing else reads PNG
        assert isinstance(slide, wsikit.BioFormatsBackend) and slide.is_rgb
        np.testing.assert_array_equal(slide.extract_region((0, 0), (70, 90)), rgb)
    (tmp_path / "broken.czi").write_bytes(b"ZISRAWFILE" + b"\0" * 200)
    with pytest.raises(SlideError) as info:
        wsikit.open_slide(tmp_path / "broken.czi")
    assert info.value.path == str(tmp_path / "broken.czi")
    (tmp_path / "unknown.tif").write_bytes(b"no tiff at all")  # not handed to Bio-Formats at all
    with pytest.raises(UnsupportedFormatError) as unsupported:
        wsikit.open_slide(tmp_path / "unknown.tif", backend="bioformats")
    assert unsupported.value.path == str(tmp_path / "unknown.tif")
    (tmp_path / "notes.txt").write_text("no image")
    with pytest.raises(UnsupportedFormatError):
        wsikit.open_slide(tmp_path / "notes.txt", backend="bioformats")


def test_threads_pickling_pieces_and_close(open_bf, ome_files, monkeypatch):
    path, data = ome_files["uint16"]
    source = as_5d(data, "TZCYX")
    slide = open_bf(path, cache_bytes=0)
    locations = [(i, j) for i in range(0, 160, 23) for j in range(0, 224, 41)]
    for location, region in zip(locations, slide.read_regions(locations, (30, 40), workers=4, normalize=False)):
        i, j = location
        np.testing.assert_array_equal(region, padded_box(source, i, j, 30, 40))
    copy = pickle.loads(pickle.dumps(slide))
    np.testing.assert_array_equal(copy.extract_region((5, 5), (50, 50)), slide.extract_region((5, 5), (50, 50)))
    copy.close()
    # Tiny tiles: many small Java arrays give the same pixels as a few large ones.
    monkeypatch.setattr(series, "MAX_TILE_BYTES", 64 * 1024)
    small = open_bf(path)
    th, tw = small._grids[0].tile_shape
    assert th * tw * 24 * 2 <= 64 * 1024 and (th < 160 or tw < 224)
    np.testing.assert_array_equal(small.extract_region((0, 0), (160, 224), normalize=False), source)
    small.close()
    with pytest.raises(ValueError, match="closed"):
        small.extract_region((0, 0), (8, 8))


def _read_in_child(slide, queue):
    try:
        slide.extract_region((0, 0), (8, 8))
        queue.put("read")
    except BackendUnavailableError as exc:
        queue.put(f"BackendUnavailableError: {exc.reason}")
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        queue.put(f"{type(exc).__name__}: {exc}")


@pytest.mark.skipif(sys.platform != "linux", reason="fork is a Linux start method here")
def test_forked_child_gets_a_clear_error(open_bf, ome_files):
    path, _ = ome_files["uint16"]
    slide = open_bf(path)
    slide.extract_region((0, 0), (8, 8))
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_read_in_child, args=(slide, queue))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    message = queue.get(timeout=5)
    assert message.startswith("BackendUnavailableError") and "fork" in message
    assert os.getpid() == java._started_pid  # the parent still reads
    assert slide.extract_region((0, 0), (8, 8)).shape == (8, 8, 3, 4, 2)


def test_reader_threads_leave_the_jvm_when_they_end(open_bf, ome_files):
    """Each tiling starts reader threads that call Java; ended attached, each would leak
    a Java thread (JPype attaches on first use and never detaches by itself)."""
    import jpype

    path, _ = ome_files["uint16"]
    slide = open_bf(path, cache_bytes=0)
    threads = jpype.JClass("java.lang.management.ManagementFactory").getThreadMXBean()
    list(slide.generate_tiles(32, workers=3))
    before = int(threads.getThreadCount())
    for _ in range(5):
        list(slide.generate_tiles(32, workers=3))
        list(slide.read_regions([(0, 0), (40, 40), (80, 80)], (32, 32), workers=3))
    assert int(threads.getThreadCount()) <= before
