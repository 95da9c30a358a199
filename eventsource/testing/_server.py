"""SSEServer: a real HTTP/1.1 Server-Sent Events server on 127.0.0.1 for tests.

Built on anyio sockets, no framework. One request per connection (answered
with ``Connection: close`` and a close-delimited body). Every connection owns an
outbox: events, comments, raw bytes and fault markers are queued into it in the
order the test script calls the control methods, and the connection's task
writes them out. So ``server.send("a"); server.drop()`` delivers "a", then
hangs up, deterministically.

``hold()`` makes the next request(s) wait without any answer (the client stays
connecting) until ``release()``; the server still reads the held connection,
so it sees the client hang up.

Threads: control methods (``send``, ``drop``, ...) change the state under a
lock in the caller's thread and wake the server's event loop with its
thread-safe "call soon", so they work from any thread, whichever way the server
runs (``async with``: in the current event loop; ``with``: in its own thread).
"""

from __future__ import annotations

import http
import re
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager, asynccontextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, Optional, Union

import anyio
import anyio.abc
import anyio.from_thread
import httpx
from anyio.streams.tls import TLSListener

from .._encoder import format_event
from .._loop import loop_call_soon as _loop_call_soon
from ._events import EventLike, format_kwargs

__all__ = ["RecordedConnection", "RecordedRequest", "SSEServer"]

#: Where drop_mid_event() cuts the block: a byte offset (negative: from the
#: end), or "line" / "utf8" / "crlf" (see drop_mid_event).
CutPoint = Union[int, Literal["line", "utf8", "crlf"]]
HeadersLike = Union[Mapping[str, str], Sequence[tuple[str, str]]]

_MAX_HEAD = 64 * 1024
_STREAM_HEADERS = (
    ("Content-Type", "text/event-stream"),
    ("Cache-Control", "no-cache"),
    ("X-Accel-Buffering", "no"),
)

# Outbox items: (kind, payload).
_EVENT = "event"  # a history block: counts as an event
_RAW = "raw"  # a comment or raw bytes: sent, not counted
_DROP = "drop"
_STALL = "stall"


@dataclass(frozen=True)
class RecordedRequest:
    """A request the server received."""

    method: str
    #: The request target as sent: path and query string.
    path: str
    #: Case-insensitive: ``request.headers["last-event-id"]``.
    headers: httpx.Headers
    body: bytes

    @property
    def last_event_id(self) -> str | None:
        """The ``Last-Event-ID`` header, or None when it was not sent."""
        value: str | None = self.headers.get("last-event-id")
        return value


@dataclass(eq=False)
class RecordedConnection:
    """One client connection (one request) and what became of it.

    The flags are updated by the server; wait on them with
    ``server.wait_until(lambda: conn.closed)`` (in async code:
    ``await server.await_until(...)``).
    """

    request: RecordedRequest
    #: The status the server answered (200 for an event stream).
    status: int = 200
    #: Events (history blocks) written completely on this connection.
    events_sent: int = 0
    #: Body bytes written (the head not counted), partial blocks included.
    bytes_sent: int = 0
    #: The connection is closed, by either side.
    closed: bool = False
    #: The client hung up first (the server saw EOF or a reset).
    closed_by_client: bool = False
    #: The request was held by ``hold()`` and no response head was sent yet;
    #: stays True if the connection closed while held (it never got an answer).
    held: bool = False
    #: ``time.monotonic()`` when the request was received / the connection closed.
    opened_at: float = field(default_factory=time.monotonic)
    closed_at: Optional[float] = None  # noqa: UP045
    _outbox: deque[tuple[str, bytes]] = field(default_factory=deque, repr=False)
    _wakeup: Optional[anyio.Event] = field(default=None, repr=False)  # noqa: UP045
    _plan: Optional[_Plan] = field(default=None, repr=False)  # noqa: UP045
    _hung_up: bool = field(default=False, repr=False)


@dataclass
class _Plan:
    """A fault armed for the next event-stream connection."""

    kind: Literal["drop", "mid", "stall"]
    after: int
    at: CutPoint = 0


@dataclass
class _Canned:
    status: int
    head: bytes
    body: bytes
    times: int | None


@dataclass
class _HistoryItem:
    block: bytes
    id: str | None


