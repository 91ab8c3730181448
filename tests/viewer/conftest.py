"""Fixtures of the viewer tests: folders of slides and a viewer server on a free port.

``synthetic_slides``: always there, made here (an Aperio-style pyramid, a 3-channel uint16
OME-TIFF, a DICOM series with two focal planes). ``real_slides``: ../shared/testdata (the
tests that use it skip, saying why, when it is missing).
"""
from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import TESTDATA
from wsikit.viewer import ViewerServer, ViewerService, create_app


@pytest.fixture(scope="session")
def synthetic_slides(tmp_path_factory: pytest.TempPathFactory, sample_svs: str) -> Path:
    """A folder of slides: ``he/sample.svs`` (levels (1024, 1536), (256, 384), (64, 96)),
    ``fluo.ome.tif`` (3 channels uint16, 300 x 400) and ``zstack/`` (DICOM, 2 focal planes)."""
    import tifffile

    from wsikit.samples.dicom import write_dicom_series
    from wsikit.samples.svs import tissue_texture

    folder = tmp_path_factory.mktemp("viewer-slides")
    (folder / "he").mkdir()
    shutil.copy(sample_svs, folder / "he" / "sample.svs")
    rng = np.random.default_rng(7)
    channels = (rng.random((3, 300, 400)) * 4000).astype(np.uint16)
    channels[0, 100:200, 100:300] += 30000  # a bright block in the first channel
    tifffile.imwrite(folder / "fluo.ome.tif", channels, tile=(128, 128), photometric="minisblack",
                     metadata={"axes": "CYX", "Channel": {"Name": ["DAPI", "CD3", "CD8"]}})
    image = tissue_texture((512, 768), seed=3)
    write_dicom_series(folder / "zstack", [image, np.ascontiguousarray(image[::-1])], shape=(512, 768), tile=128,
                       factors=(4,))
    return folder


@pytest.fixture(scope="session")
def real_slides() -> Path:
    if not TESTDATA.is_dir():
        pytest.skip(f"real test slides not found in {TESTDATA} (a fresh clone has no ../shared)")
    return TESTDATA


class Served:
    """A running viewer: its URL, its service, and an HTTP client on it."""

    def __init__(self, server: ViewerServer, service: ViewerService) -> None:
        import httpx

        self.server = server
        self.service = service
        self.url = server.url
        self.client = httpx.Client(base_url=server.url, timeout=60)

    def slide_id(self, name_part: str) -> str:
        for entry in self.service.catalog.entries():
            if name_part in entry.name:
                return entry.id
        raise KeyError(name_part)


def start(root: Path | str, results: Path | str | None = None) -> Iterator[Served]:
    service = ViewerService(root, results=results)
    server = ViewerServer(create_app(service), port=0).start()
    served = Served(server, service)
    try:
        yield served
    finally:
        served.client.close()
        server.stop()
        service.close()


@pytest.fixture(scope="module")
def synthetic(synthetic_slides: Path) -> Iterator[Served]:
    yield from start(synthetic_slides)


@pytest.fixture(scope="module")
def real(real_slides: Path) -> Iterator[Served]:
    yield from start(real_slides)
