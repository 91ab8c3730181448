"""TileDataset: tiles of plans read on the fly, and of finished 'wsikit tile' outputs; it
pickles into worker processes (each opening its slides once) and orders items by a seed.
torch is not needed: a DataLoader test runs only where torch is importable."""
from __future__ import annotations

import multiprocessing
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import shapely

import wsikit
from wsikit import TileDataset
from wsikit.annotations import Annotations


@pytest.fixture(scope="module")
def annotations() -> Annotations:
    return Annotations.from_polygons({"tumour": [shapely.Point(700, 500).buffer(300)],
                                      "stroma": [shapely.box(0, 0, 600, 400)]})


@pytest.fixture(scope="module")
def entries(sample_svs: str, annotations: Annotations) -> list[tuple[str, wsikit.Plan]]:
    with wsikit.open_slide(sample_svs) as slide:
        return [(sample_svs, slide.tile_plan(128, annotations=annotations)),
                (sample_svs, slide.tile_plan(64, level=1))]


def same_item(a: dict, b: dict) -> bool:
    return (np.array_equal(a["image"], b["image"]) and a["labels"] == b["labels"] and a["slide"] == b["slide"]
            and np.array_equal(a["coords"], b["coords"]) and a["masks"].keys() == b["masks"].keys()
            and all(np.array_equal(a["masks"][k], b["masks"][k]) for k in a["masks"]))


def test_items_are_the_tiles_of_the_plans(sample_svs: str, entries, annotations: Annotations) -> None:
    dataset = TileDataset(entries)
    assert len(dataset) == len(entries[0][1]) + len(entries[1][1])
    with wsikit.open_slide(sample_svs) as slide:
        tiles = list(slide.read_plan(entries[0][1])) + list(slide.read_plan(entries[1][1]))
    for k in (0, 7, len(entries[0][1]) - 1, len(entries[0][1]), len(dataset) - 1):
        item, tile = dataset[k], tiles[k]
        assert item["index"] == k and item["slide"] == "sample"
        assert np.array_equal(item["image"], tile.image) and tuple(item["coords"]) == tile.coords
        assert item["labels"] == tile.labels
        assert item["masks"].keys() == tile.masks.keys()
        assert all(np.array_equal(item["masks"][c], tile.masks[c]) for c in tile.masks)
    assert dataset[-1]["index"] == len(dataset) - 1
    with pytest.raises(IndexError):
        dataset[len(dataset)]
    with pytest.raises(TypeError):
        dataset["0"]  # type: ignore[index]


def test_annotations_given_to_the_dataset(sample_svs: str, entries, annotations: Annotations) -> None:
    """A plan without labels gets them from the dataset's annotations: the same as a labelled plan's."""
    unlabelled = [(sample_svs, list(entries[0][1]))]  # TileSpecs only
    dataset = TileDataset(unlabelled, annotations=annotations)
    labelled = TileDataset(entries[:1])
    for k in range(0, len(dataset), 5):
        assert same_item(dataset[k], labelled[k])
    assert any(dataset[k]["labels"]["tumour"] > 0.5 for k in range(len(dataset)))
    by_slide = TileDataset(unlabelled, annotations={sample_svs: annotations})
    assert same_item(by_slide[3], dataset[3])


def _read_items(dataset: TileDataset, indices: list[int]) -> tuple[int, list[dict], int]:
    items = [dataset[k] for k in indices]
    opened = len(dataset._handles)
    return os.getpid(), items, opened


def test_pickles_into_worker_processes(entries) -> None:
    dataset = TileDataset(entries)
    expected = [dataset[k] for k in range(0, len(dataset), 9)]  # opens the slide in this process
    copy = pickle.loads(pickle.dumps(dataset))
    assert dataset._handles and not copy._handles  # handles are not pickled
    indices = list(range(0, len(dataset), 9))
    for method in ("spawn", "fork"):
        with multiprocessing.get_context(method).Pool(2) as pool:
            results = pool.starmap(_read_items, [(dataset, indices[0::2]), (dataset, indices[1::2])])
        for pid, items, opened in results:
            assert pid != os.getpid() and opened == 1  # one slide, opened once in that process
        got = [None] * len(indices)
        got[0::2], got[1::2] = results[0][1], results[1][1]
        assert all(same_item(a, b) for a, b in zip(got, expected))


def test_same_order_for_a_seed(entries) -> None:
    dataset = TileDataset(entries)
    a, b, c = dataset.shuffled(3), dataset.shuffled(3), dataset.shuffled(4)
    assert len(a) == len(dataset)
    order = [tuple(a[k]["coords"]) + (a[k]["image"].shape[0],) for k in range(len(a))]
    assert order == [tuple(b[k]["coords"]) + (b[k]["image"].shape[0],) for k in range(len(b))]
    assert order != [tuple(c[k]["coords"]) + (c[k]["image"].shape[0],) for k in range(len(c))]
    assert sorted(dataset.permutation(3).tolist()) == list(range(len(dataset)))
    assert same_item({**a[5], "index": 0}, {**dataset[int(dataset.permutation(3)[5])], "index": 0})
    assert np.array_equal(pickle.loads(pickle.dumps(a)).permutation(3), a.permutation(3))


def test_transform(entries) -> None:
    dataset = TileDataset(entries, transform=lambda item: item["image"].mean())
    assert isinstance(dataset[0], float)


def test_bad_sources(tmp_path: Path, sample_svs: str) -> None:
    with pytest.raises(TypeError, match="entry 0"):
        TileDataset([sample_svs])  # type: ignore[list-item]
    with pytest.raises(FileNotFoundError):
        TileDataset(tmp_path / "missing")
    with pytest.raises(ValueError, match="no tiles.csv"):
        TileDataset(tmp_path)


def test_with_torch_dataloader(entries) -> None:
    torch = pytest.importorskip("torch", reason="torch is not installed (pip install torch)")
    from torch.utils.data import DataLoader

    dataset = TileDataset(entries[:1])
    loader = DataLoader(dataset, batch_size=4, num_workers=2, shuffle=False)
    seen = 0
    for batch in loader:
        assert batch["image"].dtype == torch.uint8 and batch["image"].shape[1:] == (128, 128, 3)
        assert batch["masks"]["tumour"].dtype == torch.bool
        assert batch["labels"]["tumour"].shape == batch["coords"].shape[:1]
        seen += len(batch["image"])
    assert seen == len(dataset)
