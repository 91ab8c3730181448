"""One Orthanc for the DICOMweb tests, fed with synthetic series (and small_dicom.dcm when present).

Each series is also kept as a local folder, read by the local DICOM backend as the reference.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import TESTDATA
from tests.servers.orthanc import OrthancServer, require_orthanc
from wsikit.samples.dicom import write_dicom_series

#: name -> keyword arguments of write_dicom_series (each its own seed: its own UIDs)
SERIES = {
    "sparse-jpeg": dict(shape=(1100, 1536), factors=(4,), sparse=True, seed=31),
    "full-jpeg2000": dict(shape=(512, 700), factors=(2,), transfer_syntax="jpeg2000", seed=32),
    "full-jpegls": dict(shape=(512, 700), factors=(2,), transfer_syntax="jpegls", seed=33, thumbnail=False),
    "full-rle": dict(shape=(512, 600), factors=(2,), transfer_syntax="rle", seed=34, overview=False),
    "full-explicit": dict(shape=(400, 600), factors=(2,), transfer_syntax="explicit", seed=35, label=False),
    "concatenated-fragments": dict(shape=(768, 1024), factors=(2, 4), concatenate=2, fragments_per_frame=2,
                                   seed=36),
    "gray16": dict(factors=(2,), transfer_syntax="explicit", seed=37, tile=128),
    "planes": dict(factors=(2,), seed=38, tile=128),
    # 512 small frames: more than opening fetches, for reads that must go to the server
    "many-frames": dict(shape=(1024, 2048), tile=64, factors=(4,), seed=39, thumbnail=False, overview=False),
}


@dataclass
class Served:
    """A series on the server and the same files in a local folder."""

    url: str
    folder: str
    study: str
    series: str
    files: list[str] = field(default_factory=list)


def _image(name: str, seed: int) -> np.ndarray | list[np.ndarray] | None:
    rng = np.random.default_rng(seed)
    if name == "gray16":
        ramp = np.add.outer(np.arange(300) * 150, np.arange(420) * 90).astype(np.uint16)
        return ramp + rng.integers(0, 200, ramp.shape, dtype=np.uint16)
    if name == "planes":
        from wsikit.samples.svs import tissue_texture

        base = tissue_texture((300, 400), seed)
        return [base, np.ascontiguousarray(base[:, ::-1]), np.ascontiguousarray(base[::-1])]
    return None


def write_series(folder: Path, name: str, **overrides: object) -> list[str]:
    """The files of series ``name`` (``overrides``: other write_dicom_series arguments, e.g. another seed)."""
    options = dict(SERIES[name], **overrides)
    sample = write_dicom_series(folder, _image(name, int(options["seed"])), **options)  # type: ignore[arg-type]
    return sample.files


@pytest.fixture(scope="session")
def orthanc() -> Iterator[OrthancServer]:
    require_orthanc()
    with OrthancServer() as server:
        yield server


@pytest.fixture(scope="session")
def served(orthanc: OrthancServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Served]:
    """name -> the series on the Orthanc server and its local folder."""
    root = tmp_path_factory.mktemp("dicomweb-series")
    out: dict[str, Served] = {}
    for name in SERIES:
        folder = root / name
        files = write_series(folder, name)
        [(study, series)] = orthanc.upload(files)
        out[name] = Served(orthanc.series_url(study, series), str(folder), study, series, files)
    small = TESTDATA / "small_dicom.dcm"
    if small.exists():
        [(study, series)] = orthanc.upload([small])
        out["small_dicom"] = Served(orthanc.series_url(study, series), str(small), study, series, [str(small)])
    return out


def served_or_skip(served: dict[str, Served], name: str) -> Served:
    if name not in served:
        pytest.skip(f"real test slide small_dicom.dcm not found in {TESTDATA} (a fresh clone has no ../shared)")
    return served[name]


def ci() -> bool:
    return bool(os.environ.get("CI"))
