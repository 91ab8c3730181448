"""Every vendor format OpenSlide reads (Aperio, Hamamatsu, MIRAX, Philips, DICOM, ...).

- :mod:`.backend`: :class:`OpenSlideBackend`, reads through openslide-python;
- :mod:`.byte_counts`: the native tiles and associated images of a TIFF-based slide whose
  byte counts lie, which OpenSlide must not be asked to read.
"""
from .backend import OpenSlideBackend

__all__ = ["OpenSlideBackend"]
