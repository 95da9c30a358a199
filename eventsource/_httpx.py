"""The one module that knows httpx's and httpcore's insides.

It classifies every exception httpx, httpcore, h11, ssl or the OS can raise
into the library's causes (transient or fatal), opens a response's body for
reading (the fast path below, or httpx's public stream), closes responses,
and interrupts a read in progress. ``_io`` carries out the steps with these;
``_request`` builds requests with httpx's public API.

The fast path: an HTTP/1.1 response from httpx's own transport with no
content coding is read straight from its connection's network stream, in
64 KiB reads, its chunked framing decoded by ``_chunked`` (or counted against
Content-Length, or read to the end of the connection), once h11 has parsed
the head. h11 then never sees the body, so the connection is closed with the
response, never pooled (an SSE stream ends with its connection anyway). Any
surprise (another transport, a compressed body, HTTP/2, a missing private
attribute) takes httpx's public stream instead, never an error.

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
  its ``read(max_bytes, timeout)`` and ``get_extra_info("socket")``.
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
import sys
import threading
import weakref
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any, Callable, Protocol

import anyio
import httpcore
import httpx

from ._chunked import ChunkedDecoder, ChunkedFramingError
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
READ_SIZE = 64 * 1024  # bytes asked of the socket per read on the fast path

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
    while the connection is the source's alone (see the module docstring)."""

    __slots__ = ("__weakref__", "_fired", "_lock", "_socket")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._socket: _Socket | None = None
        self._fired = False

    def arm(self, sock: _Socket | None) -> None:
        with self._lock:
            self._socket = sock
            if self._fired and sock is not None:
                _shutdown(sock)

    def disarm(self) -> None:
        with self._lock:
            self._socket = None

    def begin(self) -> None:
        """A new attempt: forget the last one's interrupt."""
        with self._lock:
            self._socket = None
            self._fired = False

    @property
    def fired(self) -> bool:
        """An interrupt came during this attempt."""
        return self._fired

    def fire(self) -> bool:
        """Shut the armed socket down (now, or as soon as one is armed during
        this attempt). True when a socket was shut down."""
        with self._lock:
            self._fired = True
            if self._socket is None:
                return False
            _shutdown(self._socket)
            return True

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

    async def read(self) -> bytes | None: ...
    async def finish(self) -> None: ...


class SyncBody(Protocol):
    def read(self) -> bytes | None: ...
    def finish(self) -> None: ...


class _Framing:
    """The end of an HTTP/1.1 body read straight from its connection: chunked,
    Content-Length, or the connection's end."""

    __slots__ = ("_decoder", "_left", "failed")

    def __init__(self, headers: httpx.Headers) -> None:
        self._decoder: ChunkedDecoder | None = None
        self._left: int | None = None
        # A framing error found after body bytes in the same read: raised at
        # the next read, once the events of those bytes are delivered.
        self.failed: ChunkedFramingError | None = None
        if "chunked" in headers.get("transfer-encoding", "").lower():
            self._decoder = ChunkedDecoder()
        elif "content-length" in headers:
            self._left = int(headers["content-length"])

    @property
    def complete(self) -> bool:
        """The whole body was read (a framed body; a close-delimited one ends
        with its connection)."""
        decoder = self._decoder
        return decoder.done if decoder is not None else self._left == 0

    def take(self, data: bytes) -> bytes | None:
        """The body bytes in one read (b"" at the connection's end); None once
        the body is complete. Raises ConnectionLostError when it is cut short."""
        decoder = self._decoder
        if decoder is not None:
            if decoder.done:
                return None
            if not data:
                decoder.close()  # raises: the body is incomplete
                return None
            try:
                return decoder.feed(data)
            except ChunkedFramingError as exc:
                if not exc.data:
                    raise
                self.failed = exc
                return exc.data
        left = self._left
        if left is None:
            return data or None  # close-delimited: the end of the connection ends it
        if left == 0:
            return None
        if not data:
            raise ChunkedFramingError(f"connection closed {left} bytes before the body's end")
        self._left = left - len(data)
        return data if len(data) <= left else data[:left]


