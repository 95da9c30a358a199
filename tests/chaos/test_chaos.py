"""Chaos: every event exactly once, in order, whatever the network does.

An SSEServer holds a history of N events (ids 1..N) and honours Last-Event-ID.
A fault schedule drawn from a seeded random generator is played against it:
drops between events, in the middle of an event at a random offset, in the
middle of a line, inside a multi-byte UTF-8 character, between the CR and LF of
a block's first CRLF (the block's LAST CR would complete the blank line by
itself, so a cut there is not mid-event: random offsets avoid it), stalls longer
than read_timeout, bursts of 503 with ``Retry-After: 0``, and slow-drip
connections (one byte per write). The history mixes LF, CRLF and CR line ends,
multi-byte UTF-8 (2, 3 and 4 bytes), multi-line data, comments, ``event:`` and
``retry:`` fields, with the id line first or last in its block.

Faults are armed one connection attempt at a time, from the client's
``on_error`` (which runs after a connection ended and before the next request),
at the position the client will resume from: the run is deterministic for a
seed. On a loaded machine a read timeout can fire spuriously (before the
response head, or in a gap of the stream): it ends that connection instead of
its fault, or adds a reconnect; the run stays exact, and the figures count them.

The client (async on asyncio and trio, and sync; its own client on httpx and
on httpx2) must deliver exactly the N
events, equal field by field, in order, whatever the server's framing: chunked
keep-alive (a cut lands inside a chunk), close-delimited, or Content-Length (a
finite body; a drop leaves it short). Each run prints its figures (``pytest
-s``); with EVENTSOURCE_CHAOS_REPORT=path they are also appended there as JSON
lines. Sizes: tests/chaos/conftest.py (CI) and ``python -m tests.chaos.run_full``.
"""

from __future__ import annotations

import json
import os
import random
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.to_thread
import pytest

from eventsource import EventSource, EventSourceError
from eventsource.testing import SSEServer
from eventsource.testing._http import Framing

from .conftest import ChaosSize

pytestmark = [pytest.mark.anyio, pytest.mark.chaos]

SEED = 20240607

ASCII = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:{}[]\"'-_/"
MULTI = "éüßñ€Ω中文字😀🎉ж"  # 2-, 3- and 4-byte UTF-8
TYPES = [None, None, None, "tick", "update", "ünïcödé"]
LINE_ENDS = [b"\n", b"\r\n", b"\r"]

RETRY = 0.001  # reconnection time (s): the run is about faults, not waiting
MAX_RETRY_DELAY = 0.005  # bounds the backoff after 503s and empty connections
READ_TIMEOUT = 0.2  # a stall costs this much
DRIP_DELAY = 0.0002  # seconds between the bytes of a slow-drip connection


# --- the history -----------------------------------------------------------------------


@dataclass
class History:
    blocks: list[bytes]
    expected: list[tuple[str, str, str, int | None]]  # (type, data, id, retry) of event i+1

    def has_utf8(self, index: int) -> bool:
        return re.search(rb"[\xc0-\xff]", self.blocks[index]) is not None

    def has_crlf(self, index: int) -> bool:
        return b"\r\n" in self.blocks[index]


def make_history(n: int, rng: random.Random) -> History:
    blocks, expected = [], []
    for i in range(1, n + 1):
        eol = rng.choices(LINE_ENDS, weights=[5, 4, 1])[0]
        chars = ASCII + (MULTI if rng.random() < 0.4 else "")
        data_lines = [
            "".join(rng.choice(chars) for _ in range(rng.randint(1, 40)))
            for _ in range(1 if rng.random() < 0.8 else rng.randint(2, 4))
        ]
        if chars != ASCII and all(c.isascii() for c in "".join(data_lines)):
            pos = rng.randint(0, len(data_lines[0]))
            data_lines[0] = data_lines[0][:pos] + rng.choice(MULTI) + data_lines[0][pos:]
        type_ = rng.choice(TYPES)
        retry = 1 if rng.random() < 0.02 else None
        lines = [f"data: {line}" for line in data_lines]
        if type_ is not None:
            lines.insert(rng.randint(0, len(lines)), f"event: {type_}")
        if retry is not None:
            lines.insert(rng.randint(0, len(lines)), f"retry: {retry}")
        if rng.random() < 0.1:
            lines.insert(0, ": keep-alive ☕")
        id_line = f"id: {i}"
        if rng.random() < 0.5:
            lines.insert(0, id_line)
        else:
            lines.append(id_line)
        block = b"".join(line.encode() + eol for line in lines) + eol
        blocks.append(block)
        expected.append((type_ or "message", "\n".join(data_lines), str(i), retry))
    return History(blocks, expected)


# --- the fault schedule ----------------------------------------------------------------

