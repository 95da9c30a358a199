"""Reliability (issue 7, items 3 to 5): no leaks over many cycles, backoff that
stays within the policy at scale, and the security properties of requests;
what goes through an HTTP stack on httpx and on httpx2 (``stack``)."""

from __future__ import annotations

import os
import random
import ssl
import threading
from collections import Counter
from typing import Any

import anyio
import anyio.to_thread
import httpx
import pytest
import respx
import trustme

from eventsource import (
    ConnectError,
    EventIdError,
    EventSource,
    ResponseError,
    ServerSentEvent,
)
from eventsource._policy import ConnectionPolicy
from eventsource.testing import SSEServer

from .conftest import client_for, consume, http_of, sse

pytestmark = pytest.mark.anyio

CYCLES = 1000


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def library_threads() -> set[threading.Thread]:
    """Threads other than the test harness's own (anyio's cached workers that
    run the sync mode, and consume()'s watchdog timers)."""
    return {
        thread
        for thread in threading.enumerate()
        if not thread.name.startswith("AnyIO worker") and not isinstance(thread, threading.Timer)
    }


# --- resources ------------------------------------------------------------------------


def running_tasks(backend: str) -> int:
    """Tasks alive in the event loop (asyncio; trio keeps no such list)."""
    if backend != "asyncio":
        return 0
    import asyncio

    try:
        return len(asyncio.all_tasks())
    except RuntimeError:  # the sync mode's thread has no loop
        return 0


async def test_a_thousand_open_close_cycles_leave_nothing_behind(
    mode: str, anyio_backend: str, stack: str
) -> None:
    """Each cycle opens a stream, reads one event and closes (break inside the
    with block): afterwards no socket, thread or task is left and on_close ran
    exactly once per source."""
    closes = Counter[int]()
    # Kept referenced, as an application would: otherwise CPython's garbage
    # collector would close a leaked connection and hide the leak.
    sources: list[EventSource] = []

    async def one(i: int, url: str) -> None:
        source = EventSource(url, http=stack, on_close=lambda: closes.update([i]))
        sources.append(source)
        outcome = await consume(source, mode, limit=1)
        assert outcome.events == [ServerSentEvent(data="first", id="1")]

    async with SSEServer([{"data": "first", "id": "1"}]) as server:
        await one(-1, server.url)  # warm up: imports, the loop's own fds
        fds, threads, tasks = open_fds(), library_threads(), running_tasks(anyio_backend)
        for i in range(CYCLES):
            await one(i, server.url)
        # The server closes its side once it sees the client's close.
        await server.await_until(lambda: not server.open_connections, timeout=10)
        assert all(conn.closed_by_client for conn in server.connections)
    assert sorted(closes) == [-1, *range(CYCLES)] and set(closes.values()) == {1}
    assert open_fds() <= fds
    assert library_threads() <= threads
    assert running_tasks(anyio_backend) <= tasks


# --- backoff at scale -------------------------------------------------------------------


def most_attempts(policy: ConnectionPolicy, window: float) -> int:
    """The most attempts a client can make in `window` seconds of failures:
    each wait at its shortest (half the computed value, from the second
    failure on)."""
    attempts, elapsed, failures = 1, 0.0, 0
    while True:
        failures += 1
        computed = min(policy.retry * 2 ** (failures - 1), policy.max_retry_delay)
        elapsed += computed if failures == 1 else computed / 2
        if elapsed > window:
            return attempts
        attempts += 1


async def test_one_client_against_503_stays_within_the_policy(mode: str, stack: str) -> None:
    window = 1.0
    async with SSEServer() as server:
        server.respond_with(503, times=None)
        source = EventSource(server.url, http=stack, retry=0.02, max_retry_delay=0.16)
        # No connection opened within the window: collect raises the last error.
        with pytest.raises(ResponseError, match="503"):
            if mode == "sync":
                await anyio.to_thread.run_sync(source.collect, None, window)
            else:
                await source.acollect(timeout=window)
    bound = most_attempts(ConnectionPolicy(retry=0.02, max_retry_delay=0.16), window)
    assert 4 <= len(server.requests) <= bound, (len(server.requests), bound)


