"""The one module that knows httpx's and httpcore's ways.

It classifies every exception httpx, httpcore, h11, ssl or the OS can raise
into the library's causes (transient or fatal), opens a response's body for
reading (``_body``: the fast read on a stream of eventsource's own backend,
or httpx's public stream), closes responses, and interrupts a read in
progress (``Interrupter``). ``_io`` carries out the steps with these;
``_request`` builds requests with httpx's public API.

Interrupting: a stream of eventsource's backend is aborted (shut down, see
``_backend``), but only while the connection is the source's alone: from
the write of the source's request head on it (sync), or from the body's
opening (async: the send is in a cancel scope), until the response is
released. h11 never reads such a body to its end, so httpcore never hands
the connection to another request: it is closed with the response. HTTP/2
connections and a user's own client are never aborted: async reads there
run in a cancel scope, and a sync read interrupted from another thread ends
with the next bytes or read_timeout.

The one private detail used, in ``_reset_h2()``: httpcore does not reset an
HTTP/2 stream closed before its end (encode/httpcore#943); h2 then counts it
open for good, and a connection's 101st stream fails. ``_reset_h2()`` reaches
the stream's ``_connection._h2_state`` (h2's public ``reset_stream()``),
``_connection._write_outgoing_data(request)`` and ``_stream_id`` through
httpx's ``response.stream`` wrappers; anything missing, and the stream is left
as httpcore leaves it (tested).
"""

from __future__ import annotations

import importlib
import logging
import ssl
import threading
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, Protocol

import anyio
import httpcore

from ._decode import BodyDecodingError
from ._errors import (
    ConnectionLostError,
    ConnectReason,
    EventSourceError,
    ReadTimeoutError,
    ResponseError,
    connect_error,
)

__all__ = [
    "CLOSE_TIMEOUT",
    "HTTPCORE",
    "Core",
    "Interrupter",
    "SpeaksTLS",
    "aclose_response",
    "classify",
    "close_response",
    "core_named",
    "end_generators",
    "fix_request",
    "loaded_cores",
    "never_sent",
]

if TYPE_CHECKING:
    from ._body import SyncBody
    from ._stack import Response

logger = logging.getLogger("eventsource")

CLOSE_TIMEOUT = 5.0  # seconds that closing a response or a client may take, at most

# --- the HTTP cores (httpcore; httpcore2 with httpx2) ----------------------------------


class SpeaksTLS(Exception):
    """A TLS record arrived where the answer to a plain HTTP request was due.

    eventsource's network backend read it, or the peer that hung up on the
    request answered a TLS ClientHello (``_probe``): an http:// URL to a TLS
    port. Raised as the core's ``speaks_tls``: its ConnectError and this.
    """

    proxy = False  # the peer that answered with TLS is a proxy (not the URL's server)


class Core:
    """The names of one HTTP core the transport raises and builds on."""

    __slots__ = (
        "connect_error",
        "connect_timeout",
        "io_errors",
        "module",
        "name",
        "protocol_error",
        "read_error",
        "read_timeout",
        "speaks_tls",
        "unsupported_protocol",
        "write_error",
        "write_timeout",
    )

    def __init__(self, module: Any) -> None:
        self.module = module
        self.name: str = module.__name__
        self.connect_error: type[Exception] = module.ConnectError
        # A ConnectError of the core that says why (its cause may be lost:
        # httpcore's pool re-raises "from None").
        self.speaks_tls: type[SpeaksTLS] = type(
            "SpeaksTLSError", (module.ConnectError, SpeaksTLS), {"__module__": __name__}
        )
        self.connect_timeout: type[Exception] = module.ConnectTimeout
        self.read_error: type[Exception] = module.ReadError
        self.read_timeout: type[Exception] = module.ReadTimeout
        self.write_error: type[Exception] = module.WriteError
        self.write_timeout: type[Exception] = module.WriteTimeout
        self.unsupported_protocol: type[Exception] = module.UnsupportedProtocol
        self.protocol_error: type[Exception] = module.ProtocolError
        # What a read or write of a stream may raise (the backend's streams
        # raise nothing else on I/O).
        self.io_errors: tuple[type[Exception], ...] = (
            module.NetworkError,
            module.TimeoutException,
        )

    def __repr__(self) -> str:
        return f"Core({self.name})"


HTTPCORE = Core(httpcore)
_cores: dict[str, Core] = {"httpcore": HTTPCORE}
_lock = threading.Lock()  # one Core a module, whichever threads ask first


