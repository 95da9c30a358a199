"""EventSource: the reconnecting client, async (anyio) and sync, on httpx.

The decisions are made once, in the shared methods of this class and in
ConnectionPolicy; the async and sync halves below them differ only in how they
connect, read, sleep and call callbacks, and are kept line for line alike (as
httpx keeps Client and AsyncClient), so a change to one is made to the other.

Iteration is a class with __next__ / __anext__, not a generator, so `break`,
close() and cancellation end it deterministically, and no `yield` ever happens
inside a cancel scope. Events parsed from one chunk wait in a queue and are
delivered one per call; the next chunk is read only when the queue is empty,
so a drop is acted on after everything received before it was delivered.
"""

from __future__ import annotations

import html
import inspect
import json
import logging
import math
import socket
import ssl
import threading
import warnings
import weakref
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Collection, Coroutine, Iterator, Mapping
from enum import IntEnum
from typing import Any, Callable, Optional, Protocol, TypeVar, Union

import anyio
import httpx

from ._errors import (
    ConnectionLostError,
    EventSourceError,
    EventTooLargeError,
    ReadTimeoutError,
    ResponseError,
    RetriesExhaustedError,
)
from ._event import ServerSentEvent
from ._loop import loop_call_soon as _loop_call_soon
from ._parser import DEFAULT_MAX_EVENT_SIZE, SSEParser
from ._policy import DEFAULT_RETRY_STATUSES, Action, ConnectionPolicy, Verdict

__all__ = ["EventSource", "ReadyState"]

logger = logging.getLogger("eventsource")

T = TypeVar("T")
MaybeCallable = Union[T, Callable[[], T]]
Callback = Callable[..., Any]
HeadersArg = Optional[MaybeCallable[Mapping[str, str]]]
ParamsArg = Optional[MaybeCallable[Mapping[str, Any]]]

_UNSET: Any = object()
_CLOSE_TIMEOUT = 5.0  # seconds that closing a response may take, at most
_NO_HANDLERS: list[Any] = []  # never mutated


class ReadyState(IntEnum):
    """The source's state, numbered as in browsers."""

    CONNECTING = 0
    OPEN = 1
    CLOSED = 2


class _Comment(str):
    """A comment line, queued among the events to keep stream order."""

    __slots__ = ()


