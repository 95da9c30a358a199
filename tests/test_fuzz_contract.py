"""Hostile values (issue 20): every exception that reaches a caller or
``on_error`` is an EventSourceError.

1. Sans-IO: hypothesis drives ``eventsource._machine.Machine`` the way the
   drivers do (``next()``, then the step's outcome as an input), with random
   bytes in random splits (lines over ``max_event_size``, ``retry:`` of any
   length, ids with odd characters, NUL, lone CR, BOMs, invalid UTF-8),
   random statuses and headers, random ``fail()`` / ``end()``, stray inputs
   out of step, and ``close()`` / ``restart()`` requests between any two
   calls. Checked: the machine raises nothing; every Failure and final error
   is an EventSourceError; from ``close()`` on, ``ready_state`` is CLOSED and
   ``next()`` hands out FINISH once, then STOP; no event, comment or notice
   once closed; each connection's events and comments come out in stream
   order, as ``tests/reference.py`` reads the bytes the machine was fed.

2. End to end: ``FuzzServer``, a raw-socket HTTP/1.1 server on 127.0.0.1,
   answers every request with random bytes under a random framing (chunked
   with random chunk sizes or broken chunk framing; Content-Length exact,
   too short, too long, garbage or twice; close-delimited), a random status
   line and random headers (content types, Retry-After, Location on
   loopback only, garbage lines), gzip that may be corrupt or a coding that
   lies, resets mid-head and mid-body, bodies left open. Each round has a
   hostility level (how often those choices are hostile), random options,
   and a source iterated in one mode (asyncio, trio, sync) while restart()
   and close() are fired at random moments from another thread (every
   mode), another task (async), or the source's callbacks. Checked: every
   error raised from the iterator or given to on_error is an
   EventSourceError (type and repr in the message); on_close runs exactly
   once; ready_state is CLOSED when close() returns; no on_message after a
   close() in the iterating task; the iteration ends within AFTER_CLOSE of
   the first close(); nothing warns (ResourceWarning: unclosed sockets,
   abandoned generators). Every round is reproducible from its seed and
   number (the server's plans are drawn from ``seed/round/n``), not its
   timing. EVENTSOURCE_FUZZ_SEEDS=N runs N seeds per mode.

Defects found are reproduced by strict xfail tests at the end of each part
(named in their reasons), and kept out of the fuzz where they would fail it
(see ``KNOWN``): remove both when a defect is fixed.
"""

from __future__ import annotations

import contextlib
import gc
import gzip
import os
import random
import re
import socket
import struct
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import version
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import event as note
from hypothesis import strategies as st

from eventsource import (
    ConnectionLostError,
    EventIdError,
    EventSource,
    EventSourceError,
    EventTooLargeError,
    ReadTimeoutError,
    ResponseError,
    RetriesExhaustedError,
    ServerSentEvent,
)
from eventsource._machine import (
    CONNECT,
    FINISH,
    OPENED,
    READ,
    RELEASE,
    STOP,
    Comment,
    Failure,
    Machine,
    ReadyState,
)
from eventsource._policy import ConnectionPolicy

from ._servers import RawListener
from .reference import reference_parse

pytestmark = pytest.mark.usefixtures("loopback_only")  # no proxy from the environment

# CI runs a bounded example count; EVENTSOURCE_FUZZ_EXAMPLES=N runs N.
_EXAMPLES = int(os.environ.get("EVENTSOURCE_FUZZ_EXAMPLES") or 300)
FUZZ = settings(
    max_examples=_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=os.environ.get("EVENTSOURCE_FUZZ_RANDOM") != "1",  # CI: the same examples
)

# --- wire pieces ----------------------------------------------------------------------------

INVALID_UTF8 = [b"\xff", b"\xc3", b"\xe2\x82", b"\xf0\x9f\x98", b"\xed\xa0\x80", b"\x80\x80"]
BOM = b"\xef\xbb\xbf"
EOL = st.sampled_from([b"\n", b"\r\n", b"\r"])
ODD = st.sampled_from(
    [b"\x00", b"\r", b"\x0b", b"\x0c", b"\t", b" ", b"\xc2\x85", b"\xe2\x80\xa8", BOM, b"\x1c"]
    + INVALID_UTF8
)
odd_text = st.lists(st.one_of(st.binary(max_size=4), ODD, st.just(b"x")), max_size=6).map(b"".join)
retry_value = st.one_of(
    st.integers(0, 10**6).map(lambda n: str(n).encode()),
    st.integers(1, 5000).map(lambda n: b"9" * n),  # any length
    st.integers(1, 400).map(lambda n: b"0" * n + b"1"),
    st.sampled_from([b"", b"-1", b"1e3", b"1.5", b" 10", b"10 ", b"\xef\xbc\x91", b"0x10"]),
)
field_line = st.tuples(
    st.sampled_from([b"data", b"id", b"event", b"retry", b"", b"Data", b"ID", b"foo", b"data\x00"]),
    st.sampled_from([b": ", b":", b""]),  # no colon: the value runs into the name
    st.one_of(odd_text, retry_value),
    EOL,
).map(b"".join)
block = st.tuples(st.lists(field_line, min_size=1, max_size=5), EOL).map(
    lambda parts: b"".join(parts[0]) + parts[1]
)
good_block = st.tuples(
    st.lists(
        st.tuples(
            st.sampled_from([b"data: ", b"data: ", b"data:", b"id: ", b"event: ", b"retry: "]),
            st.text("ab \u00e9\u2028\U0001f600{}", max_size=8).map(str.encode),
            EOL,
        ).map(b"".join),
        min_size=1,
        max_size=4,
    ).map(b"".join),
    EOL,
).map(b"".join)
PIECES = {
    "good": good_block,
    "block": block,
    "comment": st.tuples(st.sampled_from([b":", b": "]), odd_text, EOL).map(b"".join),
    "bytes": st.binary(max_size=40),
    "odd": st.sampled_from(
        [*INVALID_UTF8, b"\x00", BOM, b"\r", b"\n", b"\r\n", b"\n\r", b"\r\r\n"]
    ),
    # Long lines and long events, for the small limits drawn below.
    "long": st.builds(
        lambda c, n: c * n,
        st.sampled_from([b"x", b"data: x\n", b"\n", b":", b"\xff", b"retry: 9"]),
        st.integers(0, 300),
    ),
}
piece = st.sampled_from(["good"] * 4 + list(PIECES)).flatmap(PIECES.__getitem__)
body = st.lists(piece, min_size=1, max_size=12).map(b"".join)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=False) if b > a]


