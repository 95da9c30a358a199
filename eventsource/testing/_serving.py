"""How SSEServer serves.

One task per TCP connection reads its requests (h11, see ``_http``) and answers
each in turn: a ``respond_with()`` answer, or the event stream written from the
request's outbox, faults applied in order. A complete response on a keep-alive
connection loops back to read the next request; a fault, "close" framing or the
client's hang-up ends the task.
"""

from __future__ import annotations

import errno
import logging
import socket
import ssl
import sys
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import anyio
import anyio.abc
from anyio.streams.stapled import MultiListener
from anyio.streams.tls import TLSListener

from .._loop import loop_call_soon as _loop_call_soon
from ._faults import DROP, END, EVENT, RAW, STALL, Canned, Plan, cut_point
from ._history import History, HistoryItem
from ._http import FRAMING_HEADERS, LAST_CHUNK, Framing, Peer, chunk_frame, response_head
from ._records import RecordedConnection, RecordedRequest
from ._waiting import Waiting

__all__ = ["Serving"]

_STREAM_HEADERS = (
    ("Content-Type", "text/event-stream"),
    ("Cache-Control", "no-cache"),
    ("X-Accel-Buffering", "no"),
)
_GONE = (anyio.BrokenResourceError, anyio.ClosedResourceError)


