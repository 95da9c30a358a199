"""The connection machine on its own: inputs in, steps out, no I/O."""

from __future__ import annotations

import gc
import random
import tracemalloc

import pytest

from eventsource import (
    ConnectionLostError,
    EventTooLargeError,
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
    Output,
    ReadyState,
)
from eventsource._policy import ConnectionPolicy

STREAM = {"content-type": "text/event-stream"}


def machine(**options: object) -> Machine:
    comments = bool(options.pop("comments", False))
    last_event_id = str(options.pop("last_event_id", ""))
    max_event_size = int(options.pop("max_event_size", 1000))  # type: ignore[call-overload]
    policy = ConnectionPolicy(rng=random.Random(7), **options)  # type: ignore[arg-type]
    return Machine(
        policy, max_event_size=max_event_size, last_event_id=last_event_id, comments=comments
    )


def run(m: Machine) -> list[Output]:
    """Steps up to the next I/O step (READ, CONNECT, RELEASE) or the end."""
    out: list[Output] = []
    while True:
        step = m.next()
        out.append(step)
        if step in (READ, CONNECT, RELEASE, FINISH, STOP):
            return out


def open_(m: Machine, **headers: str) -> None:
    assert run(m) == [CONNECT] and m.delay == 0
    m.start_attempt()
    assert m.response(200, {**STREAM, **headers}) is True
    assert run(m) == [OPENED, READ]


def errors(out: list[Output]) -> list[type]:
    return [type(step.error) for step in out if isinstance(step, Failure)]


def test_a_life_open_events_drop_reconnect_with_the_last_id() -> None:
    m = machine(retry=2.5)
    assert m.ready_state is ReadyState.CONNECTING
    open_(m)
    assert m.ready_state is ReadyState.OPEN
    m.receive(b"id: 1\ndata: a\n\ndata: b\n")
    assert run(m) == [ServerSentEvent(data="a", id="1"), READ]
    m.end()  # the half block "data: b" is discarded
    out = run(m)
    assert out == [RELEASE] and m.ready_state is ReadyState.CONNECTING
    m.released()
    out = run(m)
    assert errors(out) == [ConnectionLostError] and out[-1] is CONNECT
    assert m.delay == 2.5  # the connection delivered: the reconnection time
    m.waited()
    assert run(m) == [CONNECT] and m.delay == 0
    assert m.start_attempt() == "1"


def test_events_and_comments_keep_stream_order() -> None:
    m = machine(comments=True)
    open_(m)
    m.receive(b": one\ndata: a\n\n: two\ndata: b\n\n")
    out = run(m)
    assert out == [
        Comment("one"),
        ServerSentEvent(data="a"),
        Comment("two"),
        ServerSentEvent(data="b"),
        READ,
    ]
    assert [type(x) for x in out[:4]] == [Comment, ServerSentEvent, Comment, ServerSentEvent]


def test_the_last_event_id_follows_delivery() -> None:
    m = machine(last_event_id="0")
    open_(m)
    m.receive(b"id: 1\ndata: a\n\nid: 2\ndata: b\n\n")
    first = m.next()
    assert isinstance(first, ServerSentEvent)
    m.delivering(first)
    assert m.last_event_id == "1"  # "2" is parsed, not delivered yet
    second = m.next()
    assert isinstance(second, ServerSentEvent)
    m.delivering(second)
    assert m.last_event_id == "2" and m.events_received == 2 and m.last_event is second


def test_a_healthy_stream_that_said_retry_0_reconnects_after_100_ms() -> None:
    """Progress honours the stream's retry: from PROGRESS_FLOOR (issue 24): a
    server that sends one event a connection and retry: 0 is not stormed."""
    m = machine(retry=3.0)
    open_(m)
    m.receive(b"retry: 0\ndata: a\n\n")
    assert run(m)[-1] is READ
    m.end()
    assert run(m) == [RELEASE]
    m.released()
    run(m)
    assert m.delay == 0.1


