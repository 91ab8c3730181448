"""The TIFF family read natively with tifffile + imagecodecs: Aperio SVS, generic pyramidal
TIFF, NDPI, Philips TIFF, OME-TIFF and PerkinElmer QPTIFF.

- :mod:`.backend`: :class:`TiffBackend`, which files it reads, its levels and associated images;
- :mod:`.decoding`: what can be decoded, and the decoding of native tiles and strips;
- :mod:`.metadata`: slide metadata from TIFF tags and each vendor's own fields;
- :mod:`.planes`: how multi-page images (one page per channel / z / t) form levels;
(the IFD chain checks made before tifffile parses a file are in :mod:`wsikit.tiff_structure`).
"""
from .backend import TiffBackend

__all__ = ["TiffBackend"]
