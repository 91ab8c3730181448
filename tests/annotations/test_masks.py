"""Tile masks and label fractions against an independent reference: every mask pixel is
shapely.contains_xy of its centre mapped to level 0 (the documented mapping, computed here
from each TileSpec), and every fraction is a shapely intersection area."""
from __future__ import annotations

import numpy as np
import pytest
import shapely

import wsikit
from wsikit.annotations import Annotations, TileFrames
from wsikit.samples.annotations import blob, random_polygons


def reference_centres(spec: wsikit.TileSpec, level_scale: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """(ys, xs): level-0 centres of a tile's pixel rows and columns, from the docs' formula."""
    (ri, rj), (rh, rw), (h, w) = spec.read_location, spec.read_size, spec.shape
    ys = (ri + (np.arange(h) + 0.5) * rh / h) * level_scale[0]
    xs = (rj + (np.arange(w) + 0.5) * rw / w) * level_scale[1]
    return ys, xs


def reference_box(spec: wsikit.TileSpec, level_scale: tuple[float, float]) -> shapely.Polygon:
    (ri, rj), (rh, rw) = spec.read_location, spec.read_size
    si, sj = level_scale
    return shapely.box(rj * sj, ri * si, (rj + rw) * sj, (ri + rh) * si)


@pytest.fixture(scope="module")
def shapes() -> dict[str, list[shapely.Geometry]]:
    """Random polygons with holes, a class of multipolygons, and overlapping classes."""
    polygons = random_polygons((1024, 1536), ("tumour", "stroma"), count=14, radius=(0.05, 0.3), seed=3)
    rng = np.random.default_rng(7)
    multi = shapely.MultiPolygon([blob(rng, (300 + 400 * k, 700), 120, 150) for k in range(3)])
    polygons["necrosis"] = [multi, shapely.box(10.0, 10.0, 203.0, 411.0)]  # integer edges: centres land on them
    return polygons


@pytest.mark.parametrize("tiling", [
    dict(shape=128),
    dict(shape=100, stride=70, pad=True),
    dict(shape=64, level=1),
    dict(shape=16, level=2, pad=True),
    dict(shape=96, mpp=0.6),
    dict(shape=50, mpp=1.37, pad=True),
], ids=lambda t: ",".join(f"{k}={v}" for k, v in t.items()))
def test_masks_and_fractions_match_shapely(sample_svs: str, shapes: dict, tiling: dict) -> None:
    annotations = Annotations.from_polygons(shapes)
    unions = {name: shapely.union_all(parts) for name, parts in shapes.items()}
    checked = inside = 0
    with wsikit.open_slide(sample_svs) as slide:
        plan = slide.tile_plan(**tiling, annotations=annotations)
        tiles = list(slide.read_plan(plan))
        assert len(tiles) == len(plan) > 0
        scale = slide.level_scale(plan.level)
        for spec, tile in zip(plan, tiles):
            assert set(tile.masks) == set(tile.labels) == set(shapes)
            ys, xs = reference_centres(spec, scale)
            box = reference_box(spec, scale)
            for name, union in unions.items():
                expected = shapely.contains_xy(union, xs[None, :], ys[:, None])
                mask = tile.masks[name]
                assert mask.shape == tile.image.shape[:2] and mask.dtype == bool
                assert np.array_equal(mask, expected), (name, spec, int((mask != expected).sum()))
                assert tile.labels[name] == pytest.approx(shapely.intersection(union, box).area / box.area, abs=1e-6)
                checked += mask.size
                inside += int(expected.sum())
    assert 0 < inside < checked  # the tiling met both inside and outside pixels


@pytest.mark.parametrize("scale", [(1.0, 1.0), (4.0, 4.0), (4.0003, 3.9997), (1.7, 2.3), (0.5, 0.5)])
def test_frames_at_any_scale(scale: tuple[float, float]) -> None:
    """Masks of hand-made frames (odd level scales, resampled read boxes) pixel for pixel."""
    rng = np.random.default_rng(int(scale[0] * 1000))
    shapes = random_polygons((3000, 3000), ("a", "b"), count=30, radius=(0.02, 0.12), seed=11)
    shapes["a"].append(shapely.box(100.0, 100.0, 900.0, 500.0))
    annotations = Annotations.from_polygons(shapes)
    n, (h, w) = 30, (40, 48)
    read_h = rng.integers(20, 90, n)
    read = np.stack([rng.integers(0, 2800 / scale[0], n), rng.integers(0, 2800 / scale[1], n), read_h,
                     read_h + rng.integers(-5, 5, n)], axis=1).astype(float)
    frames = TileFrames(read, (h, w), scale)
    masks = annotations.tile_masks(frames)
    fractions = annotations.fractions(frames.boxes())
    for k in range(n):
        ri, rj, rh, rw = read[k]
        ys = (ri + (np.arange(h) + 0.5) * rh / h) * scale[0]
        xs = (rj + (np.arange(w) + 0.5) * rw / w) * scale[1]
        box = shapely.box(rj * scale[1], ri * scale[0], (rj + rw) * scale[1], (ri + rh) * scale[0])
        for c, name in enumerate(annotations.classes):
            union = shapely.union_all(shapes[name])
            assert np.array_equal(masks[k][name], shapely.contains_xy(union, xs[None, :], ys[:, None]))
            assert fractions[k, c] == pytest.approx(shapely.intersection(union, box).area / box.area, abs=1e-9)


def test_centres_on_the_boundary_are_outside() -> None:
    """A rectangle whose edges pass through pixel centres: those centres are outside, as
    shapely.contains_xy says (the rows are redone exactly)."""
    annotations = Annotations.from_polygons({"r": [shapely.box(2.5, 4.5, 10.5, 8.0)]})
    frames = TileFrames(np.array([[0.0, 0.0, 16.0, 16.0]]), (16, 16), (1.0, 1.0))
    mask = annotations.tile_masks(frames)[0]["r"]
    xs = np.arange(16) + 0.5
    expected = shapely.contains_xy(shapely.box(2.5, 4.5, 10.5, 8.0), xs[None, :], xs[:, None])
    assert np.array_equal(mask, expected)
    assert mask[5, 3] and not mask[4, 3] and not mask[5, 2] and not mask[5, 10] and mask[7, 9]


def test_overlapping_classes_and_polygons() -> None:
    """Classes overlap freely; two overlapping polygons of one class count once."""
    a, b = shapely.box(0.0, 0.0, 60.0, 64.0), shapely.box(40.0, 0.0, 100.0, 64.0)
    annotations = Annotations.from_polygons({"x": [a, b], "y": [shapely.box(20.0, 0.0, 80.0, 64.0)]})
    frames = TileFrames(np.array([[0.0, 0.0, 64.0, 128.0]]), (64, 128), (1.0, 1.0))
    masks = annotations.tile_masks(frames)[0]
    fractions = annotations.fractions(frames.boxes())[0]
    assert masks["x"][:, :100].all() and not masks["x"][:, 100:].any()
    assert masks["y"][:, 20:80].all() and (masks["x"] & masks["y"]).sum() == 60 * 64
    assert fractions.tolist() == pytest.approx([100 / 128, 60 / 128])


def test_label_image_masks_are_its_pixels(sample_svs: str, tmp_path) -> None:
    """A label image at downsample 4: at level 1 (4 level-0 pixels a pixel) each tile
    pixel is one label pixel; at level 0 each label pixel covers 4 x 4 tile pixels."""
    from PIL import Image

    rng = np.random.default_rng(5)
    labels = np.kron(rng.integers(0, 3, (32, 48)), np.ones((8, 8), dtype=np.int64)).astype(np.uint8)  # (256, 384)
    labels[rng.random(labels.shape) < 0.01] = 2  # stray single pixels
    path = tmp_path / "labels.png"
    Image.fromarray(labels).save(path)
    annotations = wsikit.read_annotations(path, classes={1: "tumour", 2: "stroma"}, downsample=4)
    assert annotations.classes == ("tumour", "stroma")
    with wsikit.open_slide(sample_svs) as slide:
        for tile in slide.generate_tiles(64, level=1, annotations=annotations):
            i, j = tile.coords
            window = labels[i:i + 64, j:j + 64]
            assert np.array_equal(tile.masks["tumour"], window == 1)
            assert np.array_equal(tile.masks["stroma"], window == 2)
            assert tile.labels["stroma"] == pytest.approx((window == 2).mean(), abs=1e-12)
        for tile in slide.generate_tiles(128, annotations=annotations):
            i, j = tile.coords
            window = np.kron(labels[i // 4:(i + 128) // 4, j // 4:(j + 128) // 4], np.ones((4, 4), dtype=np.uint8))
            assert np.array_equal(tile.masks["tumour"], window == 1)
        # the slide's shape gives the downsample when none is given
        fitted = wsikit.read_annotations(path, classes={1: "tumour"}, slide_shape=slide.level_shapes[0])
        assert fitted.regions["tumour"].downsample == (4.0, 4.0)


def test_masks_wholly_inside_or_outside_are_shared_and_read_only() -> None:
    """Tiles wholly inside a class get one shared all-True mask, tiles outside one shared
    all-False mask, both read-only (so that no tile's change reaches another); the tile on
    the boundary gets its own writable mask. All equal shapely.contains_xy of the centres."""
    region = shapely.box(-10.0, -10.0, 40.0, 26.0)  # tiles 0-1 inside, 2 across the edge, 3 outside
    annotations = Annotations.from_polygons({"r": [region], "far": [shapely.box(500.0, 500.0, 510.0, 510.0)]})
    boxes = np.array([[0.0, 16.0 * k, 16.0, 16.0] for k in range(4)])  # (row, col, height, width) read boxes
    frames = TileFrames(boxes, (16, 16), (1.0, 1.0))
    masks = annotations.tile_masks(frames)
    centres = np.arange(16) + 0.5
    for k, tile in enumerate(masks):
        expected = shapely.contains_xy(region, centres[None, :] + 16 * k, centres[:, None])
        assert np.array_equal(tile["r"], expected) and tile["r"].dtype == bool and tile["r"].shape == (16, 16)
        assert not tile["far"].any() and not tile["far"].flags.writeable
    assert masks[0]["r"] is masks[1]["r"] and masks[0]["r"].all() and not masks[0]["r"].flags.writeable
    assert masks[3]["r"] is masks[0]["far"] and not masks[3]["r"].any()
    assert masks[2]["r"].flags.writeable and 0 < masks[2]["r"].sum() < 256
    with pytest.raises(ValueError):
        masks[3]["r"][0, 0] = True
