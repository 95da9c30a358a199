"""Which body a source reads (eventsource/_httpx.py's open_*_body, _body.py),
end to end. A source without client= uses eventsource's own transport, whose
streams hand h11 the response head only: its body is read fast, straight
from the stream, in every framing, coded or not, over TLS or not. A client
of the user's own, a mock, an ASGI app or HTTP/2 read httpx's public stream.
A silent fallback would only cost speed, so these tests look at which body a
source opened. Every server is on 127.0.0.1, started and stopped by its test."""

from __future__ import annotations

import gc
import gzip
import threading
import time
import warnings
import zlib
from collections.abc import Callable
from typing import Any

import anyio
import anyio.abc
import anyio.to_thread
import httpx
import pytest

import eventsource._backend as backend_module
from eventsource import ConnectionLostError, EventSource, ServerSentEvent
from eventsource._abackend import HIGH_WATER, AsyncioStream
from eventsource._backend import READ_SIZE
from eventsource._decode import STEP
from eventsource.testing import ASGIStreamTransport, SSEServer

from ._fastpath import TLS, Opened, fast, public
from ._servers import HyperServer, serving
from .conftest import client_for, consume

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("loopback_only")]

FRAMINGS = ["chunked", "close", "content-length"]
HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"


async def _close(client: httpx.Client | httpx.AsyncClient) -> None:
    if isinstance(client, httpx.AsyncClient):
        await client.aclose()
    else:
        await anyio.to_thread.run_sync(client.close)


# --- a source's own client: the fast read -------------------------------------------------


@pytest.mark.parametrize("framing", FRAMINGS)
async def test_taken_in_every_framing_with_every_event(
    mode: str, framing: Any, bodies: Opened
) -> None:
    async with SSEServer(framing=framing) as server:
        for i in range(1, 301):
            server.send({"n": i, "text": "é" * (i % 7)}, event="chunk", id=str(i))
        server.end_after(300)
        outcome = await consume(EventSource(server.url, reconnect=False), mode)
    assert [e.id for e in outcome.events] == [str(i) for i in range(1, 301)]
    assert outcome.events[6].json() == {"n": 7, "text": "é" * 0}
    assert outcome.error is None and bodies == [fast(mode)]


