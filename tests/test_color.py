"""ICC colour profiles: the bytes each backend exposes (TIFF tag 34675, DICOM ICC Profile,
OpenSlide 4) equal what the file holds and what OpenSlide returns; color="srgb" converts
reads exactly as Pillow's ImageCms converts the raw pixels; off by default (bit-exact)."""
from __future__ import annotations

import io
import pickle

import numpy as np
import pytest
import tifffile

import wsikit
from wsikit.color import check_color, profile_color_space

imagecodecs = pytest.importorskip("imagecodecs")


@pytest.fixture(scope="module")
def wide_gamut_profile() -> bytes:
    """An RGB profile that is not sRGB (Adobe RGB primaries, gamma 2.2): converting changes pixels."""
    return bytes(imagecodecs.cms_profile("rgb", whitepoint=[0.3127, 0.329],
                                         primaries=[0.64, 0.33, 0.21, 0.71, 0.15, 0.06], gamma=2.2))


@pytest.fixture(scope="module")
def label_profile() -> bytes:
    return bytes(imagecodecs.cms_profile("srgb"))


@pytest.fixture(scope="module")
def icc_svs(tmp_path_factory, wide_gamut_profile, label_profile) -> tuple[str, np.ndarray, np.ndarray]:
    """An Aperio SVS whose pyramid embeds ``wide_gamut_profile`` and whose label embeds another."""
    from wsikit.samples.svs import tissue_texture

    path = str(tmp_path_factory.mktemp("icc") / "icc.svs")
    image = tissue_texture((512, 768), seed=4)
    label = np.random.default_rng(2).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    description = "Aperio Image Library v12.0.0 \n768x512 [0,0 768x512] (256x256) JPEG/RGB Q=90|AppMag = 20|MPP = 0.5"
    jpeg = dict(photometric="rgb", compression="jpeg", metadata=None)
    with tifffile.TiffWriter(path) as tif:
        tif.write(image, tile=(256, 256), description=description, subfiletype=0, iccprofile=wide_gamut_profile,
                  **jpeg)
        tif.write(image[::4, ::4], rowsperstrip=16, description="Aperio Image Library v12.0.0 \n768x512 -> 192x128",
                  **jpeg)
        tif.write(image[::2, ::2], tile=(256, 256), subfiletype=0, iccprofile=wide_gamut_profile,
                  description="Aperio Image Library v12.0.0 \n768x512 -> 384x256", **jpeg)
        tif.write(label, rowsperstrip=16, description="Aperio Image Library v12.0.0 \nlabel 80x60", subfiletype=1,
                  photometric="rgb", compression="lzw", metadata=None, iccprofile=label_profile)
    return path, image, label


def pillow_srgb(pixels: np.ndarray, profile: bytes) -> np.ndarray:
    """The reference: Pillow's ImageCms conversion of raw pixels from ``profile`` to sRGB."""
    from PIL import Image, ImageCms

    converted = ImageCms.profileToProfile(Image.fromarray(pixels), ImageCms.ImageCmsProfile(io.BytesIO(profile)),
                                          ImageCms.createProfile("sRGB"), outputMode="RGB")
    return np.asarray(converted)


def test_tiff_profile_bytes_equal_the_file_and_openslide(icc_svs, wide_gamut_profile, label_profile):
    path = icc_svs[0]
    with wsikit.open_slide(path) as slide:
        assert isinstance(slide, wsikit.TiffBackend)
        assert slide.icc_profile == wide_gamut_profile
        assert slide.associated_icc_profiles.get("label") == label_profile
        assert "thumbnail" not in slide.associated_icc_profiles
    openslide = pytest.importorskip("openslide")
    with openslide.OpenSlide(path) as reference:
        assert reference.color_profile is not None
        assert reference.read_region((0, 0), 0, (4, 4)).info["icc_profile"] == wide_gamut_profile
    with wsikit.open_slide(path, backend="openslide") as slide:
        assert slide.icc_profile == wide_gamut_profile


def test_compat_color_profile_as_openslide(icc_svs, wide_gamut_profile, label_profile):
    openslide = pytest.importorskip("openslide")
    import wsikit.compat.openslide as compat

    path = icc_svs[0]
    with compat.OpenSlide(path) as ours, openslide.OpenSlide(path) as theirs:
        assert ours.color_profile is not None
        assert ours.color_profile.tobytes() == theirs.color_profile.tobytes()
        assert ours.read_region((0, 0), 0, (8, 8)).info["icc_profile"] == wide_gamut_profile
        assert ours.get_thumbnail((64, 64)).info["icc_profile"] == wide_gamut_profile
        assert ours.properties["openslide.icc-size"] == theirs.properties["openslide.icc-size"]
        native = wsikit.open_slide(path).associated_icc_profiles
        for name in theirs.associated_images:
            mine = ours.associated_images[name].info.get("icc_profile")
            assert mine == native.get(name), name
            expected = theirs.associated_images[name].info.get("icc_profile")
            if expected is not None:  # OpenSlide 4.0 gives associated images no profile; later ones do
                assert mine == expected, name
        assert ours.associated_images["label"].info["icc_profile"] == label_profile


