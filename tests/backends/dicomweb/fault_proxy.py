"""An HTTP proxy in front of a DICOMweb server that spoils answers on demand, for the fault tests.

Every GET is forwarded to the target server; the answer is passed back unchanged unless
a fault is queued. Faults are taken, one per request, from :attr:`FaultProxy.faults` for
requests whose path contains :attr:`FaultProxy.match` (default: frame requests):

- ``"503"``: Service Unavailable, nothing forwarded;
- ``"reset"``: the connection is closed without an answer;
- ``"truncate"``: the server's headers (with its full Content-Length), half the body, then close;
- ``"stall"``: the headers, then nothing for :attr:`stall_seconds`;
- ``"html"``: 200 with an HTML error page;
- ``"drop_part"``: the multipart answer with its last part left out;
- ``"wrong_syntax"``: each part says another transfer syntax than the stored one.

The headers of every request are kept in :attr:`requests_seen`.
"""
from __future__ import annotations

import socket
import struct
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.servers import Server

_HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length"}


class FaultProxy(Server):
    """``with FaultProxy("http://127.0.0.1:8042") as proxy:`` send requests to ``proxy.url``."""

    def __init__(self, target: str, stall_seconds: float = 30.0, match: str = "/frames/") -> None:
        self.target = target.rstrip("/")
        self.stall_seconds = stall_seconds
        self.match = match
        self.faults: deque[str] = deque()
        self.requests_seen: list[dict[str, str]] = []
        self.url = ""
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> FaultProxy:
        import urllib3

        proxy = self
        pool = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=5, read=60))

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return None

            def do_GET(self) -> None:
                proxy.requests_seen.append({k.lower(): v for k, v in self.headers.items()})
                fault = proxy.faults.popleft() if proxy.match in self.path and proxy.faults else "ok"
                if fault == "reset":
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.close_connection = True
                    self.connection.close()
                    return
                if fault == "503":
                    self._send(503, {"Content-Type": "text/plain"}, b"busy")
                    return
                if fault == "html":
                    self._send(200, {"Content-Type": "text/html"}, b"<html><body>Please log in</body></html>")
                    return
                forwarded = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                answer = pool.request("GET", proxy.target + self.path, headers=forwarded, preload_content=True)
                body = answer.data
                headers = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP_HEADERS}
                if fault == "drop_part":
                    body = _drop_last_part(headers.get("Content-Type", ""), body)
                elif fault == "wrong_syntax":
                    body = body.replace(b"transfer-syntax=1.2.840.10008.1.2.4.50",
                                        b"transfer-syntax=1.2.840.10008.1.2.4.91")
                if fault == "truncate":
                    self.send_response(answer.status)
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                if fault == "stall":
                    self.send_response(answer.status)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.flush()
                    time.sleep(proxy.stall_seconds)
                    self.close_connection = True
                    return
                self._send(answer.status, headers, body)

            def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def _drop_last_part(content_type: str, body: bytes) -> bytes:
    boundary = content_type.split("boundary=", 1)[-1].split(";", 1)[0].strip('"').encode()
    delimiter = b"\r\n--" + boundary
    last = body.rfind(delimiter, 0, body.rfind(delimiter))
    return body[:last] + delimiter + b"--\r\n" if last > 0 else body
