"""eventsource: a spec-exact, reconnecting Server-Sent Events client.

The public names are imported on first use (PEP 562): ``import eventsource``
alone, or the pytest plugin (``eventsource.testing._plugin``), imports
neither httpx nor anyio until a name is asked for.
"""

import logging as _logging
from typing import TYPE_CHECKING as _TYPE_CHECKING

from ._lazy import exports as _exports
from ._version import __version__

if _TYPE_CHECKING:
    from ._encoder import format_event
    from ._errors import (
        ConnectError,
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

# A library logs, the application decides where to: without a handler of its
# own, Python would print our error records to stderr.
_logging.getLogger("eventsource").addHandler(_logging.NullHandler())

# Each public name and the private module that defines it.
_WHERE = {
    "DEFAULT_RETRY_STATUSES": "._policy",
    "ConnectError": "._errors",
    "ConnectionLostError": "._errors",
    "EventIdError": "._errors",
    "EventSource": "._source",
    "EventSourceError": "._errors",
    "EventTooLargeError": "._errors",
    "ReadTimeoutError": "._errors",
    "ReadyState": "._source",
    "ResponseError": "._errors",
    "RetriesExhaustedError": "._errors",
    "SSEParser": "._parser",
    "ServerSentEvent": "._event",
    "format_event": "._encoder",
    "parse": "._parser",
}

__all__ = [
    "DEFAULT_RETRY_STATUSES",
    "ConnectError",
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


__getattr__, __dir__ = _exports(globals(), _WHERE, __all__)
