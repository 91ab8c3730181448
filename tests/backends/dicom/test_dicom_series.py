"""DICOMBackend on synthetic series written here: every transfer syntax, full and sparse
tilings, offset tables, fragments, concatenations, focal planes, grayscale, associated
images, and OpenSlide's pixels where OpenSlide reads the same files."""
from __future__ import annotations

import os

import numpy as np
import pytest

import wsikit
from wsikit import DICOMBackend
from wsikit.samples.dicom import TRANSFER_SYNTAXES, write_dicom_series
from wsikit.samples.svs import tissue_texture

from tests.helpers import padded_box

SHAPE = (300, 420)
TILE = 128
# The largest error lossy codecs may make on the synthetic texture, per syntax.
LOSSY_MEAN = {"jpeg": 6.0, "jpeg-rgb": 4.0, "jpeg-extended": 6.0, "jpegls-near": 2.0, "jpeg2000": 4.0, "htj2k": 4.0}


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    """write(**options) -> DicomSample, each distinct series written once per module."""
    root = tmp_path_factory.mktemp("dicom")
    made = {}

    def write(**options):
        key = repr(sorted((k, v if not isinstance(v, (np.ndarray, list)) else id(v)) for k, v in options.items()))
        if key not in made:
            options.setdefault("shape", SHAPE)
            options.setdefault("tile", TILE)
            options.setdefault("factors", (2, 4))
            made[key] = write_dicom_series(root / f"s{len(made)}", **options)
        return made[key]

    return write


def read_level(slide, level, **kwargs):
    return slide.extract_region((0, 0), slide.level_shapes[level], level=level, **kwargs)


def assert_close(actual, expected, syntax):
    actual = np.asarray(actual).reshape(expected.shape)
    if TRANSFER_SYNTAXES[syntax][1]:
        np.testing.assert_array_equal(actual, expected)
    else:
        error = np.abs(actual.astype(np.int32) - expected.astype(np.int32))
        assert error.mean() < LOSSY_MEAN[syntax], (syntax, error.mean())


@pytest.mark.parametrize("sparse", [False, True], ids=["full", "sparse"])
@pytest.mark.parametrize("syntax", list(TRANSFER_SYNTAXES))
def test_every_transfer_syntax(series, syntax, sparse):
    sample = series(transfer_syntax=syntax, sparse=sparse)
    with wsikit.open_slide(sample.folder) as slide:
        assert isinstance(slide, DICOMBackend)
        assert slide.level_shapes == ((300, 420), (150, 210), (75, 105))
        assert slide.properties["dicom.TransferSyntaxUID"] == sample.transfer_syntax
        assert slide.properties["dicom.tiling"] == ("TILED_SPARSE" if sparse else "TILED_FULL")
        for level in range(3):
            assert_close(read_level(slide, level), sample.levels[level], syntax)
        # A region crossing four frames, read alone (no cached neighbours).
        slide._reader.cache.clear()
        assert_close(slide.extract_region((100, 100), (60, 80)), sample.levels[0][100:160, 100:180], syntax)


# (The extended offset table requires one fragment per frame.)
@pytest.mark.parametrize("table, fragments", [("basic", 1), ("basic", 3), ("extended", 1), ("none", 1), ("none", 3)])
def test_offset_tables_and_fragments(series, table, fragments):
    sample = series(transfer_syntax="jpeg2000-lossless", offset_table=table, fragments_per_frame=fragments)
    with DICOMBackend(sample.level_files[0]) as slide:
        expected = {"basic": "basic offset table", "extended": "extended offset table", "none": "fragment walk"}[table]
        assert slide.properties["dicom.frame-index"] == expected
        for level in range(slide.level_count):
            np.testing.assert_array_equal(read_level(slide, level), sample.levels[level])


def test_fragment_walk_on_a_sparse_concatenation(series):
    sample = series(transfer_syntax="rle", sparse=True, offset_table="none", concatenate=2)
    with wsikit.open_slide(sample.folder) as slide:
        np.testing.assert_array_equal(read_level(slide, 0), sample.levels[0])


def test_series_from_the_folder_or_any_file(series):
    sample = series(transfer_syntax="jpeg-lossless")
    shapes = ((300, 420), (150, 210), (75, 105))
    for path in [sample.folder] + sample.files:
        with wsikit.open_slide(path) as slide:
            assert slide.level_shapes == shapes, path
            assert sorted(slide.associated_images) == ["label", "macro", "thumbnail"]
    with DICOMBackend(sample.files[1], whole_series=False) as slide:
        assert slide.level_shapes == ((150, 210),)
        assert dict(slide.associated_images) == {}


