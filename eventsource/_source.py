"""EventSource: the public class, for both modes.

It holds the options, the live state and the listeners, and hands the work to
a driver: ``_async.AsyncDriver`` at the first async use, ``_sync.SyncDriver``
at the first sync use. Every decision about the connection is made by the
sans-IO machine (``_machine``) that both drivers run; everything httpx is in
``_httpx``.
"""

from __future__ import annotations

import html
import inspect
import json
import logging
import os
import ssl
import warnings
from collections.abc import Callable, Collection, Mapping
from typing import Any

from typing_extensions import Self

from . import _collect
from ._async import AsyncDriver
from ._callbacks import Callbacks, Listener, OnClose, OnComment, OnError, OnMessage, OnOpen
from ._errors import EventIdError, EventSourceError
from ._event import ServerSentEvent
from ._machine import FINISH, Machine, ReadyState
from ._parser import DEFAULT_MAX_EVENT_SIZE
from ._policy import DEFAULT_MIN_RETRY_DELAY, DEFAULT_RETRY_STATUSES, ConnectionPolicy
from ._request import (
    HeadersArg,
    ParamsArg,
    RequestSpec,
    Resume,
    check_url,
    last_event_id_header,
)
from ._stack import (
    URL,
    AsyncClient,
    Auth,
    Client,
    Response,
    StackName,
    Timeout,
    in_stack,
    stack_named,
    stack_of,
)
from ._sync import SyncDriver

__all__ = ["EventSource", "ReadyState"]

logger = logging.getLogger("eventsource")

_UNSET: Any = object()
_LONGEST_READ = 365 * 24 * 3600.0  # seconds: a read timeout longer is none


class _Default(float):
    """A default that is known for one when given back.

    ``help()`` shows the number; ``read_timeout`` not given lets a
    ``Timeout``'s ``read`` set it.
    """

    __slots__ = ()


DEFAULT_READ_TIMEOUT = _Default(60.0)
_Driver = AsyncDriver | SyncDriver


