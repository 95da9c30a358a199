"""What a service, an LLM client and a notebook user reach for: errors that
say enough, retried or final, the response head, POST streams that are not
re-sent, stop conditions and collect()."""

from __future__ import annotations

import json
from typing import Any

import anyio
import httpx
import pytest
import respx

from eventsource import (
    ConnectionLostError,
    EventSource,
    EventSourceError,
    ResponseError,
    ServerSentEvent,
)
from eventsource.testing import SSEServer

from .conftest import consume, http_of, sse

URL = "http://sse.test/stream"
FAST: dict[str, Any] = {"retry": 0.01, "min_retry_delay": 0.01, "max_retry_delay": 0.02}

pytestmark = pytest.mark.anyio


async def collect(source: EventSource, mode: str, **kwargs: Any) -> list[ServerSentEvent]:
    if mode == "sync":
        return await anyio.to_thread.run_sync(lambda: source.collect(**kwargs))
    return await source.acollect(**kwargs)


# --- errors -------------------------------------------------------------------------------


async def test_a_refused_response_says_what_and_keeps_its_body(mode: str, stack: str) -> None:
    async with SSEServer() as server:
        body = '{"error": "invalid api key"}'
        server.respond_with(401, {"Content-Type": "application/json"}, body)
        outcome = await consume(EventSource(server.url, http=stack, **FAST), mode)
        url = server.url
    error = outcome.error
    assert isinstance(error, ResponseError) and error.status_code == 401
    assert str(error) == f"Client error '401 Unauthorized' for GET url '{url}'"
    assert error.body == body
    assert isinstance(error.response, http_of(stack).Response)
    assert error.response.json() == {"error": "invalid api key"}
    assert error.response.headers["content-type"] == "application/json"
    assert error.will_retry is False


async def test_a_large_error_body_is_cut_at_64_kib(mode: str, stack: str) -> None:
    async with SSEServer() as server:
        server.respond_with(404, {"Content-Type": "text/plain"}, "x" * 200_000)
        outcome = await consume(EventSource(server.url, http=stack, **FAST), mode)
    assert isinstance(outcome.error, ResponseError)
    assert outcome.error.body == "x" * 65536


async def test_on_error_says_whether_the_source_retries(mode: str, stack: str) -> None:
    seen: list[tuple[int | None, bool, float | None]] = []
    messages: list[str] = []

    def on_error(error: EventSourceError) -> None:
        assert isinstance(error, ResponseError)
        seen.append((error.status_code, error.will_retry, error.retry_delay))
        messages.append(str(error))

    async with SSEServer() as server:
        server.respond_with(503, {"Retry-After": "0"}, "busy")
        server.respond_with(404)
        outcome = await consume(
            EventSource(server.url, http=stack, on_error=on_error, **FAST), mode
        )
    assert seen == [(503, True, 0.01), (404, False, None)]
    assert messages[0].startswith("Server error '503 Service Unavailable' for GET url ")
    assert isinstance(outcome.error, ResponseError) and outcome.error.status_code == 404


async def test_a_drop_is_reported_as_retried(mode: str, stack: str) -> None:
    seen: list[bool] = []
    async with SSEServer() as server:
        server.send("a", id="1")
        server.send("b", id="2")
        server.drop_after(1)
        source = EventSource(
            server.url, http=stack, on_error=lambda e: seen.append(e.will_retry), **FAST
        )
        outcome = await consume(source, mode, limit=2)
    assert [e.data for e in outcome.events] == ["a", "b"] and seen == [True]


# --- the response head ----------------------------------------------------------------------


async def test_the_open_response_is_readable_in_on_open(mode: str, stack: str) -> None:
    heads: list[tuple[int, str]] = []
    source: EventSource

    def on_open() -> None:
        response = source.response
        assert response is not None
        assert isinstance(response, http_of(stack).Response)
        heads.append((response.status_code, response.headers["content-type"]))

    async with SSEServer() as server:
        server.send("a")
        source = EventSource(server.url, http=stack, on_open=on_open, **FAST)
        assert source.response is None
        outcome = await consume(source, mode, limit=1)
    assert heads == [(200, "text/event-stream")] and len(outcome.events) == 1
    assert source.response is None  # closed


# --- POST streams ---------------------------------------------------------------------------


async def test_an_id_less_post_stream_is_not_sent_again_after_its_end(mode: str) -> None:
    with respx.mock:
        route = respx.post(URL).mock(side_effect=[sse(b"data: a\n\n"), sse(b"data: b\n\n")])
        outcome = await consume(EventSource(URL, method="POST", json={"q": 1}, **FAST), mode)
    assert [e.data for e in outcome.events] == ["a"] and outcome.error is None
    assert route.call_count == 1


async def test_a_post_stream_that_can_resume_is_resumed_by_get(mode: str) -> None:
    with respx.mock:
        post = respx.post(URL).mock(side_effect=[sse(b"id: 1\ndata: a\n\n")])
        get = respx.get(URL).mock(side_effect=[sse(b"id: 2\ndata: b\n\n"), httpx.Response(204)])
        outcome = await consume(EventSource(URL, method="POST", json={"q": 1}, **FAST), mode)
    assert [e.data for e in outcome.events] == ["a", "b"]
    assert post.call_count == 1
    assert [c.request.headers["last-event-id"] for c in get.calls] == ["1", "2"]


