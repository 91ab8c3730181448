"""BioFormatsBackend: the long tail of microscopy formats through Bio-Formats and JPype.

The file is opened once (one ``loci.formats.ImageReader``, kept open until ``close()``)
in the process's one JVM (see :mod:`wsikit.backends.bioformats.java`). Levels are the resolutions
of one Bio-Formats series; the file's other small series (thumbnail, label, overview)
are associated images, and ``series=`` opens another series as the image.

Pixels are read as native-sized tiles through the shared tile cache: a tile is one
``openBytes(plane, x, y, w, h)`` per (z, c, t) plane, so no Java array is larger than
one tile of one plane, whatever the region asked for. The reader holds state (current
series and resolution), so every use of it happens under one lock.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass

import numpy as np

from ...errors import BackendUnavailableError, CorruptSlideError, SlideError, UnsupportedFormatError
from ...checks import as_int
from ...tiling import clip_box
from ...limits import check_allocation
from ...pixels import display_rgb, to_uint8
from ...reader import TileGrid
from . import java
from ..base import SlideBackend, positive_float

# File name endings Bio-Formats 7 claims (ImageReader.getSuffixes()), less the generic ones
# (text, XML, archives, logs) that would make every unreadable file start a JVM.
_SUFFIXES = frozenset("""
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

# Bio-Formats pixel type names -> numpy (BIT arrives as one byte per pixel, 0 or 1).
_DTYPES = {
    "int8": np.int8, "uint8": np.uint8, "int16": np.int16, "uint16": np.uint16, "int32": np.int32,
    "uint32": np.uint32, "float": np.float32, "double": np.float64, "bit": np.bool_,
}

#: the most bytes one cached tile (all its planes) may hold; so no Java array nears 2 GB
MAX_TILE_BYTES = 16 * 1024**2
# Native tiles smaller than this (one-row strips, 16-pixel tiles) cost more in Java calls
# than in decoding: such tiles are read several at once. Larger ones are read as they are,
# so that a small region decodes no more than Bio-Formats itself must.
_MIN_TILE_BYTES = 256 * 1024
# Series no larger than this (pixels) are taken as associated pictures, not as images.
_SMALL_SERIES_PIXELS = 2048 * 2048

# Handles whose JVM stayed in the parent after fork(): never touched again, never freed.
_ORPHANS: list = []


@dataclass(frozen=True)
class _Series:
    index: int
    name: str
    thumbnail: bool
    level_shapes: tuple[tuple[int, int], ...]
    optimal_tiles: tuple[tuple[int, int], ...]
    sizes: tuple[int, int, int]      # (z, c, t), c counting every sample of an RGB plane
    samples: int                     # samples per plane (3 for an RGB plane)
    dtype: np.dtype
    is_rgb: bool                     # brightfield: one uint8 RGB(A) plane

    @property
    def pixels(self) -> int:
        return self.level_shapes[0][0] * self.level_shapes[0][1]


def _associated_name(name: str) -> str | None:
    lowered = name.lower()
    for word, mapped in (("thumbnail", "thumbnail"), ("label", "label"), ("barcode", "label"),
                         ("macro", "macro"), ("overview", "macro")):
        if word in lowered:
            return mapped
    return None


