"""A TCP proxy that adds latency: each chunk is forwarded ``delay_ms / 2`` after it
arrived, in each direction, so a request's round trip takes ``delay_ms`` longer (``tc
netem`` is not available on these machines). Chunks are pipelined: the delay adds latency,
never a cap on throughput.

Run in its own process (so it never competes with the reader for the GIL)::

    python -m tests.servers.latency_proxy --target-port 8080 --delay-ms 20 [--port 0]

It prints ``listening PORT`` once ready. :class:`LatencyProxy` starts and stops it.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from . import ProcessServer, free_port, start_process

_ROOT = Path(__file__).resolve().parents[2]


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def send() -> None:
        while True:
            due, data = await queue.get()
            if not data:
                break
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()

    sender = asyncio.ensure_future(send())
    try:
        while True:
            data = await reader.read(256 * 1024)
            queue.put_nowait((loop.time() + delay, data))
            if not data:
                break
        await sender
    except (ConnectionError, OSError):
        sender.cancel()
    finally:
        try:
            writer.close()
        except Exception:
            pass


async def _serve(port: int, target_port: int, delay: float) -> None:
    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection("127.0.0.1", target_port)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(_pipe(client_reader, server_writer, delay), _pipe(server_reader, client_writer, delay),
                             return_exceptions=True)

    server = await asyncio.start_server(handle, "127.0.0.1", port, limit=1024 * 1024)
    print(f"listening {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--target-port", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, default=20.0, help="added to every round trip (half each way)")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        asyncio.run(_serve(args.port, args.target_port, args.delay_ms / 2000.0))
    except KeyboardInterrupt:
        pass
    return 0


class LatencyProxy(ProcessServer):
    """``with LatencyProxy(target_port, delay_ms) as proxy:`` connect to ``proxy.port``."""

    def __init__(self, target_port: int, delay_ms: float) -> None:
        self.target_port = target_port
        self.delay_ms = delay_ms
        self.port = 0

    def start(self) -> LatencyProxy:
        self.port = free_port()
        self._process = start_process(
            [sys.executable, "-m", "tests.servers.latency_proxy", "--target-port", str(self.target_port),
             "--delay-ms", str(self.delay_ms), "--port", str(self.port)], self.port, cwd=_ROOT, stderr=None)
        return self


if __name__ == "__main__":
    sys.exit(main())
