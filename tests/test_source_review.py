"""A review of EventSource against the contract of issue 3 and DESIGN.md:
closing, restarting and cancelling at every stage, state at every step, the
caller's client, leaks (fds, threads), logging, and the bugs found on the way
(bugs that were fixed are kept as regression tests).

Everything runs against respx mocks or the testing toolkit's SSEServer on
127.0.0.1 started by the test; no test sleeps to wait for something, retry
delays are a few ms.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
import warnings
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

import anyio
import anyio.to_thread
import httpx
import pytest
import respx

from eventsource import (
    ConnectionLostError,
    EventSource,
    EventSourceError,
    EventTooLargeError,
    ReadTimeoutError,
    ReadyState,
    ResponseError,
    RetriesExhaustedError,
    ServerSentEvent,
)
from eventsource.testing import SSEServer

from .conftest import Recorder, client_for, consume, sse

pytestmark = pytest.mark.anyio

URL = "http://sse.test/stream"
OTHER = "http://sse.test/other"
E = ServerSentEvent
FAST = {"retry": 0.001, "max_retry_delay": 0.005}
WAIT = 5.0  # the bound on every wait for something that should happen at once


def source_for(mode: str, recorder: Recorder | None = None, **kwargs: Any) -> EventSource:
    options = {**FAST, **kwargs}
    if recorder is not None:
        options.update(recorder.kwargs())
    source = EventSource(URL, client=client_for(mode), **options)
    if recorder is not None:
        recorder.source = source
    return source


async def in_mode(mode: str, fn: Callable[[], Any]) -> Any:
    """Run a blocking function in a worker thread for sync mode (the event
    loop of the test must not block), directly otherwise."""
    if mode == "sync":
        return await anyio.to_thread.run_sync(fn)
    return fn()


async def wait_thread_event(event: threading.Event) -> bool:
    return await anyio.to_thread.run_sync(event.wait, WAIT)


def endless() -> SSEServer:
    """Every connection gets "first" (id 1), then nothing until the client goes away."""
    return SSEServer(events=[{"data": "first", "id": "1"}])


def holding() -> SSEServer:
    """A server that reads the request and answers nothing (until release() or
    the client goes away): a slow server, the client stays 'connecting'."""
    server = SSEServer()
    server.hold()
    return server


async def client_hung_up(
    server: SSEServer,
    n: int = 1,
    timeout: float = WAIT,  # noqa: ASYNC109
) -> bool:
    """Whether the client closed the server's n-th connection within `timeout`."""
    conn = await server.await_for_connections(n, timeout)
    try:
        await server.await_until(lambda: conn.closed, timeout)
    except TimeoutError:
        return False
    return conn.closed_by_client


def client_hung_up_sync(server: SSEServer, n: int = 1, timeout: float = WAIT) -> bool:
    """client_hung_up() for a server run with `with` (blocks the calling thread)."""
    conn = server.wait_for_connections(n, timeout)
    try:
        server.wait_until(lambda: conn.closed, timeout)
    except TimeoutError:
        return False
    return conn.closed_by_client


# --- closing before use and from every callback --------------------------------------


async def test_close_before_use_makes_no_request(mode: str) -> None:
    recorder = Recorder()
    with respx.mock:
        route = respx.get(URL).mock(return_value=sse(b"data: a\n\n"))
        source = source_for(mode, recorder)
        recorder.source = source
        source.close()
        assert source.ready_state is ReadyState.CLOSED
        outcome = await consume(source, mode)
    assert outcome.events == [] and outcome.error is None
    assert route.calls.call_count == 0
    assert recorder.log == [("close", "CLOSED")]


async def test_aclose_before_use_closes_once(anyio_backend: str) -> None:
    recorder = Recorder()
    source = EventSource(URL, **recorder.kwargs())
    recorder.source = source
    await source.aclose()
    await source.aclose()
    source.close()
    async with source:
        assert [e async for e in source] == []
    assert recorder.log == [("close", "CLOSED")]
    assert source.ready_state is ReadyState.CLOSED and not source.is_connected


@pytest.mark.parametrize("where", ["on_open", "on_comment", "on_message", "on_error", "on_close"])
async def test_close_from_every_callback_closes_once_and_stops(mode: str, where: str) -> None:
    calls: dict[str, int] = {}
    source: EventSource

    def hook(name: str) -> Callable[..., None]:
        def callback(*args: Any) -> None:
            calls[name] = calls.get(name, 0) + 1
            if name == where and calls[name] == 1:
                source.close()
                source.close()  # twice: still once

        return callback

    names = ["on_open", "on_comment", "on_message", "on_error", "on_close"]
    with respx.mock:
        route = respx.get(URL).mock(
            side_effect=lambda request: sse(b": hi\ndata: a\n\ndata: b\n\n", fail=True)
        )
        source = source_for(mode, retry=30.0, **{n: hook(n) for n in names})
        outcome = await consume(source, mode, limit=2 if where == "on_close" else None)
    expected = {
        "on_open": [],
        "on_comment": [],
        "on_message": ["a"],  # the event whose callback closed is still returned
        "on_error": ["a", "b"],
        "on_close": ["a", "b"],
    }[where]
    assert [e.data for e in outcome.events] == expected
    assert outcome.error is None
    assert calls["on_close"] == 1
    assert route.calls.call_count == 1  # no reconnect, no 30 s wait
    assert source.ready_state is ReadyState.CLOSED


