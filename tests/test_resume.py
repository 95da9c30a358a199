"""Resumable request streams (issue 24): a request other than GET is never
sent twice once a stream head arrived; a stream that gave an id resumes by
GET with ``Last-Event-ID`` (MCP's Streamable HTTP, "Resumability and
Redelivery"); a connection that moved the last event ID forward is progress.

The rules on every body path (tests/_paths.py), then each branch on both
stacks in asyncio, trio and sync against SSEServer or respx, then the
machine's delays without I/O."""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest
import respx

from eventsource import (
    ConnectionLostError,
    EventSource,
    ReadTimeoutError,
    ResponseError,
    ServerSentEvent,
)
from eventsource._httpx import never_sent
from eventsource._machine import Machine
from eventsource._policy import ConnectionPolicy
from eventsource.testing import SSEServer

from ._paths import Case, Log, cases, event, opened, running, until
from .conftest import client_for, consume, http_of, sse

pytestmark = pytest.mark.anyio

URL = "http://sse.test/mcp"
FAST: dict[str, Any] = {"retry": 0.01, "min_retry_delay": 0.01, "max_retry_delay": 0.02}
CALL = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "ticker"}}
WATCHDOG = 15.0
READ_TIMEOUT = 5.0


@contextlib.asynccontextmanager
async def source_on(
    path: str, mode: str, stack: str, url: str, **kwargs: Any
) -> AsyncIterator[EventSource]:
    """A source on the fast read (its own client) or on httpx's public stream
    (a client of the test's own, closed on exit)."""
    if path == "fast":
        yield EventSource(url, http=stack, **kwargs)
        return
    client = client_for(mode, stack, trust_env=False)
    try:
        yield EventSource(url, client=client, **kwargs)
    finally:
        if mode == "sync":
            client.close()
        else:
            await client.aclose()


PATHS = pytest.mark.parametrize("path", ["fast", "public"])


# --- 1. every body path: the stream ends or drops, the rest comes by GET --------------------------


@pytest.mark.parametrize(("case", "anyio_backend"), cases(variants=("end", "cut")))
async def test_a_post_stream_resumes_by_get(case: Case, anyio_backend: str) -> None:
    log = Log()
    options: dict[str, Any] = {"read_timeout": READ_TIMEOUT, "retry": 0.01, "min_retry_delay": 0.01}
    headers = {"Mcp-Session-Id": "s1", "Content-Language": "en"}
    with anyio.fail_after(WATCHDOG):
        async with opened(case) as env:
            env.script.add(*event(1))
            source = log.source = env.source(
                method="POST", json=CALL, headers=headers, **options, **log.kwargs()
            )
            async with running(source, env) as run:
                await until(lambda: run.data == ["e1"], "the first event")
                env.script.end() if case.variant == "end" else env.script.cut()
                await until(lambda: len(env.script.requests) == 2, "the resume")
                env.script.send(*event(2))
                await until(lambda: len(run.events) == 2, "the rest")
    post, get = env.script.requests
    assert post.method == "POST" and get.method == "GET"
    if case.path.startswith("fast-") or case.path == "mock":
        assert json.loads(post.body) == CALL and get.body == b""
    assert get.last_event_id == "1" and get.headers["mcp-session-id"] == "s1"
    assert not any(name.startswith("content-") for name in get.headers), get.headers
    assert run.data == ["e1", "e2"] and run.error is None


# --- 2. which requests are sent again, on both stacks, in each mode -------------------------------


@pytest.mark.parametrize(
    "priming",
    [{"id": "p", "retry": 20, "data": ""}, {"id": "p", "retry": 20}],
    ids=["sdk-priming", "id-only-priming"],
)
@PATHS
async def test_an_mcp_shaped_stream_is_posted_once_and_resumed_once(
    mode: str, stack: str, priming: dict[str, Any], path: str
) -> None:
    """The shape of MCP's Streamable HTTP: the POST's stream starts with a
    priming event (an id, a ``retry:``, empty data as the official SDKs
    write it, or no data line), the server closes it after three ticks; the
    GET carrying the last id gets the rest, and only it."""
    ticks = [{"data": {"tick": n}, "id": f"t{n}"} for n in range(1, 11)]
    result = {"data": {"jsonrpc": "2.0", "id": 7, "result": "done"}, "id": "r"}
    async with SSEServer([priming, *ticks, result]) as server:
        server.end_after(4)  # the priming block and three ticks
        async with source_on(
            path, mode, stack, server.url, method="POST", json=CALL, headers={"Mcp-Session-Id": "s"}
        ) as source:
            outcome = await consume(source, mode, limit=11 + ("data" in priming))
        requests = server.requests
    events = [e for e in outcome.events if e.data]
    assert len(outcome.events) - len(events) == ("data" in priming)  # the priming event
    assert [e.json() for e in events] == [t["data"] for t in ticks] + [result["data"]]
    assert [(r.method, r.last_event_id) for r in requests] == [("POST", None), ("GET", "t3")]
    assert requests[1].headers["mcp-session-id"] == "s" and requests[1].body == b""
    assert "content-type" not in requests[1].headers


