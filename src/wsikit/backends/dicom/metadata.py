"""What a DICOM whole-slide header says about the slide, as properties and resolution.

Properties are named ``dicom.<Keyword>`` after the DICOM keyword of the element, with
multiple values joined by a backslash (as DICOM writes them) and binary values in hex.
The resolution comes from Pixel Spacing (millimetres, row then column) in the shared
functional groups, else those of the first frame, else the top level; the objective
power from the first optical path's Objective Lens Power; the ICC colour profile from
ICC Profile (0028,2000) of the optical path read (:func:`icc_profile`).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..metadata import positive_float
from .header import element_value, first_sequence_item

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

PROPERTY_KEYWORDS = (
    "Manufacturer", "ManufacturerModelName", "DeviceSerialNumber", "SoftwareVersions", "InstitutionName",
    "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID", "FrameOfReferenceUID", "PyramidUID",
    "ContainerIdentifier", "StudyID", "StudyDate", "SeriesNumber", "SeriesDescription", "AcquisitionDateTime",
    "ContentDate", "ImageType", "DimensionOrganizationType", "PhotometricInterpretation", "SamplesPerPixel",
    "BitsAllocated", "BitsStored", "NumberOfFrames", "Rows", "Columns", "TotalPixelMatrixRows",
    "TotalPixelMatrixColumns", "TotalPixelMatrixFocalPlanes", "NumberOfOpticalPaths", "ImagedVolumeWidth",
    "ImagedVolumeHeight", "ImagedVolumeDepth", "LossyImageCompression", "LossyImageCompressionMethod",
    "LossyImageCompressionRatio", "FocusMethod", "ExtendedDepthOfField", "SpecimenLabelInImage",
    "BurnedInAnnotation", "ImageOrientationSlide", "RecommendedAbsentPixelCIELabValue",
)


def header_properties(ds: Dataset) -> dict[str, str]:
    """``dicom.<Keyword>`` -> value as text, for the elements of :data:`PROPERTY_KEYWORDS` present."""
    properties = {}
    for keyword in PROPERTY_KEYWORDS:
        value = element_value(ds, keyword)
        if value is not None:
            properties[f"dicom.{keyword}"] = _text(value)
    return properties


def resolution(ds: Dataset) -> tuple[tuple[float, float] | None, float | None]:
    """((i, j) microns per pixel, objective power), each None when the header does not say."""
    spacing = element_value(first_sequence_item(ds, "SharedFunctionalGroupsSequence", "PixelMeasuresSequence"),
                            "PixelSpacing")
    if spacing is None:
        spacing = element_value(first_sequence_item(ds, "PerFrameFunctionalGroupsSequence", "PixelMeasuresSequence"),
                                "PixelSpacing")
    if spacing is None:
        spacing = element_value(ds, "PixelSpacing")
    mpp = None
    try:
        if spacing is not None and len(spacing) == 2:
            mpp_i, mpp_j = positive_float(float(spacing[0]) * 1000.0), positive_float(float(spacing[1]) * 1000.0)
            mpp = (mpp_i, mpp_j) if mpp_i is not None and mpp_j is not None else None
    except (TypeError, ValueError):
        mpp = None
    power = positive_float(element_value(first_sequence_item(ds, "OpticalPathSequence"), "ObjectiveLensPower"))
    return mpp, power


def icc_profile(ds: Dataset, optical_path: str | None = None) -> bytes | None:
    """The ICC Profile (0028,2000) of the optical path ``optical_path`` (its identifier; the
    first path when None or not listed), else one at the top level; None without one."""
    items = element_value(ds, "OpticalPathSequence") or []
    chosen = [item for item in items if str(element_value(item, "OpticalPathIdentifier", "")) == optical_path]
    for item in chosen + list(items[:1]) + [ds]:
        value = element_value(item, "ICCProfile")
        if isinstance(value, (bytes, bytearray)) and value:
            return bytes(value)
    return None


def syntax_name(uid: str) -> str:
    """A transfer syntax's name (``JPEG Baseline (Process 1)``), or its UID when pydicom knows none."""
    try:
        from pydicom.uid import UID

        name = UID(uid).name
        return name if name and name != uid else uid
    except Exception:
        return str(uid)


def _text(value: Any) -> str:
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


__all__ = ["PROPERTY_KEYWORDS", "header_properties", "icc_profile", "resolution", "syntax_name"]
