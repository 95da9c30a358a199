"""The exceptions raised by eventsource.

Every exception the library raises on purpose derives from one base, so callers
can catch them all at once::

    EventSourceError
     +-- EventTooLargeError      a line or an event's data exceeded max_event_size
     +-- ResponseError           the server answered with an error status or a
     |                           content type other than text/event-stream
     +-- ConnectionLostError     the connection failed or ended; transient, retried
     |    +-- ReadTimeoutError   nothing arrived for read_timeout seconds
     +-- ConnectError            before a first open: a certificate that fails
     |                           verification, or TLS / plain HTTP mismatched on
     |                           the port; not retried
     +-- EventIdError            the last event ID cannot be sent as Last-Event-ID
     +-- RetriesExhaustedError   every attempt failed (the first and max_retries
                                 retries); the last error is its __cause__

httpx's exceptions are never subclassed: the originals are kept as __cause__.
Calling the API wrongly (a bad argument) raises TypeError or ValueError, as usual.

Every error handed to ``on_error`` says what follows in ``will_retry``: True,
the source reconnects (a drop, or a status in retry_statuses); False, the
error ended the stream (it is then raised from the iterator), or it did not
interrupt the stream at all (a callback raised).
"""

from __future__ import annotations

import enum
import http
import json as jsonlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ._public import public

if TYPE_CHECKING:
    from ._event import ServerSentEvent
    from ._stack import Response

__all__ = [
    "ConnectReason",
    "ConnectionLostError",
    "EventIdError",
    "EventSourceError",
    "EventTooLargeError",
    "ReadTimeoutError",
    "ResponseError",
    "RetriesExhaustedError",
    "connect_error",
    "reason_of",
]


