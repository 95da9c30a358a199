"""One contract, every body path: the rules of the connection life
(/work/shared/DESIGN.md, "Rules of the connection life"; README "Reconnecting")
checked through the public API on each way a body can be read, in each mode
that way supports (tests/_paths.py: the fast read in three framings, httpx's
public stream through MockTransport, gzip, ASGI, HTTP/2 and httpx-aiohttp).

Each test is parametrized ``path-mode[-variant]``. A combination a path cannot
do is skipped with the reason; one the library gets wrong today is a strict
xfail that names what fails (remove the mark when it is fixed). Every wait has
a deadline (``until``, ``anyio.fail_after``, thread joins), so a hang fails
in seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
import zlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import anyio.to_thread
import httpx
import pytest

from eventsource import (
    ConnectionLostError,
    EventSource,
    EventSourceError,
    ReadTimeoutError,
    ReadyState,
    ServerSentEvent,
)
from eventsource.testing import sse_response

from ._paths import Case, Log, Run, Script, cases, event, opened, running, until

pytestmark = pytest.mark.anyio

WATCHDOG = 15.0  # seconds: a test still running after this is hung
PROMPT = 2.0  # close() / restart() act within this; a missed interrupt waits read_timeout (5 s)
READ_TIMEOUT = 5.0

# What fails today: the sync HTTP/2 read is a limit the README states. A
# strict xfail: it turns red when fixed, and the mark goes. (The issue 20
# defects these tests caught were marked here too until their fixes.)
H2_SYNC = (
    "README limit, not issue 20: a sync read on the connection of an httpx.Client(http2=True) "
    "is not interrupted from another thread (it may carry other streams): it ends with the "
    "next frame or at read_timeout (5 s)"
)

PUBLIC_SYNC = (
    "README limit: on a client of the user's own (httpx's public stream), a sync read is "
    "not interrupted from another thread (the connection may go back to the client's pool "
    "inside the read): it ends with the next bytes or at read_timeout (5 s)"
)
XFAIL_SYNC_THREAD = {
    "h2c-sync-thread": H2_SYNC,
    "httpx2-h2c-sync-thread": H2_SYNC,
    "public-sync-thread": PUBLIC_SYNC,
    "httpx2-public-sync-thread": PUBLIC_SYNC,
}

OPEN = ("open",)
CLOSE = ("close", "CLOSED")


def msg(n: int) -> tuple[str, str]:
    return ("message", f"e{n}")


def lost(will_retry: bool = True) -> tuple[str, str, bool]:
    return ("error", "ConnectionLostError", will_retry)


def async_only(case: Case) -> str | None:
    return "a caller's wait is cancelled in async code only" if not case.is_async else None


async def _blocked(case: Case) -> None:
    """Let the iterating task reach its next (blocking) read."""
    if case.is_async:
        await anyio.wait_all_tasks_blocked()


def _from_elsewhere(case: Case) -> str | None:
    if case.variant == "task" and not case.is_async:
        return "sync mode has no other task: close() from another thread covers it"
    if case.path == "mock" and not case.is_async:
        return (
            "a sync MockTransport body is the test's own blocking iterator: no socket and no "
            "timeout reach a read blocked in it"
        )
    return None


# --- 1. close() from another thread / task ends a blocked read ------------------------------------


def _close_now(source: EventSource, log: Log) -> ReadyState:
    source.close()
    state = source.ready_state
    log.add("close() returned")
    return state


@contextlib.asynccontextmanager
async def first_event(
    case: Case, log: Log, **options: Any
) -> AsyncIterator[tuple[Script, EventSource, Run]]:
    """The case's server with event 1 queued, a source on it (``options``, the
    log's callbacks) iterated in the background, and event 1 read."""
    async with opened(case) as env:
        env.script.add(*event(1))
        source = log.source = env.source(**options, **log.kwargs())
        async with running(source, env) as run:
            await until(lambda: run.data == ["e1"], "the first event")
            yield env.script, source, run


