"""``collect()`` / ``acollect()``.

A source read for a while, its events returned (notebooks, quick scripts,
tests). The stop rules in one place for both; the errors they raise carry what
was collected.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

import anyio

from ._errors import ConnectionLostError, EventSourceError
from ._event import ServerSentEvent
from ._steps import ReadyState

if TYPE_CHECKING:
    from ._machine import Machine
    from ._source import EventSource

__all__ = ["acollect", "collect"]

Until = Callable[[ServerSentEvent], object] | None


async def acollect(
    source: EventSource,
    machine: Machine,
    n: int | None,
    timeout: float | None,  # noqa: ASYNC109 (a cap on collecting, not a wait)
    until: Until,
) -> list[ServerSentEvent]:
    """EventSource.acollect(): see its docstring."""
    if _nothing(machine, n):
        await source.aclose()
        return []
    events: list[ServerSentEvent] = []
    try:
        async with source:
            with anyio.move_on_after(math.inf if timeout is None else timeout) as scope:
                async for event in source:
                    if _enough(events, event, n, until):
                        break
        if scope.cancelled_caught:
            _never_opened(machine, timeout)
    except EventSourceError as exc:
        exc.collected = events  # (the partial answer of a stream that broke)
        raise
    return events


def collect(
    source: EventSource, machine: Machine, n: int | None, timeout: float | None, until: Until
) -> list[ServerSentEvent]:
    """EventSource.collect(): see its docstring."""
    if _nothing(machine, n):
        source.close()
        return []
    events: list[ServerSentEvent] = []
    timed_out = threading.Event()

    def expire() -> None:
        timed_out.set()
        source.close()

    timer = threading.Timer(timeout, expire) if timeout is not None else None
    try:
        with source:
            if timer is not None:
                timer.daemon = True
                timer.start()
            try:
                for event in source:
                    if _enough(events, event, n, until):
                        break
            finally:
                if timer is not None:
                    timer.cancel()
        if timed_out.is_set():
            _never_opened(machine, timeout)
    except EventSourceError as exc:
        exc.collected = events  # (the partial answer of a stream that broke)
        raise
    return events


def _nothing(machine: Machine, n: int | None) -> bool:
    """Checks first: RuntimeError on a closed source, ValueError for n < 0.

    True when nothing is to be collected (n == 0).
    """
    if machine.ready_state is ReadyState.CLOSED:
        raise RuntimeError(
            "this EventSource is closed (by close(), the end of its stream, or a "
            "collect() that returned): make a new EventSource to collect again"
        )
    if n is not None and n < 0:
        raise ValueError("n must be None or >= 0")
    return n == 0


def _enough(
    events: list[ServerSentEvent], event: ServerSentEvent, n: int | None, until: Until
) -> bool:
    """Keep the event; whether collecting stops with it."""
    events.append(event)
    return (until is not None and bool(until(event))) or len(events) == n


def _never_opened(machine: Machine, timeout: float | None) -> None:
    """After a timeout: raise when no connection ever opened."""
    if machine.opens:
        return
    error = machine.error
    if error is None:
        error = ConnectionLostError(f"no stream opened within {timeout} s")
    raise error
