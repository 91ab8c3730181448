"""Every format Bio-Formats reads (CZI, ND2, LIF, VSI, ...), in a JVM through JPype.

- :mod:`.backend`: :class:`BioFormatsBackend`;
- :mod:`.signatures`: which files Bio-Formats is asked about (name endings and leading bytes);
- :mod:`.series`: a Bio-Formats series as levels, tiles and pixel type;
- :mod:`.ome_metadata`: properties, channel names, pixel size and magnification;
- :mod:`.java`: finding a Java runtime and the Bio-Formats jar, starting the one JVM.
"""
from .backend import BioFormatsBackend

__all__ = ["BioFormatsBackend"]
