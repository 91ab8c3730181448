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
    from wsikit.sample import write_sample_svs

    path = tmp_path_factory.mktemp("sample") / "sample.svs"
    return write_sample_svs(path, shape=(1024, 1536), factors=(4, 16), tile=256)
