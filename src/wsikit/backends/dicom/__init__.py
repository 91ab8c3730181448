"""DICOM whole-slide images (VL Whole Slide Microscopy), a single file or a series folder.

- :mod:`.backend`: :class:`DICOMBackend`, levels, optical paths and focal planes;
- :mod:`.header`: reading a file's header with pydicom, safely (:data:`WSI_SOP_CLASS`);
- :mod:`.series`: finding and grouping the instances of a series;
- :mod:`.positions`: where each frame of a level sits (TILED_FULL / TILED_SPARSE);
- :mod:`.levels`: a level's instances indexed and decoded, frame by frame;
- :mod:`.frames`: where each frame's bytes lie in a file (offset tables, fragments);
- :mod:`.codecs`: decoding frames from their bytes by transfer syntax;
- :mod:`.layout`: the pixel layout of reads and the fill of absent frames;
- :mod:`.metadata`: properties and resolution from the header.
"""
from .backend import DICOMBackend
from .header import WSI_SOP_CLASS
from .layout import cielab_to_rgb

__all__ = ["WSI_SOP_CLASS", "DICOMBackend", "cielab_to_rgb"]