@pytest.mark.parametrize("where", ["on_open", "on_comment", "on_message", "on_error"])
async def test_restart_from_every_callback_reconnects_at_once(mode: str, where: str) -> None:
    calls: dict[str, int] = {}
    errors: list[EventSourceError] = []
    source: EventSource

    def hook(name: str) -> Callable[..., None]:
        def callback(*args: Any) -> None:
            calls[name] = calls.get(name, 0) + 1
            if name == "on_error":
                errors.append(args[0])
            if name == where and calls[name] == 1:
                source.restart()

        return callback

    names = ["on_open", "on_comment", "on_message", "on_error"]
    with respx.mock:
        route = respx.get(URL).mock(
            side_effect=lambda request: sse(b": hi\nid: 7\ndata: a\n\ndata: b\n\n")
        )
        # retry=30: a reconnect that waited would time the test out
        source = source_for(mode, retry=30.0, max_retry_delay=30.0, **{n: hook(n) for n in names})
        outcome = await consume(source, mode, limit=2 if where == "on_open" else 3)
    if where == "on_open":  # the first connection is dropped before any event
        assert [e.data for e in outcome.events] == ["a", "b"]
    else:  # events already received are delivered before the restart
        assert [e.data for e in outcome.events] == ["a", "b", "a"]
    assert route.calls.call_count == 2
    if where == "on_error":  # the end of the stream is an error, the restart is not
        assert len(errors) == 1 and isinstance(errors[0], ConnectionLostError)
    else:
        assert errors == []
        if where != "on_open":
            assert route.calls[1].request.headers["last-event-id"] == "7"


async def test_restart_before_use_and_after_close_are_harmless(mode: str) -> None:
    with respx.mock:
        route = respx.get(URL).mock(return_value=sse(b"data: a\n\n"))
        source = source_for(mode, reconnect=False)
        source.restart()
        outcome = await consume(source, mode)
        source.restart()
    assert [e.data for e in outcome.events] == ["a"]
    assert route.calls.call_count == 1
    assert source.ready_state is ReadyState.CLOSED


# --- closing and cancelling at every stage ----------------------------------------------


async def test_aclose_from_another_task_interrupts_the_reconnect_wait(anyio_backend: str) -> None:
    failed = anyio.Event()
    recorder = Recorder()
    with respx.mock:
        respx.get(URL).mock(return_value=httpx.Response(503))
        source = EventSource(URL, retry=60.0, max_retry_delay=60.0, **recorder.kwargs())
        recorder.source = source
        source._callbacks.on_error = lambda error: (recorder.on_error(error), failed.set())
        with anyio.fail_after(WAIT):
            async with anyio.create_task_group() as tg:

                async def reader() -> None:
                    async with source:
                        async for _ in source:
                            pass

                tg.start_soon(reader)
                await failed.wait()
                assert source.ready_state is ReadyState.CONNECTING
                await source.aclose()
                assert source.ready_state is ReadyState.CLOSED
    assert recorder.log == [("error", "ResponseError"), ("close", "CLOSED")]


async def test_close_from_another_task_interrupts_the_reconnect_wait(anyio_backend: str) -> None:
    failed = anyio.Event()
    closed = anyio.Event()
    with respx.mock:
        respx.get(URL).mock(return_value=httpx.Response(503))
        source = EventSource(
            URL,
            retry=60.0,
            max_retry_delay=60.0,
            on_error=lambda error: failed.set(),
            on_close=closed.set,
        )
        with anyio.fail_after(WAIT):
            async with anyio.create_task_group() as tg:

                async def reader() -> None:
                    async with source:
                        async for _ in source:
                            pass

                tg.start_soon(reader)
                await failed.wait()
                source.close()  # never blocks
                await closed.wait()


async def test_aclose_from_another_task_while_connecting(anyio_backend: str) -> None:
    closes: list[bool] = []
    async with holding() as server:
        source = EventSource(server.url, read_timeout=30, on_close=lambda: closes.append(True))
        with anyio.fail_after(WAIT):
            async with anyio.create_task_group() as tg:

                async def reader() -> None:
                    async with source:
                        async for _ in source:
                            pass

                tg.start_soon(reader)
                assert (await server.await_for_connections(1)).held
                assert source.ready_state is ReadyState.CONNECTING
                await source.aclose()
        assert await client_hung_up(server)
    assert closes == [True]
    assert len(server.requests) == 1


async def test_async_close_from_another_thread_while_connecting(anyio_backend: str) -> None:
    closed = anyio.Event()
    async with holding() as server:
        source = EventSource(server.url, read_timeout=30, on_close=closed.set)
        with anyio.fail_after(WAIT):
            async with anyio.create_task_group() as tg:

                async def reader() -> None:
                    async with source:
                        async for _ in source:
                            pass

                tg.start_soon(reader)
                assert (await server.await_for_connections(1)).held
                await anyio.to_thread.run_sync(source.close)
                await closed.wait()
        assert await client_hung_up(server)


@pytest.mark.parametrize("stage", ["connecting", "reading", "callback", "reconnect-wait"])
async def test_cancellation_at_every_stage(anyio_backend: str, stage: str) -> None:
    """Cancelling the task that iterates closes the response, stops any
    reconnect, sets CLOSED and calls on_close once; the own client is closed."""
    reached = anyio.Event()
    recorder = Recorder()
    # "connecting": the request gets no answer; "reconnect-wait": the server
    # hangs up after "first"; otherwise the stream stays open after "first".
    server = holding() if stage == "connecting" else endless()
    if stage == "reconnect-wait":
        server.drop_after(1)

    async def on_message(event: ServerSentEvent) -> None:
        recorder.on_message(event)
        reached.set()  # "reading": the reader goes straight back to reading
        if stage == "callback":
            await anyio.sleep_forever()

    async with server:
        source = EventSource(
            server.url, retry=60.0, max_retry_delay=60.0, read_timeout=30, **recorder.kwargs()
        )
        recorder.source = source
        source._callbacks.on_message = on_message
        if stage == "reconnect-wait":
            source._callbacks.on_error = lambda error: (recorder.on_error(error), reached.set())
        with anyio.fail_after(WAIT):
            with anyio.CancelScope() as scope:
                async with anyio.create_task_group() as tg:

                    async def reader() -> None:
                        async with source:
                            async for _ in source:
                                pass

                    tg.start_soon(reader)
                    if stage == "connecting":
                        assert (await server.await_for_connections(1)).held
                    else:
                        await reached.wait()
                    scope.cancel()
            assert scope.cancelled_caught
        if stage != "reconnect-wait":
            assert await client_hung_up(server)
    assert recorder.kinds().count("close") == 1
    assert recorder.log[-1] == ("close", "CLOSED")
    assert source.ready_state is ReadyState.CLOSED
    assert isinstance(source._driver.client, httpx.AsyncClient) and source._driver.client.is_closed
    assert len(server.requests) == 1


