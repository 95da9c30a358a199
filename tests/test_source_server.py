"""EventSource against a real HTTP server on 127.0.0.1: drops, resumes,
stalls, and the server seeing the client's close; async (asyncio, trio) and sync."""

from __future__ import annotations

import threading
from typing import Any

import anyio
import anyio.to_thread
import pytest

from eventsource import EventSource, ReadTimeoutError, ServerSentEvent, format_event

from .conftest import Recorder, consume
from .loopback import Connection, LoopbackServer

pytestmark = pytest.mark.anyio

E = ServerSentEvent
HISTORY = [format_event({"n": i}, event="chunk", id=str(i)) for i in range(1, 31)]


def resuming(drops: dict[int, int]) -> Any:
    """A server with events 1..30 that resumes after Last-Event-ID; on request
    number k it sends three events, then hangs up `drops[k]` bytes into the
    fourth (negative: counted from that event's end)."""

    def script(conn: Connection, index: int) -> None:
        start = int(conn.request.headers.get("last-event-id", "0"))
        conn.start()
        if index in drops:
            cut = drops[index] % len(HISTORY[start + 3])
            conn.send(b"".join(HISTORY[start : start + 3]) + HISTORY[start + 3][:cut])
            return  # closing the socket here: a drop in the middle of an event
        conn.send(b"".join(HISTORY[start:]))

    return script


async def test_drop_in_the_middle_of_events_loses_and_repeats_nothing(mode: str) -> None:
    recorder = Recorder()
    # Drops inside "event:", inside "data:", and just before the blank line.
    with LoopbackServer(resuming({0: 5, 1: -5, 2: -1})) as server:
        source = EventSource(server.url, retry=0.001, reconnect=True, **recorder.kwargs())
        outcome = await consume(source, mode, limit=30)
    assert [e.id for e in outcome.events] == [str(i) for i in range(1, 31)]
    assert [e.json()["n"] for e in outcome.events] == list(range(1, 31))
    ids_sent = [r.headers.get("last-event-id") for r in server.requests]
    assert ids_sent == [None, "3", "6", "9"]
    assert recorder.kinds().count("error") == 3
    assert recorder.kinds().count("open") == 4


async def test_the_same_sequence_in_every_mode(mode: str) -> None:
    """Sync and async give identical events and state transitions."""
    recorder = Recorder()
    with LoopbackServer(resuming({0: 12})) as server:
        source = EventSource(server.url, retry=0.001, **recorder.kwargs())
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


async def test_a_stalled_stream_is_dropped_after_read_timeout(mode: str) -> None:
    release = threading.Event()

    def script(conn: Connection, index: int) -> None:
        conn.start()
        if index == 0:
            conn.send(format_event("before", id="1"))
            release.wait(10)  # stall: the socket stays open, nothing is sent
        else:
            conn.send(format_event("after", id="2"))

    errors: list[Any] = []
    with LoopbackServer(script) as server:
        source = EventSource(server.url, retry=0.001, read_timeout=0.3, on_error=errors.append)
        outcome = await consume(source, mode, limit=2)
        release.set()
    assert [e.data for e in outcome.events] == ["before", "after"]
    assert len(errors) == 1 and isinstance(errors[0], ReadTimeoutError)
    assert server.requests[1].headers["last-event-id"] == "1"


async def test_heartbeats_keep_a_slow_stream_alive(mode: str) -> None:
    def script(conn: Connection, index: int) -> None:
        conn.start()
        for _ in range(4):
            conn.send(b": heartbeat\n")
            threading.Event().wait(0.1)
        conn.send(format_event("done"))

    with LoopbackServer(script) as server:
        # 0.25 s without a byte would drop it; the 0.1 s heartbeats keep it open.
        source = EventSource(server.url, read_timeout=0.25, reconnect=False)
        outcome = await consume(source, mode)
    assert [e.data for e in outcome.events] == ["done"]
    assert len(server.requests) == 1


def endless(conn: Connection, index: int) -> None:
    conn.start()
    conn.send(format_event("first", id="1"))
    conn.wait_for_client_close(10)


async def test_server_sees_the_close_after_break(mode: str) -> None:
    closes: list[bool] = []
    with LoopbackServer(endless) as server:
        source = EventSource(server.url, on_close=lambda: closes.append(True))
        outcome = await consume(source, mode, limit=1)
        assert outcome.events == [E(data="first", id="1")]
        assert await anyio.to_thread.run_sync(server.connections[0].closed_by_client.wait, 5)
    assert closes == [True]


async def test_async_close_from_another_task_while_reading(anyio_backend: str) -> None:
    with LoopbackServer(endless) as server:
        source = EventSource(server.url)
        received: list[ServerSentEvent] = []
        async with anyio.create_task_group() as tg:

            async def reader() -> None:
                async for event in source:
                    received.append(event)
                    tg.start_soon(source.aclose)

            tg.start_soon(reader)
        assert received == [E(data="first", id="1")]
        assert await anyio.to_thread.run_sync(server.connections[0].closed_by_client.wait, 5)


async def test_async_close_from_another_thread_while_reading(anyio_backend: str) -> None:
    with LoopbackServer(endless) as server:
        closed = anyio.Event()
        source = EventSource(server.url, on_close=closed.set)
        async with source:
            async for event in source:
                assert event.data == "first"
                threading.Timer(0.05, source.close).start()  # while the next read waits
        await closed.wait()
        assert await anyio.to_thread.run_sync(server.connections[0].closed_by_client.wait, 5)


async def test_cancellation_closes_the_connection(anyio_backend: str) -> None:
    closes: list[bool] = []
    with LoopbackServer(endless) as server:
        source = EventSource(server.url, on_close=lambda: closes.append(True))
        with anyio.move_on_after(0.3):
            async with source:
                async for _ in source:
                    pass  # the second read never completes: cancelled
        assert closes == [True]
        assert await anyio.to_thread.run_sync(server.connections[0].closed_by_client.wait, 5)


def test_sync_close_from_another_thread_while_blocked_reading() -> None:
    with LoopbackServer(endless) as server:
        source = EventSource(server.url)
        done = threading.Event()
        received: list[ServerSentEvent] = []

        def run() -> None:
            for event in source:
                received.append(event)
            done.set()

        thread = threading.Thread(target=run)
        thread.start()
        while not received:  # wait for the first event, then the reader blocks
            threading.Event().wait(0.01)
        source.close()
        assert done.wait(5), "close() from another thread did not end the blocked read"
        assert server.connections[0].closed_by_client.wait(5)
        thread.join(5)
    assert received == [E(data="first", id="1")]
