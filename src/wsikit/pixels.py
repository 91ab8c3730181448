"""Pixel-value helpers shared by the backends: dtype normalisation, display colour, resizing."""
from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
from numpy.typing import DTypeLike


def to_uint8(array: np.ndarray) -> np.ndarray:
    """Scale ``array`` to uint8 from the full range of its pixel type.

    Unsigned integers keep their top 8 bits (uint16 v -> v >> 8); signed integers are
    shifted to unsigned first; floats are taken as [0, 1] and scaled to [0, 255];
    booleans become 0 / 255. uint8 passes through untouched (no copy).
    """
    dtype = array.dtype
    if dtype == np.uint8:
        return array
    if dtype == np.bool_:
        return array.astype(np.uint8) * np.uint8(255)
    if np.issubdtype(dtype, np.unsignedinteger):
        return (array >> (8 * (dtype.itemsize - 1))).astype(np.uint8)
    if np.issubdtype(dtype, np.signedinteger):
        bits = 8 * dtype.itemsize
        shifted = array.astype(np.int64) + (1 << (bits - 1))
        return (shifted >> (bits - 8)).astype(np.uint8)
    if np.issubdtype(dtype, np.floating):
        scaled = np.clip(np.nan_to_num(array.astype(np.float32), nan=0.0), 0.0, 1.0) * 255.0
        return np.rint(scaled).astype(np.uint8)
    raise TypeError(f"cannot normalise pixels of type {dtype} to uint8")


def padded(part: np.ndarray | None, offset: tuple[int, int], size: tuple[int, int],
           pixel_shape: tuple[int, ...], dtype: DTypeLike) -> np.ndarray:
    """A zero (h, w, *pixel_shape) array of ``size`` with ``part`` placed at ``offset`` (i, j):
    a box read partly (or, with ``part`` None, wholly) outside its level."""
    out = np.zeros(tuple(size) + tuple(pixel_shape), dtype=dtype)
    if part is not None:
        di, dj = offset
        out[di : di + part.shape[0], dj : dj + part.shape[1]] = part
    return out


# Display colours for fluorescence channels beyond the first three: distinct hues.
_CHANNEL_COLOURS = np.array(
    [[0, 0, 1], [0, 1, 0], [1, 0, 0], [1, 0, 1], [0, 1, 1], [1, 1, 0], [1, 0.5, 0], [0.5, 0, 1], [1, 1, 1]],
    dtype=np.float32,
)


def display_rgb(array: np.ndarray) -> np.ndarray:
    """A uint8 RGB picture of an (h, w, 3) or (h, w, z, c, t) uint8 array, for thumbnails.

    5-D images show their first z-plane and time point; one channel is grey, three
    channels are taken as R, G, B, any other count is a false-colour composite (first
    channel blue, as DAPI usually is, then green, red, ...), brightest channel wins.
    """
    if array.ndim == 3 and array.shape[2] == 3:
        return array
    if array.ndim != 5:
        raise ValueError(f"expected (h, w, 3) or (h, w, z, c, t), got shape {array.shape}")
    planes = array[:, :, 0, :, 0]
    c = planes.shape[2]
    if c == 1:
        return np.repeat(planes, 3, axis=2)
    if c == 3:
        return np.ascontiguousarray(planes)
    colours = _CHANNEL_COLOURS[np.arange(c) % len(_CHANNEL_COLOURS)]
    out = np.zeros(planes.shape[:2] + (3,), dtype=np.float32)
    for k in range(c):
        np.maximum(out, planes[:, :, k, None].astype(np.float32) * colours[k], out=out)
    return np.rint(out).astype(np.uint8)


def block_mean(array: np.ndarray, factor: int) -> np.ndarray:
    """Average ``factor`` x ``factor`` blocks of an (h, w, ...) array (edge blocks may be smaller)."""
    if factor == 1:
        return array
    h, w = array.shape[:2]
    rows = np.arange(0, h, factor)
    cols = np.arange(0, w, factor)
    sums = np.add.reduceat(np.add.reduceat(array.astype(np.float32), rows, axis=0), cols, axis=1)
    counts_i = np.diff(np.append(rows, h)).astype(np.float32)
    counts_j = np.diff(np.append(cols, w)).astype(np.float32)
    counts = counts_i[:, None] * counts_j[None, :]
    counts = counts.reshape(counts.shape + (1,) * (array.ndim - 2))
    return sums / counts


