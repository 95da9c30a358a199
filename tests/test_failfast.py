"""Retrying only what retrying can fix: consecutive failures back off from a
floor (whatever `retry:` says), what retrying cannot fix (a bad URL, an
unsupported scheme, a failing headers/params callable) fails at once or
counts as a failed attempt, and a UTF-8 Last-Event-ID survives a reconnect.

Against a third-party server (hypercorn, tests/_servers.py) or a refused
port; async (asyncio, trio) and sync. The storm tests run a source for 2 s by
design and count its attempts.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import anyio
import anyio.to_thread
import pytest

from eventsource import (
    ConnectionLostError,
    EventSource,
    EventSourceError,
    ReadyState,
    RetriesExhaustedError,
)

from ._servers import HyperServer, refused_url
from .conftest import consume

pytestmark = pytest.mark.anyio

STORM_WINDOW = 2.0  # seconds a source runs in a storm test
STORM_LIMIT = 20  # attempts allowed in that window


@pytest.fixture
def h1() -> Iterator[HyperServer]:
    with HyperServer("h1") as server:
        yield server


async def run_for(source: EventSource, mode: str, seconds: float) -> BaseException | None:
    """Run the source for `seconds` (collect with a timeout, which closes it),
    bounded by a watchdog; return the error it ended with, if any."""
    try:
        with anyio.fail_after(seconds + 5):
            if mode == "sync":
                await anyio.to_thread.run_sync(lambda: source.collect(timeout=seconds))
            else:
                await source.acollect(timeout=seconds)
    except EventSourceError as exc:
        return exc
    return None


# --- 6. reconnect storms ------------------------------------------------------------------


async def test_retry_zero_then_503_is_no_storm(h1: HyperServer, mode: str) -> None:
    """The first response sets `retry: 0`, delivers an event and ends; every
    later request is answered 503. The source must back off."""
    source = EventSource(f"{h1.url}/events?key=s&retry=0&end_after=1&then=503")
    await run_for(source, mode, STORM_WINDOW)
    count = len(h1.requests_for("s"))
    assert count <= STORM_LIMIT, f"{count} requests in {STORM_WINDOW} s"
    assert source.ready_state is ReadyState.CLOSED


async def test_retry_zero_against_a_refused_port_is_no_storm(mode: str) -> None:
    errors: list[EventSourceError] = []
    source = EventSource(refused_url(), retry=0, on_error=errors.append)
    await run_for(source, mode, STORM_WINDOW)
    assert errors, "no attempt failed"
    assert all(isinstance(e, ConnectionLostError) for e in errors)
    assert len(errors) <= STORM_LIMIT, f"{len(errors)} attempts in {STORM_WINDOW} s"


@pytest.mark.parametrize("max_retries", [2, 3])
async def test_failures_after_a_good_connection_back_off_and_exhaust(
    h1: HyperServer, mode: str, max_retries: int
) -> None:
    """One good connection (an event, then the end), then only 503s: the wait
    doubles from one failure to the next, and max_retries ends the source
    with RetriesExhaustedError (the good connection's mark must not excuse
    the failures that follow it)."""
    errors: list[EventSourceError] = []

    def on_error(error: EventSourceError) -> None:
        errors.append(error)
        if len(errors) > 8:
            source.close()  # no end in sight: stop the loop, the asserts say why

    source = EventSource(
        f"{h1.url}/events?key=b&end_after=1&then=503",
        retry=0.1,
        max_retries=max_retries,
        on_error=on_error,
    )
    outcome = await consume(source, mode)
    requests = h1.requests_for("b")
    times = [r.time for r in requests]
    gaps = [round(b - a, 3) for a, b in zip(times[1:], times[2:], strict=False)]  # between the 503s
    assert isinstance(outcome.error, RetriesExhaustedError), (
        f"ended with {outcome.error!r} after {len(requests)} requests; gaps {gaps}"
    )
    assert [e.id for e in outcome.events] == ["1"]
    expected = 1 + max_retries + 1  # the good one, the first failure, the retries
    assert len(requests) == expected, f"{expected} requests expected; gaps {gaps}"
    # Jitter keeps each wait between half and all of its doubled value, so
    # no wait is shorter than the one before, and the third is at least twice
    # the first (1.6: room for scheduling noise).
    assert all(b >= 0.9 * a for a, b in zip(gaps, gaps[1:], strict=False)), (
        f"shrinking waits: {gaps}"
    )
    if len(gaps) >= 3:
        assert gaps[2] >= 1.6 * gaps[0], f"no backoff: gaps {gaps}"
    assert source.ready_state is ReadyState.CLOSED


# --- 7. what retrying cannot fix fails fast ---------------------------------------------


@pytest.mark.parametrize("url", ["example.com/stream", "ftp://host/", "http://this is invalid/"])
def test_an_unusable_url_is_refused_at_construction(url: str) -> None:
    # No network: nothing is iterated, the constructor must say no.
    with pytest.raises(ValueError):
        EventSource(url)


@pytest.mark.parametrize(
    "location",
    ["ftp://127.0.0.1/stream", "http://[::1/stream"],
    ids=["unsupported-scheme", "invalid-url"],
)
async def test_a_redirect_to_an_unusable_url_is_fatal(
    h1: HyperServer, mode: str, location: str
) -> None:
    errors: list[EventSourceError] = []
    source = EventSource(
        f"{h1.url}/redirect?key=r&to={quote(location)}",
        retry=0.01,
        max_retries=5,  # so a source that retries ends soon, and the count shows it
        on_error=errors.append,
    )
    outcome = await consume(source, mode)
    error = outcome.error
    assert isinstance(error, EventSourceError), f"{error!r}"
    assert type(error) is not EventSourceError, "a typed subclass, please"
    assert not isinstance(error, (RetriesExhaustedError, ConnectionLostError)), f"{error!r}"
    assert source.ready_state is ReadyState.CLOSED
    assert len(h1.requests_for("r")) == 1, "retried"
    assert outcome.events == []


# --- 8. a failing headers= / params= callable -------------------------------------------


@pytest.mark.parametrize("option", ["headers", "params"])
async def test_a_failing_callable_option_is_a_failed_attempt(
    h1: HyperServer, mode: str, option: str
) -> None:
    calls = threading.Event()
    original = RuntimeError("token refresh failed")

    def refresh() -> dict[str, Any]:
        calls.set()
        raise original

    errors: list[EventSourceError] = []
    option_kwargs: dict[str, Any] = {option: refresh}
    source = EventSource(
        f"{h1.url}/events?key=c",
        retry=0.01,
        max_retries=1,
        on_error=errors.append,
        **option_kwargs,
    )
    try:
        outcome = await consume(source, mode)
    except RuntimeError as exc:
        pytest.fail(f"the callable's exception escaped the iterator raw: {exc!r}")
    assert calls.is_set()
    assert isinstance(outcome.error, RetriesExhaustedError), f"{outcome.error!r}"
    assert errors, "on_error was not called"
    first = errors[0]
    assert isinstance(first, EventSourceError)
    assert first.__cause__ is original
    assert source.ready_state is ReadyState.CLOSED
    assert h1.requests_for("c") == []


# --- 9. a UTF-8 Last-Event-ID -------------------------------------------------------------


async def test_a_utf8_last_event_id_round_trips(h1: HyperServer, mode: str) -> None:
    source = EventSource(f"{h1.url}/events?key=u&prefix={quote('é-')}&end_after=1", retry=0.001)
    outcome = await consume(source, mode, limit=2)
    assert [e.id for e in outcome.events] == ["é-1", "é-2"]
    requests = h1.requests_for("u")
    assert requests[1].last_event_id == "é-1"
    assert dict(requests[1].raw_headers)[b"last-event-id"] == "é-1".encode()
