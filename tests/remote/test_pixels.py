"""Pixels read over HTTP (nginx) and S3 (moto) equal the local reads of the same file, bit
for bit: regions (inside, across and outside the edges, every level), tiles, thumbnails,
associated images, metadata."""
from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import wsikit
from tests.remote.conftest import local_slide

TIFF_SLIDES = ["sample.svs", "planar.tif", "small_HE.svs", "small_HE_levels.tiff", "small_vectra.qptiff",
               "smalltif.tif"]


@pytest.fixture(params=["http", "s3"])
def url_of(request: pytest.FixtureRequest) -> Callable[[str], tuple[str, dict[str, Any]]]:
    """``url_of(name)``: (URL, storage_options) of a served file, over HTTP or S3."""
    if request.param == "http":
        server = request.getfixturevalue("nginx")
        return lambda name: (server.url + name, {})
    server = request.getfixturevalue("s3")
    return lambda name: (f"s3://{server.bucket}/{name}", server.storage_options)


def assert_same_slide(local: wsikit.SlideBackend, remote: wsikit.SlideBackend) -> None:
    assert remote.level_shapes == local.level_shapes
    assert dict(remote.properties) == dict(local.properties)
    assert remote.mpp == local.mpp and remote.is_rgb == local.is_rgb and remote.sizes == local.sizes
    assert remote.channel_names == local.channel_names
    rng = np.random.default_rng(7)
    for level, (h, w) in enumerate(local.level_shapes):
        whole = local.extract_region((0, 0), (h, w), level=level, normalize=False)
        np.testing.assert_array_equal(remote.extract_region((0, 0), (h, w), level=level, normalize=False), whole)
        for _ in range(4):  # boxes across the edges, partly outside
            i, j = int(rng.integers(-50, h)), int(rng.integers(-50, w))
            size = (int(rng.integers(1, 400)), int(rng.integers(1, 400)))
            np.testing.assert_array_equal(remote.extract_region((i, j), size, level=level),
                                          local.extract_region((i, j), size, level=level))
    for shape, pad in ((256, False), ((200, 300), True)):
        local_tiles = list(local.generate_tiles(shape, pad=pad))
        remote_tiles = list(remote.generate_tiles(shape, pad=pad))
        assert [t.coords for t in remote_tiles] == [t.coords for t in local_tiles]
        for a, b in zip(remote_tiles, local_tiles):
            np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(remote.get_thumbnail(300), local.get_thumbnail(300))
    assert sorted(remote.associated_images) == sorted(local.associated_images)
    for name in local.associated_images:
        np.testing.assert_array_equal(remote.associated_images[name], local.associated_images[name])


@pytest.mark.parametrize("name", TIFF_SLIDES)
def test_tiff_family_over_http_and_s3_equals_local(name: str, remote_folder: Path,
                                                   url_of: Callable[[str], tuple[str, dict[str, Any]]]) -> None:
    path = local_slide(remote_folder, name)
    url, options = url_of(name)
    with wsikit.open_slide(path) as local, wsikit.open_slide(url, storage_options=options) as remote:
        assert remote.name == local.name == "tiff"
        assert remote.path == url
        assert_same_slide(local, remote)


def test_parallel_reads_over_http_equal_local(remote_folder: Path, nginx: Any) -> None:
    path = local_slide(remote_folder, "sample.svs")
    with wsikit.open_slide(path) as local, wsikit.open_slide(nginx.url + "sample.svs") as remote:
        locations = [(i, j) for i in range(-64, 1024, 192) for j in range(-64, 1536, 320)]
        for a, b in zip(remote.read_regions(locations, (300, 200), workers=4),
                        local.read_regions(locations, (300, 200), workers=1)):
            np.testing.assert_array_equal(a, b)
        plan = local.tile_plan(128, level=1)
        for a, b in zip(remote.read_plan(plan, workers=3), local.read_plan(plan, workers=1)):
            np.testing.assert_array_equal(a.image, b.image)


