"""close(), restart() and cancellation as requests (issue 20, items 1-3, 7, 8).

close() and restart() may come from any thread, task, callback or signal
handler: they only record a request (``ready_state`` reads CLOSED at once
after close()) and wake the driver, which applies it at its next step. A
caller's cancelled wait never changes what the source does next.

The stress tests run thousands of iterations at random moments with the
interpreter switching threads every microsecond; each asserts that no close
was lost and that on_close ran exactly once.
"""

from __future__ import annotations

import asyncio
import random
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import anyio
import anyio.to_thread
import httpx
import pytest

from eventsource import ConnectionLostError, EventSource, ReadyState, ResponseError, ServerSentEvent
from eventsource.testing import SSEServer, sse_response

pytestmark = pytest.mark.anyio

URL = "http://sse.test/stream"
JOIN = 10.0  # a thread or task still running after this is hung
ZERO = {"retry": 0, "min_retry_delay": 0, "max_retry_delay": 0}


@pytest.fixture
def fast_switching() -> Iterator[None]:
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


@contextmanager
def watchdog(source: EventSource) -> Iterator[None]:
    """Close the source from a thread after JOIN seconds: a loop that never
    suspends cannot be stopped by any deadline of the event loop's."""
    timer = threading.Timer(JOIN, source.close)
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def _refusing(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("refused", request=request)


# --- 1. a close() from another thread is never lost ---------------------------------


def _sync_round(rng: random.Random) -> tuple[ReadyState, int, bool]:
    closes: list[int] = []
    client = httpx.Client(transport=httpx.MockTransport(_refusing))
    source = EventSource(URL, client=client, on_close=lambda: closes.append(1), **ZERO)

    def iterate() -> None:
        for _ in source:
            pass

    thread = threading.Thread(target=iterate, daemon=True)
    thread.start()
    time.sleep(rng.uniform(0, 0.002))
    source.close()
    state = source.ready_state
    thread.join(JOIN)
    hung = thread.is_alive()
    if hung:
        source.close()  # a second close() ends it: the first was lost
        thread.join(JOIN)
    client.close()
    return state, len(closes), hung


def test_a_close_from_another_thread_is_never_lost_sync(fast_switching: None) -> None:
    rng = random.Random(20)
    for i in range(2000):
        state, closes, hung = _sync_round(rng)
        assert state is ReadyState.CLOSED, f"round {i}: {state.name} after close() returned"
        assert not hung, f"round {i}: the source kept reconnecting after close()"
        assert closes == 1, f"round {i}: on_close ran {closes} times"


async def _async_round(rng: random.Random) -> tuple[list[ReadyState], int]:
    closes: list[int] = []
    client = httpx.AsyncClient(transport=httpx.MockTransport(_refusing))
    source = EventSource(URL, client=client, on_close=lambda: closes.append(1), **ZERO)
    states: list[ReadyState] = []

    def close_later(delay: float) -> None:
        time.sleep(delay)
        source.close()
        states.append(source.ready_state)

    # A lost close() leaves a loop that never suspends: no deadline of the
    # event loop's can end it, a second close() from a thread does.
    with watchdog(source), anyio.fail_after(JOIN):
        async with anyio.create_task_group() as tg:
            tg.start_soon(anyio.to_thread.run_sync, close_later, rng.uniform(0, 0.002))
            start = time.monotonic()
            async for _ in source:
                pass
    await client.aclose()
    assert time.monotonic() - start < JOIN / 2, "the source kept reconnecting after close()"
    return states, len(closes)


async def test_a_close_from_another_thread_is_never_lost_async(
    anyio_backend: str, fast_switching: None
) -> None:
    rng = random.Random(21)
    for i in range(1000):
        states, closes = await _async_round(rng)
        assert states == [ReadyState.CLOSED], f"round {i}"
        assert closes == 1, f"round {i}: on_close ran {closes} times"


def _collect_round(timeout: float) -> bool:
    with httpx.Client(transport=httpx.MockTransport(_refusing)) as client:
        source = EventSource(URL, client=client, **ZERO)
        done = threading.Event()

        def run() -> None:
            try:
                source.collect(timeout=timeout)
            except ConnectionLostError:
                pass  # no stream opened before the timeout
            finally:
                done.set()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        finished = done.wait(JOIN)
        if not finished:
            source.close()
            thread.join(JOIN)
        assert source.ready_state is ReadyState.CLOSED
        return finished


def test_collect_with_a_timeout_always_returns(fast_switching: None) -> None:
    # collect()'s timer thread calls close(): a lost close hung it.
    rng = random.Random(22)
    for i in range(1000):
        assert _collect_round(rng.uniform(0.0005, 0.002)), f"round {i}: collect(timeout=) hung"


# --- 2. polling with a timeout never stops the reconnect -----------------------------


class _Drops:
    """A mock endpoint: the first response has one event and ends; later ones
    send event 2 and stay open."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if len(self.requests) == 1:
            return sse_response([{"id": "1", "data": "a"}])
        return httpx.Response(
            200, headers={"content-type": "text/event-stream"}, stream=_Then(b"id: 2\ndata: b\n\n")
        )


class _Then(httpx.AsyncByteStream):
    """A body that sends its bytes, then waits for ever (until cancelled)."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.data
        await anyio.sleep_forever()


async def test_polling_with_a_timeout_keeps_the_reconnect_deadline(anyio_backend: str) -> None:
    endpoint = _Drops()
    async with httpx.AsyncClient(transport=httpx.MockTransport(endpoint)) as client:
        source = EventSource(URL, client=client, retry=1.0)
        got: list[str] = []
        with anyio.fail_after(JOIN):
            async with source:
                while len(got) < 2:
                    with anyio.move_on_after(0.3):
                        got.append((await source.__anext__()).data)
    assert got == ["a", "b"]
    assert endpoint.requests[1].headers["last-event-id"] == "1"


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_polling_with_wait_for_keeps_the_reconnect_deadline(anyio_backend: str) -> None:
    endpoint = _Drops()
    async with httpx.AsyncClient(transport=httpx.MockTransport(endpoint)) as client:
        source = EventSource(URL, client=client, retry=1.0)
        got: list[str] = []
        deadline = time.monotonic() + JOIN
        async with source:
            while len(got) < 2 and time.monotonic() < deadline:
                try:
                    got.append((await asyncio.wait_for(source.__anext__(), 0.3)).data)
                except asyncio.TimeoutError:
                    pass
    assert got == ["a", "b"]


async def test_a_cancelled_read_on_the_public_stream_is_no_clean_end(anyio_backend: str) -> None:
    """The public stream's generators end when a read is cancelled: the next
    step reconnects with Last-Event-ID; it never reports a clean end."""
    endpoint = _Drops()
    errors: list[str] = []
    async with httpx.AsyncClient(transport=httpx.MockTransport(endpoint)) as client:
        source = EventSource(
            URL, client=client, retry=0.001, on_error=lambda e: errors.append(str(e))
        )
        endpoint.requests.append(httpx.Request("GET", URL))  # start with the open body
        with anyio.fail_after(JOIN):
            async with source:
                first = await source.__anext__()
                with anyio.move_on_after(0.05):
                    await source.__anext__()  # blocked: the body waits for ever
                second = await source.__anext__()
    assert (first.data, second.data) == ("b", "b")
    assert endpoint.requests[-1].headers["last-event-id"] == "2"
    assert not any("ended the stream" in error for error in errors), errors


async def test_a_cancelled_read_with_no_reconnect_does_not_close_silently(
    anyio_backend: str,
) -> None:
    endpoint = _Drops()
    endpoint.requests.append(httpx.Request("GET", URL))
    async with httpx.AsyncClient(transport=httpx.MockTransport(endpoint)) as client:
        source = EventSource(URL, client=client, reconnect=False)
        with anyio.fail_after(JOIN):
            async with source:
                await source.__anext__()
                with anyio.move_on_after(0.05):
                    await source.__anext__()
                with pytest.raises(ConnectionLostError):
                    await source.__anext__()


# --- 3. a loop that never suspends can be cancelled ----------------------------------


async def test_a_zero_delay_loop_over_a_refusing_mock_can_be_cancelled(anyio_backend: str) -> None:
    async with httpx.AsyncClient(transport=httpx.MockTransport(_refusing)) as client:
        source = EventSource(URL, client=client, **ZERO)
        with watchdog(source), anyio.fail_after(JOIN):
            with anyio.move_on_after(0.2) as scope:
                async for _ in source:
                    pass
            await source.aclose()
    assert scope.cancelled_caught, "the caller's deadline never fired"


async def test_acollect_over_a_mock_that_never_suspends_returns(anyio_backend: str) -> None:
    transport = httpx.MockTransport(lambda request: sse_response([{"data": "x"}]))
    async with httpx.AsyncClient(transport=transport) as client:
        source = EventSource(URL, client=client, retry=0)
        start = time.monotonic()
        with watchdog(source), anyio.fail_after(JOIN):
            events = await source.acollect(timeout=0.2)
        took = time.monotonic() - start
    assert took < 2.0, f"acollect(timeout=0.2) took {took:.1f} s"
    assert events and all(event.data == "x" for event in events)


# --- 7. aclose() inside an async on_close ---------------------------------------------


@pytest.mark.parametrize("how", ["break", "aclose-in-loop"])
async def test_aclose_inside_an_async_on_close_returns(anyio_backend: str, how: str) -> None:
    calls: list[str] = []

    async def on_close() -> None:
        calls.append("on_close")
        await source.aclose()
        calls.append("returned")

    transport = httpx.MockTransport(lambda request: sse_response([{"data": "x"}]))
    async with httpx.AsyncClient(transport=transport) as client:
        source = EventSource(URL, client=client, on_close=on_close)
        with anyio.fail_after(JOIN):
            async with source:
                async for _ in source:
                    if how == "aclose-in-loop":
                        await source.aclose()
                    break
    assert calls == ["on_close", "returned"]


# --- 8. smaller ------------------------------------------------------------------------


async def test_a_cancel_during_a_coroutine_on_message_keeps_the_event(anyio_backend: str) -> None:
    release = anyio.Event()
    seen: list[str] = []

    async def on_message(event: ServerSentEvent) -> None:
        seen.append(event.data)
        if event.data == "1":
            await release.wait()

    transport = httpx.MockTransport(
        lambda request: sse_response([{"id": "1", "data": "1"}, {"id": "2", "data": "2"}])
    )
    async with httpx.AsyncClient(transport=transport) as client:
        source = EventSource(URL, client=client, on_message=on_message)
        with anyio.fail_after(JOIN):
            async with source:
                with anyio.move_on_after(0.05):
                    await source.__anext__()  # cancelled inside on_message("1")
                got = await source.__anext__()
    assert got.data == "1", "the event whose on_message was cancelled is still delivered"
    assert seen == ["1"]


def test_a_close_from_a_thread_reaches_a_source_reused_under_a_new_loop() -> None:
    """Per-test event loops and notebooks reuse a source under a new loop."""
    with SSEServer() as server:
        server.send("a", id="1")
        server.end_after(1)
        source = EventSource(server.url, retry=1.0, read_timeout=30)

        async def first() -> None:
            assert (await source.__anext__()).data == "a"
            with anyio.move_on_after(0.3):
                await source.__anext__()  # the stream ended: cancelled in the wait

        async def second() -> float:
            timer = threading.Timer(2.0, source.close)  # the source reads by then
            timer.start()
            start = time.monotonic()
            with anyio.fail_after(JOIN):
                async for _ in source:
                    pass
            timer.join()
            return time.monotonic() - start

        anyio.run(first)
        server.clear_faults()
        took = anyio.run(second)
        assert took < 5.0, f"close() from a thread took {took:.1f} s (read_timeout is 30)"
        assert source.ready_state is ReadyState.CLOSED
        assert len(server.requests) == 2


async def test_a_burst_of_queued_events_has_checkpoints(anyio_backend: str) -> None:
    burst = b"".join(b"data: %d\n\n" % i for i in range(20000))
    transport = httpx.MockTransport(
        lambda request: httpx.Response(
            200, headers={"content-type": "text/event-stream"}, stream=_Then(burst)
        )
    )
    async with httpx.AsyncClient(transport=transport) as client:
        source = EventSource(URL, client=client)
        with anyio.fail_after(JOIN):
            async with source:
                await source.__anext__()  # opened; 19,999 events queued
                delivered = 0
                with anyio.CancelScope() as scope:
                    scope.cancel()
                    async for _ in source:
                        delivered += 1
    # A checkpoint at least every 1,024 steps (one step per queued event).
    assert delivered <= 1024, f"{delivered} events delivered inside a cancelled scope"


# --- found in review ---------------------------------------------------------------------


class _Endless(httpx.AsyncByteStream):
    """A body that sends an event every 10 ms until closed; closing it takes
    ``close_takes`` seconds (a transport that is slow to close)."""

    def __init__(self, close_takes: float = 0.0) -> None:
        self.close_takes = close_takes

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for i in range(10_000):
            yield b"id: %d\ndata: %d\n\n" % (i, i)
            await anyio.sleep(0.01)

    async def aclose(self) -> None:
        await anyio.sleep(self.close_takes)


def _endless_client(close_takes: float = 0.0) -> httpx.AsyncClient:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, headers={"content-type": "text/event-stream"}, stream=_Endless(close_takes)
        )

    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