def test_exact_downsamples(series):
    sample = series(transfer_syntax="explicit", shape=(301, 419), factors=(2, 4))
    with wsikit.open_slide(sample.folder) as slide:
        assert slide.level_shapes == ((301, 419), (151, 210), (76, 105))
        expected = ((1.0), (301 / 151 + 419 / 210) / 2, (301 / 76 + 419 / 105) / 2)
        assert slide.level_downsamples == pytest.approx(expected)
        for level in range(3):
            np.testing.assert_array_equal(read_level(slide, level), sample.levels[level])


def test_associated_images(series):
    sample = series(transfer_syntax="explicit")  # lossless syntaxes store them uncompressed
    with wsikit.open_slide(sample.folder) as slide:
        images = slide.associated_images
        np.testing.assert_array_equal(images["label"], sample.associated["label"])
        np.testing.assert_array_equal(images["macro"], sample.associated["macro"])
        np.testing.assert_array_equal(images["thumbnail"], sample.associated["thumbnail"])
        assert not images["label"].flags.writeable


def test_thumbnail_from_the_thumbnail_instance(series):
    sample = series(transfer_syntax="explicit", shape=(900, 1200), tile=256, factors=(2,))
    with wsikit.open_slide(sample.folder) as slide:
        thumb = slide.get_thumbnail((150, 150))
        assert thumb.shape == (112, 150, 3)
        from wsikit.pixels import resize_area

        np.testing.assert_array_equal(thumb, resize_area(sample.associated["thumbnail"], (112, 150)))
        big = slide.get_thumbnail((400, 400))  # larger than the thumbnail image: from a level
        assert big.shape == (300, 400, 3)


def test_sparse_missing_frames_read_as_white(series):
    sample = series(transfer_syntax="jpeg-lossless", sparse=True)
    assert sample.missing
    with wsikit.open_slide(sample.folder) as slide:
        level0 = read_level(slide, 0)
        np.testing.assert_array_equal(level0, sample.levels[0])
        r, c = sorted(sample.missing)[0]
        hole = level0[r * TILE : (r + 1) * TILE, c * TILE : (c + 1) * TILE]
        assert hole.size and (hole == 255).all()
        with pytest.raises(ValueError, match="no frame"):
            slide.frame_index((r * TILE, c * TILE))
        tiles = list(slide.generate_tiles(shape=TILE, pad=True))
        assert len(tiles) == 3 * 4
        # The frames are written in reverse order: positions, not order, place them.
        present = [(i, j) for i in range(3) for j in range(4) if (i, j) not in sample.missing]
        assert slide.frame_coords(0) == (present[-1][0] * TILE, present[-1][1] * TILE)
        assert slide.frame_index(slide.frame_coords(0)) == 0


def test_sparse_fill_from_the_absent_pixel_colour(series):
    lab = (30000, 40000, 20000)
    sample = series(transfer_syntax="explicit", sparse=True, absent_lab=lab)
    with wsikit.open_slide(sample.folder) as slide:
        np.testing.assert_array_equal(read_level(slide, 0), sample.levels[0])
        r, c = sorted(sample.missing)[0]
        assert tuple(slide.extract_region((r * TILE, c * TILE), (1, 1))[0, 0]) == sample.fill
        assert sample.fill != (255, 255, 255)


def test_cielab_white_is_white():
    from wsikit.backends.dicom import cielab_to_rgb

    assert tuple(cielab_to_rgb([65535, 32896, 32896])) == (255, 255, 255)
    assert tuple(cielab_to_rgb([0, 32896, 32896])) == (0, 0, 0)


def test_concatenated_level(series):
    sample = series(transfer_syntax="jpegls", concatenate=3)
    assert len([f for f in sample.files if "level0_part" in f]) == 3
    with wsikit.open_slide(sample.files[0]) as slide:
        assert slide.frame_count() == 12
        assert slide.properties["dicom.level[0].frames"] == "12"
        np.testing.assert_array_equal(read_level(slide, 0), sample.levels[0])
        assert [slide.frame_coords(k) for k in (0, 4, 11)] == [(0, 0), (128, 0), (256, 384)]


@pytest.mark.parametrize("sparse", [False, True], ids=["full", "sparse"])
def test_focal_planes(series, sparse):
    planes = [tissue_texture(SHAPE, 1), tissue_texture(SHAPE, 2)]
    sample = series(transfer_syntax="htj2k-lossless", image=planes, sparse=sparse, plane_spacing_um=2.0)
    with wsikit.open_slide(sample.folder) as slide:
        assert slide.focal_planes == [0.0, 2.0]
        np.testing.assert_array_equal(read_level(slide, 0), sample.planes[0][0])
        np.testing.assert_array_equal(read_level(slide, 0, focal_plane=1), sample.planes[0][1])
        np.testing.assert_array_equal(read_level(slide, 1, focal_plane=1), sample.planes[1][1])
        with pytest.raises(ValueError, match="focal_plane"):
            slide.extract_region((0, 0), (4, 4), focal_plane=2)
        with pytest.raises(ValueError, match="optical_path"):
            slide.extract_region((0, 0), (4, 4), optical_path="nope")
        tile = next(slide.generate_tiles(shape=64, focal_plane=1))
        np.testing.assert_array_equal(tile.image, sample.planes[0][1][:64, :64])
    with DICOMBackend(sample.folder, focal_plane=1) as slide:
        np.testing.assert_array_equal(read_level(slide, 0), sample.planes[0][1])
        assert slide.frame_count() == 2 * (12 - len(sample.missing))


