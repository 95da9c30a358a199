"""The fast body read (eventsource/_httpx.py): taken on httpx's own HTTP/1.1
connections in every framing, and every other case falls back to httpx's
public stream, never to an error. A silent fallback would only cost speed, so
these tests look at which body a source opened."""

from __future__ import annotations

import collections
import contextlib
import gzip
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import httpx
import pytest

import eventsource._io as io_module
from eventsource import ConnectionLostError, EventSource, ServerSentEvent
from eventsource.testing import ASGIStreamTransport, SSEServer

from ._servers import serving
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


def direct(mode: str, backend: str) -> str:
    """The fast read's body (straight from a stream of eventsource's backend)."""
    return "SyncFast" if mode == "sync" else "AsyncFast"


def public(mode: str) -> str:
    """httpx's public stream."""
    return "SyncPublic" if mode == "sync" else "AsyncPublic"


@pytest.fixture(scope="module")
def tls_contexts() -> tuple[Any, Any]:
    """A server context with a certificate for 127.0.0.1 from a test CA, and a
    client context that trusts that CA."""
    import ssl

    import trustme

    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    return server_context, client_context


@contextlib.asynccontextmanager
async def _feed_on_a_socketpair(
    chunked: bool, read_timeout: float | None
) -> AsyncIterator[tuple[Any, socket.socket]]:
    """An asyncio feed over one end of a socketpair, and the other end."""
    import asyncio

    from eventsource._chunked import BodyFraming
    from eventsource._direct import _AsyncioFeed

    ours, theirs = socket.socketpair()
    _reader, writer = await asyncio.open_connection(sock=ours)
    transport = writer.transport
    request = httpx.Request("GET", "http://sse.test/")
    feed = _AsyncioFeed(
        transport,
        transport.get_protocol(),
        collections.deque(),
        b"",
        BodyFraming(chunked, None),
        request,
        read_timeout,
    )
    try:
        yield feed, theirs
    finally:
        await feed.finish()
        writer.close()
        theirs.close()


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

        errors: list[Exception] = []
        async with serving(handle) as raw_url:
            source = EventSource(raw_url, min_retry_delay=0.01, retry=0.01, on_error=errors.append)
            outcome = await consume(source, mode, limit=2)
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

    async with serving(handle) as url:
        with anyio.fail_after(5):
            outcome = await consume(EventSource(url, reconnect=False), mode)
    assert [e.data for e in outcome.events] == ["a", "b"] and outcome.error is None
    assert bodies == [direct(mode, anyio_backend)]


