"""What one fuzz or corpus case does with a file: everything a user would, recorded.

:func:`exercise` opens a file with wsikit and reads every level tile by tile (with
``errors="skip"``), a thumbnail and every associated image. It never raises: it returns a
JSON-able summary whose ``problems`` list names every way the library broke its promise
(an exception that is not a clean wsikit error, an error that does not name the file, a
bad tile that reads on the second try, a good tile that changes after an error, an array
of the wrong shape). A crash, a hang or an out-of-memory kill is seen from outside, by
:mod:`fuzz.sandbox`.
"""
from __future__ import annotations

import hashlib
import os
import traceback

import numpy as np

# Errors a user may see from a broken file: wsikit's own, or the OS's for paths.
CLEAN_OS_ERRORS = (FileNotFoundError, PermissionError, IsADirectoryError)
MAX_TILES_PER_LEVEL = 400
MAX_LEVELS = 12


def digest(array: np.ndarray) -> str:
    array = np.ascontiguousarray(array)
    h = hashlib.blake2b(digest_size=12)
    h.update(f"{array.shape}{array.dtype}".encode())
    h.update(array.tobytes())
    return h.hexdigest()


def _names_file(named, path: str) -> bool:
    """Whether an error naming ``named`` names the slide at ``path``: the path itself, a
    file of the folder given (a DICOM series), or a file beside it (the same series)."""
    if named is None:
        return False
    named, path = os.path.realpath(named), os.path.realpath(path)
    folder = path if os.path.isdir(path) else os.path.dirname(path)
    return named == path or os.path.dirname(named) == folder


def _check_error(exc: BaseException, path: str, step: str, problems: list[str]) -> str:
    """Record ``exc`` as the outcome of ``step``; note a problem unless it is clean."""
    import wsikit

    if isinstance(exc, wsikit.SlideError):
        if not _names_file(exc.path, path):
            problems.append(f"{step}: {type(exc).__name__} names path {exc.path!r}, not the file")
        if not exc.reason:
            problems.append(f"{step}: {type(exc).__name__} has no reason")
        return f"{type(exc).__name__}: {exc.reason}"
    if isinstance(exc, CLEAN_OS_ERRORS):
        return f"{type(exc).__name__}: {exc}"
    problems.append(f"{step}: raw {type(exc).__module__}.{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=12)}")
    return f"RAW {type(exc).__name__}: {exc}"


def exercise(path: str, backend: str | None = None, tile_shapes: dict | None = None,
             max_tiles: int = MAX_TILES_PER_LEVEL) -> dict:
    """Open ``path`` and read everything; a summary with ``outcome`` and ``problems``.

    ``tile_shapes`` maps a level (as str) to the (h, w) tiles read from it, so that tiles
    line up with the file's native tiles and can be compared one by one; 256 otherwise.
    ``outcome`` is ``"error"`` when the file did not open, ``"ok"`` otherwise.
    """
    import warnings

    import wsikit

    problems: list[str] = []
    out = {"outcome": "ok", "problems": problems, "tiles": {}, "skipped": {}, "errors": {}}
    try:
        slide = wsikit.open_slide(path, backend=backend)
    except BaseException as exc:  # noqa: BLE001 - every exception is judged here
        if isinstance(exc, KeyboardInterrupt):
            raise
        out["outcome"] = "error"
        out["errors"]["open"] = _check_error(exc, path, "open", problems)
        return out
    out["backend"] = slide.name
    with slide, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            out["levels"] = [list(s) for s in slide.level_shapes]
            dict(slide.properties)
            repr(slide)
            _ = slide.mpp, slide.objective_power, slide.level_downsamples
        except BaseException as exc:  # noqa: BLE001
            out["errors"]["metadata"] = _check_error(exc, path, "metadata", problems)
            return out
        pixel_shape = (3,) if slide.is_rgb else tuple(slide.sizes)
        try:  # one region at the top left, so that callers can see its error's type
            h, w = slide.level_shapes[0]
            slide.extract_region((0, 0), (min(h, 256), min(w, 256)))
        except BaseException as exc:  # noqa: BLE001
            if isinstance(exc, KeyboardInterrupt):
                raise
            out["errors"]["probe"] = _check_error(exc, path, "first region", problems)
        for level in range(min(slide.level_count, MAX_LEVELS)):
            shape = tuple((tile_shapes or {}).get(str(level), (256, 256)))
            _read_level(slide, level, shape, pixel_shape, max_tiles, path, out)
        _read_level_in_threads(slide, tuple((tile_shapes or {}).get("0", (256, 256))), max_tiles, path, out)
        _read_thumbnail(slide, path, out)
        _read_associated(slide, path, out)
    return out


