"""TileDataset: tiles as a map-style dataset for training loops (PyTorch's ``DataLoader``
or any loop that indexes), without importing torch.

Two sources:

- ``TileDataset([(slide_path_or_url, plan), ...], annotations=None)``: the tiles of tile
  plans (``slide.tile_plan(...)`` or lists of TileSpecs), read from the slides on the fly.
  Labels and masks come from the plan when it was made with ``annotations=``, else from
  ``annotations`` (one :class:`~wsikit.annotations.Annotations` for every slide, a list
  aligned with the entries, or a dict keyed by slide path).
- ``TileDataset(out_folder)``: a finished ``wsikit tile`` output, one slide's folder or the
  whole output (every complete slide folder in it, sorted by name). Tiles come from
  ``tiles.zarr`` (read with zarr-python, so either Zarr layout wsikit wrote works) or the
  image files; labels from the ``label:<class>`` columns of ``tiles.csv``; masks from the
  ``masks`` array or mask images (bit c of a mask value is class c, in column order).

Item k is a dict: ``image`` (h, w, channels) uint8, ``labels`` {class: fraction},
``masks`` {class: (h, w) bool}, ``coords`` (2,) int64 (i, j) in the tiling's frame,
``slide`` (the slide's id: its output folder name, or its file name without extension),
``index`` k. ``transform`` (a callable on that dict) is applied to each item.

Processes: the dataset pickles as its description; each process opens each slide and
store once, on first use (a forked child reopens them: handles are never shared), so
``DataLoader(num_workers=N)`` works. Order: items come in entry order; ``shuffled(seed)``
gives the same items in an order fixed by ``seed`` (the same for the same seed, in any
process), and ``permutation(seed)`` that order as indices, e.g. for a sampler.
"""
from __future__ import annotations

from abc import ABC, abstractmethod

import csv
import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .sinks.layout import MANIFEST, ZARR_STORE, slide_stem

if TYPE_CHECKING:
    from .annotations import Annotations
    from .backends.base import SlideBackend

Item = dict[str, Any]
#: the array of a Zarr result that holds the tiles' masks, bit c = class c
MASKS_ARRAY = "masks"
#: tiles.csv columns of label fractions are named this plus the class
LABEL_PREFIX = "label:"
MASK_FILE_COLUMN = "mask_file"


class TileDataset:
    """A map-style dataset of tiles (see the module notes)."""

    def __init__(self, source: str | os.PathLike[str] | Sequence[tuple[str, Any]],
                 annotations: Annotations | Sequence[Annotations | None] | Mapping[str, Annotations] | None = None,
                 *, transform: Callable[[Item], Any] | None = None) -> None:
        self.transform = transform
        self._order: np.ndarray | None = None
        self._handles: dict[str, Any] = {}  # slides and stores this process opened, by path
        self._pid: int | None = None
        if isinstance(source, (str, os.PathLike)):
            if annotations is not None:
                raise ValueError("annotations apply to plans read on the fly; a tiling output carries its own")
            self._entries: list[_Entry] = [_FolderEntry(folder) for folder in _result_folders(os.fspath(source))]
        else:
            entries = list(source)
            self._entries = [_PlanEntry(str(slide), plan, _annotations_for(annotations, k, str(slide)))
                             for k, (slide, plan) in enumerate(_checked_pairs(entries))]
        self._offsets = np.cumsum([0] + [len(e) for e in self._entries])

    def __len__(self) -> int:
        return int(self._offsets[-1]) if self._order is None else len(self._order)

    def __getitem__(self, index: int) -> Any:
        n = len(self)
        if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"dataset indices must be integers, got {type(index).__name__}")
        k = int(index) + n if index < 0 else int(index)
        if not 0 <= k < n:
            raise IndexError(f"index {index} out of range for a dataset of {n} tiles")
        flat = k if self._order is None else int(self._order[k])
        entry = int(np.searchsorted(self._offsets, flat, side="right")) - 1
        item = self._entries[entry].item(flat - int(self._offsets[entry]), self._handle)
        item["index"] = k
        return item if self.transform is None else self.transform(item)

    def _handle(self, key: str, make: Callable[[], Any]) -> Any:
        """The slide or store ``key`` opened by this process (once; a forked child reopens)."""
        if self._pid != os.getpid():
            self._handles, self._pid = {}, os.getpid()
        if key not in self._handles:
            self._handles[key] = make()
        return self._handles[key]

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_handles"], state["_pid"] = {}, None  # each process opens its own
        return state

    def permutation(self, seed: int) -> np.ndarray:
        """The indices 0..len-1 in the order fixed by ``seed`` (numpy's PCG64)."""
        return np.random.default_rng(seed).permutation(len(self))

    def shuffled(self, seed: int) -> TileDataset:
        """The same items in the order fixed by ``seed``."""
        view = object.__new__(TileDataset)
        view.__dict__.update(self.__getstate__())
        base = np.arange(len(self)) if self._order is None else self._order
        view._order = base[self.permutation(seed)]
        return view

    @property
    def slides(self) -> list[str]:
        """The slide id of each entry."""
        return [e.slide_id for e in self._entries]

    def close(self) -> None:
        """Close the slides this process opened."""
        if self._pid == os.getpid():
            for handle in self._handles.values():
                close = getattr(handle, "close", None)
                if close is not None:
                    close()
        self._handles, self._pid = {}, None

    def __repr__(self) -> str:
        return f"TileDataset({len(self)} tiles of {len(self._entries)} slides)"


