"""BioFormatsBackend: the long tail of microscopy formats through Bio-Formats and JPype.

Only files that :mod:`.signatures` recognises (by their leading bytes where the format has
a known signature, else by name) are Bio-Formats' files: a JVM is never started for a
file no Bio-Formats format could be.

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

import threading
from functools import partial
from typing import Any, Callable, TypeVar

import numpy as np

from ...checks import as_int
from ...errors import BackendUnavailableError, CorruptSlideError, SlideError, UnsupportedFormatError
from ...limits import check_allocation
from ...pixels import display_rgb, padded, to_uint8
from ...reader import TileGrid
from ...tiling import clip_box
from ..base import SlideBackend
from . import java, ome_metadata, signatures
from .series import DTYPES, SMALL_SERIES_PIXELS, Series, associated_name, tile_shape

# Kept under this name for code that looked the endings up here.
_SUFFIXES = signatures.SUFFIXES

# Handles whose JVM stayed in the parent after fork(): never touched again, never freed.
_ORPHANS: list[Any] = []

_Result = TypeVar("_Result")
# One (z, c, t) plane of a series, as Bio-Formats numbers its axes.
_Plane = tuple[int, int, int]


class BioFormatsBackend(SlideBackend):
    """Any format Bio-Formats reads (CZI, ND2, LIF, VSI, OME-TIFF, QPTIFF, ...), through JPype.

    Options: ``series`` (int) opens that Bio-Formats series as the image (default: the
    first one that is not a thumbnail). ``extract_region(..., series_as_channels=True)``
    stacks, as channels, every series whose levels have the shape of the opened one
    (for files that store each channel as a series).
    """

    name = "bioformats"
    extensions = (".czi", ".lif", ".nd2", ".vsi", ".btf", ".jp2", ".lsm", ".zvi", ".oib", ".oif", ".ims", ".ome.tif",
                  ".ome.tiff", ".qptiff")

    _java: Any  # the open loci.formats.ImageReader, None once closed or orphaned by fork()
    _ome: Any  # its OME-XML metadata store
    _main: Series
    _series: list[Series]
    _channel_series: list[Series]

    @classmethod
    def can_read(cls, path: str) -> bool:
        # By the file's name and first bytes (signatures.py): starting a JVM to ask
        # Bio-Formats about every file would cost seconds.
        return signatures.recognises(path)

    # -- opening -------------------------------------------------------------------------
    def _open(self, series: int | None = None) -> None:
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
        self._channel_series = [s for s in self._series if main.stacks_with(s)]
        self._call(self._read_metadata, main)
        self._add_associated(main)

    def _open_reader(self) -> Any:
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

    def _describe_series(self, index: int) -> Series:
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
        if type_name not in DTYPES:
            raise UnsupportedFormatError(self.path, f"series {index} has pixels of type {type_name!r}")
        dtype = np.dtype(DTYPES[type_name])
        samples = int(reader.getRGBChannelCount())
        sizes = (int(reader.getSizeZ()), int(reader.getEffectiveSizeC()) * samples, int(reader.getSizeT()))
        is_rgb = dtype == np.uint8 and samples in (3, 4) and sizes == (1, samples, 1)
        name = ome_metadata.optional_str(self._ome.getImageName, index) or ""
        return Series(index, name, bool(reader.isThumbnailSeries()), tuple(shapes), tuple(tiles),
                      sizes, samples, dtype, is_rgb)

    def _read_metadata(self, main: Series) -> None:
        self._properties.update(ome_metadata.properties(self._java, self._ome, self._series, main))
        self.channel_names = ome_metadata.channel_names(self._ome, main)
        self._mpp = ome_metadata.microns_per_pixel(self._ome, main.index)
        self._objective_power = ome_metadata.objective_power(self._ome, main.index)

    def _add_associated(self, main: Series) -> None:
        for series in self._series:
            if series.index == main.index:
                continue
            name = associated_name(series.name)
            if name is None and not series.thumbnail and series.pixels > SMALL_SERIES_PIXELS:
                continue  # another full image (a scene, a well): reachable with series=
            name = name or f"image{series.index}"
            if name in self._associated:
                name = f"{name}{series.index}"
            self._associated[name] = partial(self._associated_image, series, name)

    def _associated_image(self, series: Series, name: str) -> np.ndarray:
        self._ensure_usable()
        shape = series.level_shapes[0]
        check_allocation(shape + (series.sizes[1] * series.sizes[0] * series.sizes[2],),
                         series.dtype.itemsize, f"associated image {name!r}", self.path)
        grid = self._tile_grid(series, 0)
        array = self._reader.read(grid, 0, 0, shape[0], shape[1])
        return np.ascontiguousarray(array) if series.is_rgb else display_rgb(to_uint8(array))

    # -- pixels --------------------------------------------------------------------------
    def _tile_grid(self, series: Series, level: int) -> TileGrid:
        shape = series.level_shapes[level]
        pixel_shape = (3,) if series.is_rgb else series.sizes
        dtype = np.dtype(np.uint8) if series.is_rgb else series.dtype
        pixel_bytes = int(np.prod(series.sizes)) * series.dtype.itemsize
        tile = tile_shape(shape, series.optimal_tiles[level], pixel_bytes)
        z, c, t = series.sizes
        planes = [(zi, ci, ti) for ti in range(t) for ci in range(c // series.samples) for zi in range(z)]

        def decode(ti: int, tj: int) -> np.ndarray:
            i, j = ti * tile[0], tj * tile[1]
            h, w = min(tile[0], shape[0] - i), min(tile[1], shape[1] - j)
            return self._call(self._read_tile, series, level, i, j, h, w, planes)

        return TileGrid(("bioformats", series.index, level), shape, tile, pixel_shape, dtype, decode)

    def _read_tile(self, series: Series, level: int, i: int, j: int, h: int, w: int,
                   planes: list[_Plane]) -> np.ndarray:
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
                    self.path,
                    f"Bio-Formats gave {len(data)} bytes for a {h}x{w} box of plane {index}, expected {expected}")
            flat = np.frombuffer(memoryview(data), dtype=source)
            plane = flat.reshape(h, w, samples) if interleaved else flat.reshape(samples, h, w).transpose(1, 2, 0)
            if series.is_rgb:
                out[:] = plane[:, :, :3]
            else:
                out[:, :, zi, ci * samples : (ci + 1) * samples, ti] = plane if series.dtype != np.bool_ else plane != 0
        return out

    def _read_region(self, level: int, i: int, j: int, h: int, w: int,
                     series_as_channels: bool = False) -> np.ndarray:
        if not series_as_channels:
            return super()._read_region(level, i, j, h, w)  # the opened series' grid
        parts = []
        for series in self._channel_series:
            part = self._reader.read(self._tile_grid(series, level), i, j, i + h, j + w)
            parts.append(part[:, :, None, :, None] if series.is_rgb else part)
        return np.concatenate(parts, axis=3)

    def _extract(self, level: int, location: tuple[int, int], size: tuple[int, int], normalize: bool,
                 **options: Any) -> np.ndarray:
        # ``options`` are read options the base has checked: only series_as_channels.
        if not options.get("series_as_channels"):
            return super()._extract(level, location, size, normalize)
        # The base pads with the opened series' (z, c, t); stacked series bring more channels.
        z, _, t = self._main.sizes
        pixel_shape = (z, sum(s.sizes[1] for s in self._channel_series), t)
        dtype = np.dtype(np.uint8) if normalize else np.dtype(self._main.dtype)
        check_allocation(size + pixel_shape, dtype.itemsize, "region", self.path)
        box = clip_box(location, size, self._level_shapes[level])
        if box is None:
            return padded(None, (0, 0), size, pixel_shape, dtype)
        (i0, j0, i1, j1), offset = box
        part = self._read_checked(level, (i0, j0), (i1 - i0, j1 - j0), series_as_channels=True)
        return padded(to_uint8(part) if normalize else part, offset, size, pixel_shape, dtype)

    # -- the JVM -------------------------------------------------------------------------
    def _call(self, fn: Callable[..., _Result], *args: Any) -> _Result:
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

    def _java_error(self, exc: Any) -> SlideError:
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
