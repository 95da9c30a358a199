"""The one module that knows httpx and httpcore.

It sends a source's requests (following redirects itself, so that each
Location is checked; ``_request`` builds them with httpx's public API),
classifies every exception httpx, httpcore, ssl or the OS can raise into the
library's causes (transient or fatal), reads bodies and interrupts a read in
progress.

Interrupting: a read on an HTTP/1.1 connection is ended by shutting the socket
down (by its descriptor: event loops wrap their sockets), but only while the
connection is the source's alone: the socket is armed when the source's request
starts on it and disarmed, under a lock, before the response is closed and the
connection could go back to a pool. HTTP/2 connections are shared by streams
and are never shut down: async reads there run in a cancel scope, and a sync
read interrupted from another thread ends with the next frame or read_timeout.

Private details used, each reached through a guarded accessor that falls back
to the public path (checked on httpx 0.27-0.28, httpcore 1.0.5-1.0.9):

- ``response.extensions["network_stream"].get_extra_info("socket")``: httpcore's
  documented extension; the socket under an HTTP/1.1 response.
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
import math
import socket
import sys
import threading
import time
import weakref
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any, Callable, Protocol, Union

import anyio
import httpx

from ._errors import ConnectionLostError, EventSourceError, ReadTimeoutError, ResponseError
from ._request import check_url

__all__ = ["AsyncReader", "Interrupter", "SyncReader", "classify"]

logger = logging.getLogger("eventsource")

AnyClient = Union[httpx.Client, httpx.AsyncClient]

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
    if isinstance(exc, (httpx.ReadTimeout, TimeoutError)):
        what = "no response" if sending else "no data"
        error = ReadTimeoutError(f"{what} for {read_timeout} s")
    elif isinstance(exc, (httpx.HTTPError, httpx.StreamError, OSError, anyio.BrokenResourceError)):
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


def _redirect(response: httpx.Response, client: AnyClient, hops: int) -> httpx.Request | None:
    """The next request of a redirect, checked; None when this is no redirect."""
    request = response.next_request
    if request is None:
        return None
    if hops >= client.max_redirects:
        raise ResponseError(f"more than {client.max_redirects} redirects", status_code=None)
    try:
        check_url(request.url)
    except ValueError as exc:
        raise ResponseError(f"redirect to an unusable URL: {exc}", status_code=None) from None
    return request


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


_BODY_LIMIT = 64 * 1024  # bytes of a refused response's body kept in its error
_BODY_DEADLINE = 2.0  # seconds that reading them may take


def _keep_body(error: ResponseError, response: httpx.Response, body: bytes) -> None:
    """Give the error a closed, readable copy of the response with this body."""
    headers = httpx.Headers(response.headers)
    for name in ("content-encoding", "content-length", "transfer-encoding"):
        headers.pop(name, None)  # the body is decoded, and maybe cut
    copy = httpx.Response(
        response.status_code,
        headers=headers,
        content=body,
        request=response.request,
        extensions={
            "http_version": response.http_version.encode(),
            "reason_phrase": response.reason_phrase.encode(),
        },
    )
    error.response = copy
    error.body = copy.text


def _identity(response: httpx.Response) -> bool:
    """No content coding: the raw body is the stream (httpx's decoding layer
    is skipped, it only copies)."""
    coding = response.headers.get("content-encoding")
    return coding is None or coding.strip().lower() in ("", "identity")


def _fix_request(exc: BaseException, response: httpx.Response) -> None:
    # httpx's own iterators set .request on a read error, the stream's do not.
    if isinstance(exc, httpx.RequestError):
        try:
            exc.request  # noqa: B018
        except RuntimeError:
            exc.request = response.request


# --- async --------------------------------------------------------------------------------


class AsyncReader:
    """Sends a source's requests and reads its bodies, async."""

    __slots__ = ("_chunks", "_interrupter", "_scope", "_scoped", "response")

    def __init__(self) -> None:
        self.response: httpx.Response | None = None
        self._chunks: AsyncIterator[bytes] | None = None
        self._interrupter = Interrupter()
        self._scope: anyio.CancelScope | None = None
        self._scoped = True  # reads need a cancel scope to be interrupted

    def begin(self) -> None:
        """Called before each attempt's machine.start_attempt()."""
        self._interrupter.begin()

    def interrupt(self) -> None:
        """End the wait, send or read in progress (call in the loop's thread)."""
        if self._scope is not None:
            self._scope.cancel()
        self._interrupter.fire()

    async def wait(self, delay: float) -> None:
        """Sleep, unless interrupted."""
        try:
            with anyio.CancelScope(deadline=anyio.current_time() + delay) as self._scope:
                await anyio.sleep_forever()
        finally:
            self._scope = None

    async def send(
        self, client: httpx.AsyncClient, request: httpx.Request, auth: dict[str, Any]
    ) -> httpx.Response | None:
        """Send (following redirects); None when interrupted."""
        response: httpx.Response | None = None
        try:
            with anyio.CancelScope() as scope:
                self._scope = scope
                hops = 0
                response = await client.send(request, stream=True, follow_redirects=False, **auth)
                while True:
                    try:
                        follow = _redirect(response, client, hops)
                    except BaseException:
                        await _aclose(response)
                        raise
                    if follow is None:
                        break
                    await _aclose(response)
                    response = None
                    hops += 1
                    response = await client.send(follow, stream=True, follow_redirects=False)
        finally:
            self._scope = None
        if scope.cancel_called:
            if response is not None:
                await _aclose(response)
            return None
        return response

    def open(self, response: httpx.Response) -> None:
        """Start reading this response's body."""
        self.response = response
        sock = own_socket(response)
        self._scoped = sock is None
        self._interrupter.arm(sock)
        stream = response.stream
        if (
            _identity(response)
            and isinstance(stream, httpx.AsyncByteStream)
            and not response.is_stream_consumed
        ):
            # The transport's chunks as they are: a layer and a copy per
            # chunk fewer than aiter_raw(), which only counts bytes.
            response.is_stream_consumed = True
            self._chunks = stream.__aiter__()
        else:
            self._chunks = response.aiter_bytes()

    async def read(self, read_timeout: float | None) -> bytes | None:
        """The next chunk; None at the end. Raises what the transport raised,
        TimeoutError after read_timeout, ConnectionLostError when interrupted."""
        chunks = self._chunks
        assert chunks is not None
        if not self._scoped:
            # A cancel scope per read would cost more than httpx's read and the
            # parsing together. Without one, interrupt() shuts the socket down,
            # and httpx enforces the read timeout (the request carries it).
            try:
                return await chunks.__anext__()
            except StopAsyncIteration:
                return None
        deadline = anyio.current_time() + read_timeout if read_timeout is not None else math.inf
        try:
            with anyio.CancelScope(deadline=deadline) as scope:
                self._scope = scope
                try:
                    return await chunks.__anext__()
                except StopAsyncIteration:
                    return None
        finally:
            self._scope = None
        if self._interrupter.fired:
            raise ConnectionLostError("interrupted")
        raise TimeoutError

    def fix(self, exc: BaseException) -> None:
        if self.response is not None:
            _fix_request(exc, self.response)

    async def close_refused(self, response: httpx.Response, error: object = None) -> None:
        """Close a response that does not open the stream; when it is the
        error's, read the start of its body into it first (an API's JSON error)."""
        chunks = None
        if isinstance(error, ResponseError) and error.response is response:
            body = bytearray()
            chunks = response.aiter_bytes()
            try:
                with anyio.move_on_after(_BODY_DEADLINE):
                    while len(body) < _BODY_LIMIT:
                        body += await chunks.__anext__()
            except StopAsyncIteration:
                pass
            except Exception as exc:  # the body is a courtesy: its failure is no error
                logger.debug("error while reading a refused response's body: %r", exc)
            _keep_body(error, response, bytes(body[:_BODY_LIMIT]))
        await _aclose(response, chunks)

    async def release(self) -> None:
        """Close the response (shielded, with a deadline)."""
        self._interrupter.disarm()
        response, self.response = self.response, None
        chunks, self._chunks = self._chunks, None
        self._scope = None
        if response is None:
            return
        await _aclose(response, chunks)