class SSEServer:
    """A real SSE server on 127.0.0.1 (a random free port) that tests control.

    ``async with SSEServer() as server:`` runs it in the current event loop
    (asyncio or trio); ``with SSEServer() as server:`` runs it in a background
    thread (``backend`` picks its event loop). Leaving the block closes every
    connection; no task, thread or socket is left behind, and an error raised
    inside the server is re-raised there.

    Every event given in ``events`` or later with ``send()`` / ``broadcast()``
    is kept in a history. A new connection receives the history (only what
    follows its ``Last-Event-ID`` when it sends one that the history holds;
    with ``replay=False`` nothing from before it connected, unless it resumes),
    then every event sent while it is connected. Any method and path are
    accepted. ``headers`` are added to every event-stream response. A request
    held by ``hold()`` gets no answer until ``release()``. With ``tls`` (a
    server-side ``ssl.SSLContext``, e.g. from trustme) it serves HTTPS.

    The control methods are plain (no ``await``) and thread-safe, and apply in
    the order they are called. Only the wait methods block: ``await
    server.await_until(...)`` in async code, ``server.wait_until(...)`` in
    sync code; both raise TimeoutError when the timeout expires.
    """

    def __init__(
        self,
        events: Iterable[EventLike] = (),
        *,
        replay: bool = True,
        headers: HeadersLike | None = None,
        backend: str = "asyncio",
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._tls = tls
        self._history: list[_HistoryItem] = [_history_item(event) for event in events]
        self._replay = replay
        self._extra_headers = _header_pairs(headers)
        self._backend = backend
        self._requests: list[RecordedRequest] = []
        self._connections: list[RecordedConnection] = []
        self._live: list[RecordedConnection] = []
        self._plans: deque[_Plan] = deque()
        self._canned: deque[_Canned] = deque()
        self._drip: float | None = None
        self._hold_next = 0
        self._hold_all = False
        self._holding: list[RecordedConnection] = []
        self._waiters: list[Callable[[], None]] = []
        self._errors: list[BaseException] = []
        self._port: int | None = None
        self._loop_thread: int | None = None
        self._call_soon: Callable[[Callable[[], None]], object] | None = None
        self._async_cm: Any = None
        self._portal_cm: AbstractContextManager[anyio.from_thread.BlockingPortal] | None = None
        self._sync_cm: AbstractContextManager[None] | None = None

    # --- running -------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT/stream`` (``https`` with ``tls``; any path
        is served)."""
        if self._port is None:
            raise RuntimeError("the server is not running: use `with` or `async with`")
        scheme = "https" if self._tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self._port}/stream"

    @property
    def port(self) -> int:
        """The port the server listens on."""
        if self._port is None:
            raise RuntimeError("the server is not running: use `with` or `async with`")
        return self._port

    async def __aenter__(self) -> SSEServer:
        if self._async_cm is not None or self._sync_cm is not None:
            raise RuntimeError("this SSEServer is already running")
        cm = self._serve()
        await cm.__aenter__()
        self._async_cm = cm
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        cm, self._async_cm = self._async_cm, None
        await cm.__aexit__(exc_type, exc, tb)
        self._raise_errors(exc_type)

    def __enter__(self) -> SSEServer:
        if self._async_cm is not None or self._sync_cm is not None:
            raise RuntimeError("this SSEServer is already running")
        portal_cm = anyio.from_thread.start_blocking_portal(self._backend)
        portal = portal_cm.__enter__()
        try:
            sync_cm = portal.wrap_async_context_manager(self._serve())
            sync_cm.__enter__()
        except BaseException:
            portal_cm.__exit__(None, None, None)
            raise
        self._portal_cm, self._sync_cm = portal_cm, sync_cm
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        sync_cm, self._sync_cm = self._sync_cm, None
        portal_cm, self._portal_cm = self._portal_cm, None
        assert sync_cm is not None and portal_cm is not None
        try:
            sync_cm.__exit__(None, None, None)
        finally:
            portal_cm.__exit__(None, None, None)  # joins the thread
        self._raise_errors(exc_type)

    @asynccontextmanager
    async def _serve(self) -> AsyncIterator[None]:
        tcp = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        self._port = tcp.extra(anyio.abc.SocketAttribute.local_port)
        listener: anyio.abc.Listener[Any] = tcp
        if self._tls is not None:
            # No close_notify is required: an SSE body ends when the connection
            # does, and clients often close without one.
            listener = TLSListener(tcp, self._tls, standard_compatible=False)
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

    # --- the record ------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received, in order (a copy)."""
        with self._lock:
            return list(self._requests)

    @property
    def connections(self) -> list[RecordedConnection]:
        """Every connection that sent a request, in order, open or closed (a copy)."""
        with self._lock:
            return list(self._connections)

    @property
    def open_connections(self) -> list[RecordedConnection]:
        """The event-stream connections open now."""
        with self._lock:
            return list(self._live)

    @property
    def history(self) -> list[bytes]:
        """The wire blocks of the history, in order (a copy)."""
        with self._lock:
            return [item.block for item in self._history]

    # --- pushing events ------------------------------------------------------------

    def send(
        self,
        data: Any = None,
        *,
        event: str | None = None,
        id: str | None = None,
        retry: int | None = None,
    ) -> None:
        """Send one event to every connected client and add it to the history
        (``format_event`` keywords: non-str data is sent as JSON)."""
        self._add([_history_item({"data": data, "event": event, "id": id, "retry": retry})])

    def broadcast(self, *events: EventLike) -> None:
        """Send several events (dicts, ServerSentEvents, str data or raw bytes)
        to every connected client and add them to the history."""
        self._add([_history_item(event) for event in events])

    def comment(self, text: str = "") -> None:
        """Send a comment (a heartbeat) to every connected client; not kept."""
        self.send_raw(format_event(comment=text))

    def send_raw(self, data: bytes) -> None:
        """Send bytes as they are to every connected client (malformed input,
        partial lines); not kept in the history."""
        self._to_live((_RAW, bytes(data)))

    def _add(self, items: list[_HistoryItem]) -> None:
        with self._lock:
            self._history.extend(items)
            for conn in self._live:
                conn._outbox.extend((_EVENT, item.block) for item in items)
        self._poke()

    def _to_live(self, item: tuple[str, bytes]) -> None:
        with self._lock:
            for conn in self._live:
                conn._outbox.append(item)
        self._poke()

    # --- faults ----------------------------------------------------------------------

    def drop(self) -> None:
        """Hang up every open connection (after what was already queued for it;
        stalled ones too; held ones at once, without any answer)."""
        with self._lock:
            for conn in self._holding:
                if conn.held:  # not those released already
                    conn._hung_up = True
        self._to_live((_DROP, b""))

    def stall(self) -> None:
        """Make every open connection go silent (the socket stays open) until
        ``drop()`` or the server stops; later events wait in the history."""
        self._to_live((_STALL, b""))

    def drop_after(self, n: int) -> None:
        """Hang up the next event-stream connection after it received n events
        (faults armed this way apply to successive connections, in order)."""
        self._arm(_Plan("drop", _count(n)))

    def stall_after(self, n: int) -> None:
        """Make the next event-stream connection go silent after n events."""
        self._arm(_Plan("stall", _count(n)))

    def drop_mid_event(self, n: int, *, at: CutPoint = "line") -> None:
        """After n events, send part of the next block on the next event-stream
        connection, then hang up.

        ``at``: a byte offset into the block (negative: from its end); "line":
        in the middle of its last non-empty line; "utf8": inside its first
        multi-byte UTF-8 character; "crlf": between the CR and LF of its first
        CRLF. A block without such a point is an error raised when the server
        stops (the connection is dropped before the block).
        """
        if not isinstance(at, int) and at not in ("line", "utf8", "crlf"):
            raise ValueError(f"at must be an int, 'line', 'utf8' or 'crlf', not {at!r}")
        self._arm(_Plan("mid", _count(n), at))

    def respond_with(
        self,
        status: int,
        headers: HeadersLike | None = None,
        body: bytes | str = b"",
        *,
        times: int | None = 1,
    ) -> None:
        """Answer the next ``times`` requests (None: every request until
        ``clear_faults()``) with this status, headers and body, then hang up.
        E.g. ``respond_with(503, {"Retry-After": "1"})``, ``respond_with(204)``,
        ``respond_with(200, {"Content-Type": "application/json"}, b"{}")``."""
        if times is not None and times < 1:
            raise ValueError("times must be at least 1, or None")
        payload = body.encode() if isinstance(body, str) else bytes(body)
        pairs = _header_pairs(headers)
        names = {name.lower() for name, _ in pairs}
        if "content-length" not in names and not (status < 200 or status in (204, 304)):
            pairs.append(("Content-Length", str(len(payload))))
        with self._lock:
            self._canned.append(_Canned(status, _head(status, pairs), payload, times))

    def hold(self, times: int | None = 1) -> None:
        """Hold the next ``times`` requests (None: every request until
        ``clear_faults()``): each is received and recorded (``conn.held`` is
        True) but gets no answer, not even a status line, so the client stays
        connecting, until ``release()``. Then it is answered as it would have
        been (a ``respond_with()`` answer, or the event stream with the events
        sent meanwhile). Meanwhile the server still reads the connection: a
        client that gives up is seen (``conn.closed_by_client``). ``drop()``
        hangs up a held connection without an answer; stopping the server
        closes it."""
        if times is not None and (
            isinstance(times, bool) or not isinstance(times, int) or times < 1
        ):
            raise ValueError(f"times must be an int >= 1, or None, not {times!r}")
        with self._lock:
            if times is None:
                self._hold_all = True
            else:
                self._hold_next += times

    def release(self) -> None:
        """Answer every request held now (see ``hold()``); requests that come
        later are held as armed. Harmless when nothing is held."""
        with self._lock:
            for conn in self._holding:
                conn.held = False
        self._poke()
        self._notify()

    def slow_drip(self, delay: float | None) -> None:
        """Write every body one byte at a time, ``delay`` seconds apart, on open
        and future connections; ``slow_drip(None)`` ends it."""
        if delay is not None and delay < 0:
            raise ValueError("delay must be >= 0 or None")
        with self._lock:
            self._drip = delay

    def clear_faults(self) -> None:
        """Forget armed faults, pending ``respond_with`` answers and holds, and
        slow drip (connections already stalled stay stalled, held ones stay
        held until ``release()``)."""
        with self._lock:
            self._plans.clear()
            self._canned.clear()
            self._drip = None
            self._hold_next = 0
            self._hold_all = False

    def _arm(self, plan: _Plan) -> None:
        with self._lock:
            self._plans.append(plan)

    # --- waiting -----------------------------------------------------------------------

    # A wait with a default timeout is the point here: a test must never hang.
    async def await_until(
        self,
        condition: Callable[[], object],
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> None:
        """Wait until ``condition()`` is true; it is checked each time the
        server's state changes (a request, an event written, a close).
        Raises TimeoutError after ``timeout`` seconds."""
        deadline = anyio.current_time() + timeout
        while True:
            event = anyio.Event()
            waker = _threadsafe_setter(event.set)
            with self._lock:
                self._waiters.append(waker)
            try:
                if condition():
                    return
                with anyio.move_on_after(deadline - anyio.current_time()):
                    await event.wait()
                    continue
            finally:
                with self._lock:
                    self._waiters.remove(waker)
            if condition():
                return
            raise TimeoutError(f"SSEServer: {_describe(condition)} still false after {timeout} s")

    def wait_until(self, condition: Callable[[], object], timeout: float = 5.0) -> None:
        """Block the calling thread until ``condition()`` is true (see
        ``await_until``); not from the thread running the server's event loop."""
        if threading.get_ident() == self._loop_thread:
            raise RuntimeError(
                "wait_until() would block the server's event loop: "
                "use `await server.await_until(...)` in async code"
            )
        event = threading.Event()
        with self._lock:
            self._waiters.append(event.set)
        try:
            deadline = time.monotonic() + timeout
            while not condition():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"SSEServer: {_describe(condition)} still false after {timeout} s"
                    )
                event.wait(remaining)
                event.clear()
        finally:
            with self._lock:
                self._waiters.remove(event.set)

    async def await_for_connections(
        self,
        n: int = 1,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> RecordedConnection:
        """Wait until n connections were made in all; return the n-th."""
        _count(n, minimum=1)
        try:
            await self.await_until(lambda: len(self._connections) >= n, timeout)
        except TimeoutError:
            raise self._too_few(n, timeout) from None
        return self._connections[n - 1]

    def wait_for_connections(self, n: int = 1, timeout: float = 5.0) -> RecordedConnection:
        """Block until n connections were made in all; return the n-th."""
        _count(n, minimum=1)
        try:
            self.wait_until(lambda: len(self._connections) >= n, timeout)
        except TimeoutError:
            raise self._too_few(n, timeout) from None
        return self._connections[n - 1]

    def _too_few(self, n: int, timeout: float) -> TimeoutError:
        return TimeoutError(
            f"SSEServer: {len(self._connections)} connection(s) after {timeout} s, waiting for {n}"
        )

    def _notify(self) -> None:
        with self._lock:
            waiters = list(self._waiters)
        for wake in waiters:
            wake()

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
        for event in events:
            if event is not None:
                event.set()

    # --- serving -------------------------------------------------------------------------

    async def _handle(self, stream: anyio.abc.SocketStream) -> None:
        conn: RecordedConnection | None = None
        try:
            raw = stream.extra(anyio.abc.SocketAttribute.raw_socket)
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                request = await _read_request(stream)
            except (anyio.EndOfStream, anyio.BrokenResourceError, ValueError):
                return
            conn, canned = self._open(request)
            if conn.held and not await self._hold(conn, stream):
                return
            if canned is not None:
                try:
                    await stream.send(canned.head + canned.body)
                except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                    conn.closed_by_client = True
                return
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._watch_client, conn, stream, tg.cancel_scope)
                await self._stream(conn, stream)
                tg.cancel_scope.cancel()
        except Exception as exc:
            self._errors.append(exc)
        finally:
            with anyio.CancelScope(shield=True):
                await stream.aclose()
            if conn is not None:
                with self._lock:
                    conn.closed = True
                    conn.closed_at = time.monotonic()
                    if conn in self._live:
                        self._live.remove(conn)
                    if conn in self._holding:
                        self._holding.remove(conn)
                self._notify()

    def _open(self, request: RecordedRequest) -> tuple[RecordedConnection, _Canned | None]:
        with self._lock:
            self._requests.append(request)
            if self._canned:
                canned = self._canned[0]
                if canned.times is not None:
                    canned.times -= 1
                    if canned.times == 0:
                        self._canned.popleft()
                conn = RecordedConnection(request, status=canned.status)
                self._connections.append(conn)
            else:
                canned = None
                conn = RecordedConnection(request)
                conn._plan = self._plans.popleft() if self._plans else None
                conn._wakeup = anyio.Event()
                start = self._resume_index(request.last_event_id)
                conn._outbox.extend((_EVENT, item.block) for item in self._history[start:])
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

    def _resume_index(self, last_event_id: str | None) -> int:
        if last_event_id:
            for index in range(len(self._history) - 1, -1, -1):
                if self._history[index].id == last_event_id:
                    return index + 1
        return 0 if self._replay else len(self._history)

    async def _hold(self, conn: RecordedConnection, stream: anyio.abc.SocketStream) -> bool:
        """Answer nothing until ``release()``: True then; False when the client
        hung up or ``drop()`` hung up on it."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._watch_client, conn, stream, tg.cancel_scope)
            while True:
                with self._lock:
                    if conn._hung_up or not conn.held:
                        self._holding.remove(conn)
                        break
                    conn._wakeup = wakeup = anyio.Event()
                await wakeup.wait()
            tg.cancel_scope.cancel()
        return not conn.closed_by_client and not conn._hung_up

    async def _watch_client(
        self, conn: RecordedConnection, stream: anyio.abc.SocketStream, scope: anyio.CancelScope
    ) -> None:
        """Read until the client hangs up, then stop the writer."""
        try:
            while True:
                await stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass
        conn.closed_by_client = True
        scope.cancel()

    async def _stream(self, conn: RecordedConnection, stream: anyio.abc.SocketStream) -> None:
        """Write the event stream until a drop, a fault or the client's close."""
        try:
            await stream.send(_head(200, [*_STREAM_HEADERS, *self._extra_headers]))
            plan = conn._plan
            while True:
                if plan is not None and plan.kind != "mid" and conn.events_sent >= plan.after:
                    if plan.kind == "stall":
                        await self._stall(conn)
                    return
                kind, data = await self._next(conn)
                if kind == _DROP:
                    return
                if kind == _STALL:
                    await self._stall(conn)
                    return
                if kind == _EVENT and plan is not None and conn.events_sent >= plan.after:
                    try:
                        cut = _cut_point(data, plan.at)
                    except ValueError as exc:
                        self._errors.append(exc)
                        return
                    await self._write(conn, stream, data[:cut])
                    return
                await self._write(conn, stream, data)
                if kind == _EVENT:
                    conn.events_sent += 1
                    self._notify()
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            conn.closed_by_client = True

    async def _next(self, conn: RecordedConnection) -> tuple[str, bytes]:
        while True:
            with self._lock:
                if conn._outbox:
                    return conn._outbox.popleft()
                conn._wakeup = wakeup = anyio.Event()
            await wakeup.wait()

    async def _stall(self, conn: RecordedConnection) -> None:
        """Send nothing until a drop is queued (or the server stops)."""
        while True:
            with self._lock:
                if any(kind == _DROP for kind, _ in conn._outbox):
                    return
                conn._wakeup = wakeup = anyio.Event()
            await wakeup.wait()

    async def _write(
        self, conn: RecordedConnection, stream: anyio.abc.SocketStream, data: bytes
    ) -> None:
        delay = self._drip
        if delay is None:
            await stream.send(data)
            conn.bytes_sent += len(data)
            return
        for index in range(len(data)):
            await stream.send(data[index : index + 1])
            conn.bytes_sent += 1
            await anyio.sleep(delay)


