"""SSEServer's faults in real test suites: a fault called before a client
connects arms the next connection (never a no-op), CRLF events for the "crlf"
cut, and a history read through a cursor (no copy per connection)."""

from __future__ import annotations

import pytest

from eventsource import EventSource, ServerSentEvent
from eventsource.testing import SSEServer

from .test_testing_server import consume_within, run_while

pytestmark = pytest.mark.anyio

E = ServerSentEvent


# --- faults before a client connects -------------------------------------------------


async def test_drop_before_a_client_connects_arms_the_next_connection(mode: str) -> None:
    async with SSEServer() as server:
        server.send("a", id="1")
        server.drop()  # no client yet: the next connection gets "a", then the drop
        server.send("b", id="2")
        source = EventSource(server.url, retry=0.001)
        outcome = await consume_within(source, mode, limit=2)
    assert outcome.events == [E(data="a", id="1"), E(data="b", id="2")]
    first, second = server.connections
    assert first.events_sent == 1 and first.closed and not first.complete
    assert [r.last_event_id for r in server.requests] == [None, "1"]


async def test_faults_before_a_client_apply_to_successive_connections(mode: str) -> None:
    async with SSEServer() as server:
        server.send("a", id="1")
        server.drop()
        server.send("b", id="2")
        server.end()  # the second connection ends normally after "b"
        server.send("c", id="3")
        source = EventSource(server.url, retry=0.001)
        outcome = await consume_within(source, mode, limit=3)
    assert [e.data for e in outcome.events] == ["a", "b", "c"]
    first, second, third = server.connections
    assert (first.events_sent, first.complete) == (1, False)
    assert (second.events_sent, second.complete) == (1, True)
    assert [r.last_event_id for r in server.requests] == [None, "1", "2"]


async def test_stall_before_a_client_connects_arms_the_next_connection(mode: str) -> None:
    async with SSEServer() as server:
        server.send("a", id="1")
        server.stall()
        server.send("b", id="2")  # held back by the stall on the first connection
        source = EventSource(server.url, retry=0.001, read_timeout=30)

        async def script() -> None:
            first = await server.await_for_connections(1)
            await server.await_until(lambda: first.events_sent == 1)
            assert not first.closed
            server.drop()  # ends the stall; the client resumes and gets "b"
            await server.await_for_connections(2)

        outcome = await run_while(source, mode, script, limit=2)
    assert [e.data for e in outcome.events] == ["a", "b"]
    assert server.connections[0].events_sent == 1


async def test_drop_with_a_connection_open_does_not_arm_the_next(anyio_backend: str) -> None:
    async with SSEServer([{"data": "a", "id": "1"}]) as server:
        source = EventSource(server.url, retry=0.001)

        async def script() -> None:
            first = await server.await_for_connections(1)
            await server.await_until(lambda: first.events_sent == 1)
            server.drop()
            server.send("b", id="2")

        outcome = await run_while(source, "async", script, limit=2)
    assert [e.data for e in outcome.events] == ["a", "b"]
    assert server.connections[1].events_sent == 1  # not dropped again


# --- line endings and the "crlf" cut -------------------------------------------------


async def test_crlf_events_can_be_cut_between_cr_and_lf(mode: str) -> None:
    async with SSEServer(line_ending="\r\n") as server:
        for i in range(1, 4):
            server.send({"n": i}, event="chunk", id=str(i))
        server.comment("hi")
        server.drop_mid_event(1, at="crlf")
        assert all(b"\r\n" in block and b"\n\n" not in block for block in server.history)
        source = EventSource(server.url, retry=0.001)
        outcome = await consume_within(source, mode, limit=3)
    assert [e.json() for e in outcome.events] == [{"n": 1}, {"n": 2}, {"n": 3}]
    first = server.connections[0]
    block = server.history[0]
    assert first.bytes_sent == len(block) + block.index(b"\r\n") + 1  # CR sent, LF not
    assert [r.last_event_id for r in server.requests] == [None, "1"]


async def test_line_ending_per_send(anyio_backend: str) -> None:
    async with SSEServer() as server:
        server.send("a", id="1")
        server.send("b\nc", id="2", line_ending="\r\n")
        server.send("d", id="3", line_ending="\r")
        assert server.history == [
            b"id: 1\ndata: a\n\n",
            b"id: 2\r\ndata: b\r\ndata: c\r\n\r\n",
            b"id: 3\rdata: d\r\r",
        ]
        server.drop_mid_event(1, at="crlf")  # allowed: an event has a CRLF now
        source = EventSource(server.url, retry=0.001)
        outcome = await consume_within(source, "async", limit=3)
    assert [e.data for e in outcome.events] == ["a", "b\nc", "d"]
    with pytest.raises(ValueError, match="line_ending"):
        SSEServer(line_ending="\n\r")  # type: ignore[arg-type]


async def test_a_crlf_cut_on_lf_events_fails_at_the_call(anyio_backend: str) -> None:
    async with SSEServer() as server:
        server.send("a", id="1")
        server.send("b", id="2")
        with pytest.raises(ValueError, match=r"no event has a CRLF.*line_ending='\\r\\n'"):
            server.drop_mid_event(1, at="crlf")
        # nothing was armed: the stream is whole, and stopping the server is clean
        source = EventSource(server.url, retry=0.001)
        outcome = await consume_within(source, "async", limit=2)
    assert [e.data for e in outcome.events] == ["a", "b"]
    assert len(server.connections) == 1


# --- the history through a cursor ----------------------------------------------------


async def test_a_connection_reads_the_history_through_a_cursor(mode: str) -> None:
    events = [{"data": str(i), "id": str(i)} for i in range(1, 10_001)]
    async with SSEServer(events) as server:
        server.hold()  # look at the request's state before it is answered
        source = EventSource(server.url, retry=0.001, last_event_id="9995")

        async def script() -> None:
            conn = await server.await_for_connections(1)
            # Nothing copied: the outbox is empty, the cursor is at the resume point.
            assert len(conn._outbox) == 0 and conn._cursor == 9_995
            assert conn._replay_end == 10_000
            server.send("10001", id="10001")  # queued after the history
            server.release()

        outcome = await run_while(source, mode, script, limit=6)
    assert [e.id for e in outcome.events] == [str(i) for i in range(9_996, 10_002)]
