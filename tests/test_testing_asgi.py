"""ASGIStreamTransport: EventSource against in-process Starlette / sse-starlette
apps, with endless streams, disconnects and app errors, on asyncio and trio."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from eventsource import (
    ConnectionLostError,
    EventSource,
    ResponseError,
    RetriesExhaustedError,
    format_event,
)
from eventsource._stack import StackName
from eventsource.testing._asgi import ASGIStreamTransport

from ._stacks import HAS_HTTPX2, STACKS, module

pytestmark = pytest.mark.anyio

TIMEOUT = 5  # seconds: a bound on waits that should end at once, never a pacing


class AppState:
    """What the app saw: requests, ASGI messages received, how streams ended."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.received: list[str] = []  # ASGI message types, in order
        self.stream_ended = anyio.Event()
        self.stream_cancelled = False
        self.posted: Any = None

    async def endless(self, first: int = 1, burst: int = 3) -> AsyncIterator[bytes]:
        """An SSE body that never ends: a burst of events, then nothing, forever
        (waiting, as a real feed waits for news)."""
        try:
            for n in range(first, first + burst):
                yield format_event(f"tick {n}", id=str(n))
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            self.stream_cancelled = True
            raise
        finally:
            self.stream_ended.set()

    def last_event_ids(self) -> list[str | None]:
        return [r.headers.get("last-event-id") for r in self.requests]


def make_app(state: AppState) -> Any:
    async def stream(request: Request) -> StreamingResponse:
        state.requests.append(request)
        return StreamingResponse(state.endless(), media_type="text/event-stream")

    async def sse_starlette(request: Request) -> EventSourceResponse:
        state.requests.append(request)

        async def events() -> AsyncIterator[dict[str, str]]:
            async for block in state.endless():
                n = block.decode().split("id: ")[1].split("\n")[0]
                yield {"data": f"sse {n}", "id": n, "event": "tick"}

        return EventSourceResponse(events())

    async def finite(request: Request) -> StreamingResponse:
        # Two events per connection, resuming after Last-Event-ID, then the end.
        state.requests.append(request)
        after = int(request.headers.get("last-event-id", "0"))

        async def body() -> AsyncIterator[bytes]:
            for n in (after + 1, after + 2):
                yield format_event(f"n{n}", id=str(n))

        return StreamingResponse(body(), media_type="text/event-stream")

    async def post(request: Request) -> StreamingResponse:
        state.requests.append(request)
        state.posted = await request.json()

        async def body() -> AsyncIterator[bytes]:
            for word in state.posted["prompt"].split():
                yield format_event({"token": word}, event="token")
            yield format_event("[DONE]", event="done")

        return StreamingResponse(body(), media_type="text/event-stream")

    async def broken(request: Request) -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            yield format_event("one", id="1")
            yield format_event("two", id="2")
            raise ValueError("generator failed mid-stream")

        return StreamingResponse(body(), media_type="text/event-stream")

    async def fails(request: Request) -> StreamingResponse:
        raise ValueError("endpoint failed")

    async def json(request: Request) -> JSONResponse:
        return JSONResponse({"not": "sse"})

    app = Starlette(
        routes=[
            Route("/stream", stream),
            Route("/sse-starlette", sse_starlette),
            Route("/finite", finite),
            Route("/post", post, methods=["POST"]),
            Route("/broken", broken),
            Route("/fails", fails),
            Route("/json", json),
        ]
    )

    async def recording(scope: Any, receive: Any, send: Any) -> None:
        async def logged_receive() -> Any:
            message = await receive()
            state.received.append(message["type"])
            return message

        await app(scope, logged_receive, send)

    return recording


@pytest.fixture(params=STACKS)
def http(request: pytest.FixtureRequest) -> StackName:
    """The stack a test runs on: every test runs for httpx and httpx2 clients."""
    name: StackName = request.param
    return name


