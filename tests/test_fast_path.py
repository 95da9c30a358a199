"""The fast body read (eventsource/_httpx.py): taken on httpx's own HTTP/1.1
connections in every framing, and every other case falls back to httpx's
public stream, never to an error. A silent fallback would only cost speed, so
these tests look at which body a source opened."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest

import eventsource._io as io_module
from eventsource import ConnectionLostError, EventSource, ServerSentEvent
from eventsource.testing import ASGIStreamTransport, SSEServer

from .conftest import consume

pytestmark = pytest.mark.anyio

FRAMINGS = ["chunked", "close", "content-length"]


@pytest.fixture
def bodies(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The kind of body each connection of the test opened."""
    opened: list[str] = []
    for name in ("open_async_body", "open_sync_body"):
        original = getattr(io_module, name)

        def spy(response: httpx.Response, timeout: float | None, _original: Any = original) -> Any:
            body, sock = _original(response, timeout)
            opened.append(type(body).__name__)
            return body, sock

        monkeypatch.setattr(io_module, name, spy)
    yield opened


# The fastest reader of a plain TCP connection, per mode and backend.
FASTEST = {"sync": "_SyncSocket", "asyncio": "_AsyncioFeed", "trio": "_TrioSocket"}


def direct(mode: str, backend: str) -> str:
    return FASTEST["sync" if mode == "sync" else backend]


def public(mode: str) -> str:
    return "_SyncChunks" if mode == "sync" else "_AsyncChunks"


@pytest.mark.parametrize("framing", FRAMINGS)
async def test_taken_in_every_framing_with_every_event(
    mode: str, anyio_backend: str, framing: Any, bodies: list[str]
) -> None:
    async with SSEServer(framing=framing) as server:
        for i in range(1, 301):
            server.send({"n": i, "text": "é" * (i % 7)}, event="chunk", id=str(i))
        server.end_after(300)
        outcome = await consume(EventSource(server.url, reconnect=False), mode)
    assert [e.id for e in outcome.events] == [str(i) for i in range(1, 301)]
    assert outcome.events[6].json() == {"n": 7, "text": "é" * 0}
    assert outcome.error is None and bodies == [direct(mode, anyio_backend)]


@pytest.mark.parametrize("framing", ["chunked", "content-length"])
async def test_a_drop_mid_event_resumes_on_the_fast_path(
    mode: str, anyio_backend: str, framing: Any, bodies: list[str]
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
    assert resumed_from == "2" and bodies == [direct(mode, anyio_backend)] * 2
    assert len(errors) == 1 and isinstance(errors[0], ConnectionLostError)


async def test_a_broken_chunk_header_is_a_drop_that_resumes(
    mode: str, anyio_backend: str, bodies: list[str]
) -> None:
    raw = (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
        b"transfer-encoding: chunked\r\n\r\n"
        b"f\r\nid: 1\ndata: a\n\n\r\nzz\r\n"
    )
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

        listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        errors: list[Exception] = []
        async with anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, handle)
            source = EventSource(
                f"http://127.0.0.1:{port}/",
                min_retry_delay=0.01,
                retry=0.01,
                on_error=errors.append,
            )
            outcome = await consume(source, mode, limit=2)
            tg.cancel_scope.cancel()
        await listener.aclose()
    assert [e.data for e in outcome.events] == ["a", "b"]
    assert "chunked framing" in str(errors[0]) and isinstance(errors[0], ConnectionLostError)
    assert resumed[:2] == [False, True]
    assert bodies[0] == direct(mode, anyio_backend)


async def test_a_compressed_body_takes_the_public_path(
    mode: str, anyio_backend: str, bodies: list[str]
) -> None:
    body = gzip.compress(b"id: 1\ndata: zipped\n\n")
    async with SSEServer() as server:
        server.respond_with(
            200, {"Content-Type": "text/event-stream", "Content-Encoding": "gzip"}, body
        )
        server.send("plain", id="2")
        outcome = await consume(EventSource(server.url, min_retry_delay=0.01), mode, limit=2)
    assert [e.data for e in outcome.events] == ["zipped", "plain"]
    assert bodies == [public(mode), direct(mode, anyio_backend)]


