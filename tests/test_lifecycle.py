"""The connection's life against a third-party HTTP/1.1 keep-alive server
(hypercorn, tests/_servers.py), through the public API only: close() and
restart() from another thread or task end a blocked read at once and never
touch a connection another request uses; close() inside a callback sets
CLOSED before it returns; user callbacks never make the caller uncancellable.
Each on both HTTP stacks (``stack``): the source's own client made on httpx or
httpx2, or a user's client of either.

Every wait is bounded (a thread join or an anyio deadline), so a hang fails
the test within seconds instead of stalling the run.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import anyio
import anyio.to_thread
import pytest

from eventsource import EventSource, EventSourceError, ReadyState, ServerSentEvent

from ._servers import HyperServer
from .conftest import Recorder, consume

# How long close() / restart() may take to end a blocked read. The rule is
# "at once" (a few ms: a thread switch, a loop turn, a reconnect); 0.3 s
# keeps a wide margin for a loaded 2-core CI machine (0.19 s was seen under
# load), and the defects these tests catch wait the read timeout, 10x that.
PROMPT = 0.3
READ_TIMEOUT = 3.0  # the source's read timeout: what a missed interrupt waits for
JOIN = 4.0  # a thread that is still running after this is hung


@pytest.fixture
def h1() -> Iterator[HyperServer]:
    with HyperServer("h1") as server:
        yield server


def _key() -> str:
    return uuid.uuid4().hex[:8]


def _close(source: EventSource) -> ReadyState:
    """close() from a worker thread; the state the moment it returned."""
    source.close()
    return source.ready_state


class Driven:
    """A sync source iterated in a thread of its own."""

    def __init__(self, source: EventSource) -> None:
        self.source = source
        self.events: list[ServerSentEvent] = []
        self.error: BaseException | None = None
        self.got = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            with self.source:
                for event in self.source:
                    self.events.append(event)
                    self.got.set()
        except BaseException as exc:  # reported by the test
            self.error = exc

    def join(self, timeout: float = JOIN) -> float:
        """Wait for the thread to end; return how long that took."""
        start = time.monotonic()
        self.thread.join(timeout)
        return time.monotonic() - start


# --- 1. a neighbour request on the same client ------------------------------------------


@pytest.fixture
def public_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """httpx's public stream for bodies. The fast body read closes its
    connection with the response, so no neighbour can ever be given it: the
    hazard these tests guard against exists on the public path (compressed
    bodies, other transports), where a finished connection goes back to the pool."""
    import eventsource._body as body_module

    monkeypatch.setattr(body_module, "fast_stream", lambda response, sync: None)


def test_close_while_waiting_to_reconnect_spares_the_neighbour_request(
    h1: HyperServer, public_path: None, stack: str
) -> None:
    """A's stream ended and A waits to reconnect; B, an unrelated streaming
    request on the same httpx.Client, got A's keep-alive connection from the
    pool. A.close() from another thread must not break B's read."""
    waiting = threading.Event()
    with h1.client(stack) as client:
        source = EventSource(
            f"{h1.url}/events?key=a&end_after=1",
            client=client,
            retry=30.0,  # A waits, long after its connection went back to the pool
            on_error=lambda error: waiting.set(),
        )
        a = Driven(source)
        try:
            assert waiting.wait(JOIN), "A's stream did not end"
            with client.stream("GET", f"{h1.url}/json?key=b&hold=b") as response:
                chunks = response.iter_raw()
                first = next(chunks)  # B is mid-body, its connection busy
                (request_a,) = h1.requests_for("a")
                (request_b,) = h1.requests_for("b")
                assert request_b.client_port == request_a.client_port, "B did not reuse A's conn"
                source.close()  # from the test's thread, not A's
                h1.release("b")
                rest = b"".join(chunks)
            assert json.loads(first + rest) == {"path": "/json", "ok": True}
            assert a.join() < PROMPT * 10, "A did not finish after close()"
            assert a.error is None
            assert source.ready_state is ReadyState.CLOSED
        finally:
            source.close()
            h1.release("b")
            a.join()
        assert not a.thread.is_alive()


