"""A TCP proxy on loopback that holds every byte for a fixed time each way: a WAN round trip without netem.

It parses nothing and records nothing (devtools.proxy does that), so the tools
measured through it pay for the round trip, not for a Python HTTP server on
the same cores. Each direction keeps its order; a connection closes, each way,
once what was in flight has been delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

CHUNK = 256 * 1024


@dataclass
class LatencyProxy:
    upstream_host: str
    upstream_port: int
    rtt_s: float
    _loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)
    _server: asyncio.AbstractServer | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    def start(self) -> LatencyProxy:
        ready = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(self._loop)
            self._server = self._loop.run_until_complete(asyncio.start_server(self._connection, "127.0.0.1", 0))
            ready.set()
            self._loop.run_forever()
            pending = asyncio.all_tasks(self._loop)  # connections still open when stopped
            for task in pending:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self._loop.close()

        self._thread = threading.Thread(target=serve, name="latency-proxy", daemon=True)
        self._thread.start()
        ready.wait()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._loop.call_soon_threadsafe(self._server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=5)

    async def _connection(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection(self.upstream_host, self.upstream_port)
        except OSError:
            client_writer.close()
            return
        one_way = self.rtt_s / 2
        with contextlib.suppress(asyncio.CancelledError):  # stopped with the connection open: just close it
            await asyncio.gather(
                _delayed_pump(client_reader, server_writer, one_way),
                _delayed_pump(server_reader, client_writer, one_way),
            )
        client_writer.close()
        server_writer.close()


async def _delayed_pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay_s: float) -> None:
    """Copy reader to writer, each chunk delivered `delay_s` after it was read."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def deliver() -> None:
        while True:
            due, data = await queue.get()
            await asyncio.sleep(max(0.0, due - loop.time()))
            if not data:
                break
            writer.write(data)
            with contextlib.suppress(ConnectionError):
                await writer.drain()
        with contextlib.suppress(OSError):
            if writer.can_write_eof():
                writer.write_eof()
            else:
                writer.close()

    delivering = asyncio.ensure_future(deliver())
    try:
        while data := await reader.read(CHUNK):
            queue.put_nowait((loop.time() + delay_s, data))
    except ConnectionError:
        pass
    queue.put_nowait((loop.time() + delay_s, b""))
    await delivering


@contextlib.contextmanager
def running(upstream_url: str, rtt_s: float) -> Iterator[LatencyProxy]:
    host, port = upstream_url.split("://", 1)[1].rsplit(":", 1)
    proxy = LatencyProxy(host, int(port), rtt_s).start()
    try:
        yield proxy
    finally:
        proxy.stop()
