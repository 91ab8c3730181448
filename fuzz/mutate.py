"""Broken copies of TIFF and DICOM files, by name (for the corpus) or at random (for fuzzing).

:class:`TiffLayout` finds where a valid TIFF keeps its header, IFDs, tag values and tile
data, so a mutation can aim at one of them: a tile offset past the end of the file, an
IFD chain that loops, an image width of 10^6. Each named mutation also says which native
tiles it cannot have touched, so that a test can demand those still read the same pixels.
"""
from __future__ import annotations

import random
import struct
from dataclasses import dataclass, field

# Values that make parsers take unusual paths.
INTERESTING = (0, 1, 2, 7, 8, 255, 256, 4095, 65535, 65536, 10**6, 2**31 - 1, 2**31, 2**32 - 1)


@dataclass
class Segment:
    level: int | None  # pyramid level of the main series, None for other images
    index: int  # position in the offsets / byte counts arrays
    key: str | None  # "level:i:j" of the tile it makes, when known
    offset: int
    count: int
    offsets_at: int  # where in the file its offset is written
    counts_at: int
    field_size: int  # bytes of one offset: 2, 4 or 8
    counts_size: int  # bytes of one byte count
    tiled: bool = True


@dataclass
class Tag:
    page: int
    code: int
    entry: int  # file offset of the IFD entry
    value_at: int  # file offset of the value (inside the entry when it fits)
    dtype: int
    count: int


@dataclass
class Mutation:
    name: str
    data: bytes
    intact: set[str] = field(default_factory=set)  # tiles that must read as before if the file opens
    broken: set[str] = field(default_factory=set)  # tiles that must fail if the file opens
    # Backends the two sets hold for (all when empty). OpenSlide draws a tile the file
    # marks as missing (no bytes) from other levels, which changes their neighbours.
    only: tuple[str, ...] = ()

    def expects(self, backend: str | None) -> bool:
        return not self.only or backend in self.only


