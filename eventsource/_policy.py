"""The connection policy: sans-IO decisions about a connection's fate.

EventSource consults it at the two moments that decide a connection: when a
response arrives (`judge`) and when a connection has ended or failed
(`next_delay`). It does no I/O and reads no clock except through its inputs,
so the sync and async shells share it, and tests drive it directly.

Statuses (WHATWG, with one deliberate difference):
- 200 with a text/event-stream content type: open.
- 204 No Content: the server says "stop": closed, no error.
- `retry_statuses` (by default 408, 429 and every 5xx): retried with backoff,
  honouring Retry-After. Browsers give up on 5xx; a service wants to ride out
  a server restart. `retry_statuses=()` is the browser's behaviour.
- anything else, or a 200 of another content type: fail (ResponseError).

Delays: after a connection that made progress (it delivered an event or moved
the last event ID forward: an MCP server polls that way), and after the first
failed attempt, a reconnect waits the reconnection time (the stream's `retry:`
field, else the `retry` option); a stream's `retry:` counts from
PROGRESS_FLOOR (100 ms), so a server that answers each request with one event
and `retry: 0` is not stormed (the caller's own `retry` is kept). From the
second failed attempt in a row the wait starts from at least
`min_retry_delay` (1 s by default) whatever `retry` says, doubles each time up
to max_retry_delay, and gets jitter that keeps it between half and all of
twice that base; a longer Retry-After wins (within max_retry_delay). So a
server that sent `retry: 0` and then fails cannot be stormed. A failed attempt
is an error, a retried status, or a connection that ended without delivering
an event: the failure count resets only after a connection that made
progress. max_retry_delay also bounds the stream's `retry:` (the caller's limit wins).
"""

from __future__ import annotations

import enum
import math
import os
import random
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._stack import Response

from ._errors import EventSourceError, ResponseError, RetriesExhaustedError, status_message

__all__ = ["DEFAULT_RETRY_STATUSES", "Action", "ConnectionPolicy", "Verdict", "parse_retry_after"]


class _Statuses(frozenset[int]):
    """A frozenset that shows its name in ``help()`` and signatures."""

    def __repr__(self) -> str:
        return "DEFAULT_RETRY_STATUSES"


DEFAULT_RETRY_STATUSES: frozenset[int] = _Statuses({408, 429, *range(500, 600)} - {501, 505, 511})
"""The statuses retried by default.

408 Request Timeout, 429 Too Many Requests and every 5xx but those retrying
cannot fix (501 Not Implemented, 505 HTTP Version Not Supported, 511 Network
Authentication Required); CDNs' 520-524 and 529 stay retried.
"""
DEFAULT_MIN_RETRY_DELAY = 1.0  # seconds: the backoff floor of consecutive failures
PROGRESS_FLOOR = 0.1  # seconds: the least wait a stream's retry: gets after progress

# Jitter only needs to differ between clients; one generator serves every
# policy (a Mersenne Twister's state is 2.5 KiB, too much per stream).
_RNG = random.Random()
if hasattr(os, "register_at_fork"):  # a forked worker must not back off in step
    os.register_at_fork(after_in_child=_RNG.seed)


class Action(enum.Enum):
    OPEN = "open"  # read the stream
    CLOSE = "close"  # end without error (204)
    RETRY = "retry"  # transient: reconnect after a delay
    FAIL = "fail"  # fatal: end with the error