def test_compat_srgb_option_converts_and_says_so(icc_svs, wide_gamut_profile):
    import wsikit.compat.openslide as compat
    from wsikit.color import srgb_profile_bytes

    path = icc_svs[0]
    expected = pillow_srgb(tifffile.imread(path, key=0), wide_gamut_profile)
    with compat.OpenSlide(path, color="srgb") as slide:
        region = slide.read_region((-10, 20), 0, (300, 200))
        np.testing.assert_array_equal(np.asarray(region)[:, 10:, :3], expected[20:220, :290])
        assert region.info["icc_profile"] == srgb_profile_bytes()
        assert slide.color_profile is not None and slide.color_profile.tobytes() == srgb_profile_bytes()


def test_no_conversion_by_default_is_bit_exact(icc_svs):
    path = icc_svs[0]
    raw = tifffile.imread(path, key=0)
    with wsikit.open_slide(path) as slide:
        assert slide.level_count == 2
        np.testing.assert_array_equal(slide.extract_region((0, 0), slide.shape), raw)


def test_srgb_reads_equal_pillow_imagecms(icc_svs, wide_gamut_profile):
    path = icc_svs[0]
    raw = tifffile.imread(path, key=0)
    expected = pillow_srgb(raw, wide_gamut_profile)
    assert np.abs(expected.astype(int) - raw).max() > 5  # the profile is not sRGB: pixels change
    with wsikit.open_slide(path, color="srgb") as slide:
        np.testing.assert_array_equal(slide.extract_region((0, 0), slide.shape), expected)
        np.testing.assert_array_equal(slide.extract_region((100, 200), (150, 300)), expected[100:250, 200:500])
        level1 = tifffile.imread(path, key=2)
        np.testing.assert_array_equal(slide.extract_region((0, 0), (256, 384), level=1),
                                      pillow_srgb(level1, wide_gamut_profile))
        tiles = list(slide.generate_tiles(128, workers=2))
        assert len(tiles) == 24
        for tile in tiles:
            i, j = tile.coords
            np.testing.assert_array_equal(tile.image, expected[i : i + 128, j : j + 128])
        batch = list(slide.read_regions([(0, 0), (300, 600)], 64, workers=2))
        np.testing.assert_array_equal(batch[1], expected[300:364, 600:664])
        copy = pickle.loads(pickle.dumps(slide))  # the option travels with the slide
        np.testing.assert_array_equal(copy.extract_region((5, 5), (20, 20)), expected[5:25, 5:25])


def test_dicom_icc_profile_in_optical_path(tmp_path, wide_gamut_profile):
    import pydicom

    from wsikit.samples.dicom import write_dicom_series

    sample = write_dicom_series(tmp_path / "dicom", shape=(300, 400), tile=128, factors=(2,),
                                transfer_syntax="jpeg", label=True)
    for file in sample.files:
        ds = pydicom.dcmread(file)
        ds.OpticalPathSequence[0].ICCProfile = wide_gamut_profile
        ds.save_as(file)
    level0 = sample.level_files[0] if hasattr(sample, "level_files") else sample.files[0]
    with wsikit.open_slide(tmp_path / "dicom") as slide:
        assert isinstance(slide, wsikit.DICOMBackend)
        assert slide.icc_profile == wide_gamut_profile
        assert slide.associated_icc_profiles.get("label") == wide_gamut_profile
        raw = slide.extract_region((0, 0), slide.shape)
    with wsikit.open_slide(tmp_path / "dicom", color="srgb") as slide:
        converted = slide.extract_region((0, 0), slide.shape)
        np.testing.assert_array_equal(converted, pillow_srgb(raw, wide_gamut_profile))
        # thumbnails come from the converted level, not from the (unconverted) thumbnail instance
        from wsikit.pixels import resize_area

        level = slide.thumbnail_level((75, 100))
        expected = resize_area(slide.extract_region((0, 0), slide.level_shapes[level], level=level), (75, 100))
        thumbnail = slide.get_thumbnail((75, 100)).astype(int)
        assert np.abs(thumbnail - expected).mean() < 1.0
    with wsikit.open_slide(tmp_path / "dicom") as unconverted:
        assert np.abs(thumbnail - unconverted.get_thumbnail((75, 100))).mean() > 3 * np.abs(thumbnail - expected).mean()
    openslide = pytest.importorskip("openslide")
    with openslide.OpenSlide(str(level0)) as reference:
        assert reference.read_region((0, 0), 0, (4, 4)).info.get("icc_profile") == wide_gamut_profile


def test_slides_without_profile_read_unchanged(sample_svs):
    with wsikit.open_slide(sample_svs) as plain, wsikit.open_slide(sample_svs, color="srgb") as asked:
        assert plain.icc_profile is None and asked.icc_profile is None
        np.testing.assert_array_equal(plain.extract_region((0, 0), (200, 300)), asked.extract_region((0, 0), (200, 300)))


def test_color_option_checked():  # noqa: D103
    assert check_color(None) is None and check_color("sRGB") == "srgb"
    with pytest.raises(ValueError, match="color"):
        check_color("adobe")


def test_bad_color_option_refused_when_opening(sample_svs):
    with pytest.raises(ValueError, match="color"):
        wsikit.open_slide(sample_svs, color="p3")


def test_profile_color_space(wide_gamut_profile):
    assert profile_color_space(wide_gamut_profile) == "RGB"
    assert profile_color_space(b"short") == ""
