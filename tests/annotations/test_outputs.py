"""``wsikit tile --annotations``: label columns in tiles.csv, the Zarr ``masks`` array, mask
images beside PNG/JPEG tiles, folders matched by stem, --min-label; TileDataset reads the
results back; ``wsikit thumbnail --overlay annotations`` draws the classes."""
from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import shapely
import zarr
from PIL import Image

import wsikit
from wsikit.cli import main
from wsikit.dataset import unpack_masks
from wsikit.samples.annotations import write_geojson


@pytest.fixture()
def labelled(tmp_path: Path, sample_svs: str) -> tuple[Path, Path]:
    """A folder with the sample slide, a copy without annotations, and the slide's GeoJSON."""
    folder = tmp_path / "slides"
    folder.mkdir()
    slide = folder / "sample.svs"
    shutil.copy(sample_svs, slide)
    shutil.copy(sample_svs, folder / "plain.svs")
    rng = np.random.default_rng(4)
    from wsikit.samples.annotations import blob

    polygons = {"tumour": [blob(rng, (700, 500), 300, 120, hole=0.4)],
                "stroma": [shapely.box(0, 0, 600, 400), blob(rng, (1300, 800), 200, 80)]}
    write_geojson(folder / "sample.geojson", polygons, colors={"tumour": (200, 0, 0), "stroma": (0, 150, 255)})
    return slide, folder


def read_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


@pytest.mark.parametrize("fmt", ["zarr", "png"])
def test_tile_with_annotations(tmp_path: Path, labelled: tuple[Path, Path], fmt: str) -> None:
    slide, folder = labelled
    out = tmp_path / "out"
    args = ["tile", str(folder), "--out", str(out), "--format", fmt, "--shape", "96", "--level", "1", "--pad",
            "--annotations", str(folder), "--quiet"]
    assert main(args) == 0
    annotations = wsikit.read_annotations(folder / "sample.geojson")
    with wsikit.open_slide(slide) as s:
        plan = s.tile_plan(96, level=1, pad=True, annotations=annotations)
        tiles = list(s.read_plan(plan))
    header, rows = read_rows(out / "sample" / "tiles.csv")
    assert header[-3 if fmt == "png" else -2:] == ["label:tumour", "label:stroma"] + (["mask_file"] if fmt == "png"
                                                                                   else [])
    assert len(rows) == len(tiles)
    column = {name: k for k, name in enumerate(header)}
    for row, tile in zip(rows, tiles):
        assert (int(row[0]), int(row[1])) == tile.coords
        for name in ("tumour", "stroma"):
            assert float(row[column[f"label:{name}"]]) == pytest.approx(tile.labels[name], rel=1e-5, abs=1e-9)
    if fmt == "zarr":
        group = zarr.open_group(out / "sample" / "tiles.zarr", mode="r")
        masks = np.asarray(group["masks"][:])
        assert masks.shape == (len(tiles), 96, 96) and masks.dtype == np.uint8
        assert group["masks"].attrs["wsikit"]["classes"] == ["tumour", "stroma"]
        stored = [unpack_masks(m, ["tumour", "stroma"]) for m in masks]
    else:
        stored = []
        for row in rows:
            picture = np.asarray(Image.open(out / "sample" / row[column["mask_file"]]))
            assert picture.dtype == np.uint8 and picture.shape == (96, 96)
            stored.append(unpack_masks(picture, ["tumour", "stroma"]))
    assert sum(int(m["tumour"].sum()) for m in stored) > 0 and sum(int(m["stroma"].sum()) for m in stored) > 0
    for got, tile in zip(stored, tiles):
        for name in ("tumour", "stroma"):
            assert np.array_equal(got[name], tile.masks[name])
    # the slide without an annotation file of its stem is tiled without labels
    plain_header, _ = read_rows(out / "plain" / "tiles.csv")
    assert not any(name.startswith("label:") for name in plain_header)

    # the dataset over the whole output, and over one slide's folder
    dataset = wsikit.TileDataset(out)
    assert dataset.slides == ["plain", "sample"]
    one = wsikit.TileDataset(out / "sample")
    assert len(one) == len(tiles)
    for k in (0, len(tiles) // 2, len(tiles) - 1):
        item = one[k]
        assert np.array_equal(item["image"], tiles[k].image) and tuple(item["coords"]) == tiles[k].coords
        assert item["slide"] == "sample" and item["labels"].keys() == tiles[k].labels.keys()
        assert all(np.array_equal(item["masks"][c], tiles[k].masks[c]) for c in tiles[k].masks)
    plain_item = dataset[0]
    assert plain_item["slide"] == "plain" and plain_item["labels"] == {} and plain_item["masks"] == {}

    # a rerun finds everything complete
    assert main(args) == 0
    assert read_rows(out / "sample" / "tiles.csv")[1] == rows


def test_min_label_on_the_command_line(tmp_path: Path, labelled: tuple[Path, Path]) -> None:
    slide, folder = labelled
    out = tmp_path / "out"
    assert main(["tile", str(slide), "--out", str(out), "--shape", "128", "--annotations",
                 str(folder / "sample.geojson"), "--min-label", "tumour=0.3", "--quiet"]) == 0
    header, rows = read_rows(out / "sample" / "tiles.csv")
    k = header.index("label:tumour")
    assert rows and all(float(r[k]) >= 0.3 for r in rows)
    with wsikit.open_slide(slide) as s:
        expected = s.tile_plan(128, annotations=wsikit.read_annotations(folder / "sample.geojson"),
                               min_label={"tumour": 0.3})
    assert [(int(r[0]), int(r[1])) for r in rows] == [spec.coords for spec in expected]


def test_bad_annotation_file_fails_the_slide(tmp_path: Path, labelled: tuple[Path, Path], capsys) -> None:
    slide, folder = labelled
    bad = tmp_path / "bad.geojson"
    bad.write_text('{"type": "FeatureCollection", "features": [')
    assert main(["tile", str(slide), "--out", str(tmp_path / "out"), "--annotations", str(bad), "--quiet"]) == 1
    assert "not valid JSON" in capsys.readouterr().err
    assert main(["tile", str(slide), "--out", str(tmp_path / "out2"), "--min-label", "x=0.5", "--quiet"]) == 2


def test_thumbnail_draws_annotations(tmp_path: Path, labelled: tuple[Path, Path]) -> None:
    slide, folder = labelled
    plain, drawn = tmp_path / "plain.png", tmp_path / "drawn.png"
    assert main(["thumbnail", str(slide), str(plain), "--size", "384"]) == 0
    assert main(["thumbnail", str(slide), str(drawn), "--size", "384", "--overlay", "annotations",
                 "--annotations", str(folder)]) == 0
    a, b = np.asarray(Image.open(plain)).astype(int), np.asarray(Image.open(drawn)).astype(int)
    scale = a.shape[1] / 1536
    # inside the stroma box (0..600 x 0..400), away from other classes: tinted towards (0, 150, 255)
    i, j = int(100 * scale), int(100 * scale)
    assert b[i, j, 2] - a[i, j, 2] > 10 and b[i, j, 0] < a[i, j, 0]
    # far from every annotation: unchanged
    i, j = int(1000 * scale), int(100 * scale)
    assert np.array_equal(a[i, j], b[i, j])
    assert main(["thumbnail", str(slide), str(drawn), "--overlay", "annotations"]) == 1  # no --annotations
