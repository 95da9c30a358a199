"""How to test your own SSE code: examples/chat_stream.py, three ways.

Run with `pytest examples/`. The fixtures `sse_server` and `sse_mock` come with
eventsource's pytest plugin (installing the package is enough); async tests
run under anyio's pytest plugin (`@pytest.mark.anyio`).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from chat_stream import ChatError, stream_answer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from eventsource import format_event
from eventsource.testing import ASGIStreamTransport, SSEMock, SSEServer

pytestmark = pytest.mark.anyio

REPLY: list[dict[str, Any]] = [
    {"event": "typing", "data": {"isTyping": True}, "id": "1"},
    {"event": "chunk", "data": {"content": "Hello, "}, "id": "2"},
    {"event": "chunk", "data": {"content": "world"}, "id": "3"},
    {"event": "message", "data": {"role": "assistant", "content": "Hello, world"}, "id": "4"},
    {"event": "done", "data": {}, "id": "5"},
]


async def test_a_real_server_that_drops_mid_answer(sse_server: SSEServer) -> None:
    """1. A real server: the connection drops in the middle of an event, and
    the client resumes from Last-Event-ID without losing or repeating a chunk."""
    sse_server.send(**REPLY[0], retry=10)  # the server sets a short reconnection time
    for event in REPLY[1:]:
        sse_server.send(**event)
    sse_server.drop_mid_event(2)  # after two events, half of the third, then hang up

    final = await stream_answer(sse_server.url, "Hi", echo=False)

    assert final == {"role": "assistant", "content": "Hello, world"}
    assert [r.last_event_id for r in sse_server.requests] == [None, "2"]
    assert sse_server.requests[1].method == "GET"  # resumed: the question is not sent again


async def test_a_scripted_mock(sse_mock: SSEMock) -> None:
    """2. No network: scripted responses (a drop, a 503, then the rest)."""
    sse_mock.respond([{**REPLY[0], "retry": 10}, REPLY[1]], drop=True)
    sse_mock.respond(status=503, headers={"Retry-After": "0"})
    sse_mock.respond(REPLY[2:])

    final = await stream_answer(sse_mock.url, "Hi", echo=False)

    assert final["content"] == "Hello, world"
    assert len(sse_mock.requests) == 3


async def test_an_error_event_raises(sse_mock: SSEMock) -> None:
    sse_mock.respond([REPLY[0], {"event": "error", "data": {"message": "model overloaded"}}])
    with pytest.raises(ChatError, match="model overloaded"):
        await stream_answer(sse_mock.url, "Hi", echo=False)


async def chat_endpoint(request: Request) -> StreamingResponse:
    question = (await request.json())["question"]

    async def stream() -> Any:
        yield format_event({"isTyping": True}, event="typing")
        yield format_event({"content": f"You said: {question}"}, event="chunk")
        yield format_event({}, event="done")

    return StreamingResponse(stream(), media_type="text/event-stream")


app = Starlette(routes=[Route("/chat", chat_endpoint, methods=["POST"])])


async def test_the_app_in_process() -> None:
    """3. Your own Starlette / FastAPI endpoint, in-process, streaming."""
    async with httpx.AsyncClient(transport=ASGIStreamTransport(app)) as client:
        final = await stream_answer("http://app/chat", "Hi", client=client, echo=False)
    assert final == {"content": "You said: Hi"}
