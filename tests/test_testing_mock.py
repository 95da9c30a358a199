"""sse_response, SSEMock and assert_events: testing without a network, on
both HTTP stacks (httpx through respx; httpx2 through httpcore2's pools)."""

from __future__ import annotations

import importlib
import json
import sys
from typing import Any

import httpx
import pytest
import respx

from eventsource import EventSource, ResponseError, ServerSentEvent
from eventsource._stack import StackName, stack_named
from eventsource.testing import EventLike
from eventsource.testing._assertions import assert_events
from eventsource.testing._mock import SSEMock, sse_response
from eventsource.testing._patch import pool_patch

from ._stacks import HAS_HTTPX2, STACKS, client, module
from .conftest import consume

pytestmark = pytest.mark.anyio

CORES = {"httpx": "httpcore", "httpx2": "httpcore2"}


@pytest.fixture(params=STACKS)
def http(request: pytest.FixtureRequest) -> str:
    """The stack a test runs on: httpx or httpx2."""
    name: StackName = request.param
    return name


def source_for(
    url: str, mode: str, http: StackName, owner: str = "user", **kwargs: Any
) -> EventSource:
    """A source on the stack: with a client of the user's, or its own."""
    if owner == "own":
        return EventSource(url, http=http, **kwargs)
    return EventSource(url, client=client(http, mode), **kwargs)


@pytest.mark.parametrize("owner", ["user", "own"])
async def test_scripted_drop_then_503_then_resume(mode: str, http: StackName, owner: str) -> None:
    with SSEMock("http://api.test/stream", http=http) as mock:
        mock.respond([{"data": "a", "id": "1"}, {"data": "b", "id": "2"}], drop=True)
        mock.respond(status=503, headers={"Retry-After": "0"})
        mock.respond([{"data": "c", "id": "3", "event": "done"}])
        source = source_for(mock.url, mode, http, owner, retry=0.001)
        outcome = await consume(source, mode)
    assert outcome.error is None  # the script ran out: 204 closed the source
    assert_events(
        outcome.events, [{"data": "a", "id": "1"}, {"data": "b"}, {"type": "done", "data": "c"}]
    )
    assert [r.headers.get("last-event-id") for r in mock.requests] == [None, "2", "2", "3"]
    assert all(type(r) is module(http).Request for r in mock.requests)


async def test_status_only_response(mode: str, http: StackName) -> None:
    with SSEMock(http=http) as mock:
        mock.respond(status=401, headers={"WWW-Authenticate": "Bearer"})
        outcome = await consume(source_for(mock.url, mode, http), mode)
    assert isinstance(outcome.error, ResponseError) and outcome.error.status_code == 401


EVENTS: list[EventLike] = [
    ServerSentEvent(type="chunk", data='{"content": "é"}', id="1", retry=5),
    {"data": {"n": 2}, "event": "x"},
    "plain",
    b"data: raw\n\n",
]
PARSED = [
    ServerSentEvent(type="chunk", data='{"content": "é"}', id="1", retry=5),
    ServerSentEvent(type="x", data='{"n":2}', id="1"),
    ServerSentEvent(data="plain", id="1"),
    ServerSentEvent(data="raw", id="1"),
]


@pytest.mark.parametrize("chunk_size", [None, 1, 7])
async def test_respond_chunking(mode: str, http: StackName, chunk_size: int | None) -> None:
    with SSEMock(http=http) as mock:
        mock.respond(EVENTS, chunk_size=chunk_size)
        outcome = await consume(source_for(mock.url, mode, http), mode)
    assert outcome.events == PARSED


@pytest.mark.parametrize("chunk_size", [None, 1, 7])
async def test_sse_response_in_a_mock_transport(
    mode: str, http: StackName, chunk_size: int | None
) -> None:
    # The stack's own MockTransport takes sse_response(http=...) as it is.
    def handler(request: Any) -> Any:
        return sse_response(EVENTS, chunk_size=chunk_size, http=http)

    transport = module(http).MockTransport(handler)
    source = EventSource(
        "http://sse.test/stream", client=client(http, mode, transport=transport), reconnect=False
    )
    outcome = await consume(source, mode)
    assert outcome.error is None and outcome.events == PARSED


