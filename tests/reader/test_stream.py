"""Parallel, cached and sequential reads of whole slides give the same pixels.

The reference is the level as tifffile decodes it (or the DICOM writer's own pixels):
every tile wsikit gives must equal the matching box of it, zero outside the level, at every
level, for aligned, unaligned and overlapping grids, on any number of threads.
"""
from __future__ import annotations

import threading
import time
import warnings

import numpy as np
import pytest

import wsikit
from tests.helpers import padded_box, real_slide
from wsikit.backends.base import SkippedTileWarning
from wsikit.pixels import resample_area


def _level_arrays(path) -> list[np.ndarray]:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        return [level.asarray() for level in tif.series[0].levels]


def _reader_threads():
    return [t for t in threading.enumerate() if t.name.startswith("wsikit")]


def _no_reader_threads(timeout=5.0):
    deadline = time.monotonic() + timeout
    while _reader_threads() and time.monotonic() < deadline:
        time.sleep(0.01)
    return _reader_threads() == []


@pytest.fixture(scope="module")
def svs(tmp_path_factory):
    """A small pyramid whose sides are no multiple of the tile: levels (1000, 1300), (250, 325), (62, 81)."""
    from wsikit.samples.svs import write_sample_svs

    path = tmp_path_factory.mktemp("parallel") / "odd.svs"
    write_sample_svs(path, shape=(1000, 1300), factors=(4, 16), tile=128, seed=3)
    return str(path), _level_arrays(path)


GRIDS = [
    dict(shape=128),                      # aligned with the native tiles
    dict(shape=100),                      # unaligned
    dict(shape=(96, 160), stride=(64, 80)),  # overlapping, not square
    dict(shape=128, pad=True),
    dict(shape=150, stride=100, pad=True),
]


