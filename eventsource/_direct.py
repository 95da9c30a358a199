"""The fast body read: an HTTP/1.1 body read straight from its connection.

``_httpx`` decides when the fast path applies and hands over the connection
(the private details it takes to find it are listed there); the readers here
use public APIs only, and raise httpx's own errors, the ones its stream would:

- ``_SyncSocket``: the socket (plain or ``ssl.SSLSocket``), its timeout set
  once, one ``recv()`` per read; on Linux a plain socket blocks with the
  kernel's ``SO_RCVTIMEO`` as its timeout, which saves a ``poll()`` a read.
- ``_AsyncioFeed``: a plain TCP connection on asyncio. It takes the
  connection's transport over with ``set_protocol()`` (a relay that holds it
  weakly, so an unclosed source is still collected) and keeps it reading, so
  a wake-up costs one future; anyio's ``receive()`` would pause and resume the
  transport (two epoll calls) and a timeout scope around it costs more than
  the parsing. Bytes are buffered up to ``HIGH_WATER``, then reading pauses.
  The read timeout is one timer per timeout period, not one per read.
- ``_TrioSocket``: a plain TCP connection on trio: ``wait_readable()`` and
  ``os.read()`` on the socket's descriptor (not on Windows).
- ``_AsyncStream`` / ``_SyncStream``: the network stream's ``read()`` (``_httpx``
  hands it over wrapped, its errors turned into ``ReadFailed`` / ``ReadTimedOut``),
  for anything else (TLS on async, a proxy's tunnel).

Each reads until its ``BodyFraming`` says the body is complete; a
close()/restart() from elsewhere shuts the socket down, which ends any of them.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import struct
import sys
import threading
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from ._chunked import BodyFraming, ChunkedFramingError

__all__ = [
    "READ_SIZE",
    "AsyncDirect",
    "ReadFailed",
    "ReadTimedOut",
    "SyncDirect",
    "async_reader",
    "sync_reader",
]

READ_SIZE = 64 * 1024  # bytes asked of the socket per read
_local = threading.local()  # the asyncio relays' read buffer, one per thread (event loop)
HIGH_WATER = 256 * 1024  # bytes an asyncio feed holds unread before it pauses reading


class ReadFailed(Exception):
    """A read failed (the connection broke, or was shut down under it)."""


class ReadTimedOut(ReadFailed):
    """Nothing came for the read timeout."""


def _as_httpx(exc: Exception, request: httpx.Request) -> httpx.TransportError:
    """The error httpx's own read would have raised: the same causes on the
    fast path as on httpx's stream."""
    if isinstance(exc, ReadTimedOut):
        return httpx.ReadTimeout(str(exc), request=request)
    if isinstance(exc, ReadFailed):
        return httpx.ReadError(str(exc), request=request)
    return httpx.RemoteProtocolError(str(exc), request=request)


class _Direct:
    """What every reader shares: the framing, the body bytes read with the
    head, the timeout, the request (for errors)."""

    __slots__ = ("_framing", "_pending", "_request", "_timeout")
    scoped = False  # the socket is shut down to interrupt; reads carry the timeout

    def __init__(
        self, buffered: bytes, framing: BodyFraming, request: httpx.Request, timeout: float | None
    ) -> None:
        self._pending: bytes | None = buffered or None
        self._framing = framing
        self._timeout = timeout
        self._request = request


class AsyncDirect(_Direct):
    __slots__ = ()
    resumable = True  # what arrives during a cancelled read stays in the buffers

    async def read(self) -> bytes | None:
        """The body bytes of the next read; None at the body's end."""
        try:
            if self._framing.failed is not None:
                raise self._framing.failed
            data = self._pending
            if data is not None:
                self._pending = None
            elif self._framing.complete:
                return None  # the connection stays open: nothing more is ours
            else:
                data = await self._recv()
            return self._framing.take(data)
        except (ChunkedFramingError, ReadFailed) as exc:
            raise _as_httpx(exc, self._request) from exc

    async def _recv(self) -> bytes:
        raise NotImplementedError

    async def finish(self) -> None:
        pass


