"""Synthetic DICOM whole-slide series for tests, the demo and benchmarks.

:func:`write_dicom_series` writes a VL Whole Slide Microscopy series to a folder, one
file per instance: pyramid levels (VOLUME), and a THUMBNAIL, LABEL and OVERVIEW image,
from a numpy image, in any common transfer syntax, TILED_FULL or TILED_SPARSE, with a
basic, extended or no offset table, frames in one or several fragments, levels split by
concatenation, several focal planes. The files carry the attributes the standard makes
mandatory, so other readers (OpenSlide 4, wsidicom) read them too.

Frames are encoded by imagecodecs (RLE by pydicom). What a reader should give back is
returned with the files: the pixels of each level with absent frames filled.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..backends.dicom.header import WSI_SOP_CLASS
from ..backends.dicom.layout import cielab_to_rgb

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

# name -> (transfer syntax UID, lossless)
TRANSFER_SYNTAXES = {
    "jpeg": ("1.2.840.10008.1.2.4.50", False),
    "jpeg-rgb": ("1.2.840.10008.1.2.4.50", False),
    "jpeg-extended": ("1.2.840.10008.1.2.4.51", False),
    "jpeg-lossless": ("1.2.840.10008.1.2.4.70", True),
    "jpegls": ("1.2.840.10008.1.2.4.80", True),
    "jpegls-near": ("1.2.840.10008.1.2.4.81", False),
    "jpeg2000-lossless": ("1.2.840.10008.1.2.4.90", True),
    "jpeg2000": ("1.2.840.10008.1.2.4.91", False),
    "htj2k-lossless": ("1.2.840.10008.1.2.4.201", True),
    "htj2k": ("1.2.840.10008.1.2.4.203", False),
    "rle": ("1.2.840.10008.1.2.5", True),
    "explicit": ("1.2.840.10008.1.2.1", True),
    "implicit": ("1.2.840.10008.1.2", True),
}
# A fixed root keeps files reproducible; the suffixes come from a counter per series.
_UID_ROOT = "1.2.826.0.1.3680043.10.1127."


@dataclass
class DicomSample:
    """What :func:`write_dicom_series` wrote, and what a reader should read back."""

    folder: str
    files: list[str]
    transfer_syntax: str
    lossless: bool
    tile: tuple[int, int]
    levels: list[np.ndarray]  # expected pixels of each level (first focal plane), absent frames filled
    planes: list[list[np.ndarray]] = field(default_factory=list)  # [level][plane]
    associated: dict[str, np.ndarray] = field(default_factory=dict)  # thumbnail / label / macro sources
    missing: set[tuple[int, int]] = field(default_factory=set)  # (row, column) of level-0 frames left out (sparse)
    fill: tuple[int, ...] = (255, 255, 255)

    @property
    def level_files(self) -> list[str]:
        return [f for f in self.files if os.path.basename(f).startswith("level")]


def label_image(shape: tuple[int, int] = (200, 400), seed: int = 1) -> np.ndarray:
    """A label-like RGB picture: white card, dark barcode stripes, a coloured corner."""
    rng = np.random.default_rng(seed)
    image = np.full(shape + (3,), 250, dtype=np.uint8)
    h, w = shape
    bars = rng.integers(0, 2, size=w // 4).repeat(4)[: w - w // 8]
    image[h // 4 : h // 2, w // 16 : w // 16 + len(bars)][:, bars == 1] = 20
    image[: h // 5, : w // 5] = (200, 40, 40)
    return image


def _reduce(image: np.ndarray, factor: int) -> np.ndarray:
    from ..pixels import block_mean

    top = np.iinfo(image.dtype).max
    return np.clip(np.rint(block_mean(image, factor)), 0, top).astype(image.dtype)


def _resize(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    from ..pixels import resample_area, resize_area

    if image.dtype == np.uint8:  # Pillow's box filter: much faster than the exact average
        return resize_area(image.reshape(image.shape[:2] + (-1,)), shape).reshape(tuple(shape) + image.shape[2:])
    return resample_area(image, shape)


class _Uids:
    def __init__(self, seed: int) -> None:
        self.prefix = f"{_UID_ROOT}{seed}."
        self.n = 0

    def __call__(self) -> str:
        self.n += 1
        return f"{self.prefix}{self.n}"


def _encode_frames(tiles: list[np.ndarray], name: str, quality: int, photometric_in: str) -> tuple[list[bytes], str]:
    """Encoded frames and the Photometric Interpretation that describes them."""
    import imagecodecs

    gray = tiles[0].ndim == 2
    photometric = "MONOCHROME2" if gray else "RGB"
    if name in ("jpeg", "jpeg-extended"):
        if gray:
            return [bytes(imagecodecs.jpeg8_encode(t, level=quality)) for t in tiles], photometric
        return [bytes(imagecodecs.jpeg8_encode(t, level=quality, subsampling="422")) for t in tiles], "YBR_FULL_422"
    if name == "jpeg-rgb":
        outcolorspace = None if gray else "RGB"
        frames = [bytes(imagecodecs.jpeg8_encode(t, level=quality, outcolorspace=outcolorspace)) for t in tiles]
        return frames, photometric
    if name == "jpeg-lossless":
        return [bytes(imagecodecs.jpeg8_encode(t, lossless=True, predictor=1)) for t in tiles], photometric
    if name == "jpegls":
        return [bytes(imagecodecs.jpegls_encode(t, level=0)) for t in tiles], photometric
    if name == "jpegls-near":
        return [bytes(imagecodecs.jpegls_encode(t, level=2)) for t in tiles], photometric
    if name == "jpeg2000-lossless":
        frames = [bytes(imagecodecs.jpeg2k_encode(t, level=0, codecformat="J2K", reversible=True, mct=not gray))
                  for t in tiles]
        return frames, photometric if gray else "YBR_RCT"
    if name == "jpeg2000":
        frames = [bytes(imagecodecs.jpeg2k_encode(t, level=45, codecformat="J2K", reversible=False, mct=not gray))
                  for t in tiles]
        return frames, photometric if gray else "YBR_ICT"
    if name == "htj2k-lossless":
        return [bytes(imagecodecs.htj2k_encode(t, reversible=True)) for t in tiles], photometric if gray else "YBR_RCT"
    if name == "htj2k":
        frames = [bytes(imagecodecs.htj2k_encode(t, level=0.01, reversible=False)) for t in tiles]
        return frames, photometric if gray else "YBR_ICT"
    if name == "rle":
        from pydicom.pixels.encoders import RLELosslessEncoder

        h, w = tiles[0].shape[:2]
        samples = 1 if gray else 3
        options = dict(rows=h, columns=w, samples_per_pixel=samples, bits_allocated=8 * tiles[0].itemsize,
                       bits_stored=8 * tiles[0].itemsize, pixel_representation=0,
                       photometric_interpretation=photometric, number_of_frames=1, planar_configuration=0)
        return [bytes(RLELosslessEncoder.encode(np.ascontiguousarray(t), **options)) for t in tiles], photometric
    if name in ("explicit", "implicit"):
        return [np.ascontiguousarray(t).astype(t.dtype.newbyteorder("<")).tobytes() for t in tiles], photometric
    raise ValueError(f"transfer_syntax must be one of {', '.join(TRANSFER_SYNTAXES)}, got {name!r}")


def _tiles(image: np.ndarray, tile: tuple[int, int], fill: Sequence[int]) -> tuple[list[np.ndarray], tuple[int, int]]:
    """Row-major frames of ``tile`` (h, w), edge frames padded with ``fill``."""
    th, tw = tile
    h, w = image.shape[:2]
    rows, cols = -(-h // th), -(-w // tw)
    padded = np.empty((rows * th, cols * tw) + image.shape[2:], dtype=image.dtype)
    padded[...] = np.asarray(fill, dtype=image.dtype) if image.ndim == 3 else fill[0]
    padded[:h, :w] = image
    tiles = [padded[r * th : (r + 1) * th, c * tw : (c + 1) * tw] for r in range(rows) for c in range(cols)]
    return tiles, (rows, cols)


def write_dicom_series(folder: str | os.PathLike[str], image: np.ndarray | list[np.ndarray] | None = None, *,
                       shape: tuple[int, int] = (1024, 1536), tile: int | tuple[int, int] = 256,
                       factors: Sequence[int] = (4,), transfer_syntax: str = "jpeg", sparse: bool = False,
                       missing: set[tuple[int, int]] | None = None, offset_table: str = "basic",
                       fragments_per_frame: int = 1, concatenate: int = 1, thumbnail: bool = True, label: bool = True,
                       overview: bool = True, mpp: float = 0.25, objective_power: float | None = 40.0,
                       quality: int = 90, seed: int = 0, absent_lab: Sequence[int] | None = None,
                       plane_spacing_um: float = 1.0) -> DicomSample:
    """Write a DICOM WSI series of ``image`` (or of a synthetic H&E picture of ``shape``).

    ``image``: (h, w, 3) uint8 RGB, (h, w) uint8/uint16 grayscale, or a list of such
    images, one per focal plane. ``factors``: the reduction of each level below level 0
    (block averages, so a level is ceil(h / f) x ceil(w / f)). ``transfer_syntax``: a name
    of :data:`TRANSFER_SYNTAXES`. ``sparse``: TILED_SPARSE, frames written in reverse
    order with their positions, leaving out the level-0 frames ``missing`` (a set of
    (row, column); default every third one). ``offset_table``: "basic", "extended" or
    "none". ``concatenate``: split level 0 into that many concatenated instances.
    """
    from .svs import tissue_texture

    folder = os.fspath(folder)
    os.makedirs(folder, exist_ok=True)
    if transfer_syntax not in TRANSFER_SYNTAXES:
        raise ValueError(f"transfer_syntax must be one of {', '.join(TRANSFER_SYNTAXES)}, got {transfer_syntax!r}")
    if offset_table not in ("basic", "extended", "none"):
        raise ValueError(f"offset_table must be 'basic', 'extended' or 'none', got {offset_table!r}")
    uid, lossless = TRANSFER_SYNTAXES[transfer_syntax]
    frame: tuple[int, int] = (tile, tile) if isinstance(tile, int) else (int(tile[0]), int(tile[1]))
    if image is None:
        planes0 = [tissue_texture(shape, seed)]
    else:
        planes0 = [np.asarray(p) for p in (image if isinstance(image, list) else [image])]
    gray = planes0[0].ndim == 2
    fill: tuple[int, ...]
    if absent_lab is not None:
        fill = tuple(int(v) for v in cielab_to_rgb([float(v) for v in absent_lab]))
    else:
        fill = (0,) if gray else (255, 255, 255)
    uids = _Uids(seed)
    common = _common_dataset(uids, mpp, objective_power, gray)
    sample = DicomSample(folder, [], uid, lossless, frame, [], fill=fill if not gray else (fill[0],))

    level_planes = [planes0] + [[_reduce(p, f) for p in planes0] for f in factors]
    rows0, cols0 = -(-planes0[0].shape[0] // frame[0]), -(-planes0[0].shape[1] // frame[1])
    if sparse:
        if missing is None:
            missing = {(r, c) for r in range(rows0) for c in range(cols0) if (r * cols0 + c) % 3 == 1}
        else:
            missing = set(missing)
    else:
        missing = set()
    sample.missing = missing
    for k, planes in enumerate(level_planes):
        level_missing = missing if k == 0 else set()
        expected = []
        for p in planes:
            e = p.copy()
            for r, c in level_missing:
                e[r * frame[0] : (r + 1) * frame[0], c * frame[1] : (c + 1) * frame[1]] = fill if not gray else fill[0]
            expected.append(e)
        sample.planes.append(expected)
        sample.levels.append(expected[0])
        parts = concatenate if k == 0 else 1
        sample.files += _write_image(
            folder, f"level{k}", "VOLUME", planes, frame, transfer_syntax, common, uids, sparse=sparse,
            missing=level_missing, offset_table=offset_table, fragments=fragments_per_frame, parts=parts,
            mpp=mpp * (planes0[0].shape[0] / planes[0].shape[0]), quality=quality, fill=fill, absent_lab=absent_lab,
            plane_spacing_um=plane_spacing_um, instance_number=k + 1)
    h0, w0 = planes0[0].shape[:2]
    extras = []
    if thumbnail:
        scale = 256 / max(h0, w0)
        thumb_shape = (max(1, round(h0 * scale)), max(1, round(w0 * scale)))
        extras.append(("THUMBNAIL", "thumbnail", _resize(planes0[0], thumb_shape)))
    if label:
        image_label = label_image()
        extras.append(("LABEL", "label", image_label[:, :, 0] if gray else image_label))
    if overview:
        macro = label_image((240, 720), seed=2)
        macro = macro[:, :, 0].astype(planes0[0].dtype) if gray else macro
        macro[40:200, 200:700] = _resize(planes0[0], (160, 500))
        extras.append(("OVERVIEW", "macro", macro))
    for n, (kind, name, picture) in enumerate(extras):
        sample.associated[name] = picture
        if kind == "THUMBNAIL":
            th, syntax = (min(frame[0], picture.shape[0]), min(frame[1], picture.shape[1])), transfer_syntax
        else:  # labels and overviews: one frame, JPEG next to lossy levels, else uncompressed
            th, syntax = picture.shape[:2], "explicit" if TRANSFER_SYNTAXES[transfer_syntax][1] else "jpeg"
        sample.files += _write_image(
            folder, name, kind, [picture], th, syntax, common, uids, sparse=False, missing=set(), offset_table="basic",
            fragments=1, parts=1, mpp=mpp * h0 / picture.shape[0] if kind == "THUMBNAIL" else 0.03 * 1000,
            quality=quality, fill=fill, absent_lab=None, plane_spacing_um=plane_spacing_um,
            instance_number=len(level_planes) + n + 1)
    return sample


def _common_dataset(uids: _Uids, mpp: float, objective_power: float | None, gray: bool) -> Dataset:
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = WSI_SOP_CLASS
    ds.Modality = "SM"
    ds.StudyInstanceUID = uids()
    ds.SeriesInstanceUID = uids()
    ds.FrameOfReferenceUID = uids()
    ds.PyramidUID = uids()
    ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber = "20240101", "120000", "1", "1"
    ds.SeriesNumber = 1
    ds.ContentDate, ds.ContentTime = "20240101", "120000"
    ds.AcquisitionDateTime = "20240101120000"
    ds.ReferringPhysicianName = ""
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "Synthetic^Slide", "wsikit", "", ""
    ds.Manufacturer = "wsikit"
    ds.ManufacturerModelName = "dicom_sample"
    ds.DeviceSerialNumber = "0"
    ds.SoftwareVersions = "1"
    ds.PositionReferenceIndicator = "SLIDE_CORNER"
    ds.ContainerIdentifier = "wsikit-slide"
    ds.IssuerOfTheContainerIdentifierSequence = Sequence()
    ds.ContainerTypeCodeSequence = Sequence([_code("433466003", "SCT", "Microscope slide")])
    specimen = Dataset()
    specimen.SpecimenIdentifier = "specimen"
    specimen.SpecimenUID = uids()
    specimen.IssuerOfTheSpecimenIdentifierSequence = Sequence()
    specimen.SpecimenPreparationSequence = Sequence()
    ds.SpecimenDescriptionSequence = Sequence([specimen])
    ds.AcquisitionContextSequence = Sequence()
    ds.VolumetricProperties = "VOLUME"
    ds.BurnedInAnnotation = "NO"
    ds.SpecimenLabelInImage = "NO"
    ds.FocusMethod = "AUTO"
    ds.ExtendedDepthOfField = "NO"
    ds.ImageOrientationSlide = [0, -1, 0, -1, 0, 0]
    path = Dataset()
    path.OpticalPathIdentifier = "1"
    path.OpticalPathDescription = "brightfield" if not gray else "fluorescence"
    path.IlluminationTypeCodeSequence = Sequence([_code("111744", "DCM", "Brightfield illumination")])
    if gray:
        path.IlluminationWaveLength = 488.0
    else:
        path.IlluminationColorCodeSequence = Sequence([_code("414298005", "SCT", "Full Spectrum")])
    if objective_power:
        path.ObjectiveLensPower = objective_power
    ds.OpticalPathSequence = Sequence([path])
    ds.NumberOfOpticalPaths = 1
    return ds


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    from pydicom.dataset import Dataset

    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = value, scheme, meaning
    return code


def _write_image(folder: str, stem: str, kind: str, planes: list[np.ndarray], tile: tuple[int, int], syntax_name: str,
                 common: Dataset, uids: _Uids, *, sparse: bool, missing: set[tuple[int, int]], offset_table: str,
                 fragments: int, parts: int, mpp: float, quality: int, fill: tuple[int, ...],
                 absent_lab: Sequence[int] | None, plane_spacing_um: float, instance_number: int) -> list[str]:
    import copy

    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import encapsulate, encapsulate_extended
    from pydicom.sequence import Sequence
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID

    syntax, lossless = TRANSFER_SYNTAXES[syntax_name]
    h, w = planes[0].shape[:2]
    gray = planes[0].ndim == 2
    frames: list[bytes] = []
    positions = []  # (row, col, plane) of each frame in file order
    photometric = "RGB"
    for z, plane in enumerate(planes):
        tiles, (rows, cols) = _tiles(plane, tile, fill if not gray else (fill[0],))
        order = [(r, c) for r in range(rows) for c in range(cols) if (r, c) not in missing]
        if sparse:
            order = order[::-1]  # positions, not order, place sparse frames
        encoded, photometric = _encode_frames([tiles[r * cols + c] for r, c in order], syntax_name, quality, "RGB")
        frames += encoded
        positions += [(r, c, z) for r, c in order]
    total = len(frames)
    split = np.array_split(np.arange(total), parts)
    source_uid = uids() if parts > 1 else None
    concatenation_uid = uids() if parts > 1 else None
    written = []
    for part, members in enumerate(split):
        ds = copy.deepcopy(common)
        ds.SOPInstanceUID = uids()
        ds.InstanceNumber = instance_number
        ds.ImageType = ["DERIVED" if stem not in ("level0",) and kind == "VOLUME" else "ORIGINAL", "PRIMARY", kind,
                        "RESAMPLED" if stem != "level0" and kind == "VOLUME" else "NONE"]
        ds.SamplesPerPixel = 1 if gray else 3
        ds.PhotometricInterpretation = photometric
        if not gray:
            ds.PlanarConfiguration = 0
        ds.Rows, ds.Columns = tile
        ds.BitsAllocated = ds.BitsStored = 8 * planes[0].dtype.itemsize
        ds.HighBit = ds.BitsStored - 1
        ds.PixelRepresentation = 0
        ds.NumberOfFrames = len(members)
        ds.TotalPixelMatrixRows, ds.TotalPixelMatrixColumns = h, w
        ds.TotalPixelMatrixFocalPlanes = len(planes)
        ds.ImagedVolumeHeight, ds.ImagedVolumeWidth = h * mpp / 1000.0, w * mpp / 1000.0
        ds.ImagedVolumeDepth = 1.0
        origin = Dataset()
        origin.XOffsetInSlideCoordinateSystem, origin.YOffsetInSlideCoordinateSystem = 20.0, 40.0
        ds.TotalPixelMatrixOriginSequence = Sequence([origin])
        ds.LossyImageCompression = "00" if TRANSFER_SYNTAXES[syntax_name][1] else "01"
        if not lossless:
            jpeg = "jpeg" in syntax_name and "2000" not in syntax_name
            ds.LossyImageCompressionMethod = "ISO_10918_1" if jpeg else "ISO_15444_1"
        ds.DimensionOrganizationType = "TILED_SPARSE" if sparse else "TILED_FULL"
        organisation = Dataset()
        organisation.DimensionOrganizationUID = uids()
        ds.DimensionOrganizationSequence = Sequence([organisation])
        if absent_lab is not None:
            ds.RecommendedAbsentPixelCIELabValue = [int(v) for v in absent_lab]
        shared = Dataset()
        measures = Dataset()
        measures.PixelSpacing = [round(mpp / 1000.0, 12), round(mpp / 1000.0, 12)]
        measures.SliceThickness = 0.001
        if len(planes) > 1:
            measures.SpacingBetweenSlices = plane_spacing_um / 1000.0
        shared.PixelMeasuresSequence = Sequence([measures])
        frame_type = Dataset()
        frame_type.FrameType = list(ds.ImageType)
        shared.WholeSlideMicroscopyImageFrameTypeSequence = Sequence([frame_type])
        path_id = Dataset()
        path_id.OpticalPathIdentifier = "1"
        shared.OpticalPathIdentificationSequence = Sequence([path_id])
        if not sparse:
            position = Dataset()
            position.ZOffsetInSlideCoordinateSystem = 0.0
            shared.PlanePositionSlideSequence = Sequence([position])
        ds.SharedFunctionalGroupsSequence = Sequence([shared])
        if sparse:
            items = []
            for k in members.tolist():
                r, c, z = positions[k]
                item, position = Dataset(), Dataset()
                position.RowPositionInTotalImagePixelMatrix = r * tile[0] + 1
                position.ColumnPositionInTotalImagePixelMatrix = c * tile[1] + 1
                position.XOffsetInSlideCoordinateSystem = round(20.0 + c * tile[1] * mpp / 1000.0, 6)
                position.YOffsetInSlideCoordinateSystem = round(40.0 + r * tile[0] * mpp / 1000.0, 6)
                position.ZOffsetInSlideCoordinateSystem = z * plane_spacing_um
                item.PlanePositionSlideSequence = Sequence([position])
                items.append(item)
            ds.PerFrameFunctionalGroupsSequence = Sequence(items)
        if parts > 1:
            ds.SOPInstanceUIDOfConcatenationSource = source_uid
            ds.ConcatenationUID = concatenation_uid
            ds.ConcatenationFrameOffsetNumber = int(members[0])
            ds.InConcatenationNumber = part + 1
            ds.InConcatenationTotalNumber = parts
        part_frames = [frames[k] for k in members.tolist()]
        if syntax_name in ("explicit", "implicit"):
            data = b"".join(part_frames)
            ds.PixelData = data + b"\x00" * (len(data) % 2)
            ds["PixelData"].VR = "OW" if planes[0].dtype.itemsize > 1 else "OB"
        elif offset_table == "extended":
            data, table, lengths = encapsulate_extended(part_frames)
            ds.PixelData = data
            ds.ExtendedOffsetTable = table
            ds.ExtendedOffsetTableLengths = lengths
            ds["PixelData"].VR = "OB"
        else:
            ds.PixelData = encapsulate(part_frames, fragments_per_frame=fragments, has_bot=offset_table == "basic")
            ds["PixelData"].VR = "OB"
        if syntax_name not in ("explicit", "implicit"):
            ds["PixelData"].is_undefined_length = True
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = UID(WSI_SOP_CLASS)
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        meta.TransferSyntaxUID = UID(syntax)
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        ds.file_meta = meta
        name = f"{stem}.dcm" if parts == 1 else f"{stem}_part{part + 1}.dcm"
        path = os.path.join(folder, name)
        ds.save_as(path, enforce_file_format=True)
        written.append(path)
    return written


__all__ = ["TRANSFER_SYNTAXES", "DicomSample", "label_image", "write_dicom_series"]
