"""The ``wsikit`` command line: info, thumbnail, tile.

    wsikit info SLIDE [--json]
    wsikit thumbnail SLIDE OUT.png [--size N] [--overlay tissue|tiles]
    wsikit tile SLIDES_OR_FOLDERS... --out OUT [--shape N] [--stride N] [--pad]
                [--level L | --mpp X | --magnification M] [--min-tissue F]
                [--format zarr|png|jpeg] [--workers N] [--scheduler ADDRESS] [--overwrite]

Exit status: 0 when everything asked for was done (slides already complete count as
done), 1 when any slide failed, 2 for a usage error.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

#: file endings taken as slides when a folder is given (files named explicitly are always tried)
SLIDE_EXTENSIONS = (
    ".svs", ".tif", ".tiff", ".ndpi", ".vms", ".vmu", ".scn", ".mrxs", ".svslide", ".bif", ".qptiff",
    ".dcm", ".czi", ".lif", ".nd2", ".vsi", ".btf", ".jp2", ".lsm", ".zvi", ".oib", ".oif", ".ims", ".ome.tif",
    ".ome.tiff",
)


def main(argv=None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of our output went away (``wsikit info ... | head``): stop quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


# -- arguments --------------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="wsikit", description="Read whole-slide images and cut them into tiles.")
    parser.add_argument("--version", action="version", version=f"wsikit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    backend = argparse.ArgumentParser(add_help=False)
    backend.add_argument("--backend", default=None, help="force a reader: tiff, dicom, openslide, bioformats")

    tiling = argparse.ArgumentParser(add_help=False)
    group = tiling.add_argument_group("tiling")
    group.add_argument("--shape", type=_pair, default=(256, 256), metavar="N[,M]",
                       help="tile height[,width] in pixels of the frame asked for (default 256)")
    group.add_argument("--stride", type=_pair, default=None, metavar="N[,M]", help="step between tiles (default: the shape)")
    group.add_argument("--pad", action="store_true", help="also keep edge tiles that stick out, zero-filled")
    res = group.add_mutually_exclusive_group()
    res.add_argument("--level", type=_nonnegative_int, default=None, help="tile this pyramid level (default 0)")
    res.add_argument("--mpp", type=_positive_float, default=None, help="tile at this many microns per pixel")
    res.add_argument("--magnification", type=_positive_float, default=None, help="tile at this objective power, e.g. 20")
    group.add_argument("--min-tissue", type=_fraction, default=None, metavar="F",
                       help="keep tiles whose tissue fraction is at least F (0..1)")

    info = sub.add_parser("info", parents=[backend], help="what a slide holds")
    info.add_argument("slide")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(run=_cmd_info)

    thumb = sub.add_parser("thumbnail", parents=[backend, tiling], help="a small picture of a slide, with overlays",
                           description="Write a picture of the whole slide, optionally with the tissue outline "
                                       "(green) or the selected tile grid (blue) drawn over it.")
    thumb.add_argument("slide")
    thumb.add_argument("out", help="picture to write (.png, .jpg)")
    thumb.add_argument("--size", type=_positive_int, default=1024, help="longer side in pixels (default 1024)")
    thumb.add_argument("--overlay", choices=("tissue", "tiles"), action="append", default=[],
                       help="draw the tissue outline or the selected tiles (may be given twice)")
    thumb.set_defaults(run=_cmd_thumbnail)

    tile = sub.add_parser("tile", parents=[backend, tiling], help="cut slides into tiles",
                          description="Cut slides into tiles, one result folder OUT/<slide name>/ per slide "
                                      "(see wsikit.sinks). Complete results are skipped, unfinished ones finished.")
    tile.add_argument("slides", nargs="+", metavar="SLIDE_OR_FOLDER")
    tile.add_argument("--out", required=True, help="folder for the results")
    tile.add_argument("--format", choices=("zarr", "png", "jpeg"), default="zarr", help="how tiles are stored (default zarr)")
    tile.add_argument("--jpeg-quality", type=_positive_int, default=90, help=argparse.SUPPRESS)
    tile.add_argument("--workers", type=_positive_int, default=None,
                      help="start a local Dask cluster of N worker processes")
    tile.add_argument("--scheduler", default=None, metavar="ADDRESS",
                      help="send the work to a running Dask scheduler, e.g. tcp://host:8786")
    tile.add_argument("--retries", type=_nonnegative_int, default=2, help="Dask retries of a failing slide (default 2)")
    tile.add_argument("--overwrite", action="store_true", help="redo slides whose results exist")
    tile.add_argument("--quiet", action="store_true", help="no progress bars")
    tile.set_defaults(run=_cmd_tile)
    return parser


def _int_at_least(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


_positive_int = _int_at_least(1)
_nonnegative_int = _int_at_least(0)


def _pair(text: str) -> tuple[int, int]:
    parts = [p for p in text.replace("x", ",").split(",") if p.strip()]
    if len(parts) not in (1, 2):
        raise argparse.ArgumentTypeError(f"expected N or N,M, got {text!r}")
    values = [_positive_int(p.strip()) for p in parts]
    return (values[0], values[-1])


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return value


def _plan_kwargs(args) -> dict:
    return {"shape": args.shape, "stride": args.stride, "pad": args.pad, "level": args.level or 0, "mpp": args.mpp,
            "magnification": args.magnification, "min_tissue": args.min_tissue}


def _error(message: str) -> None:
    print(f"wsikit: error: {message}", file=sys.stderr)


def _open(path: str, backend):
    from .opener import open_slide

    return open_slide(path, backend=backend)


# -- info -------------------------------------------------------------------------------------
def slide_info(slide) -> dict:
    """What ``wsikit info`` reports, as plain data."""
    props = dict(slide.properties)
    mpp0 = slide.mpp
    levels = []
    for k, shape in enumerate(slide.level_shapes):
        si, sj = slide.level_scale(k)
        levels.append({
            "level": k, "shape": list(shape), "downsample": slide.level_downsamples[k],
            "mpp": None if mpp0 is None else [mpp0[0] * si, mpp0[1] * sj],
        })
    associated = {}
    for name in slide.associated_images:
        try:
            associated[name] = list(slide.associated_images[name].shape)
        except Exception as exc:  # a broken label must not hide the rest
            associated[name] = f"unreadable: {exc}"
    return {
        "path": os.path.abspath(slide.path),
        "backend": slide.name,
        "vendor": props.get("wsikit.vendor") or props.get("openslide.vendor"),
        "levels": levels,
        "mpp": None if mpp0 is None else list(mpp0),
        "magnification": slide.objective_power,
        "is_rgb": bool(slide.is_rgb),
        "dtype": str(slide.dtype),
        "sizes": {"z": slide.sizes[0], "c": slide.sizes[1], "t": slide.sizes[2]} if not slide.is_rgb else None,
        "channel_names": list(slide.channel_names),
        "associated_images": associated,
        "properties": props,
    }


def _cmd_info(args) -> int:
    try:
        with _open(args.slide, args.backend) as slide:
            info = slide_info(slide)
    except Exception as exc:
        _error(f"{args.slide}: {exc}" if args.slide not in str(exc) else str(exc))
        return 1
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    print(f"{info['path']}")
    print(f"  backend        {info['backend']}" + (f" (vendor {info['vendor']})" if info["vendor"] else ""))
    for level in info["levels"]:
        h, w = level["shape"]
        mpp = "" if level["mpp"] is None else f", {_num(level['mpp'][0])} x {_num(level['mpp'][1])} mpp"
        print(f"  level {level['level']:<8} {h} x {w} (h x w), downsample {_num(level['downsample'])}{mpp}")
    print(f"  mpp            {'unknown' if info['mpp'] is None else ' x '.join(_num(v) for v in info['mpp'])}")
    print(f"  magnification  {'unknown' if not info['magnification'] else _num(info['magnification']) + 'x'}")
    if info["is_rgb"]:
        print("  pixels         RGB uint8 (brightfield)")
    else:
        sizes = info["sizes"]
        print(f"  pixels         {info['dtype']}, z={sizes['z']} c={sizes['c']} t={sizes['t']} (read as h, w, z, c, t)")
    if info["channel_names"]:
        print(f"  channels       {', '.join(info['channel_names'])}")
    assoc = ", ".join(f"{k} {tuple(v) if isinstance(v, list) else v}" for k, v in info["associated_images"].items())
    print(f"  associated     {assoc or 'none'}")
    return 0


def _num(value) -> str:
    return f"{value:.6g}"


# -- thumbnail --------------------------------------------------------------------------------
def overlay_picture(slide, size: int = 1024, overlays=(), **plan_kwargs):
    """A uint8 RGB thumbnail with the tissue outline (green) and/or the tiles of the plan
    ``plan_kwargs`` selects (blue) drawn over it."""
    import numpy as np
    from PIL import Image, ImageDraw

    thumb = np.ascontiguousarray(slide.get_thumbnail((size, size)))
    h0, w0 = slide.level_shapes[0]
    fi, fj = thumb.shape[0] / h0, thumb.shape[1] / w0
    picture = Image.fromarray(thumb).convert("RGBA")
    layer = Image.new("RGBA", picture.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    mask = None
    if "tissue" in overlays or plan_kwargs.get("min_tissue") is not None:
        from .tissue import tissue_mask

        mask = tissue_mask(slide)
    if "tiles" in overlays:
        plan = slide.tile_plan(**dict(plan_kwargs, tissue_mask=mask if mask is not None else None))
        for spec in plan:
            si, sj = _frame_scale(slide, spec)
            top, left = spec.coords0[0] * fi, spec.coords0[1] * fj
            bottom = top + spec.shape[0] * si * fi
            right = left + spec.shape[1] * sj * fj
            draw.rectangle([left, top, max(left, right - 1), max(top, bottom - 1)],
                           fill=(40, 90, 255, 50), outline=(20, 60, 220, 200))
    if "tissue" in overlays and mask is not None:
        from scipy import ndimage

        small = np.asarray(Image.fromarray(mask.mask.astype(np.uint8) * 255).resize(picture.size, Image.Resampling.NEAREST)) > 127
        width = max(1, round(max(picture.size) / 400))
        edge = small & ~ndimage.binary_erosion(small, iterations=width, border_value=0)
        outline = np.zeros(small.shape + (4,), np.uint8)
        outline[edge] = (0, 200, 0, 255)
        layer = Image.alpha_composite(layer, Image.fromarray(outline))
    return np.asarray(Image.alpha_composite(picture, layer).convert("RGB"))


def _frame_scale(slide, spec) -> tuple[float, float]:
    """Level-0 pixels per pixel of the frame a TileSpec's shape is in."""
    if spec.mpp is not None and slide.mpp is not None:
        return spec.mpp[0] / slide.mpp[0], spec.mpp[1] / slide.mpp[1]
    if spec.read_size == spec.shape:
        return slide.level_scale(spec.level)
    li, lj = slide.level_scale(spec.level)
    return li * spec.read_size[0] / spec.shape[0], lj * spec.read_size[1] / spec.shape[1]


