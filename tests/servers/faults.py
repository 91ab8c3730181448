"""An HTTP server of one file's byte ranges that misbehaves on demand, for the fault tests.

Each request takes the next fault from :attr:`FaultServer.faults` (a deque the test
fills); when it is empty, the fault :attr:`FaultServer.always` (None: the request is
answered correctly, 206 with the exact range).
Faults: ``"503"`` (Service Unavailable), ``"404"``, ``"403"``, ``"reset"`` (the connection is
closed with no answer), ``"truncate"`` (a correct header, half the body, then close),
``"stall"`` (a header, then nothing for :attr:`stall_seconds`), ``"bad_range"`` (206 whose
Content-Range names other bytes), ``"html"`` (200 text/html error page), ``"html206"`` (a
206 of text/html), ``"whole"`` (200 with the whole file: a server ignoring Range).

Runs its own asyncio loop on a thread; every request's headers are kept in
:attr:`requests_seen` (so tests can check what a client sent).
"""
from __future__ import annotations

import asyncio
import re
import threading
from collections import deque

from . import Server, free_port

_RANGE = re.compile(r"bytes=(\d+)-(\d+)?")


class FaultServer(Server):
    """``with FaultServer(data) as server:`` the bytes at ``server.url + "slide.svs"`` (any path)."""

    def __init__(self, data: bytes, stall_seconds: float = 30.0) -> None:
        self.data = data
        self.stall_seconds = stall_seconds
        self.faults: deque[str] = deque()
        #: the fault of every request once ``faults`` is empty (None: answer correctly)
        self.always: str | None = None
        self.requests_seen: list[dict[str, str]] = []
        self.port = 0
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None

    # -- answering -------------------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        key, value = line.split(":", 1)
                        headers[key.strip().lower()] = value.strip()
                self.requests_seen.append(headers)
                fault = self.faults.popleft() if self.faults else (self.always or "ok")
                if not await self._answer(writer, headers, fault):
                    return
        except (asyncio.IncompleteReadError, asyncio.CancelledError, ConnectionError, OSError):
            pass  # the client went away, or the server is stopping
        finally:
            writer.close()

    async def _answer(self, writer: asyncio.StreamWriter, headers: dict[str, str], fault: str) -> bool:
        """Write one answer; False when the connection is to be closed."""
        size = len(self.data)
        match = _RANGE.match(headers.get("range", ""))
        start = int(match.group(1)) if match else 0
        end = min(int(match.group(2)) + 1 if match and match.group(2) else size, size)
        body = self.data[start:end]
        if fault == "reset":
            transport = writer.transport
            sock = transport.get_extra_info("socket")
            if sock is not None:
                import socket
                import struct

                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
            return False
        if fault in ("503", "404", "403"):
            text = {"503": "Service Unavailable", "404": "Not Found", "403": "Forbidden"}[fault]
            writer.write(f"HTTP/1.1 {fault} {text}\r\nContent-Length: 0\r\n\r\n".encode())
            await writer.drain()
            return True
        if fault in ("html", "html206"):
            page = b"<html><body><h1>502 Bad Gateway</h1>" + b" " * 2000 + b"</body></html>"
            if fault == "html206":
                page = (page * (len(body) // len(page) + 1))[: len(body)]
                status = f"206 Partial Content\r\nContent-Range: bytes {start}-{end - 1}/{size}"
            else:
                status = "200 OK"
            writer.write(f"HTTP/1.1 {status}\r\nContent-Type: text/html\r\nContent-Length: {len(page)}\r\n\r\n"
                         .encode() + page)
            await writer.drain()
            return True
        if fault == "whole":
            writer.write(f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n".encode() + self.data)
            await writer.drain()
            return True
        first = start + 1 if fault == "bad_range" else start
        header = (f"HTTP/1.1 206 Partial Content\r\nContent-Type: application/octet-stream\r\n"
                  f"Content-Range: bytes {first}-{first + len(body) - 1}/{size}\r\nContent-Length: {len(body)}\r\n\r\n")
        if fault == "bad_range":
            body = self.data[first : first + len(body)]
        writer.write(header.encode())
        if fault == "truncate":
            writer.write(body[: len(body) // 2])
            await writer.drain()
            writer.transport.abort()
            return False
        if fault == "stall":
            await writer.drain()
            await asyncio.sleep(self.stall_seconds)
            return False
        writer.write(body)
        await writer.drain()
        return True

    # -- running ---------------------------------------------------------------------------
    def start(self) -> FaultServer:
        self.port = free_port()
        ready = threading.Event()

        async def serve() -> None:
            self._stop = asyncio.Event()
            server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
            ready.set()
            async with server:
                await self._stop.wait()
            # Connections still open (a stalled answer, a kept-alive client) end with the loop.
            others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(serve())
            self._loop.close()

        self._thread = threading.Thread(target=run, name="fault-server", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the fault server did not start")
        self.url = f"http://127.0.0.1:{self.port}/"
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
