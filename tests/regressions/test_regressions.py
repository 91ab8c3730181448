"""Every file in this folder once crashed, hung or misled wsikit; each must now end cleanly.

Each file is read, with every backend that takes part, by the sandboxed worker of
:mod:`fuzz.sandbox` (timeout, address-space limit): the outcome must be a clean error or
correct pixels. Files named in ``EXPECTED`` also have the error they must give. Files the
fuzzer finds (``make fuzz``) land in ``found/`` and are picked up here as they are; see
README.md in this folder for where each named file comes from.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from fuzz.sandbox import BAD_OUTCOMES, Case, Sandbox, describe
from wsikit.samples.backends import backend_unavailable

HERE = Path(__file__).resolve().parent

SUFFIXES = {".tif", ".tiff", ".svs", ".dcm", ".ndpi", ".qptiff", ".bin"}
# file -> {backend: (step, start of the error it must give)}; backend None = open_slide's search.
EXPECTED = {
    # tifffile walked this chain (page 1 -> page 0) forever while listing series.
    "ifd-chain-loops-back.tif": {"tiff": ("open", "CorruptSlideError: the chain of IFDs loops")},
    # A level 0 pixels wide: ZeroDivisionError in level_downsamples.
    "level-of-zero-width.tif": {"tiff": ("open", "CorruptSlideError: a level has no pixels")},
    # PlanarConfiguration 3: tiles decoded to one channel, broadcast into RGB.
    "planar-config-3-jpeg.svs": {"tiff": ("probe", "CorruptSlideError")},
    # OpenSlide allocated the 2 GiB byte count and aborted the process (GLib-ERROR).
    "tile-byte-count-2gib.svs": {"openslide": ("probe", "CorruptSlideError: native tile (0, 0) of level 0 cannot be read"),
                                 "tiff": ("probe", "CorruptSlideError")},
    # tifffile read the cut-off strips of the macro image as zeros, silently.
    "truncated-macro.svs": {"tiff": ("associated macro", "CorruptSlideError")},
    # A 170-byte file whose one tile declares 10^6 x 10^6 pixels: OpenSlide aborted.
    "tile-declares-1e6-squared.tif": {None: ("open", "LimitError"), "openslide": ("open", "LimitError")},
    # The tile's own JPEG header declares 65,500 x 65,500: 12 GiB allocated before decoding.
    "jpeg-header-declares-65500-squared.tif": {"tiff": ("probe", "LimitError")},
    # Found by the fuzzer: tifffile raised a raw ValueError seeking to an offset past 2^63.
    "offset-too-large-to-seek.tif": {"tiff": ("open", "CorruptSlideError")},
    # Found by the fuzzer: the DICOM backend refuses it, then open_slide's search handed it
    # to OpenSlide, whose DICOM parser segfaults (OpenSlide 4.0.1). No longer handed on,
    # and OpenSlideBackend (even forced) lets wsikit's DICOM reader look at it first.
    "openslide-segfaults-on-this-dicom.dcm": {
        "dicom": ("open", "CorruptSlideError: the basic offset table points outside"),
        "openslide": ("open", "CorruptSlideError: not handed to OpenSlide"),
    },
}


def _files() -> list[Path]:
    return sorted(p for p in HERE.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)


def _backends(path: Path) -> list:
    names = [None, "tiff", "openslide"]
    if path.suffix.lower() == ".dcm":
        names = [None, "dicom", "openslide"]
    return [b for b in names if b is None or backend_unavailable(b) is None]


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(max_bytes=2 * 1024**3, address_space=6 * 1024**3) as box:
        yield box


def test_the_named_files_are_here():
    missing = [name for name in EXPECTED if not (HERE / name).is_file()]
    assert not missing, f"regression files missing: {missing}"


@pytest.mark.parametrize("path", _files(), ids=lambda p: str(p.relative_to(HERE)))
def test_regression_file_ends_cleanly(sandbox, path):
    expected = EXPECTED.get(path.name, {})
    for backend in _backends(path):
        result = sandbox.run(Case(f"{path.name}:{backend}", str(path), backend, None, 100))
        assert result["outcome"] not in BAD_OUTCOMES, describe(result)
        if backend in expected:
            step, start = expected[backend]
            got = result["errors"].get(step, "")
            assert got.startswith(start), f"{path.name} with {backend}: {step} gave {got!r}, expected {start!r}...\n{describe(result)}"


@pytest.mark.parametrize("workers", [1, 3])
def test_tiles_of_the_wrong_channel_count_fail_on_every_read_path(workers):
    """The streaming tile path too: a one-channel tile must not be broadcast into RGB."""
    import warnings

    import wsikit

    path = HERE / "planar-config-3-jpeg.svs"
    with wsikit.open_slide(path, backend="tiff") as slide, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stream = slide.generate_tiles(shape=64, workers=workers, errors="skip")
        tiles = list(stream)
        assert not tiles and len(stream.skipped_tiles) == 6
        assert all("decoded to shape" in reason for _, reason in stream.skipped_tiles)
        with pytest.raises(wsikit.CorruptSlideError):
            list(slide.read_regions([(0, 0), (10, 70)], (50, 50), workers=workers))
