"""A local S3 API: moto's ThreadedMotoServer on a free loopback port, with a bucket.

``storage_options`` gives what s3fs needs to reach it (fake credentials, the endpoint).
"""
from __future__ import annotations

import os
import sys
from typing import Any

from . import ProcessServer, free_port, start_process, wait_for_port

#: the fake credentials the tests use; tests check that they never show up in errors and reprs
ACCESS_KEY = "wsikit-test-key"
SECRET_KEY = "wsikit-SECRET-do-not-print-9d1f"


def moto_available() -> bool:
    try:
        import moto.server  # noqa: F401
        import s3fs  # noqa: F401
    except ImportError:
        return False
    return True


class S3Server(ProcessServer):
    """``with S3Server() as s3:`` a bucket ``s3.bucket`` at ``s3.endpoint``.

    The server runs on a thread of this process (moto's ThreadedMotoServer), or with
    ``own_process=True`` as ``python -m moto.server`` (the benchmark's choice: moto's Python
    then never competes with the reader under test for this process's GIL).
    """

    def __init__(self, bucket: str = "slides", own_process: bool = False) -> None:
        self.bucket = bucket
        self.own_process = own_process
        self.port = 0
        self.endpoint = ""
        self._server: Any = None

    def start(self) -> S3Server:
        import logging

        from moto.server import ThreadedMotoServer

        self.port = free_port()
        if self.own_process:
            self._process = start_process([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                                           str(self.port)], self.port, timeout=30)
        else:
            logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request on stderr
            self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
            self._server.start()
            wait_for_port(self.port)
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.filesystem().mkdir(self.bucket)
        return self

    @property
    def storage_options(self) -> dict[str, Any]:
        return {"key": ACCESS_KEY, "secret": SECRET_KEY, "endpoint_url": self.endpoint,
                "client_kwargs": {"region_name": "eu-west-1"}}

    def filesystem(self) -> Any:
        import s3fs

        return s3fs.S3FileSystem(skip_instance_cache=True, **self.storage_options)

    def put(self, local: str | os.PathLike[str], key: str) -> str:
        """Upload a local file; returns its s3:// URL."""
        self.filesystem().put_file(os.fspath(local), f"{self.bucket}/{key}")
        return f"s3://{self.bucket}/{key}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
        super().stop()  # the process, with own_process=True
