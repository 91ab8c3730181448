"""The text of tiles.csv."""
from __future__ import annotations

import csv
import io

import wsikit
from wsikit.sinks.manifest import COLUMNS, manifest_bytes


def test_manifest_text(sample_svs):
    with wsikit.open_slide(sample_svs) as slide:
        plan = slide.tile_plan(256, level=1)
    text = manifest_bytes(plan, "png").decode()
    assert text == "i,j,level,i0,j0,height,width,mpp,tissue,file\n0,0,1,0,0,256,256,1,,images/0_0.png\n"
    rows = list(csv.reader(io.StringIO(manifest_bytes(plan).decode())))
    assert rows == [list(COLUMNS), ["0", "0", "1", "0", "0", "256", "256", "1", ""]]
