"""Real servers the remote-reading tests and benchmarks start on loopback ports: nginx
(HTTP with byte ranges), moto's S3 server, a latency proxy and a fault-injecting HTTP server.

On a machine without a server's program the tests that need it skip, naming what is
missing; with the environment variable ``CI`` set they fail instead (:func:`require`).
"""
from __future__ import annotations

import os
import shutil
import socket
import time

import pytest


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