async def test_a_mock_transport_takes_the_public_path(mode: str, bodies: list[str]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, headers={"content-type": "text/event-stream"}, content=b"data: mocked\n\n"
        )

    transport = httpx.MockTransport(handler)
    client = (
        httpx.Client(transport=transport)
        if mode == "sync"
        else httpx.AsyncClient(transport=transport)
    )
    outcome = await consume(EventSource("http://sse.test/", client=client), mode, limit=1)
    assert outcome.events == [ServerSentEvent(data="mocked")] and bodies == [public(mode)]


async def test_an_asgi_app_takes_the_public_path(anyio_backend: str, bodies: list[str]) -> None:
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
    assert [e.data for e in events] == ["asgi"] and bodies == ["_AsyncChunks"]


async def test_http2_takes_the_public_path(mode: str, bodies: list[str]) -> None:
    from ._servers import HyperServer

    with HyperServer("h2c") as server:
        url = f"{server.url}/events?end_after=3&interval=0"
        client = (
            httpx.Client(http1=False, http2=True)
            if mode == "sync"
            else httpx.AsyncClient(http1=False, http2=True)
        )
        try:
            outcome = await consume(EventSource(url, client=client, reconnect=False), mode)
        finally:
            if isinstance(client, httpx.AsyncClient):
                await client.aclose()
            else:
                client.close()
    assert len(outcome.events) == 3 and bodies == [public(mode)]


