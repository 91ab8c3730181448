"""Label-mask images: an integer image of the slide at some downsample of level 0, with a
class table (PathML's way of keeping slide-level labels).

Read from PNG or TIFF (Pillow; tifffile for TIFF when Pillow cannot) or a ``.npy`` array;
the image must have one channel of integers (a palette PNG counts: its indices are the
labels). Label pixel (i, j) covers level-0 [i * d_i, (i + 1) * d_i) x [j * d_j, (j + 1) * d_j),
d = the downsample: given, or the slide's level-0 shape divided by the image's when the
slide is known, else 1. ``classes`` maps values to names (default: every non-zero value,
named by its number); other values are background.
"""
from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

from ..limits import check_allocation
from .model import Annotations
from .shapes import AnnotationError

LABEL_IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".npy")


def read_label_image(path: str | os.PathLike[str], *, classes: Mapping[int, str] | None = None,
                     downsample: float | tuple[float, float] | None = None,
                     slide_shape: tuple[int, int] | None = None) -> Annotations:
    """The annotations of a label-mask image (see the module notes)."""
    image = _pixels(path)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim != 2 or image.dtype.kind not in "uib":
        raise AnnotationError(path, f"a label image must have one channel of integers, got {image.dtype} pixels "
                                    f"of shape {image.shape}")
    if image.size == 0:
        raise AnnotationError(path, "the label image is empty")
    if downsample is None:
        downsample = (1.0, 1.0) if slide_shape is None else (slide_shape[0] / image.shape[0],
                                                             slide_shape[1] / image.shape[1])
    if classes is not None:
        classes = {int(v): str(n) for v, n in classes.items()}
    try:
        return Annotations.from_label_image(image, classes, downsample, source=path)
    except ValueError as exc:
        raise AnnotationError(path, str(exc)) from None


def _pixels(path: str | os.PathLike[str]) -> np.ndarray:
    name = os.fspath(path).lower()
    try:
        if name.endswith(".npy"):
            array = np.load(path, mmap_mode="r", allow_pickle=False)
            check_allocation(array.shape, array.dtype.itemsize, "label image", os.fspath(path))
            return np.array(array)
        from PIL import Image

        try:
            with Image.open(path) as im:
                check_allocation((im.height, im.width), 4, "label image", os.fspath(path))
                return np.asarray(im)
        except Exception:
            if not name.endswith((".tif", ".tiff")):
                raise
        import tifffile

        with tifffile.TiffFile(path) as tif:
            page = tif.pages.first
            check_allocation(page.shape, page.dtype.itemsize if page.dtype else 1, "label image", os.fspath(path))
            return page.asarray()
    except AnnotationError:
        raise
    except Exception as exc:
        if type(exc).__name__ == "LimitError":
            raise
        raise AnnotationError(path, f"cannot read the label image: {type(exc).__name__}: {exc}") from None