@pytest.mark.anyio
@pytest.mark.parametrize("closer", ["aclose", "close-from-thread"])
async def test_async_close_while_waiting_to_reconnect_spares_the_neighbour_request(
    h1: HyperServer, anyio_backend: str, closer: str, public_path: None, stack: str
) -> None:
    """The async twin: B streams on the same httpx.AsyncClient, on A's old
    connection, while A is closed from another task or another thread."""
    waiting = anyio.Event()
    done = anyio.Event()
    async with h1.async_client(stack) as client:
        source = EventSource(
            f"{h1.url}/events?key=a&end_after=1",
            client=client,
            retry=30.0,
            on_error=lambda error: waiting.set(),
        )

        async def iterate() -> None:
            try:
                async with source:
                    async for _ in source:
                        pass
            finally:
                done.set()

        try:
            with anyio.fail_after(JOIN):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(iterate)
                    await waiting.wait()
                    async with client.stream("GET", f"{h1.url}/json?key=b&hold=b") as response:
                        chunks = response.aiter_raw()
                        first = await chunks.__anext__()
                        (request_a,) = h1.requests_for("a")
                        (request_b,) = h1.requests_for("b")
                        assert request_b.client_port == request_a.client_port, "no reuse"
                        if closer == "aclose":
                            await source.aclose()
                        else:
                            await anyio.to_thread.run_sync(source.close)
                        h1.release("b")
                        rest = b"".join([chunk async for chunk in chunks])
                    assert json.loads(first + rest) == {"path": "/json", "ok": True}
                    await done.wait()
        finally:
            h1.release("b")
    assert source.ready_state is ReadyState.CLOSED


# --- 3. close() / restart() end a blocked read -----------------------------------------

# Where the source's read blocks: the server holds the response head, or sends
# the head and then nothing; on a connection the pool had already used for an
# unrelated request, or on a fresh one.
WHERE = {
    "head-reused": ("hold_head=1", True),
    "body-reused": ("hold_after=0&hold_once=1", True),
    "head-fresh": ("hold_head=1", False),
    "body-fresh": ("hold_after=0&hold_once=1", False),
}


USERS_CLIENT_LIMIT = (
    "README limit (issue 21): on a client of the user's own, httpx's public stream is read, "
    "and its connection can go back to the pool inside a read, so a sync close()/restart() "
    "from another thread does not shut it down: the read ends with the next bytes or at "
    "read_timeout"
)


@pytest.mark.parametrize(
    ("where", "client_kind"),
    [
        ("head-fresh", "own"),
        ("body-fresh", "own"),
        *[
            pytest.param(
                where, "users", marks=pytest.mark.xfail(strict=True, reason=USERS_CLIENT_LIMIT)
            )
            for where in WHERE
            if where.startswith("head")  # (a blocked body read there ends or not by chance)
        ],
    ],
)
@pytest.mark.parametrize("action", ["close", "restart"])
def test_sync_interrupt_ends_a_blocked_read(
    h1: HyperServer, where: str, client_kind: str, action: str, stack: str
) -> None:
    """On the source's own client (the fast read) a close()/restart() from
    another thread ends a read blocked on the head or the body at once."""
    query, reused = WHERE[where]
    key = _key()
    opened = threading.Event()
    with h1.client(stack) as client:
        if reused:
            client.get(f"{h1.url}/json?key=neighbour").raise_for_status()
        source = EventSource(
            f"{h1.url}/events?key={key}&{query}",
            client=client if client_kind == "users" else None,
            http=stack,
            retry=0.001,
            read_timeout=READ_TIMEOUT,
            on_open=opened.set,
        )
        driven = Driven(source)
        try:
            if "head" in where:
                h1.wait_requests(1, key=key)  # the server holds the head
            else:
                assert opened.wait(JOIN)  # the head came; the body is silent
            (request,) = h1.requests_for(key)
            if reused:
                (neighbour,) = h1.requests_for("neighbour")
                assert request.client_port == neighbour.client_port, "no reuse: test is void"
            start = time.monotonic()
            if action == "close":
                source.close()
                state_at_return = source.ready_state
                driven.thread.join(JOIN)
                elapsed = time.monotonic() - start
                assert not driven.thread.is_alive(), "close() did not end the read"
            else:
                source.restart()
                assert driven.got.wait(JOIN), "no event after restart()"
                elapsed = time.monotonic() - start
            assert driven.error is None
            assert elapsed < PROMPT, f"{action}() took {elapsed:.3f} s to end the read"
            if action == "close":  # the rule: CLOSED before close() returns
                assert state_at_return is ReadyState.CLOSED
        finally:
            source.close()
            h1.release(key)
            driven.join()
        assert not driven.thread.is_alive()