def _checked_pairs(entries: list[Any]) -> list[tuple[str, Any]]:
    for k, pair in enumerate(entries):
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and isinstance(pair[0], (str, os.PathLike))):
            raise TypeError(f"entry {k}: expected a (slide path or URL, plan) pair, got {pair!r}")
    return [(os.fspath(p[0]) if isinstance(p[0], os.PathLike) else p[0], p[1]) for p in entries]


def _annotations_for(annotations: object, k: int, slide: str) -> Annotations | None:
    from .annotations import Annotations

    if annotations is None or isinstance(annotations, Annotations):
        return annotations
    if isinstance(annotations, Mapping):
        found = annotations.get(slide)
        return found if isinstance(found, Annotations) else None
    if isinstance(annotations, Sequence):
        found = annotations[k] if k < len(annotations) else None
        return found if isinstance(found, Annotations) else None
    raise TypeError(f"annotations must be Annotations, a list of them or a dict by slide, got "
                    f"{type(annotations).__name__}")


class _Entry(ABC):
    """One slide's tiles."""

    slide_id: str

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def item(self, k: int, handle: Callable[[str, Callable[[], Any]], Any]) -> Item:
        """Item ``k`` of this entry; ``handle(key, make)`` gives this process's opened slide or store."""


class _PlanEntry(_Entry):
    def __init__(self, slide: str, plan: Any, annotations: Annotations | None) -> None:
        from .plan import Plan

        if not isinstance(plan, (Plan, Sequence)):
            raise TypeError(f"{slide}: a plan must be a Plan or a list of TileSpecs, got {type(plan).__name__}")
        self.slide, self.plan, self.annotations = slide, plan, annotations
        self.slide_id = slide_stem(slide.rstrip("/").split("?")[0])

    def __len__(self) -> int:
        return len(self.plan)

    def item(self, k: int, handle: Callable[[str, Callable[[], Any]], Any]) -> Item:
        from .annotations import TileFrames
        from .opener import open_slide
        from .plan import Plan, TileSpec

        slide: SlideBackend = handle(self.slide, lambda: open_slide(self.slide))
        spec = self.plan[k]
        if not isinstance(spec, TileSpec):
            spec = TileSpec(*spec)
        tile = next(iter(slide.read_plan([spec], workers=1)))
        labels: dict[str, float] = {}
        masks: dict[str, np.ndarray] = {}
        plan_labels = self.plan.labels if isinstance(self.plan, Plan) else None
        annotations = plan_labels.annotations if plan_labels is not None else self.annotations
        if annotations is not None:
            frames = TileFrames.of_specs([spec], slide.level_scale(spec.level))
            fractions = plan_labels.fractions[k:k + 1] if plan_labels is not None else \
                annotations.fractions(frames.boxes())
            masks = annotations.tile_masks(frames, fractions)[0]
            labels = dict(zip(annotations.classes, fractions[0].tolist()))
        return {"image": tile.image, "labels": labels, "masks": masks,
                "coords": np.array(spec.coords, dtype=np.int64), "slide": self.slide_id}


