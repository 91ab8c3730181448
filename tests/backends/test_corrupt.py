"""Broken files: every outcome is a clean wsikit error or correct pixels.

A corpus of broken copies of real and synthetic slides (truncated at several points,
bytes flipped in headers and tile data, zeroed and lying offsets and byte counts, IFD
chains that loop, oversized declarations, decompression bombs) is read by a sandboxed
worker process (:mod:`fuzz.sandbox`) under a timeout and an address-space limit, with
wsikit's own limit set well below it. A case fails on a signal, a hang, an exhausted
address space, a raw library exception, an error that does not name the file, a bad tile
that reads on the second try, or a tile the damage cannot have touched that reads other
pixels than in the intact file. Cases run many to a worker, so the corpus stays fast.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

import wsikit
from fuzz import craft
from fuzz.mutate import Mutation, TiffLayout, dicom_corpus, tiff_corpus
from fuzz.sandbox import BAD_OUTCOMES, Case, Sandbox, describe
from tests.helpers import TESTDATA
from wsikit.samples.backends import backend_unavailable, write_sample

BIOFORMATS_SANDBOX = dict(address_space=4 * 1024**3, env={"WSIKIT_JVM_HEAP": "512m"})


def _available(name: str) -> bool:
    return backend_unavailable(name) is None


def _tiff_backends() -> list[str]:
    return [b for b in ("tiff", "openslide") if _available(b)]


# -- sources: synthetic files written here, real ones from ../shared/testdata ----------------
@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, str]:
    import tifffile

    folder = tmp_path_factory.mktemp("sources")
    out = {"sample.svs": write_sample(("tiff"), folder).path}
    data, _ = craft.small_tiled_rgb((96, 160), (32, 32))
    (folder / "tiled-deflate.tif").write_bytes(data)
    out["tiled-deflate.tif"] = str(folder / "tiled-deflate.tif")
    rng = np.random.default_rng(3)
    gray = rng.integers(0, 65535, size=(120, 90), dtype=np.uint16)
    tifffile.imwrite(folder / "strips-uint16.tif", gray, rowsperstrip=16, compression="zlib")
    out["strips-uint16.tif"] = str(folder / "strips-uint16.tif")
    rgb = rng.integers(0, 255, size=(200, 300, 3), dtype=np.uint8)
    with tifffile.TiffWriter(folder / "bigtiff.tif", bigtiff=True) as tif:
        tif.write(rgb, tile=(64, 64), compression="jpeg", photometric="rgb", subifds=1)
        tif.write(rgb[::2, ::2], tile=(64, 64), compression="jpeg", photometric="rgb", subfiletype=1)
    out["bigtiff.tif"] = str(folder / "bigtiff.tif")
    for name in ("small_HE_levels.tiff", "smalltif.tif", "small_vectra.qptiff", "small_HE.svs"):
        if (TESTDATA / name).exists():
            out[name] = str(TESTDATA / name)
    return out


# (source, backends, options for tiff_corpus, keep(mutation name), max tiles per level)
_FULL = dict(random_flips=6)
TIFF_GROUPS = [
    ("sample.svs", ("tiff", "openslide", None), _FULL, None, 400),
    ("tiled-deflate.tif", ("tiff", "openslide"), _FULL, None, 400),
    ("strips-uint16.tif", ("tiff",), _FULL, None, 400),
    ("bigtiff.tif", ("tiff", "openslide"), _FULL, None, 400),
    ("small_HE_levels.tiff", ("tiff", "openslide"), _FULL, None, 400),
    ("smalltif.tif", ("tiff",), _FULL, None, 400),
    ("small_vectra.qptiff", ("tiff",), dict(random_flips=2), None, 100),
    # The largest real slide: the kinds of damage once each, a few tiles per level.
    ("small_HE.svs", ("tiff", "openslide"), dict(random_flips=2),
     lambda name: name.startswith(("truncate", "header", "loop", "segment0-", "all-", "structure", "tag-width", "tag-tilewidth")), 24),
]


def _write_cases(mutations: list[Mutation], folder: Path, stem: str, suffix: str = "") -> list[tuple[Mutation, str]]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for k, mutation in enumerate(mutations):
        # No slide suffix: open_slide's search then never reaches the Bio-Formats backend,
        # which matches names, and starting a JVM per case is not what is tested here.
        path = folder / f"{stem}.{k:03d}{suffix}"
        path.write_bytes(mutation.data)
        out.append((mutation, str(path)))
    return out


def _judge(sandbox: Sandbox, cases, backends, tile_shapes, reference_path, max_tiles) -> list[str]:
    """Run every case with every backend; the descriptions of all failures."""
    failures = []
    references = {}
    for backend in backends:
        ref = sandbox.run(Case(f"reference:{backend}", reference_path, backend, tile_shapes, max_tiles))
        assert ref["outcome"] == "ok", describe(ref)
        references[backend] = ref
    for mutation, path in cases:
        for backend in backends:
            result = sandbox.run(Case(f"{mutation.name}:{backend}", path, backend, tile_shapes, max_tiles))
            ref = references[backend]
            messages = []
            if result["outcome"] in BAD_OUTCOMES:
                messages.append(describe(result))
            elif (result["outcome"] == "ok" and result.get("levels") == ref.get("levels")
                  and mutation.expects(backend)):
                for key in sorted(mutation.intact):
                    if key in ref["tiles"] and result["tiles"].get(key) != ref["tiles"][key]:
                        why = result["skipped"].get(key, "other pixels")
                        messages.append(f"{mutation.name}:{backend}: untouched tile {key} changed: {why}")
                        break
                for key in sorted(mutation.broken):
                    if key in result["tiles"]:
                        messages.append(f"{mutation.name}:{backend}: tile {key} with no data read without error")
                        break
            failures += messages
    return failures


@pytest.mark.parametrize("group", TIFF_GROUPS, ids=[g[0] for g in TIFF_GROUPS])
def test_broken_tiff_files(group, sources, tmp_path):
    name, backends, options, keep, max_tiles = group
    if name not in sources:
        pytest.skip(f"real test slide {name} not found in {TESTDATA}")
    backends = [b for b in backends if b is None or _available(b)]
    path = sources[name]
    data = Path(path).read_bytes()
    mutations = [m for m in tiff_corpus(data, path, seed=len(name), **options) if keep is None or keep(m.name)]
    tile_shapes = TiffLayout(data, path).tile_shapes
    cases = _write_cases(mutations, tmp_path, Path(name).stem)
    with Sandbox() as sandbox:
        failures = _judge(sandbox, cases, backends, tile_shapes, path, max_tiles)
    assert not failures, f"{len(failures)} of {len(cases) * len(backends)} cases failed:\n" + "\n".join(failures[:12])


def test_broken_dicom_files(tmp_path):
    """Level files of a synthetic series broken one at a time, and the real one-file slide."""
    if not _available("dicom"):
        pytest.skip(backend_unavailable("dicom"))
    import shutil

    sample = write_sample("dicom", tmp_path / "intact")
    groups = [("series", sample.files[0], sample.path)]
    if (TESTDATA / "small_dicom.dcm").exists():
        groups.append(("file", str(TESTDATA / "small_dicom.dcm"), None))
    failures, count = [], 0
    with Sandbox() as sandbox:
        for label, source, series in groups:
            for k, mutation in enumerate(dicom_corpus(Path(source).read_bytes(), seed=len(label))):
                case = tmp_path / label / f"{k:03d}"
                if series is not None:  # the series with this one file broken
                    shutil.copytree(series, case)
                    (case / Path(source).name).write_bytes(mutation.data)
                    path = str(case)
                else:
                    case.mkdir(parents=True)
                    path = str(case / "slide.dcm")
                    Path(path).write_bytes(mutation.data)
                count += 1
                result = sandbox.run(Case(f"{label}:{mutation.name}", path, "dicom", sample.tile_shapes, 100))
                if result["outcome"] in BAD_OUTCOMES:
                    failures.append(describe(result))
    assert not failures, f"{len(failures)} of {count} cases failed:\n" + "\n".join(failures[:12])


def test_broken_files_through_bioformats(sources, tmp_path):
    """A slice of the TIFF corpus through Bio-Formats (a JVM, so fewer cases, more memory)."""
    if not _available("bioformats"):
        pytest.skip(backend_unavailable("bioformats"))
    path = sources["sample.svs"]
    data = Path(path).read_bytes()
    wanted = ("truncate@", "header-", "loop-", "segment0-", "tag-width", "tag-tilewidth", "all-")
    mutations = [m for m in tiff_corpus(data, path, random_flips=0) if m.name.startswith(wanted)]
    cases = _write_cases(mutations, tmp_path, "sample", ".svs")  # Bio-Formats goes by the name
    with Sandbox(timeout=60, **BIOFORMATS_SANDBOX) as sandbox:
        failures = _judge(sandbox, cases, ["bioformats"], TiffLayout(data, path).tile_shapes, path, 100)
    # Crashes, hangs and raw exceptions fail the test. What Bio-Formats does with broken
    # tiles (reads some as if intact, fails good neighbours of a bad one, does not check
    # JPEG headers against the limit) is its backend's to settle: reported, not failed.
    hard = [f for f in failures if not _is_soft(f)]
    assert not hard, f"{len(hard)} of {len(cases)} cases failed:\n" + "\n".join(hard[:12])
    if failures:
        pytest.xfail(f"Bio-Formats breaks {len(failures)} pixel promises on broken files, e.g. " + "; ".join(f.splitlines()[0] for f in failures[:4]))


def _is_soft(failure: str) -> bool:
    lines = failure.splitlines()
    if "untouched tile" in lines[0] or "with no data read without error" in lines[0]:
        return True
    return lines[0].endswith(": problem") and all("read once, then failed" in line for line in lines[1:2])


# -- the promises, one by one -------------------------------------------------------------------
@pytest.fixture(scope="module")
def crafted(tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("crafted")
    files = {
        "tile-bomb": craft.tile_bomb(10**6),
        "strip-bomb": craft.strip_bomb(10**6),
        "jpeg-sof-bomb": craft.jpeg_sof_bomb((256, 256), (65500, 65500)),
        "jpeg-sof-mismatch": craft.jpeg_sof_bomb((256, 256), (512, 512)),
        "ifd-loop": craft.ifd_loop(),
        "ifd-self-loop": craft.ifd_loop(self_loop=True),
    }
    out = {}
    for name, data in files.items():
        (folder / name).write_bytes(data)
        out[name] = str(folder / name)
    return out


@pytest.fixture(scope="module")
def sandbox():
    # wsikit's default limit in the worker, so that the bombs meet the limit users get.
    with Sandbox(max_bytes=wsikit.limits.DEFAULT_MAX_BYTES, address_space=6 * 1024**3) as box:
        yield box


def _errors(result) -> str:
    assert result["outcome"] not in BAD_OUTCOMES, describe(result)
    return "\n".join(list(result["errors"].values()) + list(result["skipped"].values()))


def test_tile_declaring_a_trillion_pixels_is_refused(crafted, sandbox):
    """A file of a few hundred bytes whose one tile declares 10^6 x 10^6 RGB pixels."""
    for backend in [None] + _tiff_backends():
        result = sandbox.run(Case(f"tile-bomb:{backend}", crafted["tile-bomb"], backend))
        errors = _errors(result)
        assert result["outcome"] == "error" and not result["tiles"], describe(result)
        if backend != "tiff":  # the TIFF backend leaves single huge tiles to OpenSlide
            assert errors.startswith("LimitError") and "over the limit" in errors, errors


def test_strip_declaring_a_trillion_pixels_is_refused(crafted, sandbox):
    result = sandbox.run(Case("strip-bomb", crafted["strip-bomb"], "tiff"))
    assert result["outcome"] == "error", describe(result)
    assert result["errors"]["open"].startswith("LimitError"), result["errors"]


def test_jpeg_tile_whose_header_declares_65500_squared_is_refused(crafted, sandbox):
    result = sandbox.run(Case("sof-bomb", crafted["jpeg-sof-bomb"], "tiff"))
    errors = _errors(result)
    assert result["errors"]["probe"].startswith("LimitError"), errors
    assert "65500" in result["errors"]["probe"] and "JPEG header" in result["errors"]["probe"]
    if _available("openslide"):
        result = sandbox.run(Case("sof-bomb-openslide", crafted["jpeg-sof-bomb"], "openslide"))
        assert result["errors"]["probe"].startswith(("LimitError", "CorruptSlideError")), _errors(result)


def test_jpeg_tile_of_another_size_than_the_tile_is_corrupt(crafted, sandbox):
    result = sandbox.run(Case("sof-mismatch", crafted["jpeg-sof-mismatch"], "tiff"))
    assert result["errors"]["probe"].startswith("CorruptSlideError"), _errors(result)
    assert "512 x 512" in result["errors"]["probe"] and "256 x 256" in result["errors"]["probe"]


@pytest.mark.parametrize("name", ["ifd-loop", "ifd-self-loop"])
def test_looping_ifd_chains_end(crafted, sandbox, name):
    """tifffile finds some loops only; the chain is walked first, so none hangs."""
    result = sandbox.run(Case(name, crafted[name], "tiff"))
    if name == "ifd-loop":
        assert result["outcome"] == "error" and "loops" in result["errors"]["open"], describe(result)
    else:
        assert result["outcome"] in ("ok", "error"), describe(result)
    for backend in [None, "openslide"]:
        assert sandbox.run(Case(f"{name}:{backend}", crafted[name], backend))["outcome"] in ("ok", "error")


def test_ifd_chain_walk(tmp_path, crafted):
    from wsikit.tiff_structure import ifd_chain_problem

    assert "loops" in ifd_chain_problem(crafted["ifd-loop"])
    assert "loops" in ifd_chain_problem(crafted["ifd-self-loop"])
    data, _ = craft.small_tiled_rgb()
    (tmp_path / "ok.tif").write_bytes(data)
    assert ifd_chain_problem(str(tmp_path / "ok.tif")) is None
    (tmp_path / "short.tif").write_bytes(data[:6])
    assert ifd_chain_problem(str(tmp_path / "short.tif")) is None  # tifffile reports that one


# -- in-process checks (no memory at risk: nothing here declares more than it holds) -------------
@pytest.fixture(scope="module")
def one_bad_tile(tmp_path_factory):
    """The sample slide with level-0 tile (1, 2) pointing past the end of the file."""
    folder = tmp_path_factory.mktemp("one-bad-tile")
    sample = write_sample("tiff", folder)
    data = bytearray(Path(sample.path).read_bytes())
    layout = TiffLayout(bytes(data), sample.path)
    cols = -(-768 // 128)
    seg = next(s for s in layout.segments if s.level == 0 and s.index == 1 * cols + 2)
    layout.patch_int(data, seg.offsets_at, seg.field_size, len(data) + 4096)
    path = folder / "one-bad-tile.svs"
    path.write_bytes(bytes(data))
    return sample.path, str(path), (128, 256)


@pytest.mark.parametrize("backend", ["tiff", "openslide"])
def test_bad_tile_fails_every_time_and_others_still_read(one_bad_tile, backend):
    if not _available(backend):
        pytest.skip(backend_unavailable(backend))
    intact_path, broken_path, bad = one_bad_tile
    with wsikit.open_slide(intact_path, backend=backend) as intact, wsikit.open_slide(broken_path, backend=backend) as slide:
        for _ in range(3):
            with pytest.raises(wsikit.CorruptSlideError) as info:
                slide.extract_region(bad, (128, 128))
            assert info.value.path == broken_path and info.value.reason
            for location in [(0, 0), (128, 384), (384, 640)]:  # good tiles, also after the error
                assert np.array_equal(slide.extract_region(location, (128, 128)), intact.extract_region(location, (128, 128)))
        # A region overlapping the bad tile fails; one beside it does not.
        with pytest.raises(wsikit.CorruptSlideError):
            slide.extract_region((100, 200), (64, 100))
        assert np.array_equal(slide.extract_region((100, 100), (64, 100)), intact.extract_region((100, 100), (64, 100)))


@pytest.mark.parametrize("backend", ["tiff", "openslide"])
@pytest.mark.parametrize("workers", [1, 4])
def test_generate_tiles_skip_reports_and_raise_stops(one_bad_tile, backend, workers):
    if not _available(backend):
        pytest.skip(backend_unavailable(backend))
    intact_path, broken_path, bad = one_bad_tile
    with wsikit.open_slide(broken_path, backend=backend) as slide, wsikit.open_slide(intact_path, backend=backend) as intact:
        with pytest.raises(wsikit.CorruptSlideError):
            list(slide.generate_tiles(shape=128, workers=workers))  # errors="raise" is the default
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            stream = slide.generate_tiles(shape=128, workers=workers, errors="skip")
            tiles = list(stream)
        expected = {t.coords: t.image for t in intact.generate_tiles(shape=128, workers=workers)}
        assert [t.coords for t in tiles] == [c for c in expected if c != bad]
        for tile in tiles:
            assert np.array_equal(tile.image, expected[tile.coords])
        assert [coords for coords, _ in stream.skipped_tiles] == [bad]
        assert broken_path in stream.skipped_tiles[0][1]
        with pytest.deprecated_call():  # the slide's own list, kept for earlier callers
            assert slide.skipped_tiles == stream.skipped_tiles
        skipped = [w for w in caught if issubclass(w.category, wsikit.SkippedTileWarning)]
        assert len(skipped) == 1 and str(bad) in str(skipped[0].message)
        with pytest.raises(ValueError, match="errors"):
            slide.generate_tiles(shape=128, errors="ignore")


def test_openslide_threads_beside_a_bad_tile_read_their_own_tiles(one_bad_tile):
    """An OpenSlide handle fails every read after one error; no good read may fail with it."""
    if not _available("openslide"):
        pytest.skip(backend_unavailable("openslide"))
    from concurrent.futures import ThreadPoolExecutor

    intact_path, broken_path, bad = one_bad_tile
    good = [(i, j) for i in range(0, 512, 128) for j in range(0, 768, 128) if (i, j) != bad]
    with wsikit.open_slide(broken_path, backend="openslide") as slide, wsikit.open_slide(intact_path, backend="openslide") as intact:
        expected = {loc: intact.extract_region(loc, (128, 128)) for loc in good}

        def read(loc):
            try:
                return loc, slide.extract_region(loc, (128, 128))
            except wsikit.CorruptSlideError as exc:
                return loc, exc

        jobs = (good + [bad] * 6) * 3
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(read, jobs))
    for loc, value in results:
        if loc == bad:
            assert isinstance(value, wsikit.CorruptSlideError)
        else:
            assert isinstance(value, np.ndarray), f"good tile {loc} failed beside the bad one: {value}"
            assert np.array_equal(value, expected[loc])


def test_zero_byte_count_reads_as_an_empty_tile(tmp_path):
    """A tile the file stores no bytes for reads as zeros (as tifffile and libtiff read it)."""
    data, image = craft.small_tiled_rgb((64, 96), (32, 32))
    path = tmp_path / "sparse.tif"
    path.write_bytes(data)
    buf = bytearray(data)
    layout = TiffLayout(data, str(path))
    seg = layout.segments[4]
    layout.patch_int(buf, seg.counts_at, seg.counts_size, 0)
    path.write_bytes(bytes(buf))
    with wsikit.open_slide(path, backend="tiff") as slide:
        region = slide.extract_region((0, 0), (64, 96))
    expected = image.copy()
    expected[32:64, 32:64] = 0
    assert np.array_equal(region, expected)


def test_memory_and_library_errors_never_leak(sample_svs, monkeypatch):
    import imagecodecs

    with wsikit.open_slide(sample_svs, backend="tiff") as slide:
        for error in (MemoryError(), imagecodecs.JpegError("broken"), OSError(5, "I/O error"), KeyError("x")):
            def fail(*args, error=error, **kwargs):
                raise error
            monkeypatch.setattr(slide, "_read_region", fail)
            with pytest.raises(wsikit.CorruptSlideError) as info:
                slide.extract_region((0, 0), (10, 10))
            assert info.value.path == sample_svs
        monkeypatch.undo()
        assert slide.extract_region((0, 0), (10, 10)).shape == (10, 10, 3)
