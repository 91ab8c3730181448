"""OpenSlideBackend: every vendor format OpenSlide reads, through openslide-python.

The OpenSlide library comes from the openslide-bin wheel, so nothing is installed on the
system. OpenSlide reads at level 0 coordinates; wsikit's (i, j) in a level's frame map
to level 0 with the level's exact downsample (not its integer part, the seed's bug).
"""
from __future__ import annotations

import os
import threading

import numpy as np

from ..errors import CorruptSlideError, UnsupportedFormatError
from .base import SlideBackend


def _openslide():
    import openslide

    return openslide


class OpenSlideBackend(SlideBackend):
    """Aperio, Hamamatsu, Leica, MIRAX, Philips, Sakura, Trestle, Ventana, generic TIFF, DICOM..."""

    name = "openslide"

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
        if openslide.OpenSlide.detect_format(self.path) is None:
            raise UnsupportedFormatError(self.path, "OpenSlide does not recognise this file")
        self._lock = threading.Lock()
        self._slide = self._new_handle()
        slide = self._slide
        self._level_shapes = [(int(h), int(w)) for w, h in slide.level_dimensions]
        self._downsamples = tuple(float(d) for d in slide.level_downsamples)
        self._properties = {str(k): str(v) for k, v in slide.properties.items()}
        mpp_x = _positive(self._properties.get("openslide.mpp-x"))
        mpp_y = _positive(self._properties.get("openslide.mpp-y"))
        if mpp_x and mpp_y:
            self._mpp = (mpp_y, mpp_x)
        self._objective_power = _positive(self._properties.get("openslide.objective-power"))
        self.channel_names = ["R", "G", "B"]
        for name in slide.associated_images:
            self._associated[name] = lambda name=name: self._associated_image(name)

    def _new_handle(self):
        openslide = _openslide()
        try:
            return openslide.OpenSlide(self.path)
        except openslide.OpenSlideUnsupportedFormatError as exc:
            raise UnsupportedFormatError(self.path, f"OpenSlide does not recognise this file: {exc}") from None
        except openslide.OpenSlideError as exc:
            raise CorruptSlideError(self.path, f"OpenSlide cannot open it: {exc}") from None

    def _associated_image(self, name: str) -> np.ndarray:
        try:
            image = self._slide.associated_images[name]
        except Exception as exc:
            self._recover()
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
        slide = self._slide
        try:
            image = slide.read_region(location0, level, (w, h))
        except _openslide().OpenSlideError as exc:
            # An OpenSlide handle refuses every read after its first error: reopen so
            # that other regions stay readable.
            self._recover(slide)
            raise CorruptSlideError(self.path, f"OpenSlide cannot read {(h, w)} at {(i, j)} of level {level}: {exc}") from None
        rgba = np.asarray(image)
        return rgba[:, :, :3]

    def _recover(self, broken=None) -> None:
        with self._lock:
            if broken is not None and self._slide is not broken:
                return  # another thread already reopened it
            try:
                self._slide = self._new_handle()
            except Exception:
                pass  # the next read reports the failure again

    def _close(self) -> None:
        slide = getattr(self, "_slide", None)
        if slide is not None:
            slide.close()

    def _after_fork(self) -> None:
        # OpenSlide keeps file handles and caches that a child must not share.
        self._lock = threading.Lock()
        self._slide = self._new_handle()


def _positive(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None
