"""Issue 24's review (a helper that had not seen the change): each test
states a rule the change broke or missed; committed as strict xfails on
bd0991c, then fixed. Loopback only (SSEServer binds 127.0.0.1) or respx."""

from __future__ import annotations

import itertools
import socket
import threading
from typing import Any

import anyio
import httpx
import pytest
import respx

from eventsource import EventSource
from eventsource.testing import SSEServer

FAST: dict[str, Any] = {"retry": 0.01, "min_retry_delay": 0.01}


def _dead_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _run(source: EventSource, **kw: object) -> object:
    try:
        return [e.data for e in source.collect(**kw)]  # type: ignore[arg-type]
    except Exception as exc:  # noqa: BLE001
        return exc


# D1 -- a 303 (the POST ran; "see other") whose follow-up fails re-sends the POST
def test_303_follow_up_refused_does_not_resend_the_post() -> None:
    with SSEServer() as api:
        api.respond_with(303, {"Location": f"http://127.0.0.1:{_dead_port()}/r"}, times=None)
        _run(EventSource(api.url, method="POST", json={}, max_retries=3, **FAST), n=1, timeout=5)
        assert [r.method for r in api.requests] == ["POST"]


def test_303_follow_up_answered_503_does_not_resend_the_post() -> None:
    with SSEServer() as result, SSEServer() as api:
        api.respond_with(303, {"Location": result.url}, times=None)
        result.respond_with(503, {"Retry-After": "0"}, times=None)
        _run(EventSource(api.url, method="POST", json={}, max_retries=2, **FAST), n=1, timeout=5)
        assert [r.method for r in api.requests] == ["POST"]


# D2 -- httpx-aiohttp maps ServerDisconnectedError to httpx.ConnectTimeout
def test_post_dropped_after_it_was_received_on_httpx_aiohttp_is_not_resent() -> None:
    httpx_aiohttp = pytest.importorskip("httpx_aiohttp")

    async def main() -> list[str]:
        async with SSEServer([{"data": "a", "id": "1"}]) as server:
            server.hold()
            async with httpx_aiohttp.HttpxAiohttpClient() as client:
                source = EventSource(server.url, method="POST", json={}, client=client, **FAST)

                async def hang_up() -> None:
                    await server.await_until(lambda: len(server.requests) >= 1, timeout=5)
                    server.drop()

                async with anyio.create_task_group() as tg:
                    tg.start_soon(hang_up)
                    try:
                        await source.acollect(n=1, timeout=5)
                    except Exception:  # noqa: BLE001
                        pass
            return [r.method for r in server.requests]

    assert anyio.run(main) == ["POST"]


# D3 -- the resume sends the caller's credentials to the origin a redirect led to
def test_resume_after_cross_origin_redirect_drops_credentials() -> None:
    with SSEServer([{"data": "a", "id": "1"}, {"data": "b", "id": "2"}]) as b, SSEServer() as a:
        b.end_after(1)
        a.respond_with(307, {"Location": b.url}, times=None)
        source = EventSource(
            a.url, method="POST", json={}, headers={"Authorization": "Bearer SECRET"}, **FAST
        )
        assert _run(source, n=2, timeout=5) == ["a", "b"]
        assert [(r.method, r.headers.get("authorization")) for r in b.requests] == [
            ("POST", None),  # httpx dropped it on the hop
            ("GET", None),  # ... and so must the resume
        ]


# D4 -- a caller's cancelled wait while the POST waits for its head re-sends it
@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_cancelled_wait_during_the_post_does_not_resend_it(backend: str) -> None:
    async def main() -> list[str]:
        async with SSEServer([{"data": "a", "id": "1"}]) as server:
            server.hold()
            async with EventSource(server.url, method="POST", json={}) as source:
                with anyio.move_on_after(0.5):
                    await source.__anext__()
                server.release()
                with anyio.move_on_after(3):
                    try:
                        await source.__anext__()
                    except Exception:  # noqa: BLE001
                        pass
            return [r.method for r in server.requests]

    assert anyio.run(main, backend=backend) == ["POST"]