@pytest.mark.parametrize(
    ("case", "anyio_backend"),
    cases(variants=("thread", "task"), skip=_from_elsewhere, xfail=XFAIL_SYNC_THREAD),
)
async def test_close_from_elsewhere_ends_a_blocked_read(case: Case, anyio_backend: str) -> None:
    log = Log()
    with anyio.fail_after(WATCHDOG):
        # event 1, then silence: the read blocks
        async with first_event(case, log, read_timeout=READ_TIMEOUT) as (_, source, run):
            await _blocked(case)
            if case.variant == "thread":
                state = await anyio.to_thread.run_sync(_close_now, source, log)
            else:
                state = _close_now(source, log)
            closed_at = time.monotonic()
            await until(run.done.is_set, "the iterator's end", PROMPT + 1)
    assert state is ReadyState.CLOSED, "not CLOSED when close() returned"
    assert run.done_at - closed_at < PROMPT, f"ended {run.done_at - closed_at:.2f} s after close()"
    returned = log.entries.index(("close() returned",))
    assert "message" not in [entry[0] for entry in log.entries[returned:]]
    del log.entries[returned]
    assert log.entries == [OPEN, msg(1), CLOSE]
    assert run.data == ["e1"] and run.error is None


# --- 2. close() inside on_message -----------------------------------------------------------------


@pytest.mark.parametrize(("case", "anyio_backend"), cases())
async def test_close_inside_on_message(case: Case, anyio_backend: str) -> None:
    log = Log()
    states: list[ReadyState] = []

    def on_message(event: ServerSentEvent) -> None:
        log.on_message(event)
        if not states:
            source.close()
            states.append(source.ready_state)
            log.add("close() returned")

    with anyio.fail_after(WATCHDOG):
        async with opened(case) as env:
            for n in range(1, 6):  # in one write: four are queued when close() is called
                env.script.add(*event(n))
            source = log.source = env.source(
                read_timeout=READ_TIMEOUT, **{**log.kwargs(), "on_message": on_message}
            )
            async with running(source, env) as run:
                await until(run.done.is_set, "the iterator's end")
    assert states == [ReadyState.CLOSED]
    assert log.entries == [OPEN, msg(1), ("close() returned",), CLOSE]
    assert run.data == ["e1"] and run.error is None


# --- 3. restart() from another thread / task ------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "anyio_backend"),
    cases(variants=("thread", "task"), skip=_from_elsewhere, xfail=XFAIL_SYNC_THREAD),
)
async def test_restart_from_elsewhere_reconnects_at_once(case: Case, anyio_backend: str) -> None:
    log = Log()
    options = {"read_timeout": READ_TIMEOUT, "retry": 3.0}
    with anyio.fail_after(WATCHDOG):
        async with first_event(case, log, **options) as (script, source, run):
            await _blocked(case)
            restarted_at = time.monotonic()
            if case.variant == "thread":
                await anyio.to_thread.run_sync(source.restart)
            else:
                source.restart()
            await until(lambda: len(script.requests) == 2, "the new request", PROMPT + 1)
            script.send(*event(2))
            await until(lambda: run.data == ["e1", "e2"], "the event after the restart")
    first, second = script.requests
    assert second.time - restarted_at < PROMPT
    assert second.last_event_id == "1"
    assert log.entries == [OPEN, msg(1), OPEN, msg(2), CLOSE], "on_error called for restart()?"


# --- 4. a drop mid-event --------------------------------------------------------------------------


@pytest.mark.parametrize(("case", "anyio_backend"), cases())
async def test_a_drop_mid_event_resumes(case: Case, anyio_backend: str) -> None:
    log = Log()
    options = {"read_timeout": READ_TIMEOUT, "retry": 0.01, "min_retry_delay": 0.01}
    with anyio.fail_after(WATCHDOG):
        async with first_event(case, log, **options) as (script, _, run):
            script.drop_mid_event(*event(2))  # "id: 2\ndata: ", then a reset
            await until(lambda: len(script.requests) == 2, "the resumed request")
            script.send(*event(3))
            await until(lambda: len(run.events) == 3, "the rest")
    assert run.data == ["e1", "e2", "e3"]
    assert script.requests[1].last_event_id == "1"
    assert log.entries == [OPEN, msg(1), lost(), OPEN, msg(2), msg(3), CLOSE]
    assert log.errors[0].retry_delay == pytest.approx(0.01)


