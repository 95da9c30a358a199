"""The one module that knows httpx's and httpcore's insides.

It classifies every exception httpx, httpcore, h11, ssl or the OS can raise
into the library's causes (transient or fatal), opens a response's body for
reading (the fast path below, or httpx's public stream), closes responses,
and interrupts a read in progress. ``_io`` carries out the steps with these;
``_request`` builds requests with httpx's public API.

The fast path: an HTTP/1.1 response from httpx's own transport with no
content coding is read straight from its connection, its chunked framing
decoded by ``_chunked`` (or counted against Content-Length, or read to the
end of the connection), once h11 has parsed the head; ``_direct`` holds the
readers: the socket itself (sync), the asyncio transport taken over from
anyio's protocol, the trio socket, or else the network stream's ``read()``
(TLS on async). h11 then never sees the body, so the connection is closed
with the response, never pooled (an SSE stream ends with its connection
anyway). Any surprise (another transport, a compressed body, HTTP/2, a
missing private attribute) takes httpx's public stream instead, or the
network stream's ``read()``, never an error.

Interrupting: a read on an HTTP/1.1 connection is ended by shutting the socket
down (by its descriptor: event loops wrap their sockets), but only while the
connection is the source's alone: the socket is armed when the source's request
starts on it and disarmed, under a lock, before the response is closed and the
connection could go back to a pool. HTTP/2 connections are shared by streams
and are never shut down: async reads there run in a cancel scope, and a sync
read interrupted from another thread ends with the next frame or read_timeout.

Private details used, each reached through a guarded accessor that falls back
to the public path (checked on httpx 0.27-0.28, httpcore 1.0.5-1.0.9, h11
0.14-0.16, h2 4.1-4.3):

- ``response.extensions["network_stream"]``: httpcore's documented extension;
  its ``read(max_bytes, timeout)`` and ``get_extra_info("socket")`` /
  ``("ssl_object")``.
- on asyncio, that stream's ``_stream``, anyio's ``SocketStream``, and its
  ``_transport`` and ``_protocol`` (anyio's ``StreamProtocol``, whose
  ``read_queue`` holds bytes received and not yet read): the transport is
  taken over with asyncio's public ``set_protocol()``, the queued bytes read
  first (checked on anyio 4.1-4.16). Fallback: the network stream's
  ``read()``.
- ``response.stream._stream._httpcore_stream._stream._connection._h11_state``
  (httpx's ``BoundAsyncStream`` / ``BoundSyncStream`` and ``ResponseStream``,
  httpcore's ``PoolByteStream``, ``HTTP11ConnectionByteStream`` and
  ``HTTP11Connection``): h11's public ``trailing_data``, the body bytes read
  with the head, and ``their_state``. Fallback: httpx's public stream.
- the same ``_httpcore_stream`` of an HTTP/2 response: its
  ``_connection._h2_state`` (h2's public ``reset_stream()``),
  ``_connection._write_outgoing_data(request)`` and ``_stream_id``, to reset a
  stream closed before its end, which httpcore does not (encode/httpcore#943):
  without it, h2 counts the stream open for good, and a connection's 101st
  stream fails. Fallback: the stream is left as httpcore leaves it.
- httpcore's ``trace`` request extension, event ``http11.send_request_headers
  .started``: the caller's frame is ``HTTP11Connection.handle_request``, whose
  ``self._network_stream`` is the connection the request was given (fresh or
  pooled), so a sync close() from another thread can end a wait for the
  response head. Fallback: that wait ends at read_timeout.
- ``httpx.RemoteProtocolError`` raised ``from None`` by the client while
  sending is its refusal of a redirect's Location (``Client._redirect_url``);
  a transport's error always has a ``__cause__``. Fallback: retried with
  backoff like any protocol error.
"""

from __future__ import annotations

import logging
import socket
import ssl
import sys
import threading
import weakref
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from typing import Any, Protocol

import anyio
import httpcore
import httpx

from ._chunked import BodyFraming
from ._direct import AsyncDirect, ReadFailed, ReadTimedOut, async_reader, sync_reader
from ._errors import ConnectionLostError, EventSourceError, ReadTimeoutError, ResponseError

__all__ = [
    "CLOSE_TIMEOUT",
    "AsyncBody",
    "Interrupter",
    "SyncBody",
    "aclose_response",
    "classify",
    "close_response",
    "fix_request",
    "open_async_body",
    "open_sync_body",
]