async def test_exception_in_the_loop_body_closes_the_source(mode: str) -> None:
    recorder = Recorder()
    async with endless() as server:
        source = EventSource(server.url, **recorder.kwargs())
        recorder.source = source

        def sync_body() -> None:
            with source:
                for _ in source:
                    raise KeyError("user bug")

        async def async_body() -> None:
            async with source:
                async for _ in source:
                    raise KeyError("user bug")

        with pytest.raises(KeyError):
            if mode == "sync":
                await anyio.to_thread.run_sync(sync_body)
            else:
                await async_body()
        assert await client_hung_up(server)
    assert recorder.kinds() == ["open", "message", "close"]
    assert source.ready_state is ReadyState.CLOSED


async def test_break_without_with_then_close_releases_everything(mode: str) -> None:
    """`break` without a `with` block leaves the source open (not promised
    otherwise); an explicit close afterwards ends it and nothing warns."""
    closes: list[bool] = []
    async with endless() as server:
        source = EventSource(server.url, on_close=lambda: closes.append(True))
        if mode == "sync":

            def body(source: EventSource = source) -> None:
                for _ in source:
                    break
                assert source.is_connected
                source.close()

            await anyio.to_thread.run_sync(body)
        else:
            async for _ in source:
                break
            assert source.is_connected
            await source.aclose()
        assert await client_hung_up(server)
    assert closes == [True]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del source
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]


def test_never_used_source_collected_without_warning() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        source = EventSource(URL, on_close=lambda: None)
        del source
        source = EventSource(URL, client=httpx.Client())
        del source
        gc.collect()
    assert caught == []


async def test_restart_from_outside_while_blocked_reading(mode: str) -> None:
    """restart() from another task (async) or thread (sync) while the reader
    waits for bytes: the connection is dropped at once and resumed, no error."""

    async def second_connection_gets_second() -> None:
        # The first connection gets "first" (id 1), the resumed one "second" (id 2).
        assert await client_hung_up(server, 1)
        await server.await_for_connections(2)
        server.send("second", id="2")

    errors: list[EventSourceError] = []
    first = threading.Event()
    async with endless() as server:
        source = EventSource(server.url, retry=60.0, on_error=errors.append)
        source.add_listener("message", lambda event: first.set())
        received: list[str] = []
        if mode == "sync":

            def reader() -> None:
                with source:
                    for event in source:
                        received.append(event.data)
                        if len(received) == 2:
                            break

            thread = threading.Thread(target=reader)
            thread.start()
            assert await wait_thread_event(first)
            source.restart()
            await second_connection_gets_second()
            await anyio.to_thread.run_sync(thread.join, WAIT)
            assert not thread.is_alive()
        else:
            with anyio.fail_after(WAIT):
                async with anyio.create_task_group() as tg:

                    async def areader() -> None:
                        async with source:
                            async for event in source:
                                received.append(event.data)
                                if len(received) == 2:
                                    break

                    tg.start_soon(areader)
                    assert await wait_thread_event(first)
                    source.restart()
                    await second_connection_gets_second()
        assert await client_hung_up(server, 1)
        assert await client_hung_up(server, 2)
    assert received == ["first", "second"]
    assert server.requests[1].last_event_id == "1"
    assert errors == []
    assert source.ready_state is ReadyState.CLOSED


# --- the caller's client ---------------------------------------------------------------


@pytest.mark.parametrize("ending", ["end", "fatal", "close", "break", "exhausted"])
async def test_a_callers_client_is_never_closed(mode: str, ending: str) -> None:
    client = client_for(mode)
    with respx.mock:
        route = respx.get(URL)
        if ending == "fatal":
            route.mock(return_value=httpx.Response(404))
        elif ending == "exhausted":
            route.mock(return_value=httpx.Response(503))
        else:
            route.mock(return_value=sse(b"data: a\n\ndata: b\n\n"))
        source = EventSource(URL, client=client, reconnect=ending != "end", max_retries=1, **FAST)
        if ending == "close":
            source.add_listener("message", lambda event: source.close())
        outcome = await consume(source, mode, limit=1 if ending == "break" else None)
        assert source.ready_state is ReadyState.CLOSED
        assert not client.is_closed
        respx.get(OTHER).mock(return_value=httpx.Response(200, text="still usable"))
        if isinstance(client, httpx.Client):
            assert client.get(OTHER).text == "still usable"
            client.close()
        else:
            assert (await client.get(OTHER)).text == "still usable"
            await client.aclose()
    if ending in ("fatal", "exhausted"):
        assert isinstance(outcome.error, (ResponseError, RetriesExhaustedError))
    else:
        assert outcome.error is None


async def test_a_callers_async_client_survives_cancellation(anyio_backend: str) -> None:
    client = httpx.AsyncClient()
    async with endless() as server:
        source = EventSource(server.url, client=client)
        with anyio.CancelScope() as scope:
            async with source:
                async for _ in source:
                    scope.cancel()
        assert await client_hung_up(server)
        assert not client.is_closed
        await client.aclose()


async def test_the_own_client_is_closed(mode: str) -> None:
    with respx.mock:
        respx.get(URL).mock(return_value=sse(b"data: a\n\n"))
        source = EventSource(URL, reconnect=False)
        await consume(source, mode)
    assert source._driver.client is not None and source._driver.client.is_closed


# --- state at each step -------------------------------------------------------------------