# --- 5. the server ends the body ------------------------------------------------------------------


@pytest.mark.parametrize(("case", "anyio_backend"), cases(variants=("final", "reconnect")))
async def test_a_clean_end(case: Case, anyio_backend: str) -> None:
    log = Log()
    final = case.variant == "final"
    options: dict[str, Any] = {"reconnect": False} if final else {"min_retry_delay": 0.01}
    options.update(read_timeout=READ_TIMEOUT, retry=0.01)
    with anyio.fail_after(WATCHDOG):
        async with first_event(case, log, **options) as (script, _, run):
            script.end()
            if final:
                await until(run.done.is_set, "the source's end")
            else:
                await until(lambda: len(script.requests) == 2, "the reconnect")
                script.send(*event(2))
                await until(lambda: len(run.events) == 2, "the next event")
    assert run.error is None
    if final:
        assert log.entries == [OPEN, msg(1), CLOSE] and len(script.requests) == 1
    else:
        assert log.entries == [OPEN, msg(1), lost(), OPEN, msg(2), CLOSE]
        assert "the server ended the stream" in str(log.errors[0])
        assert script.requests[1].last_event_id == "1"


# --- 6. read_timeout ------------------------------------------------------------------------------

SILENCE = 0.5  # the read timeout of these tests


def _no_timeout(case: Case) -> str | None:
    if case.path == "mock" and not case.is_async:
        return (
            "a sync MockTransport body is the test's own blocking iterator: no timeout reaches it"
        )
    return None


@pytest.mark.parametrize(("case", "anyio_backend"), cases(skip=_no_timeout))
async def test_a_silent_server_times_out_and_resumes(case: Case, anyio_backend: str) -> None:
    log = Log()
    options = {"read_timeout": SILENCE, "retry": 0.01, "min_retry_delay": 0.01}
    with anyio.fail_after(WATCHDOG):
        async with first_event(case, log, **options) as (script, _, run):
            await until(lambda: log.errors, "the read timeout", SILENCE * 10)
            await until(lambda: len(script.requests) == 2, "the reconnect")
            script.send(*event(2))
            await until(lambda: len(run.events) == 2, "the next event")
    silent = log.time_of("error", "ReadTimeoutError", True) - log.time_of(*msg(1))
    assert SILENCE * 0.9 <= silent < SILENCE * 10
    assert log.entries == [OPEN, msg(1), ("error", "ReadTimeoutError", True), OPEN, msg(2), CLOSE]
    assert isinstance(log.errors[0], ReadTimeoutError)
    assert script.requests[1].last_event_id == "1"


# --- 7. cancelling a caller's wait changes nothing ------------------------------------------------


async def _next(source: EventSource) -> tuple[str, Any]:
    try:
        return "event", (await source.__anext__()).data
    except StopAsyncIteration:
        return "end", None
    except EventSourceError as exc:
        return "error", exc


