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

A known defect is kept out of the fuzz (see ``KNOWN``) and reproduced by a
strict xfail test of its own: remove both when it is fixed.
"""

from __future__ import annotations

import os
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import event as note
from hypothesis import strategies as st

from eventsource import (
    ConnectionLostError,
    EventIdError,
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

from .reference import reference_parse

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
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)]) if b > a]


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
        self.failures: list[EventSourceError] = []
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
        if name == "fail" and len(args) == 2:
            result = m.fail(args[0], fatal=args[1])
        else:
            result = getattr(m, name)(*args)
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
            self.failures.append(out.error)
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
RETRY_AFTER_OVERFLOW = (
    "issue 20: Retry-After 'Mon, 01 Jan 2024 00:00:00 +9999999999999' on a retried status "
    "(503): parse_retry_after (eventsource/_policy.py) lets OverflowError out of "
    "email.utils.parsedate_to_datetime, through Machine.response() to the caller"
)


@pytest.mark.xfail(strict=True, raises=OverflowError, reason=RETRY_AFTER_OVERFLOW)
def test_a_retry_after_date_with_a_huge_zone_is_no_crash() -> None:
    m = Machine(ConnectionPolicy(rng=random.Random(0)), max_event_size=1000)
    assert m.next() is CONNECT
    m.start_attempt()
    assert m.response(503, {"retry-after": HUGE_ZONE}) is False
    out = m.next()
    assert isinstance(out, Failure) and isinstance(out.error, ResponseError)
    assert out.error.will_retry