def core_named(name: str) -> Core:
    """The core of that module name ("httpcore", "httpcore2"), imported on first use.

    ImportError when it is not installed.
    """
    core = _cores.get(name)
    if core is not None:
        return core
    if name not in ("httpcore", "httpcore2"):
        raise ValueError(f"not an HTTP core eventsource knows: {name!r}")
    with _lock:
        core = _cores.get(name)
        if core is not None:
            return core
        module = importlib.import_module(name)
        # httpx2's alias_httpx() makes "httpcore" httpcore2 itself: one core.
        same = [known for known in _cores.values() if known.module is module]
        core = _cores[name] = same[0] if same else Core(module)
    return core


def loaded_cores() -> tuple[Core, ...]:
    """The cores in use so far (an error of any of them may reach the driver)."""
    return tuple(_cores.values())


# --- classifying ------------------------------------------------------------------------


# OpenSSL's reasons for a server that does not speak TLS on the port.
_NOT_TLS = frozenset({"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG"})
# ... for TLS versions the two sides do not share (the server's alert, or
# OpenSSL's own refusal before it sends anything).
_NO_SHARED_VERSION = frozenset(
    {"TLSV1_ALERT_PROTOCOL_VERSION", "UNSUPPORTED_PROTOCOL", "NO_PROTOCOLS_AVAILABLE"}
)
# ... for a server that refuses the handshake: it requires a client
# certificate (TLS 1.3's alert, or TLS 1.2's handshake failure, which also
# says that no cipher is shared), or refuses the one presented (the alerts a
# server sends about the client's certificate).
_REFUSED = frozenset(
    {
        "TLSV13_ALERT_CERTIFICATE_REQUIRED",
        "SSLV3_ALERT_HANDSHAKE_FAILURE",
        "SSLV3_ALERT_BAD_CERTIFICATE",
        "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE",
        "SSLV3_ALERT_CERTIFICATE_REVOKED",
        "SSLV3_ALERT_CERTIFICATE_EXPIRED",
        "SSLV3_ALERT_CERTIFICATE_UNKNOWN",
        "TLSV1_ALERT_UNKNOWN_CA",
        "TLSV1_ALERT_ACCESS_DENIED",
    }
)
# What retrying cannot fix, by reason: the advice a ConnectError's message
# adds to its detail. The error carries its reason (_errors.reason_of()): the
# command line gives its own advice by it.
_ADVICE = {
    ConnectReason.CERTIFICATE: (
        "pass verify= a CA bundle or an ssl.SSLContext that trusts the server, or "
        "verify=False to skip the check (on a client of your own: its verify=)"
    ),
    ConnectReason.NOT_TLS: "use http:// for a plain HTTP port",
    ConnectReason.ANSWERED_TLS: "use https:// for a TLS port",
    ConnectReason.PROXY_ANSWERED_TLS: "use an https:// URL for a TLS proxy",
    ConnectReason.NO_SHARED_VERSION: (
        "pass verify= an ssl.SSLContext whose minimum_version and "
        "maximum_version allow the server's (on a client of your own: its verify=)"
    ),
    ConnectReason.REFUSED: (
        "if the server requires a client certificate, pass verify= an ssl.SSLContext "
        "with load_cert_chain() that it trusts (on a client of your own: its verify=)"
    ),
}


def _unfixable(exc: BaseException) -> tuple[ConnectReason, str] | None:
    """What retrying cannot fix in an exception's chain: its reason and words.

    A certificate that fails verification, a server that does not speak TLS
    on the port of an https:// URL, TLS versions not shared, a handshake the
    server refuses (a client certificate required). None otherwise. (An
    http:// URL to a TLS port is a 400 from most servers, a ResponseError; a
    server that hangs up instead is told apart by asking the port: _probe.)
    """
    link: BaseException | None = exc
    seen = 0
    while link is not None and seen < 10:
        # (getattr: an SSLError made in Python, aiohttp's or a mock's, lacks
        # the attributes OpenSSL's have.)
        if isinstance(link, ssl.SSLCertVerificationError):
            why = getattr(link, "verify_message", None) or "the certificate is not trusted"
            return ConnectReason.CERTIFICATE, f"certificate verify failed: {why}"
        reason = getattr(link, "reason", None)
        if isinstance(link, ssl.SSLError) and reason in _NOT_TLS:
            return ConnectReason.NOT_TLS, f"the server does not speak TLS on this port ({reason})"
        if isinstance(link, ssl.SSLError) and reason in _NO_SHARED_VERSION:
            return (
                ConnectReason.NO_SHARED_VERSION,
                f"no TLS version is shared with the server ({reason})",
            )
        if isinstance(link, ssl.SSLError) and reason in _REFUSED:
            return ConnectReason.REFUSED, f"the server refused the TLS handshake ({reason})"
        if isinstance(link, SpeaksTLS):
            return (
                ConnectReason.PROXY_ANSWERED_TLS if link.proxy else ConnectReason.ANSWERED_TLS,
                str(link),
            )
        # The context too, even where it was suppressed ("from None"): the
        # certificate's error is often only there (httpcore re-raises so).
        link = link.__cause__ or link.__context__
        seen += 1
    return None


