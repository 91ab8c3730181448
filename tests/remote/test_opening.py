"""How URLs are recognised and opened: formats only OpenSlide or Bio-Formats read are refused
as local-only, missing filesystems name their extra, options are checked, names are safe."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import wsikit
from wsikit.errors import CorruptSlideError, UnsupportedFormatError
from wsikit.remote.fileobj import SourceFile
from wsikit.remote.prefetch import prefetch_ahead
from wsikit.remote.settings import parse_storage_option, split_options
from wsikit.remote.source import LocalSource, _ByteCache, coalesce
from wsikit.remote.urls import display_url, is_url, url_name
from wsikit.tiff_structure import ifd_chain_problem
from tests.servers import require
from tests.servers.nginx import NginxServer, nginx_path

_REGRESSIONS = Path(__file__).resolve().parents[1] / "regressions"


def test_urls_are_told_from_paths() -> None:
    assert is_url("https://host/a.svs") and is_url("s3://bucket/key") and is_url("file:///tmp/a.svs")
    assert not is_url("C:\\slides\\a.svs") and not is_url("/data/a.svs") and not is_url(Path("/x"))
    assert url_name("https://h/a/slide.svs?sig=1") == "slide.svs"
    assert url_name("s3://bucket/series/") == "series"
    assert display_url("https://me:pw@host:8/a.svs?X-Amz-Signature=abc") == "https://me:***@host:8/a.svs?..."


def test_storage_options_are_checked() -> None:
    settings, rest = split_options({"wsikit_timeout": "2.5", "wsikit_retries": 0, "key": "k"})
    assert settings.timeout == 2.5 and settings.retries == 0 and rest == {"key": "k"}
    with pytest.raises(TypeError, match="wsikit_timout"):
        split_options({"wsikit_timout": 1})
    with pytest.raises(ValueError, match="wsikit_retries"):
        split_options({"wsikit_retries": -1})
    with pytest.raises(ValueError, match="wsikit_timeout"):
        split_options({"wsikit_timeout": True})
    options: dict[str, Any] = {}
    for text in ("headers.Authorization=Bearer x=y", "wsikit_timeout=30", "client_kwargs.region_name=eu-west-1",
                 "anon=true"):
        parse_storage_option(text, options)
    assert options == {"headers": {"Authorization": "Bearer x=y"}, "wsikit_timeout": 30,
                       "client_kwargs": {"region_name": "eu-west-1"}, "anon": True}


def test_coalescing_merges_neighbours_within_limits() -> None:
    ranges = [(1000, 100), (0, 100), (100, 50), (200_000, 10), (150, 10)]
    runs = coalesce(ranges, max_bytes=1 << 20, gap=1000)
    assert [(start, end) for start, end, _ in runs] == [(0, 1100), (200_000, 200_010)]
    assert runs[0][2] == [(0, 100), (100, 50), (150, 10), (1000, 100)]
    assert len(coalesce([(k * 100, 100) for k in range(100)], max_bytes=1000)) == 10


def test_byte_cache_is_bounded() -> None:
    cache = _ByteCache(250)
    for k in range(5):
        cache.put(k, bytes(100))
    assert cache.total <= 250 and cache.get(0) is None and cache.get(4) is not None
    cache.put(9, bytes(1000))  # larger than the whole cache: not kept
    assert cache.get(9) is None


def test_source_file_reads_like_a_file(tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    data = np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes()
    path.write_bytes(data)
    source = LocalSource(str(path))
    handle = SourceFile(source)
    assert handle.read(10) == data[:10] and handle.tell() == 10
    handle.seek(-20, 2)
    assert handle.read() == data[-20:]
    handle.seek(4990)
    assert handle.read(100) == data[4990:]
    source.close()


def test_prefetch_ahead_announces_tiles_in_batches_before_they_are_read() -> None:
    from wsikit.reader.tile_grid import TileGrid
    from wsikit.remote.prefetch import with_prefetch

    announced: list[list[tuple[int, int]]] = []
    grid = with_prefetch(TileGrid("g", (1000, 1000), (100, 100), (3,), np.dtype(np.uint8), lambda i, j: None),
                         lambda tiles: announced.append(list(tiles)))
    requests = [(i, j) for i in range(10) for j in range(10)]
    pulled = prefetch_ahead(iter(requests), lambda r: (grid, r[0] * 100, r[1] * 100, r[0] * 100 + 100,
                                                       r[1] * 100 + 100), lookahead=30, batch=8)
    first = next(pulled)
    assert first == (0, 0) and sum(map(len, announced)) >= 30 - 8  # announced ahead, in whole batches
    assert list(pulled) == requests[1:]
    assert sorted(t for batch in announced for t in batch) == sorted(requests)
    assert all(len(batch) >= 8 for batch in announced[:-1])


def test_formats_only_local_readers_take_are_refused(nginx: Any) -> None:
    with pytest.raises(UnsupportedFormatError, match="local files only"):
        wsikit.open_slide(nginx.url + "notes.txt")
    with pytest.raises(UnsupportedFormatError, match="OpenSlide reads local files only"):
        wsikit.open_slide(nginx.url + "sample.svs", backend="openslide")
    with pytest.raises(UnsupportedFormatError, match="'dicom' backend does not recognise"):
        wsikit.open_slide(nginx.url + "sample.svs", backend="dicom")
    with pytest.raises(FileNotFoundError, match="missing.svs"):
        wsikit.open_slide(nginx.url + "missing.svs")


def test_an_ifd_chain_that_loops_is_refused_over_http(tmp_path: Path) -> None:
    """The IFD chain walk of local files (wsikit.tiff_structure) runs over the remote source's reads."""
    require("nginx", nginx_path() is not None, "install the Debian package nginx-light")
    shutil.copy(_REGRESSIONS / "ifd-chain-loops-back.tif", tmp_path / "loop.tif")
    problem = ifd_chain_problem(str(tmp_path / "loop.tif"))
    assert problem is not None and "loops" in problem
    with NginxServer(tmp_path) as server:
        with pytest.raises(CorruptSlideError) as caught:
            wsikit.open_slide(server.url + "loop.tif")
    assert problem in str(caught.value) and "loop.tif" in str(caught.value)


