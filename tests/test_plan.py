"""Tile plans: level grids, tiling by mpp / magnification, tissue filtering."""
from __future__ import annotations

import pickle
from types import SimpleNamespace

import numpy as np
import pytest
import tifffile

import wsikit
from wsikit.pixels import resample_area
from wsikit.plan import LEVEL_TOLERANCE, TileSpec, best_level, make_plan, target_scale
from wsikit.tissue import TissueMask


@pytest.fixture(scope="module")
def slide(sample_svs):
    # levels (1024, 1536), (256, 384), (64, 96) at 0.25, 1 and 4 mpp; objective 40x
    with wsikit.open_slide(sample_svs) as s:
        yield s


@pytest.fixture(scope="module")
def base(slide):
    return slide.extract_region((0, 0), slide.level_shapes[0])


def test_level_plan_is_the_seed_grid(slide):
    plan = make_plan(slide, shape=100, stride=50, level=1)
    h, w = slide.level_shapes[1]
    expected = [(i, j) for i in range(0, h - 100 + 1, 50) for j in range(0, w - 100 + 1, 50)]
    assert [s.coords for s in plan] == expected
    for spec in plan:
        assert spec.level == 1 and spec.read_location == spec.coords and spec.read_size == spec.shape == (100, 100)
        assert spec.coords0 == (spec.coords[0] * 4, spec.coords[1] * 4)
        assert spec.mpp == (1.0, 1.0) and spec.tissue is None


def test_mpp_tiles_match_area_resampling_the_base_image(slide, base):
    """0.5 mpp from a 0.25 mpp base: each tile is its 2 x 2 area means, bit for bit."""
    reference = np.rint(base.reshape(512, 2, 768, 2, 3).mean(axis=(1, 3))).astype(np.uint8)
    np.testing.assert_array_equal(resample_area(base, (512, 768)), reference)
    tiles = list(slide.generate_tiles(128, mpp=0.5, resampling="exact"))
    assert len(tiles) == 4 * 6
    for tile in tiles:
        i, j = tile.coords
        assert tile.level == 0
        assert tile.coords0 == (2 * i, 2 * j)
        assert tile.mpp == (0.5, 0.5)
        np.testing.assert_array_equal(tile.image, reference[i:i + 128, j:j + 128])


def test_mpp_with_a_non_integer_ratio_matches_within_rounding(slide, base):
    """0.8 mpp: 3.2 level-0 pixels per tile pixel; tiles of 100 start on whole pixels."""
    reference = resample_area(base, (320, 480))
    tiles = list(slide.generate_tiles(100, mpp=0.8, resampling="exact"))
    assert [t.coords for t in tiles] == [(i, j) for i in (0, 100, 200) for j in (0, 100, 200, 300)]
    for tile in tiles:
        i, j = tile.coords
        assert tile.coords0 == (round(3.2 * i), round(3.2 * j))
        diff = np.abs(tile.image.astype(int) - reference[i:i + 100, j:j + 100])
        assert diff.max() <= 1


def test_mpp_at_a_level_resolution_reads_that_level_directly(slide):
    plan = make_plan(slide, 64, mpp=1.0)
    assert {s.level for s in plan} == {1}
    assert all(s.read_size == s.shape and s.read_location == s.coords for s in plan)
    tiles = list(slide.read_plan(plan))
    for tile in tiles:
        np.testing.assert_array_equal(tile.image, slide.extract_region(tile.coords, 64, level=1))
    # Between levels: the finer one, resampled.
    plan = make_plan(slide, 64, mpp=2.0)
    assert {s.level for s in plan} == {1} and plan[0].read_size == (128, 128)
    # Coarser than every level: the coarsest, resampled.
    assert make_plan(slide, 8, mpp=8.0)[0].level == 2