def classify(
    exc: BaseException,
    *,
    sending: bool,
    read_timeout: float | None = None,
    opened: bool = True,
) -> tuple[EventSourceError, bool] | None:
    """The library's error for an exception from a request or a read.

    And whether it is fatal (retrying cannot fix it); None when it is not an I/O
    error at all (a bug: let it propagate). Before the source ever ``opened``, a
    certificate that fails verification and TLS / plain HTTP mismatched on the
    port are a fatal ConnectError; after, they are retried (a certificate
    rotated mid-life).
    """
    if isinstance(exc, EventSourceError):
        # Ours, raised while sending: a refused redirect (final), or an
        # interrupted read (the machine ignores it).
        return exc, isinstance(exc, ResponseError)
    from ._stack import loaded_stacks  # (it imports this module)

    stacks = loaded_stacks()
    fatal: EventSourceError | None = None
    if any(isinstance(exc, stack.http.UnsupportedProtocol) for stack in stacks):
        fatal = ResponseError(f"unsupported URL: {exc}", status_code=None)
    elif any(isinstance(exc, stack.http.InvalidURL) for stack in stacks):
        fatal = ResponseError(f"invalid URL: {exc}", status_code=None)
    elif any(isinstance(exc, stack.http.TooManyRedirects) for stack in stacks):
        fatal = ResponseError(f"too many redirects: {exc}", status_code=None)
    if fatal is not None:
        fatal.__cause__ = exc
        return fatal, True
    error: EventSourceError
    if isinstance(exc, TimeoutError) or any(isinstance(exc, s.timeouts) for s in stacks):
        what = "no response" if sending else "no data"
        error = ReadTimeoutError(f"{what} for {read_timeout} s")
    elif isinstance(exc, (OSError, anyio.BrokenResourceError, BodyDecodingError)) or any(
        isinstance(exc, s.lost) for s in stacks
    ):
        # OSError covers ssl.SSLError and a socket shut down under a read.
        unfixable = _unfixable(exc) if sending else None
        if unfixable is not None:
            why, detail = unfixable
            if not opened:
                error = connect_error(f"{detail}: {_ADVICE[why]}", detail=detail, reason=why)
                error.__cause__ = exc
                return error, True
            error = ConnectionLostError(f"cannot connect: {detail}")
        else:
            if not sending:
                verb = "connection lost"
            elif never_sent(exc):
                verb = "cannot connect"
            else:  # the request went out: it may have been processed
                verb = "connection lost before the response"
            error = ConnectionLostError(f"{verb}: {_said(exc)}")
    elif isinstance(exc, (anyio.EndOfStream, anyio.ClosedResourceError)):
        error = ConnectionLostError(f"connection lost: {_said(exc)}")
    else:
        return None
    error.__cause__ = exc
    return error, False


def _said(exc: BaseException) -> str:
    """What an exception says, without its class.

    httpx's ``ConnectError`` in a message would read as eventsource's (which
    is never retried).
    """
    return str(exc) or type(exc).__name__


def never_sent(exc: BaseException) -> bool:
    """Whether the request of an attempt that raised this certainly did not leave.

    No connection was made (DNS, refused, TLS handshake, connect or pool
    timeout). A request other than GET may then be sent again.
    """
    from ._stack import loaded_stacks  # (it imports this module)

    stacks = loaded_stacks()
    if any(isinstance(exc, (s.core.connect_error, s.core.connect_timeout)) for s in stacks):
        return True  # the core's own, raised while connecting
    cause = exc.__cause__
    if cause is not None and not any(isinstance(cause, s.core.io_errors) for s in stacks):
        # Mapped from another transport's error (httpx-aiohttp maps a server
        # that hung up after reading the request to ConnectTimeout): the
        # type proves nothing. Only the cores' connect errors are trusted.
        return False
    return any(
        isinstance(exc, (s.http.ConnectError, s.http.ConnectTimeout, s.http.PoolTimeout))
        for s in stacks
    )


# --- interrupting -------------------------------------------------------------------------


class _Abortable(Protocol):
    abortable: bool

    def abort(self) -> None: ...


