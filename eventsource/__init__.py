"""eventsource: a spec-exact, reconnecting Server-Sent Events client."""

from ._encoder import format_event
from ._errors import (
    ConnectionLostError,
    EventSourceError,
    EventTooLargeError,
    ReadTimeoutError,
    ResponseError,
    RetriesExhaustedError,
)
from ._event import ServerSentEvent
from ._parser import SSEParser, parse
from ._policy import DEFAULT_RETRY_STATUSES
from ._source import EventSource, ReadyState
from ._version import __version__

__all__ = [
    "DEFAULT_RETRY_STATUSES",
    "ConnectionLostError",
    "EventSource",
    "EventSourceError",
    "EventTooLargeError",
    "ReadTimeoutError",
    "ReadyState",
    "ResponseError",
    "RetriesExhaustedError",
    "SSEParser",
    "ServerSentEvent",
    "__version__",
    "format_event",
    "parse",
]
