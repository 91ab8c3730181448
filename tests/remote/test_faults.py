"""Remote reads against a server that misbehaves: retried and then right, or a SlideError
naming the URL and the problem; never pixels decoded from a bad answer, never a hang past
the timeout, never a credential in an error, a log record or a repr."""
from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any
from pathlib import Path

import numpy as np
import pytest

import wsikit
from tests.remote.conftest import local_slide
from tests.servers.faults import FaultServer
from wsikit.errors import SlideError
from wsikit.remote import RemoteReadError

SECRET = "Bearer wsikit-SECRET-token-5e2c"
FAST = {"wsikit_retries": 2, "wsikit_stall": 1.0, "wsikit_timeout": 10}


@pytest.fixture(scope="module")
def sample_bytes(remote_folder: Path) -> bytes:
    return Path(local_slide(remote_folder, "sample.svs")).read_bytes()


@pytest.fixture()
def server(sample_bytes: bytes) -> Iterator[FaultServer]:
    with FaultServer(sample_bytes, stall_seconds=20) as fault_server:
        yield fault_server


def _fresh_read(slide: wsikit.SlideBackend) -> np.ndarray:
    """A region whose bytes must be fetched now (every cache emptied first)."""
    source = slide._tiles.source  # type: ignore[attr-defined]
    source._tiles.clear()
    source._blocks.clear()
    slide._reader.cache.clear()
    return slide.extract_region((0, 0), (1024, 1536))


@pytest.mark.parametrize("fault", ["503", "reset", "truncate", "stall", "bad_range", "html", "html206"])
def test_a_bad_answer_is_retried_and_never_decoded(fault: str, server: FaultServer, remote_folder: Path) -> None:
    with wsikit.open_slide(local_slide(remote_folder, "sample.svs")) as local:
        expected = local.extract_region((0, 0), (1024, 1536))
    server.faults.extend([fault])  # the first request of opening
    with wsikit.open_slide(server.url + "sample.svs", storage_options=FAST) as slide:
        server.faults.extend([fault, fault])  # the next two requests: the region's bytes
        np.testing.assert_array_equal(_fresh_read(slide), expected)
    assert not server.faults  # every fault was met, and answered by a retry


@pytest.mark.parametrize("fault, words", [("503", "HTTP 503"), ("truncate", "truncated"),
                                          ("bad_range", "Content-Range"), ("html206", "HTML page"),
                                          ("reset", "connection"), ("html", "HTML page")])
def test_a_lasting_fault_is_a_slide_error_naming_the_url(fault: str, words: str, server: FaultServer) -> None:
    url = server.url + "sample.svs"
    with wsikit.open_slide(url, storage_options=FAST) as slide:
        server.always = fault
        seen = len(server.requests_seen)
        with pytest.raises(SlideError) as caught:
            _fresh_read(slide)
    message = str(caught.value)
    assert url in message and words in message and "after 3 attempts" in message
    assert len(server.requests_seen) - seen >= 3  # the first attempt and two retries


def test_a_server_without_ranges_is_refused_at_once(server: FaultServer) -> None:
    server.faults.extend(["whole"] * 5)
    with pytest.raises(RemoteReadError, match="does not serve byte ranges"):
        wsikit.open_slide(server.url + "sample.svs", storage_options=FAST)
    assert len(server.faults) == 4  # not retried


def test_missing_and_forbidden_files(server: FaultServer) -> None:
    server.faults.extend(["404"])
    with pytest.raises(FileNotFoundError, match="sample.svs"):
        wsikit.open_slide(server.url + "sample.svs", storage_options=FAST)
    server.faults.extend(["403"])
    with pytest.raises(SlideError, match="403.*access denied"):
        wsikit.open_slide(server.url + "sample.svs", storage_options=FAST)


def test_no_hang_past_the_total_timeout(server: FaultServer) -> None:
    with wsikit.open_slide(server.url + "sample.svs") as slide:
        slide.close()
    options = {"wsikit_timeout": 1.5, "wsikit_stall": 30, "wsikit_retries": 5}
    server.faults.extend(["stall"] * 10)
    started = time.monotonic()
    with pytest.raises(RemoteReadError, match="timeout of 1.5 s"):
        wsikit.open_slide(server.url + "sample.svs", storage_options=options)
    assert time.monotonic() - started < 4