@pytest.mark.anyio
@pytest.mark.parametrize("where", list(WHERE))
@pytest.mark.parametrize("action", ["aclose", "close", "close-from-thread", "restart"])
async def test_async_interrupt_ends_a_blocked_read(
    h1: HyperServer, where: str, action: str, stack: str
) -> None:
    query, reused = WHERE[where]
    key = _key()
    opened = anyio.Event()
    got = anyio.Event()
    done = anyio.Event()
    errors: list[BaseException] = []
    async with h1.async_client(stack) as client:
        if reused:
            (await client.get(f"{h1.url}/json?key=neighbour")).raise_for_status()
        source = EventSource(
            f"{h1.url}/events?key={key}&{query}",
            client=client,
            retry=0.001,
            read_timeout=READ_TIMEOUT,
            on_open=opened.set,
        )

        async def iterate() -> None:
            try:
                async with source:
                    async for _ in source:
                        got.set()
            except BaseException as exc:
                errors.append(exc)
                raise
            finally:
                done.set()

        try:
            with anyio.fail_after(JOIN):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(iterate)
                    if "head" in where:
                        await anyio.to_thread.run_sync(h1.wait_requests, 1, key)
                    else:
                        await opened.wait()
                    (request,) = h1.requests_for(key)
                    if reused:
                        (neighbour,) = h1.requests_for("neighbour")
                        assert request.client_port == neighbour.client_port, "no reuse"
                    start = anyio.current_time()
                    if action != "restart":
                        if action == "aclose":
                            await source.aclose()  # from another task
                            state_at_return = source.ready_state
                        elif action == "close":
                            source.close()  # from another task
                            state_at_return = source.ready_state
                        else:
                            state_at_return = await anyio.to_thread.run_sync(_close, source)
                        await done.wait()
                    else:
                        source.restart()
                        await got.wait()
                    elapsed = anyio.current_time() - start
                    await source.aclose()
        finally:
            h1.release(key)
        assert not errors
        assert elapsed < PROMPT, f"{action}() took {elapsed:.3f} s to end the read"
        if action != "restart":  # the rule: CLOSED before close() returns
            assert state_at_return is ReadyState.CLOSED


# --- 5. close() inside a callback -------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("callback", ["on_open", "on_message"])
async def test_close_inside_a_callback_sets_closed_before_it_returns(
    h1: HyperServer, mode: str, callback: str, stack: str
) -> None:
    recorder = Recorder()
    states: list[ReadyState] = []

    kwargs: dict[str, Any] = recorder.kwargs()
    original = kwargs[callback]

    def wrapped(*args: Any) -> None:
        original(*args)
        if not states:
            source.close()
            states.append(source.ready_state)  # close() has returned: CLOSED already
            recorder.log.append(("closed-by", callback))

    kwargs[callback] = wrapped
    # Five events in the first chunk: some are queued when close() is called.
    source = EventSource(f"{h1.url}/events?burst=5&interval=0.01", http=stack, **kwargs)
    recorder.source = source
    outcome = await consume(source, mode)
    assert outcome.error is None
    assert states == [ReadyState.CLOSED]
    assert source.ready_state is ReadyState.CLOSED
    kinds = recorder.kinds()
    after = kinds[kinds.index("closed-by") + 1 :]
    assert "message" not in after, f"on_message after close(): {recorder.log}"
    assert kinds.count("close") == 1, recorder.log