def client_for(http: StackName, app: Any, **kwargs: Any) -> Any:
    """A client of the stack on an ASGIStreamTransport of the app."""
    # A long grace period: a well-behaved app must end on http.disconnect
    # alone, so a test relying on the transport's cancel would hit TIMEOUT.
    kwargs.setdefault("disconnect_timeout", 60)
    return module(http).AsyncClient(transport=ASGIStreamTransport(app, **kwargs))


async def read_endless(state: AppState, client: Any, path: str) -> list[str]:
    data = []
    with anyio.fail_after(TIMEOUT):
        async with EventSource(f"http://app{path}", client=client) as source:
            async for event in source:
                data.append(event.data)
                # Events arrive while the app's stream is still open.
                assert not state.stream_ended.is_set()
                if len(data) == 3:
                    break
    return data


@pytest.mark.parametrize("host", ["native", "task_group"])
async def test_streaming_response_endless(http: StackName, host: str) -> None:
    state = AppState()
    client = client_for(http, make_app(state))
    if host == "task_group":  # `async with client` enters the transport
        async with client:
            data = await read_endless(state, client, "/stream")
    else:  # the documented one-liner: a client that is never entered
        data = await read_endless(state, client, "/stream")
    assert data == ["tick 1", "tick 2", "tick 3"]
    # Leaving `async with` closed the response, which waited for the app.
    assert state.stream_ended.is_set() and state.stream_cancelled
    assert state.received == ["http.request", "http.disconnect"]
    assert state.requests[0].headers["accept"] == "text/event-stream"
    await client.aclose()


async def test_sse_starlette_endless(http: StackName) -> None:
    state = AppState()
    client = client_for(http, make_app(state))
    events = []
    with anyio.fail_after(TIMEOUT):
        async with EventSource("http://app/sse-starlette", client=client) as source:
            async for event in source:
                events.append((event.type, event.data, event.id))
                assert not state.stream_ended.is_set()
                if len(events) == 2:
                    break
    assert events == [("tick", "sse 1", "1"), ("tick", "sse 2", "2")]
    assert state.stream_ended.is_set() and state.stream_cancelled
    assert "http.disconnect" in state.received
    await client.aclose()


async def test_reconnects_with_last_event_id(http: StackName) -> None:
    state = AppState()
    client = client_for(http, make_app(state))
    data = []
    with anyio.fail_after(TIMEOUT):
        async with EventSource("http://app/finite", client=client, retry=0.001) as source:
            async for event in source:
                data.append(event.data)
                if len(data) == 4:
                    break
    assert data == ["n1", "n2", "n3", "n4"]
    assert state.last_event_ids() == [None, "2"]
    await client.aclose()


async def test_post_json_body(http: StackName) -> None:
    state = AppState()
    client = client_for(http, make_app(state))
    with anyio.fail_after(TIMEOUT):
        source = EventSource(
            "http://app/post",
            method="POST",
            json={"prompt": "hello streaming world"},
            client=client,
            reconnect=False,
        )
        async with source:
            events = [(event.type, event.data) async for event in source]
    assert state.posted == {"prompt": "hello streaming world"}
    assert state.requests[0].method == "POST"
    assert state.requests[0].headers["content-type"] == "application/json"
    assert events == [
        ("token", '{"token":"hello"}'),
        ("token", '{"token":"streaming"}'),
        ("token", '{"token":"world"}'),
        ("done", "[DONE]"),
    ]
    await client.aclose()


@pytest.mark.parametrize(("path", "status"), [("/missing", 404), ("/json", 200)])
async def test_non_sse_response_fails(http: StackName, path: str, status: int) -> None:
    client = client_for(http, make_app(AppState()))
    with anyio.fail_after(TIMEOUT):
        with pytest.raises(ResponseError) as info:
            async with EventSource(f"http://app{path}", client=client) as source:
                async for _ in source:
                    pass
    assert info.value.status_code == status
    await client.aclose()