class Serving(Waiting):
    """The server's state and its connection tasks.

    SSEServer adds the public face: running it, the record, the control
    methods.
    """

    def __init__(
        self,
        history: list[HistoryItem],
        *,
        replay: bool,
        headers: list[tuple[str, str]],
        tls: ssl.SSLContext | None,
        framing: Framing,
        port: int = 0,
    ) -> None:
        super().__init__()
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be an int from 0 to 65535, not {port!r}")
        self._bind_port = port
        # Held from the start of `with` / `async with` to its end, so that a
        # second start, from any thread, fails before it binds anything.
        self._running = threading.Lock()
        self._tls = tls
        self._framing: Framing = framing
        self._history = History(history)
        self._replay = replay
        self._extra_headers = [(n, v) for n, v in headers if n.lower() not in FRAMING_HEADERS]
        self._requests: list[RecordedRequest] = []
        self._live: list[RecordedConnection] = []
        self._plans: deque[Plan] = deque()
        self._canned: deque[Canned] = deque()
        self._drip: float | None = None
        self._hold_next = 0
        self._hold_all = False
        self._holding: list[RecordedConnection] = []
        self._peers = 0
        # Keep-alive connections waiting for their next request, and the
        # cancel scope of that wait (drop() cancels it).
        self._idle: dict[Peer, anyio.CancelScope] = {}
        self._hang_up_idle: list[anyio.CancelScope] = []
        self._errors: list[BaseException] = []
        self._port: int | None = None
        self._call_soon: Callable[[Callable[[], None]], object] | None = None

    # --- running ---------------------------------------------------------------------

    @contextmanager
    def _starting(self) -> Iterator[None]:
        """Claim the server for one start; released again if the start fails.

        Raises:
            RuntimeError: It is running, or starting in another thread.
        """
        if not self._running.acquire(blocking=False):
            raise RuntimeError("this SSEServer is already running")
        try:
            yield
        except BaseException:
            self._running.release()
            raise

    def _stopped(self) -> None:
        """Release the claim of ``_starting()`` (the server stopped)."""
        if self._running.locked():
            self._running.release()

    @asynccontextmanager
    async def _serve(self) -> AsyncIterator[None]:
        tcp = await _listen(self._bind_port)
        self._port = tcp.extra(anyio.abc.SocketAttribute.local_port)
        listener: anyio.abc.Listener[Any] = tcp
        if self._tls is not None:
            # No close_notify is required: an SSE body ends when the connection
            # does, and clients often close without one.
            listener = _QuietTLSListener(tcp, self._tls, standard_compatible=False)
        self._loop_thread = threading.get_ident()
        self._call_soon = _loop_call_soon()
        body_error: BaseException | None = None
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(listener.serve, self._handle, tg)
                try:
                    yield
                except BaseException as exc:
                    # Re-raised below, outside the task group, so an error in
                    # the `async with` body is not wrapped in an ExceptionGroup.
                    body_error = exc
                finally:
                    tg.cancel_scope.cancel()
            if body_error is not None:
                raise body_error
        finally:
            with anyio.CancelScope(shield=True):
                await listener.aclose()
            self._call_soon = None
            self._loop_thread = None
            self._port = None

    def _raise_errors(self, exc_type: type[BaseException] | None) -> None:
        if self._errors and exc_type is None:
            errors, self._errors = self._errors, []
            raise errors[0]

    # --- waking the connections ---------------------------------------------------------

    def _poke(self) -> None:
        """Wake every connection task (from any thread)."""
        call_soon = self._call_soon
        if call_soon is None:
            return
        if threading.get_ident() == self._loop_thread:
            self._wake_connections()
        else:
            try:
                call_soon(self._wake_connections)
            except RuntimeError:  # the loop is gone
                pass

    def _wake_connections(self) -> None:
        with self._lock:
            events = [conn._wakeup for conn in [*self._live, *self._holding]]
            scopes, self._hang_up_idle = self._hang_up_idle, []
        for event in events:
            if event is not None:
                event.set()
        for scope in scopes:
            scope.cancel()

    # --- serving -------------------------------------------------------------------------

    async def _handle(self, stream: anyio.abc.SocketStream) -> None:
        """Serve one TCP connection.

        Its requests one after another, while each answer leaves it open.
        """
        conn: RecordedConnection | None = None
        with self._lock:
            peer = Peer(stream, self._peers)
            self._peers += 1
        try:
            raw = stream.extra(anyio.abc.SocketAttribute.raw_socket)
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            while True:
                incoming = None
                with anyio.CancelScope() as idle:
                    if peer.requests:  # a keep-alive connection: drop() hangs it up
                        with self._lock:
                            self._idle[peer] = idle
                    incoming = await peer.read_request()
                with self._lock:
                    self._idle.pop(peer, None)
                if incoming is None:  # the client left, or drop() hung up
                    return
                conn, canned = self._open(incoming.request, peer.index)
                if conn.held and not await self._hold(conn, peer):
                    return
                if canned is not None:
                    again = await self._answer(conn, canned, peer, incoming.keep_alive)
                else:
                    framing = self._framing if incoming.http11 else "close"
                    again = await self._respond(conn, peer, framing, incoming.keep_alive)
                if not again or peer.eof:
                    return  # the record is closed after the socket (below)
                self._finish(conn)
                conn = None
        except Exception as exc:
            self._errors.append(exc)
        finally:
            with anyio.CancelScope(shield=True):
                await stream.aclose()
            with self._lock:
                self._idle.pop(peer, None)
            if conn is not None:
                self._finish(conn)

    def _finish(self, conn: RecordedConnection) -> None:
        with self._lock:
            conn.closed = True
            conn.closed_at = time.monotonic()
            if conn in self._live:
                self._live.remove(conn)
            if conn in self._holding:
                self._holding.remove(conn)
        self._notify()

    def _open(
        self, request: RecordedRequest, tcp_index: int
    ) -> tuple[RecordedConnection, Canned | None]:
        with self._lock:
            self._requests.append(request)
            if self._canned:
                canned = self._canned[0]
                if canned.times is not None:
                    canned.times -= 1
                    if canned.times == 0:
                        self._canned.popleft()
                conn = RecordedConnection(request, status=canned.status, tcp_index=tcp_index)
                self._connections.append(conn)
            else:
                canned = None
                conn = RecordedConnection(request, tcp_index=tcp_index)
                conn._wakeup = anyio.Event()
                start = self._history.start(request.last_event_id, self._replay)
                conn._cursor, conn._replay_end = start, len(self._history)
                plan = self._plans.popleft() if self._plans else None
                if plan is not None and plan.position is not None:
                    plan = Plan(plan.kind, max(0, plan.position - start))
                conn._plan = plan
                self._connections.append(conn)
                self._live.append(conn)
            if self._hold_all or self._hold_next > 0:
                if not self._hold_all:
                    self._hold_next -= 1
                conn.held = True
                if conn._wakeup is None:
                    conn._wakeup = anyio.Event()
                self._holding.append(conn)
        self._notify()
        return conn, canned

    async def _hold(self, conn: RecordedConnection, peer: Peer) -> bool:
        """Answer nothing until ``release()``.

        True then; False when the client hung up or ``drop()`` hung up on it.
        """
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._watch_client, conn, peer)
            while True:
                with self._lock:
                    if conn._hung_up or not conn.held or peer.eof:
                        self._holding.remove(conn)
                        break
                    conn._wakeup = wakeup = anyio.Event()
                await wakeup.wait()
            tg.cancel_scope.cancel()
        conn.closed_by_client = peer.eof
        return not peer.eof and not conn._hung_up

    async def _watch_client(self, conn: RecordedConnection, peer: Peer) -> None:
        """Read until the client hangs up, then wake the writer.

        The writer is not cancelled: what it handed to the socket counts as sent.
        """
        await peer.watch()
        with self._lock:
            wakeup = conn._wakeup
        if wakeup is not None:
            wakeup.set()

    async def _answer(
        self, conn: RecordedConnection, canned: Canned, peer: Peer, keep_alive: bool
    ) -> bool:
        """Send a ``respond_with()`` answer; True when the connection can carry the next request."""
        again = keep_alive and canned.reusable and self._framing != "close"
        headers = canned.headers if again else [*canned.headers, ("Connection", "close")]
        # A HEAD answer is the head alone (its headers describe a GET's body).
        body = b"" if conn.request.method == "HEAD" else canned.body
        try:
            await peer.send(response_head(canned.status, headers) + body)
        except _GONE:
            conn.closed_by_client = True
            return False
        conn.bytes_sent = len(body)
        conn.complete = True
        return again

    async def _respond(
        self, conn: RecordedConnection, peer: Peer, framing: Framing, keep_alive: bool
    ) -> bool:
        """Write the event stream while watching for the client's close.

        True when it ended normally and the connection can carry the next
        request.
        """
        again = False
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._watch_client, conn, peer)
            again = await self._stream(conn, peer, framing, keep_alive)
            tg.cancel_scope.cancel()
        if peer.eof and not conn.complete:
            conn.closed_by_client = True
        return again

    async def _stream(
        self, conn: RecordedConnection, peer: Peer, framing: Framing, keep_alive: bool
    ) -> bool:
        """Write the event stream until its end, a fault or the client's close.

        True when it ended normally and the connection can carry another
        request.
        """
        try:
            headers = [*_STREAM_HEADERS, *self._extra_headers]
            left: int | None = None  # body bytes still to send ("content-length")
            if framing == "content-length":
                with self._lock:
                    left = self._history.size(conn._cursor, conn._replay_end)
                    left += sum(len(data) for kind, data in conn._outbox if kind in (EVENT, RAW))
                headers.append(("Content-Length", str(left)))
            elif framing == "chunked":
                headers.append(("Transfer-Encoding", "chunked"))
            if framing == "close" or not keep_alive:
                headers.append(("Connection", "close"))
            await peer.send(response_head(200, headers))
            if conn.request.method == "HEAD":  # the head alone; no event is used up
                conn.complete = True
                return keep_alive and framing != "close"
            plan = conn._plan
            while True:
                if plan is not None and plan.kind != "mid" and conn.events_sent >= plan.after:
                    if plan.kind == "stall":
                        await self._stall(conn, peer)
                        return False
                    if plan.kind == "drop":
                        return False
                    if framing != "content-length":  # "end"
                        return await self._end(conn, peer, framing, keep_alive)
                    plan = None  # a Content-Length body ends at its length
                if left == 0:
                    conn.complete = True
                    return keep_alive
                kind, data = await self._next(conn, peer)
                if kind == DROP:
                    return False
                if kind == STALL:
                    await self._stall(conn, peer)
                    return False
                if kind == END:
                    if framing == "content-length":
                        continue
                    return await self._end(conn, peer, framing, keep_alive)
                if kind == EVENT and plan is not None and conn.events_sent >= plan.after:
                    try:
                        cut = cut_point(data, plan.at)
                    except ValueError as exc:
                        self._errors.append(exc)
                        return False
                    await self._write(conn, peer, framing, data, cut)
                    return False
                await self._write(conn, peer, framing, data)
                if left is not None:
                    left -= len(data)
                if kind == EVENT:
                    conn.events_sent += 1
                    self._notify()
        except _GONE:
            conn.closed_by_client = True
            return False

    async def _end(
        self, conn: RecordedConnection, peer: Peer, framing: Framing, keep_alive: bool
    ) -> bool:
        if framing == "chunked":
            await self._send(peer, LAST_CHUNK)
        conn.complete = True
        return framing == "chunked" and keep_alive

    async def _next(self, conn: RecordedConnection, peer: Peer) -> tuple[str, bytes]:
        """The next outbox item; a drop when the client hung up."""
        while True:
            with self._lock:
                if peer.eof:
                    return DROP, b""
                if conn._cursor < conn._replay_end:
                    conn._cursor += 1
                    return EVENT, self._history.block(conn._cursor - 1)
                if conn._outbox:
                    return conn._outbox.popleft()
                conn._wakeup = wakeup = anyio.Event()
            await wakeup.wait()

    async def _stall(self, conn: RecordedConnection, peer: Peer) -> None:
        """Send nothing until a drop is queued, the client hangs up (or the server stops)."""
        while True:
            with self._lock:
                if peer.eof or any(kind == DROP for kind, _ in conn._outbox):
                    return
                conn._wakeup = wakeup = anyio.Event()
            await wakeup.wait()

    async def _write(
        self,
        conn: RecordedConnection,
        peer: Peer,
        framing: Framing,
        data: bytes,
        cut: int | None = None,
    ) -> None:
        """Write ``data`` in the framing; count the data bytes.

        Its first ``cut`` bytes only, when given: then a chunk stays unfinished.
        """
        if not data:
            return  # an empty chunk would end the body
        before, after = chunk_frame(len(data)) if framing == "chunked" else (b"", b"")
        if cut is not None:
            data, after = data[:cut], b""
        if self._drip is None:
            await peer.send(before + data + after)
            conn.bytes_sent += len(data)
            return
        await self._send(peer, before)
        for index in range(len(data)):
            await self._send(peer, data[index : index + 1])
            conn.bytes_sent += 1
        await self._send(peer, after)

    async def _send(self, peer: Peer, data: bytes) -> None:
        """Send framing or data bytes: at once, or one by one in slow drip."""
        delay = self._drip
        if delay is None:
            if data:
                await peer.send(data)
            return
        for index in range(len(data)):
            if peer.eof:
                raise anyio.BrokenResourceError("the client hung up")
            await peer.send(data[index : index + 1])
            await anyio.sleep(delay)