# --- helpers -------------------------------------------------------------------------------


def _count(n: int, minimum: int = 0) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < minimum:
        raise ValueError(f"n must be an int >= {minimum}, not {n!r}")
    return n


def _history_item(event: EventLike) -> _HistoryItem:
    kwargs = format_kwargs(event)
    if kwargs is None:
        block = bytes(event)  # type: ignore[arg-type]
        return _HistoryItem(block, _block_id(block))
    return _HistoryItem(format_event(**kwargs), kwargs.get("id"))


def _block_id(block: bytes) -> str | None:
    """The value of the last ``id:`` field in a raw block, if any."""
    found = None
    for line in re.split(rb"\r\n|\r|\n", block):
        if line == b"id" or line.startswith(b"id:"):
            value = line[3:]
            found = (value[1:] if value.startswith(b" ") else value).decode("utf-8", "replace")
    return found


def _cut_point(block: bytes, at: CutPoint) -> int:
    if isinstance(at, int):
        cut = at if at >= 0 else len(block) + at
        if not 0 <= cut < len(block):
            raise ValueError(f"drop_mid_event: offset {at} outside a {len(block)}-byte block")
        return cut
    if at == "line":
        lines = [m for m in re.finditer(rb"[^\r\n]+", block) if m.end() - m.start() >= 2]
        if lines:
            last = lines[-1]
            return last.start() + (last.end() - last.start()) // 2
    elif at == "utf8":
        match = re.search(rb"[\xc0-\xff]", block)
        if match:
            return match.start() + 1
    elif at == "crlf":
        index = block.find(b"\r\n")
        if index >= 0:
            return index + 1
    raise ValueError(f"drop_mid_event: no {at!r} cut point in {block!r}")


