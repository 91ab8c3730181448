"""Where tiles go: one folder per slide holding a manifest and the tiles.

Layout of ``OUT/<name>/`` for one slide::

    job.json       the slide and the options; written first
    tiles.zarr/    a Zarr v3 group whose array ``tiles`` is (n, h, w, channels), one tile
                   per chunk, the slide's metadata in the group's attributes (format zarr)
    images/        one PNG or JPEG per tile, named ``<i>_<j>.png`` (formats png, jpeg)
    tiles.csv      one row per tile: i, j, level, i0, j0, height, width, mpp, tissue
                   (and ``file`` for png/jpeg); row k is ``tiles[k]``. Written last.

Columns: (i, j) the tile's top-left corner in the frame the tiles were asked for (the
level's pixels, or the target-resolution frame with ``mpp``/``magnification``); level the
level read; (i0, j0) the corner in level-0 pixels; height, width the tile's shape; mpp its
microns per pixel (the mean of the two axes; empty when the slide does not say); tissue its
tissue fraction (empty without a tissue mask).

Channels: brightfield RGB tiles have 3; other images, read as (h, w, z, c, t), are stored
with their z, c and t axes flattened in that order (channel index = (z * C + c) * T + t),
so every plane is kept; the attributes give the sizes to reshape with.

Names: a slide's folder is its file name without the extension (``slide.svs`` ->
``slide``; ``x.ome.tiff`` -> ``x``), characters other than letters, digits, ``.``, ``_``
and ``-`` replaced by ``_``. When an earlier slide of the same run already took that name,
or the folder holds another slide's results (its ``job.json`` names another file) or
something that is not a wsikit result, the folder is ``<name>-<the first 8 hex digits of
the SHA-1 of the slide's absolute path>``. Names never contain a path separator or start
with a dot, and a folder that would resolve outside OUT (a symbolic link) is refused.

Crash safety: every file is written to a temporary name and renamed into place, so a file
is either whole or absent; ``tiles.csv`` is written last, so its presence means the slide
is complete. A rerun skips complete slides and finishes incomplete ones, writing only the
missing tiles; the result is byte for byte what an uninterrupted run writes. Results are
only replaced with ``overwrite=True``.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import shutil
import uuid
from dataclasses import asdict, dataclass, field

import numpy as np

from .plan import Plan, TileSpec

MANIFEST = "tiles.csv"
JOB_FILE = "job.json"
ZARR_STORE = "tiles.zarr"
IMAGE_FOLDER = "images"
FORMATS = ("zarr", "png", "jpeg")
COLUMNS = ("i", "j", "level", "i0", "j0", "height", "width", "mpp", "tissue")
_TMP_PREFIX = ".wsikit-tmp-"
_EXTENSIONS = {"png": ".png", "jpeg": ".jpg"}
_DOUBLE_EXTENSIONS = (".ome.tiff", ".ome.tif", ".ome.zarr", ".ome.btf")


@dataclass(frozen=True)
class TileOptions:
    """What to cut from every slide and how to store it (plain data).

    ``shape``/``stride`` are (h, w) pixels of the frame asked for: a ``level``, or the
    target resolution of ``mpp`` / ``magnification``; ``min_tissue`` keeps tiles with at
    least that tissue fraction; ``format`` is ``zarr``, ``png`` or ``jpeg``.
    """

    shape: tuple[int, int] = (256, 256)
    stride: tuple[int, int] | None = None
    pad: bool = False
    level: int | None = None
    mpp: float | None = None
    magnification: float | None = None
    min_tissue: float | None = None
    format: str = "zarr"
    jpeg_quality: int = 90
    backend: str | None = None

    def __post_init__(self):
        from .checks import as_int, as_pair

        object.__setattr__(self, "shape", as_pair(self.shape, "shape", minimum=1))
        if self.stride is not None:
            object.__setattr__(self, "stride", as_pair(self.stride, "stride", minimum=1))
        if self.format not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}; got {self.format!r}")
        if sum(x is not None for x in (self.level, self.mpp, self.magnification)) > 1:
            raise ValueError("pass at most one of level, mpp and magnification")
        if self.level is not None:
            object.__setattr__(self, "level", as_int(self.level, "level", minimum=0))
        elif self.mpp is None and self.magnification is None:
            object.__setattr__(self, "level", 0)  # the default, spelled out so job records compare equal
        as_int(self.jpeg_quality, "jpeg_quality", minimum=1)
        if not isinstance(self.pad, bool):
            raise TypeError(f"pad must be True or False, got {self.pad!r}")

    def plan_kwargs(self) -> dict:
        return {"shape": self.shape, "stride": self.stride, "pad": self.pad, "level": self.level or 0,
                "mpp": self.mpp, "magnification": self.magnification, "min_tissue": self.min_tissue}

    def as_json(self) -> dict:
        out = asdict(self)
        out["shape"] = list(self.shape)
        out["stride"] = list(self.stride or self.shape)
        if self.format != "jpeg":
            del out["jpeg_quality"]
        return out


@dataclass(frozen=True)
class SlideJob:
    """One slide to tile: its path, its output folder (both absolute) and the options."""

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
        return plan_digest(self.plan)


@dataclass
class SlideResult:
    """What happened to one slide: ``status`` is written, skipped or failed."""

    slide: str
    folder: str | None
    status: str
    tiles: int = 0
    written: int = 0
    reason: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status != "failed"


# -- names --------------------------------------------------------------------------------
def slide_stem(path) -> str:
    """The folder name a slide's results get: its file name without the extension, made safe."""
    name = os.path.basename(os.path.normpath(os.fspath(path)))
    lower = name.lower()
    for ext in _DOUBLE_EXTENSIONS:
        if lower.endswith(ext) and len(name) > len(ext):
            name = name[: -len(ext)]
            break
    else:
        stem, ext = os.path.splitext(name)
        name = stem if stem and ext else name
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", name).lstrip(".")
    return name[:120] or "slide"


