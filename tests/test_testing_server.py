"""SSEServer against EventSource: every fault, its effect on the client, and the
server's record; async (asyncio, trio) and sync."""

from __future__ import annotations

import gc
import os
import socket
import ssl
import threading
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import anyio
import httpx
import pytest
import trustme

from eventsource import (
    EventSource,
    ReadTimeoutError,
    ReadyState,
    ResponseError,
    RetriesExhaustedError,
    ServerSentEvent,
    format_event,
)
from eventsource.testing import EventLike
from eventsource.testing._http import Framing
from eventsource.testing._server import SSEServer

from .conftest import Outcome, consume

pytestmark = pytest.mark.anyio

E = ServerSentEvent

FRAMINGS = ["chunked", "close", "content-length"]
#: Every framing, for tests whose events are in the history when a request comes.
all_framings = pytest.mark.parametrize("framing", FRAMINGS)
#: The framings where events sent later reach a response already open
#: ("content-length" fixes its body when the response starts).
streaming_framings = pytest.mark.parametrize("framing", ["chunked", "close"])


def crlf_block(i: int) -> bytes:
    """Event i with CRLF line ends and multi-byte characters: every cut point."""
    return f"id: {i}\r\nevent: chunk\r\ndata: é{i}✓\r\n\r\n".encode()


def chunk(i: int) -> ServerSentEvent:
    return E(type="chunk", data=f"é{i}✓", id=str(i))


async def consume_within(
    source: EventSource, mode: str, limit: int | None = None, seconds: float = 10.0
) -> Outcome:
    """consume(), but a hang fails the test: after `seconds`, or if the caller
    is cancelled, the source is closed (thread-safe), which ends it in any mode."""
    timed_out = False

    async def watchdog() -> None:
        nonlocal timed_out
        try:
            await anyio.sleep(seconds)
            timed_out = True
        finally:
            source.close()

    async with anyio.create_task_group() as tg:
        tg.start_soon(watchdog)
        outcome = await consume(source, mode, limit=limit)
        tg.cancel_scope.cancel()
    assert not timed_out, f"the client did not finish within {seconds} s"
    return outcome


async def run_while(
    source: EventSource, mode: str, script: Callable[[], Awaitable[None]], limit: int | None
) -> Outcome:
    """Consume the source while `script` drives the server (within 10 s)."""
    result: list[Outcome] = []

    async def reader() -> None:
        result.append(await consume_within(source, mode, limit=limit))

    async with anyio.create_task_group() as tg:
        tg.start_soon(reader)
        with anyio.fail_after(10):
            await script()
    return result[0]


async def raw_get(port: int, target: str, until: Callable[[bytes], bool]) -> list[bytes]:
    """GET over a plain socket; the chunks received until `until(all bytes)` or EOF."""
    parts: list[bytes] = []
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        with anyio.fail_after(5):
            while not until(b"".join(parts)):
                try:
                    parts.append(await stream.receive())
                except anyio.EndOfStream:
                    break
    return parts


def dechunk(body: bytes) -> tuple[bytes, bool]:
    """A chunked body's data, and whether it ended with the last chunk."""
    data = b""
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            return data, rest == b"\r\n"
        data, body = data + rest[:size], rest[size + 2 :]
    return data, False


def body_of(framing: str, received: bytes) -> bytes:
    """The body data after the head, in any framing (chunks decoded)."""
    body = received.partition(b"\r\n\r\n")[2]
    return dechunk(body)[0] if framing == "chunked" else body


def open_fds() -> int:
    """How many file descriptors the process holds (-1 where /proc is missing)."""
    gc.collect()
    return len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else -1


# --- both ways to run it -------------------------------------------------------------


@all_framings
async def test_async_with_serves_sse_headers_and_history(
    anyio_backend: str, framing: Framing
) -> None:
    events: list[EventLike] = [{"data": "a", "id": "1"}, b"data: raw\n\n", "plain"]
    wire = b"id: 1\ndata: a\n\ndata: raw\n\ndata: plain\n\n"
    framing_header = {
        "chunked": [b"Transfer-Encoding: chunked"],
        "close": [b"Connection: close"],
        "content-length": [b"Content-Length: %d" % len(wire)],
    }[framing]
    async with SSEServer(events=events, framing=framing) as server:
        assert server.url.startswith("http://127.0.0.1:") and server.url.endswith("/stream")
        assert server.framing == framing
        parts = await raw_get(server.port, "/stream?q=1", lambda b: b"plain\n\n" in b)
        received = b"".join(parts)
        head = received.partition(b"\r\n\r\n")[0]
        assert head.split(b"\r\n") == [
            b"HTTP/1.1 200 OK",
            b"Content-Type: text/event-stream",
            b"Cache-Control: no-cache",
            b"X-Accel-Buffering: no",
            *framing_header,
        ]
        assert body_of(framing, received) == wire
        if framing == "chunked":  # one chunk per event
            assert received.partition(b"\r\n\r\n")[2] == (
                b"f\r\nid: 1\ndata: a\n\n\r\nb\r\ndata: raw\n\n\r\nd\r\ndata: plain\n\n\r\n"
            )
        conn = await server.await_for_connections(1)
        await server.await_until(lambda: conn.closed)
        assert conn.events_sent == 3 and conn.bytes_sent == len(wire)
        # A Content-Length body is complete once sent; a stream goes on until
        # the client hangs up.
        assert conn.complete is (framing == "content-length")
        assert conn.closed_by_client is (framing != "content-length")
        assert server.requests[0].path == "/stream?q=1"
    with pytest.raises(RuntimeError):
        server.url  # noqa: B018


