"""The Tile: one piece of a slide with where it came from."""
from __future__ import annotations

import numbers
from typing import Any

import numpy as np


def _coords(value: object, name: str) -> tuple[int, int]:
    if not (isinstance(value, (tuple, list)) and len(value) == 2):
        raise TypeError(f"{name} must be a pair (i, j) of ints, got {value!r}")
    out = []
    for k, v in enumerate(value):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise TypeError(f"{name}[{k}] must be an int, got {v!r}")
        out.append(int(v))
    return out[0], out[1]


class Tile:
    """A tile image and its place in the slide.

    Attributes:
        image: the pixels, (h, w, 3) uint8 for brightfield RGB, else (h, w, z, c, t).
        coords: (i, j) of the top-left pixel in the frame the tiles were asked for: the
            level's own pixel frame, or the target-resolution frame when tiling by mpp.
        level: the pyramid level the pixels were read from.
        coords0: (i, j) of the top-left corner in level-0 pixels.
        mpp: (i, j) microns per pixel of ``image``, when the slide says.
        tissue: fraction of the tile covered by tissue, when a tissue mask was used.
        name: an optional label, e.g. the slide name plus coordinates.
        masks: name -> array with the tile's (h, w) shape.
        labels: name -> any value (class labels, metadata).
    """

    __slots__ = ("image", "coords", "level", "coords0", "mpp", "tissue", "name", "masks", "labels")
    image: np.ndarray
    coords: tuple[int, int]
    level: int
    coords0: tuple[int, int] | None
    mpp: tuple[float, float] | None
    tissue: float | None
    name: str | None
    masks: dict[str, np.ndarray]
    labels: dict[str, Any]

    def __init__(
        self,
        image: np.ndarray,
        coords: tuple[int, int],
        level: int = 0,
        *,
        name: str | None = None,
        masks: dict[str, np.ndarray] | None = None,
        labels: dict[str, Any] | None = None,
        coords0: tuple[int, int] | None = None,
        mpp: tuple[float, float] | None = None,
        tissue: float | None = None,
    ) -> None:
        if not isinstance(image, np.ndarray):
            raise TypeError(f"image must be a numpy array, got {type(image).__name__}")
        if image.ndim < 2:
            raise ValueError(f"image must have at least 2 dimensions (i, j), got shape {image.shape}")
        if isinstance(level, bool) or not isinstance(level, numbers.Integral) or level < 0:
            raise TypeError(f"level must be a non-negative int, got {level!r}")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a str or None, got {name!r}")
        masks = {} if masks is None else masks
        if not isinstance(masks, dict):
            raise TypeError(f"masks must be a dict of name -> array, got {type(masks).__name__}")
        for key, mask in masks.items():
            if not isinstance(mask, np.ndarray):
                raise TypeError(f"mask {key!r} must be a numpy array, got {type(mask).__name__}")
            if mask.shape[:2] != image.shape[:2]:
                raise ValueError(f"mask {key!r} has shape {mask.shape[:2]}, the tile image {image.shape[:2]}")
        labels = {} if labels is None else labels
        if not isinstance(labels, dict):
            raise TypeError(f"labels must be a dict, got {type(labels).__name__}")
        if tissue is not None:
            tissue = float(tissue)
            if not 0.0 <= tissue <= 1.0:
                raise ValueError(f"tissue must be a fraction in [0, 1], got {tissue}")
        self.image = image
        self.coords = _coords(coords, "coords")
        self.level = int(level)
        self.coords0 = self.coords if coords0 is None and level == 0 else (None if coords0 is None else _coords(coords0, "coords0"))
        self.mpp = None if mpp is None else (float(mpp[0]), float(mpp[1]))
        self.tissue = tissue
        self.name = name
        self.masks = masks
        self.labels = labels

    @classmethod
    def _read(cls, image: np.ndarray, coords: tuple[int, int], level: int, coords0: tuple[int, int],
              mpp: tuple[float, float] | None, tissue: float | None) -> Tile:
        """A tile as a reader makes it, from values wsikit itself computed and checked
        (a plan's TileSpec): skips the argument checks, which cost more than the rest of
        handing a tile over when tiles come at thousands a second."""
        tile = cls.__new__(cls)
        tile.image, tile.coords, tile.level, tile.coords0 = image, coords, level, coords0
        tile.mpp, tile.tissue, tile.name, tile.masks, tile.labels = mpp, tissue, None, {}, {}
        return tile

    @property
    def shape(self) -> tuple[int, ...]:
        return self.image.shape

    def __repr__(self) -> str:
        extra = f", tissue={self.tissue:.2f}" if self.tissue is not None else ""
        return f"Tile(coords={self.coords}, level={self.level}, shape={self.image.shape}, dtype={self.image.dtype}{extra})"