class SyncDirect(_Direct):
    __slots__ = ()

    def read(self) -> bytes | None:
        """The body bytes of the next read; None at the body's end."""
        try:
            if self._framing.failed is not None:
                raise self._framing.failed
            data = self._pending
            if data is not None:
                self._pending = None
            elif self._framing.complete:
                return None  # the connection stays open: nothing more is ours
            else:
                data = self._recv()
            return self._framing.take(data)
        except (ChunkedFramingError, ReadFailed) as exc:
            raise _as_httpx(exc, self._request) from exc

    def _recv(self) -> bytes:
        raise NotImplementedError

    def finish(self) -> None:
        pass


# --- sync -------------------------------------------------------------------------------


class _SyncStream(SyncDirect):
    __slots__ = ("_read",)

    def __init__(self, read: Callable[[int, float | None], bytes], *args: Any) -> None:
        super().__init__(*args)
        self._read = read

    def _recv(self) -> bytes:
        return self._read(READ_SIZE, self._timeout)


class _SyncSocket(SyncDirect):
    __slots__ = ("_socket",)

    def __init__(self, sock: socket.socket, *args: Any) -> None:
        super().__init__(*args)
        self._socket = sock
        # httpx's transport sets the timeout before each of its reads; nothing
        # else reads now. A socket with a timeout polls before every recv (two
        # system calls a read); on Linux a plain socket is made blocking with
        # the kernel's own receive timeout instead: one call a read.
        if not _kernel_timeout(sock, self._timeout):
            sock.settimeout(self._timeout)

    def _recv(self) -> bytes:
        try:
            return self._socket.recv(READ_SIZE)
        except (TimeoutError, BlockingIOError) as exc:  # SO_RCVTIMEO's EAGAIN: timed out
            raise ReadTimedOut(str(exc) or "timed out") from exc
        except OSError as exc:
            raise ReadFailed(str(exc)) from exc


def _kernel_timeout(sock: socket.socket, timeout: float | None) -> bool:
    """Make a plain socket blocking, with SO_RCVTIMEO as its read timeout
    (Linux only: the option's struct differs elsewhere). False: not done."""
    if not sys.platform.startswith("linux") or isinstance(sock, ssl.SSLSocket):
        return False  # an SSLSocket reads in records: it keeps Python's timeout
    seconds = 0 if timeout is None else max(timeout, 1e-6)  # 0 means no timeout
    whole = int(seconds)
    try:
        sock.setsockopt(
            socket.SOL_SOCKET,
            socket.SO_RCVTIMEO,
            struct.pack("@ll", whole, round((seconds - whole) * 1e6)),
        )
        sock.settimeout(None)
    except (OSError, OverflowError):  # a timeout too big for a timeval: Python's own
        return False
    return True


def sync_reader(
    stream: Callable[[int, float | None], bytes],
    sock: socket.socket | None,
    buffered: bytes,
    framing: BodyFraming,
    request: httpx.Request,
    timeout: float | None,
) -> SyncDirect:
    """A reader of the socket when there is one to read, else of the stream."""
    if sock is not None:
        return _SyncSocket(sock, buffered, framing, request, timeout)
    return _SyncStream(stream, buffered, framing, request, timeout)


# --- async ------------------------------------------------------------------------------


class _AsyncStream(AsyncDirect):
    __slots__ = ("_read",)

    def __init__(self, read: Callable[[int, float | None], Awaitable[bytes]], *args: Any) -> None:
        super().__init__(*args)
        self._read = read

    async def _recv(self) -> bytes:
        return await self._read(READ_SIZE, self._timeout)