def test_framing_is_checked() -> None:
    with pytest.raises(ValueError, match="framing must be one of chunked, close, content-length"):
        SSEServer(framing="gzip")  # type: ignore[arg-type]


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_sync_with_runs_in_a_thread_and_leaves_nothing_behind(backend: str) -> None:
    before = set(threading.enumerate())
    fds_before = open_fds()
    received: list[ServerSentEvent] = []
    with SSEServer(events=[{"data": "1", "id": "1"}], backend=backend) as server:
        port = server.port
        server.drop_after(1)
        # Control methods from the client's thread, inside a callback.
        source = EventSource(
            server.url,
            retry=0.001,
            on_message=lambda e: server.send("2", id="2") if e.id == "1" else None,
        )
        with source:
            for event in source:
                received.append(event)
                if len(received) == 2:
                    break
        first = server.wait_for_connections(2)
        server.wait_until(lambda: first.closed)
        assert first.closed_by_client
        assert [r.last_event_id for r in server.requests] == [None, "1"]
    assert received == [E(data="1", id="1"), E(data="2", id="2")]
    assert set(threading.enumerate()) - before == set()  # the server's thread is gone
    assert open_fds() == fds_before  # its loop, listener and connections are closed
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass  # nothing listens any more


async def test_stopping_closes_every_connection(anyio_backend: str) -> None:
    server = SSEServer(events=["hello"])
    await server.__aenter__()
    try:
        async with httpx.AsyncClient() as client:
            async with client.stream("GET", server.url) as response:
                chunks = response.aiter_raw()
                assert await chunks.__anext__() == b"data: hello\n\n"
                await server.__aexit__(None, None, None)
                rest = b""
                with anyio.fail_after(5):
                    try:
                        async for part in chunks:
                            rest += part
                    except httpx.HTTPError:
                        pass  # a reset is as good as an end
        assert rest == b""
    finally:
        if server._async_cm is not None:
            await server.__aexit__(None, None, None)
    (conn,) = server.connections
    assert conn.closed and not conn.closed_by_client


async def test_an_error_in_the_body_comes_out_unwrapped(anyio_backend: str) -> None:
    async with AsyncExitStack() as stack:
        with pytest.raises(KeyError):  # not an ExceptionGroup from the server's task group
            async with SSEServer(events=["x"]) as server:
                client = await stack.enter_async_context(
                    await anyio.connect_tcp("127.0.0.1", server.port)
                )
                await client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                await server.await_for_connections(1)
                raise KeyError("from the test")  # with a connection open
    assert server.connections[0].closed


async def test_waits_time_out_with_a_clear_error(anyio_backend: str) -> None:
    async with SSEServer() as server:
        with pytest.raises(TimeoutError, match="0 connection"):
            await server.await_for_connections(1, timeout=0.05)
        with pytest.raises(TimeoutError, match="still false"):
            await server.await_until(lambda: server.requests, timeout=0.05)
        with pytest.raises(RuntimeError, match="await server.await_until"):
            server.wait_until(lambda: True)  # would block the loop it waits on


def test_sync_wait_times_out() -> None:
    with SSEServer() as server, pytest.raises(TimeoutError, match="waiting for 2"):
        server.wait_for_connections(2, timeout=0.05)


# --- the record ------------------------------------------------------------------------


@all_framings
async def test_requests_are_recorded(mode: str, framing: Framing) -> None:
    async with SSEServer(framing=framing, events=[{"data": "x", "id": "42"}]) as server:
        source = EventSource(
            server.url,
            method="POST",
            json={"prompt": "hi"},
            params={"room": "7"},
            headers={"X-Token": "secret"},
            last_event_id="41",
            retry=0.001,
        )
        outcome = await consume_within(source, mode, limit=1)
        await server.await_until(lambda: server.connections[0].closed)
    assert outcome.events == [E(data="x", id="42")]
    (request,) = server.requests
    assert request.method == "POST"
    assert request.path == "/stream?room=7"
    assert request.headers["x-token"] == request.headers["X-TOKEN"] == "secret"
    assert request.headers["accept"] == "text/event-stream"
    assert request.body.replace(b" ", b"") == b'{"prompt":"hi"}'  # httpx's JSON spacing
    assert request.last_event_id == "41"
    # The client closed after `break`; a Content-Length body was whole by then.
    assert server.connections[0].closed_by_client is (framing != "content-length")


@streaming_framings
async def test_live_send_comment_raw_and_malformed_input(mode: str, framing: Framing) -> None:
    comments: list[str] = []
    async with SSEServer(
        framing=framing,
    ) as server:
        source = EventSource(server.url, retry=0.001, on_comment=comments.append)

        async def script() -> None:
            await server.await_for_connections(1)
            server.comment("heartbeat")
            server.send_raw(b"data: partial line without end")  # completed below
            server.send_raw(b"\ndata: \xff\n\nnot a field\n\n")
            server.send({"n": 1}, event="json", id="1", retry=5)

        outcome = await run_while(source, mode, script, limit=2)
    assert outcome.events == [
        E(data="partial line without end\n\ufffd"),  # "not a field" is ignored
        E(type="json", data='{"n":1}', id="1", retry=5),
    ]
    assert comments == ["heartbeat"]
    assert server.history == [format_event({"n": 1}, event="json", id="1", retry=5)]


