"""The ``wsikit`` command line, run through its installed entry point."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

import wsikit
from wsikit.cli import main


def wsikit_command() -> list[str]:
    script = Path(sys.executable).parent / "wsikit"
    if not script.exists():
        found = shutil.which("wsikit")
        if found is None:
            pytest.skip("the wsikit entry point is not installed (run make setup)")
        script = Path(found)
    return [str(script)]


def run(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(wsikit_command() + [str(a) for a in args], check=False, capture_output=True, text=True, timeout=300, cwd=cwd)


def test_entry_point_is_declared():
    scripts = {e.name: e.value for e in entry_points(group="console_scripts")}
    assert scripts.get("wsikit") == "wsikit.cli:main"


def test_info_text_and_json(sample_svs):
    text = run("info", sample_svs)
    assert text.returncode == 0, text.stderr
    assert "level 0" in text.stdout and "1024 x 1536" in text.stdout and "level 2" in text.stdout
    assert "0.25 x 0.25" in text.stdout and "40x" in text.stdout and "label" in text.stdout
    as_json = run("info", sample_svs, "--json")
    assert as_json.returncode == 0, as_json.stderr
    info = json.loads(as_json.stdout)
    assert info["backend"] == "tiff" and info["vendor"] == "aperio"
    assert [lv["shape"] for lv in info["levels"]] == [[1024, 1536], [256, 384], [64, 96]]
    assert [lv["downsample"] for lv in info["levels"]] == [1.0, 4.0, 16.0]
    assert info["levels"][1]["mpp"] == [1.0, 1.0]
    assert info["mpp"] == [0.25, 0.25] and info["magnification"] == 40.0
    assert info["associated_images"]["label"] == [300, 300, 3]
    assert info["is_rgb"] is True and info["channel_names"] == ["R", "G", "B"]


def test_info_of_a_missing_file_fails(tmp_path, capsys):
    assert main(["info", str(tmp_path / "nothing.svs")]) == 1
    assert "nothing.svs" in capsys.readouterr().err


def test_thumbnail_with_overlays(sample_svs, tmp_path):
    plain, tissue, tiles = tmp_path / "plain.png", tmp_path / "tissue.png", tmp_path / "tiles.png"
    assert run("thumbnail", sample_svs, plain, "--size", "300").returncode == 0
    assert run("thumbnail", sample_svs, tissue, "--size", "300", "--overlay", "tissue").returncode == 0
    result = run("thumbnail", sample_svs, tiles, "--size", "300", "--overlay", "tiles", "--level", "2", "--shape", "64")
    assert result.returncode == 0, result.stderr
    base = np.asarray(Image.open(plain))
    assert base.shape == (200, 300, 3)
    outline = np.asarray(Image.open(tissue))
    green = np.all(outline == (0, 200, 0), axis=2)
    assert 0.005 < green.mean() < 0.3
    assert np.array_equal(outline[~green], base[~green])
    # One 64 x 64 tile of level 2 (1024 x 1024 of level 0): the left two thirds are tinted.
    drawn = np.asarray(Image.open(tiles)).astype(int)
    changed = np.any(drawn != base, axis=2)
    assert changed[:, :199].mean() > 0.95 and not changed[:, 201:].any()
    assert (drawn[:, :199, 2] - base[:, :199, 2]).mean() > 0  # bluer


def test_thumbnail_tiles_overlay_shows_only_selected_tiles(sample_svs, tmp_path):
    every = tmp_path / "every.png"
    some = tmp_path / "some.png"
    assert main(["thumbnail", sample_svs, str(every), "--size", "256", "--overlay", "tiles", "--mpp", "1",
                 "--shape", "32"]) == 0
    assert main(["thumbnail", sample_svs, str(some), "--size", "256", "--overlay", "tiles", "--mpp", "1",
                 "--shape", "32", "--min-tissue", "0.9"]) == 0
    assert not np.array_equal(np.asarray(Image.open(every)), np.asarray(Image.open(some)))


def test_tile_reports_failures_and_goes_on(slides, tmp_path):
    out = tmp_path / "out"
    result = run("tile", slides, "--out", out, "--shape", "64", "--level", "1", "--format", "png")
    assert result.returncode == 1
    assert "broken.svs" in result.stdout and "failures:" in result.stdout
    assert "3 slides: 2 tiled, 0 already complete, 1 failed" in result.stdout
    assert "notes" not in result.stdout
    for name in ("a", "b"):
        rows = (out / name / "tiles.csv").read_text().splitlines()
        assert len(rows) == 1 + 4 * 6
        assert len(os.listdir(out / name / "images")) == 24
    assert not (out / "broken" / "tiles.csv").exists()
    # The good slides are complete: a rerun of them skips them and succeeds.
    again = run("tile", slides / "a.svs", slides / "b.svs", "--out", out, "--shape", "64", "--level", "1", "--format", "png")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "2 already complete" in again.stdout and "already complete" in again.stderr


def test_tile_by_mpp_with_tissue_filter(sample_svs, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["tile", sample_svs, "--out", str(out), "--mpp", "0.5", "--shape", "128", "--min-tissue", "0.5",
                 "--quiet"]) == 0
    summary = capsys.readouterr().out
    with wsikit.open_slide(sample_svs) as slide:
        expected = len(slide.tile_plan(128, mpp=0.5, min_tissue=0.5))
    assert f"{expected} tiles" in summary
    rows = (out / "sample" / "tiles.csv").read_text().splitlines()
    assert len(rows) == 1 + expected
    assert all(float(r.split(",")[8]) >= 0.5 for r in rows[1:])


def test_tile_without_mpp_metadata_fails_clearly(tmp_path, capsys):
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, np.full((300, 400, 3), 200, np.uint8), photometric="rgb")
    assert main(["tile", str(path), "--out", str(tmp_path / "out"), "--mpp", "0.5", "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "plain.tif" in out and "mpp" in out


def test_usage_errors_exit_2(sample_svs, tmp_path):
    both = run("tile", sample_svs, "--out", tmp_path, "--level", "1", "--mpp", "0.5")
    assert both.returncode == 2 and "not allowed with" in both.stderr
    assert run("tile", sample_svs, "--out", tmp_path, "--min-tissue", "2").returncode == 2
    assert run("tile", sample_svs).returncode == 2
    assert run().returncode == 2


def test_missing_inputs_are_failures(tmp_path, capsys):
    assert main(["tile", str(tmp_path / "nope.svs"), "--out", str(tmp_path / "out"), "--quiet"]) == 1
    assert "no such file" in capsys.readouterr().out


def test_tile_codec_and_passthrough_options(sample_svs, tmp_path):
    import zarr

    assert main(["tile", sample_svs, "--out", str(tmp_path / "z"), "--shape", "256", "--codec", "zstd", "--quiet"]) == 0
    array = zarr.open_group(str(tmp_path / "z" / "sample" / "tiles.zarr"), mode="r")["tiles"]
    inner = array.metadata.to_dict()["codecs"][0]["configuration"]["codecs"]
    assert inner[-1]["name"] == "zstd" and array.shards[0] > 1
    with wsikit.open_slide(sample_svs) as slide:
        native = slide.native_tile_jpeg(0, 0, 0)
    for flag, same in (([], True), (["--no-passthrough"], False)):
        out = tmp_path / ("jpeg" + "".join(flag))
        assert main(["tile", sample_svs, "--out", str(out), "--shape", "256", "--format", "jpeg", "--quiet", *flag]) == 0
        assert ((out / "sample" / "images" / "0_0.jpg").read_bytes() == native) is same
    with pytest.raises(SystemExit) as exited:
        main(["tile", sample_svs, "--out", str(tmp_path / "x"), "--codec", "gzip"])
    assert exited.value.code == 2


def test_tile_resampling_option_reaches_the_reader(sample_svs, tmp_path):
    import zarr

    with wsikit.open_slide(sample_svs) as slide:
        mpp = 2 * slide.mpp[0]
        plan = slide.tile_plan(64, mpp=mpp)
        expected = {r: np.stack([t.image for t in slide.read_plan(plan, resampling=r)]) for r in ("fast", "exact")}
    assert not np.array_equal(expected["fast"], expected["exact"])  # the two paths differ on this slide
    for flag, resampling in (([], "fast"), (["--resampling", "exact"], "exact"), (["--resampling", "fast"], "fast")):
        out = tmp_path / ("z" + "".join(flag))
        assert main(["tile", sample_svs, "--out", str(out), "--shape", "64", "--mpp", str(mpp), "--quiet", *flag]) == 0
        group = zarr.open_group(str(out / "sample" / "tiles.zarr"), mode="r")
        np.testing.assert_array_equal(np.asarray(group["tiles"][:]), expected[resampling])
        assert group.attrs["wsikit"]["options"].get("resampling", "fast") == resampling  # recorded unless the default
    with pytest.raises(SystemExit) as exited:
        main(["tile", sample_svs, "--out", str(tmp_path / "x"), "--resampling", "bilinear"])
    assert exited.value.code == 2
