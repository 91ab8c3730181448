"""Damaged and unusual DICOM files: a CorruptSlideError (or UnsupportedFormatError) that
names the problem, raised at once; and tolerance where a file only bends the standard."""
from __future__ import annotations

import os
import struct
import warnings

import numpy as np
import pytest

import wsikit
from wsikit import CorruptSlideError, DICOMBackend, LimitError, SkippedTileWarning, UnsupportedFormatError
from wsikit.samples.dicom import write_dicom_series

pytestmark = pytest.mark.timeout(60)  # every failure must come fast, never a hang

SHAPE = (300, 420)  # 3 x 4 frames of 128
PIXEL_TAG = b"\xe0\x7f\x10\x00"


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    root = tmp_path_factory.mktemp("dicom_errors")
    made = {}

    def write(syntax="jpeg", **options):
        key = (syntax,) + tuple(sorted(options.items()))
        if key not in made:
            made[key] = write_dicom_series(root / f"s{len(made)}", shape=SHAPE, tile=128, factors=(),
                                           transfer_syntax=syntax,
                                           thumbnail=False, label=False, overview=False, **options)
        return made[key].files[0]

    return write


def damaged(tmp_path, source, change=None, name="damaged.dcm") -> str:
    data = bytearray(open(source, "rb").read())
    if change is not None:
        data = change(data) or data
    path = tmp_path / name
    path.write_bytes(bytes(data))
    return str(path)


def edited(tmp_path, source, edit, name="edited.dcm") -> str:
    """The file rewritten by pydicom after ``edit(dataset)``."""
    import pydicom

    ds = pydicom.dcmread(source)
    edit(ds)
    path = tmp_path / name
    ds.save_as(path)
    return str(path)


def bot_offset(data: bytes) -> int:
    """Byte where the basic offset table's values start (explicit VR encapsulated data)."""
    element = data.rindex(PIXEL_TAG + b"OB\x00\x00\xff\xff\xff\xff")
    return element + 12 + 8


# -- truncation --------------------------------------------------------------------------------
@pytest.mark.parametrize("table", ["basic", "extended", "none"])
@pytest.mark.parametrize("keep", [0.5, 0.97, -6])
def test_truncated_encapsulated_pixel_data(written, tmp_path, table, keep):
    source = written("jpeg", offset_table=table)
    size = len(open(source, "rb").read())
    cut = int(size * keep) if keep > 0 else size + keep

    path = damaged(tmp_path, source, lambda d: d[:cut])
    with pytest.raises(CorruptSlideError, match="truncated") as info:
        DICOMBackend(path)
    assert info.value.path == path


@pytest.mark.parametrize("keep", [0.5, -1])
def test_truncated_native_pixel_data(written, tmp_path, keep):
    source = written("explicit")
    size = len(open(source, "rb").read())
    path = damaged(tmp_path, source, lambda d: d[: int(size * keep) if keep > 0 else size + keep])
    with pytest.raises(CorruptSlideError, match="truncated"):
        DICOMBackend(path)


def test_file_without_pixel_data(written, tmp_path):
    source = written("jpeg")
    path = damaged(tmp_path, source, lambda d: d[: d.rindex(PIXEL_TAG)])
    with pytest.raises(CorruptSlideError, match="no Pixel Data"):
        DICOMBackend(path)


# -- frame counts -----------------------------------------------------------------------------
@pytest.mark.parametrize("syntax, table",
                         [("jpeg", "basic"), ("jpeg", "extended"), ("jpeg", "none"), ("explicit", "basic")])
@pytest.mark.parametrize("frames", [11, 13])
def test_frame_count_disagrees_with_the_data(written, tmp_path, syntax, table, frames):
    source = written(syntax, offset_table=table)

    def edit(ds):
        ds.NumberOfFrames = frames

    path = edited(tmp_path, source, edit)
    with pytest.raises(CorruptSlideError, match="frame count disagrees"):
        DICOMBackend(path)


def test_too_few_frames_for_a_full_tiling(written, tmp_path):
    source = written("explicit")

    def edit(ds):  # a larger image in the header than the 12 frames can cover
        ds.TotalPixelMatrixRows = 600

    with pytest.raises(CorruptSlideError, match="frame count disagrees with the image size"):
        DICOMBackend(edited(tmp_path, source, edit))


def test_sparse_frame_count_disagrees_with_the_functional_groups(written, tmp_path):
    source = written("explicit", sparse=True)

    def edit(ds):
        del ds.PerFrameFunctionalGroupsSequence[-1]

    with pytest.raises(CorruptSlideError, match="per-frame functional groups"):
        DICOMBackend(edited(tmp_path, source, edit))


