"""Running a tile job over many slides: in this process, or on a Dask cluster.

On a cluster each slide is split: a task computes the slide's tile plan (plain data, see
:mod:`wsikit.plan`) and prepares its folder (:func:`wsikit.sinks.start_part`); the plan is
then cut into ranges at store units (Zarr shards; :func:`wsikit.sinks.split_ranges`),
each range a task that opens the slide itself, reads its tiles and writes them
(:func:`wsikit.sinks.write_range`), so one large slide keeps every worker busy and many
slides run side by side; a last task checks every tile is stored and writes the manifest
(:func:`wsikit.sinks.finish_part`). Dask retries a task that fails (``retries`` times)
before the failure is reported; the other slides go on.

- ``scheduler="tcp://host:port"``: a running Dask cluster (``distributed.Client(address)``);
  the result folder must be reachable at the same path from every worker.
- ``workers=N`` without a scheduler: a local cluster of N worker processes, one thread
  each; with as many processes as cores each task reads and writes on its own thread
  (processes do not share a GIL), else on every core.
- neither: this process, one slide after the other, each read with threads.

Every path writes the same bytes: the plan and the encoding depend only on the slide and
the options, never on who ran them.
"""
from __future__ import annotations

import ctypes
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from .reader.workers import default_workers
from .remote.settings import call_with_storage_options, current_defaults, default_storage_options
from .sinks import (
    PartStart,
    SlideJob,
    SlidePart,
    SlideResult,
    finish_part,
    is_complete,
    plan_part,
    split_ranges,
    start_part,
    write_part,
    write_range,
)

#: how often Dask retries a failing part before reporting it
DEFAULT_RETRIES = 2
#: ranges of a slide's plan per worker thread: a few each, so that a slow range does not
#: leave the others idle at the end, and each still long enough to pay its slide opening
RANGES_PER_THREAD = 3


def run_jobs(jobs: list[SlideJob], *, workers: int | None = None, scheduler: str | None = None,
             retries: int = DEFAULT_RETRIES, progress: bool | None = None,
             on_result: Callable[[SlideResult], None] | None = None,
             storage_options: dict[str, Any] | None = None) -> list[SlideResult]:
    """Tile every job; one SlideResult per job, in the order of ``jobs``.

    ``progress``: True shows progress bars on stderr, False none, None only on a terminal.
    ``on_result`` is called as each slide finishes. ``storage_options``: the options of
    slides given as URLs (default: those in force here, see wsikit.remote.settings); Dask
    tasks carry them to the workers, which open the URLs themselves.
    """
    with default_storage_options(storage_options):
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
    from distributed import Client, LocalCluster

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
        threads = sum(client.nthreads().values()) or 1
        # Each task then reads with one thread when the worker slots cover the cores (one
        # process per core, no GIL between them), else with all cores.
        read_workers = 1 if cluster is not None and threads >= default_workers() else None
        runner = _SlideTasks(client, retries, threads, read_workers)
        return runner.run(jobs, progress, on_result)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


class _SlideTasks:
    """Drives the tasks of every slide on a Dask cluster: plan and prepare (one task), then
    the plan's ranges (cut at store units, :data:`RANGES_PER_THREAD` per worker thread, so
    that one large slide keeps every worker busy), then the manifest once all ranges are
    done. Slides run side by side; a failing task fails its slide only."""

    def __init__(self, client: Any, retries: int, threads: int, read_workers: int | None) -> None:
        self.client = client
        self.retries = retries
        self.threads = threads
        self.read_workers = read_workers

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        # The task opens slide URLs with the storage options in force here (wsikit.remote).
        return self.client.submit(call_with_storage_options, current_defaults(), _in_worker, fn, *args,
                                  retries=self.retries, pure=False)

    def run(self, jobs: list[SlideJob], progress: bool | None,
            on_result: Callable[[SlideResult], None] | None) -> list[SlideResult]:
        from distributed import as_completed

        results: dict[int, SlideResult] = {}
        stage: dict[Any, tuple[str, int]] = {}  # a future -> (its step, the index of its job)
        state: dict[int, dict[str, Any]] = {}
        pending = as_completed()
        for index, job in enumerate(jobs):
            job = replace(job, read_workers=self.read_workers) if job.read_workers is None else job
            future = self.submit(_plan_and_start, job)
            stage[future] = ("start", index)
            pending.add(future)

        def settle(index: int, result: SlideResult) -> None:
            results[index] = result
            bar.update(1)
            for future, (_, owner) in list(stage.items()):
                if owner == index:  # the other tasks of a failed slide are of no use
                    future.cancel()
                    del stage[future]
            if on_result is not None:
                on_result(result)

        with _bar(len(jobs), "slides", progress, "slide") as bar:
            for future in pending:
                if future not in stage:
                    continue  # cancelled with its slide
                step, index = stage.pop(future)
                try:
                    value = future.result()
                except Exception as exc:
                    settle(index, _failure(jobs[index], exc))
                    continue
                if step == "start":
                    if isinstance(value, SlideResult):
                        settle(index, value)
                        continue
                    part, started = value
                    ranges = split_ranges(len(part.plan), started.unit, self.threads * RANGES_PER_THREAD)
                    state[index] = {"part": part, "started": started, "left": len(ranges), "written": 0}
                    if not ranges:
                        ranges = [(0, 0)]
                        state[index]["left"] = 1
                    for start, stop in ranges:
                        task = self.submit(write_range, part, start, stop)
                        stage[task] = ("range", index)
                        pending.add(task)
                elif step == "range":
                    slide = state[index]
                    slide["written"] += value
                    slide["left"] -= 1
                    if slide["left"] == 0:
                        task = self.submit(finish_part, slide["part"], slide["started"], slide["written"])
                        stage[task] = ("finish", index)
                        pending.add(task)
                else:
                    settle(index, value)
        return [results[index] for index in range(len(jobs))]


def _in_worker(fn: Callable[..., Any], *args: Any) -> Any:
    """Run a task's function on a Dask worker, the worker's heap first made fit for tiles."""
    _heap_for_tiles()
    return fn(*args)


_heap_tuned = False


def _heap_for_tiles() -> None:
    """Let glibc serve tile-sized buffers from the heap again in a Dask worker.

    Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_`` set, which also freezes
    glibc's mmap threshold at 128 KiB: every buffer of a tile (192 KiB for 256 x 256 RGB)
    is then a fresh mmap, zeroed page by page and unmapped when freed. Measured: tiling in
    such a process ran 1.7-1.9x slower. Buffers up to 4 MiB come from the heap again; the
    trim threshold Dask chose (memory handed back) is kept. Once per process, Linux only.
    """
    global _heap_tuned
    if _heap_tuned or "MALLOC_TRIM_THRESHOLD_" not in os.environ or not sys.platform.startswith("linux"):
        return
    _heap_tuned = True
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt(_M_MMAP_THRESHOLD, 4 * 1024 * 1024)
    except (OSError, AttributeError):  # not glibc: nothing to tune
        pass


_M_MMAP_THRESHOLD = -3  # mallopt parameter (malloc.h)


def _plan_and_start(job: SlideJob) -> SlideResult | tuple[SlidePart, PartStart]:
    """A worker's first task for a slide: the plan, and the folder prepared (or the result
    when the slide is already complete)."""
    part = plan_part(job)
    if is_complete(job.folder):
        return SlideResult(job.slide, job.folder, "skipped", tiles=len(part.plan), reason="already complete")
    return part, start_part(part)
