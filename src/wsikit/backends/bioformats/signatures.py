"""Which files Bio-Formats is asked about: the name endings it claims and the leading bytes
of the formats behind them.

Asking Bio-Formats itself means starting a JVM (seconds), so the choice is made here, in
Python, from the file's name and its first :data:`HEAD_BYTES` bytes:

- a name ending Bio-Formats does not claim (:data:`SUFFIXES`) is never recognised;
- an ending with known signatures (:data:`SIGNATURES_BY_SUFFIX`, e.g. ``.svs`` -> TIFF) is
  recognised only when the file's bytes match one of them, so a text file named
  ``notes.svs`` is nobody's file rather than a JVM started to say "Invalid TIFF file";
- an ending without a known signature (text and XML companions such as ``.oif``,
  ``.vms``, ``.afi``, and the long tail of formats whose headers are not checked here)
  is recognised by the name alone, as before.

A name with several endings (``x.ome.tiff``: ``ome.tiff`` and ``tiff``) is recognised
when any of them is. The signatures follow the files' specifications and the checks the
Bio-Formats readers themselves make before parsing (their ``isThisType``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Signature:
    """Bytes that every file of a format holds at fixed offsets (all of them must match)."""

    parts: tuple[tuple[int, bytes], ...]

    def matches(self, head: bytes) -> bool:
        """Whether ``head``, the file's first bytes, holds every part at its offset."""
        return all(head[offset : offset + len(data)] == data for offset, data in self.parts)


def _starts_with(*prefixes: bytes) -> tuple[Signature, ...]:
    return tuple(Signature(((0, prefix),)) for prefix in prefixes)