def path_hash(path) -> str:
    return hashlib.sha1(os.path.abspath(os.fspath(path)).encode("utf-8", "surrogateescape")).hexdigest()[:8]


def assign_folders(slides, out) -> list[str]:
    """The absolute result folder of each slide, by the rule in the module's notes."""
    out = os.path.abspath(os.fspath(out))
    taken: set[str] = set()
    folders = []
    for slide in slides:
        slide = os.path.abspath(os.fspath(slide))
        stem = slide_stem(slide)
        name = stem
        if name.lower() in taken or not _folder_free_for(os.path.join(out, name), slide):
            name = f"{stem}-{path_hash(slide)}"
        taken.add(name.lower())
        folders.append(os.path.join(out, name))
    return folders


def _folder_free_for(folder: str, slide: str) -> bool:
    if not os.path.lexists(folder):
        return True
    if not os.path.isdir(folder) or os.path.islink(folder):
        return False
    job = read_job(folder)
    if job is not None:
        return job.get("slide") == slide
    return not os.listdir(folder)


def check_inside(folder: str, out: str) -> None:
    """Raise ValueError when ``folder`` would resolve outside ``out``."""
    real_out = os.path.realpath(out)
    real = os.path.realpath(folder)
    if real == real_out or os.path.commonpath([real_out, real]) != real_out:
        raise ValueError(f"result folder {folder} resolves to {real}, outside {real_out}; refusing to write there")


# -- the state of a folder ------------------------------------------------------------------
def read_job(folder: str) -> dict | None:
    try:
        with open(os.path.join(folder, JOB_FILE), encoding="utf-8") as f:
            job = json.load(f)
    except (OSError, ValueError):
        return None
    return job if isinstance(job, dict) and job.get("format") == "wsikit-tiles" else None


def is_complete(folder: str) -> bool:
    return os.path.isfile(os.path.join(folder, MANIFEST))


