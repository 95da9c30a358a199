"""ASGIStreamTransport.

An httpx (and httpx2) transport that runs an ASGI app in-process and streams
its response, so endless SSE endpoints can be tested without a server.

httpx's own ``ASGITransport`` runs the app to completion and buffers the body,
which hangs on a stream that never ends. This one returns the response as soon
as the app sends ``http.response.start``, hands every ``http.response.body``
chunk to the reader as it is sent, and tells the app ``http.disconnect`` when
the reader closes the response (or the transport / client is closed).

Where the app task lives
------------------------
The response body outlives ``handle_async_request``, so the app cannot run in a
task group opened there, and a task group entered lazily (in the request, or in
the body's first read) and exited in an ``aclose()`` is not correct either: the
caller sends and reads inside cancel scopes of its own (EventSource wraps every
send and every read in a fresh CancelScope; httpx reads through a chain of
async generators) and may close from another scope or task, so such a task
group would be exited out of order: a RuntimeError on both backends (checked:
"Attempted to exit a cancel scope that isn't the current tasks's current
cancel scope" on asyncio, "Cancel scope stack corrupted" on trio). So:

* ``async with transport`` (which ``async with httpx.AsyncClient(transport=...)``
  does for you) opens a task group in ``__aenter__`` and closes it in
  ``__aexit__``, properly nested in the caller's task: app tasks live there.
* Without it (``EventSource(url, client=httpx.AsyncClient(transport=...))``),
  there is no scope that outlives the response, so each app runs in a native
  task of the running backend: ``loop.create_task`` on asyncio, a trio system
  task on trio.

Either way the transport, not the host, bounds the app's life: each app runs in
a CancelScope owned by its response. Closing the response (or the transport)
delivers ``http.disconnect``, gives the app ``disconnect_timeout`` seconds to
return by itself, then cancels that scope and waits, shielded, until the app
task has finished. The app's exceptions never reach the host: they are raised
from the request (before the response starts) or from the body read (after).

Both stacks
-----------
One transport serves httpx's clients and httpx2's: it answers each request in
the stack of the request (``stack_of``), with that stack's ``Response``, a body
that is that stack's ``AsyncByteStream`` (httpx and httpx2 each check it), and
that stack's errors.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import math
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from types import TracebackType
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel
import httpx

from .._stack import HTTPX, Request, Stack, stack_of

__all__ = ["ASGIStreamTransport"]

logger = logging.getLogger("eventsource.testing")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_DEFAULT_PORTS = {"http": 80, "https": 443}
_BODY_BUFFER = 16  # chunks sent but not yet read before the app's send() waits


class ASGIStreamTransport(httpx.AsyncBaseTransport):
    """Run an ASGI app in-process and stream its responses, endless ones too.

    ``httpx.AsyncClient(transport=ASGIStreamTransport(app))``, or
    ``httpx2.AsyncClient(transport=ASGIStreamTransport(app))``: the same
    transport answers each request in its client's stack (an
    ``httpx2.Response``, httpx2's errors, for an httpx2 client). The app sees
    ``http.disconnect`` when the response is closed; an app that has not
    returned ``disconnect_timeout`` seconds later is cancelled. App exceptions
    raised before ``http.response.start`` are raised from the request; later
    ones end the body with the stack's ``ReadError``. The request body is read
    whole before the app starts. Use ``async with`` (on the transport or its
    client) to keep app tasks in a task group of the caller's.

    Args:
        app: The ASGI application.
        root_path: The scope's ``root_path``.
        client: The scope's ``client`` (host, port).
        disconnect_timeout: Seconds an app may take to return after
            ``http.disconnect`` before it is cancelled (default 1).

    Raises:
        ValueError: A negative ``disconnect_timeout``.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        root_path: str = "",
        client: tuple[str, int] = ("127.0.0.1", 123),
        disconnect_timeout: float = 1.0,
    ) -> None:
        if disconnect_timeout < 0:
            raise ValueError("disconnect_timeout must not be negative")
        self.app = app
        self.root_path = root_path
        self.client = client
        self.disconnect_timeout = disconnect_timeout
        self._task_group: anyio.abc.TaskGroup | None = None
        self._exchanges: set[_Exchange] = set()

    async def __aenter__(self) -> ASGIStreamTransport:
        if self._task_group is not None:
            raise RuntimeError("this ASGIStreamTransport is already entered")
        task_group = anyio.create_task_group()
        await task_group.__aenter__()
        self._task_group = task_group
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        task_group, self._task_group = self._task_group, None
        try:
            await self.aclose()
        finally:
            if task_group is not None:
                await task_group.__aexit__(exc_type, exc_value, traceback)

    async def aclose(self) -> None:
        """Disconnect every open response and wait until its app has finished."""
        exchanges = list(self._exchanges)
        for exchange in exchanges:  # all apps get their grace period at once
            exchange.disconnect()
        for exchange in exchanges:
            await exchange.aclose()

    async def handle_async_request(self, request: Request) -> Any:
        """Start the app on this request; return when it starts its response.

        Args:
            request: An httpx or httpx2 request.

        Returns:
            A response of the request's stack, its body streaming.

        Raises:
            TypeError: The request body is not an async stream.
            ReadTimeout: The stack's, when the app starts no response within
                the request's read timeout.
            Exception: What the app raised before it started its response.
            RuntimeError: The app returned without starting a response.
        """
        stack = stack_of(request) or HTTPX
        if not isinstance(request.stream, stack.http.AsyncByteStream):
            raise TypeError("ASGIStreamTransport needs an async request body")
        body = [chunk async for chunk in request.stream]
        url = request.url
        scope: Scope = {
            "type": "http",
            # No spec_version: 2.0, as httpx's ASGITransport. Apps then listen
            # for http.disconnect (Starlette does), and send() after a
            # disconnect is a no-op rather than an OSError (2.4).
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": request.method,
            "scheme": url.scheme,
            "path": url.path,
            "raw_path": url.raw_path.split(b"?")[0],
            "query_string": url.query,
            "root_path": self.root_path,
            "headers": [(key.lower(), value) for key, value in request.headers.raw],
            "client": self.client,
            "server": (url.host, url.port or _DEFAULT_PORTS.get(url.scheme, 80)),
        }
        timeouts = request.extensions.get("timeout") or {}
        read_timeout: float | None = timeouts.get("read")
        exchange = _Exchange(
            self, scope, body, stack, head=request.method == "HEAD", read_timeout=read_timeout
        )
        self._exchanges.add(exchange)
        self._spawn(exchange)
        try:
            with anyio.move_on_after(read_timeout) as waiting:
                await exchange.started.wait()
        except BaseException:  # cancelled while waiting: the app must not outlive us
            await exchange.aclose()
            raise
        if waiting.cancelled_caught:
            await exchange.aclose()
            raise stack.http.ReadTimeout(
                f"the ASGI app sent no response start within {read_timeout} s", request=request
            )
        if exchange.status is None:
            await exchange.aclose()  # the app has returned: this is immediate
            if exchange.error is not None:
                raise exchange.error
            raise RuntimeError("the ASGI app returned without starting a response")
        return stack.http.Response(
            exchange.status,
            headers=exchange.headers,
            stream=_body_class(stack)(exchange),
            extensions={"http_version": b"HTTP/1.1"},
        )

    def _spawn(self, exchange: _Exchange) -> None:
        # See the module docstring for why the app task lives where it does.
        if self._task_group is not None:
            self._task_group.start_soon(exchange.run, name=f"ASGI app {exchange.target}")
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not asyncio: anyio's other backend is trio
            import trio

            trio.lowlevel.spawn_system_task(
                exchange.run,
                name=f"ASGI app {exchange.target}",
                context=contextvars.copy_context(),
            )
        else:
            # The loop keeps only a weak reference to its tasks: keep one here.
            exchange.task = loop.create_task(exchange.run(), name=f"ASGI app {exchange.target}")


