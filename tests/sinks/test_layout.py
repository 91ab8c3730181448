"""Result folder names: safe names from slide paths, distinct folders for same-named
slides, folders that are never taken over and never resolve outside OUT."""
from __future__ import annotations

import os

from wsikit.sinks import SlideJob, TileOptions, assign_folders, prepare
from wsikit.sinks.layout import path_hash, slide_stem

OPTIONS = TileOptions(shape=(128, 128), mpp=0.5, min_tissue=0.25)


def test_slide_names():
    assert slide_stem("/data/a/slide.svs") == "slide"
    assert slide_stem("/data/x.ome.tiff") == "x"
    assert slide_stem("/data/series_dir/") == "series_dir"
    assert slide_stem("/data/we ird:name?.ndpi") == "we_ird_name_"
    assert slide_stem("/data/..svs") == "svs"
    assert slide_stem("/data/....") == "slide"
    assert slide_stem("noext") == "noext"
    for weird in ("../../etc/passwd", "/x/..", "a/b/../../c.svs", "\\..\\evil.svs"):
        name = slide_stem(weird)
        assert "/" not in name and not name.startswith(".") and name


def test_same_names_get_distinct_folders(tmp_path):
    out = tmp_path / "out"
    a, b, c = "/data/one/s.svs", "/data/two/s.svs", "/data/two/S.tif"
    folders = assign_folders([a, b, c], out)
    assert folders[0] == str(out / "s")
    assert folders[1] == str(out / f"s-{path_hash(b)}")
    assert folders[2] == str(out / f"S-{path_hash(c)}")
    assert len(set(folders)) == 3
    # A folder holding another slide's results is not taken over, whatever the order.
    os.makedirs(out / "s")
    (out / "s" / "job.json").write_text('{"format": "wsikit-tiles", "slide": "/data/two/s.svs"}')
    assert assign_folders([a, b], out) == [str(out / f"s-{path_hash(a)}"), str(out / "s")]
    # Nor a folder that is not a wsikit result.
    os.makedirs(out / "mine")
    (out / "mine" / "notes.txt").write_text("keep")
    assert assign_folders(["/x/mine.svs"], out) == [str(out / f"mine-{path_hash('/x/mine.svs')}")]


def test_results_cannot_escape_out(sample_svs, tmp_path):
    out = tmp_path / "out"
    elsewhere = tmp_path / "elsewhere"
    os.makedirs(out)
    os.makedirs(elsewhere)
    job = SlideJob(os.path.abspath(sample_svs), str(out / "sample"), OPTIONS)
    os.symlink(elsewhere, out / "sample")
    early = prepare(job, str(out))
    assert early.status == "failed" and "outside" in early.reason
    assert os.listdir(elsewhere) == []
    # The naming rule itself never leaves OUT.
    for folder in assign_folders(["/a/../../b.svs", "/x/..svs", "/y/.."], out):
        assert os.path.dirname(folder) == str(out)


def test_url_names_drop_query_and_keep_numeric_uid_parts():
    # a pre-signed query never names a folder; a DICOM series UID keeps its last part
    assert slide_stem("https://host/a/slide.svs?X-Amz-Signature=abc") == "slide"
    uid = "1.2.826.0.1.3680043.8.498.8599"
    assert slide_stem(f"https://host/dicom-web/studies/1.2/series/{uid}") == uid
    assert slide_stem("s3://bucket/cases/series/") == "series"
    # two series that differ only in their last UID part get different folders
    a, b = assign_folders([f"https://h/s/{uid}", f"https://h/s/{uid[:-1]}7"], "/tmp/out")
    assert a != b and os.path.basename(a) == uid


def test_slides_are_located_by_full_url_or_absolute_path():
    from wsikit.sinks.layout import slide_location

    url = "https://host/a/slide.svs?sig=secret"
    assert slide_location(url) == url  # read with the full URL
    assert slide_location("rel/x.svs") == os.path.abspath("rel/x.svs")
