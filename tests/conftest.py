"""Shared fixtures: the real slides of ../shared/testdata and synthetic slides made here.

Helper functions live in :mod:`tests.helpers`; their names are also re-exported here for
tests that still import them from this conftest module.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import TESTDATA, padded_box, real_slide, tree_bytes
from wsikit.samples.backends import Sample


@pytest.fixture(scope="session")
def sample_svs(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A small synthetic Aperio-style pyramid: levels (1024, 1536), (256, 384), (64, 96)."""
    from wsikit.samples.svs import write_sample_svs

    path = tmp_path_factory.mktemp("sample") / "sample.svs"
    return write_sample_svs(path, shape=(1024, 1536), factors=(4, 16), tile=256)


@pytest.fixture(scope="session")
def backend_samples(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Sample]:
    """``get(backend)``: a small sample file that ``backend`` reads (skips when unavailable)."""
    from wsikit.samples.backends import backend_unavailable, write_sample

    folder = tmp_path_factory.mktemp("backend-samples")
    made: dict[str, Sample] = {}

    def get(backend: str) -> Sample:
        reason = backend_unavailable(backend)
        if reason:
            pytest.skip(reason)
        if backend not in made:
            made[backend] = write_sample(backend, folder / backend)
        return made[backend]

    return get


__all__ = ["TESTDATA", "real_slide", "tree_bytes", "padded_box", "sample_svs", "backend_samples"]


@pytest.fixture()
def slides(tmp_path: Path, sample_svs: str) -> Path:
    """A folder of slides to search and tile: two copies of the sample, a broken TIFF, a note."""
    import shutil

    folder = tmp_path / "slides"
    folder.mkdir()
    shutil.copy(sample_svs, folder / "a.svs")
    shutil.copy(sample_svs, folder / "b.svs")
    (folder / "broken.svs").write_bytes(b"II*\x00" + b"\x00" * 100)
    (folder / "notes.txt").write_text("not a slide")
    return folder
