"""wsikit: read whole-slide images from any scanner format and turn them into tiles.

    >>> import wsikit
    >>> with wsikit.open_slide("slide.svs") as slide:
    ...     region = slide.extract_region((1000, 2000), (512, 512))   # (i, j), (h, w)
    ...     for tile in slide.generate_tiles(shape=256, pad=True):
    ...         ...

Coordinates are (i, j) = (row, column) everywhere.

``import wsikit`` loads no backend library (OpenSlide, pydicom, JPype): the backend classes
below are imported on first use, and :func:`open_slide` imports only the backends it tries.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from .backends import SkippedTileWarning, SlideBackend, backend_names, register_backend
from .errors import BackendUnavailableError, CorruptSlideError, LimitError, SlideError, UnsupportedFormatError
from .limits import get_max_bytes, set_max_bytes
from .opener import open_slide
from .plan import Plan, TileSpec
from .tile import Tile
from .tissue import TissueMask, tissue_mask
from .annotations import AnnotationError, Annotations, read_annotations
from .dataset import TileDataset

if TYPE_CHECKING:  # the checker sees the real classes; at run time __getattr__ imports them
    from .backends.bioformats import BioFormatsBackend
    from .backends.dicom import DICOMBackend
    from .backends.openslide import OpenSlideBackend
    from .backends.tiff import TiffBackend

__version__ = "0.1.0"

# Backend classes import their dependencies (OpenSlide, pydicom, JPype) only when used.
_LAZY_BACKENDS = {
    "TiffBackend": "wsikit.backends.tiff",
    "OpenSlideBackend": "wsikit.backends.openslide",
    "DICOMBackend": "wsikit.backends.dicom",
    "BioFormatsBackend": "wsikit.backends.bioformats",
}


def __getattr__(name: str) -> type[SlideBackend]:
    """The backend class ``name`` (TiffBackend, OpenSlideBackend, ...), imported now."""
    if name in _LAZY_BACKENDS:
        backend_class: type[SlideBackend] = getattr(importlib.import_module(_LAZY_BACKENDS[name]), name)
        return backend_class
    raise AttributeError(f"module 'wsikit' has no attribute {name!r}")


__all__ = [
    "open_slide", "SlideBackend", "Tile", "TileSpec", "Plan",
    "TiffBackend", "OpenSlideBackend", "DICOMBackend", "BioFormatsBackend",
    "SlideError", "UnsupportedFormatError", "CorruptSlideError", "LimitError", "BackendUnavailableError",
    "SkippedTileWarning", "get_max_bytes", "set_max_bytes", "backend_names", "register_backend",
    "TissueMask", "tissue_mask",
    "read_annotations", "Annotations", "AnnotationError", "TileDataset",
]