logger = logging.getLogger("eventsource")

CLOSE_TIMEOUT = 5.0  # seconds that closing a response or a client may take, at most

# --- classifying ------------------------------------------------------------------------


def classify(
    exc: BaseException, *, sending: bool, read_timeout: float | None = None
) -> tuple[EventSourceError, bool] | None:
    """The library's error for an exception from a request or a read, and
    whether it is fatal (retrying cannot fix it); None when it is not an I/O
    error at all (a bug: let it propagate)."""
    if isinstance(exc, EventSourceError):
        # Ours, raised while sending: a refused redirect (final), or an
        # interrupted read (the machine ignores it).
        return exc, isinstance(exc, ResponseError)
    fatal: EventSourceError | None = None
    if isinstance(exc, httpx.UnsupportedProtocol):
        fatal = ResponseError(f"unsupported URL: {exc}", status_code=None)
    elif isinstance(exc, httpx.InvalidURL):
        fatal = ResponseError(f"invalid URL: {exc}", status_code=None)
    elif isinstance(exc, httpx.TooManyRedirects):
        fatal = ResponseError(f"too many redirects: {exc}", status_code=None)
    elif sending and _refused_redirect(exc):
        fatal = ResponseError(f"redirect with an unusable Location: {exc}", status_code=None)
    if fatal is not None:
        fatal.__cause__ = exc
        return fatal, True
    error: EventSourceError
    if isinstance(exc, (httpx.ReadTimeout, httpcore.ReadTimeout, TimeoutError)):
        what = "no response" if sending else "no data"
        error = ReadTimeoutError(f"{what} for {read_timeout} s")
    elif isinstance(
        exc,
        (httpx.HTTPError, httpx.StreamError, httpcore.NetworkError, OSError),
    ) or isinstance(exc, (httpcore.ProtocolError, anyio.BrokenResourceError)):
        # OSError covers ssl.SSLError (older httpcore let a certificate
        # failure through raw) and a socket shut down under a read.
        verb = "cannot connect" if sending else "connection lost"
        error = ConnectionLostError(f"{verb}: {exc!r}")
    elif isinstance(exc, (anyio.EndOfStream, anyio.ClosedResourceError)):
        error = ConnectionLostError(f"connection lost: {exc!r}")
    else:
        return None
    error.__cause__ = exc
    return error, False


def _refused_redirect(exc: BaseException) -> bool:
    # httpx raises this `from None` when a Location is no URL; a transport's
    # RemoteProtocolError is always raised from httpcore's.
    return (
        isinstance(exc, httpx.RemoteProtocolError)
        and exc.__cause__ is None
        and exc.__suppress_context__
    )


# --- interrupting -------------------------------------------------------------------------


class _Socket(Protocol):
    def fileno(self) -> int: ...


class Interrupter:
    """The socket a source's read may be ended by shutting it down: armed only
    while the connection is the source's alone (see the module docstring).

    ``fire()`` may come from any thread or a signal handler, so it never waits
    for the lock: when another holder has it, the request is left pending and
    that holder carries it out as it lets go (it checks after releasing, so
    one of the two always sees it). A socket disarmed under the lock is never
    shut down after ``disarm()`` returned.
    """

    __slots__ = ("__weakref__", "_fired", "_lock", "_pending", "_socket", "_wanted")

    def __init__(self, wanted: Callable[[], bool] = bool) -> None:
        # Asked when the interrupt is carried out: is it still wanted? (A
        # restart that the driver satisfied meanwhile must not end the new
        # attempt.)
        self._wanted = wanted
        self._lock = threading.Lock()
        self._socket: _Socket | None = None
        self._fired = False
        self._pending = False

    def arm(self, sock: _Socket | None) -> None:
        with self._lock:
            self._socket = sock
            if self._fired and sock is not None:
                _shutdown(sock)
        self._drain()

    def disarm(self) -> None:
        with self._lock:
            self._socket = None
        self._drain()

    def begin(self) -> None:
        """A new attempt: forget the last one's interrupt."""
        with self._lock:
            self._socket = None
            self._fired = False
            self._pending = False

    @property
    def fired(self) -> bool:
        """An interrupt came during this attempt."""
        return self._fired

    def fire(self) -> None:
        """Shut the armed socket down (now, or as soon as one is armed during
        this attempt)."""
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
                        if self._socket is not None:
                            _shutdown(self._socket)
            finally:
                self._lock.release()

    def tracer(self) -> Callable[[str, Mapping[str, Any]], None]:
        """httpcore trace hook that arms the socket of a sync HTTP/1.1 request
        before its response head arrives (see the module docstring)."""
        ref = weakref.ref(self)  # requests outlive sources in mocks and logs

        def trace(name: str, info: Mapping[str, Any]) -> None:
            if name == "http11.send_request_headers.started":
                interrupter = ref()
                if interrupter is not None:
                    interrupter.arm(_socket_of(_calling_connection_stream()))

        return trace