class EventSource:
    """A Server-Sent Events stream that reconnects, like a browser's EventSource.

    Use it async (``async with`` / ``async for`` / ``await arun()``, on asyncio
    or trio) or sync (``with`` / ``for`` / ``run()``); not both with one
    instance. Options are in seconds. See the README for the full contract.
    """

    # Slots: a service may hold thousands of sources; a __dict__ each costs 1.6 KiB.
    __slots__ = (
        "__weakref__",
        "_auth_kwargs",
        "_busy",
        "_call_soon",
        "_chunks",
        "_client",
        "_closing",
        "_content",
        "_cookies",
        "_current_task",
        "_data",
        "_delay",
        "_delivered",
        "_delivered_id",
        "_done",
        "_ended",
        "_error",
        "_events_received",
        "_fatal",
        "_finished",
        "_headers",
        "_json",
        "_last_event",
        "_listeners",
        "_method",
        "_mode",
        "_on_close",
        "_on_comment",
        "_on_error",
        "_on_message",
        "_on_open",
        "_own_client",
        "_params",
        "_parser",
        "_policy",
        "_queue",
        "_read_timeout",
        "_ready_state",
        "_response",
        "_restart",
        "_scope",
        "_socket",
        "_closer",
        "_stream",
        "_task",
        "_thread",
        "_timeout",
        "_url",
        "_wake",
    )

    def __init__(
        self,
        url: str | httpx.URL,
        *,
        method: str = "GET",
        headers: HeadersArg = None,
        params: ParamsArg = None,
        json: Any = None,
        content: bytes | str | None = None,
        cookies: Mapping[str, str] | None = None,
        auth: httpx.Auth | tuple[str, str] | Callable[..., Any] | None = None,
        client: httpx.Client | httpx.AsyncClient | None = None,
        timeout: httpx.Timeout | float | None = None,
        last_event_id: str = "",
        retry: float = 3.0,
        reconnect: bool = True,
        max_retries: int | None = None,
        max_retry_delay: float = 30.0,
        retry_statuses: Collection[int] = DEFAULT_RETRY_STATUSES,
        read_timeout: float | None = 60.0,
        max_event_size: int = DEFAULT_MAX_EVENT_SIZE,
        on_open: Callback | None = None,
        on_message: Callback | None = None,
        on_error: Callback | None = None,
        on_close: Callback | None = None,
        on_comment: Callback | None = None,
    ) -> None:
        if json is not None and content is not None:
            raise ValueError("give json or content, not both")
        if any(c in last_event_id for c in "\r\n\0"):
            raise ValueError("last_event_id must not contain CR, LF or NUL")
        if read_timeout is not None and read_timeout <= 0:
            raise ValueError("read_timeout must be positive or None")
        if client is not None and cookies is not None:
            raise ValueError("cookies go to your own client when you pass client=")
        self._url = httpx.URL(url)
        self._method = method.upper()
        self._headers = headers
        self._params = params
        self._json = json
        self._content = content
        self._cookies = cookies  # for the client this source makes (see _new_client_kwargs)
        # Passing auth=None to httpx would switch off a caller's client-level
        # auth, so auth is passed only when given.
        self._auth_kwargs: dict[str, Any] = {"auth": auth} if auth is not None else {}
        self._client = client
        self._own_client = client is None
        self._timeout = timeout
        self._read_timeout = read_timeout
        self._policy = ConnectionPolicy(
            retry=retry,
            max_retries=max_retries,
            max_retry_delay=max_retry_delay,
            retry_statuses=retry_statuses,
            reconnect=reconnect,
        )
        self._on_open = on_open
        self._on_message = on_message
        self._on_error = on_error
        self._on_close = on_close
        self._on_comment = on_comment
        self._listeners: dict[str, list[Callback]] = {}
        self._parser = SSEParser(
            max_event_size=max_event_size,
            on_comment=self._queue_comment if on_comment is not None else None,
            last_event_id=last_event_id,
        )
        self._queue: deque[ServerSentEvent | _Comment] = deque()

        self._ready_state = ReadyState.CONNECTING
        self._error: EventSourceError | None = None
        self._last_event: ServerSentEvent | None = None
        self._data: Any = _UNSET
        self._events_received = 0
        self._delivered_id = last_event_id

        self._mode: str | None = None  # "sync" or "async", fixed at first use
        self._response: httpx.Response | None = None
        self._chunks: Any = None  # the response's byte iterator
        self._delay: float | None = None  # wait before the next attempt
        self._delivered = False  # this connection produced an event
        self._fatal: EventSourceError | None = None
        self._closing = False
        self._finished = False
        self._restart = False
        self._busy = False
        self._thread: int | None = None  # the thread that drives the source
        self._wake: threading.Event | None = None  # interrupts a sync reconnect wait
        self._scope: anyio.CancelScope | None = None  # the async wait in progress
        # The open HTTP/1.1 response's socket, when async reads may go without a
        # cancel scope (see _aread).
        self._socket: _Socket | None = None
        self._stream: Any = None  # the sync request's network stream (see _trace)
        self._task: object = None  # the task iterating, in async mode
        self._current_task: Callable[[], object] = _no_task
        self._call_soon: Callable[[Callable[[], None]], object] | None = None
        self._closer: object = None  # the task close() started, held until the source goes
        # _ended: the finish (_afinish / _finish) is complete. _done: made by
        # the first task that waits for it (an event per source would cost
        # memory that thousands of idle sources pay for nothing).
        self._ended = False
        self._done: anyio.Event | None = None

    # --- live state -----------------------------------------------------------------

    @property
    def url(self) -> str:
        return str(self._url)

    @property
    def ready_state(self) -> ReadyState:
        return self._ready_state

    @property
    def is_connected(self) -> bool:
        return self._ready_state is ReadyState.OPEN

    @property
    def last_event(self) -> ServerSentEvent | None:
        """The latest event delivered."""
        return self._last_event

    @property
    def data(self) -> Any:
        """The latest event's data, JSON-decoded when it is JSON, else the str."""
        event = self._last_event
        if event is None:
            return None
        if self._data is _UNSET:  # decoded on first read, not per event
            try:
                self._data = json.loads(event.data)
            except (ValueError, RecursionError):  # not JSON, or nested beyond Python's limit
                self._data = event.data
        return self._data

    @property
    def error(self) -> EventSourceError | None:
        """The latest error; cleared when a connection opens."""
        return self._error

    @property
    def last_event_id(self) -> str:
        """The last event ID as delivered: what a reconnect sends."""
        return self._delivered_id if self._queue else self._parser.last_event_id

    @property
    def retry(self) -> float:
        """The current reconnection time, in seconds."""
        return self._policy.retry

    @property
    def events_received(self) -> int:
        return self._events_received

    def __repr__(self) -> str:
        return (
            f"<EventSource {self.url!r} {self._ready_state.name} "
            f"events={self._events_received} last_event_id={self.last_event_id!r}>"
        )

    def _repr_html_(self) -> str:
        """A summary table for Jupyter."""
        colour = {"CONNECTING": "#b58900", "OPEN": "#2aa198", "CLOSED": "#93a1a1"}
        state = self._ready_state.name
        rows = [
            ("url", html.escape(self.url)),
            ("state", f'<span style="color:{colour[state]};font-weight:bold">{state}</span>'),
            ("events received", str(self._events_received)),
            ("last event id", html.escape(repr(self.last_event_id))),
        ]
        if self._last_event is not None:
            event = self._last_event
            data = event.data if len(event.data) <= 200 else event.data[:200] + "…"
            rows.append(
                (
                    "last event",
                    f"<code>{html.escape(event.type)}</code> <code>{html.escape(data)}</code>",
                )
            )
        if self._error is not None:
            rows.append(("error", html.escape(f"{type(self._error).__name__}: {self._error}")))
        cell = 'style="text-align:left"'
        body = "".join(
            f"<tr><th {cell}>{name}</th><td {cell}>{value}</td></tr>" for name, value in rows
        )
        return f"<table><caption>EventSource</caption>{body}</table>"

    # --- listeners and control -------------------------------------------------------

    def add_listener(self, type: str, listener: Callback) -> None:
        """Call ``listener(event)`` for every event of this type."""
        self._listeners.setdefault(type, []).append(listener)

    def remove_listener(self, type: str, listener: Callback) -> None:
        """Stop calling a listener added for this type (no error if absent)."""
        listeners = self._listeners.get(type, [])
        if listener in listeners:
            listeners.remove(listener)

    def restart(self) -> None:
        """Drop the current connection and reconnect at once, keeping the last
        event ID (after a token refresh, say). Not an error."""
        if not self._closing:
            self._restart = True
            self._interrupt()

    def close(self) -> None:
        """Close the stream. Never blocks; safe from callbacks, other tasks and
        other threads. In async code, ``await aclose()`` waits for the end."""
        self._closing = True
        self._interrupt()
        if self._busy or self._finished:
            return  # the iterating side sees the flag and finishes
        if self._mode == "async":
            self._ready_state = ReadyState.CLOSED
            self._finish_soon()  # closing a response takes an await: done in the loop
        elif self._mode is None and inspect.iscoroutinefunction(self._on_close):
            self._ready_state = ReadyState.CLOSED  # on_close runs at the first async use
        else:
            self._finish()

    def __del__(self) -> None:
        if getattr(self, "_response", None) is not None and not self._finished:
            warnings.warn(f"unclosed {self!r}", ResourceWarning, stacklevel=2, source=self)

    # --- shared decisions (no I/O) ------------------------------------------------------

    def _use(self, mode: str) -> None:
        if self._mode == mode:
            return
        if self._mode is not None:
            raise RuntimeError(f"this EventSource is already used in {self._mode} mode")
        self._mode = mode
        self._thread = threading.get_ident()
        if self._client is not None:
            wanted = httpx.AsyncClient if mode == "async" else httpx.Client
            if not isinstance(self._client, wanted):
                raise TypeError(
                    f"{mode} use of EventSource needs client=httpx.{wanted.__name__}(), "
                    f"not {type(self._client).__name__}"
                )

    def _queue_comment(self, text: str) -> None:
        # Called by the parser during feed(): the list it is filling holds the
        # events that came before this comment, so appending keeps the order.
        self._parser._out.append(_Comment(text))  # type: ignore[arg-type]

    def _timeout_for(self, client: httpx.Client | httpx.AsyncClient) -> httpx.Timeout:
        # The client's own connect / write / pool timeouts (a client this source
        # made has the `timeout` option's), with the source's read timeout.
        base = client.timeout
        return httpx.Timeout(
            connect=base.connect, read=self._read_timeout, write=base.write, pool=base.pool
        )

    def _new_client_kwargs(self) -> dict[str, Any]:
        timeout = self._timeout if self._timeout is not None else 10.0
        kwargs: dict[str, Any] = {"timeout": timeout, "verify": _default_ssl_context()}
        if self._cookies:
            # In the client's jar, for the URL's host: httpx then keeps them
            # across a same-host redirect and drops them on a cross-origin one.
            # The domain as http.cookiejar sees the host: an IPv6 literal in
            # brackets, and ".local" after a name without a dot ("localhost");
            # any other spelling would never match the request.
            domain = self._url.host
            if ":" in domain:
                domain = f"[{domain}]"
            if "." not in domain:
                domain += ".local"
            jar = httpx.Cookies()
            for name, value in self._cookies.items():
                jar.set(name, value, domain=domain)
            kwargs["cookies"] = jar
        return kwargs

    def _build_request(self, client: httpx.Client | httpx.AsyncClient) -> httpx.Request:
        headers = httpx.Headers({"Accept": "text/event-stream", "Cache-Control": "no-cache"})
        extra = self._headers() if callable(self._headers) else self._headers
        if extra:
            headers.update(extra)
        last_id = self._parser.last_event_id
        if last_id:
            # The parser never lets CR, LF or NUL into an id; checked again here
            # because this is where a header could be injected.
            if any(c in last_id for c in "\r\n\0"):
                raise ValueError("refusing a Last-Event-ID with CR, LF or NUL")
            headers["Last-Event-ID"] = last_id  # httpx encodes it as UTF-8
        params = self._params() if callable(self._params) else self._params
        request = client.build_request(
            self._method,
            self._url,
            headers=headers,
            params=params,
            json=self._json,
            content=self._content,
            timeout=self._timeout_for(client),
        )
        if isinstance(client, httpx.Client):
            # httpcore's trace hook tells which socket a request uses before
            # any response exists, so close() from another thread can shut it.
            request.extensions["trace"] = _StreamTracer(self)
        return request

    def _attempt(self, client: httpx.Client | httpx.AsyncClient) -> httpx.Request:
        """Start a connection attempt: the request to send."""
        self._delay = None
        self._restart = False
        self._ready_state = ReadyState.CONNECTING
        request = self._build_request(client)
        logger.debug("connecting: %s %s", request.method, request.url)
        return request

    def _refused(self, verdict: Verdict) -> bool:
        """Act on a response that does not open the stream: True when it ends
        the source (204, or a fatal error), False when it is to be retried."""
        if verdict.action is Action.CLOSE:
            logger.info("HTTP 204 from %s: closing", self.url)
            self._closing = True
        elif verdict.action is Action.FAIL:
            self._fatal = verdict.error
        else:
            return False
        return True

    def _send_failed(self, exc: httpx.HTTPError) -> EventSourceError | None:
        """Classify a failed request: returns the transient error to retry
        with, or None when the failure is fatal (then self._fatal is set)."""
        fatal: EventSourceError | None = None
        if isinstance(exc, httpx.TooManyRedirects):
            fatal = ResponseError(f"too many redirects: {exc}", status_code=None)
        elif isinstance(exc, httpx.RemoteProtocolError) and "location header" in str(exc):
            # httpx found a redirect's Location unusable: the server's answer
            # is final, and asking again would loop (the message is httpx's).
            fatal = ResponseError(f"redirect with an unusable Location: {exc}", status_code=None)
        if fatal is not None:
            fatal.__cause__ = exc
            self._fatal = fatal
            return None
        if isinstance(exc, httpx.ReadTimeout):  # connected, but no response head in time
            error: EventSourceError = ReadTimeoutError(f"no response for {self._read_timeout} s")
        else:
            error = ConnectionLostError(f"cannot connect: {exc!r}")
        error.__cause__ = exc
        return error

    def _opened(self, response: httpx.Response) -> None:
        self._response = response
        self._delivered = False
        self._ready_state = ReadyState.OPEN
        self._error = None
        logger.info("open: %s (HTTP %d)", self.url, response.status_code)

    def _read_failure(self, exc: BaseException) -> tuple[EventSourceError, bool]:
        """The error a failed read means, and whether the server ended the body."""
        if isinstance(exc, (StopIteration, StopAsyncIteration)):
            return ConnectionLostError("the server ended the stream"), True
        if isinstance(exc, httpx.RequestError) and self._response is not None:
            try:
                exc.request  # noqa: B018 (set by httpx's iterators, not by the stream's)
            except RuntimeError:
                exc.request = self._response.request
        error: EventSourceError
        if isinstance(exc, httpx.TimeoutException):
            error = ReadTimeoutError(f"no data for {self._read_timeout} s")
        else:
            error = ConnectionLostError(f"connection lost: {exc!r}")
        error.__cause__ = exc
        return error, False

    def _take_chunk(self, chunk: bytes) -> None:
        """Parse a chunk into the queue."""
        try:
            events = self._parser.feed(chunk)
        except EventTooLargeError as exc:
            self._queue.extend(exc.events)
            self._fatal = exc
            return
        if self._parser.retry is not None:
            self._policy.set_stream_retry(self._parser.retry)
        if events:
            self._queue.extend(events)
            if not self._delivered and (
                self._on_comment is None or not all(isinstance(e, _Comment) for e in events)
            ):
                self._delivered = True  # a comment alone is not an event

    def _dropped(
        self, error: EventSourceError | None, retry_after: float | None = None, ended: bool = False
    ) -> EventSourceError | None:
        """Decide what follows a connection that ended (the response is closed
        already; `ended`: the server ended the body). Returns the transient
        error to report, if any."""
        if self._parser.retry is not None:
            self._policy.set_stream_retry(self._parser.retry)
        restart, self._restart = self._restart, False
        if self._closing:
            return None
        self._ready_state = ReadyState.CONNECTING
        if restart:
            logger.info("restart: reconnecting to %s", self.url)
            self._delay = 0.0
            return None
        if not self._policy.reconnect:
            if ended:
                logger.info("stream ended: %s (reconnect=False)", self.url)
                self._closing = True
            else:
                self._fatal = error
            return None
        self._error = error
        try:
            self._delay = self._policy.next_delay(
                delivered=self._delivered, retry_after=retry_after
            )
        except RetriesExhaustedError as exc:
            exc.__cause__ = error
            self._fatal = exc
            return error
        last_id = self._parser.last_event_id
        logger.info(
            "connection lost (%s); reconnecting in %.3g s%s",
            error,
            self._delay,
            f" with Last-Event-ID {last_id!r}" if last_id else "",
        )
        return error

    def _handlers(self, event: ServerSentEvent) -> list[Callback]:
        listeners = self._listeners.get(event.type) if self._listeners else None
        if self._on_message is None:
            return listeners or _NO_HANDLERS
        return [self._on_message, *listeners] if listeners else [self._on_message]

    def _record(self, event: ServerSentEvent) -> None:
        self._last_event = event
        self._data = _UNSET
        self._delivered_id = event.id
        self._events_received += 1

    def _callback_failed(self, callback: Callback, exc: Exception) -> EventSourceError | None:
        """Log a callback's exception; return what on_error should receive."""
        if callback is self._on_error:
            logger.exception("on_error callback raised", exc_info=exc)
            return None
        logger.warning("%r raised %r; the stream goes on", callback, exc)
        error = EventSourceError(f"callback {getattr(callback, '__name__', callback)!r} raised")
        error.__cause__ = exc
        return error

    def _fatal_error(self) -> EventSourceError:
        error = self._fatal
        assert error is not None
        self._fatal = None
        self._error = error
        logger.error("stream failed: %s: %s", self.url, error)
        return error

    def _interrupt(self) -> None:
        """Wake the driving side out of a wait or a read (close / restart)."""
        if self._wake is not None:
            self._wake.set()
        if self._mode == "async":
            self._in_loop(self._cancel_wait)
        elif self._mode == "sync" and self._busy and threading.get_ident() != self._thread:
            self._shutdown_socket()

    def _in_loop(self, function: Callable[[], None]) -> None:
        """Call function in the source's event loop: now when called from its
        thread, else soon (safe from any thread)."""
        if threading.get_ident() == self._thread:
            function()
        elif self._call_soon is not None:
            try:
                self._call_soon(function)
            except RuntimeError:  # the event loop is gone
                pass

    def _finish_soon(self) -> None:
        """Run _afinish in the source's event loop, from any thread."""
        self._in_loop(self._start_finish)

    def _start_finish(self) -> None:
        # In the loop's thread. The source holds the task: a task nothing
        # refers to may be collected before it is done.
        self._closer = _spawn(self._afinish_quietly)

    def _cancel_wait(self) -> None:
        if self._scope is not None:
            self._scope.cancel()
        if self._socket is not None:
            _shutdown(self._socket)  # a read without a scope may be waiting: end it

    def _shutdown_socket(self) -> None:
        # Another thread is blocked reading: shutting the socket down makes its
        # read return at once, and that thread closes the response itself.
        response = self._response
        stream = response.extensions.get("network_stream") if response is not None else None
        stream = stream or self._stream  # no response yet: the socket being used
        sock = stream.get_extra_info("socket") if stream is not None else None
        if isinstance(sock, socket.socket):
            _shutdown(sock)

    # --- async ------------------------------------------------------------------------

    async def __aenter__(self) -> EventSource:
        self._use_async()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __aiter__(self) -> EventSource:
        return self

    async def __anext__(self) -> ServerSentEvent:
        if self._mode != "async":
            self._use_async()
        if self._busy:
            raise RuntimeError("this EventSource is already being iterated")
        self._busy = True
        self._task = self._current_task()
        try:
            while True:
                if self._closing:
                    await self._afinish()
                    raise StopAsyncIteration
                if self._queue:
                    event = self._queue.popleft()
                    if isinstance(event, _Comment):
                        await self._ainvoke(self._on_comment, str(event))
                        continue
                    assert isinstance(event, ServerSentEvent)
                    self._record(event)
                    if self._on_message is not None or self._listeners:
                        for handler in self._handlers(event):
                            await self._ainvoke(handler, event)
                    return event
                if self._fatal is not None:
                    await self._afinish(self._fatal_error())
                elif self._response is None:
                    await self._aconnect()
                elif self._restart:
                    await self._adrop(None)
                elif self._socket is not None:
                    # A cancel scope per read would cost more than httpx's read
                    # and the parsing together. Without one, close() and
                    # restart() shut the socket down, which ends a waiting read,
                    # and httpx enforces the read timeout (the request has it).
                    try:
                        chunk = await self._chunks.__anext__()
                    except (StopAsyncIteration, httpx.HTTPError) as exc:
                        await self._aread_failed(exc)
                        continue
                    self._take_chunk(chunk)
                    if self._fatal is not None:
                        await self._aclose_response()
                else:
                    await self._aread()
        finally:
            self._busy = False

    async def arun(self) -> None:
        """Deliver events to the callbacks until the source closes; raise the
        fatal error, if one ends it."""
        async with self:
            async for _ in self:
                pass

    async def acollect(
        self,
        n: int | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 (mirrors collect(); a cap, not a wait)
    ) -> list[ServerSentEvent]:
        """Collect events until ``n`` arrived, ``timeout`` seconds passed or the
        stream ended, then close the source and return them (for notebooks
        and quick scripts). A fatal error is raised as from the iterator."""
        events: list[ServerSentEvent] = []
        async with self:
            with anyio.move_on_after(math.inf if timeout is None else timeout):
                async for event in self:
                    events.append(event)
                    if n is not None and len(events) >= n:
                        break
        return events

    async def aclose(self) -> None:
        """Close the stream and wait until its connection is closed."""
        self._use_async()
        self._closing = True
        if self._busy:
            self._interrupt()
            if self._task is self._current_task():
                return  # called by a callback: the loop finishes when it returns
            await self._wait_ended()
        else:
            await self._afinish()

    def _use_async(self) -> None:
        if self._mode != "async":
            self._use("async")
            self._call_soon = _loop_call_soon()
            self._current_task = _current_task_function()

    def _async_client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(**self._new_client_kwargs())
        assert isinstance(self._client, httpx.AsyncClient)
        return self._client

    async def _await_cancellable(self, awaitable: Awaitable[T], within: float | None) -> T | None:
        """Await, unless close() / restart() or the timeout interrupt it
        (then None)."""
        deadline = math.inf if within is None else anyio.current_time() + within
        result: T | None = None
        try:
            with anyio.CancelScope(deadline=deadline) as scope:
                self._scope = scope
                if self._closing or self._restart:
                    scope.cancel()
                result = await awaitable
        finally:
            self._scope = None
        return result

    async def _aconnect(self) -> None:
        client = self._async_client()
        if self._delay:
            await self._await_cancellable(anyio.sleep_forever(), self._delay)
            if self._closing:
                return
        request = self._attempt(client)
        try:
            response = await self._await_cancellable(
                client.send(request, stream=True, follow_redirects=True, **self._auth_kwargs),
                None,
            )
        except httpx.HTTPError as exc:
            error = self._send_failed(exc)
            if error is not None:
                await self._adrop(error)
            return
        if response is None:
            return  # interrupted by close() or restart()
        verdict = self._policy.judge(response.status_code, response.headers, response)
        if verdict.action is Action.OPEN:
            self._opened(response)
            self._socket = _own_socket(response)
            self._chunks = _body(response) if _identity(response) else response.aiter_bytes()
            await self._ainvoke(self._on_open)
            return
        with anyio.CancelScope(shield=True):
            await response.aclose()
        if not self._refused(verdict):
            await self._adrop(verdict.error, verdict.retry_after)

    async def _aread(self) -> None:
        """Read a chunk within a cancel scope (see __anext__ for the other way)."""
        try:
            chunk = await self._await_cancellable(self._chunks.__anext__(), self._read_timeout)
        except (StopAsyncIteration, httpx.HTTPError) as exc:
            await self._aread_failed(exc)
            return
        if chunk is None:  # interrupted, or the timeout passed
            if not (self._closing or self._restart):
                await self._adrop(ReadTimeoutError(f"no data for {self._read_timeout} s"))
            return
        self._take_chunk(chunk)
        if self._fatal is not None:
            await self._aclose_response()

    async def _aread_failed(self, exc: BaseException) -> None:
        if self._closing or self._restart:
            return  # the loop acts on the flag
        error, ended = self._read_failure(exc)
        await self._adrop(error, ended=ended)

    async def _adrop(
        self, error: EventSourceError | None, retry_after: float | None = None, ended: bool = False
    ) -> None:
        await self._aclose_response()
        report = self._dropped(error, retry_after, ended)
        if report is not None:
            await self._ainvoke(self._on_error, report)

    async def _aclose_response(self) -> None:
        response, self._response = self._response, None
        chunks, self._chunks = self._chunks, None
        self._socket = None
        if response is None:
            return
        # Shielded, so cancellation cannot leave the connection open; with a
        # deadline, so a transport that ignores the close cannot hang us.
        with anyio.CancelScope(shield=True, deadline=anyio.current_time() + _CLOSE_TIMEOUT):
            try:
                await response.aclose()
            except Exception as exc:  # closing a broken connection may fail too
                logger.debug("error while closing the response: %r", exc)
            if chunks is not None:
                with anyio.move_on_after(_CLOSE_TIMEOUT / 5):
                    await _finish_chunks(chunks)
        self._parser.close()

    async def _wait_ended(self) -> None:
        if not self._ended:
            if self._done is None:
                self._done = anyio.Event()
            await self._done.wait()

    async def _afinish(self, error: EventSourceError | None = None) -> None:
        if self._finished:
            await self._wait_ended()  # another task may be finishing: wait for the end
            if error is not None:
                raise error
            return
        self._finished = self._closing = True
        self._ready_state = ReadyState.CLOSED
        try:
            with anyio.CancelScope(shield=True):
                await self._aclose_response()
                if self._own_client and self._client is not None:
                    await self._client.aclose()  # type: ignore[union-attr]
                if error is not None:
                    await self._ainvoke(self._on_error, error)
                logger.info("closed: %s", self.url)
                await self._ainvoke(self._on_close)
        finally:  # whatever happened, nobody may wait for this end forever
            self._ended = True
            if self._done is not None:
                self._done.set()
        if error is not None:
            raise error

    async def _afinish_quietly(self) -> None:
        # Runs as a task of its own (a trio system task, where an exception
        # would end the whole run): log instead of raising.
        try:
            await self._afinish()
        except Exception:
            logger.exception("error while closing %s", self.url)

    async def _ainvoke(self, callback: Callback | None, *args: Any) -> None:
        if callback is None:
            return
        try:
            result = callback(*args)
            if inspect.isawaitable(result):
                await result
        except Exception as exc:
            report = self._callback_failed(callback, exc)
            if report is not None:
                await self._ainvoke(self._on_error, report)

    # --- sync (mirrors the async half) ---------------------------------------------------

    def __enter__(self) -> EventSource:
        self._use("sync")
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __iter__(self) -> EventSource:
        return self

    def __next__(self) -> ServerSentEvent:
        self._use("sync")
        if self._busy:
            raise RuntimeError("this EventSource is already being iterated")
        self._busy = True
        try:
            while True:
                if self._closing:
                    self._finish()
                    raise StopIteration
                if self._queue:
                    event = self._queue.popleft()
                    if isinstance(event, _Comment):
                        self._invoke(self._on_comment, str(event))
                        continue
                    assert isinstance(event, ServerSentEvent)
                    self._record(event)
                    if self._on_message is not None or self._listeners:
                        for handler in self._handlers(event):
                            self._invoke(handler, event)
                    return event
                if self._fatal is not None:
                    self._finish(self._fatal_error())
                elif self._response is None:
                    self._connect()
                elif self._restart:
                    self._drop(None)
                else:
                    self._read()
        finally:
            self._busy = False

    def run(self) -> None:
        """Deliver events to the callbacks until the source closes; raise the
        fatal error, if one ends it."""
        with self:
            for _ in self:
                pass

    def collect(self, n: int | None = None, timeout: float | None = None) -> list[ServerSentEvent]:
        """Collect events until ``n`` arrived, ``timeout`` seconds passed or the
        stream ended, then close the source and return them (for notebooks
        and quick scripts). A fatal error is raised as from the iterator."""
        events: list[ServerSentEvent] = []
        timer = threading.Timer(timeout, self.close) if timeout is not None else None
        with self:
            if timer is not None:
                timer.daemon = True
                timer.start()
            try:
                for event in self:
                    events.append(event)
                    if n is not None and len(events) >= n:
                        break
            finally:
                if timer is not None:
                    timer.cancel()
        return events

    def _sync_client(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(**self._new_client_kwargs())
        assert isinstance(self._client, httpx.Client)
        return self._client

    def _connect(self) -> None:
        client = self._sync_client()
        if self._delay:
            if self._wake is None:
                self._wake = threading.Event()
            self._wake.clear()
            if not (self._closing or self._restart):
                self._wake.wait(self._delay)
            if self._closing:
                return
        self._stream = None
        request = self._attempt(client)
        try:
            response = client.send(request, stream=True, follow_redirects=True, **self._auth_kwargs)
        except httpx.HTTPError as exc:
            error = self._send_failed(exc)
            if error is not None:
                self._drop(error)
            return
        verdict = self._policy.judge(response.status_code, response.headers, response)
        if verdict.action is Action.OPEN:
            self._opened(response)
            self._chunks = _sync_body(response) if _identity(response) else response.iter_bytes()
            self._invoke(self._on_open)
            return
        response.close()
        if not self._refused(verdict):
            self._drop(verdict.error, verdict.retry_after)

    def _read(self) -> None:
        try:
            chunk = next(self._chunks)
        except (StopIteration, httpx.HTTPError) as exc:
            if not (self._closing or self._restart):  # else the loop acts on the flag
                error, ended = self._read_failure(exc)
                self._drop(error, ended=ended)
            return
        self._take_chunk(chunk)
        if self._fatal is not None:
            self._close_response()

    def _drop(
        self, error: EventSourceError | None, retry_after: float | None = None, ended: bool = False
    ) -> None:
        self._close_response()
        report = self._dropped(error, retry_after, ended)
        if report is not None:
            self._invoke(self._on_error, report)

    def _close_response(self) -> None:
        response, self._response = self._response, None
        chunks, self._chunks = self._chunks, None
        if response is None:
            return
        try:
            if chunks is not None:
                chunks.close()
            response.close()
        except Exception as exc:  # closing a broken connection may fail too
            logger.debug("error while closing the response: %r", exc)
        self._parser.close()

    def _finish(self, error: EventSourceError | None = None) -> None:
        if self._finished:
            if error is not None:
                raise error
            return
        self._finished = self._closing = True
        self._ready_state = ReadyState.CLOSED
        self._close_response()
        if self._own_client and self._client is not None:
            self._client.close()  # type: ignore[union-attr]
        if error is not None:
            self._invoke(self._on_error, error)
        logger.info("closed: %s", self.url)
        self._invoke(self._on_close)
        self._ended = True
        if error is not None:
            raise error

    def _invoke(self, callback: Callback | None, *args: Any) -> None:
        if callback is None:
            return
        try:
            result = callback(*args)
            if inspect.isawaitable(result):
                close = getattr(result, "close", None)
                if close is not None:
                    close()  # never awaited: close it so no warning follows
                raise TypeError("a coroutine callback needs the async API (async for / arun)")
        except Exception as exc:
            report = self._callback_failed(callback, exc)
            if report is not None:
                self._invoke(self._on_error, report)


async def _finish_chunks(chunks: Any) -> None:
    """End httpx's byte iterator after its response was closed.

    httpx reads through a chain of async generators; closing only the outer
    one would leave the inner ones suspended, and trio warns when those are
    collected. With the response closed, resuming the chain makes every
    generator in it finish (with an error, or at once for a finished body).
    """
    for _ in range(1000):  # a bound, for a mocked body that ignores the close
        try:
            await chunks.__anext__()
        except (StopAsyncIteration, Exception):
            return


class _Socket(Protocol):
    def fileno(self) -> int: ...


def _own_socket(response: httpx.Response) -> _Socket | None:
    """The socket under an HTTP/1.1 response from httpx's own transport (one
    response per connection: shutting it down touches nothing else): a
    socket.socket, asyncio's or uvloop's wrapper of one, trio's socket."""
    if response.http_version != "HTTP/1.1":
        return None
    stream = response.extensions.get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None
    return sock if callable(getattr(sock, "fileno", None)) else None


def _shutdown(sock: _Socket) -> None:
    """Shut a socket down for reading and writing, by its descriptor: event
    loops wrap their sockets, and uvloop's wrapper refuses shutdown()."""
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


def _body(response: httpx.Response) -> AsyncIterator[bytes]:
    """The body's byte chunks straight from the transport's stream: a layer
    and a copy per chunk fewer than aiter_raw(), which only counts bytes."""
    stream = response.stream
    if not isinstance(stream, httpx.AsyncByteStream) or response.is_stream_consumed:
        return response.aiter_bytes()  # let httpx say what is wrong
    response.is_stream_consumed = True
    return stream.__aiter__()


def _sync_body(response: httpx.Response) -> Iterator[bytes]:
    """_body() for a sync response."""
    stream = response.stream
    if not isinstance(stream, httpx.SyncByteStream) or response.is_stream_consumed:
        return response.iter_bytes()
    response.is_stream_consumed = True
    return stream.__iter__()


def _identity(response: httpx.Response) -> bool:
    """No content coding: the raw body is the stream (httpx's decoding layer
    is skipped, it only copies)."""
    coding = response.headers.get("content-encoding")
    return coding is None or coding.strip().lower() in ("", "identity")


class _StreamTracer:
    """httpcore trace hook that records the request's network stream on the
    source. It holds the source weakly: requests are kept by some code (mocks,
    logs), and must not keep an unclosed source from being collected."""

    __slots__ = ("_source",)
    _EVENTS = (".connect_tcp.complete", ".connect_unix_socket.complete", ".start_tls.complete")

    def __init__(self, source: EventSource) -> None:
        self._source = weakref.ref(source)

    def __call__(self, name: str, info: Mapping[str, Any]) -> None:
        source = self._source()
        if source is not None and name.endswith(self._EVENTS):
            source._stream = info.get("return_value")


_ssl_context: ssl.SSLContext | None = None
_ssl_lock = threading.Lock()


def _default_ssl_context() -> ssl.SSLContext:
    """httpx's default TLS context (verification on), made once: building one
    loads the CA bundle, which takes longer than opening a stream, and every
    source without a client of its own makes a client."""
    global _ssl_context
    with _ssl_lock:
        if _ssl_context is None:
            _ssl_context = httpx.create_ssl_context()
        return _ssl_context


def _no_task() -> object:
    return None


def _current_task_function() -> Callable[[], object]:
    """The running backend's own "current task" (anyio's builds a TaskInfo
    object on each call, too slow for once per event)."""
    try:
        import asyncio

        asyncio.get_running_loop()
        return asyncio.current_task
    except RuntimeError:
        pass
    import trio

    return trio.lowlevel.current_task


def _spawn(function: Callable[[], Coroutine[Any, Any, None]]) -> object:
    """Start a coroutine function as a task of the event loop running in this
    thread (asyncio or trio); return the task, or None outside a loop."""
    try:
        import asyncio

        loop = asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        return loop.create_task(function())
    try:
        import trio

        trio.lowlevel.current_trio_token()
    except (ImportError, RuntimeError):
        return None
    trio.lowlevel.spawn_system_task(function)
    return None
