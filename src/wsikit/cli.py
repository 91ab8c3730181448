"""The ``wsikit`` command line: info, thumbnail, tile.

    wsikit info SLIDE [--json]
    wsikit thumbnail SLIDE OUT.png [--size N] [--overlay tissue|tiles|annotations] [--annotations FILE]
    wsikit tile SLIDES_OR_FOLDERS... --out OUT [--shape N] [--stride N] [--pad]
                [--level L | --mpp X | --magnification M] [--min-tissue F]
                [--annotations FILE_OR_FOLDER] [--min-label CLASS=F]
                [--format zarr|png|jpeg] [--codec lz4|zstd] [--no-passthrough] [--resampling fast|exact]
                [--workers N] [--scheduler ADDRESS] [--overwrite]
    wsikit view PATH [--port N] [--host 127.0.0.1] [--no-browser] [--results OUT]

This module only parses arguments and prints; the work is done by the library:
:func:`wsikit.inventory.slide_info` (info), :func:`wsikit.overlay.overlay_picture`
(thumbnail), :func:`wsikit.inventory.find_slides`, :mod:`wsikit.sinks` and
:func:`wsikit.distributed.run_jobs` (tile), :func:`wsikit.viewer.serve` (view).

Exit status: 0 when everything asked for was done (slides already complete count as
done), 1 when any slide failed, 2 for a usage error.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from .annotations.outputs import label_arguments
from .backends import backend_names
from .inventory import find_slides, slide_info
from .overlay import OVERLAYS, overlay_picture
from .sinks import FORMATS, SlideResult, TileOptions, prepare_jobs
from .remote.settings import default_storage_options, parse_storage_option
from .remote.urls import is_url
from .sinks.codecs import CHUNK_CODECS, DEFAULT_CODEC
from .reader.scaled import DEFAULT_RESAMPLING, RESAMPLING


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return 2
    command: Callable[[argparse.Namespace], int] = args.run
    try:
        # --storage-option: the options of every URL this command opens (wsikit.remote)
        with default_storage_options(getattr(args, "storage_options", None)):
            return command(args)
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
    backend.add_argument("--backend", default=None, help=f"force a reader: {', '.join(backend_names())}")
    backend.add_argument("--storage-option", dest="storage_options", type=_storage_option, action=_MergeOptions,
                         default=None, metavar="KEY=VALUE",
                         help="an option of the filesystem of slide URLs (s3://, gs://, https://...), repeatable: "
                              "e.g. endpoint_url=http://host:9000, headers.Authorization='Bearer ...', "
                              "wsikit_timeout=60 (VALUE is read as JSON when it is JSON)")

    tiling = argparse.ArgumentParser(add_help=False)
    group = tiling.add_argument_group("tiling")
    group.add_argument("--shape", type=_size_pair, default=(256, 256), metavar="N[,M]",
                       help="tile height[,width] in pixels of the frame asked for (default 256)")
    group.add_argument("--stride", type=_size_pair, default=None, metavar="N[,M]",
                       help="step between tiles (default: the shape)")
    group.add_argument("--pad", action="store_true", help="also keep edge tiles that stick out, zero-filled")
    res = group.add_mutually_exclusive_group()
    res.add_argument("--level", type=_nonnegative_int, default=None, help="tile this pyramid level (default 0)")
    res.add_argument("--mpp", type=_positive_float, default=None, help="tile at this many microns per pixel")
    res.add_argument("--magnification", type=_positive_float, default=None,
                     help="tile at this objective power, e.g. 20")
    group.add_argument("--min-tissue", type=_fraction, default=None, metavar="F",
                       help="keep tiles whose tissue fraction is at least F (0..1)")
    group.add_argument("--annotations", default=None, metavar="FILE_OR_FOLDER",
                       help="annotations (GeoJSON, ASAP XML, label image), or a folder of them matched to slides by "
                            "file stem: tiles get label fractions and masks")

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
    thumb.add_argument("--overlay", choices=OVERLAYS, action="append", default=[],
                       help="draw the tissue outline, the selected tiles or the --annotations (may be repeated)")
    thumb.set_defaults(run=_cmd_thumbnail)

    tile = sub.add_parser("tile", parents=[backend, tiling], help="cut slides into tiles",
                          description="Cut slides into tiles, one result folder OUT/<slide name>/ per slide "
                                      "(see wsikit.sinks). Complete results are skipped, unfinished ones finished.")
    tile.add_argument("slides", nargs="+", metavar="SLIDE_OR_FOLDER")
    tile.add_argument("--out", required=True, help="folder for the results")
    tile.add_argument("--format", choices=FORMATS, default="zarr", help="how tiles are stored (default zarr)")
    tile.add_argument("--jpeg-quality", type=_positive_int, default=90, help=argparse.SUPPRESS)
    tile.add_argument("--codec", choices=CHUNK_CODECS, default=DEFAULT_CODEC,
                      help="lossless chunk codec of the zarr format: lz4 (default, fastest) or zstd (about 13%% smaller)")
    tile.add_argument("--resampling", choices=RESAMPLING, default=DEFAULT_RESAMPLING,
                      help="tiles coarser than a JPEG level: fast (decoded at 1/2, 1/4, 1/8, default) or exact "
                           "(area means of full decodes)")
    tile.add_argument("--no-passthrough", dest="passthrough", action="store_false",
                      help="jpeg format: re-encode every tile instead of storing the slide's own JPEG tiles "
                           "where the tile grid is the file's")
    tile.add_argument("--workers", type=_positive_int, default=None,
                      help="start a local Dask cluster of N worker processes")
    tile.add_argument("--scheduler", default=None, metavar="ADDRESS",
                      help="send the work to a running Dask scheduler, e.g. tcp://host:8786")
    tile.add_argument("--retries", type=_nonnegative_int, default=2, help="Dask retries of a failing slide (default 2)")
    tile.add_argument("--overwrite", action="store_true", help="redo slides whose results exist")
    tile.add_argument("--min-label", type=_class_fraction, action="append", default=[], metavar="CLASS=F",
                      help="keep tiles with at least fraction F of annotation class CLASS (may be repeated)")
    tile.add_argument("--quiet", action="store_true", help="no progress bars")
    tile.set_defaults(run=_cmd_tile)

    view = sub.add_parser("view", help="look at slides in a browser, with tissue, plan and result overlays",
                          description="Serve the slides under PATH (a slide or a folder) to a web browser: "
                                      "an index, a viewer per slide, overlays of the tissue mask, a tile plan "
                                      "and the tiles a finished 'wsikit tile' run wrote (see wsikit.viewer).")
    view.add_argument("path", metavar="PATH", help="a slide, or a folder searched for slides")
    view.add_argument("--port", type=_nonnegative_int, default=8000,
                      help="port to listen on (default 8000; 0: any free port)")
    view.add_argument("--host", default="127.0.0.1",
                      help="address to listen on (default 127.0.0.1: this machine only)")
    view.add_argument("--no-browser", action="store_true", help="do not open a web browser")
    view.add_argument("--results", default=None, metavar="OUT",
                      help="output folder of a finished 'wsikit tile' run, to outline its tiles")
    view.set_defaults(run=_cmd_view)
    return parser


def _int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer of at least ``minimum``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def _storage_option(text: str) -> dict[str, Any]:
    """An argparse type: ``KEY=VALUE`` of ``--storage-option`` as a one-key dict."""
    out: dict[str, Any] = {}
    try:
        parse_storage_option(text, out)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return out


class _MergeOptions(argparse.Action):
    """Repeated ``--storage-option``s merged into one dict (dotted keys nest)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        merged = dict(getattr(namespace, self.dest, None) or {})
        _merge(merged, values)
        setattr(namespace, self.dest, merged)


