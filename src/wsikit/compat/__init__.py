"""Compatibility layers: other libraries' interfaces over wsikit's readers.

- :mod:`wsikit.compat.openslide`: openslide-python's API (``import wsikit.compat.openslide
  as openslide``), including ``deepzoom.DeepZoomGenerator``.
"""
