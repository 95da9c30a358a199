"""The connection machine's vocabulary.

The states a source reports, the steps the machine hands its driver, the
notices queued among the events, and the words of its log lines (``_machine``
holds the rules).
"""

from __future__ import annotations

import enum

from ._errors import EventSourceError, ReadTimeoutError, ResponseError
from ._event import ServerSentEvent

__all__ = [
    "CONNECT",
    "FINISH",
    "OPENED",
    "READ",
    "RELEASE",
    "STOP",
    "Comment",
    "Failure",
    "Output",
    "ReadyState",
]


class ReadyState(enum.IntEnum):
    """The source's state, numbered as in browsers.

    It prints as its name (``OPEN``) in logs and f-strings, and compares equal
    to its number.

    Attributes:
        CONNECTING: Connecting, or waiting to reconnect (0).
        OPEN: A stream is open: events arrive (1).
        CLOSED: Closed for good: by ``close()``, a fatal error or the end of
            a stream not reconnected (2).
    """

    CONNECTING = 0
    OPEN = 1
    CLOSED = 2

    def __str__(self) -> str:
        return self.name

    def __format__(self, spec: str) -> str:
        if spec and spec[-1] in "bcdoxXn":  # a numeric format ("{:d}"): the number
            return int.__format__(self, spec)
        return format(self.name, spec)


class _State(enum.Enum):
    WAITING = "waiting"
    CONNECTING = "connecting"
    OPEN = "open"
    CLOSED = "closed"


class _Step(enum.Enum):
    CONNECT = "connect"  # wait machine.delay, then waited(); with no delay, start_attempt()
    READ = "read"  # read the body: receive() / end() / fail()
    RELEASE = "release"  # close the response, then released()
    FINISH = "finish"  # close everything, report machine.final_error, on_close; finished()
    STOP = "stop"  # finished: nothing more to do
    OPENED = "opened"  # notice: call on_open


CONNECT = _Step.CONNECT
READ = _Step.READ
RELEASE = _Step.RELEASE
FINISH = _Step.FINISH
STOP = _Step.STOP
OPENED = _Step.OPENED


class Comment(str):
    """A comment line, queued among the events to keep stream order."""

    __slots__ = ()


class Failure(tuple):  # type: ignore[type-arg]
    """Notice: a transient error to report to on_error (the source retries)."""

    __slots__ = ()

    @property
    def error(self) -> EventSourceError:
        error: EventSourceError = self[0]
        return error


Output = ServerSentEvent | Comment | Failure | _Step

_STATES = {
    _State.WAITING: ReadyState.CONNECTING,
    _State.CONNECTING: ReadyState.CONNECTING,
    _State.OPEN: ReadyState.OPEN,
    _State.CLOSED: ReadyState.CLOSED,
}


def _cannot_restart(method: str) -> EventSourceError:
    return EventSourceError(
        f"restart() cannot reconnect this {method} stream: it gave no event id to resume "
        "from, and sending the request again could run it twice (resume='resend' allows it)"
    )


def _cause(error: EventSourceError, url: object) -> str:
    """What made an attempt fail, in words that fit it, for log lines.

    A 503 is no lost connection, a refused connect no dropped stream.
    """
    text = str(error)
    if isinstance(error, ResponseError):
        return text  # "Server error '503 Service Unavailable' for GET url '…'"
    if text.startswith("cannot connect"):
        return f"cannot connect to {url} ({text.removeprefix('cannot connect: ')})"
    if isinstance(error, ReadTimeoutError):
        return f"{text} from {url}"
    return f"connection lost ({text.removeprefix('connection lost: ')})"
