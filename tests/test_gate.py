"""The per-origin limit on connection attempts in flight (``_gate``): the gate
itself, then async sources against real loopback servers: sources with a
client of their own (HTTP/1.1, chunked) are gated, sources on a shared client
(HTTP/1.1 keep-alive, HTTP/2 cleartext) are not."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from operator import contains
from typing import Any

import anyio
import anyio.abc
import anyio.to_thread
import httpx
import pytest

from eventsource import EventSource, ReadyState, ServerSentEvent, _gate
from tests._servers import HyperServer, serving

pytestmark = pytest.mark.anyio

WATCHDOG = 10.0  # a test still waiting after this is hung
ORIGIN = httpx.URL("http://127.0.0.1:9/")  # the gate only reads the URL


@pytest.fixture
def limit(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(_gate, "LIMIT", 2)
    monkeypatch.setattr(_gate, "STALL", 60.0)  # no stall unless a test makes one
    yield


def _gates() -> dict[Any, _gate.Gate]:
    try:
        return _gate._gates.get()
    except LookupError:
        return {}


def _waiting(url: httpx.URL) -> int:
    gate = _gates().get((url.scheme, url.host, url.port))
    return len(gate.waiters) if gate is not None else 0


async def _until(condition: Callable[[], bool], what: str) -> None:
    """Wait until condition() holds (gate state other tasks change)."""
    with anyio.move_on_after(WATCHDOG):
        while not condition():  # noqa: ASYNC110 (the state has no event of its own)
            await anyio.sleep(0.005)
        return
    raise AssertionError(f"waited {WATCHDOG} s for {what}")


# --- the gate ------------------------------------------------------------------------------


class Attempts:
    """Tasks that enter the gate, then hold their turn until released."""

    def __init__(self) -> None:
        self.entered: list[int] = []
        self.in_flight = 0
        self.most = 0
        self.release: dict[int, anyio.Event] = {}
        self.cancelled: list[int] = []
        self.limits: dict[int, int] = {}  # the gate's limit when each went

    async def attempt(self, n: int, url: httpx.URL = ORIGIN) -> None:
        self.release[n] = anyio.Event()
        try:  # takes its place in line before its first checkpoint
            gate = await _gate.enter(url)
        except anyio.get_cancelled_exc_class():
            self.cancelled.append(n)
            raise
        self.entered.append(n)
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        self.limits[n] = gate.limit
        try:
            await self.release[n].wait()
        finally:
            self.in_flight -= 1
            gate.leave()

    def in_at_least(self, count: int) -> bool:
        return len(self.entered) >= count

    async def start(self, tg: anyio.abc.TaskGroup, n: int) -> None:
        """Start attempt n, and wait until it is in (or in line)."""
        tg.start_soon(self.attempt, n)
        await _until(lambda: n in self.release, f"attempt {n} started")


async def test_at_most_limit_attempts_go_at_once_first_come_first_served(limit: None) -> None:
    attempts = Attempts()
    with anyio.fail_after(WATCHDOG):
        async with anyio.create_task_group() as tg:
            for n in range(6):
                await attempts.start(tg, n)  # they arrive in this order
            await _until(lambda: _waiting(ORIGIN) == 4, "four waiting")
            assert attempts.entered == [0, 1]
            for n in range(6):
                attempts.release[n].set()
                await _until(partial(attempts.in_at_least, min(n + 3, 6)), "the next in")
    assert attempts.entered == [0, 1, 2, 3, 4, 5]
    assert attempts.most == 2
    assert _gates() == {}  # an idle origin keeps nothing


async def test_origins_have_gates_of_their_own(limit: None) -> None:
    other = httpx.URL("http://127.0.0.1:10/")
    attempts = Attempts()
    with anyio.fail_after(WATCHDOG):
        async with anyio.create_task_group() as tg:
            for n in range(3):
                await attempts.start(tg, n)
            assert _waiting(ORIGIN) == 1
            gate = await _gate.enter(other)  # not held back by ORIGIN's queue
            gate.leave()
            for event in attempts.release.values():
                event.set()
    assert attempts.entered == [0, 1, 2]


async def test_a_waiter_cancelled_leaves_the_line(limit: None) -> None:
    attempts = Attempts()
    with anyio.fail_after(WATCHDOG):
        async with anyio.create_task_group() as tg:
            for n in range(2):
                await attempts.start(tg, n)
            async with anyio.create_task_group() as doomed:
                await attempts.start(doomed, 2)
                await attempts.start(tg, 3)
                assert _waiting(ORIGIN) == 2
                doomed.cancel_scope.cancel()
            assert attempts.cancelled == [2] and _waiting(ORIGIN) == 1
            attempts.release[0].set()
            await _until(lambda: attempts.entered == [0, 1, 3], "3 in, not 2")
            attempts.release[1].set()
            attempts.release[3].set()
    assert attempts.most == 2 and _gates() == {}


async def test_a_turn_given_to_a_cancelled_waiter_passes_on(limit: None) -> None:
    attempts = Attempts()
    with anyio.fail_after(WATCHDOG):
        async with anyio.create_task_group() as tg:
            held = await _gate.enter(ORIGIN)  # this task's own turn
            await attempts.start(tg, 1)
            async with anyio.create_task_group() as doomed:
                await attempts.start(doomed, 2)
                await attempts.start(tg, 3)
                assert _waiting(ORIGIN) == 2
                # The turn goes to 2, which is cancelled before it can run:
                # it runs to its next checkpoint (both backends finish a wake-up
                # already made), is cancelled there, and its turn passes on.
                held.leave()
                assert _waiting(ORIGIN) == 1
                doomed.cancel_scope.cancel()
            await _until(lambda: 3 in attempts.entered, "3 in")
            attempts.release[1].set()
            attempts.release[3].set()
    assert attempts.entered == [1, 2, 3] and attempts.most == 2
    assert _gates() == {}


async def test_a_stalled_origin_lets_more_go_each_stall(
    limit: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_gate, "STALL", 0.3)
    attempts = Attempts()
    times: dict[int, float] = {}
    with anyio.fail_after(WATCHDOG):
        async with anyio.create_task_group() as tg:
            start = anyio.current_time()
            for n in range(5):
                await attempts.start(tg, n)
            for n in range(5):
                await _until(partial(contains, attempts.entered, n), f"{n} in")
                times[n] = anyio.current_time() - start
            for event in attempts.release.values():
                event.set()
    # Nobody finished: LIMIT (2) more went after one STALL, and again after two.
    assert attempts.entered == [0, 1, 2, 3, 4] and attempts.most == 5
    early = 0.02  # a timer may fire up to a clock tick early
    assert times[2] >= 0.3 - early and times[4] >= 0.6 - early
    assert attempts.limits == {0: 2, 1: 2, 2: 4, 3: 4, 4: 6}  # 3 went with 2
    assert _gates() == {}


async def test_no_stall_while_attempts_finish(limit: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_gate, "STALL", 1.0)
    attempts = Attempts()
    with anyio.fail_after(WATCHDOG):
        async with anyio.create_task_group() as tg:
            for n in range(10):
                await attempts.start(tg, n)
            # One finishes every 0.15 s: 1.5 s in all, longer than STALL,
            # and never a second without progress.
            for n in range(10):
                await anyio.sleep(0.15)
                attempts.release[n].set()
    assert attempts.entered == list(range(10))
    assert attempts.most == 2


# --- sources ----------------------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[HyperServer]:
    with HyperServer("h1") as server:  # a source's own client speaks HTTP/1.1
        yield server


@pytest.fixture(params=["h1", "h2c"])
def any_server(request: pytest.FixtureRequest) -> Iterator[HyperServer]:
    with HyperServer(request.param) as server:
        yield server


def _held(server: HyperServer, heads: int) -> tuple[str, str]:
    """A fresh key, and a URL whose first ``heads`` requests get no head until
    the key is released; each stream then sends one event and ends."""
    key = uuid.uuid4().hex[:8]
    return key, f"{server.url}/events?key={key}&hold_head={heads}&end_after=1"


def _start(
    tg: anyio.abc.TaskGroup,
    n: int,
    url: str,
    got: list[ServerSentEvent],
    client: httpx.AsyncClient | None = None,
) -> None:
    for _ in range(n):
        tg.start_soon(_first_event, EventSource(url, client=client), got)


async def _first_event(source: EventSource, got: list[ServerSentEvent]) -> None:
    async with source:
        async for event in source:
            got.append(event)
            return


async def test_sources_to_one_origin_connect_a_limit_at_a_time(
    server: HyperServer, limit: None
) -> None:
    key, url = _held(server, 5)
    got: list[ServerSentEvent] = []
    with anyio.fail_after(WATCHDOG):
        async with anyio.create_task_group() as tg:
            _start(tg, 5, url, got)
            await anyio.to_thread.run_sync(server.wait_requests, 2, key)
            await _until(lambda: _waiting(httpx.URL(url)) == 3, "three waiting")
            await anyio.sleep(0.2)  # room for a request that should not come
            assert len(server.requests_for(key)) == 2
            server.release(key)
    assert len(got) == 5 and len(server.requests_for(key)) == 5
    assert _gates() == {}


async def test_sources_on_a_shared_client_are_not_gated(
    any_server: HyperServer, limit: None
) -> None:
    key, url = _held(any_server, 5)
    got: list[ServerSentEvent] = []
    async with any_server.async_client() as client:
        with anyio.fail_after(WATCHDOG):
            async with anyio.create_task_group() as tg:
                _start(tg, 5, url, got, client)
                # All five at once, though LIMIT is 2: the client's pool governs.
                await anyio.to_thread.run_sync(any_server.wait_requests, 5, key)
                assert _gates() == {}
                any_server.release(key)
    assert len(got) == 5


async def test_an_origin_slow_to_answer_holds_nobody_back_for_long(
    server: HyperServer, limit: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_gate, "STALL", 0.3)
    key, url = _held(server, 5)
    got: list[ServerSentEvent] = []
    # The stall is counted from the gate's start, before the first request
    # is even connected: arrival times are taken from here (the server's clock
    # is time.monotonic() too), not from the first arrival, which a loaded
    # machine delays (it came 0.268 s before the third, once).
    start = time.monotonic()
    with anyio.fail_after(WATCHDOG):
        async with anyio.create_task_group() as tg:
            _start(tg, 5, url, got)
            requests = await anyio.to_thread.run_sync(server.wait_requests, 5, key)
            server.release(key)
    assert len(got) == 5
    # Two went at once, two more after a stall, the last after another.
    arrived = sorted(r.time - start for r in requests)
    early = 0.02  # a timer may fire up to a clock tick early
    assert arrived[2] >= 0.3 - early
    assert arrived[4] >= 0.6 - early


async def test_closing_a_source_that_waits_its_turn(server: HyperServer, limit: None) -> None:
    key, url = _held(server, 2)
    got: list[ServerSentEvent] = []
    closed: list[str] = []
    with anyio.fail_after(WATCHDOG):
        async with anyio.create_task_group() as tg:
            _start(tg, 2, url, got)
            await anyio.to_thread.run_sync(server.wait_requests, 2, key)
            waiting = EventSource(url, on_close=lambda: closed.append("close"))
            tg.start_soon(_first_event, waiting, got)
            await _until(lambda: _waiting(httpx.URL(url)) == 1, "one waiting")
            with anyio.fail_after(1.0):  # at once, not when a turn comes
                await waiting.aclose()
            assert waiting.ready_state is ReadyState.CLOSED and closed == ["close"]
            assert _waiting(httpx.URL(url)) == 0
            server.release(key)
        # Its place was not kept: a new source goes straight through.
        await _first_event(EventSource(url), got)
    assert len(got) == 3 and len(server.requests_for(key)) == 3
    assert _gates() == {}


async def _answer_one_event(stream: anyio.abc.SocketStream) -> None:
    """A second origin's whole answer to a request: one event, then the end."""
    async with stream:
        await stream.receive()
        await stream.send(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"connection: close\r\n\r\ndata: other\n\n"
        )


async def test_a_held_origin_does_not_hold_another_back(server: HyperServer, limit: None) -> None:
    key, url = _held(server, 3)
    got: list[ServerSentEvent] = []
    async with serving(_answer_one_event) as other:
        with anyio.fail_after(WATCHDOG):
            async with anyio.create_task_group() as tg:
                _start(tg, 3, url, got)
                await _until(lambda: _waiting(httpx.URL(url)) == 1, "one waiting")
                with anyio.fail_after(2.0):  # not after STALL (60 s)
                    await _first_event(EventSource(other, reconnect=False), got)
                assert [e.data for e in got] == ["other"]
                server.release(key)
    assert len(got) == 4
