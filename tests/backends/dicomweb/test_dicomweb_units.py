"""The parts of the DICOMweb backend that need no server: URLs, multipart answers, read-ahead order."""
from __future__ import annotations

import base64

import numpy as np
import pytest

from wsikit.backends.dicomweb.fetch import looks_like, plan_cells
from wsikit.backends.dicomweb.multipart import BadAnswer, split_multipart
from wsikit.backends.dicomweb.url import is_dicomweb_url, parse_series_url

TYPE = 'multipart/related; type="application/octet-stream"; boundary=XyZ'


def _body(*parts: bytes, lengths: bool = True, close: bool = True) -> bytes:
    out = b""
    for data in parts:
        out += b"--XyZ\r\nContent-Type: application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1\r\n"
        if lengths:
            out += f"Content-Length: {len(data)}\r\n".encode()
        out += b"\r\n" + data + b"\r\n"
    return out + (b"--XyZ--\r\n" if close else b"")


def test_series_urls() -> None:
    assert is_dicomweb_url("https://host/dicom-web/studies/1.2/series/3.4")
    assert is_dicomweb_url("http://host:8042/a/b/studies/1.2/series/3.4/")
    for other in ("https://host/slide.svs", "s3://b/studies/1/series/2", "https://host/studies/1",
                  "https://host/studies/1/series/2/instances/3", "https://host/studies/1/series/2?x=1", "/local/path",
                  None):
        assert not is_dicomweb_url(other)
    series, headers = parse_series_url("https://alice:p%40ss@host/rs/studies/1.2/series/3.4/")
    assert series.url == "https://host/rs/studies/1.2/series/3.4" and series.root == "https://host/rs"
    assert series.instance_url("5.6") == "https://host/rs/studies/1.2/series/3.4/instances/5.6"
    assert headers == {"Authorization": "Basic " + base64.b64encode(b"alice:p@ss").decode()}
    with pytest.raises(ValueError, match="studies"):
        parse_series_url("https://host/dicom-web/studies/1.2")


def test_multipart_parts_with_and_without_lengths() -> None:
    frames = [b"\x00" * 10, b"--XyZ inside a frame\r\n", b"\xff\xd8end"]
    for lengths in (True, False):
        parts = split_multipart(TYPE, _body(*frames, lengths=lengths))
        assert [p.data for p in parts] == frames
        assert parts[0].content_type.startswith("application/octet-stream")


@pytest.mark.parametrize("body, says", [
    (_body(b"abc", close=False), "cut short"),
    (_body(b"abc")[:-20], "cut short"),
    (_body(b"abcdef").replace(b"Content-Length: 6", b"Content-Length: 9"), "does not end at a delimiter"),
    (b"<html>error</html>", "no opening delimiter"),
])
def test_multipart_refuses_bad_bodies(body: bytes, says: str) -> None:
    with pytest.raises(BadAnswer, match=says):
        split_multipart(TYPE, body)


def test_multipart_refuses_other_types() -> None:
    with pytest.raises(BadAnswer, match="text/html"):
        split_multipart("text/html; charset=utf-8", b"<html></html>")
    with pytest.raises(BadAnswer, match="boundary"):
        split_multipart("multipart/related", _body(b"x"))


def test_codestream_starts() -> None:
    assert looks_like("1.2.840.10008.1.2.4.50", b"\xff\xd8\xff\xe0")
    assert not looks_like("1.2.840.10008.1.2.4.50", b"\xff\x4f\xff\x51")
    assert looks_like("1.2.840.10008.1.2.4.90", b"\xff\x4f\xff\x51")
    assert looks_like("1.2.840.10008.1.2.5", (3).to_bytes(4, "little") + bytes(60))
    assert not looks_like("1.2.840.10008.1.2.5", b"\x07" * 64)
    assert looks_like("1.2.840.10008.1.2.1", b"anything")


def test_plan_cells_in_reading_order() -> None:
    # 2 x 3 frames of 100; tiles of 150 every 150: each box touches up to 4 frames
    boxes = np.array([[0, 0, 150, 150], [0, 150, 150, 150], [150, 0, 50, 150], [150, 150, 50, 150]])
    assert plan_cells(boxes, (200, 300), (100, 100)).tolist() == [0, 1, 3, 4, 2, 5]
    outside = np.array([[-500, -500, 10, 10], [190, 290, 50, 50]])
    assert plan_cells(outside, (200, 300), (100, 100)).tolist() == [5]