@PATHS
async def test_a_post_answered_500_is_not_sent_again(mode: str, stack: str, path: str) -> None:
    async with SSEServer() as server:
        server.respond_with(500, text="boom")
        async with source_on(path, mode, stack, server.url, method="POST", json=CALL, **FAST) as s:
            outcome = await consume(s, mode)
        requests = server.requests
    assert isinstance(outcome.error, ResponseError) and outcome.error.status_code == 500
    assert len(requests) == 1


@pytest.mark.parametrize("status", [408, 429, 503])
@PATHS
async def test_a_post_refused_unprocessed_is_sent_again(
    mode: str, stack: str, status: int, path: str
) -> None:
    async with SSEServer() as server:
        server.respond_with(status, {"Retry-After": "0"})
        server.send("a")
        async with source_on(path, mode, stack, server.url, method="POST", json=CALL, **FAST) as s:
            outcome = await consume(s, mode, limit=1)
        requests = server.requests
    assert [e.data for e in outcome.events] == ["a"]
    assert [r.method for r in requests] == ["POST", "POST"]


async def test_a_post_that_could_not_connect_is_sent_again(mode: str, stack: str) -> None:
    http = http_of(stack)
    methods: list[str] = []

    def handler(request: Any) -> Any:
        methods.append(request.method)
        if len(methods) == 1:
            raise http.ConnectError("connection refused")
        return http.Response(
            200, headers={"content-type": "text/event-stream"}, content=b"data: a\n\n"
        )

    client = client_for(mode, stack, transport=http.MockTransport(handler))
    source = EventSource(URL, client=client, method="POST", json=CALL, **FAST)
    outcome = await consume(source, mode)
    assert [e.data for e in outcome.events] == ["a"] and methods == ["POST", "POST"]


@pytest.mark.parametrize("sync", [True, False], ids=["sync", "async"])
async def test_a_refused_connect_is_never_sent(stack: str, sync: bool) -> None:
    """never_sent() on the errors a real refused connect raises, through the
    stack's own transport and through eventsource's (the source's client)."""
    with socket.socket() as placeholder:  # a port nobody listens on
        placeholder.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{placeholder.getsockname()[1]}/"
    http = http_of(stack)
    source_client = EventSource(url, http=stack)._spec.client_kwargs(sync=sync)
    for kwargs in ({}, source_client):
        if sync:
            with http.Client(**kwargs) as client, pytest.raises(http.ConnectError) as info:
                client.post(url, json={})
        else:
            async with http.AsyncClient(**kwargs) as client:
                with pytest.raises(http.ConnectError) as info:
                    await client.post(url, json={})
        assert never_sent(info.value), repr(info.value.__cause__)


@PATHS
async def test_a_post_without_an_answer_is_not_sent_again(mode: str, stack: str, path: str) -> None:
    """The request may have been processed: it is not sent twice."""
    async with SSEServer() as server:
        server.hold()
        async with source_on(
            path, mode, stack, server.url, method="POST", json=CALL, read_timeout=0.3, **FAST
        ) as source:
            outcome = await consume(source, mode)
        requests = server.requests
        server.release()
    assert isinstance(outcome.error, ReadTimeoutError) and len(requests) == 1


@PATHS
async def test_a_post_stream_dropped_before_any_event_is_not_sent_again(
    mode: str, stack: str, path: str
) -> None:
    async with SSEServer() as server:
        server.drop_after(0)
        async with source_on(path, mode, stack, server.url, method="POST", json=CALL, **FAST) as s:
            outcome = await consume(s, mode)
        requests = server.requests
    assert isinstance(outcome.error, ConnectionLostError) and len(requests) == 1


@PATHS
async def test_a_priming_event_alone_is_enough_to_resume(mode: str, stack: str, path: str) -> None:
    """The server closes the POST's stream after the priming event: nothing
    was dispatched, but the id moved, so the rest comes by GET."""
    async with SSEServer([{"id": "p", "retry": 20}, {"data": "a", "id": "1"}]) as server:
        server.end_after(1)
        async with source_on(path, mode, stack, server.url, method="POST", json=CALL, **FAST) as s:
            outcome = await consume(s, mode, limit=1)
        requests = server.requests
    assert [e.data for e in outcome.events] == ["a"]
    assert [(r.method, r.last_event_id) for r in requests] == [("POST", None), ("GET", "p")]


# --- 3. the resume option -----------------------------------------------------------------------


