"""Finding slides in folders (a DICOM series folder is one slide) and what ``slide_info`` reports."""
from __future__ import annotations

import os
import shutil

import pytest

import wsikit
from tests.helpers import real_slide
from wsikit.backends import slide_extensions
from wsikit.inventory import find_slides, slide_info


def test_find_slides_searches_folders(slides, tmp_path):
    (slides / "sub").mkdir()
    shutil.copy(slides / "a.svs", slides / "sub" / "c.SVS")
    (slides / "out.zarr").mkdir()
    (slides / "out.zarr" / "x.tif").write_bytes(b"")
    found, missing = find_slides([str(slides), str(slides / "a.svs"), str(tmp_path / "gone")])
    names = [os.path.relpath(p, slides) for p in found]
    assert names == ["a.svs", "b.svs", "broken.svs", os.path.join("sub", "c.SVS")]
    assert missing == [(str(tmp_path / "gone"), "no such file or folder")]


def test_a_folder_of_dicom_files_is_one_slide_unless_it_holds_other_slides(tmp_path, sample_svs):
    dicom = real_slide("small_dicom.dcm")
    series = tmp_path / "series"
    series.mkdir()
    shutil.copy(dicom, series / "level0.dcm")
    if not wsikit.backends.backend_class("dicom").can_read(str(series)):
        pytest.skip("the DICOM backend does not read folders")
    assert find_slides([str(series)]) == ([str(series)], [])
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    shutil.copy(dicom, mixed / "x.dcm")
    shutil.copy(sample_svs, mixed / "y.svs")
    assert find_slides([str(mixed)]) == ([str(mixed / "x.dcm"), str(mixed / "y.svs")], [])
    # A search below a folder takes a series folder whole.
    found, _ = find_slides([str(tmp_path)])
    assert str(series) in found and str(mixed / "x.dcm") in found


def test_folder_search_takes_the_endings_backends_declare(tmp_path):
    extensions = slide_extensions()
    assert {".svs", ".ndpi", ".dcm", ".czi", ".ome.tiff"} <= set(extensions)
    for ending in (".svs", ".ome.tiff", ".CZI"):
        (tmp_path / f"x{ending}").write_bytes(b"")
    (tmp_path / "x.txt").write_bytes(b"")
    (tmp_path / ".hidden.svs").write_bytes(b"")
    found, missing = find_slides([str(tmp_path)])
    assert [os.path.basename(p) for p in found] == ["x.CZI", "x.ome.tiff", "x.svs"] and missing == []


def test_slide_info_reports_levels_and_associated_images(sample_svs):
    with wsikit.open_slide(sample_svs) as slide:
        info = slide_info(slide)
    assert info["path"] == os.path.abspath(sample_svs) and info["backend"] == "tiff"
    assert [level["shape"] for level in info["levels"]] == [[1024, 1536], [256, 384], [64, 96]]
    assert info["levels"][2]["mpp"] == [4.0, 4.0] and info["sizes"] is None
    assert info["associated_images"]["label"] == [300, 300, 3]
