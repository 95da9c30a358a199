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
from ._version import __version__

__all__ = [
    "ConnectionLostError",
    "EventSourceError",
    "EventTooLargeError",
    "ReadTimeoutError",
    "ResponseError",
    "RetriesExhaustedError",
    "SSEParser",
    "ServerSentEvent",
    "__version__",
    "format_event",
    "parse",
]
