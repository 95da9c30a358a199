"""eventsource: a spec-exact, reconnecting Server-Sent Events client."""

import logging as _logging

from ._encoder import format_event
from ._errors import (
    ConnectionLostError,
    EventIdError,
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

# A library logs, the application decides where to: without a handler of its
# own, Python would print our error records to stderr.
_logging.getLogger("eventsource").addHandler(_logging.NullHandler())

__all__ = [
    "DEFAULT_RETRY_STATUSES",
    "ConnectionLostError",
    "EventIdError",
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
