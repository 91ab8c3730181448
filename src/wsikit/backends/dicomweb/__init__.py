"""DICOM whole-slide images read from a DICOMweb server (QIDO-RS, WADO-RS).

- :mod:`.backend`: :class:`DICOMwebBackend`, the series as levels and associated images,
  read with the local DICOM backend's helpers (:mod:`wsikit.backends.dicom`);
- :mod:`.url`: series URLs (``https://host/dicom-web/studies/S/series/R``), credentials out of them;
- :mod:`.client`: HTTP GET with retries, backoff and time limits, errors without credentials;
- :mod:`.multipart`: multipart/related answers split into parts, checked;
- :mod:`.instances`: the series' instances from QIDO-RS and WADO-RS metadata;
- :mod:`.fetch`: frames fetched in batches, ahead of use, several requests in flight, cached.
"""
from .backend import DICOMwebBackend
from .client import DICOMwebError, DICOMwebNotFoundError
from .url import is_dicomweb_url

__all__ = ["DICOMwebBackend", "DICOMwebError", "DICOMwebNotFoundError", "is_dicomweb_url"]