# -- header ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("keyword", ["TotalPixelMatrixRows", "TotalPixelMatrixColumns"])
def test_missing_total_pixel_matrix_size(written, tmp_path, keyword):
    source = written("jpeg")
    path = edited(tmp_path, source, lambda ds: delattr(ds, keyword))
    with pytest.raises(CorruptSlideError, match="Total Pixel Matrix"):
        wsikit.open_slide(path, backend="dicom")
    # Found broken by the DICOM backend, it is not handed on to a reader that would
    # open it with a wrong shape (Bio-Formats did: 128 x 420).
    with pytest.raises(CorruptSlideError, match="Total Pixel Matrix"):
        wsikit.open_slide(path)


def test_missing_frame_size(written, tmp_path):
    path = edited(tmp_path, written("jpeg"), lambda ds: delattr(ds, "Rows"))
    with pytest.raises(CorruptSlideError, match="frame size"):
        DICOMBackend(path)


# -- offset tables ---------------------------------------------------------------------------------
def test_basic_offset_table_pointing_outside(written, tmp_path):
    def change(data):
        start = bot_offset(data)
        data[start + 4 * 11 : start + 4 * 12] = struct.pack("<I", 0x7FFFFFF0)

    with pytest.raises(CorruptSlideError, match="points outside"):
        DICOMBackend(damaged(tmp_path, written("jpeg"), change))


def test_basic_offset_table_not_increasing(written, tmp_path):
    def change(data):
        start = bot_offset(data)
        first, second = data[start + 4 : start + 8], data[start + 8 : start + 12]
        data[start + 4 : start + 8], data[start + 8 : start + 12] = second, first

    with pytest.raises(CorruptSlideError, match="not increasing"):
        DICOMBackend(damaged(tmp_path, written("jpeg"), change))


def test_extended_offset_table_pointing_outside(written, tmp_path):
    source = written("jpeg", offset_table="extended")

    def edit(ds):
        table = np.frombuffer(ds.ExtendedOffsetTable, "<u8").copy()
        table[5] = 10**9
        table[6:] = 10**9 + np.arange(1, len(table) - 5)
        ds.ExtendedOffsetTable = table.tobytes()

    with pytest.raises(CorruptSlideError, match="points outside"):
        DICOMBackend(edited(tmp_path, source, edit))


def test_offset_table_that_lands_inside_a_frame(written, tmp_path):
    def change(data):
        start = bot_offset(data)
        (offset,) = struct.unpack_from("<I", data, start + 4 * 3)
        data[start + 4 * 3 : start + 4 * 4] = struct.pack("<I", offset + 20)

    with DICOMBackend(damaged(tmp_path, written("jpeg"), change)) as slide:
        slide.extract_region((0, 0), (128, 128))  # frames before the damage still read
        with pytest.raises(CorruptSlideError, match="frame 2|frame 3"):
            slide.extract_region((0, 256), (128, 256))


# -- frames that do not decode ----------------------------------------------------------------------
def test_undecodable_frame(written, tmp_path):
    source = written("jpeg2000-lossless")

    def change(data):  # overwrite frame 5's codestream, keeping every length
        start = bot_offset(data)
        (offset,) = struct.unpack_from("<I", data, start + 4 * 5)
        first = start + 4 * 12
        (length,) = struct.unpack_from("<I", data, first + offset + 4)
        data[first + offset + 8 : first + offset + 8 + length] = b"\x00" * length

    path = damaged(tmp_path, source, change)
    with DICOMBackend(path) as slide:
        with pytest.raises(CorruptSlideError, match="frame 5") as info:
            slide.extract_region((128, 128), (10, 10))
        assert info.value.path == path
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            stream = slide.generate_tiles(shape=128, pad=True, errors="skip")
            tiles = list(stream)
        assert len(tiles) == 11
        assert [coords for coords, _ in stream.skipped_tiles] == [(128, 128)]
        assert any(issubclass(w.category, SkippedTileWarning) for w in caught)


def test_codestream_larger_than_the_header_frame(written, tmp_path):
    source = written("jpeg")

    def edit(ds):  # 64 x 64 frames declared, 128 x 128 stored
        ds.Rows = ds.Columns = 64
        ds.TotalPixelMatrixRows, ds.TotalPixelMatrixColumns = 192, 256

    with DICOMBackend(edited(tmp_path, source, edit)) as slide:
        with pytest.raises(CorruptSlideError, match="larger than the header"):
            slide.extract_region((0, 0), (64, 64))


def test_frame_larger_than_the_memory_limit(written):
    previous = wsikit.set_max_bytes(10_000)
    try:
        with pytest.raises(LimitError, match="decoded frame"):
            DICOMBackend(written("jpeg"))
    finally:
        wsikit.set_max_bytes(previous)


