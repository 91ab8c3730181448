"""OpenSlideBackend: every vendor format OpenSlide reads, through openslide-python.

The OpenSlide library comes from the openslide-bin wheel, so nothing is installed on the
system. OpenSlide reads at level 0 coordinates; wsikit's (i, j) in a level's frame map
to level 0 with the level's exact downsample (not its integer part, as the seed did:
PathML's slide backends, which wsikit replaces).

OpenSlide runs in this process, in C: a file that makes it abort takes the process with
it. So nothing is asked of it that is known to fail that way: native tiles or associated
images larger than wsikit's memory limit, or whose TIFF byte counts lie
(:mod:`.byte_counts`), are refused with a SlideError first. Whether a file should reach
OpenSlide at all (a DICOM file wsikit's DICOM reader finds broken does not) is decided
by :func:`wsikit.open_slide`, not here.

Plain images: ``OpenSlideBackend(path)`` on a PNG, JPEG, TIFF (or BMP, GIF, WebP) image
that OpenSlide does not recognise reads it through Pillow, as openslide-python's
``open_slide`` falls back to its ``ImageSlide``: one level, the pixels Pillow gives when it
converts the image to RGBA (a 16-bit grey TIFF saturates at 255, as Pillow converts it),
alpha dropped. ``can_read`` stays OpenSlide's own answer, so that ``open_slide`` without
``backend=`` still hands plain images to the readers that recognise them.
The embedded ICC profile is ``icc_profile`` (OpenSlide 4's, or the image's own).
"""
from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from ...errors import CorruptSlideError, UnsupportedFormatError
from ...limits import check_allocation
from ..base import SlideBackend
from ..metadata import positive_float
from .byte_counts import UnreadableParts, unreadable_tiff_parts
from .plain import open_plain_image

if TYPE_CHECKING:
    from openslide import OpenSlide, OpenSlideCache

# OpenSlide's own default tile cache size, shared by all handles of one backend.
_CACHE_BYTES = 32 * 1024**2
_MAX_IDLE_HANDLES = 16
# Handles inherited by a forked child, kept alive so that no destructor closes them there.
_INHERITED: list[tuple[list[OpenSlide], OpenSlideCache | None]] = []


def _openslide() -> ModuleType:
    # Imported on first use: importing wsikit loads no OpenSlide library.
    import openslide

    return openslide


