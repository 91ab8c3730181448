"""Tiling a slide into its result folder: Zarr and image outputs, skipping, overwriting,
resuming, and surviving a killed run with the same bytes."""
from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tifffile
import zarr
from PIL import Image

import wsikit
from tests.helpers import tree_bytes
from wsikit.sinks import SlideJob, TileOptions, plan_part, tile_slide, write_part
from wsikit.sinks import run as sink_run
from wsikit.sinks.channels import PixelLayout


def read_manifest(folder) -> list[dict]:
    with open(os.path.join(folder, "tiles.csv"), newline="") as f:
        return list(csv.DictReader(f))


OPTIONS = TileOptions(shape=(128, 128), mpp=0.5, min_tissue=0.25)


@pytest.fixture(scope="module")
def zarr_result(sample_svs, tmp_path_factory):
    out = tmp_path_factory.mktemp("zarr-out")
    result = tile_slide(sample_svs, out, OPTIONS)
    return out, result


def test_zarr_result_holds_the_tiles_of_the_plan(sample_svs, zarr_result):
    out, result = zarr_result
    assert result.status == "written" and result.folder == str(out / "sample")
    with wsikit.open_slide(sample_svs) as slide:
        tiles = list(slide.generate_tiles(128, mpp=0.5, min_tissue=0.25))
        level_shapes = slide.level_shapes
    assert 0 < len(tiles) == result.tiles == result.written
    group = zarr.open_group(os.path.join(result.folder, "tiles.zarr"), mode="r")
    array = group["tiles"]
    assert array.shape == (len(tiles), 128, 128, 3) and array.chunks == (1, 128, 128, 3)
    assert array.dtype == np.uint8
    for k, tile in enumerate(tiles):
        np.testing.assert_array_equal(array[k], tile.image)
    meta = group.attrs["wsikit"]
    assert meta["slide"] == os.path.abspath(sample_svs)
    assert meta["mpp"] == [0.25, 0.25] and meta["objective_power"] == 40.0
    assert [tuple(s) for s in meta["level_shapes"]] == list(level_shapes)
    assert meta["options"]["mpp"] == 0.5 and meta["tile_axes"] == ["tile", "i", "j", "channel"]
    rows = read_manifest(result.folder)
    assert list(rows[0]) == ["i", "j", "level", "i0", "j0", "height", "width", "mpp", "tissue"]
    assert len(rows) == len(tiles)
    for row, tile in zip(rows, tiles):
        assert (int(row["i"]), int(row["j"])) == tile.coords
        assert (int(row["i0"]), int(row["j0"])) == tile.coords0
        assert int(row["level"]) == tile.level == 0
        assert (int(row["height"]), int(row["width"])) == (128, 128)
        assert float(row["mpp"]) == 0.5
        assert float(row["tissue"]) == pytest.approx(tile.tissue, abs=1e-6) and tile.tissue >= 0.25


def test_a_complete_result_is_skipped_and_not_overwritten(sample_svs, zarr_result):
    out, result = zarr_result
    before = tree_bytes(result.folder)
    again = tile_slide(sample_svs, out, OPTIONS)
    assert again.status == "skipped" and again.tiles == result.tiles and "already complete" in again.reason
    other = tile_slide(sample_svs, out, TileOptions(shape=(64, 64), mpp=0.5))
    assert other.status == "failed" and "overwrite" in other.reason
    assert tree_bytes(result.folder) == before


def test_overwrite_redoes_a_result(sample_svs, tmp_path):
    first = tile_slide(sample_svs, tmp_path, TileOptions(shape=(256, 256), level=1))
    assert first.tiles == 1
    second = tile_slide(sample_svs, tmp_path, TileOptions(shape=(128, 128), level=1), overwrite=True)
    assert second.status == "written" and second.tiles == 2 * 3
    assert len(read_manifest(second.folder)) == 6


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_image_folder_result(sample_svs, tmp_path, fmt):
    result = tile_slide(sample_svs, tmp_path, TileOptions(shape=(64, 64), level=1, format=fmt))
    with wsikit.open_slide(sample_svs) as slide:
        tiles = list(slide.generate_tiles(64, level=1))
    rows = read_manifest(result.folder)
    assert len(rows) == len(tiles) == 4 * 6
    assert sorted(os.listdir(os.path.join(result.folder, "images"))) == sorted(os.path.basename(r["file"]) for r in rows)
    for row, tile in zip(rows, tiles):
        assert row["file"] == f"images/{tile.coords[0]}_{tile.coords[1]}.{'png' if fmt == 'png' else 'jpg'}"
        image = np.asarray(Image.open(os.path.join(result.folder, row["file"])))
        assert image.shape == (64, 64, 3)
        if fmt == "png":
            np.testing.assert_array_equal(image, tile.image)
        else:
            assert np.abs(image.astype(int) - tile.image).mean() < 8
        assert row["mpp"] == "1" and row["tissue"] == ""


