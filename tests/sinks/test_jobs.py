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


def test_codec_and_passthrough_options():
    with pytest.raises(ValueError, match="codec must be one of lz4, zstd"):
        TileOptions(codec="gzip")
    with pytest.raises(TypeError, match="passthrough"):
        TileOptions(passthrough="yes")
    zarr = TileOptions(codec="zstd").as_json()
    assert zarr["codec"] == "zstd" and "passthrough" not in zarr and "jpeg_quality" not in zarr
    jpeg = TileOptions(format="jpeg", passthrough=False).as_json()
    assert jpeg["passthrough"] is False and jpeg["jpeg_quality"] == 90 and "codec" not in jpeg
    assert "codec" not in TileOptions(format="png").as_json()
    assert TileOptions() == TileOptions(codec="lz4", passthrough=True) != TileOptions(codec="zstd")
