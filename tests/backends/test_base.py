"""What the base class promises for every backend: option checks, per-call skipped tiles,
the metadata properties it writes, checked TileSpecs, and the opener's fallback policy."""
from __future__ import annotations

import threading
import warnings

import numpy as np
import pytest
import tifffile

import wsikit
from wsikit.backends import backend_names, register_backend
from wsikit.backends.base import SlideBackend
from wsikit.opener import NOT_AFTER, VETTED_BY, candidates
from wsikit.samples.svs import write_sample_svs


@pytest.fixture(scope="module")
def broken_svs(tmp_path_factory) -> tuple[str, tuple[int, int]]:
    """A sample pyramid whose level-0 tile (1, 2) holds garbage; its tile coords at 128 px."""
    path = tmp_path_factory.mktemp("broken") / "broken.svs"
    write_sample_svs(path, shape=(512, 768), factors=(4,), tile=128)
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        offset, count = int(page.dataoffsets[1 * 6 + 2]), int(page.databytecounts[1 * 6 + 2])
    with open(path, "r+b") as f:
        f.seek(offset + 2)
        f.write(b"\x00" * (count - 2))
    return str(path), (128, 256)


@pytest.mark.filterwarnings("ignore::wsikit.SkippedTileWarning")  # catch_warnings is not thread-safe
def test_skipped_tiles_belong_to_each_call_even_on_two_threads(broken_svs):
    path, bad = broken_svs
    with wsikit.open_slide(path) as slide:
        streams = {}
        errors = []
        barrier = threading.Barrier(2)

        def tile(name: str, shape: int) -> None:
            try:
                stream = slide.generate_tiles(shape=shape, errors="skip", workers=2)
                barrier.wait()
                tiles = list(stream)
                streams[name] = (stream, tiles)
            except Exception as exc:  # reported below, in the test's thread
                errors.append(exc)

        threads = [threading.Thread(target=tile, args=("a", 128)), threading.Thread(target=tile, args=("b", 64))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors
        stream_a, tiles_a = streams["a"]
        stream_b, tiles_b = streams["b"]
        # 128-pixel tiles: the bad native tile is one tile; 64-pixel tiles: four of them.
        assert [coords for coords, _ in stream_a.skipped_tiles] == [bad]
        assert sorted(coords for coords, _ in stream_b.skipped_tiles) == [(128, 256), (128, 320), (192, 256), (192, 320)]
        assert all(path in reason for _, reason in stream_a.skipped_tiles + stream_b.skipped_tiles)
        assert len(tiles_a) == 4 * 6 - 1 and len(tiles_b) == 8 * 12 - 4


def test_slide_skipped_tiles_is_deprecated_and_per_thread(broken_svs):
    path, bad = broken_svs
    with wsikit.open_slide(path) as slide:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", wsikit.SkippedTileWarning)
            list(slide.generate_tiles(shape=128, errors="skip"))
        with pytest.warns(DeprecationWarning, match="skipped_tiles"):
            assert [coords for coords, _ in slide.skipped_tiles] == [bad]
        seen = []
        thread = threading.Thread(target=lambda: seen.append(_quiet_skipped(slide)))
        thread.start()
        thread.join()
        assert seen == [[]]  # another thread started no tiling of its own


def _quiet_skipped(slide: SlideBackend) -> list:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return list(slide.skipped_tiles)


def test_errors_raise_stops_at_the_bad_tile_and_names_the_file(broken_svs):
    path, bad = broken_svs
    with wsikit.open_slide(path) as slide:
        tiles = slide.generate_tiles(shape=128, workers=2)
        read = []
        with pytest.raises(wsikit.CorruptSlideError) as info:
            for tile in tiles:
                read.append(tile.coords)
        assert info.value.path == path
        assert read == [(0, j) for j in range(0, 768, 128)] + [(128, 0), (128, 128)]
        with pytest.raises(ValueError, match="errors"):
            slide.generate_tiles(shape=128, errors="ignore")


def test_unknown_options_are_refused_by_name(sample_svs):
    with pytest.raises(TypeError, match="unexpected options for TiffBackend: colour"):
        wsikit.open_slide(sample_svs, backend="tiff", colour="blue")
    with wsikit.open_slide(sample_svs, backend="tiff") as slide:
        with pytest.raises(TypeError, match=r"TiffBackend.extract_region: optical_path"):
            slide.extract_region((0, 0), (8, 8), optical_path="x")
        with pytest.raises(TypeError, match="optical_path"):
            list(slide.generate_tiles(shape=64, optical_path="x"))


def test_resolution_properties_are_written_once_for_every_format(sample_svs):
    with wsikit.open_slide(sample_svs) as slide:
        assert slide.mpp is not None
        props = slide.properties
        assert float(props["wsikit.mpp-y"]) == slide.mpp[0] and float(props["wsikit.mpp-x"]) == slide.mpp[1]
        if slide.objective_power is not None:
            assert float(props["wsikit.objective-power"]) == slide.objective_power
        with pytest.raises(TypeError):
            props["wsikit.mpp-x"] = "1"  # type: ignore[index]


def test_dimensions_is_deprecated_for_shape(sample_svs):
    with wsikit.open_slide(sample_svs) as slide:
        assert slide.shape == slide.level_shapes[0] == (1024, 1536)
        with pytest.warns(DeprecationWarning, match="shape"):
            assert slide.dimensions == slide.shape


def test_tilespecs_are_checked_when_made_by_a_caller(sample_svs):
    with pytest.raises(TypeError, match="coords"):
        wsikit.TileSpec((0.5, 0), 0, (0, 0), (8, 8), (8, 8), (0, 0))
    with pytest.raises(ValueError, match="read_size"):
        wsikit.TileSpec((0, 0), 0, (0, 0), (0, 8), (8, 8), (0, 0))
    with pytest.raises(ValueError, match="tissue"):
        wsikit.TileSpec((0, 0), 0, (0, 0), (8, 8), (8, 8), (0, 0), tissue=1.5)
    spec = wsikit.TileSpec((np.int64(3), 4), 0, (3, 4), [8, 8], (8, 8))
    assert spec.coords == (3, 4) and type(spec.coords[0]) is int and spec.read_size == (8, 8)
    with wsikit.open_slide(sample_svs) as slide:
        # Plain tuples of the fields are read as TileSpecs; a level-0 tile without coords0
        # starts at its own coords.
        [tile] = list(slide.read_plan([((3, 4), 0, (3, 4), (8, 8), (8, 8))]))
        assert tile.coords0 == (3, 4)
        np.testing.assert_array_equal(tile.image, slide.extract_region((3, 4), (8, 8)))
        with pytest.raises(ValueError, match="level"):
            list(slide.read_plan([wsikit.TileSpec((0, 0), 9, (0, 0), (8, 8), (8, 8))]))


class _NoPixels(SlideBackend):
    name = "no-pixels"

    @classmethod
    def can_read(cls, path: str) -> bool:
        return True

    def _open(self) -> None:
        self._level_shapes = [(10, 10)]


def test_a_backend_must_say_how_it_reads(sample_svs):
    with pytest.raises(TypeError, match="_grids or define _read_region"):
        _NoPixels(sample_svs)


class DeferringTiff(SlideBackend):
    """Recognises every file, reads none of them, and asks to go last."""

    name = "deferring"
    tried: list[str] = []

    @classmethod
    def can_read(cls, path: str) -> bool:
        return True

    @classmethod
    def defers_to_others(cls, path: str) -> bool:
        return True

    def _open(self) -> None:
        DeferringTiff.tried.append(self.path)
        raise wsikit.UnsupportedFormatError(self.path, "deferring backend reads nothing")


def test_a_backend_that_defers_is_tried_after_the_others(sample_svs, tmp_path):
    before = backend_names()
    register_backend("deferring", __name__, "DeferringTiff", before="tiff")
    try:
        assert backend_names()[0] == "deferring"
        assert list(candidates(sample_svs))[-1] == "deferring"
        DeferringTiff.tried.clear()
        with wsikit.open_slide(sample_svs) as slide:
            assert slide.name == "tiff"
        assert DeferringTiff.tried == []  # never asked to open: the TIFF backend read it
        text = tmp_path / "notes.txt"
        text.write_text("not a slide")
        with pytest.raises(wsikit.UnsupportedFormatError, match="deferring backend reads nothing"):
            wsikit.open_slide(text)
        assert DeferringTiff.tried == [str(text)]
    finally:
        from wsikit.backends import _REGISTRY

        _REGISTRY.pop("deferring", None)
        assert backend_names() == before


def test_the_fallback_policy_is_one_table():
    # The less tolerant readers are vetted, when forced, by exactly the backends that bar them.
    assert VETTED_BY["openslide"] == ("dicom",)
    assert set(VETTED_BY["bioformats"]) == {"dicom", "tiff", "openslide"}
    assert all(name not in after for name, after in NOT_AFTER.items())


def test_a_deferring_backend_still_goes_before_the_readers_it_bars(monkeypatch, sample_svs):
    from wsikit import opener

    recognise = {"tiff": True, "dicom": False, "openslide": False, "bioformats": True}
    monkeypatch.setattr(opener, "backend_names", lambda: ["tiff", "dicom", "openslide", "bioformats"])

    class Fake:
        def __init__(self, name: str) -> None:
            self.name = name

        def can_read(self, path: str) -> bool:
            return recognise[self.name]

        def defers_to_others(self, path: str) -> bool:
            return self.name == "tiff"

    monkeypatch.setattr(opener, "backend_class_or_none", lambda name: Fake(name))
    assert list(candidates(sample_svs)) == ["tiff", "bioformats"]  # bioformats is barred after tiff
    recognise["openslide"] = True
    assert list(candidates(sample_svs)) == ["openslide", "tiff", "bioformats"]
    recognise["bioformats"] = False
    assert list(candidates(sample_svs)) == ["openslide", "tiff"]
