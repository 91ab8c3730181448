"""Annotations in plans and tile streams: min_label filtering (with min_tissue), labels kept
through take and pickling, skipped tiles, and argument checks."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import shapely

import wsikit
from wsikit.annotations import Annotations


@pytest.fixture(scope="module")
def annotations() -> Annotations:
    return Annotations.from_polygons({
        "tumour": [shapely.Point(700, 500).buffer(300)],
        "stroma": [shapely.box(0, 0, 600, 400), shapely.box(1200, 600, 1536, 1024)],
    })


def test_min_label_keeps_tiles_with_enough_of_each_class(sample_svs: str, annotations: Annotations) -> None:
    with wsikit.open_slide(sample_svs) as slide:
        full = slide.tile_plan(128, annotations=annotations)
        fractions = full.labels.fractions
        assert full.labels.classes == ("tumour", "stroma") and fractions.shape == (len(full), 2)
        plan = slide.tile_plan(128, annotations=annotations, min_label={"tumour": 0.5})
        expected = [spec for spec, f in zip(full, fractions) if f[0] >= 0.5]
        assert list(plan) == expected and 0 < len(plan) < len(full)
        both = slide.tile_plan(128, annotations=annotations, min_label={"tumour": 0.1, "stroma": 0.1})
        assert list(both) == [s for s, f in zip(full, fractions) if f[0] >= 0.1 and f[1] >= 0.1] and len(both)
        tiles = list(slide.read_plan(plan))
        assert [t.coords for t in tiles] == [s.coords for s in plan]
        assert all(t.labels["tumour"] >= 0.5 and t.masks["tumour"].any() for t in tiles)
        streamed = list(slide.generate_tiles(128, annotations=annotations, min_label={"tumour": 0.5}))
        assert [t.labels for t in streamed] == [t.labels for t in tiles]


def test_min_label_with_min_tissue(sample_svs: str, annotations: Annotations) -> None:
    with wsikit.open_slide(sample_svs) as slide:
        mask = wsikit.tissue_mask(slide)
        tissue = slide.tile_plan(128, min_tissue=0.3, tissue_mask=mask)
        labelled = slide.tile_plan(128, annotations=annotations)
        keep = {s.coords for s, f in zip(labelled, labelled.labels.fractions) if f[1] >= 0.2}
        both = slide.tile_plan(128, min_tissue=0.3, tissue_mask=mask, annotations=annotations,
                               min_label={"stroma": 0.2})
        assert [s.coords for s in both] == [s.coords for s in tissue if s.coords in keep]
        assert all(s.tissue is not None and s.tissue >= 0.3 for s in both)


def test_labels_survive_take_and_pickle(sample_svs: str, annotations: Annotations) -> None:
    with wsikit.open_slide(sample_svs) as slide:
        plan = slide.tile_plan(64, level=1, annotations=annotations)
        part = plan.take([5, 2, 9])
        assert part.labels.fractions.tolist() == plan.labels.fractions[[5, 2, 9]].tolist()
        copy = pickle.loads(pickle.dumps(part))
        assert copy == part and copy.labels.fractions.tolist() == part.labels.fractions.tolist()
        a = list(slide.read_plan(part))
        b = list(slide.read_plan(copy))
        for x, y in zip(a, b):
            assert x.labels == y.labels and all(np.array_equal(x.masks[k], y.masks[k]) for k in x.masks)


def test_skipped_tiles_do_not_shift_labels(sample_svs: str, annotations: Annotations, monkeypatch) -> None:
    """With errors="skip" a tile left out is stepped over: every tile keeps its own masks."""
    from wsikit.errors import CorruptSlideError

    with wsikit.open_slide(sample_svs) as slide:
        plan = slide.tile_plan(128, annotations=annotations)
        expected = {t.coords: t.labels for t in slide.read_plan(plan)}
        original = slide._extract

        def failing(level, location, size, normalize, **options):
            if tuple(location) in ((0, 128), (256, 640)):
                raise CorruptSlideError(slide.path, "broken tile")
            return original(level, location, size, normalize, **options)

        monkeypatch.setattr(slide, "_extract", failing)
        monkeypatch.setattr(slide, "_level_grid", lambda level: None)  # read through _extract
        with pytest.warns(wsikit.SkippedTileWarning):
            tiles = list(slide.read_plan(plan, errors="skip"))
        assert len(tiles) == len(plan) - 2
        for tile in tiles:
            assert tile.labels == expected[tile.coords]


def test_bad_arguments(sample_svs: str, annotations: Annotations) -> None:
    with wsikit.open_slide(sample_svs) as slide:
        with pytest.raises(ValueError, match="min_label needs annotations"):
            slide.tile_plan(128, min_label={"tumour": 0.5})
        with pytest.raises(ValueError, match="class 'necrosis'.*'tumour', 'stroma'"):
            slide.tile_plan(128, annotations=annotations, min_label={"necrosis": 0.5})
        with pytest.raises(ValueError, match=r"min_label\['tumour'\] must be a fraction"):
            slide.tile_plan(128, annotations=annotations, min_label={"tumour": 1.5})
        with pytest.raises(TypeError, match="annotations must be wsikit Annotations"):
            slide.tile_plan(128, annotations="tumour.geojson")


def test_tiles_without_annotations_are_unchanged(sample_svs: str) -> None:
    with wsikit.open_slide(sample_svs) as slide:
        plan = slide.tile_plan(256)
        assert plan.labels is None
        tile = next(iter(slide.read_plan(plan)))
        assert tile.masks == {} and tile.labels == {}