def test_sse_response_headers_and_errors(http: StackName) -> None:
    stack = module(http)
    response = sse_response([], headers={"X-Test": "1"}, http=http)
    assert type(response) is stack.Response
    assert isinstance(response.stream, stack.SyncByteStream)
    assert isinstance(response.stream, stack.AsyncByteStream)
    assert response.headers["content-type"] == "text/event-stream"
    assert response.headers["x-test"] == "1"
    with pytest.raises(ValueError):
        sse_response([], chunk_size=0, http=http)


def test_sse_response_is_httpx_by_default() -> None:
    assert type(sse_response(["a"])) is httpx.Response


def test_sse_response_drop_raises_read_error(http: StackName) -> None:
    response = sse_response(["a"], drop=True, http=http)
    with pytest.raises(module(http).ReadError):
        list(response.iter_bytes())


async def test_sse_response_drop_raises_read_error_async(http: StackName) -> None:
    response = sse_response(["a"], drop=True, http=http)
    with pytest.raises(module(http).ReadError, match="connection dropped"):
        [chunk async for chunk in response.aiter_bytes()]


async def test_a_drop_reaches_a_client_as_its_read_error(http: StackName) -> None:
    # The mock answers below the client: its stack's error mapping runs.
    with SSEMock(http=http) as mock:
        mock.respond(["a", "b"], drop=True)
        async with module(http).AsyncClient() as user:
            async with user.stream("GET", mock.url) as response:
                chunks = []
                with pytest.raises(module(http).ReadError, match="connection dropped"):
                    async for chunk in response.aiter_bytes():
                        chunks.append(chunk)
    assert b"".join(chunks) == b"data: a\n\ndata: b\n\n"


async def test_the_request_body_is_recorded(mode: str, http: StackName) -> None:
    with SSEMock(http=http) as mock:
        mock.respond(["ok"])
        source = source_for(mock.url, mode, http, method="POST", json={"q": 1}, reconnect=False)
        outcome = await consume(source, mode)
    assert [e.data for e in outcome.events] == ["ok"]
    (request,) = mock.requests
    assert request.method == "POST" and json.loads(request.content) == {"q": 1}
    assert request.headers["content-type"] == "application/json"


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


def _passes_through(mock: SSEMock, http: StackName, url: str) -> bool:
    """Whether the mock lets a request to ``url`` through (routed, not sent)."""
    if http == "httpx":
        assert mock._router is not None
        try:
            mock._router.resolve(httpx.Request("GET", url))
        except respx.models.PassThrough:
            return True
        return False
    core = importlib.import_module(CORES[http])
    return pool_patch(stack_named(http)).route(core.Request("GET", url)) is None


async def test_sse_mock_passes_loopback_requests_to_a_real_server(
    mode: str, http: StackName
) -> None:
    # sse_mock and SSEServer in one test: the mock answers its URL, the
    # server's 127.0.0.1 requests reach the server.
    from eventsource.testing import SSEServer

    async with SSEServer([{"data": "real", "id": "1"}]) as server:
        with SSEMock(http=http) as mock:
            mock.respond(["mocked"])
            # retry: the 204 after the stream's end comes without the default 3 s wait
            mocked = await consume(source_for(mock.url, mode, http, retry=0.01), mode)
            real = await consume(source_for(server.url, mode, http), mode, limit=1)
            # localhost and ::1 pass through as well (routed, not connected to:
            # the tests use 127.0.0.1 only)
            for url in (server.url.replace("127.0.0.1", "localhost"), "http://[::1]:1/stream"):
                assert _passes_through(mock, http, url)
    assert [e.data for e in mocked.events] == ["mocked"]
    assert [e.data for e in real.events] == ["real"]
    assert len(mock.requests) == 2 and len(server.requests) == 1  # the mock: then 204


def test_sse_mock_can_mock_loopback_too(http: StackName) -> None:
    stack = module(http)
    url = "http://127.0.0.1:1/stream"
    with SSEMock(url, passthrough_loopback=False, http=http) as mock:
        mock.respond(["mocked"])
        source = EventSource(mock.url, client=stack.Client(), retry=0.01)  # 204 without 3 s
        assert [e.data for e in source] == ["mocked"]
        assert [e.data for e in EventSource(mock.url, http=http)] == []
        with pytest.raises(AssertionError, match="not mocked"):
            stack.get("http://127.0.0.1:2/other")