def test_consecutive_failures_back_off_from_the_floor_whatever_retry_says() -> None:
    m = machine(retry=0.0, min_retry_delay=1.0, max_retry_delay=60.0)
    open_(m)
    m.receive(b"retry: 0\ndata: a\n\n")
    run(m)
    m.end()
    run(m)
    m.released()
    run(m)
    delays = [m.delay]
    for _ in range(5):
        m.waited()
        assert run(m) == [CONNECT]
        m.start_attempt()
        assert m.response(503, {}) is False
        out = run(m)
        assert errors(out) == [ResponseError] and out[-1] is CONNECT
        delays.append(m.delay)
    assert delays[0] == 0.1  # after a connection that delivered: retry: 0, from 100 ms
    assert delays[1] == 0.1  # the first failure: the reconnection time, from 100 ms
    for n, delay in enumerate(delays[2:], start=2):  # then the floor, doubling, with jitter
        assert 2 ** (n - 1) * 0.5 <= delay <= 2 ** (n - 1)
        assert delay >= 1.0


def test_a_refused_attempt_clears_the_delivered_mark() -> None:
    """After one good connection, 503s count: max_retries is reached."""
    m = machine(retry=0.0, max_retries=2)
    open_(m)
    m.receive(b"data: a\n\n")
    run(m)
    m.end()
    run(m)
    m.released()
    run(m)
    seen: list[Output] = []
    for _ in range(3):
        m.waited()
        run(m)
        m.start_attempt()
        m.response(503, {})
        seen += run(m)
    assert seen[-1] is FINISH and m.ready_state is ReadyState.CLOSED
    assert isinstance(m.final_error, RetriesExhaustedError) and m.final_error.attempts == 3
    assert isinstance(m.final_error.__cause__, ResponseError)
    assert run(m) == [STOP]


def test_a_connection_that_ends_without_an_event_is_a_failure() -> None:
    m = machine(retry=0.0, min_retry_delay=1.0)
    delays = []
    for _ in range(3):
        open_(m)
        m.receive(b": just a comment\n\n")
        run(m)
        m.end()
        run(m)
        m.released()
        run(m)
        delays.append(m.delay)
        m.waited()
    assert delays[0] == 0 and delays[1] >= 1.0 and delays[2] >= 2.0


def test_restart_while_open_releases_and_reconnects_at_once_without_an_error() -> None:
    m = machine(retry=5.0)
    open_(m)
    m.receive(b"data: a\n\n")
    m.restart()
    out = run(m)
    assert out == [ServerSentEvent(data="a"), RELEASE]  # what arrived is delivered first
    m.released()
    m.fail(ConnectionLostError("the interrupted read"))  # ignored: not open any more
    out = run(m)
    assert out == [CONNECT] and m.delay == 0 and m.error is None


def test_an_interrupted_read_during_a_restart_is_no_error() -> None:
    m = machine()
    open_(m)
    m.restart()
    m.fail(ConnectionLostError("interrupted"))
    out = run(m)
    assert out == [RELEASE]
    m.released()
    assert run(m) == [CONNECT] and m.delay == 0 and m.error is None


def test_restart_while_connecting_drops_the_response() -> None:
    m = machine()
    run(m)
    m.start_attempt()
    m.restart()
    assert m.response(200, STREAM) is False
    assert run(m) == [CONNECT] and m.delay == 0


def test_close_is_closed_at_once_drops_the_queue_and_finishes_once() -> None:
    m = machine()
    open_(m)
    m.receive(b"data: a\n\ndata: b\n\n")
    m.close()  # a request: applied by the next step, CLOSED at once
    assert m.ready_state is ReadyState.CLOSED and m.closed
    m.close()
    m.fail(ConnectionLostError("the interrupted read"))  # ignored
    m.end()
    assert run(m) == [FINISH]
    assert m.final_error is None
    assert run(m) == [STOP]
    m.finished()
    assert m.ended


def test_204_closes_without_error() -> None:
    m = machine()
    run(m)
    m.start_attempt()
    assert m.response(204, {}) is False
    assert run(m) == [FINISH] and m.final_error is None


@pytest.mark.parametrize(
    ("status", "headers"), [(404, {}), (200, {"content-type": "text/html"}), (301, {})]
)
def test_a_response_that_retrying_cannot_fix_fails(status: int, headers: dict[str, str]) -> None:
    m = machine()
    run(m)
    m.start_attempt()
    assert m.response(status, headers) is False
    assert run(m) == [FINISH]
    assert isinstance(m.final_error, ResponseError) and m.error is m.final_error


def test_a_fatal_failure_finishes_with_its_error() -> None:
    m = machine()
    run(m)
    m.start_attempt()
    error = ResponseError("unsupported URL", status_code=None)
    m.fail(error, fatal=True)
    assert run(m) == [FINISH] and m.final_error is error