def _calling_connection_stream() -> Any:
    """The network stream of the httpcore HTTP/1.1 connection whose
    handle_request is calling the trace hook; None when not found."""
    try:
        frame = sys._getframe(2)
        for _ in range(4):
            if frame is None:
                return None
            owner = frame.f_locals.get("self")
            stream = getattr(owner, "_network_stream", None)
            if stream is not None and hasattr(stream, "get_extra_info"):
                return stream
            frame = frame.f_back  # type: ignore[assignment]
    except Exception:  # noqa: S110 (a private layout changed: the public fallback)
        return None
    return None


def _socket_of(stream: Any) -> _Socket | None:
    try:
        sock = stream.get_extra_info("socket") if stream is not None else None
    except Exception:
        return None
    return sock if callable(getattr(sock, "fileno", None)) else None


def own_socket(response: httpx.Response) -> _Socket | None:
    """The socket under an HTTP/1.1 response from httpx's own transport (one
    response per connection: shutting it down touches nothing else)."""
    if response.http_version != "HTTP/1.1":
        return None
    return _socket_of(response.extensions.get("network_stream"))


def _shutdown(sock: _Socket) -> None:
    """Shut a socket down for reading and writing, by its descriptor: event
    loops wrap their sockets, uvloop's wrapper refuses shutdown(), and an
    SSLSocket's shutdown() would drop its TLS state under the reading thread."""
    try:
        fd = sock.fileno()
        if fd < 0:
            return  # closed already
        borrowed = socket.socket(fileno=fd)
        try:
            borrowed.shutdown(socket.SHUT_RDWR)
        finally:
            borrowed.detach()  # the descriptor stays its owner's
    except (OSError, ValueError):
        pass  # not connected any more, or not a socket: nothing to end


def _identity(response: httpx.Response) -> bool:
    """No content coding: the raw body is the stream (httpx's decoding layer
    is skipped, it only copies)."""
    coding = response.headers.get("content-encoding")
    return coding is None or coding.strip().lower() in ("", "identity")


def fix_request(exc: BaseException, response: httpx.Response) -> None:
    # httpx's own iterators set .request on a read error, the stream's do not.
    if isinstance(exc, httpx.RequestError):
        try:
            exc.request  # noqa: B018
        except RuntimeError:
            exc.request = response.request


# --- bodies -----------------------------------------------------------------------------


class AsyncBody(Protocol):
    scoped: bool  # reads need a cancel scope to be timed and interrupted
    resumable: bool  # a read the caller cancelled can be taken up again

    async def read(self) -> bytes | None: ...
    async def finish(self) -> None: ...


class SyncBody(Protocol):
    def read(self) -> bytes | None: ...
    def finish(self) -> None: ...


def _direct(response: httpx.Response) -> tuple[Any, bytes, BodyFraming] | None:
    """The network stream under an HTTP/1.1 body from httpx's own transport,
    the body bytes already read with the head, and the body's framing; None
    when the fast path does not apply (see the module docstring)."""
    if response.http_version != "HTTP/1.1" or not _identity(response):
        return None
    if response.is_stream_consumed or response.is_closed:
        return None
    headers = response.headers
    try:
        core: Any = _httpcore_stream(response)
        h11_connection = core._connection._h11_state
        import h11

        if h11_connection.their_state is not h11.SEND_BODY:
            return None
        buffered, _closed = h11_connection.trailing_data
        stream = response.extensions["network_stream"]
        if not callable(getattr(stream, "read", None)):
            return None
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        length = headers.get("content-length")
        length = None if chunked or length is None else int(length)
    except Exception:  # another transport or version: the public path
        return None
    return stream, bytes(buffered), BodyFraming(chunked, length)


