"""Tiling options are checked when they are made."""
from __future__ import annotations

import pytest

from wsikit.sinks import TileOptions


def test_options_are_checked():
    with pytest.raises(ValueError, match="format"):
        TileOptions(format="tiff")
    with pytest.raises(ValueError, match="at most one"):
        TileOptions(level=1, mpp=0.5)
    with pytest.raises(ValueError, match="shape"):
        TileOptions(shape=0)
    assert TileOptions(shape=64).shape == (64, 64)
