"""Standalone JPEG files from the JPEG bitstreams slides store: TIFF tiles and DICOM frames.

A slide's JPEG tile is often not a file any decoder shows with the right colours:

- TIFF (Aperio SVS, generic pyramidal TIFF) keeps the quantisation and Huffman tables
  shared by all tiles in the JPEGTables tag (an abbreviated "tables-only" stream), and each
  tile holds only its frame and scan ("abbreviated image" streams, ITU-T T.81 B.5);
- the colour space of three-component JPEG is not part of T.81: decoders follow the JFIF
  marker (APP0, YCbCr), the Adobe marker (APP14, transform 0 = no transform, i.e. RGB; 1 =
  YCbCr), and without either libjpeg guesses from the component ids (``R G B`` means RGB,
  anything else YCbCr). Aperio writes RGB-coded tiles (Photometric RGB) with ids 0, 1, 2
  and no marker: a decoder that is not told shows them in false colours. TIFF readers are
  told by the Photometric tag; a file on its own has only its markers.

:func:`standalone_jpeg` splices the tables into the tile's stream and states the colour
transform with a marker (Adobe transform 0 for RGB-coded data; JFIF, or an existing Adobe
transform 1, for YCbCr), leaving the entropy-coded data untouched: no decoding, no
generational loss. :func:`decoded_colour` says which colour space libjpeg's own rules give
a stream, so that a caller that decodes with those rules (DICOM frames) can make them
explicit. The result decodes, with Pillow, imagecodecs, simplejpeg or a browser, to the
pixels wsikit reads for that tile.
"""
from __future__ import annotations

import struct
from typing import Literal

from .codestreams import Buffer, jpeg_header

#: the colour transform of a three-component stream: "rgb" (none) or "ycbcr"
Colour = Literal["rgb", "ycbcr"]

_SOI = b"\xff\xd8"
_EOI = b"\xff\xd9"
# APP0 JFIF 1.01, no density unit, 1:1 aspect, no thumbnail (JFIF 1.02 section "JFIF APP0 marker")
_JFIF = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
# Segments libjpeg reads to decide colours; both are replaced by the one this module writes.
_APP0, _APP14 = 0xE0, 0xEE
_STANDALONE = frozenset(range(0xD0, 0xD8)) | {0x01}  # RST0-7, TEM: no length field
_SOS, _EOI_MARKER, _SOI_MARKER = 0xDA, 0xD9, 0xD8
_ADOBE_ID_RGB = (ord("R"), ord("G"), ord("B"))


class NotAJPEG(ValueError):
    """Data that is not a JPEG stream this module can rewrite (no SOI, a malformed segment)."""


def adobe_marker(transform: int) -> bytes:
    """An APP14 Adobe segment (DCTEncode version 100, no flags) with ``transform``:
    0 = the components are coded as they are (RGB), 1 = YCbCr, 2 = YCCK."""
    return b"\xff\xee" + struct.pack(">H", 14) + b"Adobe" + struct.pack(">HHHB", 100, 0, 0, transform)


def decoded_colour(data: Buffer) -> Colour | None:
    """The colour space libjpeg decodes a three-component stream's components as, by its
    own rules (JFIF, then the Adobe transform, then component ids ``R G B``); None for a
    stream of another number of components or one whose header cannot be read."""
    header = jpeg_header(data)
    if header.frame is None or header.frame.components != 3:
        return None
    if header.jfif:
        return "ycbcr"
    if header.adobe_transform is not None:
        return "rgb" if header.adobe_transform == 0 else "ycbcr"
    return "rgb" if header.component_ids == _ADOBE_ID_RGB else "ycbcr"


def _segments(data: Buffer, what: str) -> tuple[list[tuple[int, int, int]], int]:
    """Marker segments after SOI up to the first SOS or EOI: [(marker, start, end)], and the
    offset where the rest (the scan, or EOI) begins."""
    n = len(data)
    if n < 4 or data[0] != 0xFF or data[1] != _SOI_MARKER:
        raise NotAJPEG(f"{what} does not start with a JPEG SOI marker")
    segments: list[tuple[int, int, int]] = []
    k = 2
    while k + 2 <= n:
        if data[k] != 0xFF:
            raise NotAJPEG(f"{what}: no JPEG marker at byte {k}")
        marker = data[k + 1]
        if marker == 0xFF:  # fill byte before a marker
            k += 1
            continue
        if marker in (_SOS, _EOI_MARKER):
            return segments, k
        if marker in _STANDALONE or marker == _SOI_MARKER:
            k += 2
            continue
        if k + 4 > n:
            break
        (length,) = struct.unpack_from(">H", data, k + 2)
        if length < 2 or k + 2 + length > n:
            raise NotAJPEG(f"{what}: the segment of marker 0xFF{marker:02X} at byte {k} runs past the end")
        segments.append((marker, k, k + 2 + length))
        k += 2 + length
    raise NotAJPEG(f"{what} ends before its first scan")


