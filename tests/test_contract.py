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

import time
from typing import Any

import anyio
import anyio.to_thread
import pytest

from eventsource import EventSource, ReadTimeoutError, ReadyState, ServerSentEvent

from ._paths import Case, Log, cases, event, opened, running, until

pytestmark = pytest.mark.anyio

WATCHDOG = 15.0  # seconds: a test still running after this is hung
PROMPT = 2.0  # close() / restart() act within this; a missed interrupt waits read_timeout (5 s)
READ_TIMEOUT = 5.0

# What fails today: the sync HTTP/2 read is a limit the README states. A strict
# xfail turns red when fixed, and the mark goes.
H2_SYNC = (
    "README limit, not issue 20: a sync read on the connection of an httpx.Client(http2=True) "
    "is not interrupted from another thread (it may carry other streams): it ends with the "
    "next frame or at read_timeout (5 s)"
)

OPEN = ("open",)
CLOSE = ("close", "CLOSED")


def msg(n: int) -> tuple[str, str]:
    return ("message", f"e{n}")


def lost(will_retry: bool = True) -> tuple[str, str, bool]:
    return ("error", "ConnectionLostError", will_retry)


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


@pytest.mark.parametrize(
    ("case", "anyio_backend"),
    cases(variants=("thread", "task"), skip=_from_elsewhere, xfail={"h2c-sync-thread": H2_SYNC}),
)
async def test_close_from_elsewhere_ends_a_blocked_read(case: Case, anyio_backend: str) -> None:
    log = Log()
    with anyio.fail_after(WATCHDOG):
        async with opened(case) as env:
            env.script.add(*event(1))  # then silence: the read blocks
            source = log.source = env.source(read_timeout=READ_TIMEOUT, **log.kwargs())
            async with running(source, env) as run:
                await until(lambda: run.data == ["e1"], "the first event")
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
    cases(variants=("thread", "task"), skip=_from_elsewhere, xfail={"h2c-sync-thread": H2_SYNC}),
)
async def test_restart_from_elsewhere_reconnects_at_once(case: Case, anyio_backend: str) -> None:
    log = Log()
    with anyio.fail_after(WATCHDOG):
        async with opened(case) as env:
            script = env.script
            script.add(*event(1))
            source = log.source = env.source(read_timeout=READ_TIMEOUT, retry=3.0, **log.kwargs())
            async with running(source, env) as run:
                await until(lambda: run.data == ["e1"], "the first event")
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
    with anyio.fail_after(WATCHDOG):
        async with opened(case) as env:
            script = env.script
            script.add(*event(1))
            source = log.source = env.source(
                read_timeout=READ_TIMEOUT, retry=0.01, min_retry_delay=0.01, **log.kwargs()
            )
            async with running(source, env) as run:
                await until(lambda: run.data == ["e1"], "the first event")
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
    with anyio.fail_after(WATCHDOG):
        async with opened(case) as env:
            script = env.script
            script.add(*event(1))
            source = log.source = env.source(
                read_timeout=READ_TIMEOUT, retry=0.01, **options, **log.kwargs()
            )
            async with running(source, env) as run:
                await until(lambda: run.data == ["e1"], "the first event")
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
    with anyio.fail_after(WATCHDOG):
        async with opened(case) as env:
            script = env.script
            script.add(*event(1))
            source = log.source = env.source(
                read_timeout=SILENCE, retry=0.01, min_retry_delay=0.01, **log.kwargs()
            )
            async with running(source, env) as run:
                await until(lambda: run.data == ["e1"], "the first event")
                await until(lambda: log.errors, "the read timeout", SILENCE * 10)
                await until(lambda: len(script.requests) == 2, "the reconnect")
                script.send(*event(2))
                await until(lambda: len(run.events) == 2, "the next event")
    silent = log.time_of("error", "ReadTimeoutError", True) - log.time_of(*msg(1))
    assert SILENCE * 0.9 <= silent < SILENCE * 10
    assert log.entries == [OPEN, msg(1), ("error", "ReadTimeoutError", True), OPEN, msg(2), CLOSE]
    assert isinstance(log.errors[0], ReadTimeoutError)
    assert script.requests[1].last_event_id == "1"
