"""Associated images (label, macro, thumbnail) as a read-only mapping loaded on first use."""
from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Callable, Iterator

import numpy as np

from ..errors import CorruptSlideError, SlideError


class AssociatedImages(Mapping[str, np.ndarray]):
    """Read-only name -> uint8 RGB (h, w, 3) array; each image is loaded when first asked for.

    A loader that fails raises a SlideError naming the file and the image, never a raw
    library error; an image of another shape or type is refused the same way.
    """

    def __init__(self, loaders: dict[str, Callable[[], np.ndarray]], path: str | None = None) -> None:
        self._loaders = dict(loaders)
        self._images: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()
        self._path = path

    def __getitem__(self, name: str) -> np.ndarray:
        with self._lock:
            if name not in self._images:
                image = self._load(name, self._loaders[name])
                image.setflags(write=False)
                self._images[name] = image
            return self._images[name]

    def _load(self, name: str, loader: Callable[[], np.ndarray]) -> np.ndarray:
        try:
            image = loader()
        except SlideError:
            raise
        except MemoryError:
            raise CorruptSlideError(self._path, f"associated image {name!r}: out of memory") from None
        except Exception as exc:
            raise CorruptSlideError(self._path, f"associated image {name!r} cannot be read: {type(exc).__name__}: {exc}") from exc
        if not (isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8):
            raise CorruptSlideError(self._path, f"associated image {name!r} read as {getattr(image, 'shape', None)}, not (h, w, 3) uint8")
        return image

    def __iter__(self) -> Iterator[str]:
        return iter(self._loaders)

    def __len__(self) -> int:
        return len(self._loaders)

    def __repr__(self) -> str:
        return f"<associated images: {', '.join(self._loaders) or 'none'}>"
