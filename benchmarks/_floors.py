"""The paced benchmark's floors: what a client on each I/O primitive costs at the least.

Floors parse nothing (no HTTP, no SSE): they read the same bytes as the clients and
tick once per read. The ``+ framing + parser`` floors read with the same primitives
and also run eventsource's chunk framing (``BodyFraming``) and ``SSEParser`` over
each read, ticking once per event as the clients do: no HTTP client, no read
timeout, no reconnect state, events handed straight to the measuring loop. They are the least
an eventsource client on that primitive can cost with today's parser, which is how
far issue 21's paced targets are from the primitives themselves.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

# A client reads the stream to its end (or its n-th event) and returns
# (events seen, CPU seconds from the first event to the last, ids in order).
Measured = tuple[int, float, list[str]]
Runner = Callable[[str, int], Measured]


class Clock:
    """Process CPU time from the first tick to the last."""

    def __init__(self) -> None:
        self.first = 0.0
        self.last = 0.0
        self.n = 0

    def tick(self) -> None:
        now = time.process_time()
        if not self.n:
            self.first = now
        self.last = now
        self.n += 1

    def cpu(self) -> float:
        return self.last - self.first


class _Waited:
    """A protocol's reads, collected for a task that awaits them (a future per wait)."""

    def __init__(self, head: bytes) -> None:
        self.head = head
        self.chunks: list[bytes] = []
        self.waiter: asyncio.Future[None] | None = None
        self.ended = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(self.head)  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        self.ended = True
        self._wake()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)


class _PlainFeed(_Waited, asyncio.Protocol):
    """asyncio's plain Protocol: a bytes object per read (256 KiB asked)."""

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)
        self._wake()


class _BufferedFeed(_Waited, asyncio.BufferedProtocol):
    """One buffer, copied out per read, as eventsource's asyncio stream reads."""

    def __init__(self, head: bytes) -> None:
        super().__init__(head)
        self.view = memoryview(bytearray(65536))

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.view

    def buffer_updated(self, nbytes: int) -> None:
        self.chunks.append(self.view[:nbytes].tobytes())
        self._wake()


def request(url: str) -> tuple[str, int, bytes]:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    target = f"{parts.path}?{parts.query}"
    head = f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nAccept: text/event-stream\r\n\r\n"
    return parts.hostname or "127.0.0.1", parts.port or 80, head.encode()


def _floor_recv(url: str, n: int) -> Measured:
    """A blocking recv() loop until the server closes: no HTTP, no parsing."""
    import socket

    host, port, head = request(url)
    clock = Clock()
    with socket.create_connection((host, port)) as sock:
        sock.sendall(head)
        while sock.recv(65536):
            clock.tick()
    return n, clock.cpu(), []


def _floor_protocol(url: str, n: int) -> Measured:
    """An asyncio Protocol that counts data_received calls until the connection ends."""

    host, port, head = request(url)
    clock = Clock()

    class Counter(asyncio.Protocol):
        def __init__(self, done: asyncio.Future[None]) -> None:
            self.done = done

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            transport.write(head)  # type: ignore[attr-defined]

        def data_received(self, data: bytes) -> None:
            clock.tick()

        def connection_lost(self, exc: Exception | None) -> None:
            self.done.set_result(None)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        transport, _ = await loop.create_connection(lambda: Counter(done), host, port)
        await done
        transport.close()

    asyncio.run(main())
    return n, clock.cpu(), []


def _floor_task(url: str, n: int) -> Measured:
    """An asyncio Protocol whose data a task awaits (a future per wait): what any
    async iterator over a socket pays, and what eventsource's asyncio read stands on."""

    host, port, head = request(url)
    clock = Clock()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        transport, feed = await loop.create_connection(lambda: _PlainFeed(head), host, port)
        while True:
            if not feed.chunks and not feed.ended:
                feed.waiter = loop.create_future()
                await feed.waiter
            if not feed.chunks:
                break
            feed.chunks.clear()
            clock.tick()
        transport.close()

    asyncio.run(main())
    return n, clock.cpu(), []


def _floor_trio(url: str, n: int) -> Measured:
    """trio's wait_readable() and a non-blocking read, no timeout: what
    eventsource's trio read stands on."""
    import os

    import trio

    host, port, head = request(url)
    clock = Clock()

    async def main() -> None:
        sock = trio.socket.socket()
        with sock:
            await sock.connect((host, port))
            await sock.send(head)
            while True:
                await trio.lowlevel.wait_readable(sock)
                if not os.read(sock.fileno(), 65536):
                    return
                clock.tick()

    trio.run(main)
    return n, clock.cpu(), []


