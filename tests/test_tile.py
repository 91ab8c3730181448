import numpy as np
import pytest

from wsikit import Tile


def test_tile_fields():
    image = np.zeros((4, 5, 3), np.uint8)
    tile = Tile(image, (10, 20), level=1, name="a", masks={"m": np.ones((4, 5), bool)}, labels={"y": 1})
    assert tile.coords == (10, 20) and tile.level == 1 and tile.name == "a"
    assert tile.masks["m"].shape == (4, 5) and tile.labels == {"y": 1}
    assert tile.shape == (4, 5, 3)
    assert "coords=(10, 20)" in repr(tile)


@pytest.mark.parametrize(
    "kwargs, error",
    [
        (dict(image=[[1]], coords=(0, 0)), TypeError),
        (dict(image=np.zeros(3), coords=(0, 0)), ValueError),
        (dict(image=np.zeros((2, 2)), coords=(0,)), TypeError),
        (dict(image=np.zeros((2, 2)), coords=(0, 1.5)), TypeError),
        (dict(image=np.zeros((2, 2)), coords=(0, 0), level=-1), TypeError),
        (dict(image=np.zeros((2, 2)), coords=(0, 0), name=3), TypeError),
        (dict(image=np.zeros((2, 2)), coords=(0, 0), masks={"m": np.zeros((3, 3))}), ValueError),
        (dict(image=np.zeros((2, 2)), coords=(0, 0), masks=[1]), TypeError),
        (dict(image=np.zeros((2, 2)), coords=(0, 0), labels=[1]), TypeError),
        (dict(image=np.zeros((2, 2)), coords=(0, 0), tissue=1.5), ValueError),
    ],
)
def test_tile_rejects_bad_arguments(kwargs, error):
    with pytest.raises(error):
        Tile(**kwargs)