async def test_state_at_each_step(mode: str) -> None:
    snapshots: list[tuple[Any, ...]] = []
    source: EventSource

    def snap(where: str) -> None:
        error = source.error
        last = source.last_event
        snapshots.append(
            (
                where,
                source.ready_state,
                source.is_connected,
                type(error).__name__ if error is not None else None,
                source.last_event_id,
                source.data,
                last.data if last is not None else None,
            )
        )

    with respx.mock:
        respx.get(URL).mock(
            side_effect=[
                sse(b'id: 1\ndata: {"a": 1}\n\nid: 2\ndata: two\n\n', fail=True),
                sse(b"data: three\n\n"),
            ]
        )
        source = source_for(
            mode,
            on_open=lambda: snap("open"),
            on_message=lambda e: snap(f"message {e.data}"),
            on_error=lambda error: snap("error"),
            on_close=lambda: snap("close"),
        )
        snap("before")

        def sync_loop() -> None:
            with source:
                for event in source:
                    snap(f"loop {event.data}")
                    if event.data == "three":
                        break

        async def async_loop() -> None:
            async with source:
                async for event in source:
                    snap(f"loop {event.data}")
                    if event.data == "three":
                        break

        if mode == "sync":
            await anyio.to_thread.run_sync(sync_loop)
        else:
            await async_loop()
    C, OP, X = ReadyState.CONNECTING, ReadyState.OPEN, ReadyState.CLOSED  # noqa: N806
    a = {"a": 1}
    assert snapshots == [
        ("before", C, False, None, "", None, None),
        ("open", OP, True, None, "", None, None),
        ('message {"a": 1}', OP, True, None, "1", a, '{"a": 1}'),
        ('loop {"a": 1}', OP, True, None, "1", a, '{"a": 1}'),
        ("message two", OP, True, None, "2", "two", "two"),
        ("loop two", OP, True, None, "2", "two", "two"),
        ("error", C, False, "ConnectionLostError", "2", "two", "two"),
        ("open", OP, True, None, "2", "two", "two"),
        ("message three", OP, True, None, "2", "three", "three"),
        ("loop three", OP, True, None, "2", "three", "three"),
        ("close", X, False, None, "2", "three", "three"),
    ]


async def test_state_after_a_fatal_error(mode: str) -> None:
    recorder = Recorder()
    seen: list[Any] = []
    with respx.mock:
        respx.get(URL).mock(return_value=httpx.Response(404))
        source = source_for(mode, recorder)
        source._callbacks.on_error = lambda error: seen.append(
            (source.ready_state, source.error is error)
        )
        outcome = await consume(source, mode)
    assert isinstance(outcome.error, ResponseError) and outcome.error.status_code == 404
    assert outcome.error.response is not None and outcome.error.response.is_closed
    assert source.error is outcome.error
    assert seen == [(ReadyState.CLOSED, True)]
    assert source.ready_state is ReadyState.CLOSED and source.last_event is None
    assert source.data is None


async def test_last_event_id_follows_delivery_while_events_are_queued(mode: str) -> None:
    ids: list[tuple[str, str]] = []
    with respx.mock:
        respx.get(URL).mock(
            return_value=sse(
                b"id: 1\ndata: a\n\nid: 2\ndata: b\n\n: c\ndata: no id\n\nid: 3\ndata: c\n\n",
                b"id: 4\ndata: d\n\n",
                b"id: 5\n\n",
            )
        )
        source = source_for(mode, last_event_id="0", reconnect=False, on_comment=lambda t: None)
        assert source.last_event_id == "0"

        def loop() -> None:
            with source:
                for event in source:
                    ids.append((event.id, source.last_event_id))
                    assert repr(source).endswith(f"last_event_id={source.last_event_id!r}>")

        async def aloop() -> None:
            async with source:
                async for event in source:
                    ids.append((event.id, source.last_event_id))

        await (anyio.to_thread.run_sync(loop) if mode == "sync" else aloop())
    assert ids == [("1", "1"), ("2", "2"), ("2", "2"), ("3", "3"), ("4", "4")]
    assert source.last_event_id == "5"  # an id-only block still sets it


async def test_an_unfinished_block_does_not_move_the_last_event_id(mode: str) -> None:
    with respx.mock:
        route = respx.get(URL).mock(
            side_effect=[
                sse(b"id: 1\ndata: a\n\nid: 2\ndata: part", fail=True),
                sse(b"data: b\n\n"),
            ]
        )
        source = source_for(mode)
        outcome = await consume(source, mode, limit=2)
    assert [e.data for e in outcome.events] == ["a", "b"]
    assert route.calls[1].request.headers["last-event-id"] == "1"
    assert source.last_event_id == "1"


async def test_error_is_cleared_only_when_a_connection_opens(mode: str) -> None:
    errors: list[Any] = []
    source: EventSource
    with respx.mock:
        respx.get(URL).mock(
            side_effect=[httpx.Response(503), httpx.ConnectError("refused"), sse(b"data: ok\n\n")]
        )
        source = source_for(
            mode,
            on_error=lambda e: errors.append(source.error),
            on_open=lambda: errors.append(None),
        )
        # the value is read inside the callbacks
        outcome = await consume(source, mode, limit=1)
    assert [type(e).__name__ if e else None for e in errors] == [
        "ResponseError",
        "ConnectionLostError",
        None,
    ]
    assert outcome.events == [E(data="ok")] and source.error is None


# --- protocol at the source level -------------------------------------------------------


STREAM = b": c0\ndata: a\n: c1\n\n: c2\r\ndata: b\r\n\r\n:c3\rdata: c\r\r"
ORDER = ["comment c0", "comment c1", "event a", "comment c2", "event b", "comment c3", "event c"]


async def test_comments_and_events_keep_stream_order_across_every_chunk_split(mode: str) -> None:
    def run_all() -> list[list[str]]:
        results = []
        with respx.mock:
            for i in range(len(STREAM) + 1):
                for chunks in (
                    (STREAM[:i], STREAM[i:]),
                    tuple(STREAM[j : j + 1] for j in range(i)) + (STREAM[i:],),
                ):
                    order: list[str] = []
                    respx.get(URL).mock(return_value=sse(*chunks))
                    source = EventSource(
                        URL,
                        reconnect=False,
                        on_comment=lambda text, order=order: order.append(f"comment {text}"),
                        on_message=lambda e, order=order: order.append(f"event {e.data}"),
                    )
                    for _ in source:
                        pass
                    results.append(order)
        return results

    async def arun_all() -> list[list[str]]:
        results = []
        with respx.mock:
            for i in range(len(STREAM) + 1):
                order: list[str] = []
                respx.get(URL).mock(return_value=sse(STREAM[:i], STREAM[i:]))
                await EventSource(
                    URL,
                    reconnect=False,
                    on_comment=lambda text, order=order: order.append(f"comment {text}"),
                    on_message=lambda e, order=order: order.append(f"event {e.data}"),
                ).arun()
                results.append(order)
        return results

    results = await anyio.to_thread.run_sync(run_all) if mode == "sync" else await arun_all()
    for order in results:
        assert order == ORDER


