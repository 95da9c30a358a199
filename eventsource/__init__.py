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

# The public names say they are eventsource's (tracebacks print
# "eventsource.ResponseError", not "eventsource._errors.ResponseError"), as
# httpx does; pickling finds them here too.
for _name in __all__:
    _value = globals()[_name]
    if isinstance(_value, type) or callable(_value):
        _value.__module__ = __name__
del _name, _value