def test_a_tiling_fetches_its_tiles_in_few_requests(remote_folder: Path, nginx: Any) -> None:
    # small_HE.svs holds 130 level-0 tiles: after opening (the first MiB and the tail, which
    # together hold the whole small file) reading them all adds no request at all; the
    # 1,024 x 1,536 sample's 24 tiles beyond its first MiB come in a handful.
    with wsikit.open_slide(nginx.url + "sample.svs") as remote:
        source = remote._tiles.source  # type: ignore[attr-defined]
        before = source.requests
        tiles = list(remote.generate_tiles(64))
        assert len(tiles) == 16 * 24
        assert source.requests - before <= 3


def test_pickled_remote_slide_reopens_the_url_with_its_options(remote_folder: Path, s3: Any) -> None:
    url = f"s3://{s3.bucket}/sample.svs"
    with wsikit.open_slide(url, storage_options=s3.storage_options) as remote:
        data = pickle.dumps(remote)
        with pickle.loads(data) as copy:
            assert copy.path == url
            assert copy._options["storage_options"] == s3.storage_options  # type: ignore[attr-defined]
            np.testing.assert_array_equal(copy.extract_region((100, 200), (300, 400)),
                                          remote.extract_region((100, 200), (300, 400)))
        assert s3.storage_options["secret"] not in repr(remote)


def test_file_url_reads_the_local_file(remote_folder: Path) -> None:
    path = local_slide(remote_folder, "sample.svs")
    with wsikit.open_slide(Path(path).as_uri()) as remote, wsikit.open_slide(path) as local:
        np.testing.assert_array_equal(remote.extract_region((0, 0), (500, 500)),
                                      local.extract_region((0, 0), (500, 500)))


def test_large_region_is_fetched_in_coalesced_requests(remote_folder: Path, nginx: Any) -> None:
    with wsikit.open_slide(nginx.url + "sample.svs", cache_bytes=0) as remote:
        source = remote._tiles.source  # type: ignore[attr-defined]
        source._tiles.clear()
        source._blocks.clear()
        before = source.requests
        remote.extract_region((0, 0), (1024, 1536))
        # 24 tiles (about 800 KB) in a few coalesced requests: a cold start's runs grow from 256 KiB.
        assert source.requests - before <= 3


def test_dicom_file_over_http_and_s3_equals_local(remote_folder: Path,
                                                  url_of: Callable[[str], tuple[str, dict[str, Any]]]) -> None:
    path = local_slide(remote_folder, "small_dicom.dcm")
    url, options = url_of("small_dicom.dcm")
    with wsikit.open_slide(path) as local, wsikit.open_slide(url, storage_options=options) as remote:
        assert remote.name == local.name == "dicom"
        assert_same_slide(local, remote)


def test_dicom_series_under_an_s3_prefix_equals_the_local_folder(remote_folder: Path, s3: Any) -> None:
    with wsikit.open_slide(remote_folder / "series") as local:
        for url in (f"s3://{s3.bucket}/series/", f"s3://{s3.bucket}/series",
                    f"s3://{s3.bucket}/series/level0.dcm"):  # a file of the series brings its siblings
            with wsikit.open_slide(url, storage_options=s3.storage_options) as remote:
                assert remote.level_count == 2 and sorted(remote.associated_images) == ["label", "macro", "thumbnail"]
                assert_same_slide(local, remote)


def test_one_dicom_file_of_a_series_over_http(remote_folder: Path, nginx: Any) -> None:
    # Plain HTTP cannot list a folder: the file named is read alone, as whole_series=False does locally.
    with wsikit.open_slide(remote_folder / "series" / "level0.dcm", whole_series=False) as local, \
            wsikit.open_slide(nginx.url + "series/level0.dcm") as remote:
        assert remote.level_count == 1
        assert_same_slide(local, remote)