class TiffLayout:
    """Where things are in a valid TIFF file (parsed once with tifffile)."""

    def __init__(self, data: bytes, path: str):
        import tifffile

        self.data = data
        with tifffile.TiffFile(path) as tif:
            self.order = "<" if tif.byteorder == "<" else ">"
            self.bigtiff = tif.is_bigtiff
            self.ifds = [page.offset for page in tif.pages]
            self.tags = []
            self.next_at = []
            self.page_extent = []
            for k, page in enumerate(tif.pages):
                entry_size, count_size = (20, 8) if self.bigtiff else (12, 2)
                self.next_at.append(page.offset + count_size + entry_size * len(page.tags))
                end = self.next_at[-1] + (8 if self.bigtiff else 4)
                for tag in page.tags:
                    self.tags.append(Tag(k, tag.code, tag.offset, tag.valueoffset, int(tag.dtype), tag.count))
                    end = max(end, tag.valueoffset + tag.count * struct.calcsize("<" + _TYPE_CHARS.get(int(tag.dtype), "B")))
                self.page_extent.append((page.offset, end))
            self.segments = []
            self.tile_shapes = {}
            levels = tif.series[0].levels if tif.series else []
            level_of = {}
            for level, series in enumerate(levels):
                for page in series.pages:
                    if page is not None:
                        level_of[page.offset] = (level, series.keyframe)
            for k, page in enumerate(tif.pages):
                level, key = level_of.get(page.offset, (None, None))
                shape = _segment_shape(page)
                if level is not None and key is not None:
                    self.tile_shapes[str(level)] = list(_segment_shape(key))
                offsets_tag = page.tags.get(324) or page.tags.get(273)
                counts_tag = page.tags.get(325) or page.tags.get(279)
                if offsets_tag is None or counts_tag is None:
                    continue
                grid_cols = -(-int(page.imagewidth) // shape[1])
                grid_rows = -(-int(page.imagelength) // shape[0])
                for index, (offset, count) in enumerate(zip(page.dataoffsets, page.databytecounts)):
                    within = index % max(1, grid_rows * grid_cols)
                    ti, tj = divmod(within, grid_cols)
                    key = None if level is None else f"{level}:{ti * shape[0]}:{tj * shape[1]}"
                    size_o = struct.calcsize(_TYPE_CHARS[int(offsets_tag.dtype)])
                    size_c = struct.calcsize(_TYPE_CHARS[int(counts_tag.dtype)])
                    self.segments.append(Segment(level, index, key, int(offset), int(count),
                                                 offsets_tag.valueoffset + index * size_o,
                                                 counts_tag.valueoffset + index * size_c, size_o, size_c,
                                                 bool(page.is_tiled)))
            self.levels = len(levels)

    # -- helpers ---------------------------------------------------------------------------
    def keys(self, level=None) -> set[str]:
        return {s.key for s in self.segments if s.key is not None and (level is None or s.level == level)}

    def patch_int(self, data: bytearray, at: int, size: int, value: int) -> None:
        value &= (1 << (8 * size)) - 1
        data[at : at + size] = value.to_bytes(size, "little" if self.order == "<" else "big")

    def tag(self, code: int, page: int = 0) -> Tag | None:
        return next((t for t in self.tags if t.page == page and t.code == code), None)

    def structure_end(self, level: int) -> int:
        """The end of the last IFD or tag value any page of the file needs (for truncation)."""
        return max(end for _, end in self.page_extent)


_TYPE_CHARS = {1: "B", 2: "B", 3: "H", 4: "I", 5: "II", 6: "b", 7: "B", 8: "h", 9: "i", 10: "ii",
               11: "f", 12: "d", 13: "I", 16: "Q", 17: "q", 18: "Q"}


def _segment_shape(page) -> tuple[int, int]:
    if page.is_tiled:
        return int(page.tilelength), int(page.tilewidth)
    rows = int(page.rowsperstrip or page.imagelength)
    return min(rows, int(page.imagelength)), int(page.imagewidth)


# -- the named corpus -------------------------------------------------------------------------
def tiff_corpus(data: bytes, path: str, *, seed: int = 0, random_flips: int = 6) -> list[Mutation]:
    """Named broken copies of one valid TIFF: truncations, flipped bytes, lying tags, loops."""
    layout = TiffLayout(data, path)
    rng = random.Random(seed)
    out: list[Mutation] = []
    everything = layout.keys()
    n = len(data)

    # Truncations: tiles wholly before the cut stay readable when the structure survives.
    cuts = sorted({0, 4, 8, 64, n // 10, n // 4, n // 2, 3 * n // 4, 9 * n // 10, n - 1})
    structure_end = layout.structure_end(0)
    for cut in cuts:
        intact, broken = set(), set()
        if cut >= structure_end:
            ends: dict[str, int] = {}
            for s in layout.segments:  # a tile of several planes needs all of them
                if s.key:
                    ends[s.key] = max(ends.get(s.key, 0), s.offset + s.count if s.count else 0)
            intact = {key for key, end in ends.items() if end <= cut}
            broken = set(ends) - intact
        out.append(Mutation(f"truncate@{cut}", data[:cut], intact, broken))

    # The header.
    for name, at, value in (("magic", 2, 0x2B2A), ("order", 0, 0x4D4D), ("ifd0-past-eof", 4, n + 1000),
                            ("ifd0-zero", 4, 0), ("ifd0-odd", 4, 9), ("ifd0-last-byte", 4, n - 1)):
        buf = bytearray(data)
        if layout.bigtiff and name.startswith("ifd0"):
            layout.patch_int(buf, 8, 8, value)
        else:
            layout.patch_int(buf, at, 2 if at < 4 else 4, value)
        out.append(Mutation(f"header-{name}", bytes(buf)))

    # IFD entry counts.
    for value in (0, 1, 0xFFFF):
        buf = bytearray(data)
        layout.patch_int(buf, layout.ifds[0], 8 if layout.bigtiff else 2, value)
        out.append(Mutation(f"ifd0-entries={value}", bytes(buf)))

    # Looping IFD chains.
    if layout.next_at:
        size = 8 if layout.bigtiff else 4
        loops = {"loop-last-to-first": (len(layout.ifds) - 1, layout.ifds[0]),
                 "loop-self": (0, layout.ifds[0])}
        if len(layout.ifds) > 2:
            loops["loop-second-to-first"] = (1, layout.ifds[0])
        for name, (page, target) in loops.items():
            buf = bytearray(data)
            layout.patch_int(buf, layout.next_at[page], size, target)
            out.append(Mutation(name, bytes(buf)))

    # Lying tags of the first page: sizes, layout, compression.
    for code, name in ((256, "width"), (257, "length"), (322, "tilewidth"), (323, "tilelength"),
                       (278, "rowsperstrip"), (277, "samples"), (258, "bits"), (259, "compression"),
                       (262, "photometric"), (284, "planar"), (317, "predictor"), (339, "sampleformat")):
        tag = layout.tag(code)
        if tag is None or tag.dtype not in (3, 4, 16):
            continue
        size = {3: 2, 4: 4, 16: 8}[tag.dtype]
        for value in (0, 1, 3, 10**6 if size > 2 else 65535, 2**32 - 1 if size > 2 else 65534):
            buf = bytearray(data)
            layout.patch_int(buf, tag.value_at, size, value)
            out.append(Mutation(f"tag-{name}={value}", bytes(buf)))

    # Oversized counts and value offsets past the end.
    for code, name in ((324, "tileoffsets"), (273, "stripoffsets"), (325, "tilebytecounts"), (279, "stripbytecounts"),
                       (270, "description"), (347, "jpegtables"), (258, "bits")):
        tag = layout.tag(code)
        if tag is None:
            continue
        count_at = tag.entry + 4
        for label, value in (("count", 2**30), ("count", 2**32 - 1)):
            buf = bytearray(data)
            layout.patch_int(buf, count_at, 8 if layout.bigtiff else 4, value)
            out.append(Mutation(f"tag-{name}-{label}={value}", bytes(buf)))
        if tag.value_at != tag.entry + 8 and tag.value_at != tag.entry + 12:  # value stored out of line
            buf = bytearray(data)
            layout.patch_int(buf, tag.entry + (12 if layout.bigtiff else 8), 8 if layout.bigtiff else 4, n + 4096)
            out.append(Mutation(f"tag-{name}-value-past-eof", bytes(buf)))

    # Tile and strip data of level 0: one tile lied about or damaged, the rest intact.
    level0 = [s for s in layout.segments if s.level == 0 and s.count > 0]
    picks = sorted({0, len(level0) // 2, len(level0) - 1}) if level0 else []
    for k in picks:
        seg = level0[k]
        others = everything - {seg.key}
        if sum(1 for s in layout.segments if s.key == seg.key) > 1:
            others = everything - {seg.key}
        for name, patch in (("offset=0", ("o", 0)), ("offset-past-eof", ("o", n + 100)), ("offset=last-byte", ("o", n - 1)),
                            ("bytecount=0", ("c", 0)), ("bytecount=2^31", ("c", 2**31)), ("bytecount=+1", ("c", seg.count + 1)),
                            ("bytecount=1", ("c", 1))):
            buf = bytearray(data)
            at, size = (seg.offsets_at, seg.field_size) if patch[0] == "o" else (seg.counts_at, seg.counts_size)
            layout.patch_int(buf, at, size, patch[1])
            # tifffile mends the byte counts of strips from their offsets, so only a tile must fail.
            must_fail = {seg.key} if name == "offset-past-eof" or (name == "bytecount=2^31" and seg.tiled) else set()
            missing = ("tiff",) if name in ("offset=0", "bytecount=0") else ()
            out.append(Mutation(f"segment{k}-{name}", bytes(buf), others, must_fail, missing))
        for name in ("flip-start", "flip-middle", "zero", "ones"):
            buf = bytearray(data)
            lo, hi = seg.offset, seg.offset + seg.count
            if name == "flip-start":
                for at in range(lo, min(hi, lo + 16)):
                    buf[at] ^= 0x5A
            elif name == "flip-middle":
                for _ in range(8):
                    buf[rng.randrange(lo, hi)] ^= 1 << rng.randrange(8)
            else:
                buf[lo:hi] = (b"\0" if name == "zero" else b"\xff") * seg.count
            out.append(Mutation(f"segment{k}-{name}", bytes(buf), others))
        jpeg = data[seg.offset : seg.offset + seg.count]
        if jpeg[:2] == b"\xff\xd8":
            from .craft import set_jpeg_size

            th, tw = layout.tile_shapes.get("0", (0, 0))
            for label, shape in (("sof=65500", (65500, 65500)), ("sof=2x", (2 * th, 2 * tw)), ("sof=half", (max(1, th // 2), max(1, tw // 2))),
                                 ("sof=0", (0, tw))):
                tile = bytearray(jpeg)
                try:
                    set_jpeg_size(tile, shape)
                except ValueError:
                    break
                buf = bytearray(data)
                buf[seg.offset : seg.offset + seg.count] = tile
                out.append(Mutation(f"segment{k}-jpeg-{label}", bytes(buf), others, {seg.key} if label != "sof=half" else set()))

    # Every tile offset zero (an empty image) and every byte count zero.
    for name, which in (("all-offsets=0", "o"), ("all-bytecounts=0", "c")):
        buf = bytearray(data)
        for seg in level0:
            at, size = (seg.offsets_at, seg.field_size) if which == "o" else (seg.counts_at, seg.counts_size)
            layout.patch_int(buf, at, size, 0)
        out.append(Mutation(name, bytes(buf), everything - layout.keys(0), only=("tiff",)))

    # Random flips in the structure (header, IFDs, tag values) and anywhere.
    spans = [(0, 16)] + list(layout.page_extent)
    for k in range(random_flips):
        buf = bytearray(data)
        for _ in range(rng.randint(1, 6)):
            lo, hi = rng.choice(spans)
            at = rng.randrange(lo, max(lo + 1, min(hi, n)))
            if at < n:
                buf[at] = rng.randrange(256)
        out.append(Mutation(f"structure-random{k}", bytes(buf)))
    for k in range(random_flips // 2):
        out.append(Mutation(f"anywhere-random{k}", bytes(random_mutation(data, rng))))
    return out


# -- random mutation for the fuzzer -----------------------------------------------------------
def random_mutation(data: bytes, rng: random.Random, layout: TiffLayout | None = None) -> bytearray:
    """A few random edits: bit flips, interesting integers, truncation, duplicated chunks.

    With a layout, most edits aim at the structure (header, IFD entries, tag values and
    the first bytes of tiles), where a parser makes its decisions.
    """
    buf = bytearray(data)
    hot = []
    if layout is not None:
        hot = [(0, 16)] + list(layout.page_extent) + [(s.offset, s.offset + min(s.count, 64)) for s in layout.segments[:64]]
    for _ in range(rng.choice((1, 1, 2, 3, 4, 8))):
        if not buf:
            break
        n = len(buf)
        lo, hi = rng.choice(hot) if hot and rng.random() < 0.8 else (0, n)
        hi = max(lo + 1, min(hi, n))
        if lo >= n:
            lo, hi = 0, n
        at = rng.randrange(lo, hi)
        op = rng.randrange(7)
        if op == 0:
            buf[at] ^= 1 << rng.randrange(8)
        elif op == 1:
            buf[at] = rng.randrange(256)
        elif op in (2, 3):
            size = rng.choice((2, 4, 8))
            value = rng.choice(INTERESTING) if op == 2 else rng.randrange(0, 2 ** (8 * size))
            if rng.random() < 0.3:
                value = n + rng.randrange(-16, 4096)  # near or past the end of the file
            order = "little" if (layout is None or layout.order == "<") else "big"
            buf[at : at + size] = (value % 2 ** (8 * size)).to_bytes(size, order)[: max(0, n - at)]
        elif op == 4:
            if n > 1:
                del buf[rng.randrange(max(1, n // 2), n):]
        elif op == 5:
            start = rng.randrange(n)
            chunk = buf[start : start + rng.randrange(1, 256)]
            buf[at:at] = chunk
        else:
            start = rng.randrange(n)
            length = rng.randrange(1, 64)
            del buf[start : start + length]
    return buf


# -- DICOM ----------------------------------------------------------------------------------------
def dicom_corpus(data: bytes, *, seed: int = 0) -> list[Mutation]:
    """Named broken copies of one valid DICOM file: truncations, lying frame counts and tables."""
    rng = random.Random(seed)
    n = len(data)
    out = [Mutation(f"truncate@{cut}", data[:cut]) for cut in sorted({0, 128, 132, 300, n // 4, n // 2, 9 * n // 10, n - 1})]
    for name, value in (("frames=0", b"0"), ("frames=1", b"1"), ("frames-huge", b"99999999"), ("frames=-1", b"-1"),
                        ("frames-text", b"abc")):
        patched = _dicom_patch_frames(data, value)
        if patched is not None:
            out.append(Mutation(f"number-of-{name}", patched))
    for name, (rows, cols) in (("rows-cols=65535", (65535, 65535)), ("rows-cols=0", (0, 0)), ("rows-cols=1", (1, 1))):
        patched = _dicom_patch_us(data, {(0x0028, 0x0010): rows, (0x0028, 0x0011): cols})
        if patched is not None:
            out.append(Mutation(name, patched))
    table = _dicom_offset_table(data)
    if table is not None:
        start, count = table
        for name, value in (("past-end", 0xFFFFFFF0), ("zero", 0), ("backwards", 1)):
            buf = bytearray(data)
            k = rng.randrange(count) if count else 0
            if count:
                struct.pack_into("<I", buf, start + 4 * k, value)
                out.append(Mutation(f"offset-table[{k}]-{name}", bytes(buf)))
        if count:
            buf = bytearray(data)
            struct.pack_into("<I", buf, start - 4, 0xFFFFFFF0)  # the table's own item length
            out.append(Mutation("offset-table-length-huge", bytes(buf)))
    for k in range(6):
        out.append(Mutation(f"anywhere-random{k}", bytes(random_mutation(data, rng))))
    return out


def _dicom_offset_table(data: bytes) -> tuple[int, int] | None:
    """(file offset of the Basic Offset Table's first entry, number of entries) or None."""
    at = data.rfind(b"\xe0\x7f\x10\x00")
    while at >= 0:
        # Encapsulated pixel data: (7FE0,0010) OB, 2 reserved bytes, undefined length, then items.
        if data[at + 4 : at + 6] == b"OB" and data[at + 8 : at + 12] == b"\xff\xff\xff\xff":
            item = at + 12
            if data[item : item + 4] == b"\xfe\xff\x00\xe0":
                length = struct.unpack_from("<I", data, item + 4)[0]
                return item + 8, length // 4
            return None
        at = data.rfind(b"\xe0\x7f\x10\x00", 0, at)
    return None


def _dicom_patch_frames(data: bytes, value: bytes) -> bytes | None:
    """Rewrite Number of Frames (0028,0008), an IS, keeping the file's layout (explicit VR LE)."""
    at = data.find(b"\x28\x00\x08\x00IS")
    if at < 0:
        return None
    length = struct.unpack_from("<H", data, at + 6)[0]
    text = value.ljust(length + (length - len(value)) % 2 if len(value) > length else length, b" ")
    if len(text) % 2:
        text += b" "
    return data[:at + 6] + struct.pack("<H", len(text)) + text + data[at + 8 + length:]


def _dicom_patch_us(data: bytes, values: dict) -> bytes | None:
    buf = bytearray(data)
    done = False
    for (group, element), value in values.items():
        at = buf.find(struct.pack("<HH", group, element) + b"US\x02\x00")
        if at >= 0:
            struct.pack_into("<H", buf, at + 8, value)
            done = True
    return bytes(buf) if done else None
