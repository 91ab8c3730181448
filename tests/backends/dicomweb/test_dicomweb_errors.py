"""DICOMweb faults and credentials: clear errors naming the URL and status, nothing decoded from a
bad answer, retries that recover, and headers that are sent but never shown."""
from __future__ import annotations

import logging
import pickle
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.encaps import encapsulate, generate_frames

import wsikit
from tests.servers import free_port
from tests.servers.orthanc import OrthancServer, require_orthanc
from wsikit.backends.dicom import DICOMBackend
from wsikit.backends.dicomweb import DICOMwebError
from wsikit.errors import CorruptSlideError, SlideError
from wsikit.remote.source import RemoteReadError

from .conftest import Served, write_series
from .fault_proxy import FaultProxy

FAST = {"wsikit_retries": 2, "wsikit_timeout": 20}
PASSWORD = "s3cret-Pa55word"


@pytest.fixture
def proxy(orthanc: OrthancServer) -> Iterator[FaultProxy]:
    with FaultProxy(orthanc.url, stall_seconds=3) as started:
        yield started


def _via(proxy: FaultProxy, item: Served) -> str:
    return item.url.replace(item.url.split("/dicom-web/")[0], proxy.url)


# -- a series that is not there, a server that is not there ---------------------------------
def test_missing_series_and_study(served: dict[str, Served], orthanc: OrthancServer) -> None:
    item = served["full-rle"]
    for url in (orthanc.series_url(item.study, "1.2.3.4.5"), orthanc.series_url("9.8.7", item.series)):
        with pytest.raises(FileNotFoundError) as caught:
            wsikit.open_slide(url)
        assert isinstance(caught.value, DICOMwebError) and isinstance(caught.value, RemoteReadError)
        assert caught.value.status == 404
        assert url in str(caught.value) and "no such study or series" in str(caught.value)


def test_server_down(served: dict[str, Served]) -> None:
    item = served["full-rle"]
    url = f"http://127.0.0.1:{free_port()}/dicom-web/studies/{item.study}/series/{item.series}"
    started = time.monotonic()
    with pytest.raises(DICOMwebError) as caught:
        wsikit.open_slide(url, storage_options={"wsikit_retries": 1, "wsikit_timeout": 5})
    assert time.monotonic() - started < 5
    assert caught.value.status is None
    assert url.split("/studies/")[0] in str(caught.value) and "no answer" in str(caught.value)
    assert "2 attempt(s)" in str(caught.value)


# -- bad answers ------------------------------------------------------------------------
@pytest.mark.parametrize("fault", ["503", "reset", "truncate", "html", "drop_part", "wrong_syntax"])
def test_a_bad_answer_is_retried_and_recovers(fault: str, proxy: FaultProxy, served: dict[str, Served]) -> None:
    item = served["many-frames"]
    proxy.faults.extend([fault])  # met while opening (the first frames come then)
    with wsikit.open_slide(_via(proxy, item), storage_options=FAST) as remote, DICOMBackend(item.folder) as local:
        assert not proxy.faults
        proxy.faults.extend([fault])  # met by a read past them
        assert np.array_equal(remote.extract_region((0, 0), remote.shape), local.extract_region((0, 0), local.shape))
        assert not proxy.faults


@pytest.mark.parametrize("fault, says", [("503", "HTTP 503"), ("reset", "no answer"), ("truncate", "cut short"),
                                         ("html", "text/html"), ("drop_part", "parts for the"),
                                         ("wrong_syntax", "transfer syntax")])
def test_a_bad_answer_that_persists_is_an_error_never_pixels(fault: str, says: str, proxy: FaultProxy,
                                                             served: dict[str, Served]) -> None:
    item = served["many-frames"]
    with wsikit.open_slide(_via(proxy, item), storage_options=FAST) as remote:
        proxy.faults.extend([fault] * 3)
        with pytest.raises(DICOMwebError) as caught:
            remote.extract_region((896, 1792), (128, 256))  # 8 frames, none fetched yet
        message = str(caught.value)
        assert says in message and "3 attempt(s)" in message
        assert message.startswith(proxy.url) and "/frames/" in message
        assert not proxy.faults
        # Nothing of the failed answers was kept: the next read asks again and gets the pixels.
        with DICOMBackend(item.folder) as local:
            assert np.array_equal(remote.extract_region((896, 1792), (128, 256)),
                                  local.extract_region((896, 1792), (128, 256)))


def test_a_stalled_answer_ends_at_the_time_limit(proxy: FaultProxy, served: dict[str, Served]) -> None:
    item = served["many-frames"]
    options = {"wsikit_retries": 0, "wsikit_stall": 0.5, "wsikit_timeout": 10}
    with wsikit.open_slide(_via(proxy, item), storage_options=options) as remote:
        proxy.faults.append("stall")
        started = time.monotonic()
        with pytest.raises(DICOMwebError, match="1 attempt"):
            remote.extract_region((960, 1984), (64, 64))
        assert time.monotonic() - started < 3