def test_tiles_carry_the_mpp_asked_for():
    from tests.helpers import real_slide

    with wsikit.open_slide(real_slide("small_HE.svs")) as s:  # 0.499 mpp
        plan = make_plan(s, 256, mpp=1.0)
        assert plan and all(spec.mpp == (1.0, 1.0) for spec in plan)
        assert plan[1].coords0 == (0, round(256 / 0.499))


def test_magnification_uses_the_objective_power(slide):
    by_mag = make_plan(slide, 128, magnification=20)
    by_mpp = make_plan(slide, 128, mpp=0.5)
    assert by_mag == by_mpp
    assert make_plan(slide, 64, magnification=10)[0].level == 1


def test_target_scale_rules():
    both = SimpleNamespace(path="x.svs", mpp=(0.25, 0.25), objective_power=40.0)
    assert target_scale(both, mpp=0.5) == (2.0, 2.0)
    assert target_scale(both, mpp=(0.5, 1.0)) == (2.0, 4.0)
    assert target_scale(both, magnification=20) == (2.0, 2.0)
    # Power without mpp: still a ratio of level-0 pixels.
    power_only = SimpleNamespace(path="p.tif", mpp=None, objective_power=20.0)
    assert target_scale(power_only, magnification=5) == (4.0, 4.0)
    # mpp without power: 10 / M microns per pixel.
    mpp_only = SimpleNamespace(path="m.tif", mpp=(0.5, 0.5), objective_power=None)
    assert target_scale(mpp_only, magnification=10) == (2.0, 2.0)
    neither = SimpleNamespace(path="/data/n.tif", mpp=None, objective_power=None)
    with pytest.raises(ValueError, match=r"/data/n\.tif.*no pixel size"):
        target_scale(neither, mpp=0.5)
    with pytest.raises(ValueError, match=r"/data/n\.tif.*neither"):
        target_scale(neither, magnification=20)
    with pytest.raises(ValueError, match="mpp must be a positive"):
        target_scale(both, mpp=-1)
    with pytest.raises(TypeError, match="magnification"):
        target_scale(both, magnification="20x")
    with pytest.raises(ValueError, match="not both"):
        target_scale(both, mpp=0.5, magnification=20)


def test_slide_without_mpp_gives_a_clear_error(tmp_path):
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, np.full((300, 400, 3), 200, np.uint8), photometric="rgb")
    with wsikit.open_slide(path) as s:
        assert s.mpp is None
        with pytest.raises(ValueError, match="plain.tif.*mpp"):
            list(s.generate_tiles(64, mpp=0.5))


def test_enlarging_level_0_is_bounded(slide):
    # 0.25 mpp at level 0: 0.125 mpp doubles it (allowed), 0.1 would enlarge it 2.5 times.
    plan = make_plan(slide, 64, mpp=0.125)
    assert plan[0].level == 0 and plan[0].read_size == (32, 32)
    tile = next(iter(slide.read_plan(plan[:1])))
    assert tile.image.shape == (64, 64, 3)
    np.testing.assert_array_equal(tile.image[::2, ::2], slide.extract_region((0, 0), 32))
    with pytest.raises(ValueError, match=r"sample\.svs.*enlarge level 0 2\.5 times.*0\.25 x 0\.25 microns"):
        make_plan(slide, 64, mpp=0.1)
    with pytest.raises(ValueError, match="magnification=100.*objective power 40"):
        make_plan(slide, 64, magnification=100)


def test_best_level_tolerates_inexact_downsamples():
    # Level 1 downsample 4.016 (as small_HE_levels.tiff): at 4x it counts as the target.
    fake = SimpleNamespace(level_shapes=((1004, 1004), (250, 250)),
                           level_scale=lambda k: (1.0, 1.0) if k == 0 else (4.016, 4.016))
    assert 4.016 <= 4 * (1 + LEVEL_TOLERANCE)
    assert best_level(fake, (4.0, 4.0)) == 1
    assert best_level(fake, (3.9, 3.9)) == 0
    assert best_level(fake, (0.5, 0.5)) == 0