# --- response heads -------------------------------------------------------------------------

CONTENT_TYPES = [
    "text/event-stream",
    "text/event-stream; charset=utf-8",
    "TEXT/Event-Stream",
    " text/event-stream ;",
    "text/event-stream\x00",
    "text/event-streams",
    "text/plain",
    "application/json",
    "",
    "\udcff",
    ";",
]


def _http_date(args: tuple[str, int, str, int, int, int, int, str]) -> str:
    weekday, day, month, year, hh, mm, ss, zone = args
    return f"{weekday}, {day:02d} {month} {year} {hh:02d}:{mm:02d}:{ss:02d} {zone}"


# KNOWN: a numeric zone of more than 12 digits makes parse_retry_after raise
# OverflowError (test_a_retry_after_date_with_a_huge_zone_offset below).
ZONE_DIGITS = 12

retry_after = st.one_of(
    st.integers(0, 10**6).map(str),
    st.integers(1, 500).map(lambda n: "9" * n),
    st.sampled_from(["", "-1", "1.5", " 3 ", "\u0663", "never", "Fri, 31 Dec 9999 23:59:59 GMT"]),
    st.tuples(
        st.sampled_from(["Mon", "Fri", "Xyz", ""]),
        st.integers(0, 40),
        st.sampled_from(["Jan", "Dec", "Foo"]),
        st.integers(0, 99999),
        st.integers(0, 99),
        st.integers(0, 99),
        st.integers(0, 99),
        st.one_of(
            st.sampled_from(["GMT", "UT", "EST", "Z", "", "-0000"]),
            st.tuples(
                st.sampled_from("+-"),
                st.text("0123456789", min_size=1, max_size=ZONE_DIGITS),
            ).map("".join),
        ),
    ).map(_http_date),
    st.text(max_size=20),
)
headers = st.fixed_dictionaries(
    {},
    optional={
        "content-type": st.one_of(st.sampled_from(CONTENT_TYPES), st.text(max_size=20)),
        "retry-after": retry_after,
        "location": st.sampled_from(["", "/x", "http://127.0.0.1:1/"]),
    },
)
status = st.one_of(
    st.just(200),
    st.sampled_from([204, 301, 304, 400, 404, 408, 429, 500, 501, 503, 505, 511]),
    st.integers(100, 999),
)
# Mostly a stream that opens, else anything.
stream_head = st.tuples(
    st.just(200), st.sampled_from(CONTENT_TYPES[:4]).map(lambda t: {"content-type": t})
)
head = st.sampled_from([True] * 4 + [False]).flatmap(
    lambda stream: stream_head if stream else st.tuples(status, headers)
)


# --- errors the driver reports ----------------------------------------------------------------

fail_input = st.sampled_from(
    ["lost"] * 4 + ["timeout"] * 2 + ["fatal-response", "fatal-id", "lost-fatal"]
)


def make_error(kind: str) -> tuple[EventSourceError, bool]:
    if kind == "timeout":
        return ReadTimeoutError("no data for 1 s"), False
    if kind == "fatal-response":
        return ResponseError("unsupported URL", status_code=None), True
    if kind == "fatal-id":
        return EventIdError("a\nb", "a line feed"), True
    return ConnectionLostError("connection lost: reset"), kind == "lost-fatal"


# --- the reference, in stream order ----------------------------------------------------------


def reference_items(data: bytes, last_event_id: str, comments: bool) -> tuple[list[Any], str]:
    """Events and comments of one connection's bytes in stream order, and its
    last event ID: ``reference_parse``'s events and comments, interleaved by
    the lines that produce them (a comment line, a blank line after a data
    field)."""
    ref = reference_parse(data, last_event_id)
    events = iter(ref.events)
    notes = iter(ref.comments)
    text = data.decode("utf-8", "replace").removeprefix("\ufeff")
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")[:-1]
    items: list[Any] = []
    data_seen = False
    for line in lines:
        if not line:
            if data_seen:
                e = next(events)
                items.append(("event", e.type, e.data, e.id, e.retry))
            data_seen = False
        elif line.startswith(":"):
            comment = next(notes)
            if comments:
                items.append(("comment", comment))
        elif line.partition(":")[0] == "data":
            data_seen = True
    assert next(events, None) is None and next(notes, None) is None
    return items, ref.last_event_id


def as_item(out: Any) -> Any:
    if isinstance(out, ServerSentEvent):
        return ("event", *out)
    assert isinstance(out, Comment)
    return ("comment", str(out))


# What happens elsewhere between two calls, mostly nothing.
ELSEWHERE = st.sampled_from([""] * 40 + ["restart"] * 3 + ["stray"] + ["close"])

# --- the sans-IO driver -------------------------------------------------------------------------