def _read_level(slide, level, shape, pixel_shape, max_tiles, path, out) -> None:
    problems = out["problems"]
    try:
        plan = _first_tiles(slide, level, shape, max_tiles)
        tiles = slide.read_plan(plan, workers=1, errors="skip")
        for tile in tiles:
            expected = tuple(shape) + pixel_shape
            if tile.image.shape != expected or tile.image.dtype != np.uint8:
                problems.append(f"level {level} tile {tile.coords}: {tile.image.shape} {tile.image.dtype}, expected {expected} uint8")
            out["tiles"][f"{level}:{tile.coords[0]}:{tile.coords[1]}"] = digest(tile.image)
        skipped = list(tiles.skipped_tiles)
    except BaseException as exc:  # noqa: BLE001
        if isinstance(exc, KeyboardInterrupt):
            raise
        out["errors"][f"level {level}"] = _check_error(exc, path, f"level {level}", problems)
        return
    for coords, message in skipped:
        out["skipped"][f"{level}:{coords[0]}:{coords[1]}"] = message
        if slide.path not in message:
            problems.append(f"level {level} tile {coords}: skipped with a message that does not name the file: {message}")
    if skipped:
        _check_recovery(slide, level, shape, skipped[0][0], path, out)


def _read_level_in_threads(slide, shape, max_tiles, path, out) -> None:
    """Level 0 again on several threads: the same tiles read, the same ones fail."""
    problems = out["problems"]
    try:
        plan = _first_tiles(slide, 0, shape, max_tiles)
        stream = slide.read_plan(plan, workers=3, errors="skip")
        tiles = {f"0:{t.coords[0]}:{t.coords[1]}": digest(t.image) for t in stream}
        skipped = {f"0:{c[0]}:{c[1]}" for c, _ in stream.skipped_tiles}
    except BaseException as exc:  # noqa: BLE001
        if isinstance(exc, KeyboardInterrupt):
            raise
        if "level 0" not in out["errors"]:  # a level that failed alone may fail again
            _check_error(exc, path, "level 0 on threads", problems)
        return
    alone = {k: v for k, v in out["tiles"].items() if k.startswith("0:")}
    if tiles != alone or skipped != {k for k in out["skipped"] if k.startswith("0:")}:
        differ = sorted(k for k in set(tiles) | set(alone) if tiles.get(k) != alone.get(k))
        problems.append(f"level 0 read on threads differs from one thread at tiles {differ[:5]}")


def _first_tiles(slide, level, shape, max_tiles):
    """The first ``max_tiles`` tiles of the padded grid, as ``tile_plan`` would list them.

    A broken header can declare a level of 10^6 x 10^6 pixels; listing all its tiles
    would measure the harness, not the reader.
    """
    from wsikit.tiling import grid_shape
    from wsikit.plan import TileSpec

    rows, cols = grid_shape(slide.level_shapes[level], shape, pad=True)
    if rows * cols <= max_tiles:
        return slide.tile_plan(shape=shape, level=level, pad=True)
    specs = []
    for n in range(max_tiles):
        i, j = (n // cols) * shape[0], (n % cols) * shape[1]
        specs.append(TileSpec((i, j), level, (i, j), tuple(shape), tuple(shape), (i, j)))
    return specs


def _check_recovery(slide, level, shape, bad, path, out) -> None:
    """A bad tile fails again on a second read; a good tile reads the same after it."""
    import wsikit

    problems = out["problems"]
    try:
        slide.extract_region(bad, shape, level=level)
    except wsikit.SlideError:
        pass
    except BaseException as exc:  # noqa: BLE001
        if isinstance(exc, KeyboardInterrupt):
            raise
        _check_error(exc, path, f"re-reading bad tile {bad} of level {level}", problems)
    else:
        problems.append(f"level {level} tile {bad}: failed once, then read without error")
    for key, expected in out["tiles"].items():
        lv, i, j = (int(v) for v in key.split(":"))
        if lv != level:
            continue
        try:
            again = digest(slide.extract_region((i, j), shape, level=level))
        except BaseException as exc:  # noqa: BLE001
            if isinstance(exc, KeyboardInterrupt):
                raise
            problems.append(f"level {level} tile {(i, j)}: read once, then failed after an error on another tile: {exc!r}")
        else:
            if again != expected:
                problems.append(f"level {level} tile {(i, j)}: pixels changed after an error on another tile")
        break


def _read_thumbnail(slide, path, out) -> None:
    try:
        thumb = slide.get_thumbnail((64, 64))
        if thumb.ndim != 3 or thumb.shape[2] != 3 or thumb.dtype != np.uint8 or max(thumb.shape[:2]) > 64:
            out["problems"].append(f"thumbnail of shape {thumb.shape} {thumb.dtype}")
    except BaseException as exc:  # noqa: BLE001
        if isinstance(exc, KeyboardInterrupt):
            raise
        out["errors"]["thumbnail"] = _check_error(exc, path, "thumbnail", out["problems"])


def _read_associated(slide, path, out) -> None:
    try:
        names = list(slide.associated_images)
    except BaseException as exc:  # noqa: BLE001
        if isinstance(exc, KeyboardInterrupt):
            raise
        out["errors"]["associated"] = _check_error(exc, path, "associated images", out["problems"])
        return
    for name in names:
        try:
            image = slide.associated_images[name]
            if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                out["problems"].append(f"associated image {name!r} of shape {image.shape} {image.dtype}")
        except BaseException as exc:  # noqa: BLE001
            if isinstance(exc, KeyboardInterrupt):
                raise
            out["errors"][f"associated {name}"] = _check_error(exc, path, f"associated image {name!r}", out["problems"])
