"""The TIFF family read natively with tifffile + imagecodecs: Aperio SVS, generic pyramidal
TIFF, NDPI, Philips TIFF, OME-TIFF and PerkinElmer QPTIFF.

- :mod:`.backend`: :class:`TiffBackend`, levels as grids of native tiles or strips;
- :mod:`.planes`: how multi-page images (one page per channel / z / t) form levels;
(the IFD chain checks made before tifffile parses a file are in :mod:`wsikit.tiff_structure`).
"""
from .backend import TiffBackend

__all__ = ["TiffBackend"]
