"""Area resampling (tiling at a physical resolution) against plain references."""
from __future__ import annotations

import numpy as np
import pytest

from wsikit.pixels import resample_area


def _dense_weights(n_in: int, n_out: int) -> np.ndarray:
    """The full (n_out, n_in) matrix: how much of each input pixel each output pixel covers."""
    edges = np.linspace(0.0, n_in, n_out + 1)
    out = np.zeros((n_out, n_in))
    for k in range(n_out):
        for p in range(n_in):
            out[k, p] = max(0.0, min(edges[k + 1], p + 1) - max(edges[k], p))
    return out / out.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("seed", range(6))
def test_any_ratio_equals_the_dense_weight_matrices(seed):
    rng = np.random.default_rng(seed)
    H, W = (int(v) for v in rng.integers(1, 60, 2))
    h, w = (int(v) for v in rng.integers(1, 2 * max(H, W), 2))  # downsampling and up to 2x enlarging
    trailing = [(), (3,), (2, 3, 1)][seed % 3]
    image = rng.random((H, W) + trailing)
    wi, wj = _dense_weights(H, h), _dense_weights(W, w)
    expected = np.einsum("iI,jJ,IJ...->ij...", wi, wj, image)
    got = resample_area(image, (h, w))
    assert got.shape == (h, w) + trailing and got.flags.c_contiguous
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_integers_are_rounded_and_clipped_like_the_float_result():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 65536, (101, 77, 2), dtype=np.uint16)
    expected = np.clip(np.rint(resample_area(image.astype(np.float64), (40, 31))), 0, 65535).astype(np.uint16)
    np.testing.assert_array_equal(resample_area(image, (40, 31)), expected)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32])
def test_whole_pixel_blocks_are_exact_means_rounded_half_to_even(dtype):
    rng = np.random.default_rng(3)
    info = np.iinfo(dtype)
    for fi, fj, trailing in ((2, 2, (3,)), (3, 5, ()), (4, 1, (2, 1, 2)), (1, 7, (3,))):
        h, w = 13, 9
        image = rng.integers(info.min, info.max, (h * fi, w * fj) + trailing, dtype=dtype, endpoint=True)
        blocks = image.reshape((h, fi, w, fj) + trailing).astype(np.float64)
        expected = np.rint(blocks.sum(axis=(1, 3)) / (fi * fj)).astype(dtype)
        np.testing.assert_array_equal(resample_area(image, (h, w)), expected)
    ties = np.array([[1, 2], [1, 2]], dtype)  # mean 1.5 -> 2
    assert resample_area(ties, (1, 1))[0, 0] == 2
    ties = np.array([[2, 3], [2, 3]], dtype)  # mean 2.5 -> 2
    assert resample_area(ties, (1, 1))[0, 0] == 2


def test_a_fractional_box_equals_the_dense_weights_over_it():
    from wsikit.pixels import resample_box

    rng = np.random.default_rng(5)
    image = rng.random((40, 50, 3))
    box = (2.5, 3.25, 37.75, 49.5)
    h, w = 13, 17

    def weights(start, stop, n_in, n_out):
        edges = np.linspace(start, stop, n_out + 1)
        out = np.zeros((n_out, n_in))
        for k in range(n_out):
            for p in range(n_in):
                out[k, p] = max(0.0, min(edges[k + 1], p + 1) - max(edges[k], p))
        return out / out.sum(axis=1, keepdims=True)

    expected = np.einsum("iI,jJ,IJc->ijc", weights(box[0], box[2], 40, h), weights(box[1], box[3], 50, w), image)
    np.testing.assert_allclose(resample_box(image, box, (h, w)), expected, rtol=0, atol=1e-12)
    ints = (image * 255).astype(np.uint8)
    np.testing.assert_array_equal(resample_box(ints, (4, 6, 36, 46), (16, 20)), resample_area(ints[4:36, 6:46], (16, 20)))
    with pytest.raises(ValueError, match="not inside"):
        resample_box(image, (0, 0, 41, 10), (4, 4))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.float32])
def test_large_pictures_average_as_tiles_do(monkeypatch, dtype):
    """Sparse products (tile-sized pictures) and the band-at-a-time path (larger ones) agree."""
    import wsikit.pixels as pixels

    rng = np.random.default_rng(11)
    for _ in range(8):
        H, W, h, w = (int(v) for v in rng.integers(3, 120, 4))
        image = (rng.random((H, W, 3)) * 200).astype(dtype)
        sparse = resample_area(image, (h, w))
        box = (0.5, 1.25, H - 0.75, W - 0.5)
        sparse_box = pixels.resample_box(image, box, (h, w))
        monkeypatch.setattr(pixels, "SPARSE_VALUES", 0)
        np.testing.assert_array_equal(resample_area(image, (h, w)), sparse)
        np.testing.assert_array_equal(pixels.resample_box(image, box, (h, w)), sparse_box)
        monkeypatch.setattr(pixels, "SPARSE_VALUES", 1 << 22)