async def test_a_charset_parameter_does_not_change_utf8_decoding(mode: str) -> None:
    with respx.mock:
        respx.get(URL).mock(
            return_value=httpx.Response(
                200,
                headers={"content-type": "Text/Event-Stream; charset=ISO-8859-1"},
                content="\ufeffdata: é✓\n\n".encode(),
            )
        )
        outcome = await consume(source_for(mode, reconnect=False), mode)
    assert outcome.events == [E(data="é✓")]


async def test_event_too_large_sets_error_and_closes(mode: str) -> None:
    recorder = Recorder()
    with respx.mock:
        route = respx.get(URL).mock(
            return_value=sse(b"data: ok\n\n", b"data: " + b"x" * 300, b"x" * 300 + b"\n\n")
        )
        source = source_for(mode, recorder, max_event_size=256)
        outcome = await consume(source, mode)
    assert outcome.events == [E(data="ok")]
    assert isinstance(outcome.error, EventTooLargeError) and source.error is outcome.error
    assert recorder.log[-2:] == [("error", "EventTooLargeError"), ("close", "CLOSED")]
    assert route.calls.call_count == 1


# --- statuses, retries and redirects ------------------------------------------------------


async def test_max_retries_zero_makes_one_request(mode: str) -> None:
    recorder = Recorder()
    with respx.mock:
        route = respx.get(URL).mock(return_value=httpx.Response(503))
        outcome = await consume(source_for(mode, recorder, max_retries=0), mode)
    assert route.calls.call_count == 1
    assert isinstance(outcome.error, RetriesExhaustedError)
    assert isinstance(outcome.error.__cause__, ResponseError)
    assert recorder.kinds() == ["error", "close"]  # one final report (issue 23)


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (httpx.Response(503), ResponseError),
        (httpx.Response(429, headers={"retry-after": "0"}), ResponseError),
        (httpx.ConnectError("refused"), ConnectionLostError),
        (httpx.Response(204), None),
        (httpx.Response(200, headers={"content-type": "text/event-stream"}), None),
    ],
    ids=["503", "429", "connect-error", "204", "empty-200"],
)
async def test_reconnect_false_never_retries(
    mode: str, response: Any, error: type[Exception] | None
) -> None:
    recorder = Recorder()
    with respx.mock:
        route = respx.get(URL).mock(side_effect=[response, sse(b"data: never\n\n")])
        outcome = await consume(source_for(mode, recorder, reconnect=False), mode)
    assert route.calls.call_count == 1
    assert outcome.events == []
    if error is None:
        assert outcome.error is None
        assert recorder.kinds() == (["close"] if "204" in str(response) else ["open", "close"])
    else:
        assert isinstance(outcome.error, error)
        assert recorder.kinds() == ["error", "close"]


async def test_reconnect_false_with_a_stalled_stream_raises_read_timeout(mode: str) -> None:
    async with SSEServer(events=["only"]) as server:
        server.stall_after(1)  # silent after "only", the socket stays open
        source = EventSource(server.url, reconnect=False, read_timeout=0.2)
        outcome = await consume(source, mode)
    assert [e.data for e in outcome.events] == ["only"]
    assert isinstance(outcome.error, ReadTimeoutError)
    assert len(server.requests) == 1


async def test_browser_strict_statuses(mode: str) -> None:
    with respx.mock:
        route = respx.get(URL).mock(return_value=httpx.Response(503))
        outcome = await consume(source_for(mode, retry_statuses=()), mode)
    assert isinstance(outcome.error, ResponseError) and outcome.error.status_code == 503
    assert route.calls.call_count == 1


def _delays(caplog: pytest.LogCaptureFixture) -> list[float]:
    return [
        float(r.args[1])  # type: ignore[index]
        for r in caplog.records
        if r.name == "eventsource" and "reconnecting in %.3g s" in str(r.msg)
    ]


async def test_retry_after_http_dates(mode: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="eventsource")
    now = datetime.now(timezone.utc)
    past = format_datetime(now - timedelta(hours=1), usegmt=True)
    future = format_datetime(now + timedelta(hours=1), usegmt=True)
    with respx.mock:
        route = respx.get(URL).mock(
            side_effect=[
                httpx.Response(503, headers={"retry-after": past}),
                httpx.Response(503, headers={"retry-after": future}),
                sse(b"data: ok\n\n"),
            ]
        )
        source = source_for(mode, retry=0.002, max_retry_delay=0.05)
        outcome = await consume(source, mode, limit=1)
    assert outcome.events == [E(data="ok")]
    assert route.calls.call_count == 3
    # a past date asks for nothing: the reconnection time; a far date: capped
    assert _delays(caplog) == [0.002, 0.05]


async def test_retry_after_seconds_win_when_longer(
    mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="eventsource")
    source: EventSource
    with respx.mock:
        route = respx.get(URL).mock(return_value=httpx.Response(503, headers={"retry-after": "7"}))
        # close from on_error: the 7 s wait never happens
        source = source_for(
            mode, retry=0.001, max_retry_delay=60, on_error=lambda e: source.close()
        )
        outcome = await consume(source, mode)
    assert _delays(caplog) == [7.0]
    assert route.calls.call_count == 1 and outcome.error is None