class Life:
    """Drives a machine as the drivers do, drawing every outcome; checks the
    contract after every call."""

    MAX_STEPS = 150

    def __init__(self, data: st.DataObject, m: Machine, comments: bool) -> None:
        self.data = data
        self.m = m
        self.comments = comments
        self.close_asked = False
        self.finishes = 0
        self.stopped = False
        self.connections: list[dict[str, Any]] = []  # fed bytes, items out, start id
        self.chunks: list[bytes] | None = None  # the rest of the connection's bytes
        self.first_id = m.parser.last_event_id
        self.on_its_own = False  # the life ended without a close() or the step bound
        self.strays = 0  # inputs out of step
        self.trace: list[str] = []

    # requests from "elsewhere", between any two calls

    def elsewhere(self) -> None:
        what = self.data.draw(ELSEWHERE, label="elsewhere")
        if what == "restart":
            self.call("restart")
        elif what == "close":
            self.call("close")
        elif what == "stray":
            # An input out of step (a late report of interrupted I/O, as the
            # machine's own tests send): no driver sends one today, so only
            # the contract is checked then, not the stream order. Never
            # released(): it resets the parser as for a new stream.
            self.strays += 1
            kind = self.data.draw(st.sampled_from(["receive", "end", "fail"]))
            if kind == "receive":
                self.receive(self.data.draw(body, label="stray bytes"))
            elif kind == "fail":
                self.call("fail", *make_error(self.data.draw(fail_input)))
            else:
                self.call(kind)

    def call(self, name: str, *args: Any) -> Any:
        self.trace.append(name)
        m = self.m
        if name == "close":
            self.close_asked = True
        if name == "fail":
            error, fatal = args
            args, kwargs = (error,), {"fatal": fatal}
        else:
            kwargs = {}
        result = getattr(m, name)(*args, **kwargs)
        if self.close_asked:
            assert m.ready_state is ReadyState.CLOSED, f"{m.ready_state!r} after close()"
            assert m.closed
        return result

    def receive(self, chunk: bytes) -> None:
        fed = self.m.ready_state is ReadyState.OPEN
        self.call("receive", chunk)
        if fed and self.connections:
            self.connections[-1]["fed"] += chunk

    # the driver's loop

    def step(self) -> bool:
        """One next() and its outcome; False once STOP was handed out."""
        m = self.m
        self.elsewhere()
        closed_before = self.close_asked
        out = self.call("next")
        self.trace[-1] = f"next->{out!r}"[:80]
        if closed_before or self.finishes:
            assert out is (STOP if self.finishes else FINISH), f"{out!r} after close()/FINISH"
        if out is STOP:
            self.stopped = True
            return False
        if out is FINISH:
            self.finishes += 1
            assert self.finishes == 1
            assert m.ready_state is ReadyState.CLOSED
            error = m.final_error
            assert error is None or isinstance(error, EventSourceError), repr(error)
            if isinstance(error, RetriesExhaustedError):
                assert isinstance(error.__cause__, EventSourceError), repr(error.__cause__)
            if error is not None:
                assert error.will_retry is False and error.retry_delay is None
            self.call("finished")
            return True
        assert not m.closed, f"{out!r} handed out by a closed machine"
        if isinstance(out, (ServerSentEvent, Comment)):
            assert self.connections, "an event before any connection opened"
            self.connections[-1]["out"].append(as_item(out))
            if isinstance(out, ServerSentEvent):
                self.call("delivering", out)
        elif isinstance(out, Failure):
            assert isinstance(out.error, EventSourceError), repr(out.error)
        elif out is OPENED:
            pass
        elif out is RELEASE:
            self.elsewhere()
            self.call("released")
        elif out is READ:
            self.read()
        elif out is CONNECT:
            self.connect()
        else:
            raise AssertionError(f"unknown output {out!r}")
        return True

    def read(self) -> None:
        """A read's outcome: the connection's next chunk, or when they are
        all read (never on its first read), more bytes, its end or a drop."""
        self.elsewhere()
        if not self.chunks:
            what = "more"
            if self.chunks is not None:
                what = self.data.draw(
                    st.sampled_from(["more"] * 3 + ["end", "fail"]), label="after the chunks"
                )
            if what == "end":
                self.call("end")
                return
            if what == "fail":
                self.call("fail", *make_error(self.data.draw(fail_input)))
                return
            data = self.data.draw(body, label="body")
            cuts = self.data.draw(st.lists(st.integers(0, 1 << 16), max_size=8), label="cuts")
            self.chunks = split(data, cuts) or [b""]
        self.receive(self.chunks.pop(0))

    def connect(self) -> None:
        m = self.m
        delay = m.delay
        assert delay == delay and 0 <= delay <= m.policy.max_retry_delay, delay
        if delay:
            self.elsewhere()
            self.call("waited")
            return
        closed_before = self.close_asked
        sent = self.call("start_attempt")
        if closed_before:
            assert sent is None, "an attempt started after close()"
        if sent is None:
            return
        assert sent == self.expected_id(), (sent, self.expected_id())
        self.elsewhere()
        if self.data.draw(st.sampled_from([False] * 5 + [True]), label="send fails"):
            self.call("fail", *make_error(self.data.draw(fail_input)))
            return
        code, fields = self.data.draw(head, label="head")
        opened = self.call("response", code, fields)
        assert opened in (True, False)
        if opened:
            self.connections.append({"fed": b"", "out": [], "start": sent})
            self.chunks = None

    def expected_id(self) -> str:
        """The last event ID the next request sends: the reference's, after
        the bytes every connection so far was fed."""
        if not self.connections:
            return self.first_id
        conn = self.connections[-1]
        return reference_parse(conn["fed"], conn["start"]).last_event_id

    def run(self) -> None:
        for _ in range(self.MAX_STEPS):
            if not self.step():
                self.on_its_own = not self.close_asked
                break
        # The end: a close, then FINISH (unless handed out already) and STOP.
        self.call("close")
        for _ in range(3):
            self.step()
        assert self.stopped and self.finishes == 1
        assert self.m.next() is STOP

    def check_order(self) -> None:
        """Each connection's events and comments: the reference's, in stream
        order; whole for every connection but the last, a prefix for the last
        unless the life ended on its own (a close drops the queue, an
        oversized event ends it)."""
        error = self.m.final_error
        for n, conn in enumerate(self.connections):
            expected, last_id = reference_items(conn["fed"], conn["start"], self.comments)
            got = conn["out"]
            assert got == expected[: len(got)], (n, got, expected)
            if n < len(self.connections) - 1:
                assert got == expected, (n, got, expected)
                assert self.connections[n + 1]["start"] == last_id
            elif self.on_its_own and not isinstance(error, EventTooLargeError):
                assert got == expected, (n, got, expected)


@FUZZ
@given(
    st.data(),
    st.sampled_from([1 << 16, 1 << 16, 300, 300, 48, 8, 1]),
    st.booleans(),
    st.sampled_from(["", "0", "\u00e9\u2028", "a b"]),
    st.sampled_from([None, 2, 0]),
    st.sampled_from([None, True, False]),
    st.sampled_from(["GET", "POST"]),
)
def test_fuzz_the_machine(
    data: st.DataObject,
    limit: int,
    comments: bool,
    last_event_id: str,
    max_retries: int | None,
    reconnect: bool | None,
    method: str,
) -> None:
    policy = ConnectionPolicy(
        retry=0.5,
        max_retries=max_retries,
        min_retry_delay=0.1,
        max_retry_delay=2.0,
        reconnect=reconnect,
        rng=random.Random(0),
    )
    m = Machine(
        policy,
        max_event_size=limit,
        last_event_id=last_event_id,
        comments=comments,
        method=method,
    )
    life = Life(data, m, comments)
    life.run()
    if not life.strays:
        life.check_order()
    note("inputs out of step" if life.strays else "inputs in step")
    note(f"final error: {type(m.final_error).__name__}")
    note(f"connections: {min(len(life.connections), 3)}{'+' if len(life.connections) > 3 else ''}")
    note("events delivered" if m.events_received else "no event delivered")
    note("ended on its own" if life.on_its_own else "closed")