def prepare(job: SlideJob, out: str, overwrite: bool = False) -> SlideResult | None:
    """Check ``job``'s folder before any work: a SlideResult when the slide needs no work
    (skipped) or cannot be done (failed), None when it should be tiled. With ``overwrite``
    earlier results of this slide are removed first."""
    try:
        check_inside(job.folder, out)
    except ValueError as exc:
        return SlideResult(job.slide, job.folder, "failed", reason=str(exc))
    if not os.path.lexists(job.folder):
        return None
    existing = read_job(job.folder)
    if existing is None:
        if os.path.isdir(job.folder) and not os.path.islink(job.folder) and not os.listdir(job.folder):
            return None
        return SlideResult(job.slide, job.folder, "failed",
                           reason=f"{job.folder} exists and is not a wsikit result; not touching it")
    same = existing.get("slide") == job.slide and existing.get("options") == job.options.as_json()
    if overwrite:
        shutil.rmtree(job.folder)
        return None
    if is_complete(job.folder):
        if same:
            n = existing.get("tiles", 0)
            return SlideResult(job.slide, job.folder, "skipped", tiles=n,
                               reason="already complete (pass --overwrite to redo it)")
        return SlideResult(job.slide, job.folder, "failed",
                           reason=f"{job.folder} holds results made with other options; pass --overwrite to replace them")
    if not same:
        return SlideResult(job.slide, job.folder, "failed",
                           reason=f"{job.folder} holds an unfinished run with other options; rerun with those options "
                                  "to finish it, or pass --overwrite")
    return None


# -- planning and writing ---------------------------------------------------------------------
def plan_part(job: SlideJob) -> SlidePart:
    """Open the slide and compute its tile plan."""
    from .opener import open_slide

    with open_slide(job.slide, backend=job.options.backend) as slide:
        plan = slide.tile_plan(**job.options.plan_kwargs())
    return SlidePart(job, plan)


def plan_digest(plan) -> str:
    text = "\n".join(",".join(_row(spec)) for spec in plan)
    return hashlib.sha256(text.encode()).hexdigest()


def write_part(part: SlidePart, progress=None) -> SlideResult:
    """Read the tiles of ``part`` that its folder lacks, write them, then the manifest.

    ``progress`` is called with the number of tiles done after each tile (and once with
    the number found already written). Raises on failure (so that Dask retries).
    """
    from .opener import open_slide
    from .reader import ordered_map

    job, plan = part.job, part.plan
    options = job.options
    folder = job.folder
    notes: list[str] = []
    if is_complete(folder):
        return SlideResult(job.slide, folder, "skipped", tiles=len(plan), reason="already complete")
    with open_slide(job.slide, backend=options.backend) as slide:
        pixel = _pixel_layout(slide)
        if options.format != "zarr" and pixel[0] not in (1, 3):
            raise ValueError(
                f"{job.slide}: tiles of {pixel[0]} channels cannot be stored as {options.format.upper()} "
                "(one or three channels only); use the zarr format"
            )
        record = {"format": "wsikit-tiles", "version": 1, "slide": job.slide, "options": options.as_json(),
                  "tiles": len(plan), "plan_sha256": part.digest}
        os.makedirs(folder, exist_ok=True)
        existing = read_job(folder)
        if existing is not None and existing != record:
            if existing.get("slide") != job.slide or existing.get("options") != record["options"]:
                raise ValueError(f"{folder} holds results of another slide or other options; pass overwrite to replace them")
            # Same slide and options, another plan (the slide or wsikit changed): start afresh.
            notes.append("an unfinished earlier run planned other tiles; started afresh")
            _remove_data(folder)
            existing = None
        _remove_temporaries(folder)
        if existing is None:
            _write_atomic(os.path.join(folder, JOB_FILE), _json_bytes(record))
        if options.format == "zarr":
            writer = _ZarrWriter(folder, len(plan), options.shape, pixel, _slide_attributes(slide, options, pixel))
        else:
            writer = _ImageWriter(folder, options)
        todo = [k for k, spec in enumerate(plan) if not writer.has(k, spec)]
        done = len(plan) - len(todo)
        if progress is not None:
            progress(done)
        rest = plan.take(todo)
        tiles = slide.read_plan(rest, workers=job.read_workers)

        def runs():
            # Consecutive tiles go to the writer together: one Zarr write of a slab of
            # chunks costs much less Python than one write per chunk.
            run: list = []
            nbytes = 0
            for k, spec, tile in zip(todo, rest, tiles):
                image = _as_channels_last(tile.image, pixel[0])
                if run and (k != run[-1][0] + 1 or len(run) >= WRITE_RUN_TILES or nbytes >= WRITE_RUN_BYTES):
                    yield run
                    run, nbytes = [], 0
                run.append((k, spec, image))
                nbytes += image.nbytes
            if run:
                yield run

        def write(run):
            writer.write_run(run)
            return len(run)

        for written in ordered_map(write, runs(), job.read_workers):
            done += written
            if progress is not None:
                progress(done)
    _write_atomic(os.path.join(folder, MANIFEST), manifest_bytes(plan, options.format), sync=True)
    return SlideResult(job.slide, folder, "written", tiles=len(plan), written=len(todo), notes=notes)