# --- resume ------------------------------------------------------------------------------


@all_framings
async def test_resume_replays_after_last_event_id(mode: str, framing: Framing) -> None:
    async with SSEServer(framing=framing, events=[crlf_block(i) for i in range(1, 11)]) as server:
        server.drop_after(3)
        server.drop_after(3)
        source = EventSource(server.url, retry=0.001)
        outcome = await consume_within(source, mode, limit=10)
    assert outcome.events == [chunk(i) for i in range(1, 11)]
    assert [r.last_event_id for r in server.requests] == [None, "3", "6"]
    assert [c.events_sent for c in server.connections] == [3, 3, 4]


@streaming_framings
async def test_replay_false_sends_only_live_events_unless_resuming(
    anyio_backend: str, framing: Framing
) -> None:
    async with SSEServer(
        framing=framing, events=[{"data": "old", "id": "1"}], replay=False
    ) as server:

        async def script() -> None:
            first = await server.await_for_connections(1)
            server.send("new", id="2")
            await server.await_until(lambda: first.events_sent == 1)
            server.drop()
            await server.await_for_connections(2)
            server.send("newer", id="3")

        source = EventSource(server.url, retry=0.001)
        outcome = await run_while(source, "async", script, limit=2)
    assert outcome.events == [E(data="new", id="2"), E(data="newer", id="3")]
    assert [r.last_event_id for r in server.requests] == [None, "2"]


# --- faults ------------------------------------------------------------------------------


@streaming_framings
async def test_drop_now_then_reconnect_with_last_event_id(mode: str, framing: Framing) -> None:
    errors: list[Any] = []
    async with SSEServer(
        framing=framing,
    ) as server:
        source = EventSource(server.url, retry=0.001, on_error=errors.append)

        async def script() -> None:
            await server.await_for_connections(1)
            server.send("one", id="1")
            server.send("two", id="2")
            server.drop()  # after the two events queued before it
            await server.await_for_connections(2)
            server.send("three", id="3")

        outcome = await run_while(source, mode, script, limit=3)
    assert [e.data for e in outcome.events] == ["one", "two", "three"]
    assert [r.last_event_id for r in server.requests] == [None, "2"]
    assert len(errors) == 1
    assert not server.connections[0].closed_by_client


@all_framings
@pytest.mark.parametrize("at", [5, -1, -2, -4, "line", "utf8", "crlf"])
async def test_drop_mid_event_discards_the_partial_event(
    mode: str, at: Any, framing: Framing
) -> None:
    blocks = [crlf_block(i) for i in range(1, 6)]
    async with SSEServer(framing=framing, events=blocks) as server:
        server.drop_mid_event(2, at=at)
        source = EventSource(server.url, retry=0.001)
        outcome = await consume_within(source, mode, limit=5)
    assert outcome.events == [chunk(i) for i in range(1, 6)]  # nothing lost or repeated
    # -1 leaves the block's last CR: a complete blank line, so event 3 was
    # dispatched before the drop (a CR alone ends a line) and resumes after it.
    resumed_after = "3" if at == -1 else "2"
    assert [r.last_event_id for r in server.requests] == [None, resumed_after]
    first = server.connections[0]
    assert first.events_sent == 2
    cut = first.bytes_sent - len(blocks[0]) - len(blocks[1])
    assert 0 < cut < len(blocks[2])
    third = blocks[2]
    if at == "utf8":
        assert third[cut - 1] >= 0xC0  # the lead byte went, its continuation did not
    elif at == "crlf":
        assert third[cut - 1 : cut + 1] == b"\r\n"
    elif at == "line":
        assert third[cut - 1 : cut + 1].strip(b"\r\n") == third[cut - 1 : cut + 1]
    else:
        assert cut == at % len(third)


async def test_drop_mid_event_without_that_cut_point_is_reported(anyio_backend: str) -> None:
    # An LF-only history is refused at the call (tests/test_testing_faults.py);
    # a history with some CRLF block but not in the block cut: at teardown.
    blocks = [b"id: 1\r\ndata: a\r\n\r\n", {"data": "b", "id": "2"}]
    with pytest.raises(ValueError, match="no 'crlf' cut point"):
        async with SSEServer(events=blocks) as server:
            server.drop_mid_event(1, at="crlf")
            source = EventSource(server.url, retry=0.001)
            outcome = await consume_within(source, "async", limit=2)
            assert [e.data for e in outcome.events] == ["a", "b"]
    with pytest.raises(ValueError):
        SSEServer().drop_mid_event(1, at="middle")  # type: ignore[arg-type]


@all_framings
async def test_stall_after_n_events_times_the_client_out(mode: str, framing: Framing) -> None:
    errors: list[Any] = []
    async with SSEServer(framing=framing, events=[crlf_block(i) for i in range(1, 4)]) as server:
        server.stall_after(1)
        source = EventSource(server.url, retry=0.001, read_timeout=0.2, on_error=errors.append)
        outcome = await consume_within(source, mode, limit=3)
        first = server.connections[0]
        await server.await_until(lambda: first.closed)
    assert outcome.events == [chunk(i) for i in range(1, 4)]
    assert len(errors) == 1 and isinstance(errors[0], ReadTimeoutError)
    assert [r.last_event_id for r in server.requests] == [None, "1"]
    assert first.closed_by_client and first.events_sent == 1


