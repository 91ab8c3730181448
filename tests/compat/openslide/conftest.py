"""Fixtures of the drop-in's tests: openslide-python itself (the reference) and the slides
both read: the real slides of ../shared/testdata and synthetic ones written here."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.helpers import real_slide


@pytest.fixture(scope="session")
def reference() -> Any:
    """openslide-python (the module the drop-in stands in for)."""
    return pytest.importorskip("openslide", reason="openslide-python is the reference these tests compare with")


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Synthetic slides OpenSlide also reads: an Aperio pyramid, a DICOM series file, a plain PNG."""
    from PIL import Image

    from wsikit.samples.dicom import write_dicom_series
    from wsikit.samples.svs import write_sample_svs

    folder = tmp_path_factory.mktemp("compat-slides")
    svs = write_sample_svs(folder / "pyramid.svs", shape=(1000, 1500), factors=(4, 16), tile=256)
    dicom = write_dicom_series(folder / "dicom", shape=(600, 900), tile=128, factors=(2, 4))
    png = folder / "boxes.png"
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 256, (250, 300, 3), dtype=np.uint8)).save(png)
    return {"svs": svs, "dicom": os.path.join(dicom.folder, "level0.dcm"), "png": str(png)}


#: slide fixtures compared with openslide-python: real files by name, synthetic by key
SLIDES = ["small_HE.svs", "small_HE_levels.tiff", "synthetic:svs", "synthetic:dicom"]


@pytest.fixture(params=SLIDES)
def slide_path(request: pytest.FixtureRequest, synthetic: dict[str, str]) -> str:
    name: str = request.param
    if name.startswith("synthetic:"):
        return synthetic[name.split(":", 1)[1]]
    return real_slide(name)


def exact_locations(downsample: float, size0: tuple[int, int], count: int = 6) -> list[tuple[int, int]]:
    """Level-0 locations where OpenSlide reads the level's own pixels (no interpolation): the
    level position x / downsample within 1/128 of a whole pixel (pixman's weight resolution),
    or negative (the region starts at the level's edge)."""
    w0, h0 = size0
    good = []
    for k in range(0, int(w0 / downsample) + 1, 7):
        x = int(round(k * downsample))
        if abs(x / downsample - round(x / downsample)) < 1 / 256:
            good.append(x)
    picks = [good[0], good[len(good) // 3], good[len(good) // 2], good[-1]]
    locations = [(picks[0], picks[0]), (-9, -17), (-int(3 * downsample) - 2, picks[1] if picks[1] < h0 else 0)]
    locations += [(p, q) for p, q in zip(picks[1:], reversed(picks[:-1])) if q < h0]
    return locations[:count]


def openslide_level_exact(location: tuple[int, int], downsample: float) -> bool:
    return all(c < 0 or abs(c / downsample - round(c / downsample)) < 1 / 256 for c in location)


__all__ = ["exact_locations", "openslide_level_exact", "Path"]