def _cmd_thumbnail(args) -> int:
    from PIL import Image

    try:
        with _open(args.slide, args.backend) as slide:
            picture = overlay_picture(slide, args.size, tuple(args.overlay), **_plan_kwargs(args))
        Image.fromarray(picture).save(args.out)
    except Exception as exc:
        _error(f"{args.slide}: {exc}" if args.slide not in str(exc) else str(exc))
        return 1
    print(f"wrote {args.out} ({picture.shape[1]} x {picture.shape[0]})")
    return 0


# -- tile ---------------------------------------------------------------------------------------
def find_slides(arguments, skip=()) -> tuple[list[str], list[tuple[str, str]]]:
    """The slides named by ``arguments`` (files, or folders searched recursively for files
    with a slide ending and for folders a reader takes whole, such as DICOM series) as
    absolute paths, in order without repeats, and (argument, reason) for those not found."""
    skip = {os.path.realpath(s) for s in skip}
    slides: list[str] = []
    missing: list[tuple[str, str]] = []
    for argument in arguments:
        if not os.path.exists(argument):
            missing.append((argument, "no such file or folder"))
        elif os.path.isdir(argument) and not _reads_folder(argument):
            found = _search(argument, skip)
            if not found:
                missing.append((argument, "no slides found in this folder"))
            slides.extend(found)
        else:
            slides.append(os.path.abspath(argument))
    unique = list(dict.fromkeys(slides))
    return unique, missing