@pytest.mark.parametrize("closer", ["close", "aclose"])
async def test_a_close_during_a_cancelled_step_is_still_applied(
    anyio_backend: str, closer: str
) -> None:
    """close() comes while the iterating task awaits a coroutine on_message,
    then the caller cancels that __anext__(): the source still finishes."""
    closed: list[int] = []
    ended = anyio.Event()

    async def on_message(event: ServerSentEvent) -> None:
        await anyio.sleep(1.0)  # slow: the close and the cancel come meanwhile

    def on_close() -> None:
        closed.append(1)
        ended.set()

    async with _endless_client() as client:
        source = EventSource(URL, client=client, on_message=on_message, on_close=on_close)
        returned = anyio.Event()

        async def close_it() -> None:
            await anyio.sleep(0.1)
            if closer == "close":
                source.close()
            else:
                await source.aclose()
            returned.set()

        with anyio.fail_after(JOIN):
            async with anyio.create_task_group() as tg:
                tg.start_soon(close_it)
                with anyio.move_on_after(0.3):
                    await source.__anext__()
            await returned.wait()
            await ended.wait()  # the closer's task finishes it
        assert closed == [1]
        assert source.response is None and source.ready_state is ReadyState.CLOSED


def test_on_close_may_close_another_unused_source() -> None:
    closes: list[str] = []
    b = EventSource(URL, on_close=lambda: closes.append("b"))

    def on_close_a() -> None:
        closes.append("a")
        b.close()

    a = EventSource(URL, on_close=on_close_a)
    a.close()
    assert closes == ["a", "b"]