@streaming_framings
async def test_stall_now_then_drop(mode: str, framing: Framing) -> None:
    async with SSEServer(
        framing=framing,
    ) as server:
        # A long read timeout: only the server's drop() can end the stall.
        source = EventSource(server.url, retry=0.001, read_timeout=30)

        async def script() -> None:
            first = await server.await_for_connections(1)
            server.send("1", id="1")
            server.stall()
            server.send("2", id="2")  # held back by the stall, kept in the history
            await server.await_until(lambda: first.events_sent == 1)
            assert not first.closed
            server.drop()
            await server.await_for_connections(2)

        outcome = await run_while(source, mode, script, limit=2)
    assert [e.data for e in outcome.events] == ["1", "2"]
    assert [r.last_event_id for r in server.requests] == [None, "1"]
    assert server.connections[0].events_sent == 1


@all_framings
async def test_503_with_retry_after_backs_off_then_succeeds(mode: str, framing: Framing) -> None:
    errors: list[Any] = []
    async with SSEServer(framing=framing, events=[{"data": "ok", "id": "1"}]) as server:
        server.respond_with(503, {"Retry-After": "0"}, b"busy", times=2)
        source = EventSource(server.url, retry=0.001, on_error=errors.append)
        outcome = await consume_within(source, mode, limit=1)
    assert outcome.error is None and outcome.events == [E(data="ok", id="1")]
    assert [c.status for c in server.connections] == [503, 503, 200]
    assert [type(e) for e in errors] == [ResponseError, ResponseError]
    assert [e.status_code for e in errors] == [503, 503]


async def test_endless_503_exhausts_max_retries(mode: str) -> None:
    async with SSEServer() as server:
        server.respond_with(503, times=None)
        # min_retry_delay: not the backoff floor's test (its 1 s default made this 4-5 s)
        source = EventSource(server.url, retry=0.001, min_retry_delay=0.001, max_retries=3)
        outcome = await consume_within(source, mode)
        server.clear_faults()
    assert isinstance(outcome.error, RetriesExhaustedError)
    assert len(server.requests) == 4  # the first attempt and 3 retries


async def test_retry_after_and_the_retry_field_set_the_wait(anyio_backend: str) -> None:
    events = [{"data": "a", "id": "1", "retry": 150}, {"data": "b", "id": "2"}]
    async with SSEServer(events=events) as server:
        server.drop_after(1)
        server.respond_with(503, {"Retry-After": "1"})
        source = EventSource(server.url, retry=0.001)
        outcome = await consume_within(source, "async", limit=2)
    assert [e.data for e in outcome.events] == ["a", "b"]
    # respond_with() takes the next request: the first one.
    busy, first, last = server.connections
    assert [c.status for c in server.connections] == [503, 200, 200]
    assert [r.last_event_id for r in server.requests] == [None, None, "1"]
    assert first.opened_at - busy.opened_at >= 0.95  # Retry-After: 1 s, over the backoff
    assert first.closed_at is not None
    assert last.opened_at - first.closed_at >= 0.14  # the stream's retry: 150 ms


async def test_401_stops_with_response_error(mode: str) -> None:
    async with SSEServer(events=["never"]) as server:
        server.respond_with(401, {"WWW-Authenticate": "Bearer"}, "no")
        source = EventSource(server.url, retry=0.001)
        outcome = await consume_within(source, mode)
    assert isinstance(outcome.error, ResponseError) and outcome.error.status_code == 401
    assert outcome.events == [] and len(server.requests) == 1


async def test_204_closes_without_error(mode: str) -> None:
    async with SSEServer(events=["never"]) as server:
        server.respond_with(204)
        source = EventSource(server.url, retry=0.001)
        outcome = await consume_within(source, mode)
    assert outcome.error is None and outcome.events == []
    assert len(server.requests) == 1


async def test_200_with_another_content_type_fails(mode: str) -> None:
    async with SSEServer(events=["never"]) as server:
        server.respond_with(200, {"Content-Type": "application/json"}, b'{"error": "nope"}')
        source = EventSource(server.url, retry=0.001)
        outcome = await consume_within(source, mode)
    assert isinstance(outcome.error, ResponseError) and outcome.error.status_code == 200
    assert len(server.requests) == 1


@all_framings
async def test_slow_drip_delivers_exact_events(mode: str, framing: Framing) -> None:
    blocks = [crlf_block(1), format_event("a\nb", event="two", id="2"), crlf_block(3)]
    async with SSEServer(framing=framing, events=blocks) as server:
        server.slow_drip(0)
        source = EventSource(server.url, retry=0.001)
        outcome = await consume_within(source, mode, limit=3)
    assert outcome.events == [chunk(1), E(type="two", data="a\nb", id="2"), chunk(3)]
    assert len(server.requests) == 1


@all_framings
async def test_slow_drip_writes_one_byte_at_a_time(anyio_backend: str, framing: Framing) -> None:
    block = crlf_block(1)
    async with SSEServer(events=[block], framing=framing) as server:
        server.slow_drip(0.002)
        parts = await raw_get(
            server.port, "/", lambda b: b.endswith(block + b"\r\n"[: 2 * (framing == "chunked")])
        )
    received = b"".join(parts)
    assert body_of(framing, received) == block
    # One write per byte (chunk framing too): even if the reader lags and
    # some arrive together, the body comes in many pieces (parts[0] is the
    # head, sent whole).
    assert len(parts[1:]) >= len(block) // 4