# D5 -- restart() re-sends a POST (resume="get" and resume=None alike)
@pytest.mark.parametrize("resume", ["get", None])
def test_restart_of_an_id_less_post_stream_does_not_resend_it(resume: str | None) -> None:
    with SSEServer([{"data": "a"}, {"data": "b"}]) as server:
        server.stall_after(1)
        source: EventSource

        def on_message(event: object) -> None:
            source.restart() if len(server.requests) == 1 else source.close()

        source = EventSource(
            server.url,
            method="POST",
            json={},
            resume=resume,  # type: ignore[arg-type]
            on_message=on_message,
        )
        _run(source, n=2, timeout=3)
        assert [r.method for r in server.requests] == ["POST"]


def test_restart_while_the_post_waits_for_its_head_does_not_resend_it() -> None:
    with SSEServer([{"data": "a"}]) as server:
        server.hold()
        source = EventSource(server.url, method="POST", json={})

        def later() -> None:
            server.wait_until(lambda: len(server.requests) >= 1, timeout=5)
            source.restart()

        threading.Thread(target=later).start()
        _run(source, n=1, timeout=3)
        assert [r.method for r in server.requests] == ["POST"]


# D6 -- a headers callable that raises: the POST was never sent, yet the source ends
def test_a_failing_headers_callable_is_retried_for_a_post() -> None:
    calls = itertools.count()

    def headers() -> dict[str, str]:
        if next(calls) == 0:
            raise RuntimeError("token service blip")
        return {"Authorization": "Bearer t"}

    with SSEServer([{"data": "a", "id": "1"}]) as server:
        assert _run(
            EventSource(server.url, method="POST", json={}, headers=headers, **FAST), n=1, timeout=5
        ) == ["a"]


# D7 -- reconnect=True meant "send the POST again"; now silently nothing
def test_reconnect_true_on_a_post_warns_or_keeps_its_meaning() -> None:
    with SSEServer([{"data": "a"}, {"data": "b"}]) as server:
        server.end_after(1)
        with pytest.warns(DeprecationWarning):
            _run(
                EventSource(server.url, method="POST", json={}, reconnect=True, **FAST),
                n=2,
                timeout=3,
            )


# D8 -- params= callable "before every attempt" is not called for a resume
def test_a_params_callable_is_evaluated_for_each_resume() -> None:
    n = itertools.count(1)
    events = [{"data": x, "id": str(i)} for i, x in enumerate("abc", 1)]
    with SSEServer(events) as server:
        server.end_after(1)
        server.end_after(1)
        source = EventSource(
            server.url, method="POST", json={}, params=lambda: {"token": f"t{next(n)}"}, **FAST
        )
        assert _run(source, n=3, timeout=5) == ["a", "b", "c"]
        assert [r.path for r in server.requests] == [
            "/stream?token=t1",
            "/stream?token=t2",
            "/stream?token=t3",
        ]


# D9 -- the resume callable's result is str()-ed: None becomes GET /None
def test_a_resume_callable_returning_none_is_an_error() -> None:
    with SSEServer([{"data": "a", "id": "1"}, {"data": "b", "id": "2"}]) as server:
        server.end_after(1)
        _run(
            EventSource(
                server.url,
                method="POST",
                json={},
                resume=lambda i: None,  # type: ignore[arg-type,return-value]
                max_retries=1,
                **FAST,
            ),
            n=2,
            timeout=3,
        )
        assert "/None" not in [r.path for r in server.requests]


# D10 -- the client's own Content-* headers go out on the bodyless resume GET
def test_the_resume_carries_no_content_headers_from_the_client() -> None:
    url = "http://sse.test/mcp"

    def sse(body: bytes) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    with respx.mock:
        respx.post(url).mock(side_effect=[sse(b"id: 1\ndata: a\n\n")])
        get = respx.get(url).mock(side_effect=[sse(b"id: 2\ndata: b\n\n")])
        with httpx.Client(headers={"Content-Type": "application/json"}) as client:
            EventSource(url, method="POST", json={}, client=client, **FAST).collect(n=2, timeout=3)
        assert "content-type" not in get.calls[0].request.headers
