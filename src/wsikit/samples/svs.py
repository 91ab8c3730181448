"""Synthetic slides that look like the real thing, for the demo, tests and benchmarks.

``write_sample_svs`` writes an Aperio-style pyramid (tiled JPEG levels, a stripped
thumbnail, a label and a macro image, mpp and objective power in the description) that
both tifffile and OpenSlide read as an SVS slide: pink and purple tissue on white glass.
"""
from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np


# float64 noise of one band of rows of tissue_texture, in bytes
TEXTURE_BAND_BYTES = 32 * 1024**2


def tissue_texture(shape: tuple[int, int], seed: int = 0, tissue_fraction: float = 0.45) -> np.ndarray:
    """An (h, w, 3) uint8 H&E-like picture: stained tissue blobs and nuclei on white glass."""
    rng = np.random.default_rng(seed)
    h, w = shape
    # Low-frequency field thresholded into tissue islands.
    coarse = rng.random((max(2, h // 256 + 2), max(2, w // 256 + 2))).astype(np.float32)
    field = _upsample(coarse, (h, w))
    threshold = np.quantile(field, 1.0 - tissue_fraction)
    tissue = field > threshold
    fine = _upsample(rng.random((max(2, h // 16 + 2), max(2, w // 16 + 2))).astype(np.float32), (h, w))
    pink = np.array([232, 150, 190], np.float32)
    purple = np.array([120, 60, 150], np.float32)
    white = np.array([242, 242, 240], np.float32)
    # The random draws are taken band by band in the same order as one whole draw would
    # take them (the generator's stream does not depend on how a request is split), so
    # the picture is the same while memory holds one band of float pixels, not the image.
    band = max(1, TEXTURE_BAND_BYTES // max(1, w * 3 * 8))
    nuclei = np.concatenate([rng.random((min(band, h - i), w)) > 0.985 for i in range(0, h, band)])
    out = np.empty((h, w, 3), np.uint8)
    for i in range(0, h, band):
        rows = slice(i, min(h, i + band))
        f = fine[rows, :, None]
        stain = pink[None, None, :] * (1 - f) + purple[None, None, :] * f
        stain[nuclei[rows]] = np.array([70, 30, 110], np.float32)
        image = np.where(tissue[rows, :, None], stain, white[None, None, :])
        image += rng.normal(0, 6, size=image.shape).astype(np.float32)
        out[rows] = np.clip(image, 0, 255)
    return out


def _upsample(small: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    image = Image.fromarray(small, mode="F").resize((shape[1], shape[0]), Image.Resampling.BICUBIC)
    return np.clip(np.asarray(image), 0, 1)


def _reduce(image: np.ndarray, factor: int) -> np.ndarray:
    from ..pixels import block_mean

    return np.clip(np.rint(block_mean(image, factor)), 0, 255).astype(np.uint8)


def write_sample_svs(path: str | os.PathLike[str], shape: tuple[int, int] = (4096, 6144), *, mpp: float = 0.25,
                     tile: int = 256, factors: Sequence[int] = (4, 16),
                     seed: int = 0, quality: int = 90, image: np.ndarray | None = None) -> str:
    """Write an Aperio-style SVS pyramid of ``shape`` (h, w) and return its path.

    Levels are level 0 reduced by each of ``factors``; ``mpp`` is level 0's microns per
    pixel (objective power 40 at 0.25 mpp, 20 at 0.5). Pass ``image`` to use given pixels.
    """
    import tifffile

    path = os.fspath(path)
    base = tissue_texture(shape, seed) if image is None else np.asarray(image, dtype=np.uint8)
    h, w = base.shape[:2]
    power = round(10.0 / mpp)
    description = (
        f"Aperio Image Library v12.0.0 \n{w}x{h} [0,0 {w}x{h}] ({tile}x{tile}) JPEG/RGB Q={quality}"
        f"|AppMag = {power}|MPP = {mpp}|Filename = sample|ScanScope ID = WSIKIT"
    )
    thumb = _reduce(base, max(1, max(h, w) // 512))
    with tifffile.TiffWriter(path, bigtiff=base.nbytes > 2**31) as tif:
        options = dict(photometric="rgb", compression="jpeg", compressionargs={"level": quality}, metadata=None)
        tif.write(base, tile=(tile, tile), description=description, subfiletype=0, **options)
        tif.write(thumb, rowsperstrip=16, **options,
                  description=f"Aperio Image Library v12.0.0 \n{w}x{h} -> {thumb.shape[1]}x{thumb.shape[0]}")
        for factor in factors:
            level = _reduce(base, factor)
            if min(level.shape[:2]) < 1:
                break
            tif.write(level, tile=(tile, tile), subfiletype=0, **options,
                      description=f"Aperio Image Library v12.0.0 \n{w}x{h} -> {level.shape[1]}x{level.shape[0]}")
        label = np.full((300, 300, 3), 255, np.uint8)
        label[100:200, 50:250] = (20, 20, 20)
        tif.write(label, rowsperstrip=16, description="Aperio Image Library v12.0.0 \nlabel 300x300", subfiletype=1,
                  photometric="rgb", compression="lzw", metadata=None)
        macro = _reduce(base, max(1, max(h, w) // 800))
        tif.write(macro, rowsperstrip=16, description="Aperio Image Library v12.0.0 \nmacro", subfiletype=9, **options)
    return path
