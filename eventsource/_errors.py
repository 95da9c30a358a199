"""The exceptions raised by eventsource.

Every exception the library raises on purpose derives from one base, so callers
can catch them all at once::

    EventSourceError
     +-- EventTooLargeError      a line or an event's data exceeded max_event_size
     +-- ResponseError           the server answered with an error status or a
     |                           content type other than text/event-stream
     +-- ConnectionLostError     the connection failed or ended; transient, retried
     |    +-- ReadTimeoutError   nothing arrived for read_timeout seconds
     +-- RetriesExhaustedError   every attempt failed (the first and max_retries
                                 retries); the last error is its __cause__

httpx's exceptions are never subclassed: the originals are kept as __cause__.
Calling the API wrongly (a bad argument) raises TypeError or ValueError, as usual.

In ``on_error``, ``source.ready_state`` tells what follows, as in browsers:
CONNECTING, the source will reconnect (a drop, or a status in retry_statuses);
CLOSED, the error ended the stream and is raised from the iterator.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._event import ServerSentEvent

__all__ = [
    "ConnectionLostError",
    "EventSourceError",
    "EventTooLargeError",
    "ReadTimeoutError",
    "ResponseError",
    "RetriesExhaustedError",
]


class EventSourceError(Exception):
    """Base class of every error eventsource raises."""


class EventTooLargeError(EventSourceError):
    """A line or an event's data is longer than ``max_event_size`` characters.

    ``events`` holds the events completed before the oversized one in the same
    ``feed()`` call: deliver them before handling the error. The parser must be
    ``close()``-d (reset) before it is fed again.
    """

    def __init__(self, limit: int, events: list[ServerSentEvent] | None = None) -> None:
        super().__init__(f"event or line larger than max_event_size ({limit} characters)")
        self.limit = limit
        self.events: list[ServerSentEvent] = events if events is not None else []


class ResponseError(EventSourceError):
    """The server answered with an error status, or a 200 that is not
    ``text/event-stream``. A status in ``retry_statuses`` (5xx, 408, 429 by
    default) is reported to ``on_error`` and retried; any other ends the stream.

    ``status_code`` is the final status (None when there was none: a redirect
    loop or an unusable Location); ``response`` is the ``httpx.Response``
    (closed; its body was not read).
    """

    def __init__(self, message: str, *, status_code: int | None, response: Any = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.response = response


class ConnectionLostError(EventSourceError):
    """The connection failed, or the stream ended; the source reconnects."""


class ReadTimeoutError(ConnectionLostError):
    """Nothing (not even a comment) arrived for ``read_timeout`` seconds."""


class RetriesExhaustedError(EventSourceError):
    """Every attempt failed: the first and ``max_retries`` retries in a row.
    ``attempts`` counts them; the last error is ``__cause__``."""

    def __init__(self, attempts: int) -> None:
        plural = "s" if attempts != 1 else ""
        super().__init__(f"gave up after {attempts} failed attempt{plural} in a row")
        self.attempts = attempts