def test_mpp_plan_on_a_real_pyramid_with_inexact_downsamples():
    from tests.helpers import real_slide

    with wsikit.open_slide(real_slide("small_HE_levels.tiff")) as s:
        if s.mpp is None:
            pytest.skip("this reader gives small_HE_levels.tiff no mpp")
        four = (4 * s.mpp[0], 4 * s.mpp[1])
        plan = make_plan(s, 16, mpp=four, pad=True)
        assert {spec.level for spec in plan} == {2}
        tiles = list(s.read_plan(plan))
        assert all(t.image.shape == (16, 16, 3) for t in tiles)


def test_pad_covers_every_target_pixel(slide):
    # 1024 x 1536 at 0.25 mpp is 341.33 x 512 pixels at 0.75 mpp.
    plain = make_plan(slide, 100, mpp=0.75)
    padded = make_plan(slide, 100, mpp=0.75, pad=True)
    assert max(s.coords[0] for s in plain) == 200
    assert max(s.coords[0] for s in padded) == 300
    assert len({s.coords for s in padded}) == 4 * 6
    for spec in plain:
        assert spec.read_location[0] + spec.read_size[0] <= 1024
    tiles = list(slide.read_plan(padded[-1:]))
    assert tiles[0].image.shape == (100, 100, 3)


def test_min_tissue_filters_the_grid_with_a_given_mask(slide):
    # Tissue on the left 608 columns of level 0 (38 mask pixels of 16).
    mask = np.zeros((64, 96), bool)
    mask[:, :38] = True
    plan = make_plan(slide, 256, level=0, tissue_mask=mask)
    assert {s.coords[1]: s.tissue for s in plan if s.coords[0] == 0} == {0: 1.0, 256: 1.0, 512: 0.375, 768: 0.0,
                                                                          1024: 0.0, 1280: 0.0}
    kept = make_plan(slide, 256, level=0, tissue_mask=mask, min_tissue=0.3)
    assert [s.coords for s in kept] == [(i, j) for i in (0, 256, 512, 768) for j in (0, 256, 512)]
    tiles = list(slide.generate_tiles(256, tissue_mask=mask, min_tissue=0.3))
    assert [(t.coords, t.tissue) for t in tiles] == [(s.coords, s.tissue) for s in kept]
    # A TissueMask works the same; fractions are those of the mask over each tile's area.
    tm = TissueMask.from_array(mask, slide.level_shapes[0])
    assert make_plan(slide, 256, tissue_mask=tm, min_tissue=0.3) == kept
    by_mpp = make_plan(slide, 128, mpp=0.5, tissue_mask=tm, min_tissue=1.0)
    assert by_mpp and all(s.coords0[1] + 256 <= 608 for s in by_mpp)


def test_min_tissue_selects_before_reading(slide, monkeypatch):
    handed = []
    original = type(slide).read_plan

    def recording(self, plan, **kwargs):
        handed.append(list(plan))
        return original(self, handed[-1], **kwargs)

    plan = make_plan(slide, 64, mpp=0.5, min_tissue=0.6)
    all_tiles = make_plan(slide, 64, mpp=0.5)
    assert 0 < len(plan) < len(all_tiles)
    assert all(s.tissue >= 0.6 for s in plan)
    monkeypatch.setattr(type(slide), "read_plan", recording)
    tiles = list(slide.generate_tiles(64, mpp=0.5, min_tissue=0.6, workers=1))
    # The reader is handed only the kept tiles: nothing else is ever read.
    assert handed == [plan]
    assert [t.coords for t in tiles] == [s.coords for s in plan]
    assert all(t.tissue >= 0.6 for t in tiles)


def test_tissue_mask_true_annotates_without_filtering(slide):
    plan = make_plan(slide, 256, tissue_mask=True)
    assert len(plan) == len(make_plan(slide, 256))
    assert all(0.0 <= s.tissue <= 1.0 for s in plan)
    assert any(s.tissue > 0.5 for s in plan) and any(s.tissue < 0.5 for s in plan)


