"""What the viewer refuses, each with a request that tries it, and failures it survives.

Requests are sent as raw HTTP over a socket, so that the path reaches the server exactly
as written (HTTP clients normalise ``..`` and encoded characters away).
"""
from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest

from tests.viewer.conftest import Served, start

SECRET = "wsikit-secret-marker-7f3a"


def raw_get(url: str, target: str) -> tuple[int, bytes]:
    """(status, body) of ``GET target`` sent verbatim to the server at ``url``."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode("latin-1"))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory, sample_svs: str) -> Served:
    """A served folder with a slide inside, and beside it (outside) a secret file and a slide
    that symbolic links inside the folder point to."""
    base = tmp_path_factory.mktemp("guarded")
    served_folder = base / "served"
    served_folder.mkdir()
    shutil.copy(sample_svs, served_folder / "inside.svs")
    outside = base / "outside"
    outside.mkdir()
    shutil.copy(sample_svs, outside / "outside.svs")
    (base / "secret.txt").write_text(SECRET)
    (outside / "secret.txt").write_text(SECRET)
    os.symlink(outside / "outside.svs", served_folder / "link-out.svs")
    os.symlink(outside, served_folder / "linked-folder")
    yield from start(served_folder)


def test_only_slides_under_path_are_listed(guarded: Served) -> None:
    names = [s["name"] for s in guarded.client.get("/api/slides").json()]
    assert names == ["inside.svs"]  # the links out of the folder are not served


@pytest.mark.parametrize("target", [
    "/dzi/../../secret.txt",
    "/dzi/..%2f..%2fsecret.txt",
    "/dzi/%2e%2e/%2e%2e/secret.txt",
    "/static/../../../secret.txt",
    "/static/..%2f..%2f..%2fsecret.txt",
    "/static/%2e%2e/%2e%2e/%2e%2e/%2e%2e/secret.txt",
    "/static/..%5c..%5csecret.txt",
    "/static//etc/passwd",
    "//etc/passwd",
    "/slides/..%2F..%2Fsecret.txt",
    "/api/slides/..%2Fsecret.txt",
    "/api/slides/%2Fetc%2Fpasswd",
    "/dzi/%2Fetc%2Fpasswd.dzi",
    "/dzi/..%2Foutside%2Foutside.svs.dzi",
    "/api/slides/inside.svs",
    "/api/slides/link-out.svs",
    "/dzi/link-out.dzi",
    "/dzi/outside.dzi",
    "/api/slides/linked-folder%2Foutside.svs/thumbnail.jpg",
    "/etc/passwd",
    "/secret.txt",
])
def test_paths_that_try_to_leave_are_refused_with_404(guarded: Served, target: str) -> None:
    status, body = raw_get(guarded.url, target)
    assert status == 404, (target, body[:200])
    assert SECRET.encode() not in body and b"root:" not in body and b"Traceback" not in body


def test_symlinked_slide_ids_are_unknown(guarded: Served) -> None:
    from wsikit.viewer.catalog import slide_id_of

    for name in ("link-out.svs", "linked-folder/outside.svs"):
        status, _ = raw_get(guarded.url, f"/dzi/{slide_id_of(name)}.dzi")
        assert status == 404


@pytest.mark.parametrize("tile, status", [
    ("99/0_0.jpeg", 404),          # level out of range
    ("11/999_0.jpeg", 404),        # column out of range
    ("11/0_999.jpeg", 404),        # row out of range
    ("11/0_0.gif", 400),           # bad format
    ("11/0_0.JPEG", 400),
    ("11/0_0", 400),
    ("11/a_b.jpeg", 400),
    ("11/-1_0.jpeg", 400),
    ("-1/0_0.jpeg", 400),
    ("1e3/0_0.jpeg", 400),
    ("11/99999999999_0.jpeg", 400),
    ("11/0_0.jpeg.png", 400),
    ("11/0__0.jpeg", 400),
    ("11/0_0_0.jpeg", 400),
    ("99999999999999999999/0_0.png", 400),
])
def test_malformed_tile_requests_get_4xx_without_traceback(guarded: Served, tile: str, status: int) -> None:
    slide_id = guarded.slide_id("inside")
    got, body = raw_get(guarded.url, f"/dzi/{slide_id}_files/{tile}")
    assert got == status, (tile, body)
    assert b"Traceback" not in body and b"File \"" not in body and len(body) < 300


def test_extra_path_segments_and_unknown_slides_are_404(guarded: Served) -> None:
    slide_id = guarded.slide_id("inside")
    for target in (f"/dzi/{slide_id}_files/11/0/0_0.jpeg", f"/dzi/{slide_id}_files/0_0.jpeg",
                   "/dzi/nope_files/0/0_0.jpeg", "/dzi/nope.dzi", "/slides/nope", "/api/slides/nope",
                   "/api/slides/nope/plan"):
        status, body = raw_get(guarded.url, target)
        assert status == 404, target
        assert b"Traceback" not in body


def test_binds_loopback_by_default(synthetic_slides: Path) -> None:
    from wsikit.viewer import ViewerServer, ViewerService, create_app

    server = ViewerServer(create_app(ViewerService(synthetic_slides)), port=0)
    try:
        assert server.socket.getsockname()[0] == "127.0.0.1"
        assert server.url.startswith("http://127.0.0.1:")
    finally:
        server.socket.close()


# -- failures the server survives -------------------------------------------------------------
def test_tile_that_fails_to_decode_is_500_and_the_server_keeps_serving(tmp_path: Path, sample_svs: str) -> None:
    import tifffile

    folder = tmp_path / "slides"
    folder.mkdir()
    shutil.copy(sample_svs, folder / "good.svs")
    shutil.copy(sample_svs, folder / "broken.svs")
    for served in start(folder):
        broken, good = served.slide_id("broken"), served.slide_id("good")
        assert served.client.get(f"/dzi/{broken}_files/11/0_0.jpeg").status_code == 200  # opened, read once
        # Now the level-0 tile data on disk turns to garbage under the open slide.
        with tifffile.TiffFile(folder / "broken.svs") as tif:
            page = tif.pages[0]
            spans = list(zip(page.dataoffsets, page.databytecounts))
        with open(folder / "broken.svs", "r+b") as f:
            for offset, count in spans[1:]:
                f.seek(offset)
                f.write(b"\x00\x13" * (count // 2))
        response = served.client.get(f"/dzi/{broken}_files/11/3_2.jpeg")
        assert response.status_code == 500
        assert "Traceback" not in response.text and len(response.text) < 600
        # The same slide's other tiles, other slides and the API still answer.
        assert served.client.get(f"/dzi/{broken}_files/11/0_0.jpeg").status_code == 200  # cached before
        assert served.client.get(f"/dzi/{broken}_files/7/0_0.jpeg").status_code == 200  # another level
        assert served.client.get(f"/dzi/{good}_files/11/3_2.jpeg").status_code == 200
        assert served.client.get("/api/slides").status_code == 200


def test_backend_whose_read_raises_is_500_and_the_server_keeps_serving(synthetic: Served) -> None:
    entry = synthetic.service.catalog.get(synthetic.slide_id("zstack"))
    assert entry is not None
    slide = entry.slide()

    def failing_read(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the decoder fell over")

    original = slide.extract_region
    slide.extract_region = failing_read  # type: ignore[method-assign]
    try:
        response = synthetic.client.get(f"/dzi/{entry.id}_files/10/2_1.png")
        assert response.status_code == 500 and "the decoder fell over" in response.text
        assert "Traceback" not in response.text
        assert synthetic.client.get(f"/dzi/{synthetic.slide_id('sample')}_files/11/1_1.jpeg").status_code == 200
    finally:
        slide.extract_region = original  # type: ignore[method-assign]
    assert synthetic.client.get(f"/dzi/{entry.id}_files/10/2_1.png").status_code == 200


def test_slide_that_cannot_be_opened_is_listed_with_its_error(tmp_path: Path, sample_svs: str) -> None:
    folder = tmp_path / "slides"
    folder.mkdir()
    shutil.copy(sample_svs, folder / "good.svs")
    (folder / "broken.svs").write_bytes(b"II*\x00" + b"\x00" * 100)
    for served in start(folder):
        slides = {s["name"]: s for s in served.client.get("/api/slides").json()}
        assert slides["good.svs"]["error"] is None
        assert "broken.svs" in slides["broken.svs"]["error"] and slides["broken.svs"]["dzi"] is None
        broken = served.slide_id("broken")
        for target in (f"/dzi/{broken}.dzi", f"/dzi/{broken}_files/0/0_0.jpeg", f"/api/slides/{broken}"):
            response = served.client.get(target)
            assert response.status_code == 500 and "cannot be opened" in response.text
            assert "Traceback" not in response.text
        assert served.client.get(f"/dzi/{served.slide_id('good')}.dzi").status_code == 200


def test_requests_for_other_host_names_are_refused(guarded: Served) -> None:
    """A page elsewhere cannot reach the viewer through a name it controls (DNS rebinding)."""
    host, port = guarded.url.removeprefix("http://").rsplit(":", 1)
    for name, status in ((f"evil.example:{port}", 400), (f"localhost:{port}", 200), (f"127.0.0.1:{port}", 200)):
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            sock.sendall(f"GET /api/slides HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        assert int(data.split(b" ", 2)[1]) == status, name
        assert (b"inside.svs" in data) == (status == 200)


def test_a_manifest_cannot_point_outside_its_folder(tmp_path: Path, sample_svs: str) -> None:
    from wsikit.sinks import TileOptions, tile_slide

    folder = tmp_path / "slides"
    folder.mkdir()
    shutil.copy(sample_svs, folder / "a.svs")
    (tmp_path / "secret.png").write_text(SECRET)
    out = tmp_path / "out"
    result = tile_slide(str(folder / "a.svs"), out, TileOptions(shape=512, format="png"))
    manifest = Path(result.folder) / "tiles.csv"
    lines = manifest.read_text().splitlines()
    lines[1] = ",".join(lines[1].split(",")[:-1] + ["../../secret.png"])
    lines[2] = ",".join(lines[2].split(",")[:-1] + [str(tmp_path / "secret.png")])
    lines[3] = ",".join(lines[3].split(",")[:-1] + ["tiles.csv"])
    manifest.write_text("\n".join(lines) + "\n")
    for served in start(folder, results=out):
        slide_id = served.slide_id("a")
        for k in (0, 1, 2):
            response = served.client.get(f"/api/slides/{slide_id}/results/{k}")
            assert response.status_code == 404 and SECRET not in response.text
        assert served.client.get(f"/api/slides/{slide_id}/results/3").status_code == 200
