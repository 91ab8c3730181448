"""The image the reader tests read through tile grids."""
from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    rng = np.random.default_rng(7)
    return rng.integers(0, 255, size=(203, 317, 3), dtype=np.uint8)
