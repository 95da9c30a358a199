"""sse_response, SSEMock and assert_events: testing without a network."""

from __future__ import annotations

import sys

import httpx
import pytest
import respx

from eventsource import EventSource, ResponseError, ServerSentEvent
from eventsource.testing._assertions import assert_events
from eventsource.testing._mock import SSEMock, sse_response

from .conftest import client_for, consume

pytestmark = pytest.mark.anyio


async def test_scripted_drop_then_503_then_resume(mode: str) -> None:
    with SSEMock("http://api.test/stream") as mock:
        mock.respond([{"data": "a", "id": "1"}, {"data": "b", "id": "2"}], drop=True)
        mock.respond(status=503, headers={"Retry-After": "0"})
        mock.respond([{"data": "c", "id": "3", "event": "done"}])
        source = EventSource(mock.url, client=client_for(mode), retry=0.001)
        outcome = await consume(source, mode)
    assert outcome.error is None  # the script ran out: 204 closed the source
    assert_events(
        outcome.events, [{"data": "a", "id": "1"}, {"data": "b"}, {"type": "done", "data": "c"}]
    )
    assert [r.headers.get("last-event-id") for r in mock.requests] == [None, "2", "2", "3"]


async def test_status_only_response(mode: str) -> None:
    with SSEMock() as mock:
        mock.respond(status=401)
        outcome = await consume(EventSource(mock.url, client=client_for(mode)), mode)
    assert isinstance(outcome.error, ResponseError) and outcome.error.status_code == 401


@pytest.mark.parametrize("chunk_size", [None, 1, 7])
async def test_sse_response_chunking(mode: str, chunk_size: int | None) -> None:
    events = [
        ServerSentEvent(type="chunk", data='{"content": "é"}', id="1", retry=5),
        {"data": {"n": 2}, "event": "x"},
        "plain",
        b"data: raw\n\n",
    ]
    with SSEMock() as mock:
        mock._script.append(sse_response(events, chunk_size=chunk_size))
        outcome = await consume(EventSource(mock.url, client=client_for(mode)), mode)
    assert outcome.events == [
        ServerSentEvent(type="chunk", data='{"content": "é"}', id="1", retry=5),
        ServerSentEvent(type="x", data='{"n":2}', id="1"),
        ServerSentEvent(data="plain", id="1"),
        ServerSentEvent(data="raw", id="1"),
    ]


def test_sse_response_headers_and_errors() -> None:
    response = sse_response([], headers={"X-Test": "1"})
    assert response.headers["content-type"] == "text/event-stream"
    assert response.headers["x-test"] == "1"
    with pytest.raises(ValueError):
        sse_response([], chunk_size=0)


def test_sse_response_drop_raises_read_error() -> None:
    response = sse_response(["a"], drop=True)
    with pytest.raises(httpx.ReadError):
        list(response.iter_bytes())


def test_assert_events_passes_on_subsets_and_json() -> None:
    events = [
        ServerSentEvent(type="chunk", data='{"content": "Hi"}', id="1"),
        ServerSentEvent(type="done", data="{}", id="2"),
    ]
    assert_events(events, [{"type": "chunk", "data": {"content": "Hi"}}, {"type": "done"}])
    assert_events(events, [events[0], {"id": "2", "data": {}}])


def test_assert_events_failure_is_readable() -> None:
    events = [ServerSentEvent(type="chunk", data='{"content": "Hi"}', id="1")]
    with pytest.raises(AssertionError) as info:
        assert_events(events, [{"type": "chunk", "data": {"content": "Bye"}, "id": "2"}, "done"])
    message = str(info.value)
    assert "events differ (1 received, 2 expected)" in message
    assert """[0] data["content"]: got 'Hi', expected 'Bye'""" in message
    assert "[0] id: got '1', expected '2'" in message
    assert "[1] missing: expected 'done'" in message  # "done": an event type
    with pytest.raises(AssertionError, match=r"\[1\] unexpected"):
        assert_events(events * 2, [{"type": "chunk"}])
    with pytest.raises(AssertionError, match="data is not JSON"):
        assert_events([ServerSentEvent(data="x")], [{"data": {"a": 1}}])
    with pytest.raises(TypeError, match="unknown event fields"):
        assert_events(events, [{"kind": "chunk"}])


async def test_sse_mock_passes_loopback_requests_to_a_real_server(mode: str) -> None:
    # sse_mock and SSEServer in one test: the mock answers its URL, the
    # server's 127.0.0.1 requests reach the server.
    from eventsource.testing import SSEServer

    async with SSEServer([{"data": "real", "id": "1"}]) as server:
        with SSEMock() as mock:
            mock.respond(["mocked"])
            mocked = await consume(EventSource(mock.url, client=client_for(mode)), mode)
            real = await consume(EventSource(server.url, client=client_for(mode)), mode, limit=1)
            # localhost and ::1 pass through as well (routed, not connected to:
            # the tests use 127.0.0.1 only)
            assert mock._router is not None
            for url in (server.url.replace("127.0.0.1", "localhost"), "http://[::1]:1/stream"):
                with pytest.raises(respx.models.PassThrough):
                    mock._router.resolve(httpx.Request("GET", url))
    assert [e.data for e in mocked.events] == ["mocked"]
    assert [e.data for e in real.events] == ["real"]
    assert len(mock.requests) == 2 and len(server.requests) == 1  # the mock: then 204


def test_sse_mock_can_mock_loopback_too() -> None:
    with SSEMock("http://127.0.0.1:1/stream", passthrough_loopback=False) as mock:
        mock.respond(["mocked"])
        assert [e.data for e in EventSource(mock.url)] == ["mocked"]
        with pytest.raises(Exception, match="not mocked"):
            httpx.get("http://127.0.0.1:2/other")


def test_sse_mock_without_respx_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "respx", None)  # as if not installed
    with pytest.raises(ModuleNotFoundError, match=r'pip install "eventsource-client\[testing\]"'):
        SSEMock().start()
