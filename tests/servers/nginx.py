"""nginx serving a folder over HTTP with byte ranges, on a free loopback port.

The configuration is written to a temporary prefix folder; nginx runs in the foreground
as one process (``master_process off``) as the current user, logging every request to
``access.log`` (:meth:`NginxServer.request_count`).
"""
from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from . import ProcessServer, free_port, program, start_process

NGINX_CANDIDATES = ("/usr/sbin/nginx", "/usr/local/sbin/nginx")

_CONFIG = """
daemon off;
master_process off;
error_log {prefix}/error.log warn;
pid {prefix}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
    access_log {prefix}/access.log;
    types {{ application/octet-stream svs tif tiff dcm; text/html html; }}
    default_type application/octet-stream;
    client_body_temp_path {prefix}/client;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    sendfile on;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location / {{ autoindex off; }}
    }}
}}
"""


def nginx_path() -> str | None:
    return program("nginx", *NGINX_CANDIDATES)


class NginxServer(ProcessServer):
    """``with NginxServer(folder) as server:`` files of ``folder`` at ``server.url + name``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()
        self.port = 0
        self.url = ""

    def start(self) -> NginxServer:
        binary = nginx_path()
        if binary is None:
            raise RuntimeError("nginx is not installed")
        self._folder = tempfile.TemporaryDirectory(prefix="wsikit-nginx-")
        prefix = self._folder.name
        self.port = free_port()
        config = Path(prefix) / "nginx.conf"
        config.write_text(_CONFIG.format(prefix=prefix, port=self.port, root=self.root))
        try:
            self._process = start_process([binary, "-p", prefix, "-e", f"{prefix}/error.log", "-c", str(config)],
                                          self.port, stderr=subprocess.PIPE)
        except RuntimeError:
            self.stop()
            raise
        self.url = f"http://127.0.0.1:{self.port}/"
        return self

    def request_count(self) -> int:
        """Requests nginx has logged so far."""
        assert self._folder is not None
        log = Path(self._folder.name) / "access.log"
        if not log.exists():
            return 0
        with open(log, "rb") as f:
            return sum(1 for _ in f)