class EventSource:
    """A Server-Sent Events stream that reconnects, like a browser's EventSource.

    Use it async (``async with`` / ``async for`` / ``await arun()``, on asyncio
    or trio) or sync (``with`` / ``for`` / ``run()``); not both with one
    instance. Options are in seconds; the guide "Reconnecting and errors" has the
    full contract.
    The constructor describes the stream; nothing is sent until the first use.

    ``client=`` may be an httpx or an httpx2 client; without one, the source
    makes its own on ``http=`` ("httpx", or "httpx2": the ``httpx2``
    extra).

    Args:
        url: The stream's absolute ``http://`` or ``https://`` URL (relative
            to a ``client=`` with a ``base_url``).
        method: The request method (default ``"GET"``). A request other
            than GET is sent again only when it certainly did not run (no
            connection, or a 408, 429 or 503 answer); once a stream head
            arrived, see ``resume``.
        headers: Extra request headers (a mapping or pairs), or a callable
            returning them before every attempt (a fresh token).
        params: Query parameters, or a callable returning them before every
            attempt.
        json: A JSON request body (POST streams, as LLM APIs use).
        content: A raw request body (bytes or str); not with ``json``.
        cookies: Cookies for the source's own client (with ``client=``, set
            them on your client).
        auth: httpx's (or httpx2's) ``auth=``: a ``(user, password)`` tuple,
            an ``Auth`` whose flow may refresh a token on a 401, or a
            callable; run on every attempt and same-origin redirect hop.
        client: Your own ``httpx`` / ``httpx2`` ``Client`` (sync use) or
            ``AsyncClient`` (async use); the source never closes it.
            Without one the source makes its own (the fast read).
        http: The stack of the source's own client: ``"httpx"`` (the
            default) or ``"httpx2"`` (the ``httpx2`` extra).
        verify: TLS verification of the source's own client: True (the
            default: the stack's CAs, or ``SSL_CERT_FILE`` / ``SSL_CERT_DIR``),
            a CA bundle's or directory's path, an ``ssl.SSLContext`` (client
            certificates too), or False.
        follow_redirects: Follow redirects (the default, as browsers do,
            up to the client's ``max_redirects``); False makes a 3xx a
            ``ResponseError``. A client of your own's ``follow_redirects``
            is not consulted: the source follows them itself.
        timeout: The source's own client's connect, write and pool
            timeouts (seconds, or a ``Timeout``; default 10). A ``Timeout`` given its
            own ``read`` (``Timeout(10, read=120)``, ``read=None`` for
            none: its four values not all alike) sets the read timeout
            when ``read_timeout`` is not given.
        last_event_id: Resume from this id (sent as ``Last-Event-ID``); ""
            (the default): none.
        retry: The reconnection time in seconds (default 3) until the
            stream's ``retry:`` field sets another.
        reconnect: False: the first end of the stream is final. None (the
            default) or True: reconnect (a request other than GET as ``resume`` says).
        resume: How the stream of a request other than GET is resumed
            once its head arrived, when it gave an event id: ``"get"``
            (a GET to the stream's URL, or where a redirect led, with
            the request's headers without ``Content-*``, plus
            ``Last-Event-ID``, as MCP's Streamable HTTP does; no
            credentials to another origin), ``"resend"`` (the request
            again, as for a GET: only if running it twice is harmless),
            None (never), or a callable given the last event ID that
            returns the URL to GET (relative to the stream's). Default
            ``"get"``; ignored for GET.
        max_retries: Failed attempts in a row retried before
            ``RetriesExhaustedError``; None (the default): no limit.
        min_retry_delay: The backoff floor of consecutive failed
            attempts in seconds (default 1), whatever ``retry:`` says.
        max_retry_delay: The backoff ceiling in seconds (default 30).
        retry_statuses: Statuses retried with backoff (honouring
            ``Retry-After``); ``DEFAULT_RETRY_STATUSES`` by default.
        read_timeout: Seconds without any byte (not even a comment) after
            which the stream counts as dropped and reconnects (default 60,
            or a ``timeout=`` ``Timeout``'s own ``read``); None: no limit.
            It applies on a client of your own too, whatever that client's
            read timeout says.
        max_event_size: The longest line or event, in characters (default
            ``16 * 1024 * 1024``); longer raises ``EventTooLargeError``.
        on_open: Called when a stream opens. Each callback may be a
            coroutine function in async use; an exception it raises is
            logged and reported to ``on_error``, and the stream goes on.
        on_message: Called with every event, whatever its type.
        on_error: Called with every error; ``error.will_retry`` says what
            follows.
        on_close: Called once, when the source is closed.
        on_comment: Called with each comment line's text (heartbeats).

    Raises:
        ValueError: An option that can never work (a URL that is no
            absolute http(s) URL, ``json`` with ``content``, a read
            timeout that is no duration, a negative or NaN delay, a negative
            ``max_retries``, an
            unknown ``resume`` string, a ``last_event_id`` that cannot be
            sent, ``cookies`` or ``verify`` with ``client=``...).
        TypeError: ``client=`` is no httpx or httpx2 client, ``auth=``
            is another stack's, or ``resume`` is of no accepted type.
        ImportError: ``http="httpx2"`` without httpx2 installed.
    """

    # Slots: a service may hold thousands of sources; a __dict__ each costs 1.6 KiB.
    __slots__ = ("__weakref__", "_callbacks", "_client", "_data", "_driver", "_machine", "_spec")

    def __init__(
        self,
        url: str | URL,
        *,
        method: str = "GET",
        headers: HeadersArg = None,
        params: ParamsArg = None,
        json: Any = None,
        content: bytes | str | None = None,
        cookies: Mapping[str, str] | None = None,
        auth: Auth | tuple[str, str] | Callable[..., Any] | None = None,
        client: Client | AsyncClient | None = None,
        http: StackName | None = None,
        verify: bool | str | os.PathLike[str] | ssl.SSLContext = True,
        follow_redirects: bool = True,
        timeout: Timeout | float | None = 10.0,
        last_event_id: str = "",
        retry: float = 3.0,
        reconnect: bool | None = None,
        resume: Resume = "get",
        max_retries: int | None = None,
        min_retry_delay: float = DEFAULT_MIN_RETRY_DELAY,
        max_retry_delay: float = 30.0,
        retry_statuses: Collection[int] = DEFAULT_RETRY_STATUSES,
        read_timeout: float | None = DEFAULT_READ_TIMEOUT,
        max_event_size: int = DEFAULT_MAX_EVENT_SIZE,
        on_open: OnOpen | None = None,
        on_message: OnMessage | None = None,
        on_error: OnError | None = None,
        on_close: OnClose | None = None,
        on_comment: OnComment | None = None,
    ) -> None:
        if json is not None and content is not None:
            raise ValueError("give json or content, not both")
        if isinstance(resume, str) and resume not in ("get", "resend"):
            raise ValueError(f"resume must be 'get', 'resend', None or a callable, not {resume!r}")
        if not (resume is None or isinstance(resume, str) or callable(resume)):
            raise TypeError(f"resume must be 'get', 'resend', None or a callable, not {resume!r}")
        if reconnect is True and method.upper() != "GET" and resume != "resend":
            warnings.warn(
                "reconnect=True no longer sends a request other than GET again once its "
                "stream opened (it may have run): pass resume='resend' for that; the stream "
                "is resumed by GET when it gave an id",
                DeprecationWarning,
                stacklevel=2,
            )
        try:
            last_event_id_header(last_event_id)  # sent stripped; refused if it cannot be
        except EventIdError as exc:
            raise ValueError(f"invalid last_event_id: {exc}") from None
        if read_timeout is DEFAULT_READ_TIMEOUT and client is None:
            # A Timeout whose four values are not all alike was given its read
            # on purpose (Timeout(10, read=120), read=None: none); Timeout(10)
            # sets all four alike and keeps an event stream's 60 s.
            values = [getattr(timeout, name, 0) for name in ("connect", "read", "write", "pool")]
            if any(value != values[1] for value in values):
                read_timeout = values[1]
        if read_timeout is not None and not read_timeout > 0:  # (NaN too)
            raise ValueError("read_timeout must be positive or None")
        if read_timeout is not None and read_timeout > _LONGEST_READ:
            # inf, 1e300: no read timeout, as None says (the OS takes none
            # that long: a socket's timeout overflowed).
            read_timeout = None
        if client is not None and cookies is not None:
            raise ValueError("cookies go to your own client when you pass client=")
        if client is not None and verify is not True:
            raise ValueError("verify goes to your own client when you pass client=")
        if client is not None:
            stack = stack_of(client)
            if stack is None:
                raise TypeError(
                    "client= must be an httpx or httpx2 client (Client or AsyncClient), "
                    f"not {type(client).__name__}"
                )
            if http is not None and stack_named(http) is not stack:
                raise ValueError(f"http={http!r} but client= is {stack.name}'s")
        else:
            stack = stack_named(http or "httpx")
        timeout, auth = in_stack(stack, timeout=timeout, auth=auth)
        has_base = client is not None and bool(str(client.base_url))
        upper = method.upper()
        self._spec = RequestSpec(
            check_url(url, relative_ok=has_base, stack=stack),
            method=method if upper == method else upper,  # "GET": the caller's str, no copy
            headers=headers,
            params=params,
            json=json,
            content=content,
            cookies=cookies,
            auth=auth,
            timeout=timeout,
            read_timeout=read_timeout,
            stack=stack,
            verify=verify,
            follow_redirects=follow_redirects,
            resume=resume if callable(resume) else None,
        )
        policy = ConnectionPolicy(
            retry=retry,
            max_retries=max_retries,
            min_retry_delay=min_retry_delay,
            max_retry_delay=max_retry_delay,
            retry_statuses=retry_statuses,
            reconnect=reconnect,
        )
        self._machine = Machine(
            policy,
            max_event_size=max_event_size,
            last_event_id=last_event_id,
            comments=on_comment is not None,
            method=self._spec.method,
            url=self._spec.url,
            resume="get" if callable(resume) else resume,
        )
        self._callbacks = Callbacks(on_open, on_message, on_error, on_close, on_comment)
        self._client = client
        self._driver: _Driver | None = None
        self._data: Any = _UNSET

    # --- live state -----------------------------------------------------------------

    @property
    def url(self) -> str:
        """The stream's URL, as a str."""
        return str(self._spec.url)

    @property
    def ready_state(self) -> ReadyState:
        """The source's state: CONNECTING, OPEN or CLOSED, as in browsers."""
        return self._machine.ready_state

    @property
    def is_connected(self) -> bool:
        """Whether a stream is open (``ready_state`` is OPEN)."""
        return self._machine.ready_state is ReadyState.OPEN

    @property
    def last_event(self) -> ServerSentEvent | None:
        """The latest event delivered."""
        return self._machine.last_event

    @property
    def data(self) -> Any:
        """The latest event's data: JSON-decoded when it is JSON, else the str.

        None before the first event. A guess, as React's ``useEventSource``
        hooks make it: data ``"null"`` also gives None, and ``"42"`` gives 42.
        Where the type matters, use ``last_event.data`` (always the str) or
        ``last_event.json()``.
        """
        event = self._machine.last_event
        if event is None:
            return None
        cached = self._data
        if cached is _UNSET or cached[0] is not event:  # decoded on first read, not per event
            try:
                value = json.loads(event.data)
            except (ValueError, RecursionError):  # not JSON, or nested beyond Python's limit
                value = event.data
            cached = self._data = (event, value)
        return cached[1]

    @property
    def error(self) -> EventSourceError | None:
        """The latest error; cleared when a connection opens."""
        return self._machine.error

    @property
    def last_event_id(self) -> str:
        """The last event ID as delivered: what a reconnect sends."""
        return self._machine.last_event_id

    @property
    def retry(self) -> float:
        """The current reconnection time, in seconds."""
        return self._machine.policy.retry

    @property
    def events_received(self) -> int:
        """How many events the source delivered so far, over every connection."""
        return self._machine.events_received

    @property
    def response(self) -> Response | None:
        """The open connection's response (status, headers), None when not open."""
        driver = self._driver
        if driver is None or self._machine.ready_state is not ReadyState.OPEN:
            return None
        return driver.response

    def __repr__(self) -> str:
        return (
            f"<EventSource {self.url!r} {self.ready_state.name} "
            f"events={self.events_received} last_event_id={self.last_event_id!r}>"
        )

    def _repr_html_(self) -> str:
        """A summary table for Jupyter."""
        colour = {"CONNECTING": "#b58900", "OPEN": "#2aa198", "CLOSED": "#93a1a1"}
        state = self.ready_state.name
        rows = [
            ("url", html.escape(self.url)),
            ("state", f'<span style="color:{colour[state]};font-weight:bold">{state}</span>'),
            ("events received", str(self.events_received)),
            ("last event id", html.escape(repr(self.last_event_id))),
        ]
        event = self.last_event
        if event is not None:
            data = event.data if len(event.data) <= 200 else event.data[:200] + "…"
            rows.append(
                (
                    "last event",
                    f"<code>{html.escape(event.type)}</code> <code>{html.escape(data)}</code>",
                )
            )
        error = self.error
        if error is not None:
            rows.append(("error", html.escape(f"{type(error).__name__}: {error}")))
        cell = 'style="text-align:left"'
        body = "".join(
            f"<tr><th {cell}>{name}</th><td {cell}>{value}</td></tr>" for name, value in rows
        )
        return f"<table><caption>EventSource</caption>{body}</table>"

    # --- listeners and control -------------------------------------------------------

    def add_listener(self, type: str, listener: Listener) -> None:
        """Call ``listener(event)`` for every event of this type.

        Args:
            type: The event type (the ``event:`` field; ``"message"`` for
                events that name none).
            listener: Called with each such event (after ``on_message``); a
                coroutine function too in async use.
        """
        self._callbacks.add_listener(type, listener)

    def remove_listener(self, type: str, listener: Listener) -> None:
        """Stop calling a listener added for this type (no error if absent).

        Args:
            type: The event type it was added for.
            listener: The listener, as added.
        """
        listeners = self._callbacks.listeners.get(type, [])
        if listener in listeners:
            listeners.remove(listener)

    def restart(self) -> None:
        """Drop the current connection and reconnect at once.

        The last event ID is kept (after a token refresh, say); not an error.
        A request other than GET is resumed by GET if its stream gave an id
        (or sent again with ``resume="resend"``), else the source ends with
        an ``EventSourceError``: it may have run.
        """
        if self._driver is not None:
            self._driver.restart()

    def close(self) -> None:
        """Close the stream: ``ready_state`` is CLOSED when this returns.

        Never blocks; safe from callbacks, other tasks and other threads. In
        async code, ``await aclose()`` also waits until the connection is
        closed.
        """
        driver = self._driver
        if driver is not None:
            driver.close()
            return
        self._machine.close()
        if not inspect.iscoroutinefunction(self._callbacks.on_close):
            # Never used: nothing to close but on_close to call (a coroutine
            # function waits for the first async use). The machine hands
            # FINISH out once, whoever asks (a first iteration racing this).
            if self._machine.next() is FINISH:
                SyncDriver(self._machine, self._spec, self._callbacks, None).finish_unused()

    def __del__(self) -> None:
        driver = getattr(self, "_driver", None)
        if driver is not None and driver.response is not None and not self._machine.closed:
            warnings.warn(f"unclosed {self!r}", ResourceWarning, stacklevel=2, source=self)

    def _use_async(self) -> AsyncDriver:
        driver = self._driver
        if driver is None:
            client = self._client
            http = self._spec.stack.http
            if client is not None and not isinstance(client, http.AsyncClient):
                raise TypeError(
                    f"async use of EventSource needs client={http.__name__}.AsyncClient(), "
                    f"not {type(client).__name__}"
                )
            driver = self._driver = AsyncDriver(self._machine, self._spec, self._callbacks, client)
        elif not isinstance(driver, AsyncDriver):
            raise RuntimeError("this EventSource is already used in sync mode")
        return driver

    def _use_sync(self) -> SyncDriver:
        driver = self._driver
        if driver is None:
            client = self._client
            http = self._spec.stack.http
            if client is not None and not isinstance(client, http.Client):
                raise TypeError(
                    f"sync use of EventSource needs client={http.__name__}.Client(), "
                    f"not {type(client).__name__}"
                )
            driver = self._driver = SyncDriver(self._machine, self._spec, self._callbacks, client)
        elif not isinstance(driver, SyncDriver):
            raise RuntimeError("this EventSource is already used in async mode")
        return driver

    # --- async ------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._use_async()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __aiter__(self) -> EventSource:
        return self

    async def __anext__(self) -> ServerSentEvent:
        driver = self._driver
        if driver.__class__ is not AsyncDriver:
            driver = self._use_async()
        return await driver.next()

    async def arun(self) -> None:
        """Deliver events to the callbacks until the source closes.

        Raises:
            EventSourceError: The fatal error that ended the stream, if one did.
        """
        async with self:
            async for _ in self:
                pass

    async def acollect(
        self,
        n: int | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 (mirrors collect(); a cap, not a wait)
        *,
        until: Callable[[ServerSentEvent], object] | None = None,
    ) -> list[ServerSentEvent]:
        """``collect()`` in async code: the same stops, returns and errors.

        Args:
            n: Stop after this many events (None: no count; 0 returns at once).
            timeout: Stop after this many seconds (None: no limit).
            until: Stop after the first event for which it returns true.

        Returns:
            The events collected; the source is closed.
        """
        return await _collect.acollect(self, self._machine, n, timeout, until)

    async def aclose(self) -> None:
        """Close the stream and wait until its connection is closed."""
        await self._use_async().aclose()

    # --- sync -------------------------------------------------------------------------

    def __enter__(self) -> Self:
        self._use_sync()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __iter__(self) -> EventSource:
        return self

    def __next__(self) -> ServerSentEvent:
        driver = self._driver
        if driver.__class__ is not SyncDriver:
            driver = self._use_sync()
        return driver.next()

    def run(self) -> None:
        """Deliver events to the callbacks until the source closes.

        Raises:
            EventSourceError: The fatal error that ended the stream, if one did.
        """
        with self:
            for _ in self:
                pass

    def collect(
        self,
        n: int | None = None,
        timeout: float | None = None,
        *,
        until: Callable[[ServerSentEvent], object] | None = None,
    ) -> list[ServerSentEvent]:
        """Collect events for a while, then close the source and return them.

        For notebooks and quick scripts: it stops when ``n`` events arrived,
        ``until(event)`` is true (that event included), ``timeout`` seconds
        passed or the stream ended.

        Args:
            n: Stop after this many events (None: no count; 0 returns at once).
            timeout: Stop after this many seconds (None: no limit).
            until: Stop after the first event for which it returns true.

        Returns:
            The events collected; the source is closed.

        Raises:
            EventSourceError: A fatal error, as from the iterator, or the last
                error when no connection opened before the timeout; its
                ``collected`` holds the events collected before it.
            RuntimeError: The source is already closed (make a new source).
            ValueError: ``n`` is negative.
        """
        return _collect.collect(self, self._machine, n, timeout, until)