# -- tolerance ---------------------------------------------------------------------------------------
def test_minimal_header_with_over_long_values(written, tmp_path):
    source = written("jpeg-lossless")
    long_text = "scanner" * 30

    def edit(ds):
        for keyword in ("ImageType", "SharedFunctionalGroupsSequence", "DimensionOrganizationType",
                        "DimensionOrganizationSequence", "OpticalPathSequence", "NumberOfOpticalPaths",
                        "TotalPixelMatrixFocalPlanes", "PyramidUID"):
            if keyword in ds:
                delattr(ds, keyword)
        ds.Manufacturer = long_text  # LO allows 64 characters
        ds.SeriesInstanceUID = "1." + "2" * 80  # UI allows 64
        ds.StudyID = "x" * 70  # SH allows 16

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = edited(tmp_path, source, edit)
    with wsikit.open_slide(path) as slide:
        assert isinstance(slide, DICOMBackend)
        assert slide.properties["dicom.Manufacturer"] == long_text
        assert slide.mpp is None
        image = slide.extract_region((0, 0), SHAPE)
    with DICOMBackend(source) as original:  # the same pixels as the untouched file
        np.testing.assert_array_equal(image, original.extract_region((0, 0), SHAPE))


def test_mislabelled_uncompressed_data(written, tmp_path):
    # The meta header claims JPEG, but the pixel data is plain (defined length, right size).
    source = written("explicit")

    def change(data):
        at = data.index(b"1.2.840.10008.1.2.1\x00")
        data[at : at + 20] = b"1.2.840.10008.1.2.5\x00"  # RLE Lossless, of the same length

    with DICOMBackend(damaged(tmp_path, source, change)) as slide, DICOMBackend(source) as original:
        np.testing.assert_array_equal(slide.extract_region((0, 0), SHAPE), original.extract_region((0, 0), SHAPE))


# -- not whole-slide images ---------------------------------------------------------------------------
def test_non_wsi_dicom_is_unsupported(tmp_path):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, generate_uid()
    ds.Rows = ds.Columns = 4
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit, ds.PixelRepresentation = 7, 0
    ds.PixelData = bytes(16)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = CTImageStorage, ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    path = tmp_path / "ct.dcm"
    ds.save_as(path, enforce_file_format=True)
    assert not DICOMBackend.can_read(str(path))
    # (open_slide without a backend may hand such a file to Bio-Formats.)
    with pytest.raises(UnsupportedFormatError):
        wsikit.open_slide(path, backend="dicom")
    with pytest.raises(UnsupportedFormatError, match="not a DICOM whole-slide image"):
        DICOMBackend(path)


def test_other_files_are_not_dicom(tmp_path, sample_svs):
    assert not DICOMBackend.can_read(sample_svs)
    text = tmp_path / "x.dcm"
    text.write_bytes(b"not a dicom file at all" * 10)
    assert not DICOMBackend.can_read(str(text))
    with pytest.raises(UnsupportedFormatError):
        wsikit.open_slide(text, backend="dicom")


def test_deflated_syntax_is_unsupported(written, tmp_path):
    import pydicom
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    ds = pydicom.dcmread(written("explicit"))
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    path = tmp_path / "deflated.dcm"
    ds.save_as(path)
    with pytest.raises(UnsupportedFormatError, match="deflated"):
        DICOMBackend(path)


def test_unknown_option_and_bad_selection(written):
    source = written("jpeg")
    with pytest.raises(TypeError, match="unexpected options for DICOMBackend: colour"):
        DICOMBackend(source, colour="blue")
    with pytest.raises(ValueError, match="focal_plane"):
        DICOMBackend(source, focal_plane=3)
    with DICOMBackend(source) as slide, \
            pytest.raises(TypeError, match="unexpected options for DICOMBackend.extract_region: colour"):
        slide.extract_region((0, 0), (4, 4), colour="blue")