# --- defects found ------------------------------------------------------------------------------

# A Retry-After date whose numeric zone has 13 digits or more:
# email.utils.parsedate_to_datetime builds timedelta(seconds=<the offset>),
# which raises OverflowError, and parse_retry_after catches only TypeError,
# ValueError and IndexError. Found reading parse_retry_after for the header
# strategy above (ZONE_DIGITS keeps the fuzz below the threshold).
HUGE_ZONE = "Mon, 01 Jan 2024 00:00:00 +9999999999999"


def test_a_retry_after_date_with_a_huge_zone_is_no_crash() -> None:
    m = Machine(ConnectionPolicy(rng=random.Random(0)), max_event_size=1000)
    assert m.next() is CONNECT
    m.start_attempt()
    assert m.response(503, {"retry-after": HUGE_ZONE}) is False
    out = m.next()
    assert isinstance(out, Failure) and isinstance(out.error, ResponseError)
    assert out.error.will_retry


# --- 2. end to end: a hostile loopback server, every mode ---------------------------------------

# Per mode, a test per seed, ROUNDS rounds each (EVENTSOURCE_FUZZ_SEEDS=N runs N seeds).
SEEDS = range(int(os.environ.get("EVENTSOURCE_FUZZ_SEEDS") or 5))
ROUNDS = 14
ROUND_WATCHDOG = 10.0  # seconds: a round still running after this is hung
AFTER_CLOSE = 1.0  # seconds the iteration may take to end after close() returned
USERS_CLIENT_TIMEOUT = 2.0  # seconds: the timeout of a client of the caller's own
SERVER_HOLD = 10.0  # seconds a server thread waits for a client at most

# KNOWN (test_a_body_that_fails_to_decode_leaves_no_generator_behind): on trio,
# the warnings of httpx's and httpcore's abandoned generators once a body with
# a content coding was served (it may fail to decode).
KNOWN_DECODE_LEAK = re.compile(r"Async generator '(httpx|httpcore)\.[\w.]+' was garbage collected")
# KNOWN_LATE: the same warnings after a round's check, should one of those
# chains be finalized later than settle() waits (a safety net: not seen since
# settle() lets trio's closing tasks run; before, about once in 2000 rounds).
# KNOWN (test_close_ends_a_refused_body_read): in async mode, close() does not
# end the read of a refused response's body (kept in its ResponseError): it
# goes on for up to this long (eventsource._io._BODY_DEADLINE) or read_timeout.
REFUSED_BODY_DEADLINE = 2.0
# KNOWN (CONNECT_LEAK), on the dependency floors only, for a client of the
# caller's own (httpcore's anyio backend): anyio < 4.16 leaks the socket of a
# connect that close() cancels at its end, on asyncio. A source's own client
# connects with eventsource's backend (test_close_while_connecting_leaves_no_socket).
ANYIO_LEAKS_CONNECTS = tuple(int(n) for n in version("anyio").split(".")[:2]) < (4, 16)
KNOWN_CONNECT_LEAK = re.compile(r"unclosed (<socket\.socket |transport <_SelectorSocketTransport )")