def test_a_stalled_tile_read_ends_at_the_timeout(server: FaultServer) -> None:
    options = {"wsikit_timeout": 1.5, "wsikit_stall": 30, "wsikit_retries": 5}
    with wsikit.open_slide(server.url + "sample.svs", storage_options=options) as slide:
        server.always = "stall"
        started = time.monotonic()
        with pytest.raises(SlideError, match="1.5 s"):
            _fresh_read(slide)
        assert time.monotonic() - started < 6


def test_credentials_never_in_errors_logs_or_reprs(server: FaultServer, caplog: pytest.LogCaptureFixture) -> None:
    options = dict(FAST, headers={"Authorization": SECRET})
    url = server.url + "sample.svs"
    caplog.set_level(logging.DEBUG)
    messages = []
    with wsikit.open_slide(url, storage_options=options) as slide:
        assert server.requests_seen[-1]["authorization"] == SECRET  # the header was sent
        messages += [repr(slide), repr(slide._tiles.source), str(slide._tiles.source.__dict__.get("name"))]  # type: ignore[attr-defined]
        for fault in ("503", "html206", "truncate", "bad_range", "403"):
            server.always = fault
            with pytest.raises(SlideError) as caught:
                _fresh_read(slide)
            server.always = None
            messages.append(str(caught.value))
            messages.append(repr(caught.value))
    server.always = "503"
    with pytest.raises(SlideError) as caught:
        wsikit.open_slide(url, storage_options=options)
    messages.append(str(caught.value))
    messages += [record.getMessage() for record in caplog.records]
    assert caplog.records  # the retries were logged
    assert not [m for m in messages if "SECRET" in m]


def test_url_password_and_query_are_not_shown(server: FaultServer) -> None:
    url = f"http://user:pa55word@127.0.0.1:{server.port}/sample.svs?X-Signature=s3cr3t"
    server.always = "503"
    with pytest.raises(SlideError) as caught:
        wsikit.open_slide(url, storage_options=FAST)
    assert "pa55word" not in str(caught.value) and "s3cr3t" not in str(caught.value)
    assert "127.0.0.1" in str(caught.value)


def test_s3_secret_never_in_errors_logs_or_reprs(s3: Any, caplog: pytest.LogCaptureFixture) -> None:
    import pickle

    secret = s3.storage_options["secret"]
    caplog.set_level(logging.DEBUG)
    messages = []
    with wsikit.open_slide(f"s3://{s3.bucket}/sample.svs", storage_options=s3.storage_options) as slide:
        slide.extract_region((0, 0), (500, 500))
        messages += [repr(slide), repr(slide._tiles.source), repr(slide._tiles.source._fetcher)]  # type: ignore[attr-defined]
        assert secret.encode() in pickle.dumps(slide)  # pickles carry the credentials, as documented
    for url in (f"s3://{s3.bucket}/missing.svs", "s3://no-such-bucket/x.svs", f"s3://{s3.bucket}/nothing/"):
        with pytest.raises((SlideError, FileNotFoundError)) as caught:
            wsikit.open_slide(url, storage_options=dict(s3.storage_options, wsikit_retries=1))
        messages += [str(caught.value), repr(caught.value)]
    messages += [record.getMessage() for record in caplog.records]
    assert caplog.records and not [m for m in messages if secret in m]


def test_an_unreachable_s3_endpoint_ends_at_the_timeout(s3: Any) -> None:
    from tests.servers import free_port

    options = dict(s3.storage_options, endpoint_url=f"http://127.0.0.1:{free_port()}", wsikit_timeout=2)
    started = time.monotonic()
    with pytest.raises(RemoteReadError, match="timeout of 2 s") as caught:
        wsikit.open_slide(f"s3://{s3.bucket}/sample.svs", storage_options=options)
    assert time.monotonic() - started < 5
    assert "s3://slides/sample.svs" in str(caught.value) and s3.storage_options["secret"] not in str(caught.value)