@pytest.mark.parametrize(
    ("busy", "gap"),
    [
        (1.0, 0.4),  # busy for longer than read_timeout: the timer comes due meanwhile
        (0.4, 0.6),  # the next wait outlasts the last wait's deadline, not its own
    ],
    ids=["busy-past-the-timeout", "wait-past-the-last-deadline"],
)
async def test_a_slow_consumer_is_not_timed_out(
    anyio_backend: str, busy: float, gap: float, bodies: list[str]
) -> None:
    # read_timeout (0.8 s) counts while a read waits, from the start of that
    # wait: not while the caller is busy with the last event, and not from an
    # earlier wait (the asyncio timer and the trio watchdog run once per period).
    async with SSEServer(replay=False) as server:
        source = EventSource(server.url, read_timeout=0.8)
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
                await anyio.sleep(gap)  # (a margin of 0.2 s or more from every deadline)
                server.send("b")
        assert seen == ["a", "b"] and source.error is None
        assert len(server.requests) == 1
    assert bodies == [FASTEST[anyio_backend]]


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
    async with serving(handle) as url:
        with anyio.fail_after(5):
            events = await EventSource(url, reconnect=False).acollect()
    assert [e.data for e in events] == ["queued", "after"] and bodies == ["_AsyncioFeed"]


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_the_asyncio_feed_pauses_reading_when_nobody_reads(
    bodies: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from eventsource import _direct

    held: list[int] = []
    original = _direct._AsyncioFeed.received

    def spy(self: Any, data: bytes) -> None:
        original(self, data)
        held.append(self._size)

    monkeypatch.setattr(_direct._AsyncioFeed, "received", spy)
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


async def test_tls_is_read_fast_too(
    mode: str, anyio_backend: str, bodies: list[str], tls_contexts: Any
) -> None:
    # Sync reads the SSLSocket itself; async reads httpcore's TLS stream (the
    # TLS layer is anyio's or trio's, above the socket).
    server_context, client_context = tls_contexts
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


@pytest.mark.parametrize("timeout", [0.15, None])
def test_the_sync_socket_reader_times_out_each_silent_wait(timeout: float | None) -> None:
    # On Linux a plain socket blocks in the kernel with SO_RCVTIMEO as its
    # timeout (one system call a read, no poll first); elsewhere it keeps
    # Python's timeout. Either way each silent wait times out, and only those.
    import struct
    import sys
    import time

    from eventsource._chunked import BodyFraming
    from eventsource._direct import _SyncSocket

    ours, theirs = socket.socketpair()
    request = httpx.Request("GET", "http://sse.test/")
    with ours, theirs:
        body = _SyncSocket(ours, b"", BodyFraming(False, None), request, timeout)
        if sys.platform.startswith("linux"):
            assert ours.gettimeout() is None
            seconds, micros = struct.unpack(
                "@ll", ours.getsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, 16)
            )
            # The kernel keeps it in clock ticks (a few ms).
            assert seconds + micros / 1e6 == pytest.approx(timeout or 0.0, abs=0.02)
        else:
            assert ours.gettimeout() == timeout
        theirs.sendall(b"a")
        assert body.read() == b"a"
        if timeout is None:
            theirs.sendall(b"b")
            theirs.shutdown(socket.SHUT_WR)
            assert body.read() == b"b"
            assert body.read() is None  # the connection's end ends the body
            return
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            body.read()  # silence
        assert time.monotonic() - started >= timeout * 0.9
        theirs.sendall(b"b")
        assert body.read() == b"b"
        with pytest.raises(httpx.ReadTimeout):
            body.read()  # silence again


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
    async with _feed_on_a_socketpair(chunked=False, read_timeout=0.1) as (feed, theirs):
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
                feed.check()  # the timer fires...
                feed.received(b"c")  # ...as data arrives, in the same loop turn
            assert got == [b"c"]
            with pytest.raises(httpx.ReadTimeout):
                await feed.read()  # silence again


async def _pump(source: anyio.abc.ByteStream, sink: anyio.abc.ByteStream) -> None:
    try:
        async for data in source:
            await sink.send(data)
    except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
        pass
    finally:
        await sink.aclose()


async def test_https_through_an_https_proxy_reads_the_inner_tls(
    mode: str, anyio_backend: str, bodies: list[str], tls_contexts: Any
) -> None:
    # The socket under TLS inside a proxy's TLS carries the outer layer:
    # reading it directly would hand the parser the inner TLS records.
    from anyio.streams.tls import TLSListener

    server_context, client_context = tls_contexts

    async def target(stream: anyio.abc.ByteStream) -> None:
        async with stream:
            await stream.receive()
            await stream.send(HEAD + b"transfer-encoding: chunked\r\n\r\n")
            await stream.send(b"b\r\ndata: one\n\n\r\n")
            await anyio.sleep(0.1)  # later reads come through the tunnel on their own
            await stream.send(b"b\r\ndata: two\n\n\r\n")
            await stream.send(b"d\r\ndata: three\n\n\r\n0\r\n\r\n")
            await anyio.sleep(5)

    async def proxy(stream: anyio.abc.ByteStream) -> None:
        head = await stream.receive()
        host, port = head.split()[1].decode().rsplit(":", 1)
        upstream = await anyio.connect_tcp(host, int(port))
        await stream.send(b"HTTP/1.1 200 Connection established\r\n\r\n")
        async with anyio.create_task_group() as tg:
            tg.start_soon(_pump, stream, upstream)
            tg.start_soon(_pump, upstream, stream)

    listeners = []
    for handler in (target, proxy):
        tcp = await anyio.create_tcp_listener(local_host="127.0.0.1")
        listeners.append((TLSListener(tcp, server_context, standard_compatible=False), handler))
    port_of = [lst.listener.extra(anyio.abc.SocketAttribute.local_port) for lst, _ in listeners]
    async with anyio.create_task_group() as tg:
        for listener, handler in listeners:
            tg.start_soon(listener.serve, handler)
        proxy_url = httpx.Proxy(f"https://127.0.0.1:{port_of[1]}", ssl_context=client_context)
        client_class = httpx.Client if mode == "sync" else httpx.AsyncClient
        client = client_class(proxy=proxy_url, verify=client_context)
        source = EventSource(f"https://127.0.0.1:{port_of[0]}/", client=client, reconnect=False)
        outcome = await consume(source, mode)
        if isinstance(client, httpx.AsyncClient):
            await client.aclose()
        else:
            client.close()
        tg.cancel_scope.cancel()
    for listener, _handler in listeners:
        await listener.aclose()
    assert [e.data for e in outcome.events] == ["one", "two", "three"]
    assert outcome.error is None
    assert bodies == ["_SyncStream" if mode == "sync" else "_AsyncStream"]


