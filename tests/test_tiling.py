"""The seed's tile grid, pitted against a brute-force model."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wsikit.checks import as_pair
from wsikit.tiling import clip_box, grid_shape, tile_locations


def brute_force_locations(image_shape, shape, stride, pad):
    """Every start the seed's rule allows, found by walking the axis one pixel at a time."""
    axes = []
    for n, size, step in zip(image_shape, shape, stride):
        starts = []
        position = 0
        while position < n:
            inside = position + size <= n
            if inside or (pad and n % step != 0):
                starts.append(position)
            position += step
        axes.append(starts)
    return [(i, j) for i in axes[0] for j in axes[1]]


@settings(max_examples=400, deadline=None)
@given(
    image=st.tuples(st.integers(1, 300), st.integers(1, 300)),
    shape=st.tuples(st.integers(1, 120), st.integers(1, 120)),
    stride=st.one_of(st.none(), st.tuples(st.integers(1, 120), st.integers(1, 120))),
    pad=st.booleans(),
)
def test_grid_matches_brute_force(image, shape, stride, pad):
    expected = brute_force_locations(image, shape, stride or shape, pad)
    assert list(tile_locations(image, shape, stride, pad)) == expected
    rows, cols = grid_shape(image, shape, stride, pad)
    assert rows * cols == len(expected)


@pytest.mark.parametrize(
    "image, shape, stride, pad, count",
    [
        ((2638, 3236), 500, None, False, 30),
        ((2638, 3236), 500, None, True, 42),
        ((1440, 1920), 500, None, False, 6),
        ((1440, 1920), 500, None, True, 12),
        ((480, 640), 500, None, False, 0),
        ((480, 640), 500, None, True, 2),
        ((480, 640), 160, None, False, 12),
        ((480, 640), 160, None, True, 12),
        ((5, 5), 3, 2, False, 4),
    ],
)
def test_known_counts(image, shape, stride, pad, count):
    assert len(list(tile_locations(image, shape, stride, pad))) == count


def test_row_major_order():
    assert list(tile_locations((4, 6), 2)) == [(0, 0), (0, 2), (0, 4), (2, 0), (2, 2), (2, 4)]


@pytest.mark.parametrize("bad", [0, -3, (4, 0), (2, -1)])
def test_non_positive_shape_rejected(bad):
    with pytest.raises(ValueError, match="shape"):
        grid_shape((10, 10), bad)


@pytest.mark.parametrize("bad", [2.5, "4", (1, 2, 3), None, True, (1.0, 2)])
def test_wrong_types_rejected(bad):
    with pytest.raises(TypeError, match="size"):
        as_pair(bad, "size")


def test_clip_box():
    assert clip_box((-2, -3), (5, 5), (10, 10)) == ((0, 0, 3, 2), (2, 3))
    assert clip_box((8, 8), (5, 5), (10, 10)) == ((8, 8, 10, 10), (0, 0))
    assert clip_box((10, 0), (5, 5), (10, 10)) is None
