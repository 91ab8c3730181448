"""Multi-plane TIFF read natively: OME-TIFF (pyramids in SubIFDs) and PerkinElmer QPTIFF.

The synthetic files are written here with tifffile; the ``write_*`` helpers are also
used by test_bioformats.py, so both backends are checked against the same sources.
"""
from __future__ import annotations

import numpy as np
import pytest
import tifffile

import wsikit
from tests.helpers import real_slide
from wsikit.backends.tiff import TiffBackend
from wsikit.pixels import to_uint8

# -- writers -------------------------------------------------------------------------------


def decimate(array: np.ndarray, factor: int) -> np.ndarray:
    """The reduced level the writers store: every factor-th pixel of the last two axes."""
    return array[..., ::factor, ::factor]


def write_ome_tiff(path, data: np.ndarray, *, levels: int = 3, tile=(64, 64), names=None,
                   mpp=(0.25, 0.5), axes: str = "TZCYX", label: bool = True, compression="zlib") -> str:
    """OME-TIFF of ``data`` (axes ``axes``) with ``levels`` levels in SubIFDs (factor 2 each)."""
    metadata = {"axes": axes, "PhysicalSizeY": mpp[0], "PhysicalSizeX": mpp[1]}
    if names:
        metadata["Channel"] = {"Name": list(names)}
    options = {"compression": compression}
    if tile:
        options["tile"] = tile
    else:
        options["rowsperstrip"] = 16
    with tifffile.TiffWriter(path, ome=True) as tif:
        tif.write(data, subifds=levels - 1, metadata=metadata, **options)
        for k in range(1, levels):
            tif.write(_level(data, axes, 2**k), subfiletype=1, **options)
        if label:
            rgb = np.random.default_rng(7).integers(0, 256, (40, 56, 3), dtype=np.uint8)
            tif.write(rgb, metadata={"Name": "label"}, photometric="rgb")
    return str(path)


def _level(data: np.ndarray, axes: str, factor: int) -> np.ndarray:
    y = axes.index("Y")
    index = [slice(None)] * data.ndim
    index[y] = slice(None, None, factor)
    index[y + 1] = slice(None, None, factor)
    return data[tuple(index)]


def write_ome_series(path, planes: list[np.ndarray]) -> str:
    """OME-TIFF holding each 2-D array of ``planes`` as its own image (channels stored as series)."""
    with tifffile.TiffWriter(path, ome=True) as tif:
        for k, plane in enumerate(planes):
            tif.write(plane, metadata={"axes": "YX", "Name": f"channel {k}"}, tile=(64, 64))
    return str(path)


def _qptiff_xml(kind: str, name: str | None = None) -> str:
    name_xml = f"<Name>{name}</Name>" if name else ""
    return ('<?xml version="1.0" encoding="utf-16"?>\n<PerkinElmer-QPI-ImageDescription>'
            f"<DescriptionVersion>2</DescriptionVersion><ImageType>{kind}</ImageType>"
            f"<SlideID>synthetic</SlideID>{name_xml}<Objective>20x</Objective>"
            "</PerkinElmer-QPI-ImageDescription>")


def write_qptiff(path, channels: np.ndarray, names, *, levels: int = 3, tile=(64, 64)) -> str:
    """QPTIFF as Vectra Polaris writes it: full-resolution channel pages, a thumbnail, the
    reduced levels (one page per channel each), an overview and a label."""
    rng = np.random.default_rng(3)
    common = {"software": "PerkinElmer-QPI", "metadata": None, "resolution": (20000, 20000),
              "resolutionunit": "CENTIMETER", "compression": "lzw"}
    rgb = channels.ndim == 3 and channels.shape[2] == 3  # brightfield: one RGB page per level
    pages = [(channels, None)] if rgb else list(zip(channels, names))
    shrink = (lambda a, f: a[::f, ::f]) if rgb else decimate
    extra = {"photometric": "rgb"} if rgb else {}
    with tifffile.TiffWriter(path) as tif:
        for plane, name in pages:
            tif.write(plane, tile=tile, description=_qptiff_xml("FullResolution", name), **extra, **common)
        tif.write(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8), photometric="rgb",
                  description=_qptiff_xml("Thumbnail"), **common)
        for k in range(1, levels):
            for plane, name in pages:
                tif.write(shrink(plane, 2**k), tile=tile, subfiletype=1,
                          description=_qptiff_xml("ReducedResolution", name), **extra, **common)
        tif.write(rng.integers(0, 256, (90, 40, 3), dtype=np.uint8), photometric="rgb",
                  description=_qptiff_xml("Overview"), **common)
        tif.write(rng.integers(0, 256, (30, 50, 3), dtype=np.uint8), photometric="rgb",
                  description=_qptiff_xml("Label"), **common)
    return str(path)


def as_5d(data: np.ndarray, axes: str) -> np.ndarray:
    """A TZCYX-like array as (i, j, z, c, t), with missing axes of size 1."""
    full = data
    for axis in "TZC":
        if axis not in axes:
            full = full[np.newaxis]
            axes = axis + axes
    order = [axes.index(a) for a in "YXZCT"]
    return np.transpose(full, order)