def test_multichannel_tiles_keep_every_plane(tmp_path):
    path = tmp_path / "fluo.tif"
    rng = np.random.default_rng(2)
    tifffile.imwrite(path, rng.integers(0, 65535, (3, 256, 256)).astype(np.uint16), photometric="minisblack",
                     tile=(128, 128))
    result = tile_slide(path, tmp_path / "out", TileOptions(shape=(128, 128)))
    with wsikit.open_slide(path) as slide:
        assert not slide.is_rgb
        channels = int(np.prod(slide.sizes))
        tiles = list(slide.generate_tiles(128))
        meta_sizes = dict(zip("zct", slide.sizes))
    array = zarr.open_group(os.path.join(result.folder, "tiles.zarr"), mode="r")["tiles"]
    assert array.shape == (4, 128, 128, channels)
    for k, tile in enumerate(tiles):
        np.testing.assert_array_equal(array[k], tile.image.reshape(128, 128, channels))
    assert zarr.open_group(os.path.join(result.folder, "tiles.zarr"), mode="r").attrs["wsikit"]["sizes"] == meta_sizes


def test_images_refuse_channel_counts_they_cannot_hold(sample_svs, tmp_path, monkeypatch):
    monkeypatch.setattr(sink_run, "stored_pixel_layout", lambda slide: PixelLayout(5, np.dtype(np.uint8)))
    with pytest.raises(ValueError, match="5 channels.*zarr"):
        write_part(plan_part(SlideJob(os.path.abspath(sample_svs), str(tmp_path / "x"),
                                      TileOptions(shape=(64, 64), level=2, format="png"))))


def test_no_tiles_gives_an_empty_result(sample_svs, tmp_path):
    mask_options = TileOptions(shape=(64, 64), level=2, min_tissue=1.0)
    result = tile_slide(sample_svs, tmp_path, mask_options)
    assert result.status == "written" and result.tiles == 0
    assert zarr.open_group(os.path.join(result.folder, "tiles.zarr"), mode="r")["tiles"].shape == (0, 64, 64, 3)
    assert read_manifest(result.folder) == []


def test_resume_writes_only_missing_tiles_and_ends_identical(sample_svs, tmp_path):
    options = TileOptions(shape=(64, 64), level=1, format="png")
    whole = tile_slide(sample_svs, tmp_path / "whole", options)
    reference = tree_bytes(whole.folder)
    part = tile_slide(sample_svs, tmp_path / "part", options)
    images = sorted(os.listdir(os.path.join(part.folder, "images")))
    for name in images[::3]:
        os.unlink(os.path.join(part.folder, "images", name))
    os.unlink(os.path.join(part.folder, "tiles.csv"))
    with open(os.path.join(part.folder, "images", ".wsikit-tmp-deadbeef"), "wb") as f:
        f.write(b"half a tile")
    again = tile_slide(sample_svs, tmp_path / "part", options)
    assert again.status == "written" and again.written == len(images[::3])
    assert tree_bytes(again.folder) == reference


