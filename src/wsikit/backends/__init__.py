"""The readers, in the order ``open_slide`` prefers them."""
from __future__ import annotations

import importlib

from .base import SkippedTileWarning, SlideBackend

# name -> (module, class). Modules are imported on first use, so that importing wsikit
# loads no heavy dependency (and never starts a JVM).
_REGISTRY: dict[str, tuple[str, str]] = {
    "tiff": ("wsikit.backends.tiff", "TiffBackend"),
    "dicom": ("wsikit.backends.dicom", "DICOMBackend"),
    "dicomweb": ("wsikit.backends.dicomweb", "DICOMwebBackend"),
    "openslide": ("wsikit.backends.openslide", "OpenSlideBackend"),
    "bioformats": ("wsikit.backends.bioformats", "BioFormatsBackend"),
}


def register_backend(name: str, module: str, cls: str, *, before: str | None = None) -> None:
    """Add a backend to the search order (before ``before`` when given, else last)."""
    items = [(k, v) for k, v in _REGISTRY.items() if k != name]
    position = next((n for n, (k, _) in enumerate(items) if k == before), len(items))
    items.insert(position, (name, (module, cls)))
    _REGISTRY.clear()
    _REGISTRY.update(items)


def backend_names() -> list[str]:
    return list(_REGISTRY)


def backend_class(name: str) -> type[SlideBackend]:
    if not isinstance(name, str):
        raise TypeError(f"backend must be a name (str) or None, got {name!r}")
    if name not in _REGISTRY:
        raise ValueError(f"backend must be one of {', '.join(_REGISTRY)}; got {name!r}")
    module, cls = _REGISTRY[name]
    return getattr(importlib.import_module(module), cls)


def backend_class_or_none(name: str) -> type[SlideBackend] | None:
    """The backend class, or None when its optional dependencies are not installed."""
    try:
        return backend_class(name)
    except ImportError:
        return None


def slide_extensions() -> tuple[str, ...]:
    """File endings taken as slides when a folder is searched: those of every backend that
    can be imported here, longest first (so ``.ome.tiff`` is matched before ``.tiff``)."""
    found: set[str] = set()
    for name in _REGISTRY:
        cls = backend_class_or_none(name)
        if cls is not None:
            found.update(cls.extensions)
    return tuple(sorted(found, key=lambda e: (-len(e), e)))


__all__ = ["SlideBackend", "SkippedTileWarning", "backend_class", "backend_class_or_none", "backend_names",
           "register_backend", "slide_extensions"]
