"""Chaos over HTTP/2: the chaos suite's run (test_chaos.py: the same history,
the same seeded fault schedule, armed the same way) against hypercorn over
h2c (cleartext, prior knowledge: tests/chaos/_h2server.py), with HTTP/2
clients of httpx and of httpx2 (async on asyncio and trio, and sync). Every
event exactly once, in order.

On HTTP/2 a drop is the end of the stream (END_STREAM), after the bytes up to
the cut: in the middle of an event, the client must discard the partial event
and resume from its Last-Event-ID. A stall is a stream that goes silent (the
client's read_timeout ends it; the connection and the other streams live
on). A 503 is an answer on its own stream. hypercorn ends a connection with
GOAWAY after GOAWAY_AFTER requests (httpcore fails the stream of the request
that drew it, whatever its plan: counted as spurious), and the client moves
to a new one; a sync client's read timeout retires its connection too.

The client resets a stream it leaves before its end (a stall, a close):
httpcore does not (encode/httpcore#943), so eventsource does it itself;
without that, the server kept each one open until the connection ended and
h2 on the client counted it open for good, so the 101st stream on a
connection failed, for ever (the test at the end). The figures count the
streams still open on the server when the run ends: ``left_open``.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from typing import Any, cast

import anyio
import anyio.to_thread
import pytest

from eventsource import EventSource, EventSourceError
from eventsource.testing import SSEServer

from ..conftest import client_for
from ._h2server import H2ChaosServer
from .conftest import ChaosSize
from .test_chaos import (
    CUTS,
    MAX_RETRY_DELAY,
    READ_TIMEOUT,
    RETRY,
    SEED,
    Chaos,
    exactly_once,
    make_history,
    make_schedule,
    report,
    take,
)

pytestmark = [pytest.mark.anyio, pytest.mark.chaos]

# hypercorn ends a connection (GOAWAY) after this many requests: a few times
# a run, the client moves to a new connection.
GOAWAY_AFTER = 100

# A reconnection slower than this (s) is a stall: ~20 ms is usual.
SLOW_RECONNECT = 0.5

# The plan each kind of attempt becomes on the server.
PLAN = {"between": "drop", "stall": "stall", "503": "status", **dict.fromkeys(CUTS[1:], "mid")}


async def test_every_event_exactly_once_over_http2(
    mode: str, anyio_backend: str, chaos_size: ChaosSize, stack: str
) -> None:
    rng = random.Random(f"{SEED}-{chaos_size.name}")  # test_chaos.py's schedule
    history = make_history(chaos_size.events, rng)
    attempts = make_schedule(chaos_size, rng)
    with H2ChaosServer(history.blocks, max_requests=GOAWAY_AFTER) as server:
        chaos = Chaos(cast(SSEServer, server), history, attempts)
        holder: list[EventSource] = []
        client = client_for(mode, stack, http1=False, http2=True)
        try:
            source = EventSource(
                server.url,
                client=client,
                retry=RETRY,
                min_retry_delay=0,
                max_retry_delay=MAX_RETRY_DELAY,
                read_timeout=READ_TIMEOUT,
                on_open=chaos.on_open,
                on_error=lambda error: chaos.on_error(holder[0], error),
            )
            holder.append(source)
            chaos.arm_next(0)
            started = time.perf_counter()
            received = await take(source, mode, str(chaos_size.events), chaos_size.watchdog)
            seconds = time.perf_counter() - started
            # Streams still open on the server when the run ends (the client
            # resets those it leaves; a reset may still be on its way).
            left_open = sum(not s.ended for s in server.served)
        finally:
            if mode != "sync":
                await client.aclose()
            else:
                client.close()
    requests = list(server.requests)
    served = server.served

    problem = exactly_once(received, history.expected)
    assert problem is None, problem

    faults = {attempt.fault for attempt, _ in chaos.armed}
    by_kind = Counter(
        ("drip-" if a.drip else "") + a.kind for a, _ in chaos.armed if a.kind != "503"
    )
    by_kind["503-burst"] = len({a.fault for a, _ in chaos.armed if a.kind == "503"})
    responses_503 = sum(a.kind == "503" for a, _ in chaos.armed)
    ended = len(chaos.armed)
    reconnects = len(requests) - 1
    stalls = by_kind["stall"]
    spurious = reconnects - ended + (len(requests) - responses_503 - chaos.opens)
    connections = len({r.client_port for r in requests})
    # httpcore fails the stream of the request that drew a GOAWAY (it gets no
    # answer, or only its head): its plan may be lost, counted as spurious.
    goaways = [s for s in served if s.goaway]
    # The client's reconnection time after the server ended a response (a
    # drop, a 503), arrival to arrival: retry=1 ms, min_retry_delay=0.
    gaps = [
        after.request.time - before.ended_at
        for before, after in zip(served, served[1:], strict=False)
        if before.ended == "end"
    ]
    slowest = max(gaps)
    lost = Counter(s.plan for s in goaways)
    report(
        {
            "framing": "h2c",
            "mode": "h2-" + ("sync" if mode == "sync" else anyio_backend),
            "stack": stack,
            "size": chaos_size.name,
            "events": chaos_size.events,
            "delivered": len(received),
            "faults": len(faults),
            "by_kind": dict(sorted(by_kind.items())),
            "responses_503": responses_503,
            "reconnects": reconnects,
            "opens": chaos.opens,
            "read_timeouts": chaos.errors["ReadTimeoutError"],
            "spurious": spurious,
            "seconds": seconds,
            "connections": connections,
            "left_open": left_open,
            "goaways": len(goaways),
            "slowest_reconnect": slowest,
            "errors": dict(chaos.errors),
        }
    )
    print(
        f"h2: {connections} TCP connection(s), {len(goaways)} GOAWAY(s), "
        f"{left_open} stream(s) left open, slowest reconnect {slowest * 1000:.0f} ms, "
        f"errors {dict(chaos.errors)}"
    )

    # HTTP/2, every request.
    assert {r.http_version for r in requests} == {"2"}
    assert len(served) == len(requests)

    # The schedule as test_chaos.py checks it.
    assert len(faults) >= chaos_size.faults * 0.95
    assert all(by_kind[kind] > 0 for kind in (*CUTS, "stall", "503-burst"))
    assert reconnects >= ended
    assert spurious <= 5 + ended // 10 + len(goaways)
    assert sum(chaos.errors.values()) == reconnects
    assert chaos.errors["ReadTimeoutError"] >= stalls - lost["stall"]
    assert responses_503 - lost["status"] <= chaos.errors["ResponseError"] <= responses_503
    assert chaos.opens <= len(requests) - responses_503

    # Every armed fault was played, in order, on a request of its own, and
    # ended that response where it was armed to: a drop after its n events
    # (the server ended the stream), a stall after n events (the client left).
    planned = [s for s in served if s.plan]
    assert [s.plan for s in planned] == [PLAN[a.kind] for a, _ in chaos.armed]
    for s, (attempt, n) in zip(planned, chaos.armed, strict=False):
        assert s.drip == attempt.drip
        if s.goaway:
            continue
        if s.plan != "status":
            assert s.events_sent == n, (attempt, s)
        # A stall ends when its connection does (the client's close, or the
        # server's stop, whichever the server sees first).
        assert s.ended in (("client", "stop") if s.plan == "stall" else ("end",)), (attempt, s)

    # The resumes: the first request carried no Last-Event-ID; every later one
    # carried the id of the last event the client had. The server knows which
    # that is (the previous response's start plus its events) unless a
    # spurious read timeout made the client leave a response early.
    assert requests[0].last_event_id is None
    position = 0
    short = 0
    for previous, request in zip(served, requests[1:], strict=False):
        expected = position + previous.events_sent
        last_event_id = request.last_event_id
        resume = 0 if last_event_id is None else int(last_event_id)
        assert last_event_id is None or last_event_id == str(resume)
        assert position <= resume <= expected
        short += resume < expected
        position = resume
    assert short <= spurious
    # No reconnection waits a backoff floor, nor for an HTTP/2 close.
    assert slowest < SLOW_RECONNECT, f"a reconnection took {slowest:.3f} s"
    # Each connection but the last ended with a GOAWAY, or, for a sync
    # client, a read timeout (httpcore retires the connection); an async
    # client keeps its connection until the GOAWAY.
    assert len({s.request.client_port for s in goaways}) == len(goaways)
    if mode == "sync":
        assert connections <= 1 + len(goaways) + chaos.errors["ReadTimeoutError"]
    else:
        assert connections == 1 + len(goaways)
        assert len(goaways) == len(requests) // (GOAWAY_AFTER + 1)


async def test_a_source_after_a_hundred_closed_ones_on_one_http2_client(
    mode: str, anyio_backend: str, stack: str
) -> None:
    """Open 101 sources one after the other on one HTTP/2 client; each takes
    its first event and is closed while its stream is still open (as after a
    read timeout, a break, close()). Each should get its event."""
    got: list[str] = []
    error: EventSourceError | None = None

    def source(client: Any) -> EventSource:
        return EventSource(url, client=client, retry=RETRY, max_retries=0)

    def run_sync() -> None:
        nonlocal error
        with client_for("sync", stack, http1=False, http2=True) as client:
            try:
                for _ in range(101):
                    with source(client) as each:
                        for event in each:
                            got.append(event.id)
                            break
            except EventSourceError as exc:
                error = exc

    with H2ChaosServer([b"id: 1\ndata: one\n\n"]) as server:
        url = server.url  # every stream stays open after its one event
        if mode == "sync":
            await anyio.to_thread.run_sync(run_sync)
        else:
            with anyio.fail_after(20):
                async with client_for(mode, stack, http1=False, http2=True) as client:
                    try:
                        for _ in range(101):
                            async with source(client) as each:
                                async for event in each:
                                    got.append(event.id)
                                    break
                    except EventSourceError as exc:
                        error = exc
    chain = []
    cause: BaseException | None = error
    while cause is not None:
        chain.append(repr(cause))
        cause = cause.__cause__
    assert len(got) == 101, f"source #{len(got) + 1} failed: {' <- '.join(chain)}"
