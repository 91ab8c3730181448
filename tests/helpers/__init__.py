"""Helpers the tests share: where the real sample slides are, and reference results to
compare readers with.

Imported as ``from tests.helpers import ...`` (pytest puts the repository root on
``sys.path``: ``pythonpath`` in pyproject.toml). Fixtures stay in ``tests/conftest.py``.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

#: The real slides (scanner files) the tests read when they are there: $WSIKIT_TESTDATA, else
#: ../shared/testdata beside the repository (a fresh clone has none; those tests skip).
TESTDATA = Path(os.environ.get("WSIKIT_TESTDATA", Path(__file__).resolve().parents[2].parent / "shared" / "testdata"))


def real_slide(name: str) -> str:
    """Path of a real slide from ``TESTDATA``, or skip the test saying why."""
    path = TESTDATA / name
    if not path.exists():
        pytest.skip(f"real test slide {name} not found in {TESTDATA} (a fresh clone has no ../shared)")
    return str(path)


def tree_bytes(folder: str | os.PathLike[str]) -> dict[str, bytes]:
    """Every file under ``folder``: relative path -> contents."""
    out = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, folder)] = f.read()
    return out


def padded_box(image: np.ndarray, i: int, j: int, h: int, w: int) -> np.ndarray:
    """``image[i:i + h, j:j + w]`` as a reader must give it: (h, w, ...) with zeros where
    the box lies outside the image (on any side)."""
    out = np.zeros((h, w) + image.shape[2:], image.dtype)
    H, W = image.shape[:2]
    i0, j0, i1, j1 = max(i, 0), max(j, 0), min(i + h, H), min(j + w, W)
    if i0 < i1 and j0 < j1:
        out[i0 - i : i1 - i, j0 - j : j1 - j] = image[i0:i1, j0:j1]
    return out


__all__ = ["TESTDATA", "real_slide", "tree_bytes", "padded_box"]
