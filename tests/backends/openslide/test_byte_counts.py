"""Native tiles and associated images whose TIFF byte counts lie are found before OpenSlide,
which allocates a byte count before reading it (and aborts the process when it cannot)."""
from __future__ import annotations

from pathlib import Path

import pytest

from wsikit.backends.openslide.byte_counts import UnreadableLevel, UnreadableParts, unreadable_tiff_parts

REGRESSIONS = Path(__file__).resolve().parents[2] / "regressions"


def test_tile_problem_names_the_first_bad_tile_under_a_box():
    parts = UnreadableParts(levels={1: UnreadableLevel((64, 64), {(1, 2): "lies"})})
    assert parts.tile_problem(1, 64, 128, 64, 64) == ((1, 2), "lies")
    assert parts.tile_problem(1, 100, 100, 40, 40) == ((1, 2), "lies")  # touches tile (1, 2) from (1, 1)
    assert parts.tile_problem(1, 0, 0, 64, 128) is None  # tiles (0, 0) and (0, 1) only
    assert parts.tile_problem(0, 64, 128, 64, 64) is None  # another level


def test_byte_count_past_the_end_of_the_file_is_found():
    pytest.importorskip("openslide")
    import openslide

    path = str(REGRESSIONS / "tile-byte-count-2gib.svs")
    with openslide.OpenSlide(path) as slide:
        properties, levels = dict(slide.properties), slide.level_count
    parts = unreadable_tiff_parts(path, properties, levels)
    assert list(parts.levels) == [0] and parts.levels[0].tile_shape == (64, 64)
    assert list(parts.levels[0].tiles) == [(0, 0)]
    assert "2,147,483,648 bytes at offset 512 run past the end of the file" in parts.levels[0].tiles[(0, 0)]
    assert parts.associated == {}


def test_files_that_are_no_tiff_have_nothing_to_refuse(tmp_path):
    path = tmp_path / "notes.svs"
    path.write_text("no tiff at all")
    properties = {"openslide.level[0].height": "10", "openslide.level[0].width": "10",
                  "openslide.level[0].tile-height": "10", "openslide.level[0].tile-width": "10"}
    assert unreadable_tiff_parts(str(path), properties, 1) == UnreadableParts()