@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_a_source_dropped_unclosed_frees_its_connection(
    anyio_backend: str, bodies: list[str]
) -> None:
    import gc

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

    async with serving(handle) as url:

        async def drop() -> None:
            source = EventSource(url)
            async for _event in source:
                break  # and never closed

        await drop()
        with anyio.fail_after(5):
            while not freed.is_set():
                gc.collect()
                with anyio.move_on_after(0.1):
                    await freed.wait()
    assert bodies == [FASTEST[anyio_backend]]


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_the_asyncio_relay_hands_on_bytes_read_into_its_buffer() -> None:
    # The transport reads into the relay's buffer (a BufferedProtocol: no
    # 256 KiB allocation a read), which the next read reuses: the feed must
    # hold bytes of its own (and bytes, never a bytearray: the chunk decoder
    # looks sizes up in a dict).
    import asyncio

    async with _feed_on_a_socketpair(chunked=True, read_timeout=None) as (feed, theirs):
        relay = feed._transport.get_protocol()
        assert isinstance(relay, asyncio.BufferedProtocol)
        for text in (b"data: one\n\n", b"data: two\n\n"):  # two reads into one buffer
            chunk = b"b\r\n" + text + b"\r\n"
            buffer = relay.get_buffer(-1)
            buffer[: len(chunk)] = chunk
            relay.buffer_updated(len(chunk))
        assert await feed.read() == b"data: one\n\ndata: two\n\n"
        theirs.sendall(b"d\r\ndata: three\n\n\r\n")  # and a real read, from the socket
        assert await feed.read() == b"data: three\n\n"


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_an_eof_anyio_saw_before_the_takeover_ends_the_stream(bodies: list[str]) -> None:
    # Force what a fast server can cause: anyio's protocol has the whole body
    # and the server's FIN before the fast path takes the connection over.
    seen: list[bool] = []
    eof = anyio.Event()

    async def handle(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await stream.receive()
            await stream.send(HEAD + b"\r\nid: 1\ndata: a\n\nid: 2\ndata: b\n\n")
            await stream.send_eof()
            await anyio.sleep(5)  # half-closed: only the FIN, the socket stays

    async def read_to_the_eof(response: httpx.Response) -> None:
        inner = response.extensions["network_stream"]._stream
        protocol, transport = inner._protocol, inner._transport
        original = protocol.eof_received

        def eof_received() -> Any:
            seen.append(True)
            eof.set()
            return original()

        protocol.eof_received = eof_received
        transport.resume_reading()
        with anyio.fail_after(5):
            await eof.wait()
        transport.pause_reading()

    async with serving(handle) as url:
        client = httpx.AsyncClient(event_hooks={"response": [read_to_the_eof]})
        with anyio.fail_after(5):
            events = await EventSource(url, client=client, reconnect=False).acollect()
        await client.aclose()
    assert [e.data for e in events] == ["a", "b"] and seen == [True]
    assert bodies == ["_AsyncioFeed"]