class Interrupter:
    """The stream a source's step may be ended by aborting it.

    Armed only while the connection is the source's alone (see the module
    docstring).

    ``fire()`` may come from any thread or a signal handler, so it never waits
    for the lock: when another holder has it, the request is left pending and
    that holder carries it out as it lets go (it checks after releasing, so
    one of the two always sees it). A stream disarmed under the lock is never
    aborted after ``disarm()`` returned.
    """

    __slots__ = ("__weakref__", "_fired", "_lock", "_pending", "_stream", "_wanted")

    def __init__(self, wanted: Callable[[], bool] = bool) -> None:
        # Asked when the interrupt is carried out: is it still wanted? (A
        # restart that the driver satisfied meanwhile must not end the new
        # attempt.)
        self._wanted = wanted
        self._lock = threading.Lock()
        self._stream: _Abortable | None = None
        self._fired = False
        self._pending = False

    def arm(self, stream: Any) -> None:
        """This stream carries the source's exchange alone (not HTTP/2)."""
        if stream is not None and not getattr(stream, "abortable", False):
            stream = None
        if stream is self._stream:
            return
        with self._lock:
            self._stream = stream
            if self._fired and stream is not None:
                stream.abort()
        self._drain()

    def disarm(self) -> None:
        with self._lock:
            self._stream = None
        self._drain()

    def begin(self) -> None:
        """A new attempt: forget the last one's interrupt."""
        with self._lock:
            self._stream = None
            self._fired = False
            self._pending = False

    @property
    def fired(self) -> bool:
        """An interrupt came during this attempt."""
        return self._fired

    def fire(self) -> None:
        """Abort the armed stream (now, or as soon as one is armed during this attempt)."""
        self._pending = True
        self._drain()

    def _drain(self) -> None:
        while self._pending:
            if not self._lock.acquire(blocking=False):
                return  # its holder drains as it lets go
            try:
                if self._pending:
                    self._pending = False
                    if self._wanted():
                        self._fired = True
                        if self._stream is not None:
                            self._stream.abort()
            finally:
                self._lock.release()


def fix_request(exc: BaseException, response: Response) -> None:
    # httpx's own iterators set .request on a read error, ours may not.
    from ._stack import stack_of

    stack = stack_of(response)
    if stack is not None and isinstance(exc, stack.http.RequestError):
        try:
            exc.request  # noqa: B018
        except RuntimeError:
            exc.request = response.request


# --- bodies -----------------------------------------------------------------------------


# --- closing -------------------------------------------------------------------------------


def _reset_h2(response: Response) -> Callable[[], Any] | None:
    """Reset an HTTP/2 response's stream in h2 (see the module docstring).

    The call that writes the reset frame out, or None (nothing to reset, or
    httpcore's layout is not the one known: the stream is left as httpcore
    leaves it).
    """
    if response.http_version != "HTTP/2":
        return None
    try:
        core: Any = response.stream
        for _ in range(5):  # httpx's and httpcore's wrappers, down to the h2 stream
            if core is None or hasattr(core, "_connection"):
                break
            inner = getattr(core, "_httpcore_stream", None)
            core = inner if inner is not None else getattr(core, "_stream", None)
        connection = core._connection  # noqa: SLF001 (encode/httpcore#943)
        connection._h2_state.reset_stream(core._stream_id)  # noqa: SLF001
        request = core._request  # noqa: SLF001
        write: Callable[[Any], Any] = connection._write_outgoing_data  # noqa: SLF001
    except Exception:  # ended already (h2's StreamClosedError), or another layout
        return None
    return lambda: write(request)


async def aclose_response(response: Response, body: Any = None) -> None:
    """Close a response, then end its body's iterators.

    Shielded, with a deadline: a transport that ignores the close cannot hang
    us.
    """
    with anyio.CancelScope(shield=True, deadline=anyio.current_time() + CLOSE_TIMEOUT):
        reset = _reset_h2(response)
        if reset is not None:
            try:
                await reset()
            except Exception as exc:
                logger.debug("error while resetting an HTTP/2 stream: %r", exc)
        try:
            await response.aclose()
        except Exception as exc:  # closing a broken connection may fail too
            logger.debug("error while closing the response: %r", exc)
        finally:  # even past the deadline: a body's generators end here
            if body is not None:
                await body.finish()


def close_response(response: Response, body: SyncBody | None = None) -> None:
    """Close a response and its body's iterators."""
    reset = _reset_h2(response)
    if reset is not None:
        try:
            reset()
        except Exception as exc:
            logger.debug("error while resetting an HTTP/2 stream: %r", exc)
    try:
        if body is not None:
            body.finish()
        response.close()
    except Exception as exc:  # closing a broken connection may fail too
        logger.debug("error while closing the response: %r", exc)


async def end_generators(chunks: AsyncIterator[bytes]) -> None:
    """Finish the body's chain of async generators (httpx's, httpcore's, a mock's).

    Closing the outer one would leave the inner ones suspended, and trio warns
    when those are collected. Resumed inside a cancelled scope, every generator
    in the chain ends at its first checkpoint, at once (an HTTP/2 stream's
    would otherwise wait for the connection's next frame).
    """
    with anyio.CancelScope() as scope:
        scope.cancel()
        for _ in range(100):  # a bound, for a mock body that yields without a checkpoint
            try:
                await chunks.__anext__()
            except BaseException:  # noqa: BLE001 (the end we want: cancelled, finished, failed)
                return
