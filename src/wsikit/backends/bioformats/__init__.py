"""Every format Bio-Formats reads (CZI, ND2, LIF, VSI, ...), in a JVM through JPype.

- :mod:`.backend`: :class:`BioFormatsBackend`;
- :mod:`.java`: finding a Java runtime and the Bio-Formats jar, starting the one JVM.
"""
from .backend import BioFormatsBackend

__all__ = ["BioFormatsBackend"]