OME_NAMES = ["DAPI", "CD3", "CD8", "PanCK"]


@pytest.fixture(scope="session")
def ome_uint16(tmp_path_factory):
    data = np.random.default_rng(0).integers(0, 65536, (2, 3, 4, 300, 400), dtype=np.uint16)
    path = write_ome_tiff(tmp_path_factory.mktemp("ome") / "u16.ome.tif", data, names=OME_NAMES)
    return path, data


@pytest.fixture(scope="session")
def ome_float32(tmp_path_factory):
    rng = np.random.default_rng(1)
    data = rng.uniform(-0.2, 1.2, (2, 2, 3, 200, 260)).astype(np.float32)
    path = write_ome_tiff(tmp_path_factory.mktemp("ome") / "f32.ome.tif", data, levels=2, tile=None,
                          names=None, mpp=(0.5, 0.5), label=False)
    return path, data


def make_qptiff_pyramid(folder) -> tuple[str, np.ndarray, list[str]]:
    """A 4-channel uint8 QPTIFF, levels (256, 320), (128, 160), (64, 80): (path, channels, names)."""
    channels = np.random.default_rng(2).integers(0, 256, (4, 256, 320), dtype=np.uint8)
    names = ["DAPI", "Opal 520", "Opal 570", "Opal 690"]
    return write_qptiff(folder / "synthetic.qptiff", channels, names), channels, names


@pytest.fixture(scope="session")
def qptiff_pyramid(tmp_path_factory):
    return make_qptiff_pyramid(tmp_path_factory.mktemp("qptiff"))


@pytest.fixture(params=["ome_uint16", "ome_float32"])
def ome_file(request):
    return request.getfixturevalue(request.param)


# -- the real slides -------------------------------------------------------------------------


def test_vectra_qptiff_levels_channels_and_pixels():
    path = real_slide("small_vectra.qptiff")
    with wsikit.open_slide(path) as slide:
        assert isinstance(slide, TiffBackend)
        assert slide.level_count == 1  # the thumbnail, overview and label are not levels
        assert slide.shape == (1440, 1920)
        assert slide.channel_names == ["DAPI", "FITC", "Cy3"]
        assert slide.sizes == (1, 3, 1) and not slide.is_rgb
        region = slide.extract_region((100, 300), (250, 500))
        assert region.shape == (250, 500, 1, 3, 1) and region.dtype == np.uint8
        reference = np.moveaxis(tifffile.imread(path, series=0), 0, 2)  # (C, Y, X) -> (Y, X, C)
        np.testing.assert_array_equal(region[:, :, 0, :, 0], reference[100:350, 300:800])
        assert len(list(slide.generate_tiles(500, pad=False))) == 6
        assert len(list(slide.generate_tiles(500, pad=True))) == 12
        assert slide.mpp == pytest.approx((0.4965, 0.4965), abs=1e-4)
        assert slide.properties["qptiff.SlideID"] == "RTM61_1"
        shapes = {name: image.shape for name, image in slide.associated_images.items()}
        assert shapes == {"thumbnail": (360, 480, 3), "macro": (398, 201, 3), "label": (120, 199, 3)}
        assert slide.get_thumbnail((200, 200)).shape == (150, 200, 3)


def test_smalltif_uint16_exact_and_normalized():
    path = real_slide("smalltif.tif")
    reference = tifffile.imread(path)
    with wsikit.open_slide(path) as slide:
        raw = slide.extract_region((0, 0), (480, 640), normalize=False)
        assert raw.shape == (480, 640, 1, 1, 1) and raw.dtype == np.uint16
        np.testing.assert_array_equal(raw[:, :, 0, 0, 0], reference)
        scaled = slide.extract_region((0, 0), (480, 640))
        assert scaled.dtype == np.uint8
        np.testing.assert_array_equal(scaled[:, :, 0, 0, 0], (reference >> 8).astype(np.uint8))


# -- OME-TIFF --------------------------------------------------------------------------------