async def test_broadcast_reaches_100_clients(anyio_backend: str) -> None:
    received: dict[int, list[ServerSentEvent]] = {}
    async with SSEServer(replay=False) as server:

        async def client(k: int) -> None:
            async with EventSource(server.url, retry=0.001) as source:
                received[k] = []
                async for event in source:
                    received[k].append(event)
                    if len(received[k]) == 2:
                        break

        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                for k in range(100):
                    tg.start_soon(client, k)
                await server.await_for_connections(100, timeout=15)
                server.send("hello", id="1")
                server.broadcast({"data": {"n": 2}, "event": "json", "id": "2"})
    expected = [E(data="hello", id="1"), E(type="json", data='{"n":2}', id="2")]
    assert len(received) == 100 and all(events == expected for events in received.values())
    assert len(server.requests) == 100


# --- hold: a request that gets no answer until release() ---------------------------------


@all_framings
async def test_hold_answers_nothing_until_release(anyio_backend: str, framing: Framing) -> None:
    async with SSEServer(events=[{"data": "a", "id": "1"}], framing=framing) as server:
        server.hold()
        async with await anyio.connect_tcp("127.0.0.1", server.port) as stream:
            await stream.send(b"GET /held HTTP/1.1\r\nHost: x\r\n\r\n")
            conn = await server.await_for_connections(1)
            assert conn.held and conn.bytes_sent == 0 and not conn.closed
            assert server.requests[0].path == "/held"
            server.send("b", id="2")  # queued for the held stream, kept in the history
            with anyio.move_on_after(0.2):  # a bounded check that nothing comes
                unexpected = await stream.receive()
                pytest.fail(f"a held request was answered: {unexpected!r}")
            assert conn.bytes_sent == 0
            server.release()
            assert not conn.held
            received = b""
            with anyio.fail_after(5):
                while b"data: b\n\n" not in received:
                    received += await stream.receive()
        head = received.partition(b"\r\n\r\n")[0]
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        # "content-length": the body holds what was sent while held, too.
        assert body_of(framing, received) == b"id: 1\ndata: a\n\nid: 2\ndata: b\n\n"
        await server.await_until(lambda: conn.closed)
        assert conn.closed_by_client is (framing != "content-length")
        assert conn.events_sent == 2


@all_framings
async def test_hold_keeps_the_client_connecting(mode: str, framing: Framing) -> None:
    opened: list[bool] = []
    async with SSEServer(framing=framing, events=[{"data": "a", "id": "1"}]) as server:
        server.hold()
        source = EventSource(server.url, retry=0.001, on_open=lambda: opened.append(True))

        async def script() -> None:
            conn = await server.await_for_connections(1)
            assert conn.held and opened == []
            assert source.ready_state is ReadyState.CONNECTING
            server.send("b", id="2")
            server.release()
            await server.await_until(lambda: conn.events_sent == 2)

        outcome = await run_while(source, mode, script, limit=2)
    assert outcome.events == [E(data="a", id="1"), E(data="b", id="2")]
    assert opened == [True] and len(server.requests) == 1
    assert not server.connections[0].held


async def test_hold_sees_the_client_give_up(mode: str) -> None:
    closes: list[bool] = []
    async with SSEServer(events=["never"]) as server:
        server.hold()
        source = EventSource(server.url, retry=0.001, on_close=lambda: closes.append(True))

        async def script() -> None:
            conn = await server.await_for_connections(1)
            source.close()  # thread-safe, never blocks
            await server.await_until(lambda: conn.closed)

        outcome = await run_while(source, mode, script, limit=None)
    assert outcome.events == [] and outcome.error is None and closes == [True]
    (conn,) = server.connections
    assert conn.closed_by_client and conn.held and conn.bytes_sent == 0
    assert server.open_connections == []


@all_framings
async def test_drop_hangs_up_a_held_request_without_an_answer(mode: str, framing: Framing) -> None:
    errors: list[Any] = []
    async with SSEServer(framing=framing, events=[{"data": "a", "id": "1"}]) as server:
        server.hold()
        source = EventSource(server.url, retry=0.001, on_error=errors.append)

        async def script() -> None:
            first = await server.await_for_connections(1)
            server.drop()
            await server.await_until(lambda: first.closed)
            second = await server.await_for_connections(2)
            assert not second.held  # hold() took one request

        outcome = await run_while(source, mode, script, limit=1)
    assert outcome.events == [E(data="a", id="1")]
    first = server.connections[0]
    assert first.held and not first.closed_by_client and first.bytes_sent == 0
    assert len(errors) == 1
    assert [r.last_event_id for r in server.requests] == [None, None]