class _Body:
    """An exchange's response body, as its stack's ``AsyncByteStream`` (``_body_class``).

    Iterating it reads the exchange.
    """

    def __init__(self, exchange: _Exchange) -> None:
        self.exchange = exchange

    def __aiter__(self) -> _Exchange:
        return self.exchange

    async def aclose(self) -> None:
        await self.exchange.aclose()


_bodies: dict[str, type[_Body]] = {}


def _body_class(stack: Stack) -> type[_Body]:
    """``_Body`` as the stack's ``AsyncByteStream``, made once."""
    kind = _bodies.get(stack.name)
    if kind is None:
        bases = (_Body, stack.http.AsyncByteStream)
        kind = _bodies[stack.name] = type("ASGIBody", bases, {"__module__": __name__})
    return kind


class _Exchange:
    """One request: the app's task and ASGI channels, and the response body.

    The body iterator the client reads (an iterator class, so closing is
    deterministic).
    """

    def __init__(
        self,
        transport: ASGIStreamTransport,
        scope: Scope,
        body: list[bytes],
        stack: Stack,
        *,
        head: bool,
        read_timeout: float | None,
    ) -> None:
        self.transport = transport
        self.scope = scope
        self.target = f"{scope['method']} {scope['path']}"
        self.http = stack.http  # the errors the client's stack expects
        self.head = head
        self.read_timeout = read_timeout
        self.task: asyncio.Task[None] | None = None
        self.status: int | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.error: Exception | None = None
        self.started = anyio.Event()  # set by http.response.start, or when the app ends
        self._request_body = deque(body)
        self._request_done = False
        self._complete = False  # the app sent its last body message
        self._disconnected = anyio.Event()
        self._finished = anyio.Event()
        self._scope = anyio.CancelScope()  # the app's; cancelled on close
        self._deadline = math.inf
        self._closed = False
        self._send_body, self._receive_body = anyio.create_memory_object_stream[bytes](_BODY_BUFFER)

    # --- the app's side (runs in the app task) ---------------------------------------

    async def run(self) -> None:
        try:
            with self._scope:
                try:
                    await self.transport.app(self.scope, self._receive, self._send)
                except Exception as exc:
                    self.error = exc
        finally:
            self._send_body.close()
            self.started.set()
            self._finished.set()
        if self.error is not None and (self._complete or self._disconnected.is_set()):
            logger.warning(
                "ASGI app %s raised after its response ended: %r", self.target, self.error
            )

    async def _receive(self) -> Message:
        if not self._request_done and not self._disconnected.is_set():
            chunk = self._request_body.popleft() if self._request_body else b""
            self._request_done = not self._request_body
            return {"type": "http.request", "body": chunk, "more_body": not self._request_done}
        await self._disconnected.wait()
        return {"type": "http.disconnect"}

    async def _send(self, message: Message) -> None:
        # As a server's write to a socket buffer, send() does not yield while
        # the buffer has room: Starlette's StreamingResponse does not close
        # its body iterator when cancelled inside send(), so a cancel point
        # there would leave the app's generator to the garbage collector.
        kind = message["type"]
        if kind == "http.response.start":
            if self.status is not None:
                raise RuntimeError("the ASGI app sent 'http.response.start' twice")
            self.status = int(message["status"])
            self.headers = [(bytes(k), bytes(v)) for k, v in message.get("headers", [])]
            self.started.set()
        elif kind == "http.response.body":
            if self.status is None:
                raise RuntimeError("the ASGI app sent 'http.response.body' before its start")
            if self._complete:
                raise RuntimeError("the ASGI app sent 'http.response.body' after the last one")
            body = bytes(message.get("body", b""))
            if self._disconnected.is_set():
                # A no-op (ASGI spec 2.0), but a cancel point: an app that
                # keeps sending to a gone client can still be cancelled.
                await anyio.lowlevel.checkpoint()
            elif body and not self.head:
                try:
                    try:
                        self._send_body.send_nowait(body)
                    except anyio.WouldBlock:  # backpressure: wait for the reader
                        await self._send_body.send(body)
                except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                    pass  # the client closed the response meanwhile: a no-op
            if not message.get("more_body", False):
                self._complete = True
                self._send_body.close()
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r}")

    # --- the client's side --------------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        try:
            with anyio.fail_after(self.read_timeout):
                return await self._receive_body.receive()
        except TimeoutError:
            raise self.http.ReadTimeout(f"no body data for {self.read_timeout} s") from None
        except anyio.EndOfStream:
            pass
        except anyio.ClosedResourceError:
            raise self.http.ReadError("the response is closed") from None
        if self._complete:
            raise StopAsyncIteration
        if self._closed:
            raise self.http.ReadError("the response is closed")
        if self.error is not None:
            raise self.http.ReadError(f"the ASGI app raised {self.error!r}") from self.error
        raise self.http.RemoteProtocolError(
            "the ASGI app returned before its response was complete"
        )

    def disconnect(self) -> None:
        """Tell the app the client has gone, and start its grace period."""
        if self._closed:
            return
        self._closed = True
        self._deadline = anyio.current_time() + self.transport.disconnect_timeout
        self._disconnected.set()
        # Closing both ends wakes a reader blocked in receive() and an app
        # blocked in send().
        self._receive_body.close()
        self._send_body.close()

    async def aclose(self) -> None:
        """Disconnect, and wait (shielded) until the app task has finished.

        By itself within the grace period, else cancelled.
        """
        self.disconnect()
        with anyio.CancelScope(shield=True):
            with anyio.CancelScope(deadline=self._deadline):
                await self._finished.wait()
            self._scope.cancel()
            await self._finished.wait()
        self.task = None
        self.transport._exchanges.discard(self)  # noqa: SLF001 (its transport's own set)
