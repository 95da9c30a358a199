"""SSEServer: a real HTTP/1.1 Server-Sent Events server on 127.0.0.1 for tests.

Built on anyio sockets and h11 (``_http``), no framework. Event streams are
chunked on keep-alive connections by default, as production servers send them;
``framing="close"`` or ``"content-length"`` picks another framing. A
connection carries requests one after another while each response ends
normally; a drop closes it. Every request being answered owns an outbox:
events, comments, raw bytes and fault markers are queued into it in the order
the test script calls the control methods, and its task writes them out. So
``server.send("a"); server.drop()`` delivers "a", then hangs up,
deterministically. The connection tasks are in ``_serving``, the history and
resuming in ``_history``, the faults in ``_faults``, the records in
``_records``, the waits in ``_waiting``, its asyncio task in ``_hosting``.

``hold()`` makes the next request(s) wait without any answer (the client stays
connecting) until ``release()``; the server still reads the held connection,
so it sees the client hang up.

Threads: control methods (``send``, ``drop``, ...) change the state under a
lock in the caller's thread and wake the server's event loop with its
thread-safe "call soon", so they work from any thread, whichever way the server
runs (``async with``: in the current event loop; ``with``: in its own thread).
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any, Literal

import anyio
import anyio.from_thread

from .._encoder import format_event
from ._events import EventLike
from ._faults import DROP, END, EVENT, RAW, STALL, Canned, CutPoint, Plan, count
from ._history import HistoryItem, LineEnding, check_line_ending, history_item, with_line_ending
from ._hosting import Hosted, on_asyncio
from ._http import FRAMINGS, Framing, HeadersLike, header_pairs
from ._mock import _NO_BODY, plain_body
from ._records import RecordedConnection, RecordedRequest
from ._serving import Serving

__all__ = ["RecordedConnection", "RecordedRequest", "SSEServer"]


class SSEServer(Serving):
    r"""A real SSE server on 127.0.0.1 (a free port, or ``port``) that tests control.

    ``async with SSEServer() as server:`` runs it in the current event loop
    (asyncio or trio); ``with SSEServer() as server:`` runs it in a background
    thread (``backend`` picks its event loop). Leaving the block closes every
    connection; no task, thread or socket is left behind, and an error raised
    inside the server is re-raised there.

    Every event given in ``events`` or later with ``send()`` / ``broadcast()``
    is kept in a history. A new request receives the history (only what
    follows its ``Last-Event-ID`` when it sends one that the history holds),
    then every event sent while it is connected. Any method and path are
    accepted. A request held by ``hold()`` gets no answer until ``release()``.
    In the keep-alive framings a complete response (``end()``, a whole
    Content-Length, a ``respond_with()`` answer) leaves the connection open
    for the next request; a drop closes it mid-body (mid-chunk for a cut
    event).

    The control methods are plain (no ``await``) and thread-safe, and apply in
    the order they are called. A fault is never a no-op: ``drop()``,
    ``stall()`` and ``end()`` act on the open connections, or, with none
    open, on the next event stream at that point of the history; the
    ``*_after(n)`` forms always arm the next event stream. Only the wait
    methods block: ``await server.await_until(...)`` in async code,
    ``server.wait_until(...)`` in sync code; both raise TimeoutError when the
    timeout expires.

    A resumable request stream in MCP's shape (Streamable HTTP): give a
    priming event first (``{"id": "p", "retry": 200, "data": ""}``, as MCP's
    SDKs write it: an event with empty data) and
    ``end_after(n)``: the POST's stream ends after n events, and the GET that
    resumes it with ``Last-Event-ID`` gets the rest, and only the rest
    (``requests`` holds each one's method, headers and body).

    Args:
        events: The history to start with (dicts of ``format_event()``
            keywords, ``ServerSentEvent``, str data or raw bytes).
        replay: False: a new request gets nothing from before it came, unless
            it resumes with a ``Last-Event-ID``. Default True.
        headers: Added to every event-stream response (those that frame the
            body, such as Content-Length, are the server's).
        backend: The event loop of the background thread of ``with``:
            ``"asyncio"`` (the default) or ``"trio"`` (anyio's backend names).
            ``async with`` runs in the current loop whatever it says.
        tls: A server-side ``ssl.SSLContext`` (e.g. from trustme): the server
            serves HTTPS. None (the default): plain HTTP.
        framing: ``"chunked"`` (the default) sends the stream in chunks on a
            keep-alive connection; ``"close"`` sends a body that ends with the
            connection (``Connection: close``); ``"content-length"`` sends a
            finite stream: the body, its length in ``Content-Length``, is fixed
            when the response starts (the history replayed for the request
            plus what was sent while it was held); events sent later go to the
            client's next request.
        line_ending: The line ends of the events and comments it writes:
            ``"\n"`` (the default), ``"\r\n"`` or ``"\r"``
            (``send(..., line_ending=...)`` for one event; raw bytes are sent as
            they are). ``drop_mid_event(at="crlf")`` needs CRLF events.
        port: The port to listen on; 0 (the default): a free one. A server
            may take the port of one just stopped (a client's reconnection
            across a server restart; at once on Linux and macOS, not always
            on Windows); starting on a port in use raises OSError (errno
            ``EADDRINUSE``).

    Raises:
        ValueError: An unknown ``framing`` or ``line_ending``, or a ``port``
            that is no int from 0 to 65535.
        TypeError: An event of no accepted type.
    """

    def __init__(
        self,
        events: Iterable[EventLike] = (),
        *,
        replay: bool = True,
        headers: HeadersLike | None = None,
        backend: str = "asyncio",
        tls: ssl.SSLContext | None = None,
        framing: Framing = "chunked",
        line_ending: LineEnding = "\n",
        port: int = 0,
    ) -> None:
        if framing not in FRAMINGS:
            raise ValueError(f"framing must be one of {', '.join(FRAMINGS)}, not {framing!r}")
        self._line_ending = check_line_ending(line_ending)
        super().__init__(
            [history_item(event, self._line_ending) for event in events],
            replay=replay,
            headers=header_pairs(headers),
            tls=tls,
            framing=framing,
            port=port,
        )
        self._backend = backend
        self._async_cm: Any = None
        self._portal_cm: AbstractContextManager[anyio.from_thread.BlockingPortal] | None = None
        self._sync_cm: AbstractContextManager[None] | None = None

    # --- running -------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT/stream`` (``https`` with ``tls``; any path is served).

        Raises:
            RuntimeError: The server is not running.
        """
        if self._port is None:
            raise RuntimeError("the server is not running: use `with` or `async with`")
        scheme = "https" if self._tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self._port}/stream"

    @property
    def port(self) -> int:
        """The port the server listens on.

        Raises:
            RuntimeError: The server is not running.
        """
        if self._port is None:
            raise RuntimeError("the server is not running: use `with` or `async with`")
        return self._port

    @property
    def framing(self) -> Framing:
        """How event-stream bodies are framed: "chunked", "close" or "content-length"."""
        return self._framing

    async def __aenter__(self) -> SSEServer:
        with self._starting():
            if on_asyncio():
                # A task of its own: pytest-asyncio enters an async fixture in one
                # task and leaves it in another, and a task group (a cancel scope)
                # must be left by the task that entered it.
                self._async_cm = await Hosted.start(self._serve())
            else:
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
        try:
            await cm.__aexit__(exc_type, exc, tb)
        finally:
            self._stopped()
        self._raise_errors(exc_type)

    def __enter__(self) -> SSEServer:
        with self._starting():
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
            try:
                portal_cm.__exit__(None, None, None)  # joins the thread
            finally:
                self._stopped()
        self._raise_errors(exc_type)

    # --- the record ------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received, in order (a copy)."""
        with self._lock:
            return list(self._requests)

    @property
    def connections(self) -> list[RecordedConnection]:
        """A record of every request and its answer, in order, over or not (a copy).

        ``tcp_index`` tells the TCP connection that carried it.
        """
        with self._lock:
            return list(self._connections)

    @property
    def open_connections(self) -> list[RecordedConnection]:
        """The event streams being answered now."""
        with self._lock:
            return list(self._live)

    @property
    def history(self) -> list[bytes]:
        """The wire blocks of the history, in order (a copy)."""
        with self._lock:
            return self._history.blocks

    # --- pushing events ------------------------------------------------------------

    def send(
        self,
        data: Any = None,
        *,
        event: str | None = None,
        id: str | None = None,
        retry: int | None = None,
        line_ending: LineEnding | None = None,
    ) -> None:
        r"""Send one event to every connected client and add it to the history.

        Args:
            data: The event's data: a str, or any other value, sent as JSON;
                None: no data line.
            event: The event type; None: none (a "message").
            id: The event ID; None: none.
            retry: The client's reconnection time in milliseconds; None: none.
            line_ending: This event's line ends (``"\n"``, ``"\r\n"`` or
                ``"\r"``); None: the server's.

        Raises:
            ValueError: What ``format_event()`` refuses (a CR in ``event``,
                an id a client cannot send back, nothing to send...), or an
                unknown ``line_ending``.
        """
        fields = {"data": data, "event": event, "id": id, "retry": retry}
        if line_ending is None:
            self.broadcast(fields)
        else:
            self._add([history_item(fields, check_line_ending(line_ending))])

    def broadcast(self, *events: EventLike) -> None:
        """Send several events to every connected client and add them to the history.

        Args:
            *events: The events, in order: dicts of ``format_event()``
                keywords, ``ServerSentEvent``, str data or raw bytes.

        Raises:
            ValueError: An event ``format_event()`` refuses.
            TypeError: An event of no accepted type.
        """
        self._add([history_item(event, self._line_ending) for event in events])

    def _add(self, items: list[HistoryItem]) -> None:
        with self._lock:
            self._history.extend(items)
            for conn in self._live:
                conn._outbox.extend((EVENT, item.block) for item in items)
        self._poke()

    def comment(self, text: str = "") -> None:
        """Send a comment (a heartbeat) to every connected client; not kept.

        Args:
            text: The comment's text (``""``: an empty ``:`` line).
        """
        self.send_raw(with_line_ending(format_event(comment=text), self._line_ending))

    def send_raw(self, data: bytes) -> None:
        """Send bytes as they are to every connected client; not kept.

        Args:
            data: The bytes (malformed input, partial lines...).
        """
        self._to_live((RAW, bytes(data)))

    def _to_live(self, item: tuple[str, bytes]) -> None:
        with self._lock:
            for conn in self._live:
                conn._outbox.append(item)
        self._poke()

    # --- ending and faults ---------------------------------------------------------------

    def end(self) -> None:
        """End every open event stream normally, after what was already queued for it.

        The last chunk ("chunked"; the connection then carries the next
        request) or a close ("close"). No effect in "content-length" framing,
        where the body ends at its length. With no event stream open, it
        applies to the next one (see ``drop()``).
        """
        with self._lock:
            self._queue_or_arm((END, b""), "end", open_any=False)
        self._poke()

    def end_after(self, n: int) -> None:
        """End the next event-stream response normally after n events.

        See ``end()``; armed like ``drop_after()``.

        Args:
            n: The events it receives first (an int >= 0).

        Raises:
            ValueError: ``n`` is no int >= 0.
        """
        self._arm(Plan("end", count(n)))

    def drop(self) -> None:
        """Hang up every open connection.

        After what was already queued for it; stalled ones too; held ones and
        idle keep-alive ones at once, without any answer. With no connection
        open (before the client connects, or while it
        reconnects) it applies to the next event stream instead, at this
        point of the script: ``send("a"); drop(); send("b")`` gives the next
        connection "a", then hangs up; the one after resumes with "b". It is
        never a no-op.
        """
        with self._lock:
            for conn in self._holding:
                if conn.held:  # not those released already
                    conn._hung_up = True
            self._hang_up_idle.extend(self._idle.values())
            self._queue_or_arm((DROP, b""), "drop", open_any=bool(self._holding or self._idle))
        self._poke()

    def stall(self) -> None:
        """Make every open event stream go silent; the socket stays open.

        Until ``drop()`` or the server stops; later events wait in the
        history. With no event stream open it applies to the next one, at this
        point of the script (see ``drop()``).
        """
        with self._lock:
            self._queue_or_arm((STALL, b""), "stall", open_any=False)
        self._poke()

    def _queue_or_arm(
        self, item: tuple[str, bytes], kind: Literal["drop", "stall", "end"], *, open_any: bool
    ) -> None:
        """Queue ``item`` to the open event streams.

        With none (and not ``open_any``: other connections it acted on), arm it
        for the next one at the history's current end. The caller holds the
        lock.
        """
        if self._live or open_any:
            for conn in self._live:
                conn._outbox.append(item)
        else:
            self._plans.append(Plan(kind, 0, position=len(self._history)))

    def drop_after(self, n: int) -> None:
        """Hang up the next event-stream connection after it received n events.

        Faults armed this way apply to successive event streams, in order.

        Args:
            n: The events it receives first (an int >= 0).

        Raises:
            ValueError: ``n`` is no int >= 0.
        """
        self._arm(Plan("drop", count(n)))

    def stall_after(self, n: int) -> None:
        """Make the next event-stream connection go silent after n events.

        Args:
            n: The events it receives first (an int >= 0).

        Raises:
            ValueError: ``n`` is no int >= 0.
        """
        self._arm(Plan("stall", count(n)))

    def drop_mid_event(self, n: int, *, at: CutPoint = "line") -> None:
        r"""Cut the next event-stream connection inside an event, then hang up.

        After n events, part of the next block is sent (inside its chunk, or
        short of the Content-Length). A block without the cut point is an
        error raised when the server stops (the connection is dropped before
        the block).

        Args:
            n: The whole events it receives first (an int >= 0).
            at: Where the block is cut: a byte offset into it (negative: from
                its end); ``"line"`` (the default): in the middle of its last
                non-empty line; ``"utf8"``: inside its first multi-byte UTF-8
                character; ``"crlf"``: between the CR and LF of its first CRLF.

        Raises:
            ValueError: ``n`` is no int >= 0, ``at`` is none of these, or
                ``at="crlf"`` while no event has a CRLF: send them with
                ``SSEServer(line_ending="\r\n")`` or
                ``send(..., line_ending="\r\n")`` (or as raw CRLF bytes)
                first.
        """
        if not isinstance(at, int) and at not in ("line", "utf8", "crlf"):
            raise ValueError(f"at must be an int, 'line', 'utf8' or 'crlf', not {at!r}")
        with self._lock:
            if at == "crlf" and self._line_ending != "\r\n" and not self._history.crlf_blocks:
                raise ValueError(
                    "drop_mid_event(at='crlf'): no event has a CRLF line end (this server "
                    f"writes {self._line_ending!r}); use SSEServer(line_ending='\\r\\n') or "
                    "send(..., line_ending='\\r\\n'), before arming the cut"
                )
            self._plans.append(Plan("mid", count(n), at))

    def respond_with(
        self,
        status: int,
        headers: HeadersLike | None = None,
        body: bytes | str = b"",
        *,
        json: Any = _NO_BODY,
        text: str | None = None,
        times: int | None = 1,
    ) -> None:
        """Answer the next requests with this status, headers and body.

        A body of exact length (Content-Length is added when missing) leaves a
        keep-alive connection open for the next request; otherwise, and in
        "close" framing, the server hangs up after it. E.g.
        ``respond_with(503, {"Retry-After": "1"})``, ``respond_with(204)``,
        ``respond_with(200, {"Content-Type": "application/json"}, b"{}")``,
        ``respond_with(401, json={...})``.

        Args:
            status: The status code.
            headers: The response headers.
            body: The body (a str is sent as UTF-8).
            json: Instead of ``body``: a JSON value, sent as
                ``application/json``.
            text: Instead of ``body``: text, sent as ``text/plain``.
            times: How many requests get this answer (default 1); None: every
                request until ``clear_faults()``.

        Raises:
            ValueError: ``times`` below 1, or more than one of ``body``,
                ``json`` and ``text``.
        """
        if times is not None and times < 1:
            raise ValueError("times must be at least 1, or None")
        plain = plain_body(json, text)
        if plain is not None and body:
            raise ValueError("give body=, json= or text=, one of them")
        payload = body.encode() if isinstance(body, str) else bytes(body)
        pairs = header_pairs(headers)
        if plain is not None:
            payload = plain[0]
            if not any(name.lower() == "content-type" for name, _ in pairs):
                pairs.append(("Content-Type", plain[1]))
        names = {name.lower(): value for name, value in pairs}
        bodiless = status < 200 or status in (204, 304)
        if "content-length" not in names and not bodiless:
            pairs.append(("Content-Length", str(len(payload))))
        length = names.get("content-length", str(len(payload))).strip()
        reusable = (
            status >= 200
            and "transfer-encoding" not in names
            and "close" not in names.get("connection", "").lower()
            and (not payload if bodiless else length == str(len(payload)))
        )
        pairs = [(name, value) for name, value in pairs if name.lower() != "connection"]
        with self._lock:
            self._canned.append(Canned(status, pairs, payload, times, reusable))

    def hold(self, times: int | None = 1) -> None:
        """Hold the next requests: no answer until ``release()``.

        Each is received and recorded (``conn.held`` is True) but gets no
        answer, not even a status line, so the client stays connecting, until
        ``release()``. Then it is answered as it would have been (a
        ``respond_with()`` answer, or the event stream with the events sent
        meanwhile). Meanwhile the server still reads the connection: a client
        that gives up is seen (``conn.closed_by_client``). ``drop()`` hangs up
        a held connection without an answer; stopping the server closes it.

        Args:
            times: How many requests to hold (default 1); None: every request
                until ``clear_faults()``.

        Raises:
            ValueError: ``times`` is no int >= 1 nor None.
        """
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
        """Answer every request held now (see ``hold()``).

        Requests that come later are held as armed. Harmless when nothing is
        held.
        """
        with self._lock:
            for conn in self._holding:
                conn.held = False
        self._poke()
        self._notify()

    def slow_drip(self, delay: float | None) -> None:
        """Write every body one byte at a time, on open and future connections.

        Chunk framing too is written byte by byte.

        Args:
            delay: The seconds between two bytes; None ends the drip.

        Raises:
            ValueError: A negative ``delay``.
        """
        if delay is not None and delay < 0:
            raise ValueError("delay must be >= 0 or None")
        with self._lock:
            self._drip = delay

    def clear_faults(self) -> None:
        """Forget armed faults and ends, pending answers and holds, and slow drip.

        Pending answers are those of ``respond_with()``. Connections already
        stalled stay stalled, held ones stay held until ``release()``.
        """
        with self._lock:
            self._plans.clear()
            self._canned.clear()
            self._drip = None
            self._hold_next = 0
            self._hold_all = False

    def _arm(self, plan: Plan) -> None:
        with self._lock:
            self._plans.append(plan)
