"""Tiling arithmetic: where the tiles of a grid lie, by the rule of PathML's slide backends
(the seed wsikit grew from) in their ``generate_tiles``. Pure functions of shapes, no pixels.

All shapes and coordinates are (i, j) = (row, column), in pixels of one frame (a level,
or the target frame of a physical-resolution tiling).
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence

from .checks import IntOrPair, as_pair


def tiles_along_axis(length: int, size: int, stride: int, pad: bool) -> int:
    """How many tiles PathML's ``generate_tiles`` grid places along one axis of ``length`` pixels.

    Without padding: only tiles that lie wholly inside. With padding, when the stride
    does not divide the length: every start inside the image (``length // stride + 1``).
    """
    if pad and length % stride != 0:
        return length // stride + 1
    return max(0, (length - size) // stride + 1)


def grid_shape(image_shape: Sequence[int], shape: IntOrPair, stride: IntOrPair | None = None,
               pad: bool = False) -> tuple[int, int]:
    """(rows, columns) of tiles for an image of ``image_shape`` pixels."""
    size = as_pair(shape, "shape", minimum=1)
    step = size if stride is None else as_pair(stride, "stride", minimum=1)
    return (
        tiles_along_axis(int(image_shape[0]), size[0], step[0], bool(pad)),
        tiles_along_axis(int(image_shape[1]), size[1], step[1], bool(pad)),
    )


def tile_locations(image_shape: Sequence[int], shape: IntOrPair, stride: IntOrPair | None = None,
                   pad: bool = False) -> Iterator[tuple[int, int]]:
    """Top-left (i, j) of every tile, row-major (the order of PathML's ``generate_tiles``)."""
    size = as_pair(shape, "shape", minimum=1)
    step = size if stride is None else as_pair(stride, "stride", minimum=1)
    rows, cols = grid_shape(image_shape, size, step, pad)
    for r in range(rows):
        for c in range(cols):
            yield r * step[0], c * step[1]


def clip_box(location: Sequence[int], size: Sequence[int],
             image_shape: Sequence[int]) -> tuple[tuple[int, int, int, int], tuple[int, int]] | None:
    """The part of the box ``location + size`` inside the image.

    Returns ``(src, dst)`` where ``src`` = (i0, j0, i1, j1) in image pixels and ``dst`` =
    (i0, j0) where that part lands in the requested box, or None when nothing overlaps.
    """
    i, j = location
    h, w = size
    H, W = image_shape
    i0, j0 = max(i, 0), max(j, 0)
    i1, j1 = min(i + h, H), min(j + w, W)
    if i0 >= i1 or j0 >= j1:
        return None
    return (i0, j0, i1, j1), (i0 - i, j0 - j)


def thumbnail_shape(level0_shape: tuple[int, int], size: tuple[int, int]) -> tuple[int, int]:
    """(h, w) of a picture of a level 0 of ``level0_shape`` that fits in ``size`` = (h, w),
    keeping the aspect ratio (the rule of every ``get_thumbnail``)."""
    h0, w0 = level0_shape
    th, tw = size
    scale = min(th / h0, tw / w0)
    return min(th, max(1, round(h0 * scale))), min(tw, max(1, round(w0 * scale)))
