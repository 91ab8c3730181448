"""One small synthetic slide per backend, for the corpus, the fuzzer, the thread tests and
the backend contract tests.

A backend takes part when it can be imported and there is a way to write a file it
reads: the TIFF family (tiff, openslide, bioformats) reads an Aperio-style pyramid from
:func:`wsikit.samples.svs.write_sample_svs`; the DICOM backend a series from
:func:`wsikit.samples.dicom.write_dicom_series`. Bio-Formats also needs a Java runtime
and its jar; it is left out, saying why, when they are missing.
"""
from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field

TIFF_FAMILY = ("tiff", "openslide", "bioformats")
SVS_SHAPE, SVS_TILE = (512, 768), 128


@dataclass
class Sample:
    """A sample slide written for ``backend``."""

    backend: str
    path: str  # what open_slide is given (a file, or a DICOM series folder)
    tile_shapes: dict[str, list[int]]  # level (as a str: the fuzzer's JSON key) -> native tile [h, w]
    files: list[str] = field(default_factory=list)  # the files to break, one at a time


def backend_unavailable(name: str) -> str | None:
    """Why ``name`` cannot take part here, or None when it can."""
    modules = {"tiff": ["wsikit.backends.tiff"], "openslide": ["wsikit.backends.openslide", "openslide"],
               "dicom": ["wsikit.backends.dicom", "wsikit.samples.dicom"],
               "bioformats": ["wsikit.backends.bioformats", "wsikit.backends.bioformats.java", "jpype"]}.get(name)
    if modules is None:
        return f"no sample file generator for backend {name!r}"
    for module in modules:
        try:
            importlib.import_module(module)
        except Exception as exc:  # noqa: BLE001 - any import failure means "not here"
            return f"{module} cannot be imported: {type(exc).__name__}: {exc}"
    if name == "bioformats":
        from wsikit.backends.bioformats import java
        from wsikit.errors import BackendUnavailableError

        try:
            java.bioformats_jar()
            java.jvm_library()
        except BackendUnavailableError as exc:
            return exc.reason
    return None


def available_backends() -> list[str]:
    """The registered backends that can take part here, in registry order."""
    from wsikit.backends import backend_names

    return [name for name in backend_names() if backend_unavailable(name) is None]


def write_sample(backend: str, folder: str | os.PathLike[str]) -> Sample:
    """A small multi-level slide that ``backend`` reads, written under ``folder``."""
    folder = os.fspath(folder)
    os.makedirs(folder, exist_ok=True)
    if backend in TIFF_FAMILY:
        from wsikit.samples.svs import write_sample_svs

        path = os.path.join(folder, "sample.svs")
        if not os.path.exists(path):
            write_sample_svs(path, shape=SVS_SHAPE, factors=(4,), tile=SVS_TILE)
        return Sample(backend, path, {"0": [SVS_TILE, SVS_TILE], "1": [SVS_TILE, SVS_TILE]}, [path])
    if backend == "dicom":
        from wsikit.samples.dicom import write_dicom_series

        series = os.path.join(folder, "dicom-series")
        sample = write_dicom_series(series, shape=SVS_SHAPE, tile=SVS_TILE, factors=(4,))
        tiles = {str(k): list(sample.tile) for k in range(len(sample.levels))}
        return Sample(backend, series, tiles, list(sample.level_files))
    raise ValueError(f"no sample file generator for backend {backend!r}")
