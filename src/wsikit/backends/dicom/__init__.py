"""DICOM whole-slide images (VL Whole Slide Microscopy), a single file or a series folder.

- :mod:`.backend`: :class:`DICOMBackend`, levels, optical paths and focal planes;
- :mod:`.series`: finding and grouping the instances of a series;
- :mod:`.frames`: where each frame's bytes lie in a file (offset tables, fragments);
- :mod:`.codecs`: decoding frames from their bytes by transfer syntax.
"""
from .backend import DICOMBackend, cielab_to_rgb

__all__ = ["DICOMBackend", "cielab_to_rgb"]
