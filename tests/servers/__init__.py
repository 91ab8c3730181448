"""Real servers the remote-reading tests and benchmarks start on loopback ports: nginx
(HTTP with byte ranges), moto's S3 server, a latency proxy and a fault-injecting HTTP server.

On a machine without a server's program the tests that need it skip, naming what is
missing; with the environment variable ``CI`` set they fail instead (:func:`require`).

Every server is a :class:`Server` (``with X(...) as server:`` starts it, then stops it);
those that run as a process (:class:`ProcessServer`) are started with :func:`start_process`,
which waits until the process is ready and stops it when it is not.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, TypeVar

import pytest

_S = TypeVar("_S", bound="Server")


def require(what: str, available: bool, hint: str) -> None:
    """Skip (fail under CI) when a server's program or package is missing."""
    if available:
        return
    message = f"{what} is not available ({hint})"
    if os.environ.get("CI"):
        pytest.fail(f"{message}; CI must run the server tests", pytrace=False)
    pytest.skip(message)


def program(name: str, *candidates: str) -> str | None:
    """The path of a program: the first candidate that exists, else ``name`` on PATH."""
    for candidate in candidates:
        if os.path.exists(candidate):
            return candidate
    return shutil.which(name)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 10.0, process: object = None) -> None:
    """Return once 127.0.0.1:``port`` accepts connections; RuntimeError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        poll = getattr(process, "poll", None)
        if poll is not None and poll() is not None:
            raise RuntimeError(f"the server process ended with status {poll()} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def start_process(args: Sequence[str], port: int, *, timeout: float = 10.0,
                  ready: Callable[[subprocess.Popen[bytes]], None] | None = None,
                  cwd: str | os.PathLike[str] | None = None, stdout: int | IO[Any] | None = subprocess.DEVNULL,
                  stderr: int | IO[Any] | None = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
    """A server process started and ready: ``ready(process)`` returned (by default: once
    127.0.0.1:``port`` accepts connections, within ``timeout`` seconds). When it is not
    ready, the process is stopped and the RuntimeError raised."""
    process = subprocess.Popen(list(args), cwd=None if cwd is None else Path(cwd), stdout=stdout, stderr=stderr)
    try:
        if ready is None:
            wait_for_port(port, timeout=timeout, process=process)
        else:
            ready(process)
    except BaseException:
        stop_process(process)
        raise
    return process


def stop_process(process: subprocess.Popen[bytes] | None) -> None:
    """Terminate a server process (killed when it has not ended 10 s later), closing its pipes."""
    if process is None:
        return
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    for pipe in (process.stdout, process.stderr):
        if pipe is not None:
            pipe.close()


class Server:
    """A test server: ``with Server() as server:`` runs :meth:`start`, then :meth:`stop`."""

    def start(self: _S) -> _S:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self: _S) -> _S:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


class ProcessServer(Server):
    """A server run as a process (``_process``), with an optional temporary folder
    (``_folder``: its configuration, logs, storage); :meth:`stop` ends the one and removes the other."""

    _process: subprocess.Popen[bytes] | None = None
    _folder: tempfile.TemporaryDirectory[str] | None = None

    def stop(self) -> None:
        stop_process(self._process)
        self._process = None
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None