@streaming_framings
async def test_hold_times_none_until_clear_faults_with_respond_with(
    mode: str, framing: Framing
) -> None:
    async with SSEServer(framing=framing, events=[{"data": "ok", "id": "1"}]) as server:
        server.hold(times=None)
        server.respond_with(503, {"Retry-After": "0"})
        source = EventSource(server.url, retry=0.001)

        async def script() -> None:
            busy = await server.await_for_connections(1)
            assert busy.held
            server.release()  # answered as armed: the 503
            second = await server.await_for_connections(2)
            assert second.held
            server.clear_faults()  # no more holds; the held one stays held
            assert second.held
            server.release()
            await server.await_until(lambda: second.events_sent == 1)
            server.drop()
            third = await server.await_for_connections(3)
            assert not third.held
            server.send("two", id="2")

        outcome = await run_while(source, mode, script, limit=2)
    assert outcome.events == [E(data="ok", id="1"), E(data="two", id="2")]
    assert [c.status for c in server.connections] == [503, 200, 200]
    assert [c.held for c in server.connections] == [False, False, False]
    assert [r.last_event_id for r in server.requests] == [None, None, "1"]


async def test_hold_times_counts_requests(anyio_backend: str) -> None:
    events = [{"data": x, "id": str(i)} for i, x in enumerate("abc", 1)]
    async with SSEServer(events=events) as server:
        server.hold(times=2)
        server.drop_after(1)
        server.drop_after(1)
        source = EventSource(server.url, retry=0.001)

        async def script() -> None:
            for n in (1, 2):
                conn = await server.await_for_connections(n)
                assert conn.held
                server.release()
                server.release()  # nothing held: harmless
            third = await server.await_for_connections(3)
            assert not third.held

        outcome = await run_while(source, "async", script, limit=3)
    assert [e.data for e in outcome.events] == ["a", "b", "c"]
    assert [r.last_event_id for r in server.requests] == [None, "1", "2"]


async def test_stopping_closes_a_held_request(anyio_backend: str) -> None:
    async with AsyncExitStack() as stack:
        async with SSEServer(events=["x"]) as server:
            server.hold()
            client = await stack.enter_async_context(
                await anyio.connect_tcp("127.0.0.1", server.port)
            )
            await client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            conn = await server.await_for_connections(1)
        with anyio.fail_after(5):
            try:
                rest = await client.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                rest = b""
        assert rest == b""
    assert conn.closed and conn.held and not conn.closed_by_client


def test_hold_rejects_a_bad_count() -> None:
    for bad in (0, -1, True, 1.5):
        with pytest.raises(ValueError):
            SSEServer().hold(bad)


# --- requests the server must accept -----------------------------------------------------


@all_framings
async def test_a_utf8_last_event_id_is_accepted_and_recorded(mode: str, framing: Framing) -> None:
    """After ``id: é-1`` the client sends ``Last-Event-ID: é-1`` in UTF-8."""
    async with SSEServer(
        framing=framing, events=[{"data": "a", "id": "é-1"}, {"data": "b", "id": "é-2"}]
    ) as server:
        server.drop_after(1)
        source = EventSource(server.url, retry=0.001)
        outcome = await consume_within(source, mode, limit=2)
    assert [e.id for e in outcome.events] == ["é-1", "é-2"]
    assert [r.last_event_id for r in server.requests] == [None, "é-1"]
    assert server.requests[1].headers.raw[-1:] != []  # the raw bytes are kept


@all_framings
async def test_raw_utf8_header_bytes_are_recorded(anyio_backend: str, framing: Framing) -> None:
    async with SSEServer(
        framing=framing, events=[{"data": "a", "id": "é-1"}, {"data": "b", "id": "é-2"}]
    ) as server:
        async with await anyio.connect_tcp("127.0.0.1", server.port) as stream:
            await stream.send(b"GET /s HTTP/1.1\r\nHost: x\r\nLast-Event-ID: \xc3\xa9-1\r\n\r\n")
            received = b""
            with anyio.fail_after(5):
                while b"data: b\n\n" not in received:
                    received += await stream.receive()
        assert b"data: a" not in received  # resumed after \xc3\xa9-1
        (request,) = server.requests
        assert request.last_event_id == "é-1"
        assert (b"Last-Event-ID", b"\xc3\xa9-1") in request.headers.raw


# --- HTTP/1.1: framing, keep-alive, a drop really hangs up -----------------------------------


async def read_response(stream: Any, framing: str, sofar: bytes = b"") -> tuple[bytes, bytes]:
    """Read one whole response off a raw connection: (head, body data) and
    nothing more (the connection stays usable)."""
    received = sofar
    with anyio.fail_after(5):
        while b"\r\n\r\n" not in received:
            received += await stream.receive()
        head, _, body = received.partition(b"\r\n\r\n")
        if framing == "chunked":
            while not dechunk(body)[1]:
                body += await stream.receive()
            return head, dechunk(body)[0]
        length = int(
            httpx.Headers([line.split(b": ", 1) for line in head.split(b"\r\n")[1:]])[
                "content-length"
            ]
        )
        while len(body) < length:
            body += await stream.receive()
        return head, body


async def eof_within(stream: Any, seconds: float = 5) -> bytes:
    """What comes until the peer closes (fails if it does not within `seconds`)."""
    rest = b""
    with anyio.fail_after(seconds):
        while True:
            try:
                rest += await stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                return rest


