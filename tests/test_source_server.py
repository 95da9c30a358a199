"""EventSource against a real HTTP server on 127.0.0.1 (the testing toolkit's
SSEServer): drops, resumes, stalls, and the server seeing the client's close;
async (asyncio, trio) and sync, on the source's own client on httpx and on
httpx2 (``stack``)."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import anyio
import anyio.to_thread
import pytest

from eventsource import ConnectionLostError, EventSource, ReadTimeoutError, ServerSentEvent
from eventsource.testing import SSEServer

from .conftest import Recorder, consume, http_of

pytestmark = pytest.mark.anyio

E = ServerSentEvent
HISTORY = [{"data": {"n": i}, "event": "chunk", "id": str(i)} for i in range(1, 31)]


async def test_drop_in_the_middle_of_events_loses_and_repeats_nothing(
    mode: str, stack: str
) -> None:
    recorder = Recorder()
    async with SSEServer(HISTORY) as server:
        # Three connections hang up inside their fourth event: inside "event:",
        # inside "data:", and just before the blank line.
        for cut in (5, -5, -1):
            server.drop_mid_event(3, at=cut)
        source = EventSource(server.url, http=stack, retry=0.001, **recorder.kwargs())
        outcome = await consume(source, mode, limit=30)
    assert [e.id for e in outcome.events] == [str(i) for i in range(1, 31)]
    assert [e.json()["n"] for e in outcome.events] == list(range(1, 31))
    assert [r.last_event_id for r in server.requests] == [None, "3", "6", "9"]
    assert recorder.kinds().count("error") == 3
    assert recorder.kinds().count("open") == 4


async def test_the_same_sequence_in_every_mode(mode: str, stack: str) -> None:
    """Sync and async give identical events and state transitions."""
    recorder = Recorder()
    async with SSEServer(HISTORY) as server:
        server.drop_mid_event(3, at=12)
        source = EventSource(server.url, http=stack, retry=0.001, **recorder.kwargs())
        recorder.source = source
        outcome = await consume(source, mode, limit=5)
    assert outcome.events == [E(type="chunk", data=f'{{"n":{i}}}', id=str(i)) for i in range(1, 6)]
    assert recorder.log == [
        ("open", "OPEN"),
        ("message", '{"n":1}'),
        ("message", '{"n":2}'),
        ("message", '{"n":3}'),
        ("error", "ConnectionLostError"),
        ("open", "OPEN"),
        ("message", '{"n":4}'),
        ("message", '{"n":5}'),
        ("close", "CLOSED"),
    ]


async def test_a_stalled_stream_is_dropped_after_read_timeout(mode: str, stack: str) -> None:
    errors: list[Any] = []
    async with SSEServer([{"data": "before", "id": "1"}, {"data": "after", "id": "2"}]) as server:
        server.stall_after(1)  # the first connection goes silent, its socket open
        source = EventSource(
            server.url, http=stack, retry=0.001, read_timeout=0.3, on_error=errors.append
        )
        outcome = await consume(source, mode, limit=2)
    assert [e.data for e in outcome.events] == ["before", "after"]
    assert len(errors) == 1 and isinstance(errors[0], ReadTimeoutError)
    assert server.requests[1].last_event_id == "1"


async def test_heartbeats_keep_a_slow_stream_alive(mode: str, stack: str) -> None:
    async with SSEServer(replay=False) as server:
        # 0.25 s without a byte would drop it; the 0.1 s heartbeats keep it open.
        source = EventSource(server.url, http=stack, read_timeout=0.25, reconnect=False)
        async with anyio.create_task_group() as tg:

            async def slow_server() -> None:
                await server.await_for_connections(1)
                for _ in range(4):
                    server.comment("heartbeat")
                    await anyio.sleep(0.1)  # the scenario: a server that is slow
                server.send("done")
                server.drop()

            tg.start_soon(slow_server)
            outcome = await consume(source, mode)
    assert [e.data for e in outcome.events] == ["done"]
    assert len(server.requests) == 1


async def test_server_sees_the_close_after_break(mode: str, stack: str) -> None:
    closes: list[bool] = []
    async with SSEServer([{"data": "first", "id": "1"}]) as server:
        source = EventSource(server.url, http=stack, on_close=lambda: closes.append(True))
        outcome = await consume(source, mode, limit=1)
        assert outcome.events == [E(data="first", id="1")]
        await server.await_until(lambda: server.connections[0].closed_by_client)
    assert closes == [True]


async def test_a_dropped_read_reports_httpx_error_with_its_request(mode: str, stack: str) -> None:
    errors: list[Any] = []
    async with SSEServer(HISTORY[:3]) as server:
        # The first answer promises more body than it sends, then hangs up.
        first = b'event: chunk\nid: 1\ndata: {"n": 1}\n\n'
        headers = {"Content-Type": "text/event-stream", "Content-Length": "1000"}
        server.respond_with(200, headers, first)
        url = server.url
        source = EventSource(url, http=stack, retry=0.001, on_error=errors.append)
        outcome = await consume(source, mode, limit=3)
    assert [e.id for e in outcome.events] == ["1", "2", "3"]
    assert isinstance(errors[0], ConnectionLostError)
    cause = errors[0].__cause__
    assert isinstance(cause, http_of(stack).HTTPError)
    assert cause.request.url == url


def test_uvloop_close_and_restart_end_a_waiting_read(stack: str) -> None:
    """uvloop wraps its sockets in objects that refuse shutdown(): close() and
    restart() must still end a read that waits for bytes, at once."""
    uvloop = pytest.importorskip("uvloop")

    async def main(server: SSEServer) -> list[str]:
        loop = asyncio.get_running_loop()
        received: list[str] = []
        opens: list[bool] = []

        def on_open() -> None:  # the second open (after the restart): close soon
            opens.append(True)
            if len(opens) == 2:
                loop.call_later(0.05, source.close)

        # retry=60: only an interrupted read lets the restart reconnect in time.
        source = EventSource(server.url, http=stack, retry=60.0, on_open=on_open)
        async with source:
            async for event in source:
                received.append(event.data)
                loop.call_later(0.05, source.restart)  # while the next read waits
        return received

    with SSEServer([{"data": "first", "id": "1"}]) as server:
        loop = uvloop.new_event_loop()
        try:
            started = time.monotonic()
            received = loop.run_until_complete(asyncio.wait_for(main(server), 10))
            assert time.monotonic() - started < 5
        finally:
            loop.close()
        assert received == ["first"]
        server.wait_until(lambda: all(c.closed_by_client for c in server.connections))
        assert len(server.connections) == 2


async def test_async_close_from_another_task_while_reading(anyio_backend: str, stack: str) -> None:
    async with SSEServer([{"data": "first", "id": "1"}]) as server:
        source = EventSource(server.url, http=stack)
        received: list[ServerSentEvent] = []
        async with anyio.create_task_group() as tg:

            async def reader() -> None:
                async for event in source:
                    received.append(event)
                    tg.start_soon(source.aclose)

            tg.start_soon(reader)
        assert received == [E(data="first", id="1")]
        await server.await_until(lambda: server.connections[0].closed_by_client)


async def test_async_close_from_another_thread_while_reading(
    anyio_backend: str, stack: str
) -> None:
    async with SSEServer([{"data": "first", "id": "1"}]) as server:
        closed = anyio.Event()
        source = EventSource(server.url, http=stack, on_close=closed.set)
        async with source:
            async for event in source:
                assert event.data == "first"
                threading.Timer(0.05, source.close).start()  # while the next read waits
        await closed.wait()
        await server.await_until(lambda: server.connections[0].closed_by_client)


async def test_cancellation_closes_the_connection(anyio_backend: str, stack: str) -> None:
    closes: list[bool] = []
    async with SSEServer([{"data": "first", "id": "1"}]) as server:
        source = EventSource(server.url, http=stack, on_close=lambda: closes.append(True))
        with anyio.move_on_after(0.3):
            async with source:
                async for _ in source:
                    pass  # the second read never completes: cancelled
        assert closes == [True]
        await server.await_until(lambda: server.connections[0].closed_by_client)


def test_sync_close_from_another_thread_while_blocked_reading(stack: str) -> None:
    with SSEServer([{"data": "first", "id": "1"}]) as server:
        source = EventSource(server.url, http=stack)
        done = threading.Event()
        first = threading.Event()
        received: list[ServerSentEvent] = []

        def run() -> None:
            for event in source:
                received.append(event)
                first.set()
            done.set()

        thread = threading.Thread(target=run)
        thread.start()
        assert first.wait(5)  # then the reader blocks on the next read
        source.close()
        assert done.wait(5), "close() from another thread did not end the blocked read"
        server.wait_until(lambda: server.connections[0].closed_by_client)
        thread.join(5)
    assert received == [E(data="first", id="1")]
