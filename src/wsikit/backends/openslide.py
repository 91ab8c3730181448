"""OpenSlideBackend: every vendor format OpenSlide reads, through openslide-python.

The OpenSlide library comes from the openslide-bin wheel, so nothing is installed on the
system. OpenSlide reads at level 0 coordinates; wsikit's (i, j) in a level's frame map
to level 0 with the level's exact downsample (not its integer part, the seed's bug).
"""
from __future__ import annotations

import os
import threading
from contextlib import contextmanager

import numpy as np

from ..errors import CorruptSlideError, LimitError, SlideError, UnsupportedFormatError
from ..limits import check_allocation, get_max_bytes
from .base import SlideBackend, positive_float


# OpenSlide's own default tile cache size, shared by all handles of one backend.
_CACHE_BYTES = 32 * 1024**2
_MAX_IDLE_HANDLES = 16
# Handles inherited by a forked child, kept alive so that no destructor closes them there.
_INHERITED: list = []


def _openslide():
    import openslide

    return openslide


class OpenSlideBackend(SlideBackend):
    """Aperio, Hamamatsu, Leica, MIRAX, Philips, Sakura, Trestle, Ventana, generic TIFF, DICOM..."""

    name = "openslide"
    extensions = (".svs", ".tif", ".tiff", ".ndpi", ".vms", ".vmu", ".scn", ".mrxs", ".svslide", ".bif", ".dcm")

    @classmethod
    def can_read(cls, path: str) -> bool:
        try:
            return os.path.isfile(path) and _openslide().OpenSlide.detect_format(path) is not None
        except Exception:
            return False

    def _open(self, **options) -> None:
        if options:
            raise TypeError(f"unexpected options for OpenSlideBackend: {', '.join(options)}")
        openslide = _openslide()
        vendor = openslide.OpenSlide.detect_format(self.path)
        if vendor is None:
            raise UnsupportedFormatError(self.path, "OpenSlide does not recognise this file")
        if vendor == "dicom":
            self._check_dicom_first()
        self._start_pool()
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
        self._unreadable = _unreadable_tiff_parts(self.path, self._properties, len(self._level_shapes))
        for name in slide.associated_images:
            self._associated[name] = lambda name=name: self._associated_image(name)

    def _check_dicom_first(self) -> None:
        """Refuse a DICOM file that wsikit's own DICOM reader finds broken.

        OpenSlide's DICOM parser (4.0.1) crashes the process on some crafted files (an
        offset table pointing outside the pixel data, found by ``make fuzz``), and a
        crash cannot be caught. A file wsikit's reader does not recognise at all is left
        to OpenSlide.
        """
        from .dicom import DICOMBackend

        try:
            DICOMBackend(self.path, whole_series=False, cache_bytes=0).close()
        except CorruptSlideError as exc:
            raise CorruptSlideError(
                self.path, f"not handed to OpenSlide, whose DICOM reader can crash on broken files: {exc.reason}") from None
        except LimitError:
            raise  # OpenSlide would need that memory too, and aborts where it lacks it
        except SlideError:
            pass  # not a DICOM slide wsikit's reader takes: OpenSlide's call

    # -- handles -------------------------------------------------------------------------
    # An OpenSlide handle refuses every read after its first error, and a read running
    # on another thread at that moment fails with it. So each read borrows a handle that
    # no other thread uses, and a handle that saw an error is closed, never lent again:
    # one bad tile costs one reopen and cannot fail a good tile read next to it. The
    # handles share one tile cache, so more threads do not mean more cache memory.
    def _start_pool(self) -> None:
        openslide = _openslide()
        self._pool_lock = threading.Lock()
        self._idle: list = []
        self._cache = openslide.OpenSlideCache(_CACHE_BYTES) if hasattr(openslide, "OpenSlideCache") else None

    def _new_handle(self):
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
    def _borrowed(self):
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
        reason = self._unreadable.get(("associated", name))
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

    def _read_region(self, level: int, i: int, j: int, h: int, w: int, **kwargs) -> np.ndarray:
        if kwargs:
            raise TypeError(f"unexpected arguments for OpenSlideBackend.extract_region: {', '.join(kwargs)}")
        ds = self._downsamples[level]
        # OpenSlide wants (x, y) at level 0 and (width, height).
        location0 = (int(round(j * ds)), int(round(i * ds)))
        check_allocation((h, w, 4), 1, "region (RGBA, as OpenSlide reads it)", self.path)
        self._refuse_unreadable_tiles(level, i, j, h, w)
        try:
            with self._borrowed() as slide:
                image = slide.read_region(location0, level, (w, h))
        except _openslide().OpenSlideError as exc:
            raise CorruptSlideError(self.path, f"OpenSlide cannot read {(h, w)} at {(i, j)} of level {level}: {exc}") from None
        rgba = np.asarray(image)
        return rgba[:, :, :3]

    def _refuse_unreadable_tiles(self, level: int, i: int, j: int, h: int, w: int) -> None:
        bad = self._unreadable.get(level)
        if not bad:
            return
        (th, tw), tiles = bad
        for ti in range(i // th, (i + h - 1) // th + 1):
            for tj in range(j // tw, (j + w - 1) // tw + 1):
                reason = tiles.get((ti, tj))
                if reason:
                    raise CorruptSlideError(self.path, f"native tile ({ti}, {tj}) of level {level} cannot be read: {reason}")

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


def _unreadable_tiff_parts(path: str, properties: dict, levels: int) -> dict:
    """Parts of a TIFF-based slide that OpenSlide must not be asked to read.

    OpenSlide allocates a tile's byte count before reading it, and aborts the whole
    process when that fails; a byte count running past the end of the file is a lie
    that can only fail. Returns {level: ((tile h, tile w), {(ti, tj): reason})} and
    {("associated", name): reason}. Empty for other files or when tifffile cannot
    parse the file (OpenSlide then reads it as it likes).
    """
    from ..tiff_structure import has_tiff_magic, ifd_chain_problem

    if not has_tiff_magic(path) or ifd_chain_problem(path):
        return {}
    out: dict = {}
    try:
        import tifffile

        size = os.path.getsize(path)
        limit = get_max_bytes()
        wanted = {}
        for level in range(levels):
            key = tuple(properties.get(f"openslide.level[{level}].{k}", "") for k in ("height", "width", "tile-height", "tile-width"))
            if all(v.isdigit() for v in key):
                wanted.setdefault(tuple(int(v) for v in key), level)
        names = {}
        for prop, value in properties.items():
            if prop.startswith("openslide.associated.") and prop.endswith(".height"):
                name = prop[len("openslide.associated."):-len(".height")]
                width = properties.get(f"openslide.associated.{name}.width", "")
                if value.isdigit() and width.isdigit():
                    names.setdefault((int(value), int(width)), name)
        with tifffile.TiffFile(path) as tif:
            for page in tif.pages:
                shape = (int(page.imagelength), int(page.imagewidth))
                if page.is_tiled:
                    tile = (int(page.tilelength), int(page.tilewidth))
                    level = wanted.get(shape + tile)
                    name = None
                else:
                    tile = (max(1, min(int(page.rowsperstrip or shape[0]), shape[0])), shape[1])
                    level, name = None, names.get(shape)
                if level is None and name is None:
                    continue
                cols = max(1, -(-shape[1] // tile[1]))
                per_plane = max(1, -(-shape[0] // tile[0]) * cols)
                bad = {}
                for index, (offset, count) in enumerate(zip(page.dataoffsets, page.databytecounts)):
                    offset, count = int(offset), int(count)
                    if count and offset + count > size:
                        reason = f"its {count:,} bytes at offset {offset:,} run past the end of the file ({size:,} bytes)"
                    elif count > limit:
                        reason = f"its {count:,} bytes are over the limit of {limit:,} bytes"
                    else:
                        continue
                    bad.setdefault(divmod(index % per_plane, cols), reason)
                if not bad:
                    continue
                if level is not None:
                    out.setdefault(level, (tile, {}))[1].update(bad)
                else:
                    out[("associated", name)] = next(iter(bad.values()))
    except Exception:
        return out
    return out


def _close_quietly(slide) -> None:
    try:
        slide.close()
    except Exception:
        pass
