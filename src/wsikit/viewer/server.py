"""Running the viewer: a uvicorn server on a socket bound here, in this thread or another.

The socket is bound before the server starts, so that the address (and a port chosen by
the system when asked for port 0) is known before any request, and a port in use fails
at once with a clear error. The host is 127.0.0.1 unless the caller says otherwise: the
viewer serves files of this machine and has no authentication.
"""
from __future__ import annotations

import os
import socket
import threading
import time
from typing import Any

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


def bind(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> socket.socket:
    """A listening TCP socket on (host, port); port 0 lets the system choose."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP spelled out: asyncio sets TCP_NODELAY only on sockets that say so, and
    # without it a keep-alive response's second segment waits for a delayed ACK (40 ms).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def address(sock: socket.socket) -> str:
    """The http:// URL of a bound socket."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class ViewerServer:
    """A viewer application served on a bound socket; ``start()`` runs it on a thread,
    ``run()`` here until interrupted, ``stop()`` ends it."""

    def __init__(self, app: Any, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
                 log_level: str = "warning") -> None:
        import uvicorn

        self.socket = bind(host, port)
        self.url = address(self.socket)
        self._server = uvicorn.Server(uvicorn.Config(app, log_level=log_level, access_log=False, lifespan="on",
                                                     timeout_keep_alive=30))
        self._thread: threading.Thread | None = None

    def run(self) -> None:
        """Serve until interrupted (Ctrl-C) or stopped."""
        try:
            self._server.run(sockets=[self.socket])
        finally:
            self.socket.close()

    def start(self, timeout: float = 30.0) -> ViewerServer:
        """Serve on a daemon thread; returns once the server answers."""
        self._thread = threading.Thread(target=self.run, name="wsikit-viewer-server", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the viewer server at {self.url} did not start")
            time.sleep(0.02)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self) -> ViewerServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(path: str | os.PathLike[str], host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *,
          open_browser: bool = True, results: str | os.PathLike[str] | None = None) -> int:
    """``wsikit view``: serve the slides under ``path`` until interrupted; 0 when done."""
    from .app import LOOPBACK_HOSTS, create_app
    from .service import ViewerService

    service = ViewerService(path, results=results)
    if not len(service.catalog):
        raise FileNotFoundError(2, "no slides found", service.catalog.root)
    loopback = host in ("127.0.0.1", "localhost") or host.startswith("127.")
    allowed = (host, *LOOPBACK_HOSTS) if loopback else None  # another address: any name clients use for it
    server = ViewerServer(create_app(service, allowed_hosts=allowed), host, port)
    print(f"wsikit view: {len(service.catalog)} slide(s) under {service.catalog.root}")
    print(f"serving on {server.url}  (Ctrl-C to stop)", flush=True)
    if open_browser:
        import webbrowser

        threading.Timer(0.5, webbrowser.open, args=(server.url,)).start()
    try:
        server.run()
    except KeyboardInterrupt:  # uvicorn stops cleanly on Ctrl-C, then raises it again: the usual end
        print("stopped", flush=True)
    finally:
        service.close()
    return 0