class _TrioSocket(AsyncDirect):
    """A plain TCP connection on trio. A cancel scope per read would cost
    more than the read and the parsing together, so the read timeout is kept
    by a watchdog (a system task that sleeps a timeout period at a time) which
    wakes a read that has waited too long with notify_closing()."""

    __slots__ = ("__weakref__", "_deadline", "_expired", "_fd", "_socket", "_waiting", "_watchdog")

    def __init__(self, sock: Any, *args: Any) -> None:
        super().__init__(*args)
        self._socket = sock
        self._fd: int = sock.fileno()
        self._deadline = 0.0
        self._waiting = False
        self._expired = False
        self._watchdog: Any = None  # its cancel scope

    async def _recv(self) -> bytes:
        import trio

        if self._timeout is not None:
            self._deadline = trio.current_time() + self._timeout
            if self._watchdog is None:
                self._watchdog = trio.CancelScope()
                trio.lowlevel.spawn_system_task(_watch, weakref.ref(self), self._watchdog)
        while True:
            self._waiting = True
            try:
                await trio.lowlevel.wait_readable(self._socket)
            except trio.ClosedResourceError as exc:
                if self._expired:
                    raise ReadTimedOut("timed out") from None
                raise ReadFailed(str(exc)) from exc
            finally:
                self._waiting = False
            self._expired = False  # woken by data as the watchdog fired: not a timeout
            try:
                return os.read(self._fd, READ_SIZE)
            except BlockingIOError:
                continue  # woken with nothing to read after all
            except OSError as exc:
                raise ReadFailed(str(exc)) from exc

    async def finish(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()


async def _watch(ref: weakref.ReferenceType[_TrioSocket], scope: Any) -> None:
    """The watchdog of a trio read's timeout (a system task: it never raises)."""
    import trio

    with scope:
        try:
            while True:
                body = ref()
                if body is None or body._timeout is None:
                    return
                deadline, now = body._deadline, trio.current_time()
                if deadline <= now:
                    if body._waiting:
                        # The read wakes with ClosedResourceError; or, if it
                        # was already woken by data, it clears the flag.
                        body._expired = True
                        trio.lowlevel.notify_closing(body._socket)
                    deadline = now + body._timeout  # look again a period later
                del body
                await trio.sleep_until(deadline)
        except Exception:  # noqa: S110 (a system task's error would crash the run)
            pass


class _Relay(asyncio.BufferedProtocol):
    """The transport's protocol while a feed reads it: it passes everything on
    to the feed, held weakly, so that a source dropped without being closed is
    collected (the feed's finalizer then aborts the connection, as collecting
    the transport would have), and tells anyio's protocol of the end.

    A buffered protocol: the transport reads into a buffer of this thread's,
    where a plain protocol's transport would allocate 256 KiB for every read
    (measured here: 21 µs a read against 3.6)."""

    __slots__ = ("_feed", "_previous")

    def __init__(self, feed: _AsyncioFeed, previous: Any) -> None:
        self._feed = weakref.ref(feed)
        self._previous = previous

    def get_buffer(self, sizehint: int) -> memoryview:
        try:
            return _local.view  # type: ignore[no-any-return]
        except AttributeError:
            _local.view = memoryview(bytearray(READ_SIZE))
            return _local.view  # type: ignore[no-any-return]

    def buffer_updated(self, nbytes: int) -> None:
        # The bytes are copied out at once: the buffer is the next read's.
        data = _local.view[:nbytes].tobytes()
        feed = self._feed()
        if feed is not None:
            feed.received(data)

    def eof_received(self) -> bool:
        feed = self._feed()
        if feed is not None:
            feed.ended(None)
        return True  # the transport stays for httpx's transport to close, as anyio's does

    def connection_lost(self, exc: Exception | None) -> None:
        feed = self._feed()
        if feed is not None:
            feed.ended(exc)
        try:
            self._previous.connection_lost(exc)
        except Exception:  # noqa: S110 (its own bookkeeping only: nothing of ours)
            pass

    def pause_writing(self) -> None:
        self._previous.pause_writing()

    def resume_writing(self) -> None:
        self._previous.resume_writing()


def _check(ref: weakref.ReferenceType[_AsyncioFeed]) -> None:
    """The read timeout's timer (it holds its feed weakly too)."""
    feed = ref()
    if feed is not None:
        feed.check()


class _AsyncioFeed(AsyncDirect):
    """A plain TCP connection on asyncio, read through its transport (see the
    module docstring); the protocol it replaced still hears of the end."""

    __slots__ = (
        "__weakref__",
        "_chunks",
        "_deadline",
        "_eof",
        "_expired",
        "_finished",
        "_lost",
        "_loop",
        "_paused",
        "_size",
        "_timer",
        "_transport",
        "_waiter",
    )

    def __init__(self, transport: asyncio.Transport, previous: Any, queue: Any, *args: Any) -> None:
        super().__init__(*args)
        self._loop = asyncio.get_running_loop()
        self._transport = transport
        self._waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._deadline = 0.0
        self._expired = False
        self._eof = False
        self._lost: Exception | None = None
        self._paused = False
        self._finished = True  # until the transport is ours
        self._chunks: list[bytes] = []
        self._size = 0
        closing = transport.is_closing()
        transport.set_protocol(_Relay(self, previous))  # if it fails, nothing has changed
        try:
            if closing:  # lost already, or its connection_lost comes to the relay now
                self._eof = True
                lost = getattr(previous, "exception", None)
                self._lost = lost if isinstance(lost, Exception) else None
            else:
                # Paused by anyio after its last receive, or (after an EOF it
                # kept open) reading with no reader: paused and resumed, the
                # transport reads again, and tells the relay of an EOF again.
                transport.pause_reading()
                transport.resume_reading()
        except BaseException:
            transport.set_protocol(previous)  # as it was: the caller reads the stream
            raise
        self._finished = False
        # The bytes the previous protocol received and nobody read yet.
        self._chunks = [bytes(chunk) for chunk in queue]
        queue.clear()
        self._size = sum(map(len, self._chunks))

    def __del__(self) -> None:
        if not self._finished:  # dropped unclosed: end the connection it held
            try:
                self._loop.call_soon_threadsafe(self._transport.abort)
            except Exception:  # noqa: S110 (the loop is closed: so is the transport)
                pass

    # the transport's side (through the relay)

    def received(self, data: bytes) -> None:
        self._chunks.append(data)
        self._size += len(data)
        if self._size > HIGH_WATER and not self._paused:
            self._paused = True
            self._transport.pause_reading()
        self._wake()

    def ended(self, exc: Exception | None) -> None:
        self._eof = True
        if exc is not None:
            self._lost = exc
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def check(self) -> None:
        """The timer: a wait that has lasted the timeout ends; one that
        started later is checked again at its own deadline."""
        self._timer = None
        waiter = self._waiter
        if waiter is None or waiter.done():
            return  # not waiting: the next wait arms the timer again
        if self._loop.time() < self._deadline:
            self._timer = self._loop.call_at(self._deadline, _check, weakref.ref(self))
            return
        self._expired = True
        waiter.set_result(None)

    # the reader's side

    async def read(self) -> bytes | None:
        # AsyncDirect.read with the wait inline: a coroutine fewer per wake-up.
        framing = self._framing
        try:
            if framing.failed is not None:
                raise framing.failed
            data = self._pending
            if data is not None:
                self._pending = None
                return framing.take(data)
            if framing.complete:
                return None  # the connection stays open: nothing more is ours
            chunks = self._chunks
            if not chunks and not self._eof:
                if self._paused:
                    self._paused = False
                    self._transport.resume_reading()
                loop = self._loop
                waiter = self._waiter = loop.create_future()
                if self._timeout is not None:
                    self._deadline = loop.time() + self._timeout
                    if self._timer is None:
                        self._timer = loop.call_at(self._deadline, _check, weakref.ref(self))
                try:
                    await waiter
                finally:
                    self._waiter = None
                if self._expired:
                    self._expired = False
                    if not chunks and not self._eof:  # (data that came as well wins)
                        raise ReadTimedOut("timed out")
            if chunks:
                data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
                chunks.clear()
                self._size = 0
                return framing.take(data)
            if self._lost is not None:
                lost = self._lost
                raise ReadFailed(str(lost) or repr(lost)) from lost
            return framing.take(b"")
        except (ChunkedFramingError, ReadFailed) as exc:
            raise _as_httpx(exc, self._request) from exc

    async def finish(self) -> None:
        self._finished = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def async_reader(
    stream: Callable[[int, float | None], Awaitable[bytes]],
    endpoint: tuple[str, Any] | None,
    buffered: bytes,
    framing: BodyFraming,
    request: httpx.Request,
    timeout: float | None,
) -> AsyncDirect:
    """The fastest reader the connection allows: its asyncio transport
    ("asyncio", (transport, protocol, its queue of unread bytes)), its trio socket
    ("trio", socket), else the network stream's read()."""
    args = (buffered, framing, request, timeout)
    if endpoint is not None:
        kind, what = endpoint
        if kind == "asyncio":
            transport, previous, queue = what
            try:
                return _AsyncioFeed(transport, previous, queue, *args)
            except Exception:  # noqa: S110 (no set_protocol(): nothing changed, the stream)
                pass
        if kind == "trio":
            return _TrioSocket(what, *args)
    return _AsyncStream(stream, *args)