@pytest.mark.parametrize("syntax", ["explicit", "rle", "jpegls", "jpeg2000-lossless", "jpeg-lossless"])
def test_grayscale(series, syntax):
    image = (tissue_texture(SHAPE, 3)[:, :, 1].astype(np.uint16) * 257)
    sample = series(transfer_syntax=syntax, image=image)
    with wsikit.open_slide(sample.folder) as slide:
        assert not slide.is_rgb and slide.dtype == np.uint16 and slide.sizes == (1, 1, 1)
        native = read_level(slide, 0, normalize=False)
        assert native.shape == SHAPE + (1, 1, 1) and native.dtype == np.uint16
        np.testing.assert_array_equal(native[:, :, 0, 0, 0], image)
        np.testing.assert_array_equal(read_level(slide, 0)[:, :, 0, 0, 0], (image >> 8).astype(np.uint8))
        assert slide.associated_images["label"].shape == (200, 400, 3)


def test_grayscale_8bit_fills_black(series):
    image = tissue_texture(SHAPE, 4)[:, :, 0]
    sample = series(transfer_syntax="explicit", image=image, sparse=True)
    with wsikit.open_slide(sample.folder) as slide:
        np.testing.assert_array_equal(read_level(slide, 0)[:, :, 0, 0, 0], sample.levels[0])
        r, c = sorted(sample.missing)[0]
        assert slide.extract_region((r * TILE, c * TILE), (1, 1)).item() == 0


def test_metadata(series):
    sample = series(transfer_syntax="jpeg", mpp=0.5, objective_power=20.0)
    with wsikit.open_slide(sample.folder) as slide:
        assert slide.mpp == pytest.approx((0.5, 0.5))
        assert slide.objective_power == 20.0
        props = slide.properties
        assert props["dicom.Manufacturer"] == "wsikit"
        assert props["dicom.ManufacturerModelName"] == "dicom_sample"
        assert props["dicom.DimensionOrganizationType"] == "TILED_FULL"
        assert props["dicom.transfer-syntax"] == "JPEG Baseline (Process 1)"
        assert props["dicom.instances"] == "6"
        assert props["wsikit.mpp-x"] == repr(0.5)
        assert props["dicom.SeriesInstanceUID"] and props["dicom.StudyInstanceUID"]