async def _listen(port: int) -> MultiListener[anyio.abc.SocketStream]:
    """Listen on 127.0.0.1:port (0: a free port).

    anyio's listener sets SO_REUSEADDR (POSIX): a server started on the port
    of one just stopped binds at once, though the old one's connections are
    still in TIME_WAIT there. (On Windows it sets SO_EXCLUSIVEADDRUSE, which
    can refuse the port while they linger.)

    A chosen port is tried first with a socket of our own, bound as anyio
    binds: anyio before 4.11 leaves the socket of a failed bind open (a
    ResourceWarning later). Two binds racing past that try can still meet it.

    Raises:
        OSError: The port is in use (errno EADDRINUSE, with the address).
    """
    try:
        if port:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                if sys.platform == "win32":
                    probe.setsockopt(socket.SOL_SOCKET, socket.SO_EXCLUSIVEADDRUSE, 1)
                else:
                    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind(("127.0.0.1", port))
        return await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=port)
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        # With SO_REUSEADDR, Linux refuses the port for a listener on it, or
        # for a connection whose local end it is (an ephemeral port): name both.
        raise OSError(
            errno.EADDRINUSE,
            f"SSEServer(port={port}): 127.0.0.1:{port} is in use (a server listens there, "
            "or a connection's local end is that port); stop it first, or use port=0 "
            "for a free port",
        ) from exc


class _QuietTLSListener(TLSListener):
    """anyio's TLS listener, quiet about handshakes that clients failed.

    Logged at DEBUG, not as an ERROR traceback: tests of TLS failures (plain
    HTTP to the TLS port, an untrusted certificate) make them on purpose.
    """

    @staticmethod
    async def handle_handshake_error(exc: BaseException, stream: Any) -> None:
        await anyio.aclose_forcefully(stream)
        if isinstance(exc, anyio.get_cancelled_exc_class()) or not isinstance(exc, Exception):
            raise exc
        logging.getLogger("eventsource.testing").debug("TLS handshake failed: %r", exc)