def _header_pairs(headers: HeadersLike | None) -> list[tuple[str, str]]:
    if headers is None:
        return []
    items = headers.items() if isinstance(headers, Mapping) else headers
    pairs = [(str(name), str(value)) for name, value in items]
    for name, value in pairs:
        if any(c in name + value for c in "\r\n"):
            raise ValueError(f"header {name!r} contains CR or LF")
    return pairs


def _head(status: int, headers: Sequence[tuple[str, str]]) -> bytes:
    try:
        reason = http.HTTPStatus(status).phrase
    except ValueError:
        reason = "Unknown"
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines += [f"{name}: {value}" for name, value in headers if name.lower() != "connection"]
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _read_request(stream: anyio.abc.ByteReceiveStream) -> RecordedRequest:
    """Read one request: request line, headers, then a Content-Length or
    chunked body. Raises ValueError for a malformed one."""
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        if len(buffer) > _MAX_HEAD:
            raise ValueError("request head too large")
        buffer += await stream.receive()
    head, _, rest = buffer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path, _version = lines[0].split(" ", 2)
    pairs = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise ValueError(f"malformed header line {line!r}")
        pairs.append((name.strip(), value.strip()))
    headers = httpx.Headers(pairs)
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body, rest = b"", rest
        while True:
            while b"\r\n" not in rest:
                rest += await stream.receive()
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            while len(rest) < size + 2:
                rest += await stream.receive()
            body, rest = body + rest[:size], rest[size + 2 :]
            if size == 0:
                break
    else:
        length = int(headers.get("content-length", "0"))
        body = rest
        while len(body) < length:
            body += await stream.receive()
        body = body[:length]
    return RecordedRequest(method, path, headers, body)


def _describe(condition: Callable[[], object]) -> str:
    name = getattr(condition, "__qualname__", None) or repr(condition)
    return f"condition {name}"


def _threadsafe_setter(set_event: Callable[[], None]) -> Callable[[], None]:
    """A function that runs ``set_event`` in the current event loop's thread,
    whichever thread calls it."""
    owner = threading.get_ident()
    call_soon = _loop_call_soon()

    def wake() -> None:
        if threading.get_ident() == owner or call_soon is None:
            set_event()
        else:
            try:
                call_soon(set_event)
            except RuntimeError:  # the loop is gone
                pass

    return wake
