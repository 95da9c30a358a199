"""A minimal SSE server for the loopback benchmarks, run in its own process.

``python -m benchmarks._server`` listens on 127.0.0.1 (a free port), prints
``PORT <n>`` and serves until stdin closes. Plain asyncio, no framework: the
bodies are built once and written in large slices, so the server is never what
a client waits for.

- ``GET /stream/<corpus>/<framing>?events=N``: the corpus (``llm``, ``multiline``,
  ``large``), either ``chunked`` (one HTTP chunk per event, as a server that
  flushes every token sends it) or ``close`` (one close-delimited body).
- ``GET /tick?interval_ms=I&count=N``: one small event every I ms, each stamped
  with ``time.monotonic_ns()`` when written (CLOCK_MONOTONIC is shared by all
  processes on the machine, so a client can subtract it from its own clock).
- ``GET /idle``: headers and a first comment, then nothing until a broadcast.
- ``GET /paced?events=N&pause_ms=P``: the first N events of the ``llm`` corpus, one
  HTTP chunk each, written 1-3 events per socket write (seeded) with a pause of P ms
  after each write: what a live LLM answer looks like to the client.

``python -m benchmarks._server --tls CERT KEY`` serves the same over TLS, with the
certificate chain and key in those PEM files (the benchmarks make them with trustme,
for 127.0.0.1, and hand the CA to their clients).

Commands on stdin, one per line, each answered with one line on stdout:
``count`` -> ``count <open idle streams>``; ``broadcast`` -> ``broadcast <n> <ns>``
(one stamped event written to every idle stream; ``ns`` is when the first write began).
"""

from __future__ import annotations

import asyncio
import random
import re
import socket
import ssl
import sys
import time
from urllib.parse import parse_qs, urlsplit

try:
    from benchmarks._corpora import make_large, make_llm, make_multiline
except ImportError:  # run as a script
    from _corpora import make_large, make_llm, make_multiline  # type: ignore

_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
_CHUNKED = _HEAD + b"transfer-encoding: chunked\r\n\r\n"
_CLOSE = _HEAD + b"connection: close\r\n\r\n"
_SLICE = 256 * 1024
_MAKERS = {"llm": make_llm, "multiline": make_multiline, "large": make_large}
_BLOCK_END = re.compile(rb"(?<=\n\n)|(?<=\r\n\r\n)")


def _chunk(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


class Server:
    def __init__(self) -> None:
        self._bodies: dict[tuple[str, str, int], bytes] = {}
        self._idle: set[asyncio.StreamWriter] = set()

    def body(self, corpus: str, framing: str, events: int) -> bytes:
        key = (corpus, framing, events)
        if key not in self._bodies:
            make = _MAKERS[corpus]
            data = (make(events) if events else make()).data
            if framing == "chunked":
                blocks = [b for b in _BLOCK_END.split(data) if b]
                data = b"".join(map(_chunk, blocks)) + b"0\r\n\r\n"
            self._bodies[key] = data
        return self._bodies[key]

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            target = head.split(b" ", 2)[1].decode()
            url = urlsplit(target)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            parts = url.path.strip("/").split("/")
            if parts[0] == "stream":
                await self._stream(writer, parts[1], parts[2], int(query.get("events", 0)))
            elif parts[0] == "tick":
                await self._tick(
                    writer, float(query.get("interval_ms", 5)), int(query.get("count", 1000))
                )
            elif parts[0] == "paced":
                await self._paced(
                    writer, int(query.get("events", 1000)), float(query.get("pause_ms", 1))
                )
            elif parts[0] == "idle":
                await self._hold(reader, writer)
            else:
                writer.write(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _stream(
        self, writer: asyncio.StreamWriter, corpus: str, framing: str, events: int
    ) -> None:
        body = self.body(corpus, framing, events)
        writer.write(_CHUNKED if framing == "chunked" else _CLOSE)
        view = memoryview(body)
        for start in range(0, len(body), _SLICE):
            writer.write(view[start : start + _SLICE])
            await writer.drain()

    async def _tick(self, writer: asyncio.StreamWriter, interval_ms: float, count: int) -> None:
        writer.write(_CHUNKED)
        await writer.drain()
        interval = interval_ms / 1000
        loop = asyncio.get_running_loop()
        due = loop.time()
        for i in range(count):
            due += interval
            await asyncio.sleep(max(0.0, due - loop.time()))
            writer.write(_chunk(b"id: %d\ndata: %d\n\n" % (i, time.monotonic_ns())))
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async def _paced(self, writer: asyncio.StreamWriter, events: int, pause_ms: float) -> None:
        body = self.body("llm", "close", events)
        blocks = [_chunk(b) for b in _BLOCK_END.split(body) if b]
        rng = random.Random(events)
        writer.write(_CHUNKED)
        await writer.drain()
        pause = pause_ms / 1000
        i = 0
        while i < len(blocks):
            step = rng.randint(1, 3)
            writer.write(b"".join(blocks[i : i + step]))  # one socket write (TCP_NODELAY)
            i += step
            await writer.drain()
            await asyncio.sleep(pause)
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async def _hold(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(_CHUNKED + _chunk(b": open\n\n"))
        await writer.drain()
        self._idle.add(writer)
        try:
            await reader.read()  # until the client goes away
        finally:
            self._idle.discard(writer)

    def broadcast(self) -> str:
        started = time.monotonic_ns()
        payload = _chunk(b"data: %d\n\n" % started)
        for writer in list(self._idle):
            writer.write(payload)
        return f"broadcast {len(self._idle)} {started}"

    async def control(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                return
            command = line.strip()
            if command == "count":
                answer = f"count {len(self._idle)}"
            elif command == "broadcast":
                answer = self.broadcast()
            else:
                answer = f"error unknown command {command!r}"
            print(answer, flush=True)


def raise_fd_limit() -> int:
    """Raise the soft limit of open files to the hard one; return it."""
    try:
        import resource
    except ImportError:  # Windows
        return 0
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    """The server side of the TLS mode: the chain and key the benchmark made."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


async def main(argv: list[str]) -> None:
    raise_fd_limit()
    server = Server()
    context = tls_context(argv[1], argv[2]) if argv[:1] == ["--tls"] else None
    listener = await asyncio.start_server(
        server.handle, "127.0.0.1", 0, backlog=4096, limit=2**16, ssl=context
    )
    port = listener.sockets[0].getsockname()[1]
    print(f"PORT {port}", flush=True)
    async with listener:
        await server.control()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
