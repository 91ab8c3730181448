"""What a result folder needs before a run: an unfinished run of other options is left alone."""
from __future__ import annotations

import os

from wsikit.sinks import SlideJob, TileOptions, plan_part, prepare, write_part


def test_unfinished_result_with_other_options_is_not_touched(sample_svs, tmp_path):
    job = SlideJob(os.path.abspath(sample_svs), str(tmp_path / "sample"), TileOptions(shape=(64, 64), level=1))
    part = plan_part(job)
    write_part(part)
    os.unlink(os.path.join(job.folder, "tiles.csv"))  # as if the run had stopped before the end
    other = SlideJob(job.slide, job.folder, TileOptions(shape=(32, 32), level=1))
    early = prepare(other, str(tmp_path))
    assert early.status == "failed" and "unfinished" in early.reason
    assert prepare(job, str(tmp_path)) is None  # the same options finish it