def _as_httpx(exc: Exception, request: httpx.Request) -> httpx.TransportError:
    """The error httpx's own read would have raised: the same causes on the
    fast path as on httpx's stream (httpx's map_httpcore_exceptions)."""
    if isinstance(exc, httpcore.ReadTimeout):
        return httpx.ReadTimeout(str(exc), request=request)
    if isinstance(exc, httpcore.ReadError):
        return httpx.ReadError(str(exc), request=request)
    return httpx.RemoteProtocolError(str(exc), request=request)


def _direct(response: httpx.Response) -> tuple[Any, bytes] | None:
    """The network stream under an HTTP/1.1 body from httpx's own transport,
    and the body bytes already read with the head; None when the fast path
    does not apply (see the module docstring)."""
    if response.http_version != "HTTP/1.1" or not _identity(response):
        return None
    if response.is_stream_consumed or response.is_closed:
        return None
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
        if "content-length" in response.headers:
            int(response.headers["content-length"])
    except Exception:  # another transport or version: the public path
        return None
    return stream, bytes(buffered)


class _Direct:
    """A body read straight from its connection (the fast path)."""

    __slots__ = ("_framing", "_pending", "_request", "_stream", "_timeout")
    scoped = False  # the socket is shut down to interrupt; reads carry the timeout

    def __init__(
        self, stream: Any, buffered: bytes, response: httpx.Response, timeout: float | None
    ):
        self._stream = stream
        self._pending: bytes | None = buffered or None
        self._framing = _Framing(response.headers)
        self._timeout = timeout
        self._request = response.request


class _AsyncDirect(_Direct):
    __slots__ = ()

    async def read(self) -> bytes | None:
        try:
            if self._framing.failed is not None:
                raise self._framing.failed
            data = self._pending
            if data is not None:
                self._pending = None
            elif self._framing.complete:
                return None  # the connection stays open: nothing more is ours
            else:
                data = await self._stream.read(READ_SIZE, self._timeout)
            return self._framing.take(data)
        except (ChunkedFramingError, httpcore.ReadError, httpcore.ReadTimeout) as exc:
            raise _as_httpx(exc, self._request) from exc

    async def finish(self) -> None:
        pass


class _SyncDirect(_Direct):
    __slots__ = ()

    def read(self) -> bytes | None:
        try:
            if self._framing.failed is not None:
                raise self._framing.failed
            data = self._pending
            if data is not None:
                self._pending = None
            elif self._framing.complete:
                return None  # the connection stays open: nothing more is ours
            else:
                data = self._stream.read(READ_SIZE, self._timeout)
            return self._framing.take(data)
        except (ChunkedFramingError, httpcore.ReadError, httpcore.ReadTimeout) as exc:
            raise _as_httpx(exc, self._request) from exc

    def finish(self) -> None:
        pass


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


def open_async_body(
    response: httpx.Response, read_timeout: float | None
) -> tuple[AsyncBody, _Socket | None]:
    """The body to read, and the socket that interrupts it (None: the read
    needs a cancel scope)."""
    sock = own_socket(response)
    direct = _direct(response) if sock is not None else None
    if direct is not None:
        response.is_stream_consumed = True
        return _AsyncDirect(direct[0], direct[1], response, read_timeout), sock
    return _AsyncChunks(response, scoped=sock is None), sock


def open_sync_body(
    response: httpx.Response, read_timeout: float | None
) -> tuple[SyncBody, _Socket | None]:
    """The body to read, and the socket that interrupts it from another thread."""
    sock = own_socket(response)
    direct = _direct(response) if sock is not None else None
    if direct is not None:
        response.is_stream_consumed = True
        return _SyncDirect(direct[0], direct[1], response, read_timeout), sock
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
        if isinstance(body, (_AsyncChunks, _AsyncDirect)):
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