class BioFormatsBackend(SlideBackend):
    """Any format Bio-Formats reads (CZI, ND2, LIF, VSI, OME-TIFF, QPTIFF, ...), through JPype.

    Options: ``series`` (int) opens that Bio-Formats series as the image (default: the
    first one that is not a thumbnail). ``extract_region(..., series_as_channels=True)``
    stacks, as channels, every series whose levels have the shape of the opened one
    (for files that store each channel as a series).
    """

    name = "bioformats"
    extensions = (".czi", ".lif", ".nd2", ".vsi", ".btf", ".jp2", ".lsm", ".zvi", ".oib", ".oif", ".ims", ".ome.tif", ".ome.tiff", ".qptiff")

    @classmethod
    def can_read(cls, path: str) -> bool:
        # By name only: starting a JVM to sniff every file would cost seconds.
        try:
            if not os.path.isfile(path):
                return False
            lowered = os.path.basename(os.fspath(path)).lower()
        except (TypeError, ValueError, OSError):
            return False
        parts = lowered.split(".")
        return any(".".join(parts[k:]) in _SUFFIXES for k in range(1, len(parts)))

    # -- opening -------------------------------------------------------------------------
    def _open(self, series=None, **options) -> None:
        if options:
            raise TypeError(f"unexpected options for BioFormatsBackend: {', '.join(options)}")
        if series is not None:
            series = as_int(series, "series", minimum=0)
        self._lock = threading.RLock()
        self._java = None
        try:
            java.ensure_jvm()
        except BackendUnavailableError as exc:
            raise BackendUnavailableError(self.path, exc.reason) from None
        self._java = self._call(self._open_reader)
        count = self._call(lambda: int(self._java.getSeriesCount()))
        self._series = [self._call(self._describe_series, s) for s in range(count)]
        if series is None:
            series = next((s.index for s in self._series if not s.thumbnail), 0)
        elif series >= count:
            raise ValueError(f"series must be in [0, {count - 1}] for this file, got {series}")
        main = self._series[series]
        self._main = main
        self.is_rgb = main.is_rgb
        self.dtype = np.dtype(np.uint8) if main.is_rgb else main.dtype
        self.sizes = (1, 3, 1) if main.is_rgb else main.sizes
        self._level_shapes = list(main.level_shapes)
        self._grids = [self._tile_grid(main, level) for level in range(len(main.level_shapes))]
        self._channel_series = [s for s in self._series if self._stacks_with(main, s)]
        self._call(self._read_metadata, main)
        self._add_associated(main)

    def _open_reader(self):
        import jpype

        reader = jpype.JClass("loci.formats.ImageReader")()
        # Resolutions as levels of their series, not as series of their own.
        reader.setFlattenedResolutions(False)
        self._ome = jpype.JClass("loci.formats.MetadataTools").createOMEXMLMetadata()
        reader.setMetadataStore(self._ome)
        try:
            reader.setId(self.path)
        except BaseException:
            try:
                reader.close()
            except Exception:
                pass
            raise
        return reader

    def _describe_series(self, index: int) -> _Series:
        reader = self._java
        reader.setSeries(index)
        shapes, tiles = [], []
        for resolution in range(int(reader.getResolutionCount())):
            reader.setResolution(resolution)
            shapes.append((int(reader.getSizeY()), int(reader.getSizeX())))
            tiles.append((int(reader.getOptimalTileHeight()), int(reader.getOptimalTileWidth())))
        reader.setResolution(0)
        import jpype

        type_name = str(jpype.JClass("loci.formats.FormatTools").getPixelTypeString(reader.getPixelType()))
        if type_name not in _DTYPES:
            raise UnsupportedFormatError(self.path, f"series {index} has pixels of type {type_name!r}")
        dtype = np.dtype(_DTYPES[type_name])
        samples = int(reader.getRGBChannelCount())
        sizes = (int(reader.getSizeZ()), int(reader.getEffectiveSizeC()) * samples, int(reader.getSizeT()))
        is_rgb = dtype == np.uint8 and samples in (3, 4) and sizes == (1, samples, 1)
        name = _optional_str(self._ome.getImageName, index) or ""
        return _Series(index, name, bool(reader.isThumbnailSeries()), tuple(shapes), tuple(tiles),
                       sizes, samples, dtype, is_rgb)

    @staticmethod
    def _stacks_with(main: _Series, other: _Series) -> bool:
        return (other.level_shapes == main.level_shapes and other.dtype == main.dtype
                and other.sizes[0] == main.sizes[0] and other.sizes[2] == main.sizes[2])

    def _read_metadata(self, main: _Series) -> None:
        import jpype

        reader, ome, s = self._java, self._ome, main.index
        props = self._properties
        reader.setSeries(s)
        props["bioformats.format"] = str(reader.getFormat())
        props["bioformats.series"] = str(s)
        props["bioformats.series-count"] = str(len(self._series))
        for series in self._series:
            props[f"bioformats.series.{series.index}.name"] = series.name
        for prefix, table in (("bioformats.global.", reader.getGlobalMetadata()),
                              ("bioformats.series-metadata.", reader.getSeriesMetadata())):
            for key in list(table.keySet())[:5000]:
                props[prefix + str(key)] = str(table.get(key))[:4096]
        props["ome.xml"] = str(ome.dumpXML())
        props["wsikit.vendor"] = "bioformats"
        self.channel_names = self._channel_names(main)
        microns = jpype.JClass("ome.units.UNITS").MICROMETER
        mpp = []
        for getter in (ome.getPixelsPhysicalSizeY, ome.getPixelsPhysicalSizeX):
            length = _optional(getter, s)
            mpp.append(positive_float(_optional(length.value, microns)) if length is not None else None)
        if all(mpp):
            self._mpp = (mpp[0], mpp[1])
            props["wsikit.mpp-y"], props["wsikit.mpp-x"] = (repr(v) for v in self._mpp)
        self._objective_power = self._magnification(s)
        if self._objective_power:
            props["wsikit.objective-power"] = repr(self._objective_power)

    def _channel_names(self, main: _Series) -> list[str]:
        if main.is_rgb:
            return ["R", "G", "B"]
        c = main.sizes[1]
        count = int(_optional(self._ome.getChannelCount, main.index) or 0)
        names = [_optional_str(self._ome.getChannelName, main.index, k) for k in range(count)]
        if count == c:
            return [name or f"C{k}" for k, name in enumerate(names)]
        if count * main.samples == c:  # one named channel per RGB plane: number its samples
            return [f"{names[k // main.samples]}:{k % main.samples}" if names[k // main.samples] else f"C{k}"
                    for k in range(c)]
        return [f"C{k}" for k in range(c)]

    def _magnification(self, s: int) -> float | None:
        ome = self._ome
        wanted = _optional_str(ome.getObjectiveSettingsID, s)
        for i in range(int(_optional(ome.getInstrumentCount) or 0)):
            for o in range(int(_optional(ome.getObjectiveCount, i) or 0)):
                if wanted is None or _optional_str(ome.getObjectiveID, i, o) == wanted:
                    return positive_float(_optional(ome.getObjectiveNominalMagnification, i, o))
        return None

    def _add_associated(self, main: _Series) -> None:
        for series in self._series:
            if series.index == main.index:
                continue
            name = _associated_name(series.name)
            if name is None and not series.thumbnail and series.pixels > _SMALL_SERIES_PIXELS:
                continue  # another full image (a scene, a well): reachable with series=
            name = name or f"image{series.index}"
            if name in self._associated:
                name = f"{name}{series.index}"
            self._associated[name] = lambda series=series, name=name: self._associated_image(series, name)

    def _associated_image(self, series: _Series, name: str) -> np.ndarray:
        self._ensure_usable()
        shape = series.level_shapes[0]
        check_allocation(shape + (series.sizes[1] * series.sizes[0] * series.sizes[2],),
                         series.dtype.itemsize, f"associated image {name!r}", self.path)
        grid = self._tile_grid(series, 0)
        array = self._reader.read(grid, 0, 0, shape[0], shape[1])
        return np.ascontiguousarray(array) if series.is_rgb else display_rgb(to_uint8(array))

    # -- pixels --------------------------------------------------------------------------
    def extract_region(self, location, size, level: int | None = 0, normalize: bool = True,
                       series_as_channels: bool = False) -> np.ndarray:
        """Pixels of the box at ``location`` (i, j) of ``size`` (h, w) in the frame of ``level``.

        Brightfield RGB: (h, w, 3) uint8. Anything else: (h, w, z, c, t), uint8 when
        ``normalize`` (uint16 v -> v >> 8), else the file's dtype. ``series_as_channels``
        stacks the channels of every series shaped like the opened one along c.
        """
        if series_as_channels:
            return super().extract_region(location, size, level, normalize, series_as_channels=True)
        return super().extract_region(location, size, level, normalize)

    def _tile_grid(self, series: _Series, level: int) -> TileGrid:
        shape = series.level_shapes[level]
        pixel_shape = (3,) if series.is_rgb else series.sizes
        dtype = np.dtype(np.uint8) if series.is_rgb else series.dtype
        pixel_bytes = int(np.prod(series.sizes)) * series.dtype.itemsize
        tile_shape = _tile_shape(shape, series.optimal_tiles[level], pixel_bytes)
        z, c, t = series.sizes
        samples = series.samples
        planes = [(zi, ci, ti) for ti in range(t) for ci in range(c // samples) for zi in range(z)]

        def decode(ti: int, tj: int) -> np.ndarray:
            i, j = ti * tile_shape[0], tj * tile_shape[1]
            h, w = min(tile_shape[0], shape[0] - i), min(tile_shape[1], shape[1] - j)
            return self._call(self._read_tile, series, level, i, j, h, w, planes)

        return TileGrid(("bioformats", series.index, level), shape, tile_shape, pixel_shape, dtype, decode)

    def _read_tile(self, series: _Series, level: int, i: int, j: int, h: int, w: int, planes) -> np.ndarray:
        reader = self._java
        reader.setSeries(series.index)
        reader.setResolution(level)
        little = bool(reader.isLittleEndian())
        interleaved = bool(reader.isInterleaved())
        samples = series.samples
        source = series.dtype.newbyteorder("<" if little else ">") if series.dtype.itemsize > 1 else series.dtype
        if series.dtype == np.bool_:
            source = np.dtype(np.uint8)
        expected = h * w * samples * source.itemsize
        if series.is_rgb:
            out = np.empty((h, w, 3), dtype=np.uint8)
        else:
            out = np.empty((h, w) + series.sizes, dtype=series.dtype)
        for zi, ci, ti in planes:
            index = int(reader.getIndex(zi, ci, ti))
            data = reader.openBytes(index, j, i, w, h)
            if len(data) != expected:
                raise CorruptSlideError(
                    self.path, f"Bio-Formats gave {len(data)} bytes for a {h}x{w} box of plane {index}, expected {expected}")
            flat = np.frombuffer(memoryview(data), dtype=source)
            plane = flat.reshape(h, w, samples) if interleaved else flat.reshape(samples, h, w).transpose(1, 2, 0)
            if series.is_rgb:
                out[:] = plane[:, :, :3]
            else:
                out[:, :, zi, ci * samples : (ci + 1) * samples, ti] = plane if series.dtype != np.bool_ else plane != 0
        return out

    def _read_region(self, level: int, i: int, j: int, h: int, w: int, series_as_channels: bool = False,
                     **kwargs) -> np.ndarray:
        if kwargs:
            raise TypeError(f"unexpected arguments for BioFormatsBackend.extract_region: {', '.join(kwargs)}")
        if not series_as_channels:
            return self._reader.read(self._grids[level], i, j, i + h, j + w)
        parts = []
        for series in self._channel_series:
            part = self._reader.read(self._tile_grid(series, level), i, j, i + h, j + w)
            parts.append(part[:, :, None, :, None] if series.is_rgb else part)
        return np.concatenate(parts, axis=3)

    def _level_grid(self, level: int) -> TileGrid:
        return self._grids[level]  # what _read_region reads without series_as_channels

    def _extract(self, level: int, location, size, normalize: bool, series_as_channels: bool = False, **kwargs):
        if not series_as_channels:
            return super()._extract(level, location, size, normalize, **kwargs)
        if kwargs:
            raise TypeError(f"unexpected arguments for BioFormatsBackend.extract_region: {', '.join(kwargs)}")
        z, _, t = self._main.sizes
        channels = sum(s.sizes[1] for s in self._channel_series)
        dtype = np.dtype(np.uint8) if normalize else np.dtype(self._main.dtype)
        check_allocation(size + (z, channels, t), dtype.itemsize, "region", self.path)
        out = np.zeros(size + (z, channels, t), dtype=dtype)
        box = clip_box(location, size, self._level_shapes[level])
        if box is not None:
            (i0, j0, i1, j1), (di, dj) = box
            part = self._read_checked(level, (i0, j0), (i1 - i0, j1 - j0), series_as_channels=True)
            out[di : di + i1 - i0, dj : dj + j1 - j0] = to_uint8(part) if normalize else part
        return out

    # -- the JVM -------------------------------------------------------------------------
    def _call(self, fn, *args):
        """Run ``fn`` on the reader under the lock, turning Java exceptions into SlideErrors."""
        try:
            java.check_not_forked()
        except BackendUnavailableError as exc:
            raise BackendUnavailableError(self.path, exc.reason) from None
        import jpype

        with self._lock:
            try:
                return fn(*args)
            except (SlideError, ValueError, TypeError):
                raise
            except jpype.JException as exc:
                raise self._java_error(exc) from None

    def _java_error(self, exc) -> SlideError:
        try:
            kind = str(exc.getClass().getName())
            message = str(exc.getMessage())
        except Exception:
            kind, message = type(exc).__name__, str(exc)
        if kind == "loci.formats.UnknownFormatException":
            return UnsupportedFormatError(self.path, "Bio-Formats does not recognise this file")
        if kind == "java.lang.OutOfMemoryError":
            return CorruptSlideError(self.path, f"the Java heap is too small ({message}); raise WSIKIT_JVM_HEAP "
                                                f"(now {java.jvm_heap()})")
        return CorruptSlideError(self.path, f"Bio-Formats: {kind.rsplit('.', 1)[-1]}: {message}")

    def _close(self) -> None:
        reader = getattr(self, "_java", None)
        self._java = None
        if reader is None:
            return
        if not java.jvm_started_here():
            _ORPHANS.append(reader)  # the JVM is in the parent: a Java call here could hang
            return
        import jpype

        if jpype.isJVMStarted():
            with self._lock:
                reader.close()

    def _after_fork(self) -> None:
        # A JVM does not survive fork() and a process cannot start a second one, so the
        # child can neither use nor reopen this reader: say so instead of hanging.
        if self._java is not None:
            _ORPHANS.append(self._java)
            self._java = None
        raise BackendUnavailableError(
            self.path,
            "this Bio-Formats slide was opened before fork(); a JVM does not survive fork(): open it in the "
            "child (before the parent starts a JVM), or use the 'spawn' or 'forkserver' start method",
        )

    def _ensure_usable(self) -> None:
        super()._ensure_usable()
        if self._java is None and not self._closed:
            raise BackendUnavailableError(self.path, "the Bio-Formats reader is gone (the process forked)")


def _tile_shape(shape, optimal, pixel_bytes: int) -> tuple[int, int]:
    """The tile (h, w) to read at once: Bio-Formats' optimal tile, grown when tiny, shrunk when huge.

    ``pixel_bytes`` counts every plane: a tile holds all (z, c, t) planes of its box.
    """
    h, w = shape
    th, tw = max(1, min(optimal[0], h)), max(1, min(optimal[1], w))
    while th * tw * pixel_bytes < _MIN_TILE_BYTES and (th < h or tw < w):
        if th < h and (th <= tw or tw >= w):
            th = min(h, 2 * th)
        else:
            tw = min(w, 2 * tw)
    while th * tw * pixel_bytes > MAX_TILE_BYTES and (th > 1 or tw > 1):
        if th >= tw:
            th = -(-th // 2)
        else:
            tw = -(-tw // 2)
    return th, tw


def _optional(getter, *args):
    """``getter(*args)``, or None when the metadata element is missing (OME getters then throw)."""
    try:
        return getter(*args)
    except Exception:  # noqa: BLE001 - NullPointerException and friends: no such element
        return None


def _optional_str(getter, *args) -> str | None:
    value = _optional(getter, *args)
    return None if value is None else str(value)
