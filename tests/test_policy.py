"""ConnectionPolicy: the status table, delays, backoff, jitter, Retry-After."""

from __future__ import annotations

import os
import random
import warnings
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from eventsource import ResponseError, RetriesExhaustedError
from eventsource._policy import Action, ConnectionPolicy, parse_retry_after

SSE = {"content-type": "text/event-stream"}


@pytest.mark.parametrize(
    ("status", "headers", "action"),
    [
        (200, SSE, Action.OPEN),
        (200, {"content-type": "text/event-stream; charset=utf-8"}, Action.OPEN),
        (200, {"content-type": "Text/Event-Stream"}, Action.OPEN),
        (200, {"content-type": "application/json"}, Action.FAIL),
        (200, {"content-type": "text/event-streams"}, Action.FAIL),
        (200, {}, Action.FAIL),
        (204, {}, Action.CLOSE),
        (201, SSE, Action.FAIL),
        (301, {}, Action.FAIL),
        (304, {}, Action.FAIL),
        (400, {}, Action.FAIL),
        (401, {}, Action.FAIL),
        (403, {}, Action.FAIL),
        (404, {}, Action.FAIL),
        (408, {}, Action.RETRY),
        (429, {}, Action.RETRY),
        (500, {}, Action.RETRY),
        (502, {}, Action.RETRY),
        (503, {}, Action.RETRY),
        (599, {}, Action.RETRY),
    ],
)
def test_status_table(status: int, headers: dict[str, str], action: Action) -> None:
    verdict = ConnectionPolicy().judge(status, headers)
    assert verdict.action is action
    if action in (Action.FAIL, Action.RETRY):
        assert isinstance(verdict.error, ResponseError)
        assert verdict.error.status_code == status


def test_browser_strict_statuses_and_no_reconnect() -> None:
    assert ConnectionPolicy(retry_statuses=()).judge(503, {}).action is Action.FAIL
    assert ConnectionPolicy(retry_statuses={401}).judge(401, {}).action is Action.RETRY
    assert ConnectionPolicy(reconnect=False).judge(503, {}).action is Action.FAIL


def test_retry_after_is_read_from_retryable_responses() -> None:
    verdict = ConnectionPolicy().judge(503, {"retry-after": "7"})
    assert verdict.retry_after == 7.0


def test_parse_retry_after() -> None:
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now) == 30
    assert parse_retry_after(format_datetime(now - timedelta(seconds=30), usegmt=True), now) == 0
    for bad in (None, "", "soon", "-5", "1.5"):
        assert parse_retry_after(bad) is None


def test_first_reconnect_waits_the_reconnection_time_exactly() -> None:
    policy = ConnectionPolicy(retry=3.0)
    assert policy.next_delay(delivered=True) == 3.0
    policy.set_stream_retry(1500)
    assert policy.retry == 1.5
    assert policy.next_delay(delivered=True) == 1.5


def test_backoff_doubles_with_jitter_floor_and_cap() -> None:
    policy = ConnectionPolicy(retry=1.0, max_retry_delay=10.0, rng=random.Random(1))
    delays = [policy.next_delay(delivered=False) for _ in range(8)]
    assert delays[0] == 1.0
    for n, delay in enumerate(delays[1:], start=2):
        computed = min(1.0 * 2 ** (n - 1), 10.0)
        assert computed / 2 <= delay <= computed


def test_jitter_spreads_and_never_goes_below_half() -> None:
    samples = []
    for seed in range(500):
        policy = ConnectionPolicy(retry=2.0, rng=random.Random(seed))
        policy.next_delay(delivered=False)
        samples.append(policy.next_delay(delivered=False))  # computed: 4.0
    assert min(samples) >= 2.0 and max(samples) <= 4.0
    assert max(samples) - min(samples) > 1.5  # spread, not one value


def test_retry_after_wins_when_longer_within_the_cap() -> None:
    policy = ConnectionPolicy(retry=1.0, max_retry_delay=30.0)
    assert policy.next_delay(delivered=False, retry_after=12.0) == 12.0
    assert policy.next_delay(delivered=False, retry_after=0.1) <= 2.0
    assert ConnectionPolicy(max_retry_delay=5.0).next_delay(delivered=False, retry_after=60) == 5.0


def test_max_retries_counts_failures_in_a_row() -> None:
    policy = ConnectionPolicy(retry=0.0, max_retries=2)
    policy.next_delay(delivered=False)
    policy.next_delay(delivered=False)
    with pytest.raises(RetriesExhaustedError) as info:
        policy.next_delay(delivered=False)
    assert info.value.attempts == 3


def test_failures_reset_only_after_a_connection_that_delivered() -> None:
    policy = ConnectionPolicy(retry=0.0, max_retries=1)
    policy.next_delay(delivered=False)
    for _ in range(10):
        policy.next_delay(delivered=True)  # each connection delivered: never exhausted
    assert policy.failures == 0
    policy.next_delay(delivered=False)
    with pytest.raises(RetriesExhaustedError):
        policy.next_delay(delivered=False)


def test_zero_max_retries_never_retries_a_failure() -> None:
    policy = ConnectionPolicy(max_retries=0, retry=1.0)
    assert policy.next_delay(delivered=True) == 1.0  # after a healthy stream: no retry
    with pytest.raises(RetriesExhaustedError):
        policy.next_delay(delivered=False)


def test_retry_field_is_bounded_by_max_retry_delay() -> None:
    policy = ConnectionPolicy(max_retry_delay=30.0)
    policy.set_stream_retry(60_000)
    assert policy.next_delay(delivered=True) == 30.0


def test_a_stream_retry_too_large_for_a_float_is_bounded_not_raised() -> None:
    # Past 1.79 * 10**311 ms (312 digits) a retry does not fit a float in
    # seconds; max_retry_delay bounds it like any other.
    for milliseconds in (2**63 - 1, 10**311, 2 * 10**311, int("9" * 4300), 10**4400):
        policy = ConnectionPolicy(retry=0.5, max_retry_delay=30.0, rng=random.Random(0))
        policy.set_stream_retry(milliseconds)
        assert policy.next_delay(delivered=True) == 30.0
        assert policy.next_delay(delivered=False) == 30.0  # the first failure: no jitter
        assert 15.0 <= policy.next_delay(delivered=False) <= 30.0


def test_many_failures_do_not_overflow() -> None:
    policy = ConnectionPolicy(retry=1.0, max_retry_delay=30.0)
    for _ in range(5000):
        delay = policy.next_delay(delivered=False)
    assert 15.0 <= delay <= 30.0


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        ConnectionPolicy(retry=-1)
    with pytest.raises(ValueError):
        ConnectionPolicy(max_retries=-1)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_workers_draw_their_own_jitter() -> None:
    """The policies share one generator; a forked process reseeds it, or every
    worker of a preforking server would back off in step with the others."""

    def delays() -> list[float]:
        policy = ConnectionPolicy(retry=1.0, max_retry_delay=60.0)
        return [policy.next_delay(delivered=False) for _ in range(4)]

    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork() with threads (3.12+)
        pid = os.fork()
    if pid == 0:  # the child: report its delays and leave at once
        os.write(write_end, repr(delays()).encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        child = pipe.read()
    os.waitpid(pid, 0)
    assert child.startswith("[") and child != repr(delays())