# The runs below store 8 tiles a shard, so that a small slide has many shards to resume
# from; the killed run is slowed down so that it can be killed halfway.
RUN = """
import sys, time
from wsikit.sinks.writers import ImageTileWriter, ZarrTileWriter, shards
shards.SHARD_TILES = 8
if sys.argv[1] == "--slow":
    del sys.argv[1]
    for cls in (ZarrTileWriter, ImageTileWriter):
        def write_run(self, run, _original=cls.write_run):
            time.sleep(0.02 * len(run))
            _original(self, run)
        cls.write_run = write_run
from wsikit.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _count_tiles(folder: str) -> int:
    """Tiles stored whole: PNG files, or 8 per Zarr shard file (``tiles/c/<s>/0/0/0``)."""
    n = 0
    for root, _, files in os.walk(folder):
        n += sum(1 for f in files if f.endswith(".png"))
        n += sum(8 for f in files if root.split(os.sep)[-4:-3] == ["c"] and f == "0")
    return n


@pytest.mark.parametrize("fmt", ["zarr", "png"])
def test_a_run_killed_halfway_finishes_on_rerun_with_the_same_bytes(sample_svs, tmp_path, fmt):
    args = ["tile", sample_svs, "--shape", "32", "--level", "1", "--min-tissue", "0.1", "--format", fmt, "--quiet"]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    whole = subprocess.run([sys.executable, "-c", RUN, *args, "--out", str(tmp_path / "whole")],
                           check=False, capture_output=True, text=True, env=env, timeout=300)
    assert whole.returncode == 0, whole.stderr
    reference = tree_bytes(tmp_path / "whole" / "sample")
    total = len(read_manifest(tmp_path / "whole" / "sample"))
    assert total > 40

    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-c", RUN, "--slow", *args, "--out", str(out)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    try:
        while _count_tiles(str(out)) < total // 3:
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "the run wrote no tiles"
            time.sleep(0.005)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    folder = out / "sample"
    assert not (folder / "tiles.csv").exists()
    assert 0 < _count_tiles(str(folder)) < total

    rerun = subprocess.run([sys.executable, "-c", RUN, *args, "--out", str(out)],
                           check=False, capture_output=True, text=True, env=env, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert tree_bytes(folder) == reference
    # And once more: nothing to do.
    third = subprocess.run([sys.executable, "-c", RUN, *args, "--out", str(out)],
                           check=False, capture_output=True, text=True, env=env, timeout=300)
    assert third.returncode == 0 and "already complete" in third.stdout + third.stderr
    assert tree_bytes(folder) == reference




def test_a_zarr_result_holds_many_tiles_per_file(sample_svs, tmp_path):
    result = tile_slide(sample_svs, tmp_path, TileOptions(shape=32))
    assert result.tiles == 32 * 48
    files = sum(len(names) for _, _, names in os.walk(result.folder))
    assert files <= result.tiles / 100  # 6 shards of 256 tiles, 2 zarr.json, job.json, tiles.csv
    array = zarr.open_group(os.path.join(result.folder, "tiles.zarr"), mode="r")["tiles"]
    assert array.shards == (256, 32, 32, 3)
    with wsikit.open_slide(sample_svs) as slide:
        expected = np.stack([tile.image for tile in slide.generate_tiles(32)])
    np.testing.assert_array_equal(array[:], expected)


def test_split_ranges_cut_at_store_units():
    from wsikit.sinks import split_ranges

    assert split_ranges(1000, 256, 3) == [(0, 256), (256, 512), (512, 1000)]
    assert split_ranges(1000, 256, 10) == [(0, 256), (256, 512), (512, 768), (768, 1000)]
    assert split_ranges(10, 1, 3) == [(0, 3), (3, 6), (6, 10)]
    assert split_ranges(0, 256, 4) == []
    for count, unit, pieces in ((1536, 256, 6), (77, 8, 5), (5, 1, 9)):
        ranges = split_ranges(count, unit, pieces)
        assert ranges[0][0] == 0 and ranges[-1][1] == count
        assert all(a < b and a % unit == 0 for a, b in ranges)
        assert all(b == c for (_, b), (c, _) in zip(ranges, ranges[1:]))


@pytest.mark.parametrize("fmt", ["zarr", "jpeg", "png"])
def test_ranges_written_apart_give_the_bytes_of_one_run(sample_svs, tmp_path, fmt):
    from wsikit.sinks import finish_part, split_ranges, start_part, write_range

    options = TileOptions(shape=32, format=fmt) if fmt == "zarr" else TileOptions(shape=128, level=0, format=fmt)
    whole = tile_slide(sample_svs, tmp_path / "whole", options)
    part = plan_part(SlideJob(os.path.abspath(sample_svs), str(tmp_path / "apart" / "sample"), options))
    started = start_part(part)
    ranges = split_ranges(len(part.plan), started.unit, 4)
    assert len(ranges) == 4
    for start, stop in ranges[:-1][::-1]:  # in any order, each with its own writer
        write_range(part, start, stop)
    with pytest.raises(RuntimeError, match="not stored"):
        finish_part(part, started, 0)
    write_range(part, *ranges[-1])
    result = finish_part(part, started, len(part.plan))
    assert result.status == "written" and result.tiles == whole.tiles
    assert tree_bytes(tmp_path / "apart" / "sample") == tree_bytes(whole.folder)


def test_finishing_removes_what_a_killed_range_left(sample_svs, tmp_path):
    # A range task killed mid-write leaves a temporary; its retry writes the shard whole.
    from wsikit.sinks import finish_part, start_part, write_range

    options = TileOptions(shape=32)
    whole = tile_slide(sample_svs, tmp_path / "whole", options)
    part = plan_part(SlideJob(os.path.abspath(sample_svs), str(tmp_path / "apart" / "sample"), options))
    started = start_part(part)
    write_range(part)
    shard_folder = tmp_path / "apart" / "sample" / "tiles.zarr" / "tiles" / "c" / "2" / "0" / "0"
    (shard_folder / ".wsikit-tmp-killed").write_bytes(b"half a shard")
    finish_part(part, started, len(part.plan))
    assert tree_bytes(tmp_path / "apart" / "sample") == tree_bytes(whole.folder)


def test_tiles_that_never_came_fail_the_slide_without_a_manifest(sample_svs, tmp_path, monkeypatch):
    import itertools

    from wsikit.backends.base import SlideBackend

    original = SlideBackend.read_plan

    def short(self, plan, **kwargs):
        return itertools.islice(original(self, plan, **kwargs), max(0, len(plan) - 1))

    monkeypatch.setattr(SlideBackend, "read_plan", short)
    with pytest.raises(RuntimeError, match="1 of 1536 tiles were not read"):
        tile_slide(sample_svs, tmp_path, TileOptions(shape=32))
    assert not (tmp_path / "sample" / "tiles.csv").exists()