def _post_then(*answers: Any) -> tuple[respx.Route, respx.Route]:
    post = respx.post(URL).mock(side_effect=[sse(b"id: 1\ndata: a\n\n")])
    get = respx.get(URL).mock(side_effect=list(answers))
    return post, get


async def test_resume_none_ends_the_source_at_the_end_of_the_post(mode: str) -> None:
    with respx.mock:
        post, get = _post_then()
        outcome = await consume(EventSource(URL, method="POST", json=CALL, resume=None), mode)
    assert [e.data for e in outcome.events] == ["a"] and outcome.error is None
    assert post.call_count == 1 and get.call_count == 0


async def test_resume_resend_sends_the_request_again(mode: str) -> None:
    with respx.mock:
        post = respx.post(URL).mock(
            side_effect=[
                sse(b"id: 1\ndata: a\n\n"),
                sse(b"id: 2\ndata: b\n\n"),
                httpx.Response(204),
            ]
        )
        source = EventSource(URL, method="POST", json=CALL, resume="resend", **FAST)
        outcome = await consume(source, mode)
    assert [e.data for e in outcome.events] == ["a", "b"] and outcome.error is None
    assert [c.request.headers.get("last-event-id") for c in post.calls] == [None, "1", "2"]
    assert all(json.loads(c.request.content) == CALL for c in post.calls)


async def test_a_resume_callable_names_the_url(mode: str) -> None:
    seen: list[str] = []

    def resume(last_event_id: str) -> str:
        seen.append(last_event_id)
        return f"http://sse.test/streams/7?from={last_event_id}"

    with respx.mock:
        respx.post(URL).mock(side_effect=[sse(b"id: 1\ndata: a\n\n")])
        other = respx.get("http://sse.test/streams/7").mock(
            side_effect=[sse(b"id: 2\ndata: b\n\n"), httpx.Response(204)]
        )
        source = EventSource(URL, method="POST", json=CALL, resume=resume, **FAST)
        outcome = await consume(source, mode)
    assert [e.data for e in outcome.events] == ["a", "b"] and outcome.error is None
    assert seen == ["1", "2"]
    assert [c.request.headers["last-event-id"] for c in other.calls] == ["1", "2"]
    assert other.calls[0].request.url.params["from"] == "1"


async def test_a_resume_answered_204_ends_cleanly(mode: str) -> None:
    with respx.mock:
        post, get = _post_then(httpx.Response(204))
        outcome = await consume(EventSource(URL, method="POST", json=CALL, **FAST), mode)
    assert [e.data for e in outcome.events] == ["a"] and outcome.error is None
    assert post.call_count == 1 and get.call_count == 1


@pytest.mark.parametrize("status", [404, 405])
async def test_a_resume_answered_404_or_405_cannot_resume(mode: str, status: int) -> None:
    with respx.mock:
        post, get = _post_then(httpx.Response(status))
        outcome = await consume(EventSource(URL, method="POST", json=CALL, **FAST), mode)
    error = outcome.error
    assert isinstance(error, ResponseError) and error.status_code == status
    assert "cannot be resumed" in str(error) and error.will_retry is False
    assert post.call_count == 1 and get.call_count == 1


async def test_a_resumed_stream_that_closes_is_resumed_again_from_the_newest_id(
    mode: str,
) -> None:
    with respx.mock:
        post, get = _post_then(
            sse(b"id: 2\ndata: b\n\n"),
            httpx.Response(503),  # a resume is a GET: retried as any
            sse(b"id: 3\ndata: c\n\n"),
            httpx.Response(204),
        )
        outcome = await consume(EventSource(URL, method="POST", json=CALL, **FAST), mode)
    assert [e.data for e in outcome.events] == ["a", "b", "c"] and outcome.error is None
    assert [c.request.headers["last-event-id"] for c in get.calls] == ["1", "2", "2", "3"]
    assert post.call_count == 1


async def test_a_redirected_post_resumes_at_the_final_url(mode: str) -> None:
    final = "http://sse.test/final"
    with respx.mock:
        respx.post(URL).mock(return_value=httpx.Response(307, headers={"Location": final}))
        respx.post(final).mock(side_effect=[sse(b"id: 1\ndata: a\n\n")])
        get = respx.get(final).mock(side_effect=[httpx.Response(204)])
        outcome = await consume(EventSource(URL, method="POST", json=CALL, **FAST), mode)
    assert [e.data for e in outcome.events] == ["a"] and outcome.error is None
    assert get.call_count == 1