def _plain(stream: Any) -> bool:
    try:
        return stream.get_extra_info("ssl_object") is None
    except Exception:
        return False


def _async_endpoint(stream: Any) -> tuple[str, Any] | None:
    """What a plain TCP connection can be read from below httpcore's stream:
    its asyncio transport, taken over from anyio's protocol with the bytes
    that protocol holds unread, or its trio socket; None otherwise."""
    if not _plain(stream):
        return None
    try:
        sock = stream.get_extra_info("socket")
        trio = sys.modules.get("trio")
        if trio is not None and isinstance(sock, trio.socket.SocketType):
            return ("trio", sock) if sys.platform != "win32" else None
        inner = stream._stream  # anyio's SocketStream on asyncio
        transport, protocol = inner._transport, inner._protocol
        queue = protocol.read_queue
        if transport.get_protocol() is not protocol or not isinstance(queue, deque):
            return None
        for name in ("set_protocol", "is_closing", "pause_reading", "resume_reading"):
            if not callable(getattr(transport, name, None)):
                return None
    except Exception:  # another backend or layout: httpcore's stream
        return None
    return ("asyncio", (transport, protocol, queue))


def _raw_stream(response: httpx.Response, kind: type) -> bool:
    """The transport's chunks can be read as they are: no content coding to
    undo (a layer and a copy per chunk fewer than aiter_raw(), which only
    counts bytes)."""
    if _identity(response) and isinstance(response.stream, kind):
        if not response.is_stream_consumed:
            response.is_stream_consumed = True
            return True
    return False


class _AsyncChunks:
    """httpx's public stream (or the transport's chunks as they are)."""

    __slots__ = ("_chunks", "scoped")
    resumable = False  # a cancel ends httpx's chain of generators

    def __init__(self, response: httpx.Response, scoped: bool) -> None:
        self.scoped = scoped
        self._chunks: AsyncIterator[bytes] = (
            response.stream.__aiter__()  # type: ignore[union-attr]
            if _raw_stream(response, httpx.AsyncByteStream)
            else response.aiter_bytes()
        )

    async def read(self) -> bytes | None:
        try:
            return await self._chunks.__anext__()
        except StopAsyncIteration:
            return None

    async def finish(self) -> None:
        await _end_generators(self._chunks)


