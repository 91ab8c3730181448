"""The plain data of a tiling run: what to cut (:class:`TileOptions`), which slide goes
where (:class:`SlideJob`), a planned slide (:class:`SlidePart`) and what happened to it
(:class:`SlideResult`).

All of them pickle, so that they travel to Dask workers; options compare equal exactly
when they produce the same results, and their JSON form (:meth:`TileOptions.as_json`) is
what a result folder records to recognise its own options on a rerun.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from ..checks import as_int, as_pair
from ..plan import Plan
from ..reader.scaled import DEFAULT_RESAMPLING, check_resampling
from .manifest import plan_digest
from .codecs import CHUNK_CODECS, DEFAULT_CODEC


def label_options(annotations: str | os.PathLike[str] | None, min_label: Mapping[str, float] | None
                  ) -> tuple[str | None, tuple[tuple[str, float], ...] | None]:
    """``annotations`` as an absolute path and ``min_label`` as sorted (class, fraction) pairs."""
    if min_label is not None and annotations is None:
        raise ValueError("min_label needs annotations")
    path = None if annotations is None else os.path.abspath(os.fspath(annotations))
    if min_label is None:
        return path, None
    if not isinstance(min_label, Mapping) or not all(isinstance(v, (int, float)) and 0 <= v <= 1
                                                      for v in min_label.values()):
        raise ValueError(f"min_label must map class names to fractions in [0, 1], got {min_label!r}")
    return path, tuple(sorted((str(k), float(v)) for k, v in min_label.items()))

#: how tiles can be stored: a Zarr array, or one PNG / JPEG file per tile
FORMATS = ("zarr", "png", "jpeg")

#: what happened to a slide: tiled now, found complete, or not done
SlideStatus = Literal["written", "skipped", "failed"]


@dataclass(frozen=True, init=False)
class TileOptions:
    """What to cut from every slide and how to store it (plain data).

    ``shape``/``stride`` are (h, w) pixels (or one int for both) of the frame asked for: a
    ``level``, or the target resolution of ``mpp`` / ``magnification``; at most one of the
    three is given, and without any the level is 0. ``pad`` keeps edge tiles that stick
    out, zero-filled; ``min_tissue`` keeps tiles with at least that tissue fraction;
    ``format`` is ``zarr``, ``png`` or ``jpeg`` (``jpeg_quality`` 1..); ``backend`` forces
    a reader. ``codec`` is the lossless chunk codec of the zarr format (``lz4`` or ``zstd``, see
    :mod:`wsikit.sinks.codecs`); ``passthrough`` lets the jpeg format store the slide's
    own JPEG tiles where the tile grid is the file's (no decoding, no loss; see
    :mod:`wsikit.sinks.writers.passthrough`); ``resampling`` is read_plan's (``fast`` or
    ``exact``). Raises TypeError / ValueError naming a bad argument.
    """

    # The order of the fields is the order of the keys in the Zarr group's attributes.
    shape: tuple[int, int]
    stride: tuple[int, int] | None
    pad: bool
    level: int | None
    mpp: float | None
    magnification: float | None
    min_tissue: float | None
    format: str
    jpeg_quality: int
    backend: str | None
    codec: str
    passthrough: bool
    #: an annotation file or a folder of them matched by stem, and {class: fraction} to keep
    annotations: str | None
    min_label: tuple[tuple[str, float], ...] | None
    #: "fast" (JPEG levels decoded at 1/2, 1/4, 1/8 where tiles are coarser) or "exact" (area means)
    resampling: str

    def __init__(self, shape: int | tuple[int, int] = (256, 256), stride: int | tuple[int, int] | None = None,
                 pad: bool = False, level: int | None = None, mpp: float | None = None,
                 magnification: float | None = None, min_tissue: float | None = None, format: str = "zarr",
                 jpeg_quality: int = 90, backend: str | None = None, codec: str = DEFAULT_CODEC,
                 passthrough: bool = True, annotations: str | os.PathLike[str] | None = None,
                 min_label: Mapping[str, float] | None = None, resampling: str = DEFAULT_RESAMPLING) -> None:
        shape = as_pair(shape, "shape", minimum=1)
        if stride is not None:
            stride = as_pair(stride, "stride", minimum=1)
        if format not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}; got {format!r}")
        if sum(x is not None for x in (level, mpp, magnification)) > 1:
            raise ValueError("pass at most one of level, mpp and magnification")
        if level is not None:
            level = as_int(level, "level", minimum=0)
        elif mpp is None and magnification is None:
            level = 0  # the default, spelled out so that job records compare equal
        as_int(jpeg_quality, "jpeg_quality", minimum=1)
        if not isinstance(pad, bool):
            raise TypeError(f"pad must be True or False, got {pad!r}")
        if not isinstance(passthrough, bool):
            raise TypeError(f"passthrough must be True or False, got {passthrough!r}")
        if codec not in CHUNK_CODECS:
            raise ValueError(f"codec must be one of {', '.join(CHUNK_CODECS)}; got {codec!r}")
        labels = label_options(annotations, min_label)  # (absolute path or None, sorted pairs or None)
        values = {
            "shape": shape, "stride": stride, "pad": pad, "level": level, "mpp": mpp,
            "magnification": magnification, "min_tissue": min_tissue, "annotations": labels[0], "min_label": labels[1],
            "format": format, "jpeg_quality": jpeg_quality, "backend": backend,
            "codec": codec, "passthrough": passthrough, "resampling": check_resampling(resampling),
        }
        for name, value in values.items():
            object.__setattr__(self, name, value)  # frozen: the dataclass forbids plain assignment

    def plan_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``SlideBackend.tile_plan`` these options ask for."""
        return {"shape": self.shape, "stride": self.stride, "pad": self.pad, "level": self.level or 0,
                "mpp": self.mpp, "magnification": self.magnification, "min_tissue": self.min_tissue}

    def as_json(self) -> dict[str, Any]:
        """The options as JSON data, as recorded in ``job.json`` and the Zarr attributes
        (the stride spelled out, ``jpeg_quality`` and ``passthrough`` only for JPEG, ``codec``
        only for Zarr)."""
        out = asdict(self)
        out["shape"] = list(self.shape)
        out["stride"] = list(self.stride or self.shape)
        if self.format != "jpeg":
            del out["jpeg_quality"], out["passthrough"]
        if self.format != "zarr":
            del out["codec"]
        for key in ("annotations", "min_label"):  # recorded only when given: older records stay valid
            if out[key] is None:
                del out[key]
        if self.resampling == DEFAULT_RESAMPLING:
            del out["resampling"]
        if self.min_label is not None:
            out["min_label"] = dict(self.min_label)
        return out


@dataclass(frozen=True)
class SlideJob:
    """One slide to tile: its path, its output folder (both absolute), the options, and the
    threads reading it (None: all cores)."""

    slide: str
    folder: str
    options: TileOptions
    read_workers: int | None = None


@dataclass(frozen=True)
class SlidePart:
    """A slide's tile plan: the unit of work a worker receives."""

    job: SlideJob
    plan: Plan  # a plan pickles as a few arrays, not one object per tile

    @property
    def digest(self) -> str:
        """The plan's :func:`~wsikit.sinks.manifest.plan_digest`."""
        return plan_digest(self.plan)


@dataclass
class SlideResult:
    """What happened to one slide: ``status`` is written, skipped or failed; ``tiles`` the
    tiles of its plan, ``written`` those written by this run; ``reason`` says why a slide
    was skipped or failed, ``notes`` what else the user should know."""

    slide: str
    folder: str | None
    status: SlideStatus
    tiles: int = 0
    written: int = 0
    reason: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether the slide is done (written now or found complete)."""
        return self.status != "failed"