def tile_slide(slide, out, options: TileOptions | None = None, *, overwrite: bool = False,
               progress=None) -> SlideResult:
    """Tile one slide into ``out/<name>/`` (see the module's notes) in this process."""
    options = options or TileOptions()
    slide = os.path.abspath(os.fspath(slide))
    out = os.path.abspath(os.fspath(out))
    job = SlideJob(slide, assign_folders([slide], out)[0], options)
    early = prepare(job, out, overwrite)
    if early is not None:
        return early
    return write_part(plan_part(job), progress)


# -- manifest -------------------------------------------------------------------------------
def _fmt(value) -> str:
    if value is None:
        return ""
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _row(spec: TileSpec) -> list[str]:
    mpp = None if spec.mpp is None else (spec.mpp[0] + spec.mpp[1]) / 2
    return [str(spec.coords[0]), str(spec.coords[1]), str(spec.level), str(spec.coords0[0]), str(spec.coords0[1]),
            str(spec.shape[0]), str(spec.shape[1]), _fmt(mpp), _fmt(spec.tissue)]


def image_name(spec: TileSpec, fmt: str) -> str:
    return f"{spec.coords[0]}_{spec.coords[1]}{_EXTENSIONS[fmt]}"


def manifest_bytes(plan, fmt: str = "zarr") -> bytes:
    """The text of ``tiles.csv`` for ``plan``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    images = fmt in _EXTENSIONS
    writer.writerow(COLUMNS + (("file",) if images else ()))
    for spec in plan:
        row = _row(spec)
        if images:
            row.append(f"{IMAGE_FOLDER}/{image_name(spec, fmt)}")
        writer.writerow(row)
    return buffer.getvalue().encode("utf-8")


# -- files ----------------------------------------------------------------------------------
# Tiles handed to a writer at once: at most this many, and no more once this many bytes.
WRITE_RUN_TILES = 16
WRITE_RUN_BYTES = 8 * 1024**2


def _write_atomic(path: str, data: bytes, sync: bool = False) -> None:
    tmp = os.path.join(os.path.dirname(path), f"{_TMP_PREFIX}{uuid.uuid4().hex}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            if sync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _json_bytes(value) -> bytes:
    return (json.dumps(value, indent=2, sort_keys=True) + "\n").encode("utf-8")


def _remove_temporaries(folder: str) -> None:
    """Remove what a killed run left half-written: our temporary files and Zarr's."""
    for root, dirs, files in os.walk(folder):
        for name in dirs[:]:
            if name.startswith(_TMP_PREFIX):
                shutil.rmtree(os.path.join(root, name), ignore_errors=True)
                dirs.remove(name)
        for name in files:
            if name.startswith(_TMP_PREFIX) or name.endswith(".partial"):
                os.unlink(os.path.join(root, name))


def _remove_data(folder: str) -> None:
    for name in (ZARR_STORE, IMAGE_FOLDER):
        shutil.rmtree(os.path.join(folder, name), ignore_errors=True)
    for name in (JOB_FILE, MANIFEST):
        try:
            os.unlink(os.path.join(folder, name))
        except FileNotFoundError:
            pass


# -- pixels ---------------------------------------------------------------------------------
def _pixel_layout(slide) -> tuple[int, np.dtype]:
    """(channels, dtype) of stored tiles: normalised uint8, z * c * t channels for 5-D images."""
    if slide.is_rgb:
        return 3, np.dtype(np.uint8)
    z, c, t = slide.sizes
    return int(z * c * t), np.dtype(np.uint8)


def _as_channels_last(image: np.ndarray, channels: int) -> np.ndarray:
    return np.ascontiguousarray(image.reshape(image.shape[0], image.shape[1], channels))