CUTS = ("between", "offset", "line", "utf8", "crlf")


@dataclass(frozen=True)
class Attempt:
    """What the server does with one connection attempt."""

    kind: str  # a CUTS kind, "stall", or "503"
    n: int = 0  # events sent on the connection before the fault
    frac: float = 0.5  # where a random-offset cut falls in the block
    drip: bool = False  # slow-drip this connection
    fault: int = 0  # index of the fault this attempt belongs to


def make_schedule(size: ChaosSize, rng: random.Random) -> list[Attempt]:
    """The attempts, in order; a 503 burst is several attempts of one fault."""
    kinds = ["stall"] * size.stalls + ["drip"] * size.drips
    rest = size.faults - len(kinds)
    kinds += rng.choices([*CUTS, "503"], weights=[3, 3, 2, 2, 2, 2], k=rest)
    rng.shuffle(kinds)
    connection_faults = sum(kind != "503" for kind in kinds)
    # Mean gap between connection faults: they end well before the history
    # does (cuts needing a UTF-8 or CRLF block move on to the next such block).
    gap = max(1, int(0.6 * size.events / connection_faults))
    attempts: list[Attempt] = []
    for fault, kind in enumerate(kinds):
        if kind == "503":
            attempts += [Attempt("503", fault=fault)] * rng.randint(1, 4)
        elif kind == "drip":
            cut = rng.choice(("between", "offset", "line"))
            attempts.append(Attempt(cut, rng.randint(0, 2), rng.random(), True, fault))
        else:
            attempts.append(Attempt(kind, rng.randint(0, 2 * gap), rng.random(), fault=fault))
    return attempts


@dataclass
class Chaos:
    """Arms the schedule's attempts one at a time, where the client resumes."""

    server: SSEServer
    history: History
    attempts: list[Attempt]
    next: int = 0
    armed: list[tuple[Attempt, int]] = field(default_factory=list)  # (attempt, its n)
    errors: Counter[str] = field(default_factory=Counter)
    opens: int = 0
    exhausted: bool = False

    def arm_next(self, resume_at: int) -> None:
        """Arm the next attempt; resume_at: events the client has (0-based
        index of the next block it gets)."""
        self.server.slow_drip(None)
        if self.exhausted or self.next >= len(self.attempts):
            return
        attempt = self.attempts[self.next]
        self.next += 1
        if attempt.kind == "503":
            self.server.respond_with(503, {"Retry-After": "0"})
            self.armed.append((attempt, 0))
            return
        index = resume_at + attempt.n
        need = {"utf8": self.history.has_utf8, "crlf": self.history.has_crlf}.get(attempt.kind)
        while need is not None and index < len(self.history.blocks) and not need(index):
            index += 1
        if index >= len(self.history.blocks) - 1:
            self.exhausted = True  # the rest of the history streams without faults
            return
        n = index - resume_at
        if attempt.kind == "between":
            self.server.drop_after(n)
        elif attempt.kind == "stall":
            self.server.stall_after(n)
        elif attempt.kind == "offset":
            block = self.history.blocks[index]
            # A CRLF block's last CR completes its blank line: cut before it.
            last = len(block) - (2 if block.endswith(b"\r\n\r\n") else 1)
            self.server.drop_mid_event(n, at=min(last, 1 + int(attempt.frac * last)))
        else:
            self.server.drop_mid_event(n, at=attempt.kind)  # type: ignore[arg-type]
        if attempt.drip:
            self.server.slow_drip(DRIP_DELAY)
        self.armed.append((attempt, n))

    def on_open(self) -> None:
        self.opens += 1

    def on_error(self, source: EventSource, error: EventSourceError) -> None:
        self.errors[type(error).__name__] += 1
        self.arm_next(int(source.last_event_id or 0))


# --- running the client ----------------------------------------------------------------


def _take_sync(source: EventSource, last_id: str, out: list[Any]) -> None:
    with source:
        for event in source:
            out.append(tuple(event))
            if event.id == last_id:
                break


async def take(source: EventSource, mode: str, last_id: str, watchdog: float) -> list[Any]:
    """The events up to the one with id `last_id`, as tuples; fails the test
    after `watchdog` seconds."""
    out: list[Any] = []
    if mode == "sync":
        fired = threading.Event()

        def bark() -> None:
            fired.set()
            source.close()

        timer = threading.Timer(watchdog, bark)
        timer.start()
        try:
            await anyio.to_thread.run_sync(_take_sync, source, last_id, out)
        finally:
            timer.cancel()
        if fired.is_set():
            pytest.fail(f"hung: {len(out)} events after {watchdog} s")
        return out
    with anyio.move_on_after(watchdog) as scope:
        async with source:
            async for event in source:
                out.append(tuple(event))
                if event.id == last_id:
                    break
    if scope.cancelled_caught:
        pytest.fail(f"hung: {len(out)} events after {watchdog} s")
    return out


