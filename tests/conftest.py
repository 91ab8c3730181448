"""Shared fixtures: the real slides of ../shared/testdata and synthetic slides made here."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

TESTDATA = Path(os.environ.get("WSIKIT_TESTDATA", Path(__file__).resolve().parents[1].parent / "shared" / "testdata"))


def real_slide(name: str) -> str:
    """Path of a real slide from ../shared/testdata, or skip the test saying why."""
    path = TESTDATA / name
    if not path.exists():
        pytest.skip(f"real test slide {name} not found in {TESTDATA} (a fresh clone has no ../shared)")
    return str(path)


@pytest.fixture(scope="session")
def sample_svs(tmp_path_factory) -> str:
    """A small synthetic Aperio-style pyramid: levels (1024, 1536), (256, 384), (64, 96)."""
    from wsikit.samples.svs import write_sample_svs

    path = tmp_path_factory.mktemp("sample") / "sample.svs"
    return write_sample_svs(path, shape=(1024, 1536), factors=(4, 16), tile=256)


@pytest.fixture(scope="session")
def backend_samples(tmp_path_factory):
    """``get(backend)``: a small sample file that ``backend`` reads (skips when unavailable)."""
    import sys

    root = str(Path(__file__).resolve().parents[1])
    if root not in sys.path:
        sys.path.insert(0, root)
    from wsikit.samples.backends import backend_unavailable, write_sample

    folder = tmp_path_factory.mktemp("backend-samples")
    made = {}

    def get(backend):
        reason = backend_unavailable(backend)
        if reason:
            pytest.skip(reason)
        if backend not in made:
            made[backend] = write_sample(backend, folder / backend)
        return made[backend]

    return get


def tree_bytes(folder) -> dict[str, bytes]:
    """Every file under ``folder``: relative path -> contents."""
    out = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, folder)] = f.read()
    return out


def padded_box(image, i: int, j: int, h: int, w: int):
    """``image[i:i + h, j:j + w]`` as a reader must give it: (h, w, ...) with zeros where
    the box lies outside the image (on any side)."""
    import numpy as np

    out = np.zeros((h, w) + image.shape[2:], image.dtype)
    H, W = image.shape[:2]
    i0, j0, i1, j1 = max(i, 0), max(j, 0), min(i + h, H), min(j + w, W)
    if i0 < i1 and j0 < j1:
        out[i0 - i : i1 - i, j0 - j : j1 - j] = image[i0:i1, j0:j1]
    return out