def _merge(into: dict[str, Any], more: dict[str, Any]) -> None:
    for key, value in more.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


_positive_int = _int_at_least(1)
_nonnegative_int = _int_at_least(0)


def _size_pair(text: str) -> tuple[int, int]:
    """``N`` or ``N,M`` (or ``NxM``) positive integers as (h, w)."""
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


def _class_fraction(text: str) -> tuple[str, float]:
    """``CLASS=F`` of ``--min-label``."""
    name, sep, value = text.rpartition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected CLASS=F, got {text!r}")
    return name, _fraction(value)


def _error(message: str) -> None:
    print(f"wsikit: error: {message}", file=sys.stderr)


def _slide_error(path: str, exc: Exception) -> None:
    """Report a failure about a slide, naming it once."""
    _error(f"{path}: {exc}" if path not in str(exc) else str(exc))


def _format_number(value: float) -> str:
    return f"{value:.6g}"


# -- info -------------------------------------------------------------------------------------
def _cmd_info(args: argparse.Namespace) -> int:
    from .opener import open_slide

    try:
        with open_slide(args.slide, backend=args.backend) as slide:
            info = slide_info(slide)
    except Exception as exc:
        _slide_error(args.slide, exc)
        return 1
    if args.json:
        print(json.dumps(info, indent=2, default=str))
    else:
        _print_info(info)
    return 0