async def test_app_error_before_start_raises(http: StackName) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        raise ValueError("app failed before the response")

    client = client_for(http, app)
    with anyio.fail_after(TIMEOUT):
        with pytest.raises(ValueError, match="before the response"):
            async with EventSource("http://app/", client=client) as source:
                async for _ in source:
                    pass
        with pytest.raises(ValueError, match="before the response"):
            await client.get("http://app/")
    await client.aclose()


async def test_app_error_mid_stream_drops_the_connection(http: StackName) -> None:
    client = client_for(http, make_app(AppState()))
    data = []
    with anyio.fail_after(TIMEOUT):
        with pytest.raises(ConnectionLostError) as info:
            async with EventSource("http://app/broken", client=client, reconnect=False) as src:
                async for event in src:
                    data.append(event.data)
    assert data == ["one", "two"]
    assert isinstance(info.value.__cause__, module(http).ReadError)
    assert "generator failed mid-stream" in str(info.value.__cause__)
    await client.aclose()


async def test_starlette_endpoint_error_is_a_500_and_logged(
    http: StackName,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Starlette's ServerErrorMiddleware answers 500 and then re-raises: the
    # response has started, so the error cannot be raised from the request.
    client = client_for(http, make_app(AppState()))
    with caplog.at_level(logging.WARNING, logger="eventsource.testing"):
        with anyio.fail_after(TIMEOUT):
            with pytest.raises(RetriesExhaustedError) as info:
                async with EventSource("http://app/fails", client=client, max_retries=0) as s:
                    async for _ in s:
                        pass
    cause = info.value.__cause__
    assert isinstance(cause, ResponseError) and cause.status_code == 500
    assert "endpoint failed" in caplog.text
    await client.aclose()


async def test_app_ignoring_disconnect_is_cancelled(http: StackName) -> None:
    # A raw app that sends as fast as it can and never calls receive(): its
    # send() blocks on the full buffer, then is a no-op after the disconnect;
    # the transport cancels it once the grace period is over.
    sent = 0
    ended = anyio.Event()
    cancelled = False

    async def app(scope: Any, receive: Any, send: Any) -> None:
        nonlocal sent, cancelled
        headers = [(b"content-type", b"text/event-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        try:
            while True:
                sent += 1
                body = format_event(str(sent))
                await send({"type": "http.response.body", "body": body, "more_body": True})
        except anyio.get_cancelled_exc_class():
            cancelled = True
            raise
        finally:
            ended.set()

    client = client_for(http, app, disconnect_timeout=0)
    with anyio.fail_after(TIMEOUT):
        async with EventSource("http://app/", client=client) as source:
            async for event in source:
                if event.data == "5":
                    break
    assert ended.is_set() and cancelled
    assert sent < 100  # backpressure: the app waited for the reader
    await client.aclose()


async def test_closing_the_client_disconnects_open_responses(http: StackName) -> None:
    state = AppState()
    with anyio.fail_after(TIMEOUT):
        async with client_for(http, make_app(state)) as client:
            response = await client.send(
                client.build_request("GET", "http://app/stream"), stream=True
            )
            chunks = response.aiter_bytes()
            for n in (1, 2, 3):  # the burst; then the app waits, stream open
                assert await chunks.__anext__() == format_event(f"tick {n}", id=str(n))
            assert not state.stream_ended.is_set()
        # The transport's __aexit__ disconnected the app and waited for it.
        assert state.stream_ended.is_set()
        assert state.received == ["http.request", "http.disconnect"]
        with pytest.raises(module(http).ReadError):
            await chunks.__anext__()
        await response.aclose()


async def test_cancelled_request_ends_the_app(http: StackName) -> None:
    entered = anyio.Event()
    ended = anyio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        try:
            entered.set()
            await anyio.sleep_forever()  # never starts a response
        finally:
            ended.set()

    client = client_for(http, app, disconnect_timeout=0)
    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as tg:
            tg.start_soon(client.get, "http://app/")
            await entered.wait()
            tg.cancel_scope.cancel()
    assert ended.is_set()
    await client.aclose()


async def test_read_timeout(http: StackName) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await receive()  # the request
        await receive()  # waits for the disconnect

    client = client_for(http, app)
    with anyio.fail_after(TIMEOUT):
        response = await client.send(
            client.build_request("GET", "http://app/", timeout=module(http).Timeout(5, read=0.05)),
            stream=True,
        )
        with pytest.raises(module(http).ReadTimeout):
            await response.aread()
        await response.aclose()
    await client.aclose()


@pytest.mark.parametrize(
    ("messages", "error"),
    [
        ([], RuntimeError),  # returned without a response
        ([{"type": "http.response.start", "status": 200}], "RemoteProtocolError"),
    ],
    ids=["no-start", "no-last-body"],
)
async def test_app_returning_early(
    http: StackName, messages: list[dict[str, Any]], error: type | str
) -> None:
    if isinstance(error, str):  # the stack's own error
        error = getattr(module(http), error)
    assert isinstance(error, type)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        for message in messages:
            await send(message)

    client = client_for(http, app)
    with anyio.fail_after(TIMEOUT), pytest.raises(error):
        await client.get("http://app/")
    await client.aclose()


async def test_scope_and_request_body(http: StackName) -> None:
    seen: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen["scope"] = scope
        seen["messages"] = [await receive()]
        await send({"type": "http.response.start", "status": 200, "headers": [(b"x-a", b"1")]})
        await send({"type": "http.response.body", "body": b"ok"})
        seen["messages"].append(await receive())  # after the client read and closed

    client = client_for(http, app)
    with anyio.fail_after(TIMEOUT):
        response = await client.post(
            "http://example.com:8080/a%20b/c?x=1&y=2", content=b"payload", headers={"X-Up": "v"}
        )
    assert response.status_code == 200 and response.content == b"ok"
    assert response.headers["x-a"] == "1"
    scope = seen["scope"]
    assert scope["type"] == "http" and scope["asgi"]["version"] == "3.0"
    assert scope["http_version"] == "1.1" and scope["method"] == "POST"
    assert scope["scheme"] == "http" and scope["root_path"] == ""
    assert scope["path"] == "/a b/c" and scope["raw_path"] == b"/a%20b/c"
    assert scope["query_string"] == b"x=1&y=2"
    assert scope["client"] == ("127.0.0.1", 123)
    assert scope["server"] == ("example.com", 8080)
    assert (b"x-up", b"v") in scope["headers"]
    assert all(k == k.lower() and isinstance(v, bytes) for k, v in scope["headers"])
    assert seen["messages"] == [
        {"type": "http.request", "body": b"payload", "more_body": False},
        {"type": "http.disconnect"},
    ]
    await client.aclose()


async def test_answers_in_the_stack_of_the_client(http: StackName) -> None:
    stack = module(http)
    with anyio.fail_after(TIMEOUT):
        async with client_for(http, make_app(AppState())) as client:
            response = await client.get("http://app/finite")
    assert type(response) is stack.Response
    assert isinstance(response.stream, stack.AsyncByteStream)
    assert (
        response.text == format_event("n1", id="1").decode() + format_event("n2", id="2").decode()
    )


@pytest.mark.skipif(not HAS_HTTPX2, reason="httpx2 is not installed (the extra)")
async def test_one_transport_serves_both_stacks_at_once() -> None:
    state = AppState()
    transport = ASGIStreamTransport(make_app(state), disconnect_timeout=60)
    data: dict[str, list[str]] = {}
    with anyio.fail_after(TIMEOUT):
        async with transport:
            for name in ("httpx", "httpx2"):
                client = module(name).AsyncClient(transport=transport)
                async with EventSource("http://app/sse-starlette", client=client) as source:
                    data[name] = []
                    async for event in source:
                        data[name].append(event.data)
                        if len(data[name]) == 2:
                            break
    assert data == {"httpx": ["sse 1", "sse 2"], "httpx2": ["sse 1", "sse 2"]}
    assert len(state.requests) == 2