def test_other_requests_fail_as_not_mocked(http: StackName) -> None:
    stack = module(http)
    with SSEMock(http=http) as mock:
        with pytest.raises(AssertionError, match="not mocked"):
            stack.get("http://other.test/stream")
    assert mock.requests == []


# Which URLs a mock's URL takes (respx's url= rules, the same on both
# stacks): scheme and host; port, path and query only when the mock gives them.
MATCHES = [
    ("http://api.test:8080/s?a=1&b=2", "http://api.test:8080/s?b=2&a=1", True),
    ("http://api.test:8080/s?a=1&b=2", "http://api.test:8080/s?a=1", False),
    ("http://api.test:8080/s?a=1&b=2", "http://api.test:8081/s?a=1&b=2", False),
    ("http://api.test:8080/s?a=1&b=2", "https://api.test:8080/s?a=1&b=2", False),
    ("http://api.test:8080/s?a=1&b=2", "http://api.test:8080/t?a=1&b=2", False),
    ("http://api.test/s", "http://api.test/s?page=2", True),
    ("http://api.test/s", "http://api.test:80/s", True),
    ("http://api.test:80/s", "http://api.test:8080/s", True),
    ("https://api.test:443/s", "https://api.test:8443/s", True),
    ("http://api.test/s", "http://api.test/s/", False),
    ("http://api.test", "http://api.test/any/path", True),
    ("http://api.test/", "http://api.test/any/path", False),
    ("http://api.test/s", "http://web.test/s", False),
]


@pytest.mark.parametrize(("mocked", "requested", "answered"), MATCHES)
def test_which_urls_a_mock_answers(
    http: StackName, mocked: str, requested: str, answered: bool
) -> None:
    stack = module(http)
    with SSEMock(mocked, http=http) as mock:
        if answered:
            assert stack.get(requested).status_code == 204
        else:
            with pytest.raises(AssertionError, match="not mocked"):
                stack.get(requested)
    assert len(mock.requests) == answered


async def test_two_mocks_at_once_and_nothing_left_patched(http: StackName) -> None:
    stack = module(http)
    core = importlib.import_module(CORES[http])
    originals = (core.ConnectionPool.handle_request, core.AsyncConnectionPool.handle_async_request)
    with SSEMock("http://one.test/", http=http) as one:
        one.respond(["1"])
        with SSEMock("http://two.test/", http=http) as two:
            two.respond(["2"])
            async with stack.AsyncClient() as user:
                assert (await user.get("http://two.test/")).text == "data: 2\n\n"
                assert (await user.get("http://one.test/")).text == "data: 1\n\n"
        with pytest.raises(AssertionError, match="not mocked"):
            stack.get("http://two.test/")
        assert stack.get("http://one.test/").status_code == 204  # still mocked
    assert (
        core.ConnectionPool.handle_request,
        core.AsyncConnectionPool.handle_async_request,
    ) == originals
    assert len(one.requests) == 2 and len(two.requests) == 1


@pytest.mark.skipif(not HAS_HTTPX2, reason="httpx2 is not installed (the extra)")
async def test_by_default_a_mock_takes_both_stacks(mode: str) -> None:
    with SSEMock() as mock:
        mock.respond(["x"]).respond(["y"])
        on_httpx = await consume(source_for(mock.url, mode, "httpx", reconnect=False), mode)
        on_httpx2 = await consume(source_for(mock.url, mode, "httpx2", reconnect=False), mode)
    assert [e.data for e in on_httpx.events + on_httpx2.events] == ["x", "y"]
    assert [type(r).__module__ for r in mock.requests] == ["httpx", "httpx2"]


def test_sse_mock_without_respx(monkeypatch: pytest.MonkeyPatch, http: StackName) -> None:
    # respx is needed for httpx (and so by default), not for httpx2 alone.
    monkeypatch.setitem(sys.modules, "respx", None)  # as if not installed
    extra = r'pip install -e "\.\[testing\]" in a checkout'
    with pytest.raises(ModuleNotFoundError, match=extra):
        SSEMock().start()
    mock = SSEMock(http=http)
    if http == "httpx":
        with pytest.raises(ModuleNotFoundError, match=extra):
            mock.start()
        return
    with mock:
        mock.respond(["x"])
        # retry: the 204 after the stream's end comes without the default 3 s wait
        assert [e.data for e in EventSource(mock.url, http=http, retry=0.01)] == ["x"]