def test_ome_tiff_every_level_matches_the_source(ome_file):
    path, data = ome_file
    with wsikit.open_slide(path) as slide:
        assert isinstance(slide, TiffBackend)
        t, z, c = data.shape[:3]
        assert slide.sizes == (z, c, t) and slide.dtype == data.dtype
        for level in range(slide.level_count):
            source = as_5d(decimate(data, 2**level), "TZCYX")
            lh, lw = source.shape[:2]
            assert slide.get_image_shape(level) == (lh, lw)
            whole = slide.extract_region((0, 0), (lh, lw), level=level, normalize=False)
            assert whole.dtype == data.dtype
            np.testing.assert_array_equal(whole, source)
            box = slide.extract_region((lh // 3, lw // 4), (lh // 2, lw // 2), level=level, normalize=False)
            np.testing.assert_array_equal(box, source[lh // 3 : lh // 3 + lh // 2, lw // 4 : lw // 4 + lw // 2])
            np.testing.assert_array_equal(slide.extract_region((0, 0), (lh, lw), level=level), to_uint8(source))


def test_ome_tiff_pyramid_metadata(ome_uint16):
    path, _ = ome_uint16
    with wsikit.open_slide(path) as slide:
        assert slide.level_shapes == ((300, 400), (150, 200), (75, 100))
        assert slide.channel_names == OME_NAMES
        assert slide.mpp == (0.25, 0.5)  # (i, j): PhysicalSizeY, PhysicalSizeX
        assert slide.properties["wsikit.vendor"] == "ome-tiff"
        assert "<OME" in slide.properties["ome.xml"]
        assert list(slide.associated_images) == ["label"]
        assert slide.associated_images["label"].shape == (40, 56, 3)


def test_ome_tiff_outside_is_zero_and_tiles_keep_the_layout(ome_uint16):
    path, data = ome_uint16
    source = as_5d(data, "TZCYX")
    with wsikit.open_slide(path) as slide:
        region = slide.extract_region((250, 350), (100, 100), normalize=False)
        np.testing.assert_array_equal(region[:50, :50], source[250:, 350:])
        assert not region[50:].any() and not region[:, 50:].any()
        tiles = list(slide.generate_tiles(128, pad=True, normalize=False, workers=2))
        assert len(tiles) == 3 * 4
        assert tiles[5].image.shape == (128, 128, 3, 4, 2) and tiles[5].image.dtype == np.uint16
        i, j = tiles[5].coords
        np.testing.assert_array_equal(tiles[5].image, source[i : i + 128, j : j + 128])
        thumbnail = slide.get_thumbnail((64, 64))
        assert thumbnail.shape == (48, 64, 3) and thumbnail.dtype == np.uint8


def test_ome_tiff_threads_read_what_one_thread_reads(ome_uint16):
    path, _ = ome_uint16
    locations = [(i, j) for i in range(0, 300, 37) for j in range(0, 400, 53)]
    with wsikit.open_slide(path, cache_bytes=0) as slide:
        parallel = list(slide.read_regions(locations, (40, 60), workers=4, normalize=False))
        for location, region in zip(locations, parallel):
            np.testing.assert_array_equal(region, slide.extract_region(location, (40, 60), normalize=False))


def test_ome_tiff_planes_with_samples(tmp_path):
    # A z-stack of RGB planes: every plane is one page of three samples.
    data = np.random.default_rng(4).integers(0, 256, (2, 96, 128, 3), dtype=np.uint8)
    path = write_ome_tiff(tmp_path / "rgbz.ome.tif", data, axes="ZYXS", levels=1, tile=(32, 32), label=False)
    with wsikit.open_slide(path) as slide:
        assert not slide.is_rgb and slide.sizes == (2, 3, 1)
        region = slide.extract_region((0, 0), (96, 128))
        np.testing.assert_array_equal(region, np.transpose(data, (1, 2, 0, 3))[:, :, :, :, None])


def test_ome_tiff_brightfield_rgb_stays_rgb(tmp_path):
    data = np.random.default_rng(5).integers(0, 256, (128, 160, 3), dtype=np.uint8)
    path = write_ome_tiff(tmp_path / "rgb.ome.tif", data, axes="YXS", levels=2, label=False)
    with wsikit.open_slide(path) as slide:
        assert slide.is_rgb and slide.level_count == 2
        np.testing.assert_array_equal(slide.extract_region((0, 0), (128, 160)), data)
        np.testing.assert_array_equal(slide.extract_region((0, 0), (64, 80), level=1), data[::2, ::2])


# -- QPTIFF ----------------------------------------------------------------------------------


def test_qptiff_pyramid_levels_exclude_thumbnail_and_overview(qptiff_pyramid):
    path, channels, names = qptiff_pyramid
    with wsikit.open_slide(path) as slide:
        assert isinstance(slide, TiffBackend)
        assert slide.level_shapes == ((256, 320), (128, 160), (64, 80))
        assert slide.channel_names == names
        assert slide.mpp == pytest.approx((0.5, 0.5))  # 20000 pixels per cm
        assert slide.objective_power == 20.0
        for level in range(3):
            source = np.moveaxis(decimate(channels, 2**level), 0, 2)[:, :, None, :, None]
            h, w = source.shape[:2]
            np.testing.assert_array_equal(slide.extract_region((0, 0), (h, w), level=level), source)
        shapes = {name: image.shape for name, image in slide.associated_images.items()}
        assert shapes == {"thumbnail": (60, 80, 3), "macro": (90, 40, 3), "label": (30, 50, 3)}


def test_brightfield_qptiff_reads_as_rgb(tmp_path):
    rgb = np.random.default_rng(6).integers(0, 256, (192, 256, 3), dtype=np.uint8)
    path = write_qptiff(tmp_path / "brightfield.qptiff", rgb, None, levels=2)
    with wsikit.open_slide(path) as slide:
        assert slide.is_rgb and slide.level_shapes == ((192, 256), (96, 128))
        np.testing.assert_array_equal(slide.extract_region((0, 0), (192, 256)), rgb)
        np.testing.assert_array_equal(slide.extract_region((0, 0), (96, 128), level=1), rgb[::2, ::2])
        assert set(slide.associated_images) == {"thumbnail", "macro", "label"}