def _print_info(info: dict[str, Any]) -> None:
    """The text form of :func:`~wsikit.inventory.slide_info`'s report."""
    num = _format_number
    print(f"{info['path']}")
    print(f"  backend        {info['backend']}" + (f" (vendor {info['vendor']})" if info["vendor"] else ""))
    for level in info["levels"]:
        h, w = level["shape"]
        mpp = "" if level["mpp"] is None else f", {num(level['mpp'][0])} x {num(level['mpp'][1])} mpp"
        print(f"  level {level['level']:<8} {h} x {w} (h x w), downsample {num(level['downsample'])}{mpp}")
    print(f"  mpp            {'unknown' if info['mpp'] is None else ' x '.join(num(v) for v in info['mpp'])}")
    print(f"  magnification  {'unknown' if not info['magnification'] else num(info['magnification']) + 'x'}")
    if info["is_rgb"]:
        print("  pixels         RGB uint8 (brightfield)")
    else:
        sizes = info["sizes"]
        print(f"  pixels         {info['dtype']}, z={sizes['z']} c={sizes['c']} t={sizes['t']} (read as h, w, z, c, t)")
    if info["channel_names"]:
        print(f"  channels       {', '.join(info['channel_names'])}")
    assoc = ", ".join(f"{k} {tuple(v) if isinstance(v, list) else v}" for k, v in info["associated_images"].items())
    print(f"  associated     {assoc or 'none'}")


# -- thumbnail --------------------------------------------------------------------------------
def _cmd_thumbnail(args: argparse.Namespace) -> int:
    from PIL import Image

    from .opener import open_slide

    try:
        with open_slide(args.slide, backend=args.backend) as slide:
            labels = label_arguments(args.annotations, None, args.slide, slide)
            picture = overlay_picture(slide, args.size, tuple(args.overlay), shape=args.shape, stride=args.stride,
                                      pad=args.pad, level=args.level or 0, mpp=args.mpp,
                                      magnification=args.magnification, min_tissue=args.min_tissue,
                                      annotations=labels.get("annotations"))
        Image.fromarray(picture).save(args.out)
    except Exception as exc:
        _slide_error(args.slide, exc)
        return 1
    print(f"wrote {args.out} ({picture.shape[1]} x {picture.shape[0]})")
    return 0


# -- tile ---------------------------------------------------------------------------------------
def _cmd_tile(args: argparse.Namespace) -> int:
    from .distributed import run_jobs

    try:
        options = TileOptions(shape=args.shape, stride=args.stride, pad=args.pad, level=args.level, mpp=args.mpp,
                              magnification=args.magnification, min_tissue=args.min_tissue, format=args.format,
                              jpeg_quality=args.jpeg_quality, backend=args.backend, codec=args.codec,
                              passthrough=args.passthrough, annotations=args.annotations,
                              min_label=dict(args.min_label) or None, resampling=args.resampling)
    except (TypeError, ValueError) as exc:
        _error(str(exc))
        return 2
    out = os.path.abspath(args.out)
    slides, missing = find_slides(args.slides, skip=[out])
    results = [SlideResult(a if is_url(a) else os.path.abspath(a), None, "failed", reason=reason)
               for a, reason in missing]
    if not slides and not missing:
        _error("no slides given")
        return 2
    os.makedirs(out, exist_ok=True)
    jobs, settled = prepare_jobs(slides, out, options, args.overwrite)
    for early in settled:
        results.append(early)
        if early.status == "skipped":
            print(f"skipped {early.slide}: {early.reason}", file=sys.stderr)

    def report(result: SlideResult) -> None:
        if result.status == "failed":
            print(f"failed {result.slide}: {result.reason}", file=sys.stderr)

    if jobs:
        results.extend(run_jobs(jobs, workers=args.workers, scheduler=args.scheduler, retries=args.retries,
                                progress=False if args.quiet else None, on_result=report))
    _print_summary(results, out)
    return 1 if any(r.status == "failed" for r in results) else 0


def _print_summary(results: Sequence[SlideResult], out: str) -> None:
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


# -- view ---------------------------------------------------------------------------------------
def _cmd_view(args: argparse.Namespace) -> int:
    from .remote.urls import display_url
    from .viewer import serve

    if args.results is not None and not os.path.isdir(args.results):
        _error(f"--results {args.results}: no such folder")
        return 2
    try:
        return serve(args.path, args.host, args.port, open_browser=not args.no_browser, results=args.results)
    except OSError as exc:  # no such PATH, no slides in it, or the port is taken
        where = display_url(args.path) if exc.filename else f"cannot serve on {args.host}:{args.port}"
        _error(f"{where}: {exc.strerror or exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