def test_jitter_spreads_a_thousand_clients() -> None:
    """1,000 clients fail together three times: their third waits spread over
    the whole jitter range instead of arriving at once."""
    waits = []
    for seed in range(1000):
        policy = ConnectionPolicy(retry=1.0, max_retry_delay=30.0, rng=random.Random(seed))
        policy.next_delay(delivered=False)
        policy.next_delay(delivered=False)
        waits.append(policy.next_delay(delivered=False))  # computed: 4.0 s
    assert min(waits) >= 2.0 and max(waits) <= 4.0
    buckets = Counter(int((wait - 2.0) / 0.2) for wait in waits)  # ten 0.2 s buckets
    print("third-retry wait, clients per 0.2 s from 2.0 s:", [buckets[b] for b in range(10)])
    assert all(60 <= buckets[b] <= 140 for b in range(10))  # about 100 each


def test_a_real_client_fleet_does_not_reconnect_in_step() -> None:
    """The jitter comes from each source's own random generator: two sources
    built the same way draw different waits."""
    draws = set()
    for _ in range(50):
        source = EventSource("http://sse.test/", retry=1.0)
        source._machine.policy.next_delay(delivered=False)
        draws.add(source._machine.policy.next_delay(delivered=False))
    assert len(draws) > 45


# --- security ----------------------------------------------------------------------------


async def test_credentials_do_not_follow_a_cross_origin_redirect(mode: str) -> None:
    with respx.mock:
        respx.get("http://a.test/stream").mock(
            return_value=httpx.Response(307, headers={"location": "http://b.test/stream"})
        )
        other = respx.get("http://b.test/stream").mock(return_value=sse(b"data: x\n\n"))
        source = EventSource(
            "http://a.test/stream",
            headers={"Authorization": "Bearer secret"},
            cookies={"session": "secret"},
            reconnect=False,
        )
        outcome = await consume(source, mode)
    assert [e.data for e in outcome.events] == ["x"]
    sent = other.calls[0].request.headers
    assert "authorization" not in sent and "cookie" not in sent


async def test_credentials_follow_a_same_origin_redirect(mode: str) -> None:
    with respx.mock:
        first = respx.get("http://a.test/stream").mock(
            return_value=httpx.Response(307, headers={"location": "/moved"})
        )
        moved = respx.get("http://a.test/moved").mock(return_value=sse(b"data: x\n\n"))
        source = EventSource(
            "http://a.test/stream",
            headers={"Authorization": "Bearer secret"},
            cookies={"session": "secret"},
            reconnect=False,
        )
        await consume(source, mode)
    assert first.calls[0].request.headers["cookie"] == "session=secret"
    sent = moved.calls[0].request.headers
    assert sent["authorization"] == "Bearer secret" and sent["cookie"] == "session=secret"


async def test_a_redirect_on_a_real_server_keeps_credentials_at_its_origin_only(
    mode: str, stack: str
) -> None:
    """The redirect rules on each stack's own client (the stack builds the
    next request): Authorization follows a same-origin redirect and is
    dropped on one to another origin (another port)."""
    secret = {"Authorization": "Bearer secret"}
    async with SSEServer([{"data": "x"}]) as a, SSEServer([{"data": "y"}]) as b:
        a.respond_with(307, {"Location": "/moved"})
        source = EventSource(a.url, http=stack, headers=secret, reconnect=False)
        same = await consume(source, mode, limit=1)
        a.respond_with(307, {"Location": b.url})
        source = EventSource(a.url, http=stack, headers=secret, reconnect=False)
        other = await consume(source, mode, limit=1)
        a_requests, b_requests = a.requests, b.requests
    assert [e.data for e in same.events] == ["x"] and [e.data for e in other.events] == ["y"]
    assert [r.path for r in a_requests] == ["/stream", "/moved", "/stream"]
    assert all(r.headers["authorization"] == "Bearer secret" for r in a_requests)
    assert len(b_requests) == 1 and "authorization" not in b_requests[0].headers


@pytest.mark.parametrize("evil", ["1\r\nX-Injected: yes", "1\nX: y", "1\rX: y", "1\x00"])
def test_last_event_id_cannot_inject_headers(evil: str, stack: str) -> None:
    # The parser never produces such an id (lines end at CR and LF, an id
    # with NUL is ignored); the header-building step refuses it anyway.
    source = EventSource("http://sse.test/", http=stack)
    with http_of(stack).Client() as client, pytest.raises(EventIdError, match="Last-Event-ID"):
        source._spec.build(client, evil)
    with pytest.raises(ValueError):
        EventSource("http://sse.test/", last_event_id=evil)


def _sent_id(request: Any) -> bytes | None:
    values = [v for k, v in request.headers.raw if k.lower() == b"last-event-id"]
    assert len(values) <= 1
    return values[0] if values else None