@pytest.mark.parametrize("status", [307, 308])
async def test_post_json_is_kept_over_307_and_308(mode: str, status: int) -> None:
    with respx.mock:
        original = respx.post(URL).mock(
            return_value=httpx.Response(status, headers={"location": "/other"})
        )
        other = respx.post(OTHER).mock(side_effect=[sse(b"data: a\n\n"), sse(b"data: b\n\n")])
        source = source_for(mode, method="post", json={"q": "hi"}, resume="resend")
        outcome = await consume(source, mode, limit=2)
    assert [e.data for e in outcome.events] == ["a", "b"]
    assert original.calls.call_count == 2 and other.calls.call_count == 2
    for call in other.calls:
        assert call.request.method == "POST"
        assert call.request.content == b'{"q":"hi"}'
        assert call.request.headers["content-type"] == "application/json"
        assert call.request.headers["accept"] == "text/event-stream"


async def test_post_becomes_get_after_303(mode: str) -> None:
    with respx.mock:
        respx.post(URL).mock(return_value=httpx.Response(303, headers={"location": "/other"}))
        other = respx.get(OTHER).mock(return_value=sse(b"data: a\n\n"))
        outcome = await consume(source_for(mode, method="POST", json={"q": 1}), mode, limit=1)
    assert [e.data for e in outcome.events] == ["a"]
    assert other.calls[0].request.content == b""


async def test_a_redirect_loop_fails_without_retry(mode: str) -> None:
    with respx.mock:
        route = respx.get(URL).mock(return_value=httpx.Response(302, headers={"location": URL}))
        outcome = await consume(source_for(mode), mode)
    assert isinstance(outcome.error, ResponseError) and outcome.error.status_code is None
    assert route.calls.call_count == 21  # the first request and httpx's 20 redirects


# --- concurrency, leaks, logging, surface -----------------------------------------------


async def test_two_tasks_iterating_one_source_is_a_clear_error(anyio_backend: str) -> None:
    first = anyio.Event()
    async with endless() as server:
        source = EventSource(server.url)
        with anyio.fail_after(WAIT):
            async with anyio.create_task_group() as tg:

                async def reader() -> None:
                    async with source:
                        async for _ in source:
                            first.set()  # then straight back into __anext__, no checkpoint

                tg.start_soon(reader)
                await first.wait()
                with pytest.raises(RuntimeError, match="already being iterated"):
                    await source.__anext__()
                assert source.is_connected  # the first reader is undisturbed
                await source.aclose()
        assert await client_hung_up(server)


def test_two_threads_iterating_one_source_is_a_clear_error() -> None:
    results: list[BaseException] = []
    source: EventSource

    def on_message(event: ServerSentEvent) -> None:  # runs inside __next__ of the reader
        try:
            next(source)
        except RuntimeError as exc:
            results.append(exc)

    with endless() as server:

        def in_another_thread(event: ServerSentEvent) -> None:
            other = threading.Thread(target=on_message, args=(event,))
            other.start()
            other.join(WAIT)

        source = EventSource(server.url, on_message=in_another_thread)
        with source:
            for event in source:
                assert event.data == "first"
                break
        assert client_hung_up_sync(server)
    assert len(results) == 1 and "already being iterated" in str(results[0])


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_no_fd_leak_over_many_cycles(mode: str) -> None:
    async def cycles(n: int, closing: str) -> None:
        async with endless() as server:
            for i in range(n):
                source = EventSource(server.url)
                if closing == "break":
                    outcome = await consume(source, mode, limit=1)
                    assert [e.data for e in outcome.events] == ["first"]
                elif mode == "sync":

                    def close_from_callback(source: EventSource = source) -> None:
                        source.add_listener("message", lambda e: source.close())
                        assert [e.data for e in source] == ["first"]

                    await anyio.to_thread.run_sync(close_from_callback)
                else:
                    async for _ in source:
                        await source.aclose()
                assert await client_hung_up(server, i + 1)

    await cycles(2, "break")  # warm up: imports, pools, the event loop's own fds
    before = _fds()
    await cycles(15, "break")
    await cycles(15, "close")
    assert _fds() <= before  # (another test's leftovers may be collected meanwhile)


def test_no_thread_left_behind() -> None:
    before = set(threading.enumerate())
    with endless() as server:
        for i in range(5):
            source = EventSource(server.url)
            received = threading.Event()
            source.add_listener("message", lambda e, received=received: received.set())
            reader = threading.Thread(target=lambda source=source: list(source))
            reader.start()
            assert received.wait(WAIT)
            source.close()  # from another thread, while the reader blocks
            reader.join(WAIT)
            assert not reader.is_alive()
            assert client_hung_up_sync(server, i + 1)
        with respx.mock:
            respx.get(URL).mock(return_value=httpx.Response(503))
            source = EventSource(URL, retry=60, max_retry_delay=60)
            source._callbacks.on_error = lambda error: source.close()
            assert list(source) == []
    assert set(threading.enumerate()) - before == set()


async def test_logging_goes_to_the_eventsource_logger(
    mode: str, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG, logger="eventsource")
    with respx.mock:
        respx.get(URL).mock(
            side_effect=[
                sse(b"id: 1\ndata: a\n\n", fail=True),
                httpx.Response(503),
                sse(b"data: b\n\n"),
            ]
        )
        outcome = await consume(source_for(mode), mode, limit=2)
    assert [e.data for e in outcome.events] == ["a", "b"]
    records = [r for r in caplog.records if r.name.startswith("eventsource")]
    messages = [r.getMessage() for r in records]
    assert any(m.startswith("connecting: GET " + URL) for m in messages)
    assert sum(m.startswith("open: " + URL) for m in messages) == 2
    # Each retry line names its cause (issue 23): the end of the stream, then the 503.
    lost = [m for m in messages if m.startswith("connection lost")]
    assert len(lost) == 1 and "reconnecting in" in lost[0] and "'1'" in lost[0]
    refused = [m for m in messages if "503 Service Unavailable" in m and "reconnecting in" in m]
    assert len(refused) == 1, messages
    assert messages[-1] == f"closed: {URL}"
    assert all(r.levelno < logging.WARNING for r in records)
    assert capsys.readouterr() == ("", "")
    # Only the NullHandler a library should add: nothing that outputs.
    handlers = logging.getLogger("eventsource").handlers
    assert all(type(handler) is logging.NullHandler for handler in handlers)