@pytest.mark.parametrize(
    ("case", "anyio_backend"),
    cases(
        variants=("reconnect", "final"),
        skip=async_only,
    ),
)
async def test_a_cancelled_read_is_never_a_clean_end(case: Case, anyio_backend: str) -> None:
    log = Log()
    final = case.variant == "final"
    options: dict[str, Any] = {"reconnect": False} if final else {}
    outcome: tuple[str, Any] | None = None
    with anyio.fail_after(WATCHDOG):
        async with opened(case) as env:
            script = env.script
            script.add(*event(1))
            source = log.source = env.source(
                read_timeout=READ_TIMEOUT,
                retry=0.01,
                min_retry_delay=0.01,
                **options,
                **log.kwargs(),
            )
            async with source:
                assert await _next(source) == ("event", "e1")
                for _ in range(5):  # each cancels a read blocked on the silent server
                    with anyio.move_on_after(0.05):
                        outcome = await _next(source)
                    if outcome is not None:
                        break
                if outcome is None:
                    script.send(*event(2))  # on the open connection, and to a resumed one
                    with anyio.fail_after(PROMPT * 2):
                        outcome = await _next(source)
    ended = [e for e in log.errors if "ended" in str(e)]
    assert not ended, f"a cancelled read was taken for the server's end: {ended}"
    assert outcome[0] != "end", "the source closed silently after a cancelled read"
    assert all(r.last_event_id == "1" for r in script.requests[1:])
    if case.fast or (outcome == ("event", "e2") and len(script.requests) == 1):
        # The read resumes: the same connection, nothing to report.
        assert outcome == ("event", "e2") and len(script.requests) == 1
        assert log.entries == [OPEN, msg(1), msg(2), CLOSE]
    elif final:  # the path cannot resume it: a broken body, and no reconnect
        assert outcome[0] == "error" and isinstance(outcome[1], ConnectionLostError)
        assert log.entries == [OPEN, msg(1), lost(False), CLOSE]
    else:  # a broken body, resumed (a cancel may also land in a reconnect: one or more)
        assert outcome == ("event", "e2") and len(script.requests) > 1
        assert log.entries[:2] == [OPEN, msg(1)] and log.entries[-2:] == [msg(2), CLOSE]
        assert set(log.entries[2:-2]) == {lost(), OPEN}


def _wait_for_on_asyncio(case: Case) -> str | None:
    if not case.is_async:
        return "a caller's wait is cancelled in async code only"
    if case.variant == "wait_for" and case.mode != "asyncio":
        return "asyncio.wait_for is asyncio's"
    return None


RETRY = 0.5  # the reconnection time the caller's polls must not restart
POLL = 0.15  # each poll of the caller: shorter than RETRY
LATE = 1.0  # the reconnect may come this long after RETRY


@pytest.mark.parametrize(
    ("case", "anyio_backend"),
    cases(
        variants=("move_on_after", "wait_for"),
        skip=_wait_for_on_asyncio,
    ),
)
async def test_the_reconnect_delay_is_a_deadline_across_calls(
    case: Case, anyio_backend: str
) -> None:
    log = Log()
    got: str | None = None
    with anyio.fail_after(WATCHDOG):
        async with opened(case) as env:
            script = env.script
            script.add(*event(1))
            source = log.source = env.source(read_timeout=READ_TIMEOUT, retry=RETRY, **log.kwargs())
            async with source:
                assert (await source.__anext__()).data == "e1"
                script.cut()
                script.add(*event(2))  # for the resumed request
                cut_at = time.monotonic()
                while got is None and time.monotonic() - cut_at < RETRY + LATE:
                    if case.variant == "wait_for":
                        try:
                            got = (await asyncio.wait_for(source.__anext__(), POLL)).data
                        except asyncio.TimeoutError:
                            pass
                    else:
                        with anyio.move_on_after(POLL):
                            got = (await source.__anext__()).data
    assert len(script.requests) > 1, f"no reconnect within {RETRY + LATE} s of the drop"
    assert RETRY * 0.9 <= script.requests[1].time - cut_at < RETRY + LATE
    assert got == "e2" and all(r.last_event_id == "1" for r in script.requests[1:])
    assert log.entries == [OPEN, msg(1), lost(), OPEN, msg(2), CLOSE]


# --- 8. a loop that never suspends can still be cancelled (MockTransport) -------------------------


class _Watchdog:
    """Closes the source from a thread: a loop with no checkpoint cannot be
    cancelled by the test's own deadline (fail_after) either."""

    def __init__(self, source: EventSource, after: float) -> None:
        self.fired = threading.Event()
        self._source = source
        self._timer = threading.Timer(after, self._fire)
        self._timer.daemon = True

    def _fire(self) -> None:
        self.fired.set()
        self._source.close()

    def __enter__(self) -> _Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._timer.cancel()