def _floor_anyio(url: str, n: int) -> Measured:
    """anyio's receive() under fail_after(), on asyncio: the primitive an async client with
    a read timeout stands on."""
    import anyio

    host, port, head = request(url)
    clock = Clock()

    async def main() -> None:
        async with await anyio.connect_tcp(host, port) as stream:
            await stream.send(head)
            while True:
                try:
                    with anyio.fail_after(60):
                        await stream.receive(65536)
                except anyio.EndOfStream:
                    return
                clock.tick()

    anyio.run(main, backend="asyncio")
    return n, clock.cpu(), []


class _Body:
    """The response head skipped (one read holds it here), then framing and parser."""

    def __init__(self) -> None:
        from eventsource._chunked import BodyFraming
        from eventsource._parser import SSEParser

        self._head = b""
        self._framing = BodyFraming(True, None)
        self._parser = SSEParser()

    def events(self, data: bytes) -> list[Any]:
        if self._head is not None:
            head = self._head + data
            end = head.find(b"\r\n\r\n")
            if end < 0:
                self._head = head
                return []
            self._head, data = None, head[end + 4 :]  # type: ignore[assignment]
            if not data:
                return []
        return self._parser.feed(self._framing.take(data))  # type: ignore[no-any-return]


def _parsed_recv(url: str, n: int) -> Measured:
    """A blocking recv() loop, its reads framed and parsed."""
    import socket

    host, port, head = request(url)
    clock, ids = Clock(), []
    with socket.create_connection((host, port)) as sock:
        sock.sendall(head)
        body = _Body()
        while data := sock.recv(65536):
            for event in body.events(data):
                clock.tick()
                ids.append(event.id)
                if clock.n >= n:
                    return clock.n, clock.cpu(), ids
    return clock.n, clock.cpu(), ids


def _parsed_task(url: str, n: int) -> Measured:
    """An asyncio BufferedProtocol (one buffer, copied out per read, as eventsource's
    asyncio stream does) with a task awaiting its data, the reads framed and parsed in
    that task's loop."""

    host, port, head = request(url)

    async def main() -> Measured:
        clock, ids = Clock(), []
        loop = asyncio.get_running_loop()
        transport, feed = await loop.create_connection(lambda: _BufferedFeed(head), host, port)
        body = _Body()
        try:
            while True:
                if not feed.chunks and not feed.ended:
                    feed.waiter = loop.create_future()
                    await feed.waiter
                if not feed.chunks:
                    break
                data = b"".join(feed.chunks)
                feed.chunks.clear()
                for event in body.events(data):
                    clock.tick()
                    ids.append(event.id)
                    if clock.n >= n:
                        return clock.n, clock.cpu(), ids
        finally:
            transport.close()
        return clock.n, clock.cpu(), ids

    return asyncio.run(main())


def _parsed_trio(url: str, n: int) -> Measured:
    """trio's wait_readable() and a read, framed and parsed."""
    import os

    import trio

    host, port, head = request(url)

    async def main() -> Measured:
        clock, ids = Clock(), []
        sock = trio.socket.socket()
        with sock:
            await sock.connect((host, port))
            await sock.send(head)
            body = _Body()
            while True:
                await trio.lowlevel.wait_readable(sock)
                data = os.read(sock.fileno(), 65536)
                if not data:
                    break
                for event in body.events(data):
                    clock.tick()
                    ids.append(event.id)
                    if clock.n >= n:
                        return clock.n, clock.cpu(), ids
        return clock.n, clock.cpu(), ids

    return trio.run(main)


# (name, runner, checks the ids): in the order the table lists them.
FLOORS: list[tuple[str, Runner, bool]] = [
    ("floor: blocking recv() loop", _floor_recv, False),
    ("floor: asyncio Protocol", _floor_protocol, False),
    ("floor: asyncio Protocol + a task awaiting it", _floor_task, False),
    ("floor: trio wait_readable() + read", _floor_trio, False),
    ("floor: anyio receive() + fail_after (asyncio)", _floor_anyio, False),
    ("floor + framing + parser: blocking recv()", _parsed_recv, True),
    ("floor + framing + parser: asyncio BufferedProtocol + task", _parsed_task, True),
    ("floor + framing + parser: trio wait_readable()", _parsed_trio, True),
]
# What each of issue 21's targets stands on (for the verdicts).
PARSED = {
    "eventsource sync": "floor + framing + parser: blocking recv()",
    "eventsource async (asyncio)": "floor + framing + parser: asyncio BufferedProtocol + task",
    "eventsource async (trio)": "floor + framing + parser: trio wait_readable()",
}