def _search(folder: str, skip) -> list[str]:
    found = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        keep = []
        for name in dirs:
            path = os.path.join(root, name)
            if name.startswith(".") or os.path.realpath(path) in skip:
                continue
            if _reads_folder(path):
                found.append(os.path.abspath(path))
            elif not name.endswith(".zarr"):
                keep.append(name)
        dirs[:] = keep
        for name in sorted(files):
            if not name.startswith(".") and name.lower().endswith(SLIDE_EXTENSIONS):
                found.append(os.path.abspath(os.path.join(root, name)))
    return sorted(found)


def _reads_folder(path: str) -> bool:
    """Whether a backend reads this folder as one slide (a DICOM series): a folder that
    also holds other slide files (or anything but files) is searched instead."""
    from .backends import backend_names
    from .opener import backend_class_or_none

    try:
        entries = list(os.scandir(path))
    except OSError:
        return False
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if not entry.is_file():
            return False
        name = entry.name.lower()
        if name.endswith(SLIDE_EXTENSIONS) and not name.endswith(".dcm"):
            return False

    for name in backend_names():
        cls = backend_class_or_none(name)
        try:
            if cls is not None and cls.reads_folders and cls.can_read(path):
                return True
        except Exception:  # can_read must not fail, but a search must not die of one that does
            continue
    return False


