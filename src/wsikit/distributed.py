"""Running a tile job over many slides: in this process, or on a Dask cluster.

The work is split into one part per slide: a task computes the slide's tile plan (plain
data, see :mod:`wsikit.plan`) and a second task, fed that plan, opens the slide itself,
reads the tiles and writes them (:func:`wsikit.sinks.write_part`). Dask retries a task
that fails (``retries`` times) before the failure is reported; the other slides go on.

- ``scheduler="tcp://host:port"``: a running Dask cluster (``distributed.Client(address)``);
  the result folder must be reachable at the same path from every worker.
- ``workers=N`` without a scheduler: a local cluster of N worker processes, one thread each.
- neither: this process, one slide after the other, each read with threads.

Every path writes the same bytes: the plan and the encoding depend only on the slide and
the options, never on who ran them.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from .sinks import SlideJob, SlideResult, plan_part, write_part

#: how often Dask retries a failing part before reporting it
DEFAULT_RETRIES = 2


def run_jobs(jobs: list[SlideJob], *, workers: int | None = None, scheduler: str | None = None,
             retries: int = DEFAULT_RETRIES, progress: bool | None = None,
             on_result: Callable[[SlideResult], None] | None = None) -> list[SlideResult]:
    """Tile every job; one SlideResult per job, in the order of ``jobs``.

    ``progress``: True shows progress bars on stderr, False none, None only on a terminal.
    ``on_result`` is called as each slide finishes.
    """
    if scheduler is not None or workers is not None:
        return _run_dask(jobs, workers=workers, scheduler=scheduler, retries=retries, progress=progress,
                         on_result=on_result)
    return _run_here(jobs, progress=progress, on_result=on_result)


def _failure(job: SlideJob, exc: BaseException) -> SlideResult:
    """The failed result of ``job``, the exception's type and message as the reason."""
    text = str(exc)
    reason = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return SlideResult(job.slide, job.folder, "failed", reason=reason)


def _bar(total: int | None, desc: str, progress: bool | None, unit: str) -> Any:
    """A tqdm progress bar on stderr (shown on a terminal only when ``progress`` is None)."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=None if progress is None else not progress,
                leave=False, dynamic_ncols=True)


def _run_here(jobs: list[SlideJob], *, progress: bool | None,
              on_result: Callable[[SlideResult], None] | None) -> list[SlideResult]:
    results = []
    for n, job in enumerate(jobs, 1):
        try:
            part = plan_part(job)
            with _bar(len(part.plan), f"[{n}/{len(jobs)}] {os.path.basename(job.slide)}", progress, "tile") as bar:
                def update(done: int, bar: Any = bar) -> None:
                    bar.update(done - bar.n)

                result = write_part(part, progress=update)
        except Exception as exc:  # one failing slide must not stop the others
            result = _failure(job, exc)
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results


def _run_dask(jobs: list[SlideJob], *, workers: int | None, scheduler: str | None, retries: int,
              progress: bool | None, on_result: Callable[[SlideResult], None] | None) -> list[SlideResult]:
    from distributed import Client, LocalCluster, as_completed

    from .checks import as_int

    retries = as_int(retries, "retries", minimum=0)
    cluster = None
    if scheduler is not None:
        client = Client(scheduler)
    else:
        workers = as_int(workers, "workers", minimum=1)
        # Loopback only; the scheduler's HTTP endpoint on a free port (it would take 8787,
        # or warn when another cluster has it).
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR)
        client = Client(cluster)
    try:
        futures: dict[Any, int] = {}  # a Dask future -> the index of its job
        for index, job in enumerate(jobs):
            planned = client.submit(plan_part, job, retries=retries, pure=False)
            written = client.submit(write_part, planned, retries=retries, pure=False)
            futures[written] = index
        results: dict[int, SlideResult] = {}
        with _bar(len(jobs), "slides", progress, "slide") as bar:
            for future in as_completed(futures):
                index = futures[future]
                try:
                    result = future.result()
                except Exception as exc:
                    result = _failure(jobs[index], exc)
                results[index] = result
                bar.update(1)
                if on_result is not None:
                    on_result(result)
        return [results[index] for index in range(len(jobs))]
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
