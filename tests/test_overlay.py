"""overlay_picture: the thumbnail untouched without overlays, unknown overlays refused."""
from __future__ import annotations

import numpy as np
import pytest

import wsikit
from wsikit.overlay import overlay_picture


def test_no_overlay_is_the_thumbnail_and_unknown_overlays_are_refused(sample_svs):
    with wsikit.open_slide(sample_svs) as slide:
        plain = overlay_picture(slide, 300)
        np.testing.assert_array_equal(plain, slide.get_thumbnail((300, 300)))
        with pytest.raises(ValueError, match="overlays"):
            overlay_picture(slide, 300, ("grid",))
    assert plain.shape == (200, 300, 3) and plain.dtype == np.uint8
