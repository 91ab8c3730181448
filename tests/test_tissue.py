"""Tissue masks: agreement with a plain Otsu-on-saturation reference on a real H&E slide,
white and all-tissue slides, multichannel images, and the exact area arithmetic."""
from __future__ import annotations

import numpy as np
import pytest
import tifffile
from scipy import ndimage

import wsikit
from tests.helpers import real_slide
from wsikit.pixels import resample_area
from wsikit.samples.svs import tissue_texture, write_sample_svs
from wsikit.tissue import TissueMask, otsu_threshold, tissue_mask


def plain_otsu(values: np.ndarray) -> float:
    """Reference Otsu: try every distinct value as the split (no histogram bins)."""
    v = np.sort(values.ravel().astype(np.float64))
    uniq, first = np.unique(v, return_index=True)
    n = v.size
    csum = np.concatenate([[0.0], np.cumsum(v)])
    best, best_t = -1.0, uniq[0]
    for t, k in zip(uniq[1:], first[1:]):  # class 0 = v[:k] (< t), class 1 = v[k:]
        w0, w1 = k / n, (n - k) / n
        m0, m1 = csum[k] / k, (csum[n] - csum[k]) / (n - k)
        between = w0 * w1 * (m0 - m1) ** 2
        if between > best:
            best, best_t = between, t
    return float(best_t)


def reference_mask(slide, shape) -> np.ndarray:
    rgb = slide.get_thumbnail(shape).astype(np.float64)
    hi, lo = rgb.max(axis=2), rgb.min(axis=2)
    sat = np.where(hi > 0, (hi - lo) / np.maximum(hi, 1e-9), 0.0)
    # Quantise like an 8-bit saturation channel so the exhaustive search stays quick.
    sat = np.round(sat * 255) / 255
    return sat >= plain_otsu(sat)


@pytest.fixture(scope="module")
def he_masks():
    with wsikit.open_slide(real_slide("small_HE.svs")) as slide:
        mask = tissue_mask(slide)
        # The reference works on a small thumbnail (about 12 microns per pixel), as such
        # plain methods do: finer, every gap between fibres becomes a hole in the reference
        # and the band around its outline would cover all of the tissue.
        reference = reference_mask(slide, (128, 128))
        scale = slide.level_shapes[0][0] / reference.shape[0]
        mpp = slide.mpp
        thumb = slide.get_thumbnail((max(mask.shape),) * 2)
    return mask, reference, scale, mpp, thumb


def test_he_mask_agrees_with_plain_otsu_outside_the_outline_band(he_masks):
    mask, reference, scale, mpp, _ = he_masks
    assert mask.mask.dtype == bool
    ours = resample_area(mask.mask.astype(np.float64), reference.shape) >= 0.5
    band_px = 25.0 / (mpp[0] * scale)
    distance = np.where(reference, ndimage.distance_transform_edt(reference), ndimage.distance_transform_edt(~reference))
    counted = distance > band_px
    # The comparison must count a good part of the tissue, or it would prove nothing.
    assert reference[counted].sum() > 0.4 * reference.sum()
    a, b = ours[counted], reference[counted]
    iou = (a & b).sum() / (a | b).sum()
    assert iou >= 0.9, iou
    assert 0.2 < mask.tissue_fraction < 0.6


def test_he_mask_drops_white_background(he_masks):
    mask, _, _, mpp, thumb = he_masks
    white = (thumb.min(axis=2) > 215) & (thumb.max(axis=2).astype(int) - thumb.min(axis=2) < 12)
    # Background well away from any tissue: white glass more than 25 microns from anything coloured.
    far = ndimage.distance_transform_edt(white) > 25.0 / (mpp[0] * mask.scale[0])
    background = white & far
    assert background.sum() > 0.3 * background.size
    assert mask.mask[background].mean() < 0.005
    # The slide's top-left corner is glass.
    assert not mask.mask[:100, :100].any()
    assert mask.downsample == pytest.approx((mask.scale[0] + mask.scale[1]) / 2)
    with wsikit.open_slide(real_slide("small_HE.svs")) as slide:
        assert mask.scale == (slide.level_shapes[0][0] / mask.shape[0], slide.level_shapes[0][1] / mask.shape[1])