def _reset(sock: socket.socket) -> None:
    """Close with a TCP reset."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def sse_bytes(rng: random.Random, limit: int, hostility: float) -> bytes:
    """A body of SSE-ish bytes: events, then (as often as ``hostility``
    says) odd ids, retry fields of any length, garbage, lines longer than the
    limit; comments."""
    eol = [b"\n", b"\r\n", b"\r"]
    out = []
    if rng.random() < 0.2:
        out.append(BOM)
    for _ in range(rng.randint(0, 12)):
        if rng.random() > hostility:
            n = rng.randint(0, 30)
            out.append(b"data: e%d%s" % (n, rng.choice(eol)))
            if rng.random() < 0.5:
                out.append(b"id: %d%s" % (n, rng.choice(eol)))
            if rng.random() < 0.2:
                out.append(b": " + rng.randbytes(rng.randint(0, 20)).replace(b"\n", b"") + b"\n")
            out.append(rng.choice(eol))
            continue
        kind = rng.random()
        if kind < 0.2:
            value = rng.choice(
                [b"\x00", b"a\x00b", b" x ", b"\x0b", b"\x0c", b"\xe2\x80\xa8", b"\xff\xfe", b""]
            )
            out.append(b"id: " + value + rng.choice(eol) + b"data: x\n\n")
        elif kind < 0.4:
            digits = rng.choice([1, 2, 3, 25, 400, 5000])
            out.append(b"retry: " + bytes(rng.choice(b"0123456789") for _ in range(digits)))
            out.append(rng.choice(eol))
        elif kind < 0.46:
            out.append(b"data: " + b"x" * rng.randint(limit // 2, limit * 2) + b"\n\n")
        elif kind < 0.8:
            out.append(rng.choice([*INVALID_UTF8, b"\x00", BOM, b"\r", b"\n\r", b"\r\r\n"]))
        else:
            out.append(rng.randbytes(rng.randint(0, 60)))
    return b"".join(out)


def safe_location(rng: random.Random, port: int, path: bytes) -> bytes:
    """A Location that leads to this loopback server or nowhere: never a host
    name (no DNS), never another address."""
    return rng.choice(
        [
            path,
            path + b"?again",
            b"http://127.0.0.1:%d%s" % (port, path),
            b"",
            b"ftp://127.0.0.1/x",
            b"http://127.0.0.1:0/",
            b"http://[::1]:1/",
            # KNOWN: not b"http://127.0.0.1:99999/" (test_a_redirect_to_a_port_past_65535)
            b"http://[::1",
            b"/%zz\xff",
        ]
    )


@dataclass
class Plan:
    """One response: the bytes, cut where the connection is reset (None: sent
    whole), and how the connection ends."""

    data: bytes
    cut: int | None
    ending: str  # fin, reset, stall, keep
    what: str  # a summary for failure messages
    coded: bool = False  # a Content-Encoding other than identity
    refused: bool = False  # not a 200 text/event-stream: the source refuses it

    def __repr__(self) -> str:
        return f"<{self.what}, {len(self.data)} bytes, cut={self.cut}, {self.ending}>"


STREAM_TYPES = [b"text/event-stream", b"text/event-stream; charset=utf-8", b"TEXT/EVENT-STREAM"]


def plan_response(rng: random.Random, port: int, path: bytes, limit: int, hostility: float) -> Plan:
    """A random response: each hostile choice (a status, a content type, a
    garbage header, a content coding that lies, a broken framing, a reset)
    is made as often as ``hostility`` (0 to 1) says."""
    what = []

    def hostile(weight: float = 1.0) -> bool:
        return rng.random() < hostility * weight

    status = b"HTTP/1.1 200 OK"
    if hostile(0.3):
        if rng.random() < 0.7:
            code = rng.choice(
                [204, 301, 302, 307, 400, 404, 408, 429, 500, 501, 503, 505, 511, 600]
            )
            status = b"HTTP/1.1 %d %s" % (code, rng.choice([b"X", b"", b"\xff\xfe", b"Oh no"]))
        else:
            status = rng.choice(
                [
                    b"HTTP/1.1 2000 OK",
                    b"HTTP/1.1 20 OK",
                    b"HTTP/1.1 200",
                    b"HTTP/1.0 200 OK",
                    b"HTTP/2 200",
                    b"ICY 200 OK",
                    b"garbage",
                    b"",
                    b"HTTP/1.1 -200 OK",
                    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK",
                    b"HTTP/1.1 101 Switching Protocols",
                    rng.randbytes(12),
                ]
            )
    what.append(status.split(b"\r\n")[-1].decode("latin-1")[:24])
    head = [status]
    content_type: bytes | None = rng.choice(STREAM_TYPES)
    if hostile(0.2):
        content_type = rng.choice(
            [
                b" text/event-stream ;x",
                b"text/plain",
                b"application/json",
                None,
                b"text/event-stream\xff",
                b"text/event-streamx",
                b"",
            ]
        )
    if content_type is not None:
        head.append(b"Content-Type: " + content_type)
    if hostile(0.3):
        head.append(
            b"Retry-After: "
            + rng.choice(
                [b"0", b"1", b"120", b"-1", b"9" * 400, b"Fri, 31 Dec 9999 23:59:59 GMT", b"x"]
            )
        )
    if b" 30" in status or hostile(0.2):
        head.append(b"Location: " + safe_location(rng, port, path))
    garbage = hostile(0.1)
    if garbage:
        head.append(
            rng.choice(
                [
                    b"X-Garbage: \x00\x01",
                    b"no colon here",
                    b" folded: continuation",
                    b"X-Long: " + b"y" * 70_000,
                    b"X-Latin: \xff\xfe",
                    b": empty name",
                ]
            )
        )
    body = sse_bytes(rng, limit, hostility)
    coding = None
    if rng.random() < 0.15:
        coding = "gzip"
    if hostile(0.3):
        coding = rng.choice(["gzip-corrupt", "deflate-lie", "br-lie"])
    if coding is not None:
        what.append(coding)
        zipped = gzip.compress(body)
        if coding == "gzip-corrupt":
            broken = bytearray(zipped)
            for _ in range(rng.randint(1, 4)):
                broken[rng.randrange(len(broken))] ^= 1 << rng.randrange(8)
            zipped = bytes(broken[: rng.randint(0, len(broken))])
        body = zipped
        head.append(b"Content-Encoding: " + coding.split("-")[0].encode())
    framing = rng.choice(["chunked", "chunked", "length", "close"])
    if hostile(0.5):
        framing = rng.choice(["chunked-broken", "short", "long", "bad-length"])
    what.append(framing)
    framed_ok = framing in ("chunked", "length")
    # (a folded garbage line may join the Content-Type)
    refused = garbage or status != b"HTTP/1.1 200 OK" or content_type not in STREAM_TYPES
    # How the connection ends: a stall leaves the body open (as an SSE
    # server does) until the client leaves; keep-alive follows a whole body.
    # Seldom a refused body (KNOWN: reading one in async mode outlasts close()).
    ending = rng.choice(["stall"] * 3 + ["fin", "reset"] + ["keep"] * framed_ok)
    if refused and ending == "stall" and rng.random() < 0.8:
        ending = "fin"
    if framing.startswith("chunked"):
        head.append(b"Transfer-Encoding: chunked")
        pieces = []
        rest = body
        while rest:
            n = rng.randint(1, max(1, len(rest)))
            size = b"%x" % n if rng.random() < 0.8 else b"%X;ext=1" % n
            pieces.append(size + b"\r\n" + rest[:n] + b"\r\n")
            rest = rest[n:]
        if ending != "stall":
            pieces.append(b"0\r\n\r\n")
        if framing == "chunked-broken" and pieces:
            i = rng.randrange(len(pieces))
            pieces[i] = rng.choice(
                [
                    b"zz\r\n",
                    b"-1\r\n",
                    b"ffffffffffffffffffffff\r\n",
                    b"5\nabcde\n",
                    pieces[i].replace(b"\r\n", b"", 1),
                    pieces[i][:-2] + b"XY",
                    b"0x10\r\n" + b"a" * 16 + b"\r\n",
                    b"10\r\nshort\r\n",
                ]
            )
        framed = b"".join(pieces)
    elif framing == "close":
        framed = body
    else:
        length = {
            "length": len(body) + (1000 if ending == "stall" else 0),  # open: more to come
            "short": len(body) + rng.randint(1, 100),  # declares more than comes
            "long": max(0, len(body) - rng.randint(1, 50)),  # declares less than comes
        }.get(framing)
        if length is None:
            value = rng.choice([b"abc", b"-5", b"1, 2", b" 12 ", b"+3", b"9" * 30, b""])
            head.append(b"Content-Length: " + value)
        else:
            head.append(b"Content-Length: %d" % length)
            if hostile(0.1):
                head.append(b"Content-Length: %d" % (length + 1))
                what.append("two lengths")
        framed = body
    data = b"\r\n".join(head) + b"\r\n\r\n" + framed
    cut = None
    if hostile(0.15):
        cut = rng.randint(0, len(data))
        what.append("reset mid-head" if cut < len(data) - len(framed) else "reset mid-body")
    return Plan(data, cut, ending, " ".join(what), coded=coding is not None, refused=refused)


class FuzzServer(RawListener):
    """HTTP/1.1 by hand on 127.0.0.1: a thread per connection answers each
    request with the plan for its round (the path is /r<round>) and its
    number in the round: ``planner(round, n, server)``."""

    def __init__(self, planner: Callable[[int, int, FuzzServer], Plan]) -> None:
        super().__init__(self._answer, end=_reset, join=SERVER_HOLD)
        self.planner = planner
        self._plans = threading.Lock()
        self.served: dict[int, list[Plan]] = {}
        self.limits: dict[int, int] = {}  # each round's max_event_size
        self.hostility: dict[int, float] = {}  # and hostility
        self.coded = False  # a body with a content coding was served

    def url(self, round_: int) -> str:
        return f"http://127.0.0.1:{self.port}/r{round_}"

    def _recv(self, sock: socket.socket) -> bytes:
        """The next bytes from the client; b"" when it left, the server
        stops, or it is silent for SERVER_HOLD seconds."""
        deadline = time.monotonic() + SERVER_HOLD
        sock.settimeout(0.05)
        while not self.stop.is_set() and time.monotonic() < deadline:
            try:
                return sock.recv(65536)
            except TimeoutError:
                continue
        return b""

    def _answer(self, sock: socket.socket, index: int, peer: int) -> None:
        buffer = b""
        ending = "fin"
        try:
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = self._recv(sock)
                    if not data:
                        return
                    buffer += data
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                found = re.match(rb"[A-Z]+ /r(\d+)[? ]", head)
                if found is None:  # a redirect's odd path: no round of ours
                    sock.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                    continue
                round_ = int(found.group(1))
                with self._plans:
                    served = self.served.setdefault(round_, [])
                    plan = self.planner(round_, len(served), self)
                    served.append(plan)
                sock.settimeout(2.0)
                if plan.cut is not None:
                    sock.sendall(plan.data[: plan.cut])
                    ending = "reset"
                    return
                sock.sendall(plan.data)
                ending = plan.ending
                if ending != "keep":
                    break
            if ending == "stall":
                while self._recv(sock):
                    pass
        except OSError:
            ending = "reset"
        finally:
            if ending == "reset":
                _reset(sock)
            else:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_WR)
                sock.close()


@dataclass
class Round:
    """One source's life against the server, and what it saw."""

    url: str
    rng: random.Random
    mode: str  # async, sync
    backend: str  # asyncio, trio (sync: the test's)
    errors: list[tuple[str, BaseException]] = field(default_factory=list)
    closes: int = 0
    events: int = 0
    messages_after_close: int = 0
    closed_at: float | None = None  # when the first close() returned
    done_at: float | None = None
    done: threading.Event = field(default_factory=threading.Event)
    source: EventSource | None = None
    states: list[ReadyState] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)  # close / restart, where, when

    def options(self) -> dict[str, Any]:
        rng = self.rng
        return {
            "retry": rng.choice([0.0, 0.01, 0.05]),
            "min_retry_delay": 0.01,
            "max_retry_delay": 0.05,
            "max_retries": rng.choice([None, None, None, 0, 3]),
            # Short: a stall times out; long: a close that does not end a
            # blocked read shows (the iteration ends AFTER_CLOSE after close()).
            "read_timeout": rng.choice([0.1, 3.0]),
            "max_event_size": rng.choice([64, 1024, 1 << 16]),
            "timeout": 2.0,
            "reconnect": rng.choice([None, None, None, None, False]),
        }

    hostility: float | None = None  # how often the server's choices are hostile
    control = "thread"  # where the schedule's close() and restart() come from: thread, task
    from_callbacks = False  # on_message / on_error may call close() too
    users_client = False  # the source reads through a client of the caller's own
    closed_here = False  # close() was called in the iterating task or thread

    def on_error(self, error: BaseException) -> None:
        self.errors.append(("on_error", error))
        if self.from_callbacks and self.rng.random() < 0.3:
            self.fire("close", here=True)

    def on_close(self) -> None:
        self.closes += 1

    def on_message(self, event: ServerSentEvent) -> None:
        self.events += 1
        if self.closed_here:
            self.messages_after_close += 1
        if self.from_callbacks and self.rng.random() < 0.2:
            self.fire("close", here=True)

    def fire(self, what: str, *, here: bool = False) -> None:
        assert self.source is not None
        try:
            getattr(self.source, what)()
        except BaseException as exc:  # recorded: the test fails on it
            self.errors.append((what, exc))
            return
        if what == "close":
            self.states.append(self.source.ready_state)
            self.closed_at = self.closed_at or time.monotonic()
            self.closed_here = self.closed_here or here
        self.requests.append(f"{what}{' in a callback' if here else ''}")

    def fire_all(self, schedule: list[tuple[float, str]]) -> None:
        """The schedule, from a thread of its own."""
        for delay, what in schedule:
            time.sleep(delay)
            self.fire(what)

    def schedule(self) -> list[tuple[float, str]]:
        """Delays (s) and requests: a few restarts, then a close."""
        rng = self.rng
        steps = [(rng.uniform(0, 0.05), "restart") for _ in range(rng.choice([0, 0, 1, 2]))]
        steps.append((rng.choice([0.0, rng.uniform(0, 0.03), rng.uniform(0, 0.15)]), "close"))
        return steps

    def iterate_sync(self) -> None:
        assert self.source is not None
        try:
            with self.source:
                for _ in self.source:
                    pass
        except Exception as exc:
            self.errors.append(("raised", exc))
        finally:
            self.done_at = time.monotonic()
            self.done.set()

    async def iterate_async(self, done: anyio.Event) -> None:
        assert self.source is not None
        try:
            async with self.source:
                async for _ in self.source:
                    pass
        except Exception as exc:
            self.errors.append(("raised", exc))
        finally:
            self.done_at = time.monotonic()
            self.done.set()
            done.set()

    def context(self, served: list[Plan]) -> str:
        mode = self.backend if self.mode == "async" else "sync"
        return (
            f"{self.url} ({mode}, hostility {self.hostility}, from {self.control}: "
            f"{self.requests}); served {served}"
        )

    def check(self, served: list[Plan], known: bool = True) -> None:
        """The contract; ``known``: let the KNOWN defects pass."""
        context = self.context(served)
        bad = [(where, exc) for where, exc in self.errors if not isinstance(exc, EventSourceError)]
        assert not bad, (
            f"not EventSourceErrors: {[(w, type(e), repr(e)) for w, e in bad]}; {context}\n"
            + "".join(
                traceback.format_exception(
                    type(bad[0][1]), bad[0][1], bad[0][1].__traceback__, limit=-4
                )
            )
        )
        assert self.closes == 1, f"on_close ran {self.closes} times; {context}"
        assert all(s is ReadyState.CLOSED for s in self.states), f"{self.states}; {context}"
        assert self.closed_at is not None and self.done_at is not None
        late = self.done_at - self.closed_at
        limit = self.after_close(known, served)
        assert late < limit, f"ended {late:.2f} s after close(); {context}"
        assert not self.messages_after_close, f"on_message after close(); {context}"

    def forget(self) -> None:
        """Drop what the round holds: the errors' tracebacks keep the frames
        (and generators) of the body they broke alive."""
        self.errors.clear()
        self.source = None

    def check_leaks(
        self,
        served: list[Plan],
        warned: list[warnings.WarningMessage],
        known: bool = True,
        coded: bool = False,
    ) -> None:
        """Nothing the round left unclosed warned when collected. ``coded``:
        a body with a content coding was served (in this round or, as those
        generators were once seen collected a round late, an earlier one)."""
        leaks = [str(w.message) for w in warned if issubclass(w.category, ResourceWarning)]
        if known and self.backend == "trio" and coded:
            leaks = [leak for leak in leaks if not KNOWN_DECODE_LEAK.match(leak)]
        if (
            known
            and self.backend == "asyncio"
            and self.mode == "async"
            and self.users_client
            and ANYIO_LEAKS_CONNECTS
        ):
            leaks = [leak for leak in leaks if not KNOWN_CONNECT_LEAK.match(leak)]
        assert not leaks, f"{leaks}; {self.context(served)}"

    def after_close(self, known: bool, served: list[Plan]) -> float:
        """How long the iteration may go on after close()."""
        if known and self.mode == "async" and any(p.refused for p in served):
            return AFTER_CLOSE + REFUSED_BODY_DEADLINE  # KNOWN: a refused body's read
        if self.mode == "sync" and self.users_client:
            # README limit: a sync read on httpx's public stream (a client of
            # the caller's own) ends with the next bytes or the client's read
            # timeout, whatever a close() from another thread asks.
            return AFTER_CLOSE + 2 * USERS_CLIENT_TIMEOUT
        return AFTER_CLOSE