class _SyncChunks:
    __slots__ = ("_chunks",)

    def __init__(self, response: httpx.Response) -> None:
        self._chunks: Iterator[bytes] = (
            response.stream.__iter__()  # type: ignore[union-attr]
            if _raw_stream(response, httpx.SyncByteStream)
            else response.iter_bytes()
        )

    def read(self) -> bytes | None:
        return next(self._chunks, None)

    def finish(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()


def _async_read(stream: Any) -> Callable[[int, float | None], Awaitable[bytes]]:
    """The network stream's read(), its httpcore errors turned into _direct's."""

    async def read(max_bytes: int, timeout: float | None) -> bytes:  # noqa: ASYNC109 (the stream's own)
        try:
            return await stream.read(max_bytes, timeout)  # type: ignore[no-any-return]
        except httpcore.ReadTimeout as exc:
            raise ReadTimedOut(str(exc)) from exc
        except httpcore.ReadError as exc:
            raise ReadFailed(str(exc)) from exc

    return read


def _sync_read(stream: Any) -> Callable[[int, float | None], bytes]:
    def read(max_bytes: int, timeout: float | None) -> bytes:
        try:
            return stream.read(max_bytes, timeout)  # type: ignore[no-any-return]
        except httpcore.ReadTimeout as exc:
            raise ReadTimedOut(str(exc)) from exc
        except httpcore.ReadError as exc:
            raise ReadFailed(str(exc)) from exc

    return read


def open_async_body(
    response: httpx.Response, read_timeout: float | None
) -> tuple[AsyncBody, _Socket | None]:
    """The body to read, and the socket that interrupts it (None: the read
    needs a cancel scope)."""
    sock = own_socket(response)
    direct = _direct(response) if sock is not None else None
    if direct is not None:
        response.is_stream_consumed = True
        stream, buffered, framing = direct
        endpoint = _async_endpoint(stream)
        return async_reader(
            _async_read(stream), endpoint, buffered, framing, response.request, read_timeout
        ), sock
    return _AsyncChunks(response, scoped=sock is None), sock


def open_sync_body(
    response: httpx.Response, read_timeout: float | None
) -> tuple[SyncBody, _Socket | None]:
    """The body to read, and the socket that interrupts it from another thread."""
    sock = own_socket(response)
    direct = _direct(response) if sock is not None else None
    if direct is not None:
        response.is_stream_consumed = True
        stream, buffered, framing = direct
        raw = sock if isinstance(sock, socket.socket) else None
        if raw is not None and not _plain(stream):
            try:
                tls = stream.get_extra_info("ssl_object")
            except Exception:
                tls = None
            # One TLS layer is the SSLSocket's own; TLS inside a proxy's TLS
            # is an SSLObject above a socket that carries the outer layer.
            if not isinstance(raw, ssl.SSLSocket) or isinstance(tls, ssl.SSLObject):
                raw = None
        read = _sync_read(stream)
        return sync_reader(read, raw, buffered, framing, response.request, read_timeout), sock
    return _SyncChunks(response), sock


# --- closing -------------------------------------------------------------------------------


def _httpcore_stream(response: httpx.Response) -> Any:
    """httpcore's connection stream (the one holding ``_connection``) under
    httpx's and httpcore's wrappers, or None."""
    stream: Any = response.stream
    for _ in range(5):  # BoundAsyncStream -> ResponseStream -> PoolByteStream -> ...
        if stream is None or hasattr(stream, "_connection"):
            return stream
        inner = getattr(stream, "_httpcore_stream", None)
        stream = inner if inner is not None else getattr(stream, "_stream", None)
    return None


def _h2_stream(response: httpx.Response) -> Any:
    """httpcore's stream of an HTTP/2 response, when it can be reset."""
    if response.http_version != "HTTP/2":
        return None
    core = _httpcore_stream(response)
    connection = getattr(core, "_connection", None)
    if getattr(connection, "_h2_state", None) is None or not hasattr(core, "_stream_id"):
        return None
    return core


def _reset(core: Any) -> bool:
    """Tell h2 to reset the stream; True when there is a frame to write."""
    try:
        core._connection._h2_state.reset_stream(core._stream_id)
    except Exception:  # ended already (h2's StreamClosedError), or another layout
        return False
    return True


async def aclose_response(response: httpx.Response, body: Any = None) -> None:
    """Close a response (shielded, with a deadline: a transport that ignores
    the close cannot hang us), then end its body's iterators."""
    with anyio.CancelScope(shield=True, deadline=anyio.current_time() + CLOSE_TIMEOUT):
        core = _h2_stream(response)
        if core is not None and _reset(core):
            try:
                await core._connection._write_outgoing_data(core._request)
            except Exception as exc:
                logger.debug("error while resetting an HTTP/2 stream: %r", exc)
        try:
            await response.aclose()
        except Exception as exc:  # closing a broken connection may fail too
            logger.debug("error while closing the response: %r", exc)
        finally:  # even past the deadline: a body's timer or watchdog ends here
            if isinstance(body, (_AsyncChunks, AsyncDirect)):
                await body.finish()
            elif body is not None:  # a refused response's aiter_bytes()
                await _end_generators(body)


def close_response(response: httpx.Response, body: SyncBody | None = None) -> None:
    """Close a response and its body's iterators."""
    core = _h2_stream(response)
    if core is not None and _reset(core):
        try:
            core._connection._write_outgoing_data(core._request)
        except Exception as exc:
            logger.debug("error while resetting an HTTP/2 stream: %r", exc)
    try:
        if body is not None:
            body.finish()
        response.close()
    except Exception as exc:  # closing a broken connection may fail too
        logger.debug("error while closing the response: %r", exc)


async def _end_generators(chunks: AsyncIterator[bytes]) -> None:
    """Finish the body's chain of async generators (httpx's, httpcore's, a
    mock's): closing the outer one would leave the inner ones suspended, and
    trio warns when those are collected. Resumed inside a cancelled scope,
    every generator in the chain ends at its first checkpoint, at once (an
    HTTP/2 stream's would otherwise wait for the connection's next frame)."""
    with anyio.CancelScope() as scope:
        scope.cancel()
        for _ in range(100):  # a bound, for a mock body that yields without a checkpoint
            try:
                await chunks.__anext__()
            except BaseException:  # noqa: BLE001 (the end we want: cancelled, finished, failed)
                return