async def test_an_http_1_0_response_is_read_fast(mode: str, bodies: Opened) -> None:
    # HTTP/1.0: no chunks, no keep-alive; the body ends with the connection.
    async def handle(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await stream.receive()
            await stream.send(b"HTTP/1.0 200 OK\r\ncontent-type: text/event-stream\r\n\r\n")
            for i in range(1, 4):
                await stream.send(f"id: {i}\ndata: {i}\n\n".encode())

    async with serving(handle) as url:
        outcome = await consume(EventSource(url, reconnect=False), mode)
    assert [e.data for e in outcome.events] == ["1", "2", "3"] and outcome.error is None
    assert bodies == [fast(mode)]


@pytest.mark.parametrize("framing", ["chunked", "content-length"])
async def test_a_drop_mid_event_resumes_on_the_fast_path(
    mode: str, framing: Any, bodies: Opened
) -> None:
    async with SSEServer(framing=framing) as server:
        for i in range(1, 6):
            server.send(f"event {i}", id=str(i), retry=10)
        server.drop_mid_event(2, at="line")
        server.end_after(5)
        errors: list[Exception] = []
        source = EventSource(server.url, min_retry_delay=0.01, on_error=errors.append)
        outcome = await consume(source, mode, limit=5)
        resumed_from = server.requests[1].last_event_id
    assert [e.data for e in outcome.events] == [f"event {i}" for i in range(1, 6)]
    assert resumed_from == "2" and bodies == [fast(mode)] * 2
    assert len(errors) == 1 and isinstance(errors[0], ConnectionLostError)


async def test_a_broken_chunk_header_is_a_drop_that_resumes(mode: str, bodies: Opened) -> None:
    raw = HEAD + b"transfer-encoding: chunked\r\n\r\nf\r\nid: 1\ndata: a\n\n\r\nzz\r\n"
    async with SSEServer() as server:
        server.send("b", id="2")
        url = server.url
        resumed: list[bool] = []  # per request: did it carry Last-Event-ID: 1

        async def handle(stream: anyio.abc.SocketStream) -> None:
            async with stream:
                request = await stream.receive()
                resumed.append("last-event-id: 1" in request.decode().lower())
                if len(resumed) == 1:
                    await stream.send(raw)
                else:  # resume on the real server: a redirect keeps the test short
                    await stream.send(
                        b"HTTP/1.1 307 Temporary Redirect\r\ncontent-length: 0\r\n"
                        b"location: " + url.encode() + b"\r\n\r\n"
                    )

        errors: list[Exception] = []
        async with serving(handle) as raw_url:
            source = EventSource(raw_url, min_retry_delay=0.01, retry=0.01, on_error=errors.append)
            outcome = await consume(source, mode, limit=2)
    assert [e.data for e in outcome.events] == ["a", "b"]
    assert "chunked framing" in str(errors[0]) and isinstance(errors[0], ConnectionLostError)
    assert resumed[:2] == [False, True]
    assert bodies == [fast(mode)] * 2


@pytest.mark.parametrize("own", [True, False], ids=["own-client", "users-client"])
async def test_a_connection_read_fast_is_closed_with_its_response(
    mode: str, own: bool, bodies: Opened
) -> None:
    # h11 never sees the end of a body read fast: the connection is closed
    # with the response, never given to the next request. (httpx's public
    # stream reads a whole Content-Length body through h11, and keeps it.)
    async with SSEServer() as server:
        server.respond_with(200, {"Content-Type": "text/event-stream"}, b"id: 1\ndata: a\n\n")
        server.send("b", id="2")
        client = None if own else client_for(mode, trust_env=False)
        try:
            source = EventSource(server.url, client=client, min_retry_delay=0.01, retry=0.01)
            outcome = await consume(source, mode, limit=2)
        finally:
            if client is not None:
                await _close(client)
        tcp = [c.tcp_index for c in server.connections]
    assert [e.data for e in outcome.events] == ["a", "b"]
    if own:
        assert tcp == [0, 1] and bodies == [fast(mode)] * 2
    else:
        assert tcp == [0, 0] and bodies == [public(mode)] * 2


def _raw_deflate(data: bytes) -> bytes:
    # (some servers send deflate so; zlib.compress() takes wbits from 3.11 only)
    z = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return z.compress(data) + z.flush()


CODINGS: dict[str, tuple[str, Callable[[bytes], bytes]]] = {
    "gzip": ("gzip", gzip.compress),
    "deflate": ("deflate", zlib.compress),
    "raw-deflate": ("deflate", _raw_deflate),
}


@pytest.mark.parametrize("coding", CODINGS)
async def test_a_compressed_body_is_read_fast_and_decoded_by_us(
    mode: str, coding: str, bodies: Opened
) -> None:
    # Decoded by eventsource in bounded steps: this body expands to 7 steps and more.
    name, compress = CODINGS[coding]
    text = b"".join(b"id: %d\ndata: %s\n\n" % (i, b"z" * 1000) for i in range(1, 501))
    assert len(text) > 7 * STEP
    async with SSEServer() as server:
        server.respond_with(
            200, {"Content-Type": "text/event-stream", "Content-Encoding": name}, compress(text)
        )
        server.send("plain", id="501")
        source = EventSource(server.url, min_retry_delay=0.01, retry=0.01)
        outcome = await consume(source, mode, limit=501)
        sent = server.requests[0].headers["accept-encoding"]
    assert [e.id for e in outcome.events] == [str(i) for i in range(1, 502)]
    assert outcome.events[0].data == "z" * 1000 and outcome.events[-1].data == "plain"
    assert sent == "gzip, deflate" and bodies == [fast(mode)] * 2


async def test_tls_is_read_fast_too(
    mode: str, bodies: Opened, tls: TLS, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Sync reads the ssl.SSLSocket itself; async reads a TLS layer of ours
    # (ssl.MemoryBIO) over the stream.
    tls.trust_in_own_clients(monkeypatch)
    async with SSEServer(tls=tls.server) as server:
        for i in range(1, 51):
            server.send(f"secret {i}", id=str(i))
        server.drop_mid_event(20, at="line")
        server.end_after(50)
        source = EventSource(server.url, min_retry_delay=0.01, retry=0.01)
        outcome = await consume(source, mode, limit=50)
    assert [e.data for e in outcome.events] == [f"secret {i}" for i in range(1, 51)]
    assert bodies == [fast(mode)] * 2
    assert bodies.streams == ["SyncStream" if mode == "sync" else "AsyncTLS"] * 2


async def test_a_whole_response_and_its_end_in_one_write_end_the_stream(
    mode: str, bodies: Opened
) -> None:
    # The head, the body and the server's FIN may all be in when the head is
    # read: the body's bytes held past the head and the end must still come.
    async def handle(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await stream.receive()
            await stream.send(HEAD + b"\r\nid: 1\ndata: a\n\nid: 2\ndata: b\n\n")

    async with serving(handle) as url:
        with anyio.fail_after(5):
            outcome = await consume(EventSource(url, reconnect=False), mode)
    assert [e.data for e in outcome.events] == ["a", "b"] and outcome.error is None
    assert bodies == [fast(mode)]


@pytest.mark.parametrize("split", [1, 2, 3], ids=["crlfcr|lf", "crlf|crlf", "cr|lfcrlf"])
async def test_a_head_whose_end_comes_with_the_body_loses_no_event(
    mode: str, split: int, bodies: Opened, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The head's blank line cut between two reads, the body's first event
    # in the read that ends it: h11 must get the head's end, and nothing after.
    read = threading.Event()  # the client read the head's first part
    original = backend_module.HeadCut.cut

    def cut(self: backend_module.HeadCut, data: bytes) -> int:
        read.set()
        return original(self, data)

    monkeypatch.setattr(backend_module.HeadCut, "cut", cut)

    async def handle(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await stream.receive()
            head = HEAD + b"\r\n"
            await stream.send(head[:-split])
            assert await anyio.to_thread.run_sync(read.wait, 5)
            await stream.send(head[-split:] + b"id: 1\ndata: a\n\nid: 2\ndata: b\n\n")

    async with serving(handle) as url:
        outcome = await consume(EventSource(url, reconnect=False), mode)
    assert [e.data for e in outcome.events] == ["a", "b"] and outcome.error is None
    assert bodies == [fast(mode)]


# --- every other client: httpx's public stream --------------------------------------------


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_a_users_own_client_reads_the_public_stream(
    mode: str, scheme: str, bodies: Opened, tls: TLS
) -> None:
    async with SSEServer(tls=tls.server if scheme == "https" else None) as server:
        for i in range(1, 4):
            server.send(str(i), id=str(i))
        server.end_after(3)
        client = client_for(mode, verify=tls.client, trust_env=False)
        try:
            outcome = await consume(EventSource(server.url, client=client, reconnect=False), mode)
        finally:
            await _close(client)
    assert [e.data for e in outcome.events] == ["1", "2", "3"] and outcome.error is None
    assert bodies == [public(mode)] and bodies.streams == [None]


async def test_a_users_own_client_decodes_gzip_with_us(mode: str, bodies: Opened) -> None:
    async with SSEServer() as server:
        server.respond_with(
            200,
            {"Content-Type": "text/event-stream", "Content-Encoding": "gzip"},
            gzip.compress(b"id: 1\ndata: zipped\n\n"),
        )
        client = client_for(mode, trust_env=False)
        try:
            outcome = await consume(EventSource(server.url, client=client), mode, limit=1)
        finally:
            await _close(client)
    assert [e.data for e in outcome.events] == ["zipped"] and bodies == [public(mode)]


async def test_a_mock_transport_takes_the_public_path(mode: str, bodies: Opened) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, headers={"content-type": "text/event-stream"}, content=b"data: mocked\n\n"
        )

    client = client_for(mode, transport=httpx.MockTransport(handler))
    try:
        outcome = await consume(EventSource("http://sse.test/", client=client), mode, limit=1)
    finally:
        await _close(client)
    assert outcome.events == [ServerSentEvent(data="mocked")] and bodies == [public(mode)]


async def test_an_asgi_app_takes_the_public_path(anyio_backend: str, bodies: Opened) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        await send({"type": "http.response.body", "body": b"data: asgi\n\n", "more_body": False})

    async with httpx.AsyncClient(transport=ASGIStreamTransport(app)) as client:
        events = await EventSource("http://app/", client=client, reconnect=False).acollect()
    assert [e.data for e in events] == ["asgi"] and bodies == ["AsyncPublic"]


async def test_http2_takes_the_public_path(mode: str, bodies: Opened) -> None:
    with HyperServer("h2c") as server:
        url = f"{server.url}/events?end_after=3&interval=0"
        client = client_for(mode, http1=False, http2=True, trust_env=False)
        try:
            outcome = await consume(EventSource(url, client=client, reconnect=False), mode)
        finally:
            await _close(client)
    assert len(outcome.events) == 3 and bodies == [public(mode)]


# --- reading: interrupted, timed, paused, dropped -----------------------------------------


@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # (a sync source in a thread)
async def test_close_from_another_thread_ends_a_fast_read(bodies: Opened) -> None:
    async with SSEServer() as server:
        server.send("a")  # then silence: the read blocks
        source = EventSource(server.url)
        got: list[str] = []
        first, done = threading.Event(), threading.Event()

        def run() -> None:
            for event in source:
                got.append(event.data)
                first.set()  # the next read blocks on the silent socket
            done.set()

        thread = threading.Thread(target=run)
        thread.start()
        assert await anyio.to_thread.run_sync(first.wait, 5.0)
        started = time.monotonic()
        source.close()
        ended = await anyio.to_thread.run_sync(done.wait, 5.0)
        elapsed = time.monotonic() - started
        thread.join(5)
    assert ended and elapsed < 0.5 and got == ["a"] and bodies == ["SyncFast"]


@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # (a sync source in a thread)
async def test_close_from_another_thread_ends_the_wait_for_the_head() -> None:
    # The stream the request's head was written to is armed (ARMING) before
    # any byte of the answer came: close() shuts it down at once.
    async with SSEServer() as server:
        server.hold()  # the request gets no answer
        source = EventSource(server.url)
        done = threading.Event()

        def run() -> None:
            for _event in source:
                pass
            done.set()

        thread = threading.Thread(target=run)
        thread.start()
        conn = await server.await_for_connections(1)
        await server.await_until(lambda: conn.held)
        started = time.monotonic()
        source.close()
        ended = await anyio.to_thread.run_sync(done.wait, 5.0)
        elapsed = time.monotonic() - started
        thread.join(5)
        await server.await_until(lambda: conn.closed_by_client)
    assert ended and elapsed < 0.5


@pytest.mark.parametrize(
    ("busy", "gap"),
    [
        (1.2, 0.1),  # busy for longer than read_timeout: the timer comes due meanwhile
        (0.9, 0.2),  # the next wait outlasts the last wait's deadline, not its own
    ],
    ids=["busy-past-the-timeout", "wait-past-the-last-deadline"],
)
async def test_a_slow_consumer_is_not_timed_out(
    anyio_backend: str, busy: float, gap: float, bodies: Opened
) -> None:
    # read_timeout (1 s) counts while a read waits, from the start of that
    # wait: not while the caller is busy with the last event, and not from an
    # earlier wait (the asyncio timer and the trio watchdog run once per period).
    async with SSEServer(replay=False) as server:
        source = EventSource(server.url, read_timeout=1.0)
        seen: list[str] = []
        reading_again = anyio.Event()

        async def consume_slowly() -> None:
            async with source:
                async for event in source:
                    seen.append(event.data)
                    if event.data == "a":
                        await anyio.sleep(busy)
                        reading_again.set()
                    else:
                        break

        with anyio.fail_after(10):  # (a spurious timeout reconnects: "b" never comes)
            async with anyio.create_task_group() as tg:
                tg.start_soon(consume_slowly)
                await server.await_for_connections(1)
                await anyio.wait_all_tasks_blocked()  # the first read waits: deadline set
                server.send("a")
                await reading_again.wait()
                await anyio.wait_all_tasks_blocked()  # the next read waits
                await anyio.sleep(gap)
                server.send("b")
        assert seen == ["a", "b"] and source.error is None
        assert len(server.requests) == 1
    assert bodies == ["AsyncFast"]


def _watchdogs() -> int:
    """trio tasks running eventsource's read-timeout watchdog."""
    import trio

    def walk(task: trio.lowlevel.Task) -> int:
        found = task.coro.cr_code.co_name == "_watch"
        return found + sum(walk(t) for n in task.child_nurseries for t in n.child_tasks)

    return walk(trio.lowlevel.current_root_task())  # type: ignore[arg-type]


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_the_trio_watchdog_ends_with_its_source(bodies: Opened) -> None:
    import trio.testing

    async with SSEServer() as server:
        server.send("a")
        source = EventSource(server.url, read_timeout=30)
        got = trio.Event()

        async def read_all() -> None:
            async for _event in source:
                got.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(read_all)
            await got.wait()
            await trio.testing.wait_all_tasks_blocked()  # reading: the watchdog is up
            during = _watchdogs()
            await source.aclose()
        await trio.testing.wait_all_tasks_blocked()
        after = _watchdogs()
    assert bodies == ["AsyncFast"] and bodies.streams == ["TrioStream"]
    assert (during, after) == (1, 0)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_an_asyncio_source_pauses_reading_when_it_does_not_keep_up(
    bodies: Opened, monkeypatch: pytest.MonkeyPatch
) -> None:
    held: list[int] = []  # bytes held unread after each transport read
    full = anyio.Event()
    original = AsyncioStream.received

    def spy(self: AsyncioStream, data: bytes) -> None:
        original(self, data)
        held.append(self._size)
        if self._size > HIGH_WATER:
            full.set()

    monkeypatch.setattr(AsyncioStream, "received", spy)
    async with SSEServer() as server:
        for _ in range(4000):  # about 4 MB, sent at once
            server.send("x" * 1000)
        server.end_after(4000)
        got = 0
        async with EventSource(server.url, reconnect=False) as source:
            async for _event in source:
                got += 1
                if got == 1:  # busy: the server writes on until the stream pauses
                    with anyio.fail_after(5):
                        await full.wait()
    assert got == 4000 and bodies == ["AsyncFast"] and bodies.streams == ["AsyncioStream"]
    # Held unread: at most the high-water mark and one transport read.
    assert HIGH_WATER < max(held) <= HIGH_WATER + READ_SIZE


async def test_a_source_dropped_unclosed_frees_its_connection(
    anyio_backend: str, bodies: Opened
) -> None:
    freed = anyio.Event()

    async def handle(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await stream.receive()
            await stream.send(HEAD + b"transfer-encoding: chunked\r\n\r\n")
            await stream.send(b"d\r\ndata: first\n\n\r\n")
            try:
                while True:  # a heartbeat until the client's end
                    with anyio.move_on_after(0.05):
                        if not await stream.receive():
                            break
                    await stream.send(b"3\r\n:\n\n\r\n")
            except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                pass
            freed.set()

    async def drop() -> None:
        source = EventSource(url)
        async for _event in source:
            break  # and never closed

    warned: list[str] = []  # (text only: a warning kept would keep its source alive)
    async with serving(handle) as url:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = lambda message, category, *_, **__: warned.append(
                f"{category.__name__}: {message}"
            )
            await drop()
            with anyio.fail_after(5):
                while not freed.is_set():
                    gc.collect()
                    with anyio.move_on_after(0.1):
                        await freed.wait()
            gc.collect()
    assert bodies == ["AsyncFast"]
    # The source says it was left open; on trio the socket, collected unclosed,
    # says so too (asyncio's stream aborts its transport when collected).
    expected = ["ResourceWarning: unclosed <EventSource"]
    if anyio_backend == "trio":
        expected.append("ResourceWarning: unclosed <socket.socket")
    assert sorted(" ".join(w.split(" ")[:3]) for w in warned) == sorted(expected)
