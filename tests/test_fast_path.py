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


def direct(mode: str) -> str:
    return "_SyncDirect" if mode == "sync" else "_AsyncDirect"


def public(mode: str) -> str:
    return "_SyncChunks" if mode == "sync" else "_AsyncChunks"


@pytest.mark.parametrize("framing", FRAMINGS)
async def test_taken_in_every_framing_with_every_event(
    mode: str, framing: Any, bodies: list[str]
) -> None:
    async with SSEServer(framing=framing) as server:
        for i in range(1, 301):
            server.send({"n": i, "text": "é" * (i % 7)}, event="chunk", id=str(i))
        server.end_after(300)
        outcome = await consume(EventSource(server.url, reconnect=False), mode)
    assert [e.id for e in outcome.events] == [str(i) for i in range(1, 301)]
    assert outcome.events[6].json() == {"n": 7, "text": "é" * 0}
    assert outcome.error is None and bodies == [direct(mode)]


@pytest.mark.parametrize("framing", ["chunked", "content-length"])
async def test_a_drop_mid_event_resumes_on_the_fast_path(
    mode: str, framing: Any, bodies: list[str]
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
    assert resumed_from == "2" and bodies == [direct(mode)] * 2
    assert len(errors) == 1 and isinstance(errors[0], ConnectionLostError)


async def test_a_broken_chunk_header_is_a_drop_that_resumes(mode: str, bodies: list[str]) -> None:
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
    assert bodies[0] == direct(mode)


async def test_a_compressed_body_takes_the_public_path(mode: str, bodies: list[str]) -> None:
    body = gzip.compress(b"id: 1\ndata: zipped\n\n")
    async with SSEServer() as server:
        server.respond_with(
            200, {"Content-Type": "text/event-stream", "Content-Encoding": "gzip"}, body
        )
        server.send("plain", id="2")
        outcome = await consume(EventSource(server.url, min_retry_delay=0.01), mode, limit=2)
    assert [e.data for e in outcome.events] == ["zipped", "plain"]
    assert bodies == [public(mode), direct(mode)]


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
    assert ended and elapsed < 0.5 and got == ["a"] and bodies == ["_SyncDirect"]