async def test_a_callback_exception_is_logged_as_a_warning(
    mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="eventsource")
    errors: list[EventSourceError] = []

    def on_open() -> None:
        raise ValueError("bad callback")

    def on_error(error: EventSourceError) -> None:
        errors.append(error)
        raise RuntimeError("bad on_error")  # must not recurse

    with respx.mock:
        respx.get(URL).mock(return_value=sse(b"data: a\n\n"))
        source = source_for(mode, reconnect=False, on_open=on_open, on_error=on_error)
        outcome = await consume(source, mode)
    assert [e.data for e in outcome.events] == ["a"] and outcome.error is None
    assert len(errors) == 1 and isinstance(errors[0].__cause__, ValueError)
    levels = {r.levelno for r in caplog.records if r.name == "eventsource"}
    assert logging.WARNING in levels and logging.ERROR in levels  # on_error's own failure


def test_the_contract_names_exist_in_both_styles() -> None:
    for name in [
        "ready_state",
        "is_connected",
        "last_event",
        "data",
        "error",
        "last_event_id",
        "retry",
        "url",
    ]:
        assert isinstance(getattr(EventSource, name), property), name
    for name in ["add_listener", "remove_listener", "restart", "close", "run"]:
        assert callable(getattr(EventSource, name))
    for name in ["aclose", "arun", "__aenter__", "__aexit__", "__anext__"]:
        assert callable(getattr(EventSource, name))
    assert [s.value for s in ReadyState] == [0, 1, 2]
    assert not hasattr(EventSource, "arestart")  # restart() never blocks: one for both
    source = EventSource(URL)
    assert source.url == URL and source.retry == 3.0 and source.ready_state == 0


async def test_sync_and_async_give_the_same_sequence_with_restart_and_comments(
    mode: str,
) -> None:
    log: list[Any] = []
    source: EventSource

    def on_message(event: ServerSentEvent) -> None:
        log.append(("message", event.data, source.last_event_id, source.ready_state.name))
        if event.data == "b" and sum(1 for x in log if x[:2] == ("message", "b")) == 1:
            source.restart()

    with respx.mock:
        respx.get(URL).mock(
            side_effect=lambda request: sse(
                b": hello\nid: 1\ndata: a\n\nid: 2\n", b"data: b\n\n", b"retry: 5\n\n", fail=True
            )
        )
        source = source_for(
            mode,
            on_open=lambda: log.append(("open", source.ready_state.name)),
            on_message=on_message,
            on_comment=lambda text: log.append(("comment", text)),
            on_error=lambda error: log.append(("error", type(error).__name__)),
            on_close=lambda: log.append(("close", source.ready_state.name)),
        )
        outcome = await consume(source, mode, limit=5)
    assert [e.data for e in outcome.events] == ["a", "b", "a", "b", "a"]
    assert log == [
        ("open", "OPEN"),
        ("comment", "hello"),
        ("message", "a", "1", "OPEN"),
        ("message", "b", "2", "OPEN"),  # restart: no error
        ("open", "OPEN"),
        ("comment", "hello"),
        ("message", "a", "1", "OPEN"),
        ("message", "b", "2", "OPEN"),
        ("error", "ConnectionLostError"),
        ("open", "OPEN"),
        ("comment", "hello"),
        ("message", "a", "1", "OPEN"),
        ("close", "CLOSED"),
    ]


# --- regressions: bugs found in this review, fixed since (c6a8767) -----------------------


@pytest.mark.parametrize("where", ["on_open", "on_message", "on_error"])
async def test_aclose_inside_a_coroutine_callback(anyio_backend: str, where: str) -> None:
    """Regression (found at a173b1a, fixed in c6a8767): `await source.aclose()` inside a
    coroutine callback deadlocks: aclose() sees _busy and waits for _done, which only the
    (suspended) __anext__ can set."""
    closes: list[bool] = []
    source: EventSource

    async def callback(*args: Any) -> None:
        await source.aclose()

    with respx.mock:
        respx.get(URL).mock(side_effect=[sse(b"data: a\n\ndata: b\n\n"), sse(b"data: c\n\n")])
        source = EventSource(URL, **FAST, on_close=lambda: closes.append(True))
        setattr(source._callbacks, where, callback)
        received: list[str] = []
        with anyio.fail_after(1):  # a deadlock, when it happens, is cut here
            async with source:
                async for event in source:
                    received.append(event.data)
    assert closes == [True]
    assert received == {"on_open": [], "on_message": ["a"], "on_error": ["a", "b"]}[where]


def test_sync_close_from_another_thread_while_connecting() -> None:
    """Regression (found at a173b1a, fixed in c6a8767): sync close() from another thread while
    the request is in flight (no response headers yet) does not interrupt it: _interrupt()
    only shuts the socket of an open response, so the reader stays blocked until the server
    answers or read_timeout."""
    with holding() as server:
        source = EventSource(server.url, read_timeout=30)
        done = threading.Event()
        reader = threading.Thread(target=lambda: (list(source), done.set()))
        reader.start()
        try:
            assert server.wait_for_connections(1, WAIT).held
            started = time.monotonic()
            source.close()
            assert time.monotonic() - started < 0.5, "close() blocked"
            assert done.wait(2), "the reader is still blocked in the request"
            assert client_hung_up_sync(server)
        finally:
            source.close()
            reader.join(WAIT)


async def test_async_close_then_break_without_with(anyio_backend: str) -> None:
    """Regression (found at a173b1a, fixed in c6a8767): in async mode close() outside __anext__
    only sets CLOSED: the response stays open (the server never sees the disconnect), on_close
    never runs, and the collected source warns 'unclosed <EventSource ... CLOSED>'."""
    closes: list[bool] = []
    closed = anyio.Event()
    async with endless() as server:
        source = EventSource(server.url, on_close=lambda: (closes.append(True), closed.set()))
        try:
            async for _ in source:
                source.close()  # the contract: never blocks, may finish asynchronously
                break
            assert source.ready_state is ReadyState.CLOSED
            seen = await client_hung_up(server, timeout=1.0)
            assert seen, "the server never saw the disconnect"
            with anyio.fail_after(1.0):  # on_close follows the hang-up, in the closing task
                await closed.wait()
            assert closes == [True]
        finally:
            await source.aclose()  # clean up so the test itself leaks nothing


