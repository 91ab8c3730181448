"""URLs on the command line (``wsikit info / thumbnail / tile URL --storage-option ...``) and
on a two-worker Dask cluster that has only the URLs: the same bytes as the local run."""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.helpers import tree_bytes
from tests.remote.conftest import local_slide
from wsikit.cli import main
from wsikit.distributed import run_jobs
from wsikit.sinks import SlideJob, TileOptions, assign_folders

OPTIONS = TileOptions(shape=(128, 128), level=1)


def s3_arguments(s3: Any) -> list[str]:
    options = s3.storage_options
    return ["--storage-option", f"key={options['key']}", "--storage-option", f"secret={options['secret']}",
            "--storage-option", f"endpoint_url={options['endpoint_url']}",
            "--storage-option", f"client_kwargs.region_name={options['client_kwargs']['region_name']}"]


def tiles_only(tree: dict[str, bytes]) -> dict[str, bytes]:
    """A result folder's files but the records naming the slide (job.json, the manifest, the
    Zarr group's attributes)."""
    return {k: v for k, v in tree.items()
            if os.path.basename(k) not in ("job.json", "tiles.csv") and not k.endswith("tiles.zarr/zarr.json")}


def test_info_of_urls(nginx: Any, s3: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", nginx.url + "sample.svs", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["path"] == nginx.url + "sample.svs" and info["backend"] == "tiff"
    assert [level["shape"] for level in info["levels"]] == [[1024, 1536], [256, 384], [64, 96]]
    assert main(["info", f"s3://{s3.bucket}/series/", *s3_arguments(s3)]) == 0
    text = capsys.readouterr().out
    assert "dicom" in text and "1024 x 1536" in text and s3.storage_options["secret"] not in text


def test_cli_errors_name_the_url_not_the_secret(s3: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", f"s3://{s3.bucket}/missing.svs", *s3_arguments(s3)]) == 1
    err = capsys.readouterr().err
    assert "missing.svs" in err and s3.storage_options["secret"] not in err
    with pytest.raises(SystemExit) as exited:
        main(["info", "s3://x/y.svs", "--storage-option", "not-a-pair"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "KEY=VALUE" in err and "not-a-pair" not in err


def test_thumbnail_of_a_url(nginx: Any, remote_folder: Path, tmp_path: Path) -> None:
    from PIL import Image

    import wsikit

    out = tmp_path / "thumb.png"
    assert main(["thumbnail", nginx.url + "sample.svs", str(out), "--size", "200"]) == 0
    with wsikit.open_slide(local_slide(remote_folder, "sample.svs")) as local:
        np.testing.assert_array_equal(np.asarray(Image.open(out)), local.get_thumbnail(200))


def test_tile_urls_names_folders_by_the_last_part(nginx: Any, s3: Any, remote_folder: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    local_out, remote_out = tmp_path / "local", tmp_path / "remote"
    sample = local_slide(remote_folder, "sample.svs")
    assert main(["tile", sample, str(remote_folder / "series"), "--out", str(local_out), "--level", "1",
                 "--shape", "128", "--quiet"]) == 0
    assert main(["tile", nginx.url + "sample.svs", f"s3://{s3.bucket}/series/", "--out", str(remote_out),
                 "--level", "1", "--shape", "128", "--quiet", *s3_arguments(s3)]) == 0
    assert sorted(os.listdir(remote_out)) == ["sample", "series"]
    assert tiles_only(tree_bytes(remote_out)) == tiles_only(tree_bytes(local_out))
    record = json.loads((remote_out / "sample" / "job.json").read_text())
    assert record["slide"] == nginx.url + "sample.svs"
    assert s3.storage_options["secret"] not in capsys.readouterr().out


def test_find_slides_in_a_bucket_prefix(s3: Any) -> None:
    from wsikit.inventory import find_slides
    from wsikit.remote import default_storage_options

    with default_storage_options(s3.storage_options):
        slides, missing = find_slides([f"s3://{s3.bucket}/", f"s3://{s3.bucket}/nothing/"])
    assert f"s3://{s3.bucket}/sample.svs" in slides and f"s3://{s3.bucket}/series/" in slides
    assert f"s3://{s3.bucket}/planar.tif" in slides and not any("/series/" in s and s.endswith(".dcm") for s in slides)
    assert missing == [(f"s3://{s3.bucket}/nothing/", "no such file or folder")]


def test_two_dask_workers_tile_urls_into_the_same_bytes(nginx: Any, s3: Any, remote_folder: Path,
                                                        tmp_path: Path) -> None:
    from distributed import Client, LocalCluster

    local = [local_slide(remote_folder, "sample.svs"), local_slide(remote_folder, "planar.tif")]
    urls = [nginx.url + "sample.svs", f"s3://{s3.bucket}/planar.tif"]
    options = TileOptions(shape=(128, 128), level=0)

    def jobs(slides: list[str], out: Path) -> list[SlideJob]:
        return [SlideJob(s, f, options) for s, f in zip(slides, assign_folders(slides, out))]

    here = run_jobs(jobs(local, tmp_path / "local"), progress=False)
    assert [r.status for r in here] == ["written", "written"]
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR) as cluster:
        with Client(cluster) as client:
            assert len(set(client.run(os.getpid).values()) - {os.getpid()}) == 2
        results = run_jobs(jobs(urls, tmp_path / "dask"), scheduler=cluster.scheduler_address, retries=0,
                           progress=False, storage_options=s3.storage_options)
    assert [r.status for r in results] == ["written", "written"], [r.reason for r in results]
    assert [r.tiles for r in results] == [r.tiles for r in here]
    produced, reference = tree_bytes(tmp_path / "dask"), tree_bytes(tmp_path / "local")
    assert sorted(produced) == sorted(reference)
    assert tiles_only(produced) == tiles_only(reference)
