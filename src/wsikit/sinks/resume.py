"""Deciding, before any work, what a slide's result folder needs: nothing (complete),
everything or the rest (tile it), or to be left alone (it holds something else).

A folder is reused only when its job record names the same slide and the same options:
complete, it is skipped; unfinished, the tiling finishes it. A folder holding results of
other options is left alone unless ``overwrite`` is given, which removes that folder whole;
a folder that is not a wsikit result (no job record of wsikit's) is never touched.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Sequence

from ..remote.urls import display_url
from .jobs import SlideJob, SlideResult, TileOptions
from .layout import assign_folders, check_inside, is_complete, read_job


def prepare(job: SlideJob, out: str, overwrite: bool = False) -> SlideResult | None:
    """Check ``job``'s folder before any work: a SlideResult when the slide needs no work
    (skipped) or cannot be done (failed), None when it should be tiled. With ``overwrite``
    earlier results of this slide are removed first."""
    try:
        check_inside(job.folder, out)
    except ValueError as exc:
        return SlideResult(job.slide, job.folder, "failed", reason=str(exc))
    if not os.path.lexists(job.folder):
        return None
    existing = read_job(job.folder)
    if existing is None:
        if os.path.isdir(job.folder) and not os.path.islink(job.folder) and not os.listdir(job.folder):
            return None
        return SlideResult(job.slide, job.folder, "failed",
                           reason=f"{job.folder} exists and is not a wsikit result; not touching it")
    same = existing.get("slide") == display_url(job.slide) and existing.get("options") == job.options.as_json()
    if overwrite:
        shutil.rmtree(job.folder)
        return None
    if is_complete(job.folder):
        if same:
            return SlideResult(job.slide, job.folder, "skipped", tiles=existing.get("tiles", 0),
                               reason="already complete (pass --overwrite to redo it)")
        return SlideResult(job.slide, job.folder, "failed",
                           reason=f"{job.folder} holds results made with other options; "
                                  "pass --overwrite to replace them")
    if not same:
        return SlideResult(job.slide, job.folder, "failed",
                           reason=f"{job.folder} holds an unfinished run with other options; rerun with those options "
                                  "to finish it, or pass --overwrite")
    return None


def prepare_jobs(slides: Sequence[str], out: str, options: TileOptions,
                 overwrite: bool = False) -> tuple[list[SlideJob], list[SlideResult]]:
    """The jobs of a run over ``slides`` (absolute paths) into ``out`` (absolute): each slide
    gets its folder (:func:`~wsikit.sinks.layout.assign_folders`) and is checked with
    :func:`prepare`. Returns the jobs to run and, in the order of ``slides``, the results of
    the slides that need no run (skipped or failed)."""
    jobs: list[SlideJob] = []
    settled: list[SlideResult] = []
    for slide, folder in zip(slides, assign_folders(slides, out)):
        job = SlideJob(slide, folder, options)
        early = prepare(job, out, overwrite)
        if early is None:
            jobs.append(job)
        else:
            settled.append(early)
    return jobs, settled