def test_a_broken_frame_is_a_corrupt_slide_error_naming_the_instance(orthanc: OrthancServer,
                                                                      tmp_path: Path) -> None:
    files = write_series(tmp_path / "broken", "full-rle", seed=61)  # its own UIDs
    level0 = next(f for f in files if Path(f).name.startswith("level0"))
    ds = pydicom.dcmread(level0)
    frames = list(generate_frames(ds.PixelData, number_of_frames=int(ds.NumberOfFrames)))
    frames[2] = b"\x07" * len(frames[2])  # frame 2's RLE header now says nonsense
    ds.PixelData = encapsulate(frames, has_bot=True)
    ds.save_as(level0)
    uid = str(ds.SOPInstanceUID)
    [(study, series)] = orthanc.upload(files)
    with wsikit.open_slide(orthanc.series_url(study, series), storage_options=FAST) as remote:
        with pytest.raises(CorruptSlideError) as caught:
            remote.extract_region((0, 512), (10, 10))
        assert f"/instances/{uid}" in str(caught.value) and "frame 2" in str(caught.value)
        tiles = remote.generate_tiles(256, pad=True, errors="skip")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the skipped tile's warning
            kept = list(tiles)
        assert [coords for coords, _ in tiles.skipped_tiles] == [(0, 512)] and len(kept) == 5


# -- credentials ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[OrthancServer, Served]]:
    require_orthanc()
    with OrthancServer(users={"alice": PASSWORD}) as server:
        folder = tmp_path_factory.mktemp("guarded")
        files = write_series(folder, "many-frames")
        [(study, series)] = server.upload(files)
        yield server, Served(server.series_url(study, series), str(folder), study, series, files)


def _secrets(server: OrthancServer) -> list[str]:
    return [PASSWORD, server.auth_headers()["Authorization"].split()[1]]


def test_credentials_are_required_and_never_shown(guarded: tuple[OrthancServer, Served]) -> None:
    server, item = guarded
    with pytest.raises(DICOMwebError) as caught:
        wsikit.open_slide(item.url)
    assert caught.value.status == 401 and "credentials" in str(caught.value) and item.url in str(caught.value)
    wrong = {"Authorization": "Basic " + "d3Jvbmc6d3Jvbmctc2VjcmV0"}
    with pytest.raises(DICOMwebError) as caught:
        wsikit.open_slide(item.url, headers=wrong)
    assert "d3Jvbmc6d3Jvbmctc2VjcmV0" not in str(caught.value) and caught.value.status == 401


@pytest.mark.parametrize("how", ["headers", "storage_options", "url"])
def test_credentials_are_sent_and_never_shown(how: str, guarded: tuple[OrthancServer, Served],
                                              caplog: pytest.LogCaptureFixture) -> None:
    server, item = guarded
    url, options = item.url, {}
    if how == "headers":
        options = {"headers": server.auth_headers()}
    elif how == "storage_options":
        options = {"storage_options": {"headers": server.auth_headers(), **FAST}}
    else:
        url = item.url.replace("http://", f"http://alice:{PASSWORD}@")
    caplog.set_level(logging.DEBUG)
    with wsikit.open_slide(url, **options) as remote, DICOMBackend(item.folder) as local:
        assert np.array_equal(remote.extract_region((0, 0), remote.shape), local.extract_region((0, 0), local.shape))
        shown = [repr(remote), str(remote.path), str(dict(remote.properties)), caplog.text]
        try:
            remote.extract_region((0, 0), 10, level=5)
        except ValueError as exc:
            shown.append(str(exc))
        clone = pickle.loads(pickle.dumps(remote))  # the options travel: a worker must reopen
        try:
            assert np.array_equal(clone.extract_region((50, 60), (100, 100)),
                                  local.extract_region((50, 60), (100, 100)))
            shown.append(repr(clone))
        finally:
            clone.close()
    for secret in _secrets(server):
        for text in shown:
            assert secret not in text


def test_errors_after_opening_never_show_credentials(guarded: tuple[OrthancServer, Served]) -> None:
    server, item = guarded
    with FaultProxy(server.url) as proxy:
        with wsikit.open_slide(_via(proxy, item), headers=server.auth_headers(), storage_options=FAST) as remote:
            assert all(seen.get("authorization") == server.auth_headers()["Authorization"]
                       for seen in proxy.requests_seen)
            proxy.faults.extend(["html"] * 3)
            with pytest.raises(SlideError) as caught:
                remote.extract_region((768, 1280), (256, 256))  # frames past those fetched when opening
            text = str(caught.value) + repr(caught.value) + str(pickle.loads(pickle.dumps(caught.value)))
            for secret in _secrets(server):
                assert secret not in text


def test_bad_options(served: dict[str, Served]) -> None:
    item = served["full-rle"]
    with pytest.raises(TypeError, match="client_kwargs"):
        wsikit.open_slide(item.url, storage_options={"client_kwargs": {}})
    with pytest.raises(TypeError, match="headers"):
        wsikit.open_slide(item.url, headers="Authorization: x")
    with pytest.raises(ValueError, match="wsikit_retries"):
        wsikit.open_slide(item.url, storage_options={"wsikit_retries": -1})
