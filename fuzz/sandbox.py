"""Run many file cases in a child process with a timeout and a memory limit per case.

One long-lived worker (:mod:`fuzz.worker`) reads case after case, so a corpus of hundreds
of files costs one interpreter start, not hundreds. When a case kills the worker (a
signal, an abort, the kernel's OOM killer) or runs past its timeout, that case is
recorded as ``crash`` or ``timeout`` and a fresh worker takes the remaining cases.

Outcomes: ``ok`` (read through), ``error`` (refused cleanly at open), ``problem`` (the
library broke a promise: see :func:`fuzz.target.exercise`), ``crash``, ``timeout``.
"""
from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(ROOT, "fuzz", "worker.py")
DEFAULT_TIMEOUT = 30.0
# The worker's whole address space; wsikit's own limit is set well below it, so that an
# allocation wsikit forgot to check is what runs into this one.
DEFAULT_ADDRESS_SPACE = 1536 * 1024**2
DEFAULT_WSIKIT_MAX_BYTES = 128 * 1024**2
BAD_OUTCOMES = ("problem", "crash", "timeout")


@dataclass
class Case:
    id: str
    path: str
    backend: str | None = None
    tile_shapes: dict | None = None
    max_tiles: int = 400
    meta: dict = field(default_factory=dict)

    def message(self) -> str:
        return json.dumps({"id": self.id, "path": self.path, "backend": self.backend,
                           "tile_shapes": self.tile_shapes, "max_tiles": self.max_tiles})


class Sandbox:
    """A worker process that runs cases; use as a context manager."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT, address_space: int = DEFAULT_ADDRESS_SPACE,
                 max_bytes: int = DEFAULT_WSIKIT_MAX_BYTES, env: dict | None = None, cases_per_worker: int = 1000):
        self.timeout = timeout
        # A fresh worker now and then, so that what one case leaves behind (caches,
        # fragmented memory) cannot push a later, innocent case over the limit.
        self.cases_per_worker = cases_per_worker
        self._cases = 0
        self.address_space = address_space
        self.env = dict(os.environ, WSIKIT_MAX_BYTES=str(max_bytes), OMP_NUM_THREADS="1",
                        PYTHONFAULTHANDLER="1", **(env or {}))
        self.env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, self.env.get("PYTHONPATH")) if p)
        self._proc: subprocess.Popen | None = None
        self._stderr = None
        self.restarts = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._proc is not None:
            try:
                self._proc.stdin.close()
                self._proc.wait(timeout=10)
            except Exception:
                self._proc.kill()
                self._proc.wait()
            self._proc = None
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def _start(self) -> None:
        self.close()
        self._stderr = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(
            [sys.executable, WORKER, str(self.address_space)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            # Not in the repository: a JVM that dies leaves an hs_err_pid*.log where it runs.
            stderr=self._stderr, env=self.env, cwd=tempfile.gettempdir(), text=True, bufsize=1)
        ready = self._read_line(120.0)
        if ready is None or "ready" not in ready:
            raise RuntimeError(f"fuzz worker did not start: {self._stderr_tail()}")
        self.restarts += 1

    def _read_line(self, timeout: float):
        selector = selectors.DefaultSelector()
        selector.register(self._proc.stdout, selectors.EVENT_READ)
        try:
            if not selector.select(timeout):
                return None
        finally:
            selector.close()
        line = self._proc.stdout.readline()
        return json.loads(line) if line else "eof"

    def _stderr_tail(self, limit: int = 4000) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0, os.SEEK_END)
        size = self._stderr.tell()
        self._stderr.seek(max(0, size - limit))
        return self._stderr.read().decode("utf-8", "replace")

    def run(self, case: Case) -> dict:
        """Run one case; the summary has ``outcome`` and ``seconds`` added."""
        if self._proc is None or self._proc.poll() is not None or self._cases >= self.cases_per_worker:
            self._start()
            self._cases = 0
        self._cases += 1
        start = time.monotonic()
        try:
            self._proc.stdin.write(case.message() + "\n")
            self._proc.stdin.flush()
            result = self._read_line(self.timeout)
        except BrokenPipeError:
            result = "eof"
        seconds = time.monotonic() - start
        if isinstance(result, dict):
            if result["problems"]:
                result["outcome"] = "problem"
        elif result is None:
            self._proc.send_signal(signal.SIGUSR1)  # the worker prints its stacks (faulthandler)
            time.sleep(1.0)
            self._proc.kill()
            self._proc.wait()
            result = {"outcome": "timeout", "problems": [f"no answer within {self.timeout:.0f} s"],
                      "stderr": self._stderr_tail()}
        else:
            code = self._proc.wait()
            what = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
            result = {"outcome": "crash", "problems": [f"the worker died: {what}"], "stderr": self._stderr_tail()}
        if result["outcome"] in ("crash", "timeout"):
            self._proc = None
        result["id"] = case.id
        result["seconds"] = round(seconds, 3)
        return result

    def run_all(self, cases) -> list[dict]:
        return [self.run(case) for case in cases]


def describe(result: dict, case: Case | None = None) -> str:
    """One readable paragraph about a bad outcome."""
    head = f"{result['id']}: {result['outcome']}"
    if case is not None:
        head += f" ({case.path}, backend={case.backend})"
    body = "\n  ".join(result.get("problems", []))
    tail = result.get("stderr", "")
    return head + ("\n  " + body if body else "") + ("\n  stderr: " + tail[-1500:] if tail else "")