def test_tiles_and_regions_match_the_source(series):
    sample = series(transfer_syntax="rle")
    source = sample.levels[0]
    with wsikit.open_slide(sample.folder) as slide:
        tiles = list(slide.generate_tiles(shape=(100, 90), stride=(70, 110), pad=True, workers=2))
        for tile in tiles:
            i, j = tile.coords
            np.testing.assert_array_equal(tile.image, padded_box(source, i, j, 100, 90))
        locations = [(5, 5), (120, 250), (250, 380)]
        for location, region in zip(locations, slide.read_regions(locations, (40, 50))):
            i, j = location
            np.testing.assert_array_equal(region, padded_box(source, i, j, 40, 50))
        tiles1 = list(slide.generate_tiles(shape=64, level=1))
        assert len(tiles1) == (150 // 64) * (210 // 64)
        np.testing.assert_array_equal(tiles1[-1].image, sample.levels[1][64:128, 128:192])


def test_folder_with_two_series_reads_the_largest(series, tmp_path):
    import shutil

    small = series(transfer_syntax="explicit", shape=(150, 200), factors=(), seed=5)
    big = series(transfer_syntax="explicit", factors=(2,), seed=6)
    for f in small.files + big.files:
        shutil.copy(f, tmp_path / f"{os.path.basename(os.path.dirname(f))}_{os.path.basename(f)}")
    with wsikit.open_slide(tmp_path) as slide:
        assert slide.level_shapes == ((300, 420), (150, 210))
    prefix = os.path.basename(small.folder)
    small_level = next(p for p in tmp_path.iterdir() if "level0" in p.name and str(p.name).startswith(prefix))
    with wsikit.open_slide(small_level) as slide:  # a file names its own series
        assert slide.level_shapes == ((150, 200),)


def test_empty_folder_is_not_a_slide(tmp_path):
    (tmp_path / "notes.txt").write_text("no slide here")
    assert not DICOMBackend.can_read(str(tmp_path))
    with pytest.raises(IsADirectoryError):
        wsikit.open_slide(tmp_path)


# -- OpenSlide reads JPEG, JPEG 2000 and uncompressed DICOM series: same pixels ---------------
@pytest.mark.parametrize("sparse", [False, True], ids=["full", "sparse"])
@pytest.mark.parametrize("syntax", ["jpeg", "jpeg-rgb", "jpeg2000", "jpeg2000-lossless", "explicit"])
def test_pixels_agree_with_openslide(series, syntax, sparse):
    openslide = pytest.importorskip("openslide")
    sample = series(transfer_syntax=syntax, sparse=sparse)
    try:
        reference = openslide.OpenSlide(sample.level_files[0])
    except openslide.OpenSlideError as exc:
        pytest.skip(f"this OpenSlide does not read DICOM: {exc}")
    with reference, wsikit.open_slide(sample.folder) as slide:
        assert reference.level_count == slide.level_count
        for level in range(slide.level_count):
            h, w = slide.level_shapes[level]
            assert reference.level_dimensions[level] == (w, h)
            rgba = np.asarray(reference.read_region((0, 0), level, (w, h)))
            ours = read_level(slide, level)
            present = rgba[:, :, 3] == 255  # OpenSlide leaves absent sparse frames transparent
            absent = np.zeros((h, w), bool)
            for r, c in sample.missing if level == 0 else ():
                absent[r * TILE : (r + 1) * TILE, c * TILE : (c + 1) * TILE] = True
            np.testing.assert_array_equal(present, ~absent)
            np.testing.assert_array_equal(ours[present], rgba[:, :, :3][present])
        assert sorted(reference.associated_images) == sorted(slide.associated_images)
        label = np.asarray(reference.associated_images["label"].convert("RGB"))
        np.testing.assert_array_equal(slide.associated_images["label"], label)


@pytest.mark.parametrize("syntax", ["explicit", "implicit"])
def test_sparse_positions_from_raw_bytes_equal_pydicoms(series, syntax):
    """Positions found by pattern in the raw per-frame groups equal those pydicom parses."""
    from wsikit.backends.dicom.positions import raw_positions, sparse_positions
    from wsikit.backends.dicom.series import read_instance

    planes = [tissue_texture(SHAPE, 7), tissue_texture(SHAPE, 8)]
    sample = series(transfer_syntax=syntax, sparse=True, image=planes, plane_spacing_um=1.5)
    fast_instance = read_instance(sample.level_files[0])
    slow_instance = read_instance(sample.level_files[0])
    assert fast_instance is not None and slow_instance is not None
    assert raw_positions(fast_instance.ds) is not None
    len(slow_instance.ds.PerFrameFunctionalGroupsSequence)  # parsed by pydicom: no raw bytes left
    assert raw_positions(slow_instance.ds) is None
    fast = sparse_positions(fast_instance)
    slow = sparse_positions(slow_instance)
    for a, b in zip(fast, slow):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert sorted(set(fast[3].tolist())) == [0.0, 1.5]


def test_optical_paths(series, tmp_path):
    """A TILED_FULL file of two optical paths (the two planes relabelled as paths A and B)."""
    import copy

    import pydicom

    planes = [tissue_texture(SHAPE, 11), tissue_texture(SHAPE, 12)]
    sample = series(transfer_syntax="jpeg-lossless", image=planes, factors=())
    ds = pydicom.dcmread(sample.level_files[0])
    ds.TotalPixelMatrixFocalPlanes = 1
    ds.NumberOfOpticalPaths = 2
    second = copy.deepcopy(ds.OpticalPathSequence[0])
    ds.OpticalPathSequence[0].OpticalPathIdentifier = "A"
    second.OpticalPathIdentifier = "B"
    ds.OpticalPathSequence.append(second)
    del ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].SpacingBetweenSlices
    path = tmp_path / "paths.dcm"
    ds.save_as(path)
    with DICOMBackend(path) as slide:
        assert slide.optical_paths == ["A", "B"]
        assert slide.focal_planes == [0.0]
        assert slide.properties["dicom.optical-paths"] == "A, B"
        np.testing.assert_array_equal(read_level(slide, 0), planes[0])
        np.testing.assert_array_equal(read_level(slide, 0, optical_path="B"), planes[1])
        np.testing.assert_array_equal(read_level(slide, 0, optical_path=1), planes[1])
        assert slide.frame_index((128, 0)) == 4
        assert slide.frame_coords(16) == (128, 0)
    with DICOMBackend(path, optical_path="B") as slide:
        np.testing.assert_array_equal(read_level(slide, 0), planes[1])
        assert slide.frame_index((128, 0)) == 16