def exactly_once(received: list[Any], expected: list[Any]) -> str | None:
    """None when received == expected, else a short description."""
    if received == expected:
        return None
    ids = [event[2] for event in received]
    counts = Counter(ids)
    duplicates = sorted((i for i, c in counts.items() if c > 1), key=int)[:10]
    missing = [e[2] for e in expected if e[2] not in counts][:10]
    first = next(
        (i for i, (r, e) in enumerate(zip(received, expected, strict=False)) if r != e),
        min(len(received), len(expected)),
    )
    got = received[first] if first < len(received) else None
    want = expected[first] if first < len(expected) else None
    return (
        f"{len(received)} events for {len(expected)}; duplicates {duplicates}, "
        f"missing {missing}; first difference at #{first}: got {got!r}, want {want!r}"
    )


def report(figures: dict[str, Any]) -> None:
    print(
        "\nchaos[{mode}, {stack}, {framing}] size={size} events={events} delivered={delivered} "
        "faults={faults} {by_kind} 503s={responses_503} reconnects={reconnects} "
        "opens={opens} read_timeouts={read_timeouts} spurious={spurious} "
        "time={seconds:.2f}s".format(**figures)
    )
    path = os.environ.get("EVENTSOURCE_CHAOS_REPORT")
    if path:
        with open(path, "a", encoding="utf-8") as file:
            file.write(json.dumps(figures) + "\n")


# --- the tests -------------------------------------------------------------------------


def test_the_schedule_is_seeded_and_complete(chaos_size: ChaosSize) -> None:
    one = make_schedule(chaos_size, random.Random(SEED))
    assert one == make_schedule(chaos_size, random.Random(SEED))
    kinds = Counter(a.kind for a in one)
    assert len({a.fault for a in one}) == chaos_size.faults
    assert set(kinds) == {*CUTS, "stall", "503"}
    history = make_history(300, random.Random(SEED))
    assert sum(map(history.has_utf8, range(300))) > 60
    assert sum(map(history.has_crlf, range(300))) > 60
    assert sum(b.endswith(b"\r\r") for b in history.blocks) > 10


@pytest.mark.parametrize("framing", ["chunked", "close", "content-length"])
async def test_every_event_exactly_once_under_chaos(
    mode: str, anyio_backend: str, chaos_size: ChaosSize, framing: Framing, stack: str
) -> None:
    rng = random.Random(f"{SEED}-{chaos_size.name}")  # the same schedule in every mode
    history = make_history(chaos_size.events, rng)
    attempts = make_schedule(chaos_size, rng)
    async with SSEServer(history.blocks, framing=framing) as server:
        chaos = Chaos(server, history, attempts)
        holder: list[EventSource] = []
        source = EventSource(
            server.url,
            http=stack,
            retry=RETRY,
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
        requests = server.requests

    problem = exactly_once(received, history.expected)
    assert problem is None, problem

    faults = {attempt.fault for attempt, _ in chaos.armed}
    by_kind = Counter(
        ("drip-" if a.drip else "") + a.kind for a, _ in chaos.armed if a.kind != "503"
    )
    by_kind["503-burst"] = len({a.fault for a, _ in chaos.armed if a.kind == "503"})
    responses_503 = sum(a.kind == "503" for a, _ in chaos.armed)
    ended = len(chaos.armed)  # every armed attempt ends its connection (or is a 503)
    reconnects = len(requests) - 1
    stalls = by_kind["stall"]
    # Spurious timeouts: reconnects beyond the armed attempts, and connections
    # the server answered but the client gave up on before the head arrived.
    spurious = reconnects - ended + (len(requests) - responses_503 - chaos.opens)
    report(
        {
            "mode": "sync" if mode == "sync" else anyio_backend,
            "stack": stack,
            "framing": framing,
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
        }
    )
    assert len(faults) >= chaos_size.faults * 0.95
    assert all(by_kind[kind] > 0 for kind in (*CUTS, "stall", "503-burst"))
    # Every fault ended a connection (or was a 503), and each one was followed
    # by exactly one new request; read timeouts beyond the stalls are spurious
    # (a loaded machine), allowed but few.
    assert reconnects >= ended
    assert spurious <= 5 + ended // 10
    assert sum(chaos.errors.values()) == reconnects
    assert chaos.errors["ReadTimeoutError"] >= stalls
    assert chaos.errors["ResponseError"] == responses_503
    assert chaos.opens <= len(requests) - responses_503
    # The resumes: every request after the first carried the id of the last
    # event the client had, and the first carried none.
    assert requests[0].last_event_id is None
    assert all(r.last_event_id is None or r.last_event_id.isdigit() for r in requests)
