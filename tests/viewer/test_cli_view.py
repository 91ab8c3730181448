"""``wsikit view`` as a person runs it: a process that prints its address and serves until stopped."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from wsikit.cli import main


def run_view(args: list[str]) -> subprocess.Popen[str]:
    code = "import sys; from wsikit.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.Popen([sys.executable, "-c", code, "view", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def served_url(process: subprocess.Popen[str], timeout: float = 60) -> str:
    """The address the process prints ("serving on http://...")."""
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        if line.startswith("serving on "):
            return line.split()[2]
    process.kill()
    raise AssertionError(f"no address printed; stderr: {process.stderr.read() if process.stderr else ''}")


def get_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=60) as response:
        return json.loads(response.read())


@pytest.mark.parametrize("which", ["folder", "slide"])
def test_wsikit_view_serves_until_interrupted(synthetic_slides: Path, which: str) -> None:
    path = synthetic_slides if which == "folder" else synthetic_slides / "he" / "sample.svs"
    process = run_view([str(path), "--no-browser", "--port", "0"])
    try:
        url = served_url(process)
        assert url.startswith("http://127.0.0.1:")
        slides = get_json(url + "/api/slides")
        assert isinstance(slides, list)
        assert len(slides) == (3 if which == "folder" else 1)
        with urllib.request.urlopen(url + slides[0]["dzi"], timeout=60) as response:
            assert b"<Image" in response.read()
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(30)
    assert code == 0


def test_wsikit_view_with_results(tmp_path: Path, synthetic_slides: Path) -> None:
    from wsikit.sinks import TileOptions, tile_slide

    out = tmp_path / "out"
    tile_slide(str(synthetic_slides / "he" / "sample.svs"), out, TileOptions(shape=512))
    process = run_view([str(synthetic_slides), "--no-browser", "--port", "0", "--results", str(out)])
    try:
        url = served_url(process)
        slides = get_json(url + "/api/slides")
        assert isinstance(slides, list)
        he = next(s for s in slides if s["name"].endswith("sample.svs"))
        results = get_json(f"{url}/api/slides/{he['id']}/results")
        assert isinstance(results, dict) and len(results["rows"]) == 2 * 3
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(30)


def test_wsikit_view_refuses_what_it_cannot_serve(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["view", str(tmp_path / "missing"), "--no-browser"]) == 1
    assert "missing" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["view", str(tmp_path / "empty"), "--no-browser"]) == 1
    assert "no slides" in capsys.readouterr().err
    assert main(["view", str(tmp_path), "--no-browser", "--results", str(tmp_path / "nope")]) == 2
    assert "--results" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["view", str(tmp_path), "--port", "-1"])


def test_wsikit_view_reports_a_port_in_use(synthetic_slides: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from wsikit.viewer.server import bind

    taken = bind("127.0.0.1", 0)
    try:
        port = taken.getsockname()[1]
        assert main(["view", str(synthetic_slides), "--no-browser", "--port", str(port)]) == 1
        assert f"cannot serve on 127.0.0.1:{port}" in capsys.readouterr().err
    finally:
        taken.close()


def test_wsikit_view_help_names_the_options() -> None:
    result = subprocess.run([sys.executable, "-m", "wsikit.cli", "view", "--help"], capture_output=True, text=True,
                            env=dict(os.environ), timeout=60)
    assert result.returncode == 0
    for option in ("--port", "--host", "--no-browser", "--results"):
        assert option in result.stdout