async def test_restart_on_a_post_stream_resumes_by_get(mode: str, stack: str) -> None:
    async with SSEServer([{"data": "a", "id": "1"}, {"data": "b", "id": "2"}]) as server:
        server.stall_after(1)
        source = EventSource(server.url, http=stack, method="POST", json=CALL, **FAST)

        def restart_once(event: ServerSentEvent) -> None:
            if event.data == "a":
                source.restart()

        source.add_listener("message", restart_once)
        outcome = await consume(source, mode, limit=2)
        requests = server.requests
    assert [e.data for e in outcome.events] == ["a", "b"]
    assert [(r.method, r.last_event_id) for r in requests] == [("POST", None), ("GET", "1")]


def test_resume_is_checked() -> None:
    with pytest.raises(ValueError, match="resume"):
        EventSource(URL, resume="post")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="resume"):
        EventSource(URL, resume=3)  # type: ignore[arg-type]


# --- 4. polling is progress, not failure (the machine, no I/O) ------------------------------------


def _machine(**policy: Any) -> Machine:
    return Machine(ConnectionPolicy(**policy), max_event_size=1 << 20, method="POST")


def _connection(machine: Machine, body: bytes) -> float:
    """One attempt: a 200 stream that sends body and ends; the delay after."""
    assert machine.start_attempt() is not None
    assert machine.response(200, {"content-type": "text/event-stream"})
    machine.receive(body)
    machine.end()
    machine.released()  # (what the driver does for the RELEASE it is given)
    while machine._queue:  # the events and the failure notice, handed out
        machine.take()
    return machine.delay


def test_a_connection_that_only_moved_the_id_is_progress() -> None:
    machine = _machine(retry=3.0, min_retry_delay=1.0)
    delays = [_connection(machine, f"id: {n}\nretry: 200\n\n".encode()) for n in range(6)]
    assert delays == [0.2] * 6
    assert machine.policy.failures == 0


def test_progress_honours_the_streams_retry_from_100_ms() -> None:
    machine = _machine()
    delays = [_connection(machine, f"id: {n}\nretry: 0\ndata: x\n\n".encode()) for n in range(3)]
    assert delays == [0.1] * 3


def test_a_connection_that_moved_nothing_backs_off() -> None:
    machine = Machine(ConnectionPolicy(retry=0.2, min_retry_delay=1.0), max_event_size=1 << 20)
    delays = [_connection(machine, b": hi\n\n") for _ in range(3)]
    assert delays[0] == 0.2 and all(d >= 1.0 for d in delays[1:])


def test_the_callers_own_short_retry_is_kept_after_progress() -> None:
    machine = _machine(retry=0.01)
    assert _connection(machine, b"id: 1\ndata: x\n\n") == 0.01


def test_a_server_alternating_progress_and_nothing_with_retry_0_is_not_stormed() -> None:
    """Issue 24's breaker: a new id on one connection, the same on the next,
    retry: 0 on both. Every wait is at least 100 ms (at most 10 requests a
    second), the idle ones back off from min_retry_delay."""
    machine = Machine(ConnectionPolicy(min_retry_delay=1.0), max_event_size=1 << 20)
    delays = [_connection(machine, f"id: p{n // 2}\nretry: 0\n\n".encode()) for n in range(8)]
    assert min(delays) >= 0.1, delays


def test_the_callers_retry_0_does_not_storm_a_polling_server() -> None:
    """Issue 24's breaker: a priming event with a new id on each connection
    and no retry: field, the caller's retry=0: at least 100 ms each time."""
    machine = _machine(retry=0.0)
    delays = [_connection(machine, f"id: p{n}\n\n".encode()) for n in range(5)]
    assert delays == [0.1] * 5


async def test_the_callers_last_event_id_alone_is_not_resumed(mode: str) -> None:
    """Issue 24's breaker: the id given to the source names another stream;
    the POST's own stream gave none, so nothing is resumed."""
    with respx.mock:
        post, get = _post_then(httpx.Response(204))
        post.side_effect = [sse(b"data: a\n\n")]
        source = EventSource(URL, method="POST", json=CALL, last_event_id="old-9", **FAST)
        outcome = await consume(source, mode)
    assert [e.data for e in outcome.events] == ["a"] and outcome.error is None
    assert post.call_count == 1 and get.call_count == 0


async def test_a_post_dropped_after_it_was_sent_says_so(mode: str, stack: str) -> None:
    """Not 'cannot connect': the request went out, and may have run."""
    async with SSEServer() as server:
        server.hold()
        source = EventSource(server.url, http=stack, method="POST", json=CALL, **FAST)

        async def hang_up() -> None:
            await server.await_until(lambda: len(server.requests) == 1, timeout=5)
            server.drop()

        async with anyio.create_task_group() as tg:
            tg.start_soon(hang_up)
            outcome = await consume(source, mode)
    assert isinstance(outcome.error, ConnectionLostError)
    assert str(outcome.error).startswith("connection lost before the response"), outcome.error
    assert len(server.requests) == 1