# Classic TIFF and BigTIFF, both byte orders (TIFF 6.0; BigTIFF version 43).
TIFF = _starts_with(b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
# Zeiss CZI: the file header segment's 16-byte id "ZISRAWFILE" (zero padded).
CZI = _starts_with(b"ZISRAWFILE")
# Leica LIF: a little-endian block id 0x70, the block length, then the 0x2A byte that
# opens the XML description (the LIF reader refuses files without either).
LIF = (Signature(((0, b"\x70\x00\x00\x00"), (8, b"\x2a"))),)
# JPEG 2000: the JP2 signature box (JP2, JPX, JPF) or a raw codestream's SOC + SIZ markers.
JPEG_2000 = _starts_with(b"\x00\x00\x00\x0cjP  \r\n\x87\n", b"\xff\x4f\xff\x51")
# Nikon ND2: a chunk magic 0xDACEBE0A (big-endian bytes) since NIS-Elements 3; older
# files are JPEG 2000 files, recognised by the "jP  " box type at offset 4 as the ND2
# reader does.
ND2 = _starts_with(b"\xda\xce\xbe\x0a") + (Signature(((4, b"jP  "),)),)
# HDF5: the superblock signature, at 0 or after a user block of 512, 1024, 2048 bytes.
HDF5 = tuple(Signature(((offset, b"\x89HDF\r\n\x1a\n"),)) for offset in (0, 512, 1024, 2048))
# Imaris before HDF5 (Imaris 3): big-endian magic number 5021964.
IMARIS_3 = _starts_with((5021964).to_bytes(4, "big"))
# OLE2 compound document (Zeiss ZVI, Olympus OIB).
OLE2 = _starts_with(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1")
# DICOM Part 10: "DICM" after the 128-byte preamble; files written without the preamble
# start with a little-endian group 0002 (file meta) or 0008 (identifying) element.
DICOM = (Signature(((128, b"DICM"),)),) + _starts_with(b"\x02\x00", b"\x08\x00")
PNG = _starts_with(b"\x89PNG\r\n\x1a\n")
JPEG = _starts_with(b"\xff\xd8\xff")
BMP = _starts_with(b"BM")
GIF = _starts_with(b"GIF87a", b"GIF89a")

# File name endings Bio-Formats 7 claims (ImageReader.getSuffixes()), less the generic ones
# (text, XML, archives, logs) that would make every unreadable file start a JVM.
SUFFIXES = frozenset("""
1sc 2fl acff afi afm aiix aim aisf al3d ali am amiramesh ano apl arf atsf avi bif bip bmp btf
c01 ch5 cif cr2 crw cxd czi dcm df3 dib dic dicom dm2 dm3 dm4 dti dv eps epsi ets exp fdf fff
ffr fits fli flex frm fts gel gif grey h5 hdf hdr hed his htd hx i2i ics ids im3 ima img ims
inr ipl ipm ips ipw j2k j2ki j2kr jp2 jpe jpeg jpf jpg jpk jpx klb l2d labels lei lif liff lim
lms lof lsm lut map mea mnc mng mod mov mrc mrcs mrw msr mtb mvd2 naf nd nd2 ndpi ndpis nef
nhdr nii nii.gz nrrd obf oib oif oir ome ome.btf ome.tf2 ome.tf8 ome.tif ome.tiff omp2info par
pbm pcoraw pct pcx pgm pic pict png pnl ppm pr3 ps psd pst pty qptiff r3d r3d_d3d rcpnl rec
res sdt seq sif sld sldy sm2 sm3 spc spe spi spl st stk stp svs sxm tf2 tf8 tfr tga thm tif
tiff tim tnb top v vff vms vsi vws wat wpi xdce xlef xlog xqd xqf xv xys zfp zfr zpo zvi
""".split())

#: ending -> the signatures its files start with; endings of SUFFIXES not listed here go
#: by name alone (no signature is checked for them: text companions, or formats whose
#: headers this table does not describe)
SIGNATURES_BY_SUFFIX: dict[str, tuple[Signature, ...]] = {
    **{suffix: TIFF for suffix in (
        "tif", "tiff", "tf2", "tf8", "btf", "ome.tif", "ome.tiff", "ome.tf2", "ome.tf8", "ome.btf",
        "svs", "ndpi", "qptiff", "vsi", "bif", "lsm", "stk")},
    "czi": CZI,
    "lif": LIF,
    "nd2": ND2,
    **{suffix: JPEG_2000 for suffix in ("jp2", "j2k", "jpf", "jpx")},
    # Bio-Formats' DICOM reader claims these two JPEG 2000 endings as well.
    **{suffix: DICOM + JPEG_2000 for suffix in ("j2ki", "j2kr")},
    **{suffix: DICOM for suffix in ("dcm", "dicom", "dic")},
    # Imaris files are HDF5 (Imaris 5.5 on), Imaris 3 files, or TIFF files.
    "ims": HDF5 + IMARIS_3 + TIFF,
    **{suffix: HDF5 for suffix in ("h5", "ch5")},
    **{suffix: OLE2 for suffix in ("zvi", "oib")},
    "png": PNG,
    **{suffix: JPEG for suffix in ("jpg", "jpeg", "jpe")},
    **{suffix: BMP for suffix in ("bmp", "dib")},
    "gif": GIF,
}

#: how much of a file the signatures look at (up to the last HDF5 superblock place)
HEAD_BYTES = max(offset + len(data) for signatures in SIGNATURES_BY_SUFFIX.values()
                 for signature in signatures for offset, data in signature.parts)


def claimed_suffixes(name: str) -> list[str]:
    """The endings of file name ``name`` that Bio-Formats claims, longest first
    (``"A.OME.TIFF"`` -> ``["ome.tiff", "tiff"]``)."""
    parts = os.path.basename(name).lower().split(".")
    endings = (".".join(parts[k:]) for k in range(1, len(parts)))
    return [ending for ending in endings if ending in SUFFIXES]


def recognises(path: str) -> bool:
    """Whether Bio-Formats is to be asked about the file at ``path`` (see the module's rules).

    False for a folder, a missing or unreadable file; never raises for any ``path``.
    """
    try:
        path = os.fspath(path)
        if not os.path.isfile(path):
            return False
        endings = claimed_suffixes(path)
        if not endings:
            return False
        if any(ending not in SIGNATURES_BY_SUFFIX for ending in endings):
            return True  # an ending without a known signature: by name, as Bio-Formats does
        with open(path, "rb") as f:
            head = f.read(HEAD_BYTES)
    except (TypeError, ValueError, OSError):
        return False
    return any(signature.matches(head) for ending in endings for signature in SIGNATURES_BY_SUFFIX[ending])