def _slide_attributes(slide, options: TileOptions, pixel) -> dict:
    def jsonable(value):
        if isinstance(value, (list, tuple)):
            return [jsonable(v) for v in value]
        if isinstance(value, (np.integer,)):
            return int(value)
        if isinstance(value, (float, np.floating)):
            value = float(value)
            return value if np.isfinite(value) else None
        return value

    props = dict(slide.properties)
    z, c, t = (1, 3, 1) if slide.is_rgb else tuple(int(s) for s in slide.sizes)
    return {
        "wsikit": {
            "slide": os.path.abspath(slide.path),
            "backend": slide.name,
            "vendor": props.get("wsikit.vendor") or props.get("openslide.vendor"),
            "level_shapes": jsonable(slide.level_shapes),
            "level_downsamples": jsonable(slide.level_downsamples),
            "mpp": jsonable(slide.mpp),
            "objective_power": jsonable(slide.objective_power),
            "is_rgb": bool(slide.is_rgb),
            "dtype": str(np.dtype(slide.dtype)),
            "sizes": {"z": z, "c": c, "t": t},
            "channel_names": list(slide.channel_names) if slide.channel_names else (
                ["R", "G", "B"] if slide.is_rgb else []),
            "channels": "R, G, B" if slide.is_rgb else "z, c, t flattened: channel = (z * c_size + c) * t_size + t",
            "tile_axes": ["tile", "i", "j", "channel"],
            "options": options.as_json(),
            "manifest": MANIFEST,
            "properties": {str(k): str(v) for k, v in sorted(props.items())},
        }
    }


class _ZarrWriter:
    """Chunk k of the array ``tiles`` is tile k; Zarr (>= 3.1.3) writes each chunk file to a
    temporary name and renames it, so a chunk file that exists is whole."""

    def __init__(self, folder: str, n: int, tile_shape, pixel, attributes: dict):
        import zarr

        self.path = os.path.join(folder, ZARR_STORE)
        h, w = tile_shape
        channels, dtype = pixel
        shape = (n, h, w, channels)
        if not os.path.isdir(self.path):
            # Build the metadata aside and rename it into place: the store exists whole or not at all.
            tmp = os.path.join(folder, f"{_TMP_PREFIX}{uuid.uuid4().hex}")
            group = zarr.create_group(store=tmp, zarr_format=3, attributes=attributes)
            group.create_array(
                "tiles", shape=shape, chunks=(1, h, w, channels), dtype=dtype, fill_value=0,
                compressors=zarr.codecs.ZstdCodec(level=3), dimension_names=("tile", "i", "j", "channel"),
                chunk_key_encoding={"name": "default", "separator": "/"},
                config={"write_empty_chunks": True},
            )
            os.replace(tmp, self.path)
        self.array = zarr.open_group(self.path, mode="r+")["tiles"]
        if self.array.shape != shape:
            raise ValueError(f"{self.path} holds an array of shape {self.array.shape}, expected {shape}")

    def has(self, k: int, spec: TileSpec) -> bool:
        return os.path.isfile(os.path.join(self.path, "tiles", "c", str(k), "0", "0", "0"))

    def write_run(self, run: list) -> None:
        """Write tiles k, k + 1, ... (``(k, spec, image)`` items with consecutive k)."""
        first = run[0][0]
        if len(run) == 1:
            self.array[first] = run[0][2]
        else:
            self.array[first : first + len(run)] = np.stack([image for _, _, image in run])


class _ImageWriter:
    def __init__(self, folder: str, options: TileOptions):
        self.folder = os.path.join(folder, IMAGE_FOLDER)
        self.format = options.format
        self.quality = options.jpeg_quality
        os.makedirs(self.folder, exist_ok=True)

    def has(self, k: int, spec: TileSpec) -> bool:
        return os.path.isfile(os.path.join(self.folder, image_name(spec, self.format)))

    def write_run(self, run: list) -> None:
        for k, spec, image in run:
            self.write(k, spec, image)

    def write(self, k: int, spec: TileSpec, image: np.ndarray) -> None:
        from PIL import Image

        picture = Image.fromarray(image[:, :, 0] if image.shape[2] == 1 else image)
        buffer = io.BytesIO()
        if self.format == "png":
            picture.save(buffer, format="PNG")
        else:
            picture.save(buffer, format="JPEG", quality=self.quality)
        _write_atomic(os.path.join(self.folder, image_name(spec, self.format)), buffer.getvalue())