@pytest.mark.parametrize("framing", ["chunked", "content-length"])
async def test_keep_alive_carries_requests_one_after_another(
    anyio_backend: str, framing: Framing
) -> None:
    events = [{"data": x, "id": str(i)} for i, x in enumerate("abc", 1)]
    async with SSEServer(events=events, framing=framing) as server:
        server.respond_with(503, {"Retry-After": "0"}, "busy")
        server.end_after(3)  # "chunked": the stream ends normally after 3 events
        server.end_after(1)
        async with await anyio.connect_tcp("127.0.0.1", server.port) as stream:
            await stream.send(b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n")
            head, body = await read_response(stream, "content-length")
            assert head.startswith(b"HTTP/1.1 503 ") and body == b"busy"
            assert b"Connection: close" not in head
            await stream.send(b"GET /2 HTTP/1.1\r\nHost: x\r\n\r\n")
            head, body = await read_response(stream, framing)
            assert body == b"id: 1\ndata: a\n\nid: 2\ndata: b\n\nid: 3\ndata: c\n\n"
            await stream.send(b"GET /3 HTTP/1.1\r\nHost: x\r\nLast-Event-ID: 2\r\n\r\n")
            head, body = await read_response(stream, framing)
            assert body == b"id: 3\ndata: c\n\n"
            busy, first, second = server.connections
            await server.await_until(lambda: second.closed)
            assert {busy.tcp_index, first.tcp_index, second.tcp_index} == {0}  # one TCP connection
            assert all(
                c.complete and c.closed and not c.closed_by_client for c in server.connections
            )
            assert [r.path for r in server.requests] == ["/1", "/2", "/3"]
            assert server.open_connections == []
            server.drop()  # hangs up the idle keep-alive connection
            assert await eof_within(stream) == b""


@all_framings
async def test_httpx_sees_the_framing_and_reuses_the_connection(
    anyio_backend: str, framing: Framing
) -> None:
    events = [{"data": "a", "id": "1"}, {"data": "b", "id": "2"}]
    async with SSEServer(events=events, framing=framing) as server:
        server.end_after(2)
        server.end_after(1)
        async with httpx.AsyncClient() as client:
            for expected in ("id: 1\ndata: a\n\nid: 2\ndata: b\n\n", "id: 2\ndata: b\n\n"):
                last = None if expected.startswith("id: 1") else "1"
                headers = {"Last-Event-ID": last} if last else {}
                async with client.stream("GET", server.url, headers=headers) as response:
                    assert (await response.aread()).decode() == expected
                    assert response.headers.get("transfer-encoding") == (
                        "chunked" if framing == "chunked" else None
                    )
                    assert response.headers.get("content-length") == (
                        str(len(expected)) if framing == "content-length" else None
                    )
    first, second = server.connections
    assert first.complete and second.complete
    # The keep-alive framings carry both requests on one TCP connection.
    assert (first.tcp_index == second.tcp_index) is (framing != "close")


@all_framings
async def test_a_drop_breaks_the_body_and_closes_the_connection(
    anyio_backend: str, framing: Framing
) -> None:
    events = [{"data": "a", "id": "1"}, {"data": "b", "id": "2"}]
    async with SSEServer(events=events, framing=framing) as server:
        server.drop_after(1)
        server.end_after(2)
        async with httpx.AsyncClient() as client:
            async with client.stream("GET", server.url) as response:
                chunks: list[bytes] = []
                if framing == "close":  # the end of the body looks like a normal end
                    async for part in response.aiter_bytes():
                        chunks.append(part)
                else:  # an incomplete chunk, or less than the Content-Length
                    with pytest.raises(httpx.RemoteProtocolError):
                        async for part in response.aiter_bytes():
                            chunks.append(part)
                assert b"".join(chunks) == b"id: 1\ndata: a\n\n"
            async with client.stream("GET", server.url) as response:
                assert (await response.aread()).startswith(b"id: 1")
    first, second = server.connections
    assert first.closed and not first.complete and not first.closed_by_client
    assert first.tcp_index != second.tcp_index  # a new TCP connection


@pytest.mark.parametrize("at", [5, "line", "utf8", "crlf"])
@all_framings
async def test_drop_mid_event_cuts_inside_the_chunk(
    anyio_backend: str, framing: Framing, at: Any
) -> None:
    blocks = [crlf_block(1), crlf_block(2)]
    async with SSEServer(events=blocks, framing=framing) as server:
        server.drop_mid_event(1, at=at)
        async with await anyio.connect_tcp("127.0.0.1", server.port) as stream:
            await stream.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            received = await eof_within(stream)
        conn = server.connections[0]
        cut = conn.bytes_sent - len(blocks[0])
        assert 0 < cut < len(blocks[1])
    head, _, body = received.partition(b"\r\n\r\n")
    if framing == "chunked":
        # The second chunk announces the whole block; part of it follows.
        assert body == b"%x\r\n%s\r\n%x\r\n%s" % (
            len(blocks[0]),
            blocks[0],
            len(blocks[1]),
            blocks[1][:cut],
        )
    else:
        assert body == blocks[0] + blocks[1][:cut]
    if framing == "content-length":
        assert b"Content-Length: %d" % (len(blocks[0]) + len(blocks[1])) in head


@all_framings
async def test_stall_then_drop_hangs_up_a_keep_alive_stream(
    anyio_backend: str, framing: Framing
) -> None:
    async with SSEServer(events=[crlf_block(1), crlf_block(2)], framing=framing) as server:
        server.stall_after(1)
        async with await anyio.connect_tcp("127.0.0.1", server.port) as stream:
            await stream.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            conn = await server.await_for_connections(1)
            await server.await_until(lambda: conn.events_sent == 1)
            assert not conn.closed
            server.drop()
            received = await eof_within(stream)
    assert body_of(framing, received) == crlf_block(1)
    assert conn.closed and not conn.complete and conn.events_sent == 1


async def test_end_lets_the_client_resume(mode: str) -> None:
    events = [crlf_block(i) for i in range(1, 5)]
    async with SSEServer(events=events) as server:  # "chunked"
        server.end_after(2)
        source = EventSource(server.url, retry=0.001)
        outcome = await consume_within(source, mode, limit=4)
    assert outcome.events == [chunk(i) for i in range(1, 5)]
    assert [r.last_event_id for r in server.requests] == [None, "2"]
    first, second = server.connections
    assert first.complete and first.events_sent == 2 and not first.closed_by_client
    # EventSource's fast body read closes its connection with the response
    # (h11 never saw the body); httpx's own reuse is tested above.
    assert first.tcp_index != second.tcp_index


async def test_end_in_close_framing_closes(anyio_backend: str) -> None:
    async with SSEServer(events=[crlf_block(1)], framing="close") as server:
        async with await anyio.connect_tcp("127.0.0.1", server.port) as stream:
            await stream.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            conn = await server.await_for_connections(1)
            await server.await_until(lambda: conn.events_sent == 1)
            server.end()
            received = await eof_within(stream)
    assert body_of("close", received) == crlf_block(1)
    assert conn.complete and not conn.closed_by_client


@pytest.mark.parametrize(
    ("request_line", "framing_header"),
    [
        (b"GET / HTTP/1.0\r\n", b"Connection: close"),  # no chunks for HTTP/1.0
        (
            b"GET / HTTP/1.1\r\nConnection: close\r\n",
            b"Transfer-Encoding: chunked\r\nConnection: close",
        ),
    ],
)
async def test_a_request_that_closes_gets_connection_close(
    anyio_backend: str, request_line: bytes, framing_header: bytes
) -> None:
    async with SSEServer(events=[crlf_block(1)]) as server:
        async with await anyio.connect_tcp("127.0.0.1", server.port) as stream:
            await stream.send(request_line + b"Host: x\r\n\r\n")
            conn = await server.await_for_connections(1)
            await server.await_until(lambda: conn.events_sent == 1)
            server.end()
            received = await eof_within(stream)
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.endswith(b"X-Accel-Buffering: no\r\n" + framing_header)
    chunked = b"chunked" in framing_header
    assert body_of("chunked" if chunked else "close", received) == crlf_block(1)
    assert body.endswith(b"0\r\n\r\n") is chunked
    assert conn.complete


async def test_a_malformed_request_gets_400_and_is_not_recorded(anyio_backend: str) -> None:
    async with SSEServer(events=["x"]) as server:
        async with await anyio.connect_tcp("127.0.0.1", server.port) as stream:
            await stream.send(b"GET / HTTP/1.1\r\n\r\n")  # HTTP/1.1 needs a Host header
            received = await eof_within(stream)
        assert received.startswith(b"HTTP/1.1 400 Bad Request\r\n")
        assert b"Host" in received.partition(b"\r\n\r\n")[2]  # h11's reason
        assert server.requests == [] and server.connections == []


@pytest.fixture(scope="module")
def certificates() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return server, client


@all_framings
async def test_tls_in_each_framing(anyio_backend: str, framing: Framing, certificates: Any) -> None:
    server_context, client_context = certificates
    events = [crlf_block(i) for i in range(1, 5)]
    async with SSEServer(events=events, tls=server_context, framing=framing) as server:
        server.drop_mid_event(1, at="utf8")
        server.drop_after(1)
        client = httpx.AsyncClient(verify=client_context)
        source = EventSource(server.url, retry=0.001, client=client)
        outcome = await consume_within(source, "async", limit=4)
        await client.aclose()
    assert outcome.events == [chunk(i) for i in range(1, 5)]
    assert [r.last_event_id for r in server.requests] == [None, "1", "2"]


async def test_pipelined_requests_are_answered_in_turn(anyio_backend: str) -> None:
    """Bytes of the next request that come with (or during) a response are kept."""
    async with SSEServer(events=[crlf_block(1)]) as server:
        server.respond_with(204)
        server.end_after(1)
        async with await anyio.connect_tcp("127.0.0.1", server.port) as stream:
            await stream.send(
                b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
                b"POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"3\r\nabc\r\n0\r\n\r\n"
            )
            received = b""
            with anyio.fail_after(5):
                while not received.endswith(b"0\r\n\r\n"):
                    received += await stream.receive()
        assert received.startswith(b"HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\n")
        assert [(r.method, r.path, r.body) for r in server.requests] == [
            ("GET", "/a", b""),
            ("POST", "/b", b"abc"),
        ]
        assert [c.tcp_index for c in server.connections] == [0, 0]


async def test_stopping_closes_an_idle_keep_alive_connection(anyio_backend: str) -> None:
    async with AsyncExitStack() as stack:
        async with SSEServer(events=[crlf_block(1)]) as server:
            server.end_after(1)
            stream = await stack.enter_async_context(
                await anyio.connect_tcp("127.0.0.1", server.port)
            )
            await stream.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            _, body = await read_response(stream, "chunked")
            assert body == crlf_block(1)
            (conn,) = server.connections
            await server.await_until(lambda: conn.closed)
        assert await eof_within(stream) == b""  # the server's stop closed it
    assert conn.complete and not conn.closed_by_client