def _result_folders(path: str) -> list[str]:
    """The complete slide folders of a ``wsikit tile`` output: ``path`` itself, or its children."""
    if not os.path.isdir(path):
        raise FileNotFoundError(f"{path}: no such folder")
    if os.path.isfile(os.path.join(path, MANIFEST)):
        return [path]
    folders = sorted(os.path.join(path, name) for name in os.listdir(path)
                     if os.path.isfile(os.path.join(path, name, MANIFEST)))
    if not folders:
        raise ValueError(f"{path}: neither a slide's result folder nor a folder of them (no {MANIFEST} found)")
    return folders


class _FolderEntry(_Entry):
    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.slide_id = os.path.basename(os.path.normpath(folder))
        with open(os.path.join(folder, MANIFEST), newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            header = next(reader)
            rows = list(reader)
        self.classes = [name[len(LABEL_PREFIX):] for name in header if name.startswith(LABEL_PREFIX)]
        column = {name: k for k, name in enumerate(header)}
        self.coords = np.array([(int(r[column["i"]]), int(r[column["j"]])) for r in rows], dtype=np.int64)
        self.fractions = np.array([[float(r[column[LABEL_PREFIX + c]] or 0) for c in self.classes] for r in rows],
                                  dtype=np.float64).reshape(len(rows), len(self.classes))
        self.files = [r[column["file"]] for r in rows] if "file" in column else None
        self.mask_files = [r[column[MASK_FILE_COLUMN]] for r in rows] if MASK_FILE_COLUMN in column else None

    def __len__(self) -> int:
        return len(self.coords)

    def item(self, k: int, handle: Callable[[str, Callable[[], Any]], Any]) -> Item:
        packed: np.ndarray | None = None
        if self.files is None:
            store = os.path.join(self.folder, ZARR_STORE)
            group = handle(store, lambda: _open_group(store))
            image = np.asarray(group["tiles"][k])
            if self.classes and MASKS_ARRAY in group:
                packed = np.asarray(group[MASKS_ARRAY][k])
        else:
            image = _read_image(os.path.join(self.folder, self.files[k]))
            if self.mask_files is not None and self.mask_files[k]:
                packed = _read_image(os.path.join(self.folder, self.mask_files[k]))[:, :, 0]
        masks = {} if packed is None else unpack_masks(packed, self.classes)
        return {"image": image, "labels": dict(zip(self.classes, self.fractions[k].tolist())), "masks": masks,
                "coords": self.coords[k].copy(), "slide": self.slide_id}


def _open_group(path: str) -> Any:
    import zarr

    return zarr.open_group(path, mode="r")


def _read_image(path: str) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        array = np.array(im)  # a writable copy (Pillow's buffer is read-only; torch warns on those)
    return array[:, :, None] if array.ndim == 2 else array


def unpack_masks(packed: np.ndarray, classes: Sequence[str]) -> dict[str, np.ndarray]:
    """{class: bool mask} of a bit-packed mask (bit c of each value is class c)."""
    return {name: ((packed >> c) & 1).astype(bool) for c, name in enumerate(classes)}


def pack_masks(masks: Mapping[str, np.ndarray], classes: Sequence[str]) -> np.ndarray:
    """The bit-packed mask of ``masks`` (bit c = ``classes[c]``), in the smallest unsigned
    integer type that holds every class (uint8 up to 8 classes, ... uint64 up to 64)."""
    dtype = mask_dtype(len(classes))
    shape = next(iter(masks.values())).shape if masks else (0, 0)
    out = np.zeros(shape, dtype=dtype)
    for c, name in enumerate(classes):
        if name in masks:
            out |= masks[name].astype(dtype) << dtype.type(c)
    return out


def mask_dtype(classes: int) -> np.dtype:
    """The unsigned type of a packed mask of ``classes`` classes (at most 64)."""
    for dtype in (np.uint8, np.uint16, np.uint32, np.uint64):
        if classes <= np.dtype(dtype).itemsize * 8:
            return np.dtype(dtype)
    raise ValueError(f"masks of at most 64 classes can be packed, got {classes}")