def test_broken_level_in_a_series_is_reported(tmp_path):
    import shutil

    sample = write_dicom_series(tmp_path / "series", shape=SHAPE, tile=128, factors=(2,), transfer_syntax="explicit")
    folder = tmp_path / "broken"
    shutil.copytree(sample.folder, folder)
    level1 = folder / "level1.dcm"
    data = level1.read_bytes()
    level1.write_bytes(data[: len(data) // 2])
    for path in (folder, folder / "level0.dcm"):
        with pytest.raises(CorruptSlideError, match="truncated") as info:
            DICOMBackend(path)
        assert info.value.path.endswith("level1.dcm")


def test_broken_label_is_left_out(tmp_path):
    import shutil

    import pydicom

    sample = write_dicom_series(tmp_path / "series", shape=SHAPE, tile=128, factors=(), transfer_syntax="explicit")
    folder = tmp_path / "broken"
    shutil.copytree(sample.folder, folder)
    label = pydicom.dcmread(folder / "label.dcm")
    label.NumberOfFrames = 2  # a label of two frames with one frame's data
    label.save_as(folder / "label.dcm")
    with DICOMBackend(folder) as slide:
        assert sorted(slide.associated_images) == ["macro", "thumbnail"]
        assert "frame count" in slide.properties["dicom.unreadable.label"]
        np.testing.assert_array_equal(slide.extract_region((0, 0), SHAPE), sample.levels[0])


# -- a length field that lies: no read allocates more than the file holds ----------------
_OPEN_UNDER_AN_ADDRESS_SPACE_LIMIT = """
import resource, sys
import wsikit
from wsikit.backends.dicom import DICOMBackend

# Room for what opening a small file needs, not for the 2 GiB the length field claims.
with open("/proc/self/status") as status:
    size = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize"))
resource.setrlimit(resource.RLIMIT_AS, (size + 1024**3, size + 1024**3))
for name, open_ in (("open_slide", wsikit.open_slide), ("DICOMBackend", DICOMBackend),
                    ("check_file", DICOMBackend.check_file)):
    try:
        open_(sys.argv[1])
        print(name, "opened")
    except BaseException as exc:
        print(name, type(exc).__name__, exc)
"""


@pytest.mark.parametrize("syntax, offset_table", [("implicit", "basic"), ("jpeg", "extended")])
def test_element_length_past_the_end_of_the_file(written, tmp_path, syntax, offset_table):
    """A small file whose last element before the pixel data says it holds 0x7FFFFFF0 bytes:
    pydicom allocated the 2 GiB before reading (under a memory limit, "opening needs more
    memory than available"); it is a CorruptSlideError saying what is wrong, and nothing
    near that size is allocated (the child runs with 1 GiB of address space to spare)."""
    import subprocess
    import sys

    import pydicom

    if not os.path.exists("/proc/self/status"):
        pytest.skip("the address-space limit is set from /proc/self/status (Linux)")
    source = written(syntax, offset_table=offset_table)
    ds = pydicom.dcmread(source, stop_before_pixels=True)
    last = ds.get_item(max(ds.keys()))  # (5200,9229) implicit; (7FE0,0002) explicit, extended table
    assert last.value_tell and last.length < 2**16

    def lie(data):
        data[last.value_tell - 4 : last.value_tell] = struct.pack("<I", 0x7FFFFFF0)

    path = damaged(tmp_path, source, lie)
    assert os.path.getsize(path) < 2**20  # a 2 GiB value cannot be in it
    out = subprocess.run([sys.executable, "-c", _OPEN_UNDER_AN_ADDRESS_SPACE_LIMIT, path], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 3, out.stdout + out.stderr
    for line in lines:
        assert line.split(" ", 2)[1] == "CorruptSlideError", line
        assert path in line and "an element's length runs past the end of the file" in line, line
        assert "2,147,483,632 bytes" in line, line
    with pytest.raises(CorruptSlideError, match="runs past the end of the file") as info:
        DICOMBackend(path)
    assert info.value.path == path


def test_long_elements_that_fit_in_the_file_are_read(written):
    """The length check refuses only what runs past the end: the sparse per-frame functional
    groups and the extended offset table (long elements) read as before."""
    from wsikit.backends.dicom.header import read_header

    for options in ({"offset_table": "extended"}, {"sparse": True}):
        source = written("jpeg", **options)
        ds, pixel_tag_offset = read_header(source)
        assert open(source, "rb").read()[pixel_tag_offset : pixel_tag_offset + 4] == PIXEL_TAG
        with DICOMBackend(source) as slide:
            assert slide.shape == SHAPE


def test_check_file_opens_only_the_file_given(tmp_path, written):
    """check_file (the opener's vetting before OpenSlide) opens the one file, not its series:
    a broken sibling level does not fail it; a broken file does; a file that is not DICOM passes."""
    sample = write_dicom_series(tmp_path / "series", shape=SHAPE, tile=128, factors=(2,), transfer_syntax="jpeg",
                                thumbnail=False, label=False, overview=False)
    level0, level1 = sample.level_files
    with open(level1, "r+b") as f:  # the sibling's pixel data cut off
        f.truncate(os.path.getsize(level1) - 2000)
    DICOMBackend.check_file(level0)
    with pytest.raises(CorruptSlideError):
        DICOMBackend(level0)  # the whole series: the broken level counts
    with pytest.raises(CorruptSlideError, match="truncated|past the end"):
        DICOMBackend.check_file(level1)
    text = tmp_path / "notes.dcm"
    text.write_text("not a DICOM file")
    DICOMBackend.check_file(str(text))