def _is_colour_segment(data: Buffer, marker: int, start: int, end: int) -> bool:
    """An APP0 JFIF or APP14 Adobe segment (the ones that decide colours)."""
    if marker == _APP0:
        return bytes(data[start + 4 : start + 9]) == b"JFIF\x00"
    if marker == _APP14:
        return bytes(data[start + 4 : start + 9]) == b"Adobe"
    return False


def standalone_jpeg(stream: Buffer, tables: Buffer | None = None, colour: Colour | None = None) -> bytes:
    """A complete JPEG file of ``stream`` (a TIFF tile, a DICOM frame) whose every decoder
    shows the pixels of ``colour``.

    ``tables``: a TIFF JPEGTables stream (SOI, DQT/DHT segments, EOI), whose segments are
    put before the stream's own (the stream's own tables, if any, still win, as in TIFF).
    ``colour``: how the three components are coded: "rgb" (as they are: Adobe transform 0
    is written) or "ycbcr" (JFIF is written, or an Adobe transform 1 kept); None keeps
    what libjpeg's rules make of the stream (:func:`decoded_colour`) and writes it out, so
    that decoders without those rules agree. The stream's own JFIF / Adobe segments are
    replaced by the one written. One- and four-component streams get no colour marker.
    Raises :class:`NotAJPEG` when ``stream`` or ``tables`` is not a JPEG stream.
    """
    if not tables and colour != "rgb" and bytes(stream[:4]) == b"\xff\xd8\xff\xe0" and (
            bytes(stream[6:11]) == b"JFIF\x00" and bytes(stream[-2:]) == _EOI):
        return bytes(stream)  # a JFIF file already (tifffile's own tiles): nothing to change
    segments, scan = _segments(stream, "the JPEG stream")
    table_segments = _segments(tables, "the JPEG tables")[0] if tables else []
    header = jpeg_header(stream)  # the frame header is the stream's own, never in the tables
    components = header.frame.components if header.frame is not None else None
    marker = b""
    if components == 3:
        colour = colour or decoded_colour(stream) or "ycbcr"
        if colour == "rgb":
            marker = adobe_marker(0)
        elif header.adobe_transform == 1 and not header.jfif:
            marker = adobe_marker(1)  # keep the writer's own choice of marker for YCbCr
        else:
            marker = _JFIF
    parts = [_SOI, marker]
    if tables:
        parts += [bytes(tables[s:e]) for m, s, e in table_segments if not _is_colour_segment(tables, m, s, e)]
    own = [bytes(stream[s:e]) for m, s, e in segments if components != 3 or not _is_colour_segment(stream, m, s, e)]
    parts += own
    parts.append(bytes(stream[scan:]))
    out = b"".join(parts)
    if not out.endswith(_EOI):
        out += _EOI  # a tile cut right after its scan data: decoders want the end marker
    return out


def rgb_tiles_prefix(tables: Buffer | None) -> bytes:
    """What :func:`standalone_jpeg` puts before a stream's own segments for ``colour="rgb"``
    and these ``tables``: SOI, Adobe transform 0, the tables' segments. A tile stream whose
    bytes after SOI hold no JFIF or Adobe segment becomes a standalone file as
    ``prefix + stream[2:]`` (:func:`spliced`), the same bytes, without parsing each tile."""
    parts = [_SOI, adobe_marker(0)]
    if tables:
        parts += [bytes(tables[s:e]) for m, s, e in _segments(tables, "the JPEG tables")[0]
                  if not _is_colour_segment(tables, m, s, e)]
    return b"".join(parts)


def spliced(prefix: bytes, stream: Buffer, tables: Buffer | None) -> bytes:
    """``standalone_jpeg(stream, tables, "rgb")`` for a ``prefix`` from :func:`rgb_tiles_prefix`:
    joined as they are when the stream is SOI, segments without a colour marker, a scan and
    EOI (the usual abbreviated tile; found with byte searches, not a parse), else rewritten
    by :func:`standalone_jpeg`."""
    data = bytes(stream)
    scan = data.find(b"\xff\xda")
    if data[:2] == _SOI and scan > 0 and data[-2:] == _EOI and b"\xff\xe0" not in data[:scan] \
            and b"\xff\xee" not in data[:scan]:
        return prefix + data[2:]
    return standalone_jpeg(data, tables, "rgb")


__all__ = ["Colour", "NotAJPEG", "adobe_marker", "decoded_colour", "rgb_tiles_prefix", "spliced", "standalone_jpeg"]