async def test_a_dropped_id_less_post_stream_fails_instead_of_generating_twice(mode: str) -> None:
    with respx.mock:
        route = respx.post(URL).mock(
            side_effect=[sse(b"data: a\n\n", fail=True), sse(b"data: b\n\n")]
        )
        outcome = await consume(EventSource(URL, method="POST", json={"q": 1}, **FAST), mode)
    assert [e.data for e in outcome.events] == ["a"]
    assert isinstance(outcome.error, ConnectionLostError) and route.call_count == 1


async def test_a_post_that_delivered_nothing_is_retried(mode: str) -> None:
    with respx.mock:
        route = respx.post(URL).mock(side_effect=[httpx.Response(503), sse(b"data: a\n\n")])
        outcome = await consume(EventSource(URL, method="POST", json={"q": 1}, **FAST), mode)
    assert [e.data for e in outcome.events] == ["a"] and route.call_count == 2


async def test_a_post_stream_on_a_real_server_sends_its_body_and_resumes(
    mode: str, stack: str
) -> None:
    """The POST rules on each stack's own client against a real server: the
    body is sent, and a stream that gave an id is resumed after a drop by a
    GET with its Last-Event-ID."""
    async with SSEServer() as server:
        server.send("a", id="1")
        server.drop_after(1)
        server.send("b", id="2")
        source = EventSource(server.url, http=stack, method="POST", json={"q": 1}, **FAST)
        outcome = await consume(source, mode, limit=2)
        requests = server.requests
    assert [e.data for e in outcome.events] == ["a", "b"] and outcome.error is None
    assert requests[0].method == "POST" and json.loads(requests[0].body) == {"q": 1}
    assert [(r.method, r.last_event_id) for r in requests] == [("POST", None), ("GET", "1")]


async def test_a_dropped_id_less_post_stream_on_a_real_server_is_not_sent_again(
    mode: str, stack: str
) -> None:
    async with SSEServer() as server:
        server.send("a")
        server.drop_after(1)
        source = EventSource(server.url, http=stack, method="POST", json={"q": 1}, **FAST)
        outcome = await consume(source, mode)
        requests = server.requests
    assert [e.data for e in outcome.events] == ["a"]
    assert isinstance(outcome.error, ConnectionLostError) and len(requests) == 1


async def test_reconnect_false_never_sends_a_get_again(mode: str) -> None:
    with respx.mock:
        route = respx.get(URL).mock(side_effect=[sse(b"id: 1\ndata: a\n\n"), sse(b"data: b\n\n")])
        outcome = await consume(EventSource(URL, reconnect=False, **FAST), mode)
    assert [e.data for e in outcome.events] == ["a"] and route.call_count == 1


# --- collect ----------------------------------------------------------------------------------


async def test_collect_until_stops_at_the_matching_event(mode: str, stack: str) -> None:
    async with SSEServer() as server:
        for word in ("a", "b"):
            server.send(word, event="chunk")
        server.send("{}", event="done")
        server.send("never", event="chunk")
        events = await collect(
            EventSource(server.url, http=stack, **FAST),
            mode,
            until=lambda e: e.type == "done",
            timeout=5,
        )
        requests = len(server.requests)
    assert [e.type for e in events] == ["chunk", "chunk", "done"] and requests == 1


async def test_collect_until_data_done_as_openai_streams_end(mode: str, stack: str) -> None:
    async with SSEServer() as server:
        server.send('{"choices": []}')
        server.send("[DONE]")
        events = await collect(
            EventSource(server.url, http=stack, **FAST),
            mode,
            until=lambda e: e.data == "[DONE]",
            timeout=5,
        )
    assert [e.data for e in events] == ['{"choices": []}', "[DONE]"]


async def test_collect_n_0_connects_nowhere_and_a_negative_n_is_refused(mode: str) -> None:
    with respx.mock:
        route = respx.get(URL).mock(return_value=sse(b"data: a\n\n"))
        source = EventSource(URL, **FAST)
        assert await collect(source, mode, n=0) == []
        assert source.ready_state.name == "CLOSED"
        with pytest.raises(ValueError, match="n must be"):
            await collect(EventSource(URL, **FAST), mode, n=-1)
    assert route.call_count == 0


async def test_collect_against_a_server_that_is_down_raises_the_last_error(
    mode: str, stack: str
) -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    source = EventSource(f"http://127.0.0.1:{port}/", http=stack, **FAST)
    with pytest.raises(ConnectionLostError, match="cannot connect"):
        await collect(source, mode, timeout=0.5)


async def test_collect_that_opened_returns_what_it_got_at_the_timeout(
    mode: str, stack: str
) -> None:
    async with SSEServer() as server:
        server.send("a")
        events = await collect(EventSource(server.url, http=stack, **FAST), mode, timeout=0.3)
    assert [e.data for e in events] == ["a"]


# --- timeouts ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("timeout", "connect"), [(None, None), (3.0, 3.0), ("default", 10.0)], ids=str
)
async def test_timeout_none_means_no_connect_timeout_as_in_httpx(
    mode: str,
    timeout: Any,  # noqa: ASYNC109 (the option under test)
    connect: float | None,
) -> None:
    options = {} if timeout == "default" else {"timeout": timeout}
    with respx.mock:
        route = respx.get(URL).mock(return_value=sse(b"data: a\n\n"))
        await consume(EventSource(URL, read_timeout=7.0, **options, **FAST), mode, limit=1)
    sent = route.calls[0].request.extensions["timeout"]
    assert sent["connect"] == connect and sent["pool"] == connect and sent["read"] == 7.0