async def test_close_before_use_runs_a_coroutine_on_close(anyio_backend: str) -> None:
    """Regression (found at a173b1a, fixed in c6a8767): close() before first use on a source with
    a coroutine on_close calls it the sync way (_finish/_invoke): the coroutine is discarded
    and on_error gets a TypeError."""
    closes: list[bool] = []
    errors: list[EventSourceError] = []

    async def on_close() -> None:
        closes.append(True)

    source = EventSource(URL, on_close=on_close, on_error=errors.append)
    source.close()
    async with source:
        async for _ in source:
            pass
    assert errors == []
    assert closes == [True]


async def test_a_redirect_to_an_invalid_location_fails_at_once(mode: str) -> None:
    """Regression (found at a173b1a, fixed in c6a8767): a redirect with an unusable Location
    (httpx RemoteProtocolError 'Invalid URL in location header') is treated as a network error
    and retried until max_retries, instead of failing at once with ResponseError."""
    with respx.mock:
        route = respx.get(URL).mock(
            return_value=httpx.Response(307, headers={"location": "http://[::1"})
        )
        # The source's own client: its transport sees the 3xx first.
        outcome = await consume(EventSource(URL, max_retries=3, retry=0.01), mode)
    assert route.calls.call_count == 1
    assert isinstance(outcome.error, ResponseError)


async def test_an_invalid_location_on_a_users_client_is_retried_gently(mode: str) -> None:
    """On a client of the user's own, httpx refuses the Location inside
    send() with a RemoteProtocolError that nothing public tells from a broken
    connection's: the documented fallback is a transient failure, retried
    with backoff until max_retries."""
    with respx.mock:
        route = respx.get(URL).mock(
            return_value=httpx.Response(307, headers={"location": "http://[::1"})
        )
        outcome = await consume(source_for(mode, max_retries=3), mode)
    assert route.calls.call_count == 4
    assert isinstance(outcome.error, RetriesExhaustedError)


async def test_cookies_survive_a_redirect(mode: str) -> None:
    """Regression (found at a173b1a, fixed in c6a8767): cookies= are passed per request
    (build_request), and httpx rebuilds the Cookie header of a redirected request from the
    client's jar only: the cookie is lost after any redirect."""
    with respx.mock:
        original = respx.get(URL).mock(
            return_value=httpx.Response(307, headers={"location": "/other"})
        )
        other = respx.get(OTHER).mock(return_value=sse(b"data: a\n\n"))
        source = EventSource(URL, reconnect=False, cookies={"session": "abc"})
        outcome = await consume(source, mode)
    assert [e.data for e in outcome.events] == ["a"]
    assert original.calls[0].request.headers["cookie"] == "session=abc"
    assert other.calls[0].request.headers.get("cookie") == "session=abc"


async def test_retry_reflects_the_stream_retry_field_at_once(mode: str) -> None:
    """Regression (found at a173b1a, fixed in c6a8767): source.retry (the current reconnection
    time) ignores a retry: field until the connection drops: _dropped() is the only place that
    copies parser.retry to the policy."""
    seen: list[float] = []
    with respx.mock:
        respx.get(URL).mock(return_value=sse(b"retry: 5000\ndata: a\n\n"))
        source = source_for(mode, reconnect=False)
        source.add_listener("message", lambda event: seen.append(source.retry))
        outcome = await consume(source, mode)
    assert outcome.events == [E(data="a", retry=5000)]
    assert seen == [5.0]


async def test_data_never_raises(mode: str) -> None:
    """Regression (found at a173b1a, fixed in c6a8767): source.data raises RecursionError for
    deeply nested data such as '[[[[...': the property catches ValueError only."""
    with respx.mock:
        respx.get(URL).mock(return_value=sse(b"data: " + b"[" * 100_000 + b"\n\n"))
        source = source_for(mode, reconnect=False)
        await consume(source, mode)
    assert source.data == "[" * 100_000


# --- found after c6a8767, fixed since ---------------------------------------------------


async def test_an_unusable_location_fails_at_once_and_says_so(mode: str) -> None:
    """httpx raises before it hands back the 3xx response (even with
    follow_redirects=False), so there is no status to carry: status_code is
    None, as ResponseError documents, and the message names the Location."""
    with respx.mock:
        route = respx.get(URL).mock(
            return_value=httpx.Response(307, headers={"location": "http://[::1"})
        )
        outcome = await consume(EventSource(URL, max_retries=3, retry=0.01), mode)
    assert route.calls.call_count == 1
    assert isinstance(outcome.error, ResponseError)
    assert outcome.error.status_code is None
    assert "Location" in str(outcome.error)


@pytest.mark.parametrize("url", ["http://localhost/stream", "http://[::1]:8000/stream"])
async def test_cookies_are_sent_to_localhost_and_ipv6_hosts(mode: str, url: str) -> None:
    """Regression of c6a8767: the jar spells a dotless host 'host.local' and an
    IPv6 one '[addr].local'; cookies set for the bare host were never sent."""
    with respx.mock:
        route = respx.get(url).mock(return_value=sse(b"data: a\n\n"))
        outcome = await consume(EventSource(url, reconnect=False, cookies={"s": "abc"}), mode)
    assert [e.data for e in outcome.events] == ["a"]
    assert route.calls[0].request.headers.get("cookie") == "s=abc"


def test_close_before_use_calls_a_plain_on_close_even_with_an_async_on_error() -> None:
    """Regression of c6a8767: an async on_error deferred a plain on_close."""
    closes: list[bool] = []

    async def on_error(error: EventSourceError) -> None:
        pass

    source = EventSource(URL, on_error=on_error, on_close=lambda: closes.append(True))
    source.close()
    assert source.ready_state is ReadyState.CLOSED
    assert closes == [True]
