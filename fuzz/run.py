"""Fuzz wsikit with mutated TIFF and DICOM files for a time budget: ``make fuzz``.

    python -m fuzz.run [--seconds 600] [--seed N] [--found tests/regressions/found]

Seeds are small synthetic slides written here (an Aperio-style pyramid, deflate tiles,
uint16 strips, a BigTIFF, a DICOM series when the DICOM backend is there) and the real
slides of ../shared/testdata when present. Each input is a seed with a few random edits,
aimed mostly at the file's structure (header, IFD entries, tag values, the first bytes of
tiles); it is read by every backend that takes it, in the sandboxed worker of
:mod:`fuzz.sandbox` (a timeout and an address-space limit per input). A crash, a hang, an
exhausted address space or a broken promise (:func:`fuzz.target.exercise`) is a finding:
it is shrunk, saved under ``--found`` (picked up as a regression test by
tests/regressions/test_regressions.py) with a note of what happened, and reported once
per kind. The exit status is 1 when there were findings.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import random
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from fuzz import craft  # noqa: E402
from fuzz.mutate import TiffLayout, dicom_corpus, random_mutation, tiff_corpus  # noqa: E402
from wsikit.samples.backends import backend_unavailable  # noqa: E402
from fuzz.sandbox import BAD_OUTCOMES, Case, Sandbox, describe  # noqa: E402

TESTDATA = Path(os.environ.get("WSIKIT_TESTDATA", ROOT.parent / "shared" / "testdata"))


@dataclass
class Seed:
    name: str
    data: bytes
    suffix: str
    backends: list
    layout: TiffLayout | None
    structured: list  # named corpus mutations, mixed in now and then
    weight: float = 1.0


def _tiff_seed(name: str, path: Path, backends, weight=1.0) -> Seed:
    data = path.read_bytes()
    try:
        layout = TiffLayout(data, str(path))
        structured = [m.data for m in tiff_corpus(data, str(path), random_flips=0)]
    except Exception:  # noqa: BLE001 - a seed tifffile cannot lay out is still a seed
        layout, structured = None, []
    return Seed(name, data, path.suffix, backends, layout, structured, weight)


def make_seeds(folder: Path) -> list[Seed]:
    import numpy as np
    import tifffile

    from wsikit.samples.svs import write_sample_svs

    tiff_backends = [b for b in ("tiff", "openslide") if not backend_unavailable(b)] + [None]
    folder.mkdir(parents=True, exist_ok=True)
    seeds = []
    svs = folder / "sample.svs"
    write_sample_svs(svs, shape=(256, 384), factors=(4,), tile=64, quality=70)
    seeds.append(_tiff_seed("sample.svs", svs, tiff_backends, 3.0))
    data, _ = craft.small_tiled_rgb((64, 96), (32, 32))
    (folder / "deflate.tif").write_bytes(data)
    seeds.append(_tiff_seed("deflate.tif", folder / "deflate.tif", tiff_backends))
    rng = np.random.default_rng(0)
    tifffile.imwrite(folder / "strips.tif", rng.integers(0, 65535, (80, 60), dtype=np.uint16), rowsperstrip=16,
                     compression="lzw", predictor=True)
    seeds.append(_tiff_seed("strips.tif", folder / "strips.tif", ["tiff", None]))
    with tifffile.TiffWriter(folder / "big.tif", bigtiff=True) as tif:
        image = rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)
        tif.write(image, tile=(32, 32), compression="jpeg", photometric="rgb", subifds=1)
        tif.write(image[::2, ::2], tile=(32, 32), compression="jpeg", photometric="rgb", subfiletype=1)
    seeds.append(_tiff_seed("big.tif", folder / "big.tif", tiff_backends))
    (folder / "jpeg.tif").write_bytes(craft.jpeg_sof_bomb((64, 64), (64, 64)))
    seeds.append(_tiff_seed("jpeg.tif", folder / "jpeg.tif", tiff_backends))
    for name, weight in (("small_HE_levels.tiff", 2.0), ("smalltif.tif", 1.0), ("small_HE.svs", 0.5)):
        if (TESTDATA / name).is_file():
            seeds.append(_tiff_seed(name, TESTDATA / name, tiff_backends, weight))
    if not backend_unavailable("dicom"):
        from wsikit.samples.dicom import write_dicom_series

        sample = write_dicom_series(folder / "dicom", shape=(256, 384), tile=64, factors=(4,), thumbnail=False,
                                    label=False, overview=False)
        # OpenSlide reads DICOM too; OpenSlideBackend lets wsikit's DICOM reader check the file first.
        dicom_backends = ["dicom", None] + ([] if backend_unavailable("openslide") else ["openslide"])
        for k, path in enumerate(sample.level_files[:1]):
            data = Path(path).read_bytes()
            seeds.append(Seed(f"dicom-level{k}.dcm", data, ".dcm", dicom_backends, None,
                              [m.data for m in dicom_corpus(data)], 2.0))
        if (TESTDATA / "small_dicom.dcm").is_file():
            data = (TESTDATA / "small_dicom.dcm").read_bytes()
            seeds.append(Seed("small_dicom.dcm", data, ".dcm", dicom_backends, None, [m.data for m in dicom_corpus(data)], 0.5))
    return seeds


def mutate(seed: Seed, rng: random.Random) -> bytes:
    if seed.structured and rng.random() < 0.25:
        data = rng.choice(seed.structured)  # a named lie, then more edits on top
        return bytes(random_mutation(data, rng)) if rng.random() < 0.5 else data
    data = seed.data
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        data = bytes(random_mutation(data, rng, seed.layout))
    return data


_VOLATILE = re.compile(r"(/[^\s'\"]+)|(0x[0-9a-f]+)|(\d+)")


def signature(result: dict) -> str:
    """What kind of failure this is, without paths and numbers, to report each kind once."""
    first = (result.get("problems") or [""])[0]
    lines = [line for line in first.splitlines() if line.strip()]
    where = next((line.strip() for line in reversed(lines) if line.strip().startswith("File ")), "")
    head = lines[0] if lines else ""
    return result["outcome"] + ": " + _VOLATILE.sub("#", head)[:160] + " @ " + _VOLATILE.sub("#", where)[:160]


def shrink(sandbox: Sandbox, data: bytes, case_path: Path, backend, wanted: str, budget: float) -> bytes:
    """A shorter input with the same failure: cut the tail, then zero spans (a few tries)."""
    deadline = time.monotonic() + budget

    def same(candidate: bytes) -> bool:
        case_path.write_bytes(candidate)
        result = sandbox.run(Case("shrink", str(case_path), backend, None, 64))
        return result["outcome"] in BAD_OUTCOMES and signature(result) == wanted

    step = len(data) // 2
    while step >= 64 and time.monotonic() < deadline:
        candidate = data[: len(data) - step]
        if candidate and same(candidate):
            data = candidate
        else:
            step //= 2
    return data


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("FUZZ_SECONDS", 600)))
    parser.add_argument("--seed", type=int, default=int(os.environ.get("FUZZ_SEED", time.time_ns() % 2**31)))
    parser.add_argument("--found", default=os.environ.get("FUZZ_FOUND", str(ROOT / "tests" / "regressions" / "found")))
    parser.add_argument("--timeout", type=float, default=float(os.environ.get("FUZZ_TIMEOUT", 20)))
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    found = Path(args.found)
    start = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="wsikit-fuzz-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None))
    counts: dict[str, int] = {}
    kinds: dict[str, Path] = {}
    execs = 0
    try:
        seeds = make_seeds(work / "seeds")
        print(f"fuzz: seed {args.seed}, {len(seeds)} seed files ({', '.join(s.name for s in seeds)}), "
              f"{args.seconds:.0f} s, findings to {found}", flush=True)
        weights = [s.weight for s in seeds]
        last_report = start
        with Sandbox(timeout=args.timeout, cases_per_worker=500) as sandbox:
            while time.monotonic() - start < args.seconds:
                seed = rng.choices(seeds, weights)[0]
                data = mutate(seed, rng)
                case_dir = work / "case"
                case_dir.mkdir(exist_ok=True)
                # No slide suffix: the search of open_slide then never starts a JVM for
                # Bio-Formats (which matches names), whose start-up cannot be sandboxed.
                case_path = case_dir / "input.case"
                case_path.write_bytes(data)
                for backend in seed.backends:
                    execs += 1
                    result = sandbox.run(Case(f"{seed.name}:{backend}", str(case_path), backend, None, 64))
                    counts[result["outcome"]] = counts.get(result["outcome"], 0) + 1
                    if result["outcome"] not in BAD_OUTCOMES:
                        continue
                    kind = signature(result)
                    if kind in kinds:
                        continue
                    small = shrink(sandbox, data, case_path, backend, kind, budget=60)
                    name = hashlib.sha1(small).hexdigest()[:12] + seed.suffix
                    found.mkdir(parents=True, exist_ok=True)
                    (found / name).write_bytes(small)
                    (found / (name + ".txt")).write_text(
                        f"seed file: {seed.name}\nbackend: {backend}\nkind: {kind}\n\n{describe(result)}\n")
                    kinds[kind] = found / name
                    print(f"fuzz: FINDING {found / name} ({len(small)} bytes, backend {backend})\n  {kind}", flush=True)
                    case_path.write_bytes(data)
                now = time.monotonic()
                if now - last_report >= 60:
                    last_report = now
                    print(f"fuzz: {now - start:5.0f} s, {execs} runs ({execs / (now - start):.1f}/s), "
                          f"outcomes {counts}, {len(kinds)} finding(s)", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    elapsed = time.monotonic() - start
    print(f"fuzz: done in {elapsed:.0f} s: {execs} runs, outcomes {counts}, {len(kinds)} finding(s)"
          + "".join(f"\n  {path}: {kind}" for kind, path in kinds.items()), flush=True)
    return 1 if kinds else 0


if __name__ == "__main__":
    sys.exit(main())