def test_dicom_tiling_fetches_frames_in_few_requests(remote_folder: Path, nginx: Any) -> None:
    path = local_slide(remote_folder, "small_dicom.dcm")
    with wsikit.open_slide(nginx.url + "small_dicom.dcm") as remote, wsikit.open_slide(path) as local:
        source = next(iter(remote._fds.values()))  # type: ignore[attr-defined]
        source._tiles.clear()
        source._blocks.clear()
        before = source.requests
        tiles = list(remote.generate_tiles(500, pad=True))
        assert len(tiles) == 42
        assert source.requests - before <= 3
        for a, b in zip(tiles, local.generate_tiles(500, pad=True)):
            np.testing.assert_array_equal(a.image, b.image)


def test_a_forked_child_reads_a_remote_slide_with_its_own_connections(remote_folder: Path, nginx: Any) -> None:
    import multiprocessing

    with wsikit.open_slide(nginx.url + "sample.svs") as remote:
        expected = remote.extract_region((0, 0), (1024, 1536))
        context = multiprocessing.get_context("fork")
        queue = context.Queue()
        child = context.Process(target=_read_in_child, args=(remote, queue))
        child.start()
        result = queue.get(timeout=60)
        child.join(30)
        assert child.exitcode == 0
        np.testing.assert_array_equal(result, expected)
        np.testing.assert_array_equal(remote.extract_region((0, 0), (1024, 1536)), expected)  # the parent goes on


def _read_in_child(slide: wsikit.SlideBackend, queue: Any) -> None:
    source = slide._tiles.source  # type: ignore[attr-defined]
    source._tiles.clear()
    source._blocks.clear()
    slide._reader.cache.clear()
    queue.put(slide.extract_region((0, 0), (1024, 1536)))


def test_a_small_byte_budget_still_reads_everything_in_coalesced_requests(remote_folder: Path, nginx: Any) -> None:
    # 2 MB for the bytes on their way and not yet decoded, of a 3.8 MB file of 128 KB tile
    # segments: the look-ahead announces more, which waits its turn and goes out as the
    # decoders make room, in requests of several segments (never a request per segment).
    path = local_slide(remote_folder, "planar.tif")
    options = {"wsikit_cache_bytes": 2_000_000, "wsikit_request_bytes": 512 * 1024}
    with wsikit.open_slide(path) as local, wsikit.open_slide(nginx.url + "planar.tif", storage_options=options) as remote:
        source = remote._tiles.source  # type: ignore[attr-defined]
        source._blocks.clear()
        before = source.requests
        tiles = list(remote.generate_tiles(128, normalize=False))
        for a, b in zip(tiles, local.generate_tiles(128, normalize=False)):
            np.testing.assert_array_equal(a.image, b.image)
        assert source._tiles.total == 0 and not source._inflight and not source._deferred
        native_segments = 3 * 3 * 4  # 3 sample planes of 3 x 4 native tiles
        assert source.requests - before < native_segments / 2


@pytest.mark.parametrize("resampling", ["fast", "exact"])
def test_tiles_at_a_physical_resolution_over_http_equal_local(resampling: str, remote_folder: Path,
                                                              nginx: Any) -> None:
    # 0.5 mpp from the 0.25 mpp level 0: "fast" decodes the JPEG tiles at half size (scaled
    # grids keep the level's prefetch hook), "exact" area-averages full decodes.
    path = local_slide(remote_folder, "sample.svs")
    with wsikit.open_slide(path) as local, wsikit.open_slide(nginx.url + "sample.svs") as remote:
        source = remote._tiles.source  # type: ignore[attr-defined]
        source._blocks.clear()
        before = source.requests
        remote_tiles = list(remote.generate_tiles(128, mpp=0.5, resampling=resampling))
        local_tiles = list(local.generate_tiles(128, mpp=0.5, resampling=resampling))
        assert len(remote_tiles) == len(local_tiles) == 4 * 6
        for a, b in zip(remote_tiles, local_tiles):
            np.testing.assert_array_equal(a.image, b.image)
        # Two coalesced runs, and for "fast" the native tile the scaled grid looks at when made.
        assert source.requests - before <= 4