class OpenSlideBackend(SlideBackend):
    """Aperio, Hamamatsu, Leica, MIRAX, Philips, Sakura, Trestle, Ventana, generic TIFF, DICOM..."""

    name = "openslide"
    extensions = (".svs", ".tif", ".tiff", ".ndpi", ".vms", ".vmu", ".scn", ".mrxs", ".svslide", ".bif", ".dcm")

    _pool_lock: threading.Lock
    _idle: list[OpenSlide]  # open handles no read is using
    _cache: OpenSlideCache | None
    _downsamples: tuple[float, ...]
    _unreadable: UnreadableParts
    _plain: np.ndarray | None = None  # a plain image's RGB pixels, read through Pillow

    @classmethod
    def can_read(cls, path: str) -> bool:
        try:
            return os.path.isfile(path) and _openslide().OpenSlide.detect_format(path) is not None
        except Exception:
            return False

    def _open(self) -> None:
        openslide = _openslide()
        self._start_pool()
        if openslide.OpenSlide.detect_format(self.path) is None:
            plain = open_plain_image(self.path)
            if plain is None:
                raise UnsupportedFormatError(self.path, "OpenSlide does not recognise this file (nor Pillow as an image)")
            self._plain, self.icc_profile, self._properties = plain.pixels, plain.icc_profile, plain.properties
            self._level_shapes, self._downsamples, self.channel_names = [plain.pixels.shape[:2]], (1.0,), ["R", "G", "B"]
            return
        slide = self._new_handle()
        self._idle.append(slide)  # lent to reads once opening is done; closed with the rest
        self._level_shapes = [(int(h), int(w)) for w, h in slide.level_dimensions]
        self._downsamples = tuple(float(d) for d in slide.level_downsamples)
        self._properties = {str(k): str(v) for k, v in slide.properties.items()}
        mpp_x = positive_float(self._properties.get("openslide.mpp-x"))
        mpp_y = positive_float(self._properties.get("openslide.mpp-y"))
        if mpp_x and mpp_y:
            self._mpp = (mpp_y, mpp_x)
        self._objective_power = positive_float(self._properties.get("openslide.objective-power"))
        self.channel_names = ["R", "G", "B"]
        self._check_native_tiles()
        self._unreadable = unreadable_tiff_parts(self.path, self._properties, len(self._level_shapes))
        for name in slide.associated_images:
            self._associated[name] = partial(self._associated_image, name)
        self.icc_profile = getattr(slide, "_profile", None)  # the bytes openslide-python read (OpenSlide 4)

    # -- handles -------------------------------------------------------------------------
    # An OpenSlide handle refuses every read after its first error, and a read running
    # on another thread at that moment fails with it. So each read borrows a handle that
    # no other thread uses, and a handle that saw an error is closed, never lent again:
    # one bad tile costs one reopen and cannot fail a good tile read next to it. The
    # handles share one tile cache, so more threads do not mean more cache memory.
    def _start_pool(self) -> None:
        openslide = _openslide()
        self._pool_lock = threading.Lock()
        self._idle = []
        self._cache = openslide.OpenSlideCache(_CACHE_BYTES) if hasattr(openslide, "OpenSlideCache") else None

    def _new_handle(self) -> OpenSlide:
        openslide = _openslide()
        try:
            slide = openslide.OpenSlide(self.path)
        except openslide.OpenSlideUnsupportedFormatError as exc:
            raise UnsupportedFormatError(self.path, f"OpenSlide does not recognise this file: {exc}") from None
        except openslide.OpenSlideError as exc:
            raise CorruptSlideError(self.path, f"OpenSlide cannot open it: {exc}") from None
        if self._cache is not None:
            slide.set_cache(self._cache)
        return slide

    @contextmanager
    def _borrowed(self) -> Iterator[OpenSlide]:
        with self._pool_lock:
            slide = self._idle.pop() if self._idle else None
        if slide is None:
            slide = self._new_handle()
        try:
            yield slide
        except BaseException:
            _close_quietly(slide)
            raise
        with self._pool_lock:
            if self._closed or len(self._idle) >= _MAX_IDLE_HANDLES:
                keep = False
            else:
                self._idle.append(slide)
                keep = True
        if not keep:
            _close_quietly(slide)

    def _check_native_tiles(self) -> None:
        # OpenSlide decodes whole native tiles and aborts the process when it cannot
        # allocate one: refuse a file declaring tiles over the limit before any read.
        for level in range(len(self._level_shapes)):
            th = self._properties.get(f"openslide.level[{level}].tile-height")
            tw = self._properties.get(f"openslide.level[{level}].tile-width")
            if th is not None and tw is not None and th.isdigit() and tw.isdigit():
                check_allocation((int(th), int(tw), 4), 1, f"native tile of level {level}", self.path)

    def _associated_image(self, name: str) -> np.ndarray:
        h = self._properties.get(f"openslide.associated.{name}.height", "0")
        w = self._properties.get(f"openslide.associated.{name}.width", "0")
        if h.isdigit() and w.isdigit():
            check_allocation((int(h), int(w), 4), 1, f"associated image {name!r}", self.path)
        reason = self._unreadable.associated.get(name)
        if reason:
            raise CorruptSlideError(self.path, f"associated image {name!r} cannot be read: {reason}")
        try:
            with self._borrowed() as slide:
                image = slide.associated_images[name]
        except _openslide().OpenSlideError as exc:
            raise CorruptSlideError(self.path, f"associated image {name!r} cannot be read: {exc}") from None
        return np.ascontiguousarray(np.asarray(image.convert("RGB")))

    @property
    def level_downsamples(self) -> tuple[float, ...]:
        return self._downsamples

    def _read_region(self, level: int, i: int, j: int, h: int, w: int) -> np.ndarray:
        if self._plain is not None:
            return self._plain[i : i + h, j : j + w]
        ds = self._downsamples[level]
        # OpenSlide wants (x, y) at level 0 and (width, height).
        location0 = (int(round(j * ds)), int(round(i * ds)))
        check_allocation((h, w, 4), 1, "region (RGBA, as OpenSlide reads it)", self.path)
        problem = self._unreadable.tile_problem(level, i, j, h, w)
        if problem is not None:
            (ti, tj), reason = problem
            raise CorruptSlideError(self.path, f"native tile ({ti}, {tj}) of level {level} cannot be read: {reason}")
        try:
            with self._borrowed() as slide:
                image = slide.read_region(location0, level, (w, h))
        except _openslide().OpenSlideError as exc:
            raise CorruptSlideError(
                self.path, f"OpenSlide cannot read {(h, w)} at {(i, j)} of level {level}: {exc}") from None
        rgba = np.asarray(image)
        return rgba[:, :, :3]

    def read_rgba(self, location0: tuple[int, int], level: int, size: tuple[int, int]) -> np.ndarray | None:
        """OpenSlide's own ``read_region`` (level-0 (x, y), (width, height)) as an (h, w, 4)
        RGBA array, unpremultiplied as openslide-python gives it (transparent outside the
        slide); None for a plain image (no OpenSlide handle). For :mod:`wsikit.compat.openslide`."""
        self._ensure_usable()
        if self._plain is not None:
            return None
        check_allocation((size[1], size[0], 4), 1, "region (RGBA)", self.path)
        try:
            with self._borrowed() as slide:
                return np.asarray(slide.read_region(location0, level, size))
        except _openslide().OpenSlideError as exc:
            raise CorruptSlideError(self.path, f"OpenSlide cannot read {size} at {location0} of level {level}: "
                                               f"{exc}") from None

    def _close(self) -> None:
        with self._pool_lock:
            idle, self._idle = self._idle, []
        for slide in idle:
            _close_quietly(slide)

    def _after_fork(self) -> None:
        # Handles (file descriptors, caches, locks) inherited from the parent may have
        # been in use by its threads at the fork: never touch them here, not even to
        # close them; they stay referenced so that no destructor runs on them.
        _INHERITED.append((self._idle, self._cache))
        self._start_pool()


def _close_quietly(slide: Any) -> None:
    # Closing must not fail: the handle is dropped either way.
    try:
        slide.close()
    except Exception:
        pass