async def test_a_missing_private_attribute_takes_the_public_path(
    mode: str, bodies: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import eventsource._httpx as httpx_module

    monkeypatch.setattr(httpx_module, "_httpcore_stream", lambda response: object())
    async with SSEServer() as server:
        server.send("a")
        server.end_after(1)
        outcome = await consume(EventSource(server.url, reconnect=False), mode)
    assert [e.data for e in outcome.events] == ["a"] and bodies == [public(mode)]


async def test_close_from_another_thread_ends_a_fast_read(bodies: list[str]) -> None:
    import threading
    import time

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
    assert ended and elapsed < 0.5 and got == ["a"] and bodies == ["_SyncSocket"]


# --- the readers below httpcore's stream (eventsource/_direct.py) -------------------------


async def _raw_server(handle: Any) -> tuple[Any, str]:
    """A loopback listener whose connections `handle` serves (by hand)."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    return listener, f"http://127.0.0.1:{port}/"


HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"


async def test_a_whole_response_and_its_end_in_one_write_end_the_stream(
    mode: str, anyio_backend: str, bodies: list[str]
) -> None:
    # anyio may have seen the EOF while httpcore read the head: the reader
    # taking the connection over must still see it (and not wait forever).
    async def handle(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await stream.receive()
            await stream.send(HEAD + b"\r\nid: 1\ndata: a\n\nid: 2\ndata: b\n\n")

    listener, url = await _raw_server(handle)
    async with anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        with anyio.fail_after(5):
            outcome = await consume(EventSource(url, reconnect=False), mode)
        tg.cancel_scope.cancel()
    await listener.aclose()
    assert [e.data for e in outcome.events] == ["a", "b"] and outcome.error is None
    assert bodies == [direct(mode, anyio_backend)]


async def test_a_slow_consumer_is_not_timed_out(
    mode: str, anyio_backend: str, bodies: list[str]
) -> None:
    # The read timeout counts while a read waits, not while the caller is busy
    # with the last events (the trio watchdog and the asyncio timer both check).
    async with SSEServer() as server:
        server.send("a", id="1")
        server.send("b", id="2")  # then silence, the connection open
        source = EventSource(server.url, read_timeout=0.3)
        seen: list[str] = []
        if mode == "sync":

            def run() -> None:
                import time

                with source:
                    for event in source:
                        seen.append(event.data)
                        time.sleep(0.5)  # longer than read_timeout, not reading
                        if len(seen) == 2:
                            break

            await anyio.to_thread.run_sync(run)
        else:
            async with source:
                async for event in source:
                    seen.append(event.data)
                    await anyio.sleep(0.5)
                    if len(seen) == 2:
                        break
        assert seen == ["a", "b"] and source.error is None
        assert len(server.requests) == 1
    assert bodies == [direct(mode, anyio_backend)]


def _watchdogs() -> int:
    """trio tasks running eventsource's read-timeout watchdog."""
    import trio

    def walk(task: trio.lowlevel.Task) -> int:
        found = task.coro.cr_code.co_name == "_watch"  # type: ignore[attr-defined]
        return found + sum(walk(t) for n in task.child_nurseries for t in n.child_tasks)

    return walk(trio.lowlevel.current_root_task())  # type: ignore[arg-type]


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_the_trio_watchdog_ends_with_its_source(bodies: list[str]) -> None:
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
    assert bodies == ["_TrioSocket"] and (during, after) == (1, 0)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_bytes_anyio_held_unread_come_first(
    bodies: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import eventsource._httpx as httpx_module

    release = anyio.Event()

    async def handle(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await stream.receive()
            await stream.send(HEAD + b"transfer-encoding: chunked\r\n\r\n")
            await release.wait()
            await stream.send(b"d\r\ndata: after\n\n\r\n0\r\n\r\n")

    original = httpx_module._async_endpoint

    def with_queued(stream: Any) -> Any:
        # As if anyio's protocol had received a chunk that nobody read yet.
        stream._stream._protocol.read_queue.append(b"e\r\ndata: queued\n\n\r\n")
        release.set()
        return original(stream)

    monkeypatch.setattr(httpx_module, "_async_endpoint", with_queued)
    listener, url = await _raw_server(handle)
    async with anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        with anyio.fail_after(5):
            events = await EventSource(url, reconnect=False).acollect()
        tg.cancel_scope.cancel()
    await listener.aclose()
    assert [e.data for e in events] == ["queued", "after"] and bodies == ["_AsyncioFeed"]


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_the_asyncio_feed_pauses_reading_when_nobody_reads(
    bodies: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from eventsource import _direct

    held: list[int] = []
    original = _direct._AsyncioFeed.data_received

    def spy(self: Any, data: bytes) -> None:
        original(self, data)
        held.append(self._size)

    monkeypatch.setattr(_direct._AsyncioFeed, "data_received", spy)
    async with SSEServer() as server:
        for _ in range(4000):  # about 4 MB, sent at once
            server.send("x" * 1000)
        server.end_after(4000)
        got = 0
        async with EventSource(server.url, reconnect=False) as source:
            async for _event in source:
                got += 1
                if got == 1:
                    await anyio.sleep(0.5)  # the server has written it all meanwhile
    assert got == 4000 and bodies == ["_AsyncioFeed"]
    # Held unread: at most the high-water mark and one transport read (256 KiB).
    assert max(held) <= _direct.HIGH_WATER + 256 * 1024
    assert max(held) > _direct.HIGH_WATER  # it did fill up: the pause was needed


async def test_tls_is_read_fast_too(mode: str, anyio_backend: str, bodies: list[str]) -> None:
    # Sync reads the SSLSocket itself; async reads httpcore's TLS stream (the
    # TLS layer is anyio's or trio's, above the socket).
    import ssl

    import trustme

    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    async with SSEServer(tls=server_context) as server:
        for i in range(1, 51):
            server.send(f"secret {i}", id=str(i))
        server.drop_mid_event(20, at="line")
        server.end_after(50)
        client_class = httpx.Client if mode == "sync" else httpx.AsyncClient
        client = client_class(verify=client_context)
        source = EventSource(server.url, client=client, min_retry_delay=0.01, retry=0.01)
        outcome = await consume(source, mode, limit=50)
        if isinstance(client, httpx.AsyncClient):
            await client.aclose()
        else:
            client.close()
    assert [e.data for e in outcome.events] == [f"secret {i}" for i in range(1, 51)]
    fast = "_SyncSocket" if mode == "sync" else "_AsyncStream"
    assert bodies == [fast, fast]


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_transport_that_cannot_change_protocol_is_read_through_the_stream(
    bodies: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import eventsource._httpx as httpx_module

    class Refusing:
        """The client connection's transport, without set_protocol()."""

        def __init__(self, transport: Any) -> None:
            self._transport = transport

        def __getattr__(self, name: str) -> Any:
            return getattr(self._transport, name)

        def set_protocol(self, protocol: Any) -> None:
            raise NotImplementedError

    original = httpx_module._async_endpoint

    def refusing(stream: Any) -> Any:
        kind, (transport, protocol, queue) = original(stream)
        return kind, (Refusing(transport), protocol, queue)

    monkeypatch.setattr(httpx_module, "_async_endpoint", refusing)
    async with SSEServer() as server:
        for i in range(1, 4):
            server.send(str(i), id=str(i))
        server.end_after(3)
        events = await EventSource(server.url, reconnect=False).acollect()
    assert [e.data for e in events] == ["1", "2", "3"] and bodies == ["_AsyncStream"]


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_the_trio_watchdog_outlives_a_timeout_it_called() -> None:
    # A read timeout is reported once per silent wait; the watchdog keeps
    # watching, and a wait that data ended first is no timeout.
    import trio

    from eventsource._chunked import BodyFraming
    from eventsource._direct import _TrioSocket

    ours, theirs = trio.socket.socketpair()
    request = httpx.Request("GET", "http://sse.test/")
    body = _TrioSocket(ours, b"", BodyFraming(False, None), request, 0.1)
    with ours, theirs, trio.fail_after(5):
        await theirs.send(b"a")
        assert await body.read() == b"a"
        with pytest.raises(httpx.ReadTimeout):
            await body.read()  # silence: the watchdog fires
        body._expired = True  # as if it fired just as data woke the read
        await theirs.send(b"b")
        assert await body.read() == b"b" and not body._expired
        with pytest.raises(httpx.ReadTimeout):
            await body.read()  # silence again: the same watchdog fires again
        await body.finish()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_the_asyncio_feed_times_out_each_silent_wait_and_only_those() -> None:
    import asyncio
    import collections
    import socket

    from eventsource._chunked import BodyFraming
    from eventsource._direct import _AsyncioFeed

    ours, theirs = socket.socketpair()
    _reader, writer = await asyncio.open_connection(sock=ours)
    transport = writer.transport
    previous = transport.get_protocol()
    request = httpx.Request("GET", "http://sse.test/")
    feed = _AsyncioFeed(
        transport, previous, collections.deque(), b"", BodyFraming(False, None), request, 0.1
    )
    try:
        with anyio.fail_after(5):
            theirs.send(b"a")
            assert await feed.read() == b"a"
            with pytest.raises(httpx.ReadTimeout):
                await feed.read()  # silence
            theirs.send(b"b")
            assert await feed.read() == b"b"  # the timer is armed again, and spares data
            async with anyio.create_task_group() as tg:
                got: list[bytes | None] = []

                async def read() -> None:
                    got.append(await feed.read())

                tg.start_soon(read)
                await anyio.wait_all_tasks_blocked()
                assert feed._waiter is not None  # the read waits
                feed._deadline = 0.0
                feed._check()  # the timer fires...
                feed.data_received(b"c")  # ...as data arrives, in the same loop turn
            assert got == [b"c"]
            with pytest.raises(httpx.ReadTimeout):
                await feed.read()  # silence again
    finally:
        await feed.finish()
        writer.close()
        theirs.close()