def test_on_close_run_by_a_closing_thread_may_iterate_the_source() -> None:
    """close() on a source nobody iterates finishes it in the closing thread;
    its on_close may iterate the source there (and find the end)."""
    seen: list[list[ServerSentEvent]] = []
    with httpx.Client(transport=httpx.MockTransport(_refusing)) as client:
        source = EventSource(URL, client=client, on_close=lambda: seen.append(list(source)))
        with source:
            pass  # used sync, never iterated; leaving closes it here
        thread = threading.Thread(target=source.close, daemon=True)  # a second close: nothing
        thread.start()
        thread.join(JOIN)
        assert not thread.is_alive()
    assert seen == [[]]


def test_on_close_may_iterate_a_source_closed_from_a_timer_thread() -> None:
    seen: list[list[ServerSentEvent]] = []
    with httpx.Client(transport=httpx.MockTransport(_refusing)) as client:
        source = EventSource(URL, client=client, on_close=lambda: seen.append(list(source)))
        source._use_sync()  # a sync source nobody iterates
        timer = threading.Timer(0.01, source.close)
        timer.start()
        timer.join(JOIN)
        assert not timer.is_alive(), "close() in the timer thread deadlocked"
    assert seen == [[]]


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_native_asyncio_cancel_of_aclose_still_runs_on_close(anyio_backend: str) -> None:
    closed: list[int] = []
    async with _endless_client(close_takes=0.2) as client:
        source = EventSource(URL, client=client, on_close=lambda: closed.append(1))
        with anyio.fail_after(JOIN):
            async with source:
                await source.__anext__()
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(source.aclose(), 0.05)
    assert closed == [1]


async def test_a_fatal_error_survives_a_cancelled_finish(anyio_backend: str) -> None:
    async def on_error(error: Exception) -> None:
        await anyio.sleep(1.0)  # outlasts the caller's deadline

    transport = httpx.MockTransport(lambda request: httpx.Response(401))
    async with httpx.AsyncClient(transport=transport) as client:
        source = EventSource(URL, client=client, on_error=on_error)
        with anyio.fail_after(JOIN):
            with anyio.move_on_after(0.1):
                await source.__anext__()  # cancelled in on_error(ResponseError)
            with pytest.raises(ResponseError):
                await source.__anext__()