@pytest.mark.anyio
@pytest.mark.parametrize("callback", ["on_open", "on_message"])
async def test_aclose_inside_an_async_callback_sets_closed_before_it_returns(
    h1: HyperServer, anyio_backend: str, callback: str, stack: str
) -> None:
    states: list[ReadyState] = []
    messages_after: list[str] = []
    closes: list[ReadyState] = []

    async def close_now() -> None:
        await source.aclose()  # from inside the iterating task's callback
        states.append(source.ready_state)

    async def on_message(event: ServerSentEvent) -> None:
        if states:
            messages_after.append(event.data)
        elif callback == "on_message":
            await close_now()

    async def on_open() -> None:
        if callback == "on_open":
            await close_now()

    source = EventSource(
        f"{h1.url}/events?burst=5&interval=0.01",
        http=stack,
        on_open=on_open,
        on_message=on_message,
        on_close=lambda: closes.append(source.ready_state),
    )
    with anyio.fail_after(JOIN):
        async with source:
            async for _ in source:
                pass
    assert states == [ReadyState.CLOSED]
    assert messages_after == []
    assert closes == [ReadyState.CLOSED]


# --- 4. callbacks never make the caller uncancellable ----------------------------------

SLOW = 1.5  # a slow callback is let go after this (it "sleeps 10 s" until then)
CANCEL_AFTER = 0.5
MARGIN = 0.25


class SlowCallback:
    """An async callback that waits (up to 10 s) until released."""

    def __init__(self) -> None:
        self.release = anyio.Event()
        self.calls = 0

    async def __call__(self, *args: Any) -> None:
        self.calls += 1
        with anyio.move_on_after(10):
            await self.release.wait()


async def _release_later(slow: SlowCallback) -> None:
    # The watchdog: a callback wrongly shielded lets go after SLOW seconds, so
    # the test fails in SLOW seconds rather than ten.
    with anyio.move_on_after(SLOW):
        await slow.release.wait()
    slow.release.set()


@pytest.mark.anyio
async def test_a_slow_on_close_does_not_make_aclose_uncancellable(
    h1: HyperServer, anyio_backend: str, stack: str
) -> None:
    slow = SlowCallback()
    source = EventSource(f"{h1.url}/events", http=stack, on_close=slow)
    async with anyio.create_task_group() as tg:
        tg.start_soon(_release_later, slow)
        with anyio.fail_after(JOIN):
            async for _ in source:
                break
        start = anyio.current_time()
        with anyio.move_on_after(CANCEL_AFTER):
            await source.aclose()
        elapsed = anyio.current_time() - start
        slow.release.set()
    with anyio.fail_after(JOIN):
        await source.aclose()
    assert slow.calls == 1
    assert elapsed < CANCEL_AFTER + MARGIN, f"aclose() ignored cancellation for {elapsed:.2f} s"


@pytest.mark.anyio
@pytest.mark.parametrize("callback", ["on_message", "on_error"])
async def test_a_slow_callback_does_not_make_the_iterator_uncancellable(
    h1: HyperServer, anyio_backend: str, callback: str, stack: str
) -> None:
    slow = SlowCallback()
    # on_error: a 404 is fatal, reported to on_error as the source closes.
    path = "/events" if callback == "on_message" else "/status?code=404"
    callbacks: dict[str, Any] = {callback: slow}
    source = EventSource(f"{h1.url}{path}", http=stack, **callbacks)
    async with anyio.create_task_group() as tg:
        tg.start_soon(_release_later, slow)
        start = anyio.current_time()
        with anyio.move_on_after(CANCEL_AFTER):
            try:
                async for _ in source:
                    pass
            except EventSourceError:
                pass
        elapsed = anyio.current_time() - start
        slow.release.set()
    with anyio.fail_after(JOIN):
        await source.aclose()
    assert slow.calls >= 1
    assert elapsed < CANCEL_AFTER + MARGIN, f"{callback} ignored cancellation for {elapsed:.2f} s"
