"""``wsikit view URL``: slides read over HTTP (nginx on loopback) are served like local ones."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.servers import require
from tests.servers.nginx import NginxServer, nginx_path
from tests.viewer.conftest import Served, start
from tests.viewer.test_api import decode
from wsikit import open_slide


@pytest.fixture(scope="module")
def nginx_slides(synthetic_slides: Path) -> Iterator[NginxServer]:
    require("nginx", nginx_path() is not None, "install the Debian package nginx-light")
    with NginxServer(synthetic_slides) as server:
        yield server


def test_a_slide_by_url(nginx_slides: NginxServer, synthetic_slides: Path) -> None:
    served: Served
    for served in start(nginx_slides.url + "he/sample.svs"):
        slides = served.client.get("/api/slides").json()
        assert [s["name"] for s in slides] == ["sample.svs"] and slides[0]["error"] is None
        slide_id = slides[0]["id"]
        with open_slide(str(synthetic_slides / "he" / "sample.svs")) as local:
            for level, row, column, pyramid in ((11, 1, 2, 0), (9, 0, 0, 1)):
                got = decode(served.client.get(f"/dzi/{slide_id}_files/{level}/{column}_{row}.png").content)
                np.testing.assert_array_equal(got, local.extract_region((row * 256, column * 256), 256, level=pyramid))


def test_a_url_that_is_no_slide_is_listed_with_its_error(nginx_slides: NginxServer, tmp_path: Path) -> None:
    for served in start(nginx_slides.url + "fluo.ome.tif.missing"):
        slides = served.client.get("/api/slides").json()
        assert [s["name"] for s in slides] == ["fluo.ome.tif.missing"]
        assert slides[0]["error"] and slides[0]["dzi"] is None
        response = served.client.get(f"/dzi/{slides[0]['id']}.dzi")
        assert response.status_code == 500 and "Traceback" not in response.text
        assert served.client.get("/").status_code == 200
