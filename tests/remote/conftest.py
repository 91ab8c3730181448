"""Fixtures of the remote-reading tests: one folder of slides (synthetic ones always, the
real test slides when ../shared/testdata exists) served by nginx over HTTP and by moto
over the S3 API, each started once per session on a free loopback port."""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import TESTDATA
from tests.servers import require
from tests.servers.nginx import NginxServer, nginx_path
from tests.servers.s3 import S3Server, moto_available

#: real test slides served when present (their local reads are the reference)
REAL_SLIDES = ("small_HE.svs", "small_HE_levels.tiff", "small_dicom.dcm", "small_vectra.qptiff", "smalltif.tif")


def write_planar_tiff(path: Path) -> None:
    """A tiled 16-bit, 3-channel TIFF stored plane by plane (PlanarConfiguration 2), zlib
    compressed: the general (non-JPEG) decoding path, one range per sample plane."""
    import tifffile

    rng = np.random.default_rng(3)
    data = rng.integers(0, 65535, size=(3, 700, 900), dtype=np.uint16)
    tifffile.imwrite(path, data, photometric="minisblack", planarconfig="separate", tile=(256, 256),
                     compression="zlib", metadata=None)


@pytest.fixture(scope="session")
def remote_folder(tmp_path_factory: pytest.TempPathFactory, sample_svs: str) -> Path:
    """The folder both servers serve: sample.svs, planar.tif, a DICOM series (series/), and
    links to the real slides that exist."""
    from wsikit.samples.dicom import write_dicom_series

    folder = tmp_path_factory.mktemp("remote")
    os.symlink(sample_svs, folder / "sample.svs")
    write_planar_tiff(folder / "planar.tif")
    write_dicom_series(folder / "series")
    (folder / "notes.txt").write_text("not a slide, just a note")
    for name in REAL_SLIDES:
        if (TESTDATA / name).exists():
            os.symlink(TESTDATA / name, folder / name)
    return folder


@pytest.fixture(scope="session")
def nginx(remote_folder: Path) -> Iterator[NginxServer]:
    """nginx serving ``remote_folder`` (skips without nginx; fails under CI)."""
    require("nginx", nginx_path() is not None, "install the Debian package nginx-light")
    with NginxServer(remote_folder) as server:
        yield server


@pytest.fixture(scope="session")
def s3(remote_folder: Path) -> Iterator[S3Server]:
    """moto's S3 server holding every file of ``remote_folder`` under the same keys."""
    require("moto's S3 server", moto_available(), "pip install 'moto[server]' s3fs")
    with S3Server() as server:
        for root, _, files in os.walk(remote_folder, followlinks=True):
            for name in files:
                local = Path(root) / name
                server.put(local, local.relative_to(remote_folder).as_posix())
        yield server


def local_slide(remote_folder: Path, name: str) -> str:
    """The local path of a served slide, or skip when it is a real slide that is absent."""
    path = remote_folder / name
    if not path.exists():
        pytest.skip(f"real test slide {name} not found in {TESTDATA}")
    return str(path)