def test_the_last_event_id_header_is_the_id_stripped_in_utf8(stack: str) -> None:
    # As a browser sends a header value: leading and trailing HTTP whitespace
    # removed, encoded as UTF-8 (with or without headers of the caller's).
    cases = [
        ("42", b"42"),
        ("42 ", b"42"),
        ("  42", b"42"),
        ("\t4 2 \t", b"4 2"),
        (" ", b""),
        ("é", "é".encode()),
        (" \ufffd\u2028x ", "\ufffd\u2028x".encode()),
        ("4\x01\x7f2", b"4\x01\x7f2"),  # controls h11 sends (obs-text and CTLs)
        ("", None),
    ]
    for headers in (None, {"X-Extra": "yes"}, lambda: {"X-Extra": "yes"}):
        source = EventSource("http://sse.test/", http=stack, headers=headers)
        with http_of(stack).Client() as client:
            for given, sent in cases:
                assert _sent_id(source._spec.build(client, given)) == sent, (given, headers)


def test_an_id_the_http_stack_cannot_send_is_refused_before_sending(stack: str) -> None:
    # h11 refuses a field value with VT, FF, CR, LF or NUL inside (its
    # field-vchar is [^\x00\s]); VT and FF are no HTTP whitespace to strip.
    source = EventSource("http://sse.test/", http=stack)
    with http_of(stack).Client() as client:
        for evil in ["4\x0b2", "42\x0c", "\x0b42", " 4\x0c ", "4\r2", "4\n2", "4\x002"]:
            with pytest.raises(EventIdError) as info:
                source._spec.build(client, evil)
            assert info.value.last_event_id == evil
            assert repr(evil) in str(info.value)
            with pytest.raises(ValueError, match="last_event_id"):
                EventSource("http://sse.test/", last_event_id=evil)
    # The constructor takes the header's rule: surrounding whitespace is
    # stripped when it is sent; the id itself stays as given.
    assert EventSource("http://sse.test/", last_event_id=" 42 ").last_event_id == " 42 "


@pytest.fixture(scope="module")
def certificates() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a certificate for 127.0.0.1 from a test CA, and a
    client context that trusts that CA."""
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return server, client


async def test_tls_is_verified_by_default(
    anyio_backend: str, certificates: Any, stack: str
) -> None:
    server_context, _ = certificates
    async with SSEServer([{"data": "x"}], tls=server_context) as server:
        assert server.url.startswith("https://")
        source = EventSource(server.url, http=stack)
        outcome = await consume(source, "async")
    # Issue 23: before a first open, not retried (it was, until max_retries).
    assert isinstance(outcome.error, ConnectError)
    chain = []
    error: BaseException | None = outcome.error
    while error is not None:
        chain.append(error)
        error = error.__cause__ or error.__context__
    assert any(isinstance(e, http_of(stack).ConnectError) for e in chain)
    assert any(isinstance(e, ssl.SSLCertVerificationError) for e in chain), chain


async def test_tls_with_a_trusted_ca(mode: str, certificates: Any, stack: str) -> None:
    server_context, client_context = certificates
    async with SSEServer([{"data": "x", "id": "1"}], tls=server_context) as server:
        client = client_for(mode, stack, verify=client_context)
        source = EventSource(server.url, client=client)
        outcome = await consume(source, mode, limit=1)
    assert outcome.events == [ServerSentEvent(data="x", id="1")]


async def test_closing_cannot_hang_on_a_transport_that_ignores_it(
    anyio_backend: str, monkeypatch: pytest.MonkeyPatch, stack: str
) -> None:
    """A response body that never ends and ignores aclose(): closing is
    bounded (here shortened to 0.2 s) instead of hanging in its shield."""
    import eventsource._httpx as httpx_module

    monkeypatch.setattr(httpx_module, "CLOSE_TIMEOUT", 0.2)

    http = http_of(stack)

    class Deaf(http.AsyncByteStream):  # type: ignore[misc]
        async def __aiter__(self):  # type: ignore[no-untyped-def]
            yield b"data: first\n\n"
            await anyio.sleep_forever()

        async def aclose(self) -> None:
            pass  # ignores the close

    def handler(request: Any) -> Any:
        return http.Response(200, headers={"content-type": "text/event-stream"}, stream=Deaf())

    client = http.AsyncClient(transport=http.MockTransport(handler))
    with anyio.fail_after(5):
        async with EventSource("http://sse.test/", client=client) as source:
            async for event in source:
                assert event.data == "first"
                break
    assert source.ready_state.name == "CLOSED"
    await client.aclose()