def _rebuilt(kind: type[BaseException], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    """An error unpickled: made without its __init__, its state put back.

    Its __init__ takes keyword-only arguments; the args and attributes are
    set directly.
    """
    error = kind.__new__(kind)
    error.args = args
    error.__dict__.update(state)
    return error


@public
class EventSourceError(Exception):
    """Base class of every error eventsource raises.

    Attributes:
        will_retry: Whether the source reconnects after this error: True, it
            does (a drop, or a status in ``retry_statuses``); False, the error
            ended the stream (it is then raised from the iterator), or it did
            not interrupt the stream at all (a callback raised).
        retry_delay: When ``will_retry``, the seconds until the next attempt;
            else None.
        collected: Raised by ``collect()`` / ``acollect()``: the events they
            had collected (a partial answer); else empty.
    """

    will_retry: bool = False
    retry_delay: float | None = None
    collected: Sequence[ServerSentEvent] = ()

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled whole (pytest-xdist, process pools): the subclasses' keyword-
        # only arguments would not survive Exception's own reduce.
        return (_rebuilt, (type(self), self.args, dict(self.__dict__)))


@public
class EventTooLargeError(EventSourceError):
    """A line or an event's data is longer than ``max_event_size`` characters.

    The parser must be ``close()``-d (reset) before it is fed again.

    Args:
        limit: The ``max_event_size`` exceeded, in characters (kept as
            ``limit``).
        events: The events completed before the oversized one in the same
            ``feed()`` call (kept as ``events``: deliver them before handling
            the error); None: none.
    """

    def __init__(self, limit: int, events: list[ServerSentEvent] | None = None) -> None:
        super().__init__(f"event or line larger than max_event_size ({limit} characters)")
        self.limit = limit
        self.events: list[ServerSentEvent] = events if events is not None else []


@public
class ResponseError(EventSourceError):
    """The server answered with an error, or with no event stream.

    An error status, or a 200 that is not ``text/event-stream``, or a
    redirect that could not be followed. A status in ``retry_statuses`` (5xx,
    408, 429 by default) is reported to ``on_error`` and retried
    (``will_retry``); any other ends the stream. Each argument is kept as the
    attribute of its name.

    Args:
        message: The error message (``Client error '404 Not Found' for GET
            url '…'``).
        status_code: The final status; None when there was none (a redirect
            that cannot be followed).
        response: The ``httpx.Response`` (httpx2's on an httpx2 client),
            closed, with the start of its body (up to 64 KiB) readable
            (``.text``, ``.json()``); None when there was none.
        body: The start of the body as text ("" when there was none).
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None,
        response: Response | None = None,
        body: str = "",
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.response = response
        self.body = body

    def json(self) -> Any:
        """The body decoded as JSON (an API's error, say).

        A leading byte order mark is skipped, as httpx does.

        Returns:
            The decoded value.

        Raises:
            ValueError: The body is no JSON (``json.JSONDecodeError``) or is
                nested too deep to decode.
        """
        try:
            return jsonlib.loads(self.body.removeprefix("\ufeff"))  # (a BOM, as httpx allows)
        except RecursionError:
            raise ValueError("the body's JSON is nested too deep to decode") from None


def status_message(status: int, reason: str, method: str, url: str) -> str:
    """An error status in httpx's words.

    ``Client error '404 Not Found' for GET url 'https://…'``.
    """
    if not reason:
        try:
            reason = http.HTTPStatus(status).phrase
        except ValueError:
            reason = ""
    kind = {1: "Informational response", 2: "Response", 3: "Redirect response"}.get(
        status // 100, "Client error" if status < 500 else "Server error"
    )
    where = f" for {method} url {url!r}" if url else ""
    return f"{kind} '{f'{status} {reason}'.rstrip()}'{where}"


@public
class ConnectionLostError(EventSourceError):
    """The connection failed, or the stream ended; the source reconnects."""


@public
class ConnectError(EventSourceError):
    """The source could not connect, for a reason that retrying cannot fix.

    Not a refused connection (that is a retried ``ConnectionLostError``):
    before the source ever opened, the server's certificate failed
    verification, the URL's scheme does not match the port (``https://`` to
    a plain HTTP port, ``http://`` to a TLS one), the two sides share no TLS
    version, or the server refused the handshake (it requires a client
    certificate: pass ``verify=`` an ``ssl.SSLContext`` with
    ``load_cert_chain()``). Not retried. After a first open the same
    failures are retried (a certificate rotated mid-life), as
    ``ConnectionLostError``.

    Args:
        message: The error message, with advice on what to fix.
        detail: What failed (``"certificate verify failed: …"``), without the
            advice the message adds; kept as ``detail``.
    """

    def __init__(self, message: str, *, detail: str) -> None:
        super().__init__(message)
        self.detail = detail
        self._reason: ConnectReason | None = None


class ConnectReason(enum.Enum):
    """Why a ConnectError was raised; ``_httpx`` names it where it classifies.

    Private: the command line chooses its advice by it, so that rewording
    ``detail`` cannot change the advice.
    """

    CERTIFICATE = "certificate"  # the server's certificate failed verification
    NOT_TLS = "not TLS"  # https:// to a port that does not speak TLS
    ANSWERED_TLS = "answered TLS"  # http:// to a port that answered with TLS
    PROXY_ANSWERED_TLS = "proxy answered TLS"  # http:// for a proxy that speaks TLS
    NO_SHARED_VERSION = "no shared TLS version"
    REFUSED = "handshake refused"  # a client certificate required, or refused
    CA_BUNDLE = "CA bundle"  # SSL_CERT_FILE / SSL_CERT_DIR cannot be loaded


def connect_error(message: str, *, detail: str, reason: ConnectReason) -> ConnectError:
    """A ConnectError that carries its reason (``reason_of()``)."""
    error = ConnectError(message, detail=detail)
    error._reason = reason  # noqa: SLF001 (its own module's field)
    return error


def reason_of(error: ConnectError) -> ConnectReason | None:
    """Why ``error`` was raised; None for one made without a reason."""
    return getattr(error, "_reason", None)  # (getattr: SLF001; a subclass may skip __init__)


@public
class ReadTimeoutError(ConnectionLostError):
    """Nothing (not even a comment) arrived for ``read_timeout`` seconds."""


@public
class EventIdError(EventSourceError):
    """The last event ID cannot be sent as a ``Last-Event-ID`` header.

    Once its leading and trailing spaces and tabs are removed (as a browser
    sends a header value), it still holds a character that the HTTP stack
    refuses in a header value (CR, LF, NUL, a vertical tab or a form feed:
    h11 does), or it is not encodable as UTF-8. Every reconnect would send
    the same id, so the stream ends with this error, before a request is
    sent.

    Args:
        last_event_id: The id (kept as ``last_event_id``).
        problem: What is wrong with it, for the message.
    """

    def __init__(self, last_event_id: str, problem: str) -> None:
        super().__init__(
            f"the last event ID {last_event_id!r} cannot be sent as a Last-Event-ID "
            f"header: {problem}"
        )
        self.last_event_id = last_event_id


@public
class RetriesExhaustedError(EventSourceError):
    """Every attempt failed: the first and ``max_retries`` retries in a row.

    The last attempt's error is ``__cause__``.

    Args:
        attempts: How many attempts failed in a row (kept as ``attempts``).
    """

    def __init__(self, attempts: int) -> None:
        plural = "s" if attempts != 1 else ""
        super().__init__(f"gave up after {attempts} failed attempt{plural} in a row")
        self.attempts = attempts