@dataclass(frozen=True)
class Verdict:
    action: Action
    error: EventSourceError | None = None
    retry_after: float | None = None  # seconds the server asked us to wait


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After value (delta-seconds or an HTTP date).

    None when absent or unreadable.
    """
    if not value:
        return None
    value = value.strip()
    if value.isdigit() and value.isascii():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        now = now or datetime.now(timezone.utc)
        return max(0.0, (when - now).total_seconds())
    except (TypeError, ValueError, IndexError, OverflowError):  # a zone of 13 digits, say
        return None


def _is_event_stream(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() == "text/event-stream"


class ConnectionPolicy:
    """Decides what a response means and how long to wait before the next attempt.

    All times are in seconds.
    """

    # One per source: slots instead of a __dict__ (about 100 bytes less).
    __slots__ = (
        "_rng",
        "failures",
        "max_retries",
        "max_retry_delay",
        "min_retry_delay",
        "reconnect",
        "retry",
        "retry_statuses",
        "stream_retry",
    )

    def __init__(
        self,
        *,
        retry: float = 3.0,
        max_retries: int | None = None,
        max_retry_delay: float = 30.0,
        min_retry_delay: float = DEFAULT_MIN_RETRY_DELAY,
        retry_statuses: Collection[int] = DEFAULT_RETRY_STATUSES,
        reconnect: bool | None = True,
        rng: random.Random | None = None,
    ) -> None:
        durations = {"retry": retry, "max_retry_delay": max_retry_delay}
        durations["min_retry_delay"] = min_retry_delay
        for name, value in durations.items():
            if math.isnan(value):
                raise ValueError(f"{name} must be a number of seconds, not NaN")
        if retry < 0 or max_retry_delay < 0 or min_retry_delay < 0:
            raise ValueError("retry, min_retry_delay and max_retry_delay must not be negative")
        if max_retries is not None and max_retries < 0:
            raise ValueError("max_retries must be None or >= 0")
        self.retry = retry  # the reconnection time
        self.stream_retry = False  # the stream's retry: set it
        self.max_retries = max_retries
        self.max_retry_delay = max_retry_delay
        self.min_retry_delay = min_retry_delay
        # Shared, not copied (4 KiB a source): frozenset() copies a subclass,
        # and DEFAULT_RETRY_STATUSES is one (for its repr).
        self.retry_statuses = (
            retry_statuses if isinstance(retry_statuses, frozenset) else frozenset(retry_statuses)
        )
        self.reconnect = reconnect  # False: never (None and True: as the machine decides)
        self.failures = 0  # failed attempts in a row
        self._rng = rng or _RNG

    def judge(
        self,
        status: int,
        headers: Mapping[str, str],
        response: Response | None = None,
        *,
        reason: str = "",
        method: str = "GET",
        url: str = "",
        resuming: bool = False,
    ) -> Verdict:
        """What a response (status and headers) means for the stream.

        reason, method and url only word the error, and ``resuming`` (the
        request resumes another's stream) says a 404 or 405 means it cannot
        resume.
        """
        where = f" for {method} url {url!r}" if url else ""
        if status == 200:
            content_type = headers.get("content-type", "")
            if _is_event_stream(content_type):
                return Verdict(Action.OPEN)
            return Verdict(
                Action.FAIL,
                ResponseError(
                    f"expected Content-Type text/event-stream, got {content_type or 'none'!r}"
                    + where,
                    status_code=status,
                    response=response,
                ),
            )
        if status == 204:
            return Verdict(Action.CLOSE)
        message = status_message(status, reason, method, url)
        if 300 <= status < 400:
            location = headers.get("location")
            message += (
                f": a redirect to {location!r}, not followed (follow_redirects=False)"
                if location
                else ": a redirect without a Location"
            )
        elif resuming and status in (404, 405):
            message += ": the stream cannot be resumed"
        error = ResponseError(message, status_code=status, response=response)
        if status in self.retry_statuses and self.reconnect is not False:
            return Verdict(Action.RETRY, error, parse_retry_after(headers.get("retry-after")))
        return Verdict(Action.FAIL, error)

    def set_stream_retry(self, milliseconds: int) -> None:
        """The stream's `retry:` field changed the reconnection time.

        One too large for a float in seconds (past 1.79 * 10**311 ms, 312
        digits; the parser keeps less) is infinite: max_retry_delay bounds it
        as any other.
        """
        self.stream_retry = True
        try:
            self.retry = milliseconds / 1000
        except OverflowError:
            self.retry = math.inf

    def _reconnection_time(self) -> float:
        """The retry option, or the stream's retry.

        Counted from PROGRESS_FLOOR (a server cannot make a source reconnect
        more than 10 times a second).
        """
        return max(self.retry, PROGRESS_FLOOR) if self.stream_retry else self.retry

    def next_delay(
        self, *, delivered: bool, polled: bool = False, retry_after: float | None = None
    ) -> float:
        """Seconds to wait before the next attempt, after a connection ended or failed.

        ``delivered``: it made progress; ``polled``: only by moving the last event
        ID, as an MCP server polls: then the wait is at least PROGRESS_FLOOR,
        whatever ``retry`` says. Raises RetriesExhaustedError past max_retries.
        """
        if delivered:
            # A connection that made progress and then ended is not a failed
            # attempt: reconnecting after it is no retry, and the count restarts.
            self.failures = 0
            delay = self._reconnection_time()
            if polled:
                delay = max(delay, PROGRESS_FLOOR)
            return min(delay, self.max_retry_delay)
        self.failures += 1
        if self.max_retries is not None and self.failures > self.max_retries:
            raise RetriesExhaustedError(self.failures)
        if self.failures == 1:
            delay = min(self._reconnection_time(), self.max_retry_delay)
        else:
            # Consecutive failures: never less than the floor, whatever retry
            # says (a retry of 0 would otherwise storm a failing server). The
            # exponent is capped: 2.0 ** 1024 overflows, and the cap applies
            # long before.
            base = max(self.retry, self.min_retry_delay)
            delay = min(base * 2.0 ** min(self.failures - 1, 64), self.max_retry_delay)
            delay *= self._rng.uniform(0.5, 1.0)
        if retry_after is not None and retry_after > delay:
            delay = min(retry_after, self.max_retry_delay)
        return delay