@pytest.fixture(scope="module")
def plain_slides(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tissue")
    white = write_sample_svs(folder / "white.svs", image=np.full((512, 768, 3), 255, np.uint8), factors=(4,))
    glass = np.full((512, 768, 3), 242, np.uint8) + np.random.default_rng(1).integers(0, 6, (512, 768, 3), dtype=np.uint8)
    noisy = write_sample_svs(folder / "glass.svs", image=glass, factors=(4,))
    full = write_sample_svs(folder / "full.svs", image=tissue_texture((512, 768), seed=3, tissue_fraction=1.0), factors=(4,))
    uniform = write_sample_svs(folder / "uniform.svs", image=np.full((512, 768, 3), (200, 120, 170), np.uint8), factors=(4,))
    return {"white": white, "glass": noisy, "full": full, "uniform": uniform}


@pytest.mark.parametrize("name", ["white", "glass"])
def test_slide_without_tissue_gives_an_empty_mask(plain_slides, name):
    with wsikit.open_slide(plain_slides[name]) as slide:
        mask = tissue_mask(slide)
        assert not mask.mask.any()
        assert list(slide.generate_tiles(128, min_tissue=0.1)) == []


@pytest.mark.parametrize("name", ["full", "uniform"])
def test_slide_covered_with_tissue_gives_a_full_mask(plain_slides, name):
    with wsikit.open_slide(plain_slides[name]) as slide:
        mask = tissue_mask(slide)
        assert mask.mask.mean() > 0.99
        assert len(slide.tile_plan(128, min_tissue=0.9)) == len(slide.tile_plan(128))


def test_multichannel_mask_uses_the_channel_sum(tmp_path):
    yy, xx = np.mgrid[:512, :768]
    disc = (yy - 256) ** 2 + (xx - 384) ** 2 < 200**2
    rng = np.random.default_rng(0)
    image = rng.integers(0, 600, (3, 512, 768)).astype(np.uint16)
    # Sparse bright "nuclei" inside the disc, the way fluorescence shows tissue.
    nuclei = disc & (rng.random(disc.shape) < 0.15)
    for c in range(3):
        image[c][nuclei] += 30000
    path = tmp_path / "fluo.tif"
    tifffile.imwrite(path, image, photometric="minisblack", tile=(256, 256),
                     resolution=(1e4 / 0.5, 1e4 / 0.5), resolutionunit="CENTIMETER")
    with wsikit.open_slide(path) as slide:
        assert not slide.is_rgb
        mask = tissue_mask(slide)
    # Blurring merges the sparse nuclei into one region; its edge may move by the blur width.
    band = ndimage.distance_transform_edt(disc) + ndimage.distance_transform_edt(~disc) > 30
    a, b = mask.mask[band], disc[band]
    assert (a & b).sum() / (a | b).sum() > 0.95


def test_real_fluorescence_slide_finds_the_tissue_disc():
    with wsikit.open_slide(real_slide("small_vectra.qptiff")) as slide:
        mask = tissue_mask(slide)
    # A disc of tissue on a dark background: neither empty nor everything.
    assert 0.15 < mask.tissue_fraction < 0.85
    labels, _ = ndimage.label(mask.mask)
    assert np.bincount(labels.ravel())[1:].max() > 0.9 * mask.mask.sum()


def test_fractions_are_exact_areas():
    rng = np.random.default_rng(5)
    m = rng.random((7, 9)) > 0.5
    mask = TissueMask(m, (10.0, 10.0))
    # Brute force on a 10x finer grid: each level-0 pixel takes its mask pixel's value.
    fine = np.kron(m, np.ones((10, 10), dtype=bool))
    for i, j, h, w in [(0, 0, 70, 90), (3, 7, 25, 31), (15, 15, 10, 10), (60, 80, 20, 20), (-10, -10, 30, 30)]:
        i0, j0 = max(i, 0), max(j, 0)
        expected = fine[i0:i + h, j0:j + w].sum() / (h * w)
        assert mask.fraction((i, j), (h, w)) == pytest.approx(expected, abs=1e-12)
    assert mask.fraction((1000, 1000), (10, 10)) == 0.0


def test_from_array_and_argument_checks():
    mask = TissueMask.from_array(np.ones((10, 20)), (100, 200))
    assert mask.scale == (10.0, 10.0) and mask.downsample == 10.0
    assert mask.mask.dtype == bool and not mask.mask.flags.writeable
    with pytest.raises(ValueError, match="2-D"):
        TissueMask.from_array(np.ones(5), (10, 10))
    with pytest.raises(ValueError, match="scale"):
        TissueMask(np.ones((2, 2)), (0, 1))


def test_otsu_threshold_splits_two_populations_and_copes_with_constants():
    values = np.concatenate([np.full(100, 0.1), np.full(50, 0.7)])
    t = otsu_threshold(values)
    assert 0.1 < t <= 0.7
    assert otsu_threshold(np.full(10, 0.3)) == 0.3
    assert otsu_threshold(np.zeros(0)) == 0.0


def test_tissue_mask_checks_arguments(sample_svs):
    with wsikit.open_slide(sample_svs) as slide:
        with pytest.raises(ValueError, match="size"):
            tissue_mask(slide, size=0)
        with pytest.raises(ValueError, match="threshold"):
            tissue_mask(slide, threshold=2.0)
        fixed = tissue_mask(slide, size=256, threshold=0.0)
        assert fixed.threshold == 0.0 and fixed.mask.shape == (171, 256)