async def play(
    rnd: Round,
    server: FuzzServer,
    round_: int,
    options: dict[str, Any] | None = None,
    schedule: list[tuple[float, str]] | None = None,
) -> None:
    """One round: a source iterated to its end while the schedule fires.
    Random options, schedule, sources of the requests and client, unless
    options and a schedule are given: then the source's own client, and the
    requests from another thread (sync) or task (async)."""
    rng = rnd.rng
    fixed = schedule is not None
    options = options or rnd.options()
    schedule = schedule or rnd.schedule()
    server.limits[round_] = options.get("max_event_size", 1 << 16)
    if not fixed:
        server.hostility[round_] = rnd.hostility = rng.choice([0.05, 0.3, 1.0])
    if rnd.mode == "sync" or fixed:
        rnd.control = "thread" if rnd.mode == "sync" else "task"
    else:
        rnd.control = rng.choice(["thread", "task"])
    rnd.from_callbacks = not fixed and rng.random() < 0.15
    callbacks: dict[str, Any] = {
        "on_error": rnd.on_error,
        "on_close": rnd.on_close,
        "on_message": rnd.on_message,
    }
    async with contextlib.AsyncExitStack() as stack:
        client: Any = None
        if not fixed and rng.random() < 0.25:  # the caller's own client
            if rnd.mode == "sync":
                client = stack.enter_context(
                    httpx.Client(timeout=USERS_CLIENT_TIMEOUT, trust_env=False)
                )
            else:
                client = await stack.enter_async_context(
                    httpx.AsyncClient(timeout=USERS_CLIENT_TIMEOUT, trust_env=False)
                )
            rnd.users_client = True
        source = rnd.source = EventSource(rnd.url, client=client, **callbacks, **options)
        hung = False
        if rnd.mode == "sync":
            iterating = threading.Thread(target=rnd.iterate_sync, daemon=True)
            firing = threading.Thread(target=rnd.fire_all, args=(schedule,), daemon=True)
            iterating.start()
            firing.start()
            await anyio.to_thread.run_sync(firing.join, ROUND_WATCHDOG)
            hung = not await anyio.to_thread.run_sync(rnd.done.wait, ROUND_WATCHDOG)
            if hung:
                source.close()
            await anyio.to_thread.run_sync(iterating.join, ROUND_WATCHDOG)
        else:
            done = anyio.Event()
            with anyio.move_on_after(ROUND_WATCHDOG) as watchdog:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(rnd.iterate_async, done)
                    if rnd.control == "task":
                        for delay, what in schedule:
                            await anyio.sleep(delay)
                            rnd.fire(what)
                    else:
                        firing = threading.Thread(
                            target=rnd.fire_all, args=(schedule,), daemon=True
                        )
                        firing.start()
                        await anyio.to_thread.run_sync(firing.join, ROUND_WATCHDOG)
                    await done.wait()
            hung = watchdog.cancelled_caught
    if hung:
        served = server.served.get(round_, [])
        pytest.fail(f"hung: still running {ROUND_WATCHDOG} s on; {rnd.context(served)}")