def test_plans_are_plain_data(slide):
    plan = make_plan(slide, 128, mpp=0.5, min_tissue=0.2)
    assert all(isinstance(s, TileSpec) for s in plan)
    assert pickle.loads(pickle.dumps(plan)) == plan
    assert all(type(v) in (int, float) for s in plan for v in s.coords + s.coords0 + s.read_size + s.mpp)
    assert all(type(s.tissue) is float for s in plan)


def test_argument_errors(slide):
    with pytest.raises(ValueError, match="level"):
        make_plan(slide, 64, level=1, mpp=0.5)
    with pytest.raises(ValueError, match="min_tissue"):
        make_plan(slide, 64, min_tissue=1.5)
    with pytest.raises(TypeError, match="min_tissue"):
        make_plan(slide, 64, min_tissue="half")
    with pytest.raises(TypeError, match="tissue_mask"):
        make_plan(slide, 64, tissue_mask="yes")
    with pytest.raises(ValueError, match="shape"):
        make_plan(slide, 0, mpp=0.5)
    with pytest.raises(ValueError, match="not both"):
        slide.tile_plan(64, mpp=0.5, magnification=20)


def test_plan_memory_does_not_grow_with_the_grid(sample_svs):
    """A whole-grid plan holds no per-tile data; a tissue-filtered one holds arrays, and one
    whose arrays would not fit is a LimitError, not a MemoryError."""
    slide = wsikit.open_slide(sample_svs)
    previous = wsikit.set_max_bytes(100_000)
    try:
        plan = slide.tile_plan(8)  # 128 x 192 = 24,576 tiles
        assert len(pickle.dumps(plan)) < 2_000
        h, w = slide.shape
        assert len(plan) == (h // 8) * (w // 8)
        last = plan[-1]
        assert last.coords == ((h // 8 - 1) * 8, (w // 8 - 1) * 8) and last.read_size == (8, 8)
        assert plan[-1] == plan[len(plan) - 1] == list(plan)[-1]
        with pytest.raises(IndexError):
            plan[len(plan)]
        mask = np.ones((h, w), dtype=bool)
        with pytest.raises(wsikit.LimitError, match="tile plan"):
            slide.tile_plan(8, tissue_mask=mask)
    finally:
        wsikit.set_max_bytes(previous)


def test_plan_take_keeps_the_chosen_entries(sample_svs):
    slide = wsikit.open_slide(sample_svs)
    plan = slide.tile_plan(100, stride=60, tissue_mask=True, min_tissue=0.0)
    positions = [5, 0, len(plan) - 1, 7]
    part = plan.take(positions)
    assert list(part) == [plan[k] for k in positions]
    assert list(part.take([3, 0])) == [plan[7], plan[5]]
    with pytest.raises(IndexError):
        plan.take([len(plan)])


def test_plan_tilespecs_made_without_checks_equal_checked_ones(sample_svs):
    """A Plan makes its TileSpecs without TileSpec's checks: they must be what the checked
    constructor makes of the same values (ints, tuples, floats), in the same order as indexing."""
    slide = wsikit.open_slide(sample_svs)
    for plan in (slide.tile_plan(100, stride=70, pad=True, level=1),
                 slide.tile_plan(64, mpp=0.8, tissue_mask=True, min_tissue=0.2)):
        specs = list(plan)
        assert len(specs) == len(plan) > 0
        for k, spec in enumerate(specs):
            assert type(spec) is wsikit.TileSpec
            checked = wsikit.TileSpec(*spec)
            assert spec == checked and spec == plan[k]
            assert all(type(a) is type(b) for a, b in zip(spec, checked))
            assert all(type(v) is int for v in spec.coords + spec.read_location + spec.read_size + spec.coords0)