def _quarter(value):
    return tuple(max(1, v // 4) for v in value) if isinstance(value, tuple) else max(1, value // 4)


@pytest.mark.parametrize("grid", GRIDS, ids=lambda g: ",".join(f"{k}={v}" for k, v in g.items()))
def test_every_tile_at_every_level_matches_the_reference(svs, grid):
    path, levels = svs
    with wsikit.open_slide(path) as slide:
        assert type(slide).__name__ == "TiffBackend"
        for level, image in enumerate(levels):
            if level == 2:  # (62, 81): the same grid, a quarter the size
                grid = {k: _quarter(v) if k in ("shape", "stride") else v for k, v in grid.items()}
            runs = {workers: list(slide.generate_tiles(level=level, workers=workers, **grid)) for workers in (1, 2, 5)}
            tiles = runs[1]
            assert tiles, f"no tiles at level {level}"
            for workers, other in runs.items():
                assert [t.coords for t in other] == [t.coords for t in tiles]
            h, w = tiles[0].image.shape[:2]
            for k, tile in enumerate(tiles):
                expected = padded_box(image, tile.coords[0], tile.coords[1], h, w)
                for workers in runs:
                    np.testing.assert_array_equal(runs[workers][k].image, expected,
                                                  err_msg=f"level {level} tile {tile.coords} workers={workers}")


def test_cached_and_uncached_reads_agree(svs):
    path, levels = svs
    with wsikit.open_slide(path) as cached, wsikit.open_slide(path, cache_bytes=0) as uncached:
        for grid in GRIDS:
            for a, b in zip(cached.generate_tiles(**grid), uncached.generate_tiles(workers=3, **grid), strict=True):
                np.testing.assert_array_equal(a.image, b.image)
        assert uncached._reader.cache.nbytes == 0
        # extract_region after tiling reads through the cache and still agrees
        for box in [((0, 0), (1000, 1300)), ((-50, 1250), (200, 200)), ((127, 127), (2, 2))]:
            np.testing.assert_array_equal(cached.extract_region(*box), padded_box(levels[0], *box[0], *box[1]))
            np.testing.assert_array_equal(uncached.extract_region(*box), padded_box(levels[0], *box[0], *box[1]))


def test_eight_threads_tiling_one_slide_at_once(svs):
    path, levels = svs
    grids = [dict(shape=128), dict(shape=100), dict(shape=(96, 160), stride=(64, 80), pad=True),
             dict(shape=64, level=1), dict(shape=50, level=2, pad=True)]
    failures = []
    with wsikit.open_slide(path, cache_bytes=2 * 1024**2) as slide:
        def run(k):
            grid = dict(grids[k % len(grids)])
            level = grid.pop("level", 0)
            try:
                for tile in slide.generate_tiles(level=level, workers=1 + k % 3, **grid):
                    h, w = tile.image.shape[:2]
                    if not np.array_equal(tile.image, padded_box(levels[level], *tile.coords, h, w)):
                        failures.append((k, tile.coords))
                region = slide.extract_region((37 * k, 11 * k), (300, 200))
                if not np.array_equal(region, padded_box(levels[0], 37 * k, 11 * k, 300, 200)):
                    failures.append((k, "region"))
            except Exception as exc:  # noqa: BLE001 - reported below
                failures.append((k, repr(exc)))

        threads = [threading.Thread(target=run, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert failures == []
        assert slide._reader.cache.nbytes <= 2 * 1024**2


def test_read_regions_in_order_with_padding(svs):
    path, levels = svs
    rng = np.random.default_rng(0)
    locations = [tuple(int(v) for v in rng.integers(-150, 1350, size=2)) for _ in range(120)]
    locations += [(-500, -500), (990, 1290), (0, 0)]
    with wsikit.open_slide(path) as slide:
        for workers in (1, 2, 4):
            out = list(slide.read_regions(locations, (90, 130), workers=workers))
            assert len(out) == len(locations)
            for location, region in zip(locations, out):
                np.testing.assert_array_equal(region, padded_box(levels[0], *location, 90, 130))
        # a generator of locations (unknown length) gives the same, and numpy pairs are accepted
        gen = (np.array(loc) for loc in locations)
        for location, region in zip(locations, slide.read_regions(gen, (90, 130), level=0)):
            np.testing.assert_array_equal(region, padded_box(levels[0], *location, 90, 130))
        level1 = list(slide.read_regions([(10, 10), (240, 300)], 32, level=1, workers=2))
        np.testing.assert_array_equal(level1[1], padded_box(levels[1], 240, 300, 32, 32))


def test_read_regions_checks_its_arguments(svs):
    path, _ = svs
    with wsikit.open_slide(path) as slide:
        with pytest.raises(ValueError, match="workers"):
            list(slide.read_regions([(0, 0)], 10, workers=0))
        with pytest.raises(TypeError, match="workers"):
            list(slide.read_regions([(0, 0)], 10, workers="2"))
        with pytest.raises(ValueError, match="level"):
            list(slide.read_regions([(0, 0)], 10, level=7))
        # a bad location is raised at its turn, after the good ones before it
        regions = slide.read_regions([(0, 0), (5, 5), "bad", (9, 9)], 10, workers=2)
        assert next(regions).shape == (10, 10, 3)
        assert next(regions).shape == (10, 10, 3)
        with pytest.raises(TypeError, match="location"):
            next(regions)
    assert _no_reader_threads()


def test_tiling_stopped_early_leaves_no_threads(svs):
    path, _ = svs
    with wsikit.open_slide(path) as slide:
        tiles = slide.generate_tiles(shape=64, workers=4)
        next(tiles)
        assert _reader_threads()
        tiles.close()
        assert _no_reader_threads()
        for _ in slide.generate_tiles(shape=100, workers=3):
            break
        assert _no_reader_threads()
        regions = slide.read_regions([(i, i) for i in range(0, 900, 7)], 50, workers=3)
        next(regions)
        del regions
        assert _no_reader_threads()


def test_aligned_tiling_does_not_fill_the_cache(svs):
    path, _ = svs
    with wsikit.open_slide(path) as slide:
        n = sum(1 for _ in slide.generate_tiles(shape=128, workers=2))
        assert n == 7 * 10
        assert slide._reader.cache.nbytes == 0
        sum(1 for _ in slide.generate_tiles(shape=100, stride=100, workers=2))
        assert slide._reader.cache.nbytes == 0  # each native tile dropped after its last use


def test_native_tiles_are_returned_read_only_without_copies(svs):
    path, levels = svs
    with wsikit.open_slide(path) as slide:
        tile = next(slide.generate_tiles(shape=128, workers=2))
        assert not tile.image.flags.writeable
        np.testing.assert_array_equal(tile.image, levels[0][:128, :128])


@pytest.fixture(scope="module")
def corrupt_svs(tmp_path_factory):
    """The sample pyramid with the level-0 tile (1, 2) overwritten by garbage."""
    import tifffile

    from wsikit.samples.svs import write_sample_svs

    path = tmp_path_factory.mktemp("corrupt") / "corrupt.svs"
    write_sample_svs(path, shape=(512, 768), factors=(4,), tile=128)
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        index = 1 * 6 + 2
        offset, count = int(page.dataoffsets[index]), int(page.databytecounts[index])
    with open(path, "r+b") as f:
        f.seek(offset + 2)
        f.write(b"\x00" * (count - 2))
    return str(path)


def test_an_unreadable_tile_is_skipped_the_same_way_on_any_number_of_threads(corrupt_svs):
    results = {}
    with wsikit.open_slide(corrupt_svs) as slide:
        for workers in (1, 2, 4):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                stream = slide.generate_tiles(shape=128, workers=workers, errors="skip")
                tiles = list(stream)
            results[workers] = [t.coords for t in tiles]
            assert stream.skipped_tiles and stream.skipped_tiles[0][0] == (128, 256)
            assert any(issubclass(w.category, SkippedTileWarning) for w in caught)
            assert (128, 256) not in results[workers] and len(results[workers]) == 4 * 6 - 1
        assert results[1] == results[2] == results[4]
        with pytest.raises(wsikit.CorruptSlideError) as info:
            list(slide.generate_tiles(shape=100, workers=2))
        assert info.value.path == corrupt_svs
    assert _no_reader_threads()


def test_jpeg_fast_path_decodes_as_tifffile_does(svs):
    path, _ = svs
    _compare_with_tifffile_decode(path)


def test_real_svs_jpeg_fast_path_decodes_as_tifffile_does():
    _compare_with_tifffile_decode(real_slide("small_HE.svs"))


def _compare_with_tifffile_decode(path):
    import os

    with wsikit.open_slide(path) as slide:
        for level, grid in enumerate(slide._grids):
            page = slide._pages[level]
            rows, cols = grid.tile_counts
            assert slide._level_grid(level) is grid
            fd = os.open(path, os.O_RDONLY)
            try:
                for index in range(rows * cols):
                    data = os.pread(fd, int(page.databytecounts[index]), int(page.dataoffsets[index]))
                    expected, _, _ = page.decode(data, index, jpegtables=page.jpegtables)
                    np.testing.assert_array_equal(grid.decode(index // cols, index % cols),
                                                  expected.reshape(expected.shape[-3:])[:, :, :3])
            finally:
                os.close(fd)


def test_real_svs_parallel_equals_sequential_equals_tifffile():
    path = real_slide("small_HE.svs")
    level0 = _level_arrays(path)[0]
    with wsikit.open_slide(path) as slide:
        for grid in (dict(shape=240), dict(shape=224), dict(shape=500, stride=300, pad=True)):
            parallel = list(slide.generate_tiles(workers=2, **grid))
            sequential = list(slide.generate_tiles(workers=1, **grid))
            assert len(parallel) == len(sequential) > 0
            for a, b in zip(parallel, sequential):
                assert a.coords == b.coords
                np.testing.assert_array_equal(a.image, b.image)
                np.testing.assert_array_equal(a.image, padded_box(level0, *a.coords, *a.image.shape[:2]))


def test_real_dicom_parallel_equals_sequential():
    path = real_slide("small_dicom.dcm")
    pytest.importorskip("pydicom")
    with wsikit.open_slide(path) as slide:
        whole = slide.extract_region((0, 0), slide.shape)
        for grid in (dict(shape=500), dict(shape=448, pad=True), dict(shape=300, stride=250)):
            parallel = list(slide.generate_tiles(workers=3, **grid))
            sequential = list(slide.generate_tiles(workers=1, **grid))
            assert [t.coords for t in parallel] == [t.coords for t in sequential]
            for a, b in zip(parallel, sequential):
                np.testing.assert_array_equal(a.image, b.image)
                np.testing.assert_array_equal(a.image, padded_box(whole, *a.coords, *a.image.shape[:2]))


def test_dicom_series_parallel_equals_sequential(tmp_path):
    try:
        from wsikit.samples.dicom import write_dicom_series
    except ImportError:
        pytest.skip("wsikit.samples.dicom is not there yet")
    sample = write_dicom_series(tmp_path / "series", shape=(700, 900), tile=128, factors=(4,),
                                thumbnail=False, label=False, overview=False)
    with wsikit.open_slide(sample.folder) as slide:
        for level, expected in enumerate(sample.levels):
            for grid in (dict(shape=128), dict(shape=100, pad=True), dict(shape=(64, 96), stride=50)):
                parallel = list(slide.generate_tiles(level=level, workers=4, **grid))
                sequential = list(slide.generate_tiles(level=level, workers=1, **grid))
                assert [t.coords for t in parallel] == [t.coords for t in sequential]
                for a, b in zip(parallel, sequential):
                    np.testing.assert_array_equal(a.image, b.image)
                    if sample.lossless:
                        np.testing.assert_array_equal(a.image, padded_box(expected, *a.coords, *a.image.shape[:2]))


def test_two_tilings_of_one_slide_consumed_in_turns(svs):
    path, levels = svs
    with wsikit.open_slide(path) as slide:
        a = slide.generate_tiles(shape=100, workers=2)
        b = slide.generate_tiles(shape=100, stride=50, workers=2)
        for x, y in zip(a, b):
            for tile in (x, y):
                np.testing.assert_array_equal(tile.image, padded_box(levels[0], *tile.coords, 100, 100))


@pytest.mark.parametrize("resampling", ["exact", "fast"])
def test_tiles_by_mpp_are_resampled_the_same_on_any_number_of_threads(svs, resampling):
    path, _ = svs
    with wsikit.open_slide(path) as slide:
        plan = slide.tile_plan(shape=64, mpp=slide.mpp[0] * 3, pad=True)
        assert plan and any(spec.read_size != spec.shape for spec in plan)
        parallel = list(slide.read_plan(plan, workers=3, resampling=resampling))
        sequential = list(slide.read_plan(plan, workers=1, resampling=resampling))
        for spec, a, b in zip(plan, parallel, sequential, strict=True):
            expected = resample_area(slide.extract_region(spec.read_location, spec.read_size, level=spec.level), spec.shape)
            np.testing.assert_array_equal(a.image, b.image)
            if resampling == "exact":
                np.testing.assert_array_equal(a.image, expected)
            else:  # decoded at 1/2, then 1.5 x area means: close to the exact means, not equal
                assert np.abs(a.image.astype(int) - expected).mean() < 3


@pytest.fixture(scope="module")
def gray16(tmp_path_factory):
    """A tiled uint16 grayscale TIFF of (300, 410), tiles 64."""
    import tifffile

    rng = np.random.default_rng(11)
    image = rng.integers(0, 65535, size=(300, 410), dtype=np.uint16)
    path = tmp_path_factory.mktemp("gray16") / "gray16.tif"
    tifffile.imwrite(path, image, tile=(64, 64), compression="zlib")
    return str(path), image


@pytest.mark.parametrize("normalize", [False, True])
def test_non_rgb_tiles_in_parallel_equal_extract_region(gray16, normalize):
    path, image = gray16
    with wsikit.open_slide(path) as slide:
        assert not slide.is_rgb
        for grid in (dict(shape=64), dict(shape=100, stride=70, pad=True)):
            parallel = list(slide.generate_tiles(workers=4, normalize=normalize, **grid))
            sequential = list(slide.generate_tiles(workers=1, normalize=normalize, **grid))
            for a, b in zip(parallel, sequential, strict=True):
                expected = slide.extract_region(a.coords, a.image.shape[:2], normalize=normalize)
                assert a.image.dtype == (np.uint8 if normalize else np.uint16)
                assert a.image.shape[2:] == (1, 1, 1)
                np.testing.assert_array_equal(a.image, b.image)
                np.testing.assert_array_equal(a.image, expected)
                raw = padded_box(image, *a.coords, *a.image.shape[:2])
                np.testing.assert_array_equal(a.image[..., 0, 0, 0], (raw >> 8).astype(np.uint8) if normalize else raw)


@pytest.mark.parametrize("grid", [dict(shape=256), dict(shape=224, stride=150, pad=True),
                                  dict(shape=100, pad=True, level=1), dict(shape=64, mpp=1.0, pad=True)])
def test_a_plans_use_counts_equal_a_count_of_its_boxes(svs, grid):
    """Use counts taken from a plan's arrays equal those counted box by box (they decide
    which native tiles the reader keeps), boxes partly and wholly outside the level included."""
    from wsikit.reader import count_uses
    from wsikit.reader.stream import plan_uses as _plan_uses

    slide = wsikit.open_slide(svs[0])
    plan = slide.tile_plan(**grid)
    level_grid = slide._level_grid(plan.level)
    h, w = level_grid.shape
    boxes = []
    for spec in plan:
        (i, j), (bh, bw) = spec.read_location, spec.read_size
        i0, j0, i1, j1 = max(i, 0), max(j, 0), min(i + bh, h), min(j + bw, w)
        boxes.append((level_grid, i0, j0, i1, j1) if i0 < i1 and j0 < j1 else None)
    expected = count_uses(boxes)
    got = _plan_uses(plan, level_grid)
    assert got.keys() == expected.keys()
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key])


def test_tiles_of_a_plan_and_of_its_list_are_the_same(svs):
    """A Plan is read through the trusted fast path; a list of its TileSpecs through the checked one."""
    slide = wsikit.open_slide(svs[0])
    plan = slide.tile_plan(200, stride=170, pad=True, level=1, tissue_mask=True)
    fast = list(slide.read_plan(plan))
    checked = list(slide.read_plan(list(plan)))
    assert len(fast) == len(checked) == len(plan)
    for a, b in zip(fast, checked):
        assert (a.coords, a.level, a.coords0, a.mpp, a.tissue, a.name, a.masks, a.labels) == \
               (b.coords, b.level, b.coords0, b.mpp, b.tissue, b.name, b.masks, b.labels)
        np.testing.assert_array_equal(a.image, b.image)
    with pytest.raises(TypeError, match="coords"):
        bad = [wsikit.TileSpec((0.5, 0), 0, (0, 0), (8, 8), (8, 8), (0, 0))]
        list(slide.read_plan(bad))


def test_a_failing_iterable_of_locations_gives_the_regions_before_it(svs):
    """Counting uses ahead pulls locations early; the regions before a failure still come first."""
    path, levels = svs

    def locations():
        for k in range(40):
            yield (k, 2 * k)
        raise RuntimeError("the caller's generator broke")

    with wsikit.open_slide(path) as slide:
        got = []
        with pytest.raises(RuntimeError, match="generator broke"):
            for region in slide.read_regions(locations(), 16, workers=2):
                got.append(region)
        assert len(got) == 40
        np.testing.assert_array_equal(got[-1], levels[0][39:55, 78:94])