async def settle() -> None:
    """Collect what the round left: trio closes an abandoned async generator
    in a system task of its own, and the generators that one held are
    collected after that, a stage at a time."""
    gc.collect()
    for _ in range(8):  # each stage is freed by reference counting: no collection
        await anyio.wait_all_tasks_blocked()


async def checked(
    rnd: Round,
    server: FuzzServer,
    round_: int,
    options: dict[str, Any] | None = None,
    schedule: list[tuple[float, str]] | None = None,
    known: bool = True,
) -> None:
    """Play a round and check it: the contract, then (the round's objects
    dropped and collected, so whatever it left unclosed warns now, named
    with this round) no ResourceWarning. Other warnings go on as usual
    (filterwarnings=error)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        await play(rnd, server, round_, options, schedule)
        served = server.served.get(round_, [])
        rnd.check(served, known)
        rnd.forget()
        await settle()
    server.coded = server.coded or any(p.coded for p in served)
    rnd.check_leaks(served, caught, known, server.coded)
    for w in caught:
        if not issubclass(w.category, ResourceWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


@pytest.mark.anyio
@pytest.mark.parametrize("seed", SEEDS)
async def test_fuzz_end_to_end(mode: str, anyio_backend: str, seed: int) -> None:
    """Every error raised or given to on_error is an EventSourceError;
    on_close runs once; the iteration ends promptly after close(); nothing is
    left unclosed (ResourceWarning is an error)."""

    def planner(round_: int, n: int, server: FuzzServer) -> Plan:
        rng = random.Random(f"{seed}/{round_}/{n}")
        path = b"/r%d" % round_
        limit, hostility = server.limits[round_], server.hostility[round_]
        return plan_response(rng, server.port, path, limit, hostility)

    # Warnings outside the rounds' own windows (an object of an earlier round
    # collected late) are caught here too, and checked after the last round.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with FuzzServer(planner) as server:
            for round_ in range(ROUNDS):
                rng = random.Random(f"{seed}/{round_}")
                await checked(Round(server.url(round_), rng, mode, anyio_backend), server, round_)
        await settle()
    late = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    if anyio_backend == "trio" and mode == "async":  # KNOWN_LATE
        late = [leak for leak in late if not KNOWN_DECODE_LEAK.match(leak)]
    assert not late, f"{late}: collected after its round (seed {seed})"
    for w in caught:
        if not issubclass(w.category, ResourceWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


# --- defects found end to end -------------------------------------------------------------------


def fixed(plan: Plan) -> Callable[[int, int, FuzzServer], Plan]:
    return lambda round_, n, server: plan


@contextlib.contextmanager
def one_round(plan: Plan, mode: str, backend: str) -> Iterator[tuple[FuzzServer, Round]]:
    """A server answering every request with ``plan``, and round 0 (seed 0)
    against it."""
    with FuzzServer(fixed(plan)) as server:
        yield server, Round(server.url(0), random.Random(0), mode, backend)


@pytest.mark.anyio
async def test_a_retry_after_date_with_a_huge_zone_end_to_end(
    mode: str, anyio_backend: str, request: pytest.FixtureRequest
) -> None:
    head = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: %s\r\n" % HUGE_ZONE.encode()
    plan = Plan(head + b"Content-Length: 0\r\n\r\n", None, "fin", "503 with a huge zone")
    with one_round(plan, mode, anyio_backend) as (server, rnd):
        # OverflowError, raised from the iterator
        await checked(rnd, server, 0, {"max_retries": 0}, [(0.3, "close")])


# Fixed in issue 21 (its test was a strict xfail): a body that fails to
# decode on trio left httpx's and httpcore's chain of async generators
# suspended. eventsource now reads the raw bytes and decodes them itself.


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["trio"])
@pytest.mark.parametrize("status", [b"200 OK", b"404 Not Found"])
async def test_a_body_that_fails_to_decode_leaves_no_generator_behind(
    anyio_backend: str, status: bytes
) -> None:
    data = (
        b"HTTP/1.1 %s\r\nContent-Type: text/event-stream\r\nContent-Encoding: deflate\r\n"
        b"Content-Length: 5\r\n\r\nabcde" % status
    )
    plan = Plan(data, None, "fin", "undecodable", coded=True)
    with one_round(plan, "async", anyio_backend) as (server, rnd):
        await checked(rnd, server, 0, {"max_retries": 0}, [(0.3, "close")], known=False)


@pytest.mark.anyio
async def test_close_ends_a_refused_body_read(
    mode: str, anyio_backend: str, request: pytest.FixtureRequest
) -> None:
    data = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\npartial"
    plan = Plan(data, None, "stall", "refused, endless body")
    with one_round(plan, mode, anyio_backend) as (server, rnd):
        await play(rnd, server, 0, {"read_timeout": 30.0}, [(0.3, "close")])
    assert rnd.closed_at is not None and rnd.done_at is not None
    late = rnd.done_at - rnd.closed_at
    assert late < 0.5, f"ended {late:.2f} s after close()"
    rnd.check(server.served[0], known=False)


@pytest.mark.anyio
async def test_a_redirect_to_a_port_past_65535(
    mode: str, anyio_backend: str, request: pytest.FixtureRequest
) -> None:
    data = b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:99999/\r\nContent-Length: 0\r\n\r\n"
    plan = Plan(data, None, "fin", "302 to port 99999")
    with one_round(plan, mode, anyio_backend) as (server, rnd):
        await checked(rnd, server, 0, {"max_retries": 0}, [(0.3, "close")])


CONNECT_LEAK = (
    "dependency floor (issue 20 fuzz, on the floor run): anyio < 4.16.0 (the declared floor is "
    "4.1.0) on asyncio: close() while httpcore's anyio backend is in anyio.connect_tcp, after "
    "the TCP connection is made but before connect_tcp returns, leaks the connected socket "
    "(ResourceWarning: unclosed socket and transport); anyio 4.16.0's connect_tcp closes it "
    "(aclose_forcefully on BaseException)"
)


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_close_while_connecting_leaves_no_socket(
    anyio_backend: str, request: pytest.FixtureRequest
) -> None:
    """close() from another task after 0, 1, 2, ... checkpoints: one of them
    lands while the first attempt connects."""
    # (A source's own client connects with eventsource's backend, not anyio's
    # connect_tcp: CONNECT_LEAK, of anyio < 4.16, is a user's client's only.)
    data = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: a\n\n"
    leaked = []
    with FuzzServer(fixed(Plan(data, None, "stall", "open stream"))) as server:
        for checkpoints in range(16):
            source = EventSource(server.url(0), read_timeout=5.0)

            async def close_soon(n: int = checkpoints, source: EventSource = source) -> None:
                for _ in range(n):
                    await anyio.lowlevel.checkpoint()
                source.close()

            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                with anyio.fail_after(ROUND_WATCHDOG):
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(close_soon)
                        async with source:
                            async for _ in source:
                                pass
                gc.collect()
            if any(issubclass(w.category, ResourceWarning) for w in caught):
                leaked.append(checkpoints)
    assert not leaked, f"a socket left unclosed when close() came after {leaked} checkpoints"