ZERO_LOOP_WATCHDOG = 2.0  # seconds: move_on_after(0.5) had 1.5 s to fire


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_a_zero_delay_loop_of_refused_connects_can_be_cancelled(anyio_backend: str) -> None:
    attempts = 0

    def refuse(request: httpx.Request) -> httpx.Response:
        nonlocal attempts
        attempts += 1
        raise httpx.ConnectError("refused", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as client:
        source = EventSource(
            "http://sse.test/", client=client, retry=0, min_retry_delay=0, max_retry_delay=0
        )
        with anyio.fail_after(10), _Watchdog(source, ZERO_LOOP_WATCHDOG) as watchdog:
            with anyio.move_on_after(0.5) as scope:
                async for _ in source:
                    pass
            await source.aclose()
    assert not watchdog.fired.is_set(), "move_on_after(0.5) never fired: the loop never yields"
    assert scope.cancelled_caught and attempts > 1


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_acollect_returns_from_a_zero_delay_loop(anyio_backend: str) -> None:
    def respond(request: httpx.Request) -> httpx.Response:
        return sse_response([{"data": "x"}])

    async with httpx.AsyncClient(transport=httpx.MockTransport(respond)) as client:
        source = EventSource("http://sse.test/", client=client, retry=0)
        started = time.monotonic()
        with anyio.fail_after(10), _Watchdog(source, ZERO_LOOP_WATCHDOG) as watchdog:
            events = await source.acollect(timeout=0.5)
        elapsed = time.monotonic() - started
    assert not watchdog.fired.is_set(), f"acollect(timeout=0.5) ran {elapsed:.1f} s"
    assert events and {e.data for e in events} == {"x"}


# --- 9. nothing past Content-Length is parsed -----------------------------------------------------

INJECTED = b"id: 3\ndata: INJECTED\n\n"


def _overrun(gzip: bool, later: bool) -> Callable[[socket.socket], None]:
    """A raw responder: Content-Length covers events 1 and 2; INJECTED
    follows, in the same write or 0.3 s later (compressed: the same gzip
    stream continued)."""
    body = event(1)[1] + event(2)[1]
    head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n"
    extra = INJECTED
    if gzip:
        z = zlib.compressobj(wbits=31)
        body = z.compress(body) + z.flush(zlib.Z_SYNC_FLUSH)
        extra = z.compress(INJECTED) + z.flush(zlib.Z_SYNC_FLUSH)
        head += "content-encoding: gzip\r\n"
    head += f"content-length: {len(body)}\r\n\r\n"

    def respond(sock: socket.socket) -> None:
        if later:
            sock.sendall(head.encode() + body)
            time.sleep(0.3)  # a server thread of the test's: the script's own pause
            try:
                sock.sendall(extra)
            except OSError:
                pass  # the client hung up at the end of the body
        else:
            sock.sendall(head.encode() + body + extra)

    return respond


@pytest.mark.parametrize(
    ("case", "anyio_backend"),
    cases(
        paths=("fast-length", "gzip"),
        variants=("same-write", "later-write"),
    ),
)
async def test_nothing_past_content_length_is_parsed(case: Case, anyio_backend: str) -> None:
    log = Log()
    with anyio.fail_after(WATCHDOG):
        async with opened(case) as env:
            script = env.script
            script.special.append(_overrun(case.path == "gzip", case.variant == "later-write"))
            script.add(*event(1))  # the history of the resumed request: nothing after id 2
            script.add(*event(2))
            source = log.source = env.source(
                read_timeout=READ_TIMEOUT, retry=0.01, min_retry_delay=0.01, **log.kwargs()
            )
            async with running(source, env) as run:
                await until(lambda: len(script.requests) == 2, "the reconnect")
                script.send(*event(3))
                await until(lambda: len(run.events) == 3, "the event after the reconnect")
    assert run.data == ["e1", "e2", "e3"]
    assert script.requests[1].last_event_id == "2"
    assert log.entries == [OPEN, msg(1), msg(2), lost(), OPEN, msg(3), CLOSE]
    assert "the server ended the stream" in str(log.errors[0])