async def _aclose(response: httpx.Response, chunks: AsyncIterator[bytes] | None = None) -> None:
    # Shielded, so cancellation cannot leave the connection open; with a
    # deadline, so a transport that ignores the close cannot hang us.
    with anyio.CancelScope(shield=True, deadline=anyio.current_time() + CLOSE_TIMEOUT):
        try:
            await response.aclose()
        except Exception as exc:  # closing a broken connection may fail too
            logger.debug("error while closing the response: %r", exc)
        if chunks is not None:
            await _end_generators(chunks)


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


# --- sync ---------------------------------------------------------------------------------


class SyncReader:
    """Sends a source's requests and reads its bodies, blocking."""

    __slots__ = ("_chunks", "_interrupter", "_wake", "response")

    def __init__(self) -> None:
        self.response: httpx.Response | None = None
        self._chunks: Iterator[bytes] | None = None
        self._interrupter = Interrupter()
        self._wake: threading.Event | None = None

    def begin(self) -> None:
        """Called before each attempt's machine.start_attempt()."""
        self._interrupter.begin()

    def interrupt(self) -> None:
        """End the wait, send or read in progress (from any thread)."""
        if self._wake is not None:
            self._wake.set()
        self._interrupter.fire()

    def wait(self, delay: float, interrupted: Callable[[], bool]) -> None:
        if self._wake is None:
            self._wake = threading.Event()
        self._wake.clear()
        if not interrupted():
            self._wake.wait(delay)

    def send(
        self, client: httpx.Client, request: httpx.Request, auth: dict[str, Any]
    ) -> httpx.Response:
        """Send (following redirects)."""
        request.extensions["trace"] = self._interrupter.tracer()
        hops = 0
        response = client.send(request, stream=True, follow_redirects=False, **auth)
        while True:
            try:
                follow = _redirect(response, client, hops)
            except BaseException:
                self._interrupter.disarm()
                response.close()
                raise
            if follow is None:
                return response
            self._interrupter.disarm()
            response.close()
            hops += 1
            follow.extensions["trace"] = self._interrupter.tracer()
            response = client.send(follow, stream=True, follow_redirects=False)

    def open(self, response: httpx.Response) -> None:
        self.response = response
        self._interrupter.arm(own_socket(response))
        stream = response.stream
        if (
            _identity(response)
            and isinstance(stream, httpx.SyncByteStream)
            and not response.is_stream_consumed
        ):
            response.is_stream_consumed = True
            self._chunks = stream.__iter__()
        else:
            self._chunks = response.iter_bytes()

    def read(self) -> bytes | None:
        """The next chunk; None at the end."""
        chunks = self._chunks
        assert chunks is not None
        return next(chunks, None)

    def fix(self, exc: BaseException) -> None:
        if self.response is not None:
            _fix_request(exc, self.response)

    def release(self) -> None:
        # Disarmed first: once closed, the connection may serve another request.
        self._interrupter.disarm()
        response, self.response = self.response, None
        chunks, self._chunks = self._chunks, None
        if response is None:
            return
        try:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
            response.close()
        except Exception as exc:  # closing a broken connection may fail too
            logger.debug("error while closing the response: %r", exc)

    def close_refused(self, response: httpx.Response, error: object = None) -> None:
        """Close a response that does not open the stream; when it is the
        error's, read the start of its body into it first (an API's JSON error)."""
        if isinstance(error, ResponseError) and error.response is response:
            body = bytearray()
            deadline = time.monotonic() + _BODY_DEADLINE
            try:
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) >= _BODY_LIMIT or time.monotonic() > deadline:
                        break
            except Exception as exc:  # the body is a courtesy: its failure is no error
                logger.debug("error while reading a refused response's body: %r", exc)
            _keep_body(error, response, bytes(body[:_BODY_LIMIT]))
        self._interrupter.disarm()
        try:
            response.close()
        except Exception as exc:
            logger.debug("error while closing the response: %r", exc)
