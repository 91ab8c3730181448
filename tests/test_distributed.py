"""Dask: a real LocalCluster of two worker processes writes exactly what one process writes."""
from __future__ import annotations

import logging
import os
import shutil

import pytest

from tests.helpers import tree_bytes
from wsikit.distributed import run_jobs
from wsikit.samples.svs import write_sample_svs
from wsikit.sinks import SlideJob, TileOptions, assign_folders

pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def slides(tmp_path_factory, sample_svs):
    folder = tmp_path_factory.mktemp("dask-slides")
    one = folder / "one"
    one.mkdir()
    shutil.copy(sample_svs, one / "sample.svs")
    other = write_sample_svs(folder / "other.svs", shape=(512, 768), factors=(4,), seed=7)
    broken = folder / "broken.svs"
    broken.write_bytes(b"II*\x00" + b"\x00" * 64)
    # Two slides share the name "sample": the second gets its own folder.
    two = folder / "two"
    two.mkdir()
    shutil.copy(sample_svs, two / "sample.svs")
    return [str(one / "sample.svs"), str(other), str(broken), str(two / "sample.svs")]


def jobs_for(slides, out, options):
    return [SlideJob(s, f, options) for s, f in zip(slides, assign_folders(slides, out))]


# 1 mpp: level 1 of the 0.25 mpp samples, read without resampling to keep the test quick.
OPTIONS = TileOptions(shape=(32, 32), mpp=1.0, min_tissue=0.3)


@pytest.fixture(scope="module")
def local_run(slides, tmp_path_factory):
    out = tmp_path_factory.mktemp("local")
    results = run_jobs(jobs_for(slides, out, OPTIONS), progress=False)
    return out, results


def check_results(results, slides):
    assert [r.slide for r in results] == slides
    assert [r.status for r in results] == ["written", "written", "failed", "written"]
    assert "broken.svs" in results[2].reason
    assert results[0].tiles == results[3].tiles > 0 and results[1].tiles > 0


def test_local_run(local_run, slides):
    out, results = local_run
    check_results(results, slides)
    assert len(os.listdir(out)) == 3


def test_local_cluster_of_two_processes_writes_the_same_bytes(local_run, slides, tmp_path):
    from distributed import Client, LocalCluster

    out, local_results = local_run
    reference = tree_bytes(out)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR) as cluster:
        with Client(cluster) as client:
            pids = set(client.run(os.getpid).values())
            assert len(pids) == 2 and os.getpid() not in pids
        # The scheduler address path, as `wsikit tile --scheduler tcp://...` uses it.
        dask_out = tmp_path / "dask"
        results = run_jobs(jobs_for(slides, dask_out, OPTIONS), scheduler=cluster.scheduler_address,
                           retries=1, progress=False)
    check_results(results, slides)
    assert [r.tiles for r in results] == [r.tiles for r in local_results]
    assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
    produced = tree_bytes(dask_out)
    assert sorted(produced) == sorted(reference)
    assert produced == reference


def test_workers_option_starts_a_local_cluster(slides, local_run, tmp_path):
    out, _ = local_run
    reference = {k: v for k, v in tree_bytes(out).items() if k.startswith("other" + os.sep)}
    results = run_jobs(jobs_for(slides[1:3], tmp_path, OPTIONS), workers=2, retries=0, progress=False)
    assert [r.status for r in results] == ["written", "failed"]
    assert {k: v for k, v in tree_bytes(tmp_path).items()} == reference


def test_arguments_are_checked(slides, tmp_path):
    with pytest.raises(ValueError, match="workers"):
        run_jobs(jobs_for(slides[:1], tmp_path, OPTIONS), workers=0)


def test_one_large_slide_is_split_across_workers_with_the_same_bytes(sample_svs, tmp_path):
    # 1,536 tiles: six shards of 256, written by range tasks on both workers.
    from distributed import Client, LocalCluster, get_task_stream

    options = TileOptions(shape=(32, 32))
    slide = [os.path.abspath(sample_svs)]
    here = run_jobs(jobs_for(slide, tmp_path / "here", options), progress=False)
    assert here[0].status == "written" and here[0].tiles == 1536
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR) as cluster:
        with Client(cluster) as client, get_task_stream(client) as stream:
            there = run_jobs(jobs_for(slide, tmp_path / "there", options), scheduler=cluster.scheduler_address,
                             retries=0, progress=False)
    assert there[0].status == "written" and there[0].written == 1536
    assert tree_bytes(tmp_path / "there") == tree_bytes(tmp_path / "here")
    # plan + prepare, one task per range (2 workers x 3 ranges, one shard each), the manifest
    assert len(stream.data) == 1 + 6 + 1
    assert len({task["worker"] for task in stream.data}) == 2