def test_missing_filesystem_names_the_extra() -> None:
    import importlib.util

    if importlib.util.find_spec("gcsfs") is not None:
        pytest.skip("gcsfs is installed here")
    with pytest.raises(ImportError, match=r"wsikit\[gcs\]"):
        wsikit.open_slide("gs://bucket/slide.svs")


def test_options_for_http_are_checked(nginx: Any) -> None:
    with pytest.raises(TypeError, match="endpoint_url"):
        wsikit.open_slide(nginx.url + "sample.svs", storage_options={"endpoint_url": "http://x"})


def test_metadata_walks_fetch_growing_blocks(nginx: Any, remote_folder: Path) -> None:
    from wsikit.remote.source import BLOCK, RemoteSource

    data = np.random.default_rng(5).integers(0, 256, 24 * 1024 * 1024, dtype=np.uint8).tobytes()
    (remote_folder / "walk.bin").write_bytes(data)
    source = RemoteSource(nginx.url + "walk.bin")
    try:
        position = 0
        while position < len(data):  # 8-byte item headers every 64 KiB, as a fragment walk reads
            assert source.read_at(position, 8) == data[position : position + 8]
            position += 64 * 1024
        # 24 MiB in blocks of 256 KiB: the first MiB at opening, then runs of 4, 7, 13, 25, ... blocks
        assert source.requests <= 6, source.requests
        assert source.read(len(data) - 100, 100) == data[-100:]
        assert source.read_at(3 * BLOCK + 5, 2 * BLOCK) == data[3 * BLOCK + 5 : 5 * BLOCK + 5]
    finally:
        source.close()


def test_a_cold_prefetch_starts_with_small_runs() -> None:
    ranges = [(k * 1000, 1000) for k in range(100)]  # 100 KB back to back
    runs = coalesce(ranges, max_bytes=40_000, gap=0, first_bytes=5_000)
    sizes = [end - start for start, end, _ in runs]
    assert sizes[:4] == [5_000, 10_000, 20_000, 40_000] and max(sizes) <= 40_000
    assert sum(sizes) == 100_000