def resize_area(array: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize an (h, w, c) uint8 or float image to ``shape`` by area averaging, as uint8."""
    from PIL import Image

    h, w = shape
    if array.dtype != np.uint8:
        array = np.clip(np.rint(array), 0, 255).astype(np.uint8)
    if array.shape[:2] == (h, w):
        return np.ascontiguousarray(array)
    channels = array.shape[2]
    planes = []
    for k in range(channels):
        plane = Image.fromarray(np.ascontiguousarray(array[:, :, k]))
        planes.append(np.asarray(plane.resize((w, h), Image.Resampling.BOX)))
    return np.stack(planes, axis=2)


def area_weights(n_in: int, n_out: int, start: float = 0.0, stop: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """How ``n_out`` pixels average ``n_in`` by area, as bands: (pixels, weights), both
    (n_out, span): output pixel k is the sum over d of ``weights[k, d] * input[pixels[k, d]]``.

    An output pixel covers at most ``span`` consecutive input pixels (about n_in / n_out + 1),
    so this is the nonzero part of the (n_out, n_in) weight matrix, without the zeros that
    made a dense product cost hundreds of times more. ``start`` and ``stop`` (fractional
    pixel positions, default the whole input) average a part of the input instead.
    """
    edges = np.linspace(start, n_in if stop is None else stop, n_out + 1)
    lo, hi = edges[:-1, None], edges[1:, None]
    first = np.minimum(np.floor(lo), n_in - 1).astype(np.int64)
    span = int(np.max(np.ceil(hi).astype(np.int64) - first))
    pixels = first + np.arange(max(1, span), dtype=np.int64)[None, :]
    overlap = np.clip(np.minimum(hi, pixels + 1) - np.maximum(lo, pixels), 0.0, None)
    weights = overlap / overlap.sum(axis=1, keepdims=True)
    return np.minimum(pixels, n_in - 1), weights  # past the edge the weight is 0


#: images of at most this many values are averaged with sparse products (whose input is
#: converted to float64 as a whole); larger ones a band of rows at a time
SPARSE_VALUES = 1 << 22


def _average_first_axis(data: np.ndarray, n_out: int, start: float = 0.0, stop: float | None = None) -> np.ndarray:
    """Area-average the first axis of ``data`` (from ``start`` to ``stop``) to ``n_out`` pixels, as float64."""
    pixels, weights = area_weights(data.shape[0], n_out, start, stop)
    # Gather each output pixel's band (n_out, span, ...) and sum it with its weights;
    # einsum without optimize is a plain C loop (no BLAS threads fighting the readers').
    return np.einsum("ks,ks...->k...", weights, np.take(data, pixels, axis=0))


@lru_cache(maxsize=128)
def _band_matrix(n_in: int, n_out: int, start: float, stop: float, samples: int, transposed: bool) -> Any:
    """The (n_out * samples, n_in * samples) sparse matrix of :func:`area_weights`, each
    weight repeated for the ``samples`` interleaved values of a pixel (CSR, float64), or
    its transpose.

    Tiles of one tiling share their sizes (and the few fractional starts of a scaled read),
    so each matrix is built once and reused.
    """
    import scipy.sparse

    pixels, weights = area_weights(n_in, n_out, start, stop)
    span = pixels.shape[1]
    rows = np.repeat(np.arange(n_out * samples, dtype=np.int64).reshape(n_out, samples), span, axis=1)
    columns = (pixels[:, None, :] * samples + np.arange(samples)[None, :, None]).reshape(n_out * samples, span)
    values = np.repeat(weights[:, None, :], samples, axis=1).reshape(n_out * samples, span)
    matrix = scipy.sparse.csr_matrix((values.ravel(), (rows.ravel(), columns.ravel())),
                                     shape=(n_out * samples, n_in * samples))
    matrix.sum_duplicates()  # past the edge, band pixels repeat the last one with weight 0
    return matrix.T.tocsr() if transposed else matrix


def _average_area(image: np.ndarray, shape: tuple[int, int], box: tuple[float, float, float, float]) -> np.ndarray:
    """Area-average ``box`` of ``image`` to ``shape``, in ``image``'s dtype (h, w, ...).

    Both passes are products with the banded weight matrices (scipy's sparse products, plain
    C loops over the few nonzero weights): rows first, over whole contiguous rows, then
    columns, on the rows' result, every sample of a pixel with the same weights.
    """
    H, W = image.shape[:2]
    h, w = shape
    samples = int(np.prod(image.shape[2:], dtype=np.int64))
    i0, j0, i1, j1 = box
    dtype = image.dtype
    if image.size > SPARSE_VALUES:  # large pictures (thumbnails): no float64 copy of the whole input
        rows = _average_first_axis(image, h, i0, i1)
        out = _average_first_axis(rows.swapaxes(0, 1), w, j0, j1).swapaxes(0, 1)
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            out = np.clip(np.rint(out), info.min, info.max)
        return out.astype(dtype, order="C")
    rows = _band_matrix(H, h, float(i0), float(i1), 1, False) @ np.ascontiguousarray(image).reshape(H, W * samples)
    out = np.asarray(rows @ _band_matrix(W, w, float(j0), float(j1), samples, True))  # (h, w * samples), float64
    if np.issubdtype(dtype, np.integer):
        np.rint(out, out=out)  # half to even
        if dtype.itemsize > 1:
            # Means lie between their inputs; only float error at the ends of a wide type can
            # leave the range (1-byte values are far from float64's limits).
            info = np.iinfo(dtype)
            np.clip(out, info.min, info.max, out=out)
    return out.astype(dtype, order="C").reshape((h, w) + image.shape[2:])


def _block_sums_uint8(image: np.ndarray, fi: int, fj: int) -> np.ndarray:
    """Sums of fi x fj blocks of a uint8 (H, W, ...) image, as uint16 (at most 257 pixels a
    block: no overflow). Rows are summed as whole contiguous rows; each block's columns are
    one contiguous run of fj pixels in the row sums, added a pixel (all its samples) at a time,
    which numpy runs several times faster than strided columns of single samples."""
    H, W = image.shape[:2]
    h, w = H // fi, W // fj
    pixel = int(np.prod(image.shape[2:], dtype=np.int64))
    rows = np.add.reduce(np.ascontiguousarray(image).reshape(h, fi, W * pixel), axis=1, dtype=np.uint16)
    blocks = rows.reshape(h, w, fj * pixel)
    sums = blocks[:, :, :pixel].copy()
    for d in range(1, fj):
        sums += blocks[:, :, d * pixel : (d + 1) * pixel]
    return sums.reshape((h, w) + image.shape[2:])


def resample_area(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize the first two axes of ``image`` to ``shape`` by exact area averaging.

    Works for any trailing axes ((h, w, 3) or (h, w, z, c, t)) and keeps the dtype
    (integers are rounded to nearest).
    """
    h, w = shape
    if image.shape[:2] == (h, w):
        return image
    H, W = image.shape[:2]
    if H % h == 0 and W % w == 0 and np.issubdtype(image.dtype, np.integer) and image.dtype.itemsize <= 4:
        # Whole-pixel blocks (tiling 0.25 mpp scans at 0.5 mpp): exact integer block sums,
        # faster still than the banded weights below.
        fi, fj = H // h, W // w
        unsigned = np.issubdtype(image.dtype, np.unsignedinteger)
        total = np.uint32 if unsigned and image.dtype.itemsize <= 2 and fi * fj <= 65536 else np.int64
        if image.dtype == np.uint8 and fi * fj <= 257:
            sums = _block_sums_uint8(image, fi, fj)
        else:
            # Rows first, then columns: whole rows are added at a time (fast), and the column
            # pass then works on an array fi times smaller.
            rows = image[0::fi].astype(total)
            for d in range(1, fi):
                rows += image[d::fi]
            sums = np.ascontiguousarray(rows[:, 0::fj])
            for d in range(1, fj):
                sums += rows[:, d::fj]
        # float32 holds 8-bit sums and their halves exactly; the mean of integers lies
        # between their extremes, so rounding it needs no clipping.
        exact32 = image.dtype.itemsize == 1 and fi * fj <= 65536
        return np.rint(np.divide(sums, fi * fj, dtype=np.float32 if exact32 else np.float64)).astype(image.dtype)
    return _average_area(image, shape, (0, 0, H, W))


def resample_box(image: np.ndarray, box: tuple[float, float, float, float], shape: tuple[int, int]) -> np.ndarray:
    """Area-average the part ``box`` = (i0, j0, i1, j1) of ``image`` (fractional pixel
    positions inside it) to ``shape``, keeping the dtype as :func:`resample_area` does.

    A box of whole pixels is cut out and handed to :func:`resample_area`.
    """
    i0, j0, i1, j1 = box
    if not (0 <= i0 < i1 <= image.shape[0] and 0 <= j0 < j1 <= image.shape[1]):
        raise ValueError(f"box {box} is not inside an image of {image.shape[:2]} pixels")
    if float(i0).is_integer() and float(j0).is_integer() and float(i1).is_integer() and float(j1).is_integer():
        return resample_area(image[int(i0) : int(i1), int(j0) : int(j1)], shape)
    return _average_area(image, shape, box)