def test_retry_after_is_honoured() -> None:
    m = machine(retry=0.1, max_retry_delay=30.0)
    run(m)
    m.start_attempt()
    m.response(503, {"retry-after": "7"})
    run(m)
    assert m.delay == 7.0


def test_an_event_too_large_delivers_what_came_before_then_fails() -> None:
    m = machine(max_event_size=10)
    open_(m)
    m.receive(b"data: ok\n\ndata: " + b"x" * 50)
    assert run(m) == [RELEASE]
    m.released()
    out = run(m)
    assert out == [ServerSentEvent(data="ok"), FINISH]
    assert isinstance(m.final_error, EventTooLargeError)


def test_without_reconnect_the_end_closes_and_a_drop_fails() -> None:
    m = machine(reconnect=False)
    open_(m)
    m.end()
    assert run(m) == [FINISH] and m.final_error is None
    m = machine(reconnect=False)
    open_(m)
    lost = ConnectionLostError("reset")
    m.fail(lost)
    assert run(m) == [FINISH] and m.final_error is lost


def test_the_stream_retry_field_sets_the_reconnection_time() -> None:
    m = machine(retry=3.0)
    open_(m)
    m.receive(b"retry: 1500\ndata: a\n\n")
    run(m)
    assert m.policy.retry == 1.5


def test_a_close_between_connect_and_the_attempt_sends_nothing() -> None:
    m = machine()
    assert run(m) == [CONNECT]
    m.close()  # from another thread, before the driver starts the attempt
    assert m.start_attempt() is None
    assert m.ready_state is ReadyState.CLOSED
    assert run(m) == [FINISH]


def test_a_long_burst_comes_out_whole_and_in_stream_order() -> None:
    m = machine(comments=True, max_event_size=100)
    open_(m)
    burst = b"".join(b": c%d\ndata: %d\n\n" % (i, i) for i in range(5000))
    m.receive(burst)
    out = run(m)
    assert out[-1] is READ and len(out) == 10001
    assert out[:-1:2] == [Comment(f"c{i}") for i in range(5000)]
    assert out[1::2] == [ServerSentEvent(data=str(i)) for i in range(5000)]


def test_what_is_received_before_the_queue_is_drained_queues_behind_it() -> None:
    # Drivers read only once the queue is empty; the machine keeps stream
    # order anyway.
    m = machine()
    open_(m)
    m.receive(b"data: a\n\ndata: b\n\n")
    assert m.next() == ServerSentEvent(data="a")
    m.receive(b"data: c\n\ndata: d\n\n")
    m.end()
    assert run(m) == [RELEASE]
    m.released()
    out = run(m)
    assert out[:3] == [ServerSentEvent(data=x) for x in "bcd"]
    assert errors(out) == [ConnectionLostError] and out[-1] is CONNECT


def test_an_event_too_large_leaves_the_errors_events_in_stream_order() -> None:
    m = machine(max_event_size=10)
    open_(m)
    m.receive(b"data: 1\n\ndata: 2\n\ndata: " + b"x" * 50)
    m.released()
    assert run(m) == [ServerSentEvent(data="1"), ServerSentEvent(data="2"), FINISH]
    error = m.final_error
    assert isinstance(error, EventTooLargeError)
    assert error.events == [ServerSentEvent(data="1"), ServerSentEvent(data="2")]


def test_an_idle_open_machine_holds_under_a_kib() -> None:
    """A service may hold thousands of idle streams: the machine with its
    parser, policy and (empty) output queue stays small."""

    def idle() -> Machine:
        m = machine()
        open_(m)
        m.receive(b": hi\n\ndata: a\n\n")
        m.receive(b"data: b")  # a chunk kept back, then its end
        m.receive(b"\n\n")
        assert run(m) == [ServerSentEvent(data="a"), ServerSentEvent(data="b"), READ]
        return m

    idle()  # one-time costs (the parser's first regex match, say) are not counted
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        machines = [idle() for _ in range(100)]
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    mine = [tracemalloc.Filter(True, "*eventsource*")]
    stats = after.filter_traces(mine).compare_to(before.filter_traces(mine), "filename")
    per_machine = sum(stat.size_diff for stat in stats) / len(machines)
    assert per_machine < 1024, per_machine