def _cmd_tile(args) -> int:
    from .distributed import run_jobs
    from .sinks import SlideJob, SlideResult, TileOptions, assign_folders, prepare

    try:
        options = TileOptions(shape=args.shape, stride=args.stride, pad=args.pad, level=args.level, mpp=args.mpp,
                              magnification=args.magnification, min_tissue=args.min_tissue, format=args.format,
                              jpeg_quality=args.jpeg_quality, backend=args.backend)
    except (TypeError, ValueError) as exc:
        _error(str(exc))
        return 2
    out = os.path.abspath(args.out)
    slides, missing = find_slides(args.slides, skip=[out])
    results = [SlideResult(os.path.abspath(a), None, "failed", reason=reason) for a, reason in missing]
    if not slides and not missing:
        _error("no slides given")
        return 2
    os.makedirs(out, exist_ok=True)
    jobs = []
    for slide, folder in zip(slides, assign_folders(slides, out)):
        job = SlideJob(slide, folder, options)
        early = prepare(job, out, args.overwrite)
        if early is None:
            jobs.append(job)
        else:
            results.append(early)
            if early.status == "skipped":
                print(f"skipped {slide}: {early.reason}", file=sys.stderr)
    progress = False if args.quiet else None

    def report(result):
        if result.status == "failed":
            print(f"failed {result.slide}: {result.reason}", file=sys.stderr)

    if jobs:
        results.extend(run_jobs(jobs, workers=args.workers, scheduler=args.scheduler, retries=args.retries,
                                progress=progress, on_result=report))
    _summary(results, out)
    return 1 if any(r.status == "failed" for r in results) else 0


def _summary(results, out: str) -> None:
    print(f"results in {out}")
    for r in results:
        where = os.path.relpath(r.folder, out) if r.folder else "-"
        if r.status == "written":
            extra = f"{r.written} written now" if r.written != r.tiles else "all written now"
            line = f"{r.tiles} tiles ({extra})"
        elif r.status == "skipped":
            line = f"{r.tiles} tiles, {r.reason}"
        else:
            line = "FAILED"
        print(f"  {where:<32} {line}    <- {r.slide}")
        for note in r.notes:
            print(f"  {'':<32} note: {note}")
    failed = [r for r in results if r.status == "failed"]
    if failed:
        print("failures:")
        for r in failed:
            print(f"  {r.slide}: {r.reason}")
    counts = {s: sum(r.status == s for r in results) for s in ("written", "skipped", "failed")}
    total = sum(r.tiles for r in results if r.status != "failed")
    print(f"{len(results)} slides: {counts['written']} tiled, {counts['skipped']} already complete, "
          f"{counts['failed']} failed; {total} tiles in all")


if __name__ == "__main__":
    sys.exit(main())
