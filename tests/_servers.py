"""A third-party HTTP server for the lifecycle tests: hypercorn serving a small
ASGI SSE app, on 127.0.0.1 at a free port, in a thread with its own asyncio
loop, so sync tests and async tests (asyncio and trio) can all use it. Also
``serving()``: a loopback listener whose connections a test serves by hand.

``RawListener``: a raw TCP listener on 127.0.0.1 whose connections a handler
function serves by hand, each in a thread (the servers written byte by byte).

Modes: "h1" (HTTP/1.1 keep-alive, chunked bodies), "h2c" (HTTP/2 cleartext,
prior knowledge) and "h2" (HTTP/2 over TLS, ALPN, a trustme certificate).

The listening socket is bound and listening before the server thread starts,
so a client can connect at once (its connection waits in the backlog until
hypercorn accepts it): no polling, no sleep.

Endpoints (query parameters configure each request):

``/events``   an endless SSE stream. Each event has ``id: <prefix><n>``; n
              starts after the request's Last-Event-ID (when it is
              ``<prefix><int>``), else at 1. Parameters:
              key        groups requests (the counters below are per key)
              prefix     id prefix (default "")
              interval   seconds between events (default 0.02)
              retry      send ``retry: <ms>`` first
              end_after  end the body after this many events
              drop_after abort the connection after this many events (HTTP/1.1
                         only: hypercorn leaves an HTTP/2 stream open)
              hold_after go silent after this many events, until the client
                         leaves or the gate ``key`` is released (with
                         ``hold_once=1``: on the key's first request only)
              burst      send the first N events in one body chunk
              hold_head  the first N requests of the key send no response
                         head until the client leaves or the gate is released
              then       from the key's second request on, answer this status
                         (e.g. 503) instead of a stream
``/json``     a small JSON body; ``hold=<gate>`` sends its first half, then
              waits for the gate before sending the rest
``/redirect`` ``302`` to the ``to`` parameter (the Location is sent verbatim)
``/status``   an empty response with the ``code`` parameter's status

Every request is recorded (path, query, headers decoded as UTF-8, the
client's port, the HTTP version, the time it arrived).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import logging
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import anyio
import anyio.abc
import trustme
from hypercorn.asyncio.run import worker_serve
from hypercorn.config import Config, Sockets
from hypercorn.utils import wrap_app

__all__ = ["HyperServer", "RawListener", "Request", "refused_url", "serving", "shut_down"]

_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 10.0


@dataclass(frozen=True)
class Request:
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names; values decoded as UTF-8
    raw_headers: list[tuple[bytes, bytes]]
    client_port: int
    http_version: str
    time: float  # time.monotonic() when the request arrived

    @property
    def last_event_id(self) -> str | None:
        return self.headers.get("last-event-id")

    @property
    def key(self) -> str:
        return self.query.get("key", "")


class HyperServer:
    """hypercorn on 127.0.0.1, started in a thread; use as a context manager."""

    def __init__(self, mode: str = "h1") -> None:
        if mode not in ("h1", "h2c", "h2"):
            raise ValueError(f"unknown mode {mode!r}")
        self.mode = mode
        self.requests: list[Request] = []
        self._cond = threading.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._gates: dict[str, asyncio.Event] = {}
        self._released: set[str] = set()  # gates released before anyone waited
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.ca: trustme.CA | None = None
        self.port = 0

    # --- the test's side ---------------------------------------------------------------

    @property
    def url(self) -> str:
        scheme = "https" if self.mode == "h2" else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def client_kwargs(self) -> dict[str, Any]:
        """httpx (or httpx2) client arguments that speak this server's protocol."""
        if self.mode == "h1":
            return {}
        if self.mode == "h2c":
            return {"http1": False, "http2": True}  # prior knowledge
        assert self.ca is not None
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        return {"http2": True, "verify": context}

    def client(self, stack: str = "httpx", **kwargs: Any) -> Any:
        """A client of the stack (httpx or httpx2) that speaks this server's protocol."""
        http = importlib.import_module(stack)
        return http.Client(**self.client_kwargs(), **kwargs)

    def async_client(self, stack: str = "httpx", **kwargs: Any) -> Any:
        http = importlib.import_module(stack)
        return http.AsyncClient(**self.client_kwargs(), **kwargs)

    def requests_for(self, key: str) -> list[Request]:
        with self._cond:
            return [r for r in self.requests if r.key == key]

    def wait_requests(self, n: int, key: str | None = None, timeout: float = 5.0) -> list[Request]:
        """Block until n requests (of the key, if given) arrived; fail after timeout."""

        def matching() -> list[Request]:
            return [r for r in self.requests if key is None or r.key == key]

        with self._cond:
            if not self._cond.wait_for(lambda: len(matching()) >= n, timeout):
                raise AssertionError(f"{len(matching())} requests arrived, waited for {n}")
            return matching()

    def release(self, gate: str) -> None:
        """Open a gate (a held head, a held body, a stalled stream); thread-safe."""
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._open_gate, gate)

    def start(self) -> HyperServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)  # clients may connect from now on
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        config = Config()
        config.graceful_timeout = 0.5
        config.keep_alive_timeout = 30
        config.accesslog = None
        config.errorlog = logging.getLogger("tests.hypercorn")
        config.include_date_header = False
        if self.mode == "h2":
            self.ca = trustme.CA()
            cert = self.ca.issue_cert("127.0.0.1", "localhost")
            self._tmp = tempfile.TemporaryDirectory()
            certfile = Path(self._tmp.name, "cert.pem")
            keyfile = Path(self._tmp.name, "key.pem")
            cert.private_key_pem.write_to_path(str(keyfile))
            with certfile.open("wb") as f:
                for blob in cert.cert_chain_pems:
                    f.write(blob.bytes())
            config.certfile = str(certfile)
            config.keyfile = str(keyfile)
            config.alpn_protocols = ["h2", "http/1.1"]
            sockets = Sockets([sock], [], [])
        else:
            sockets = Sockets([], [sock], [])
        self._thread = threading.Thread(
            target=self._run, args=(config, sockets), name=f"hypercorn-{self.mode}", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(_START_TIMEOUT):
            raise RuntimeError("hypercorn did not start")
        if self._error is not None:
            raise RuntimeError("hypercorn failed to start") from self._error
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            try:
                self._loop.call_soon_threadsafe(self._stop.set)
            except RuntimeError:
                pass  # the loop is gone already
        if self._thread is not None:
            self._thread.join(_STOP_TIMEOUT)
            if self._thread.is_alive():
                raise RuntimeError("hypercorn did not stop")
        if self._tmp is not None:
            self._tmp.cleanup()
        if self._error is not None:
            raise RuntimeError("the hypercorn thread failed") from self._error

    def __enter__(self) -> HyperServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- the server thread -----------------------------------------------------------------

    def _run(self, config: Config, sockets: Sockets) -> None:
        loop = asyncio.new_event_loop()
        loop.set_exception_handler(_quiet_cancellations)
        self._loop = loop
        try:
            loop.run_until_complete(self._serve(config, sockets))
        except BaseException as exc:  # reported by start() / stop()
            self._error = exc
        finally:
            self._ready.set()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _serve(self, config: Config, sockets: Sockets) -> None:
        self._stop = asyncio.Event()
        self._ready.set()  # the socket listens already: accepting follows at once
        app = wrap_app(self._app, config.wsgi_max_body_size, "asgi")  # type: ignore[arg-type]
        await worker_serve(app, config, sockets=sockets, shutdown_trigger=self._stop.wait)

    def _gate(self, name: str) -> asyncio.Event:
        gate = self._gates.get(name)
        if gate is None:
            gate = self._gates[name] = asyncio.Event()
            if name in self._released:
                gate.set()
        return gate

    def _open_gate(self, name: str) -> None:
        self._released.add(name)
        self._gate(name).set()

    def _record(self, scope: dict[str, Any]) -> Request:
        raw = [(bytes(k), bytes(v)) for k, v in scope["headers"]]
        headers: dict[str, str] = {}
        for name, value in raw:
            headers[name.decode("latin-1").lower()] = value.decode("utf-8", "replace")
        query = dict(parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True))
        client = scope.get("client") or ("", 0)
        request = Request(
            path=scope["path"],
            query=query,
            headers=headers,
            raw_headers=raw,
            client_port=client[1],
            http_version=scope.get("http_version", ""),
            time=time.monotonic(),
        )
        with self._cond:
            self.requests.append(request)
            self._cond.notify_all()
        return request

    async def _app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        request = self._record(scope)
        index = len(self.requests_for(request.key)) - 1
        gone = asyncio.Event()

        async def watch() -> None:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    gone.set()
                    return

        watcher = asyncio.ensure_future(watch())
        try:
            handler = {
                "/events": self._events,
                "/json": self._json,
                "/redirect": self._redirect,
                "/status": self._status,
            }.get(request.path, self._not_found)
            await handler(request, index, gone, send)
        except _Drop:
            raise RuntimeError("dropping the connection on purpose") from None
        finally:
            watcher.cancel()

    async def _until(
        self,
        gone: asyncio.Event,
        *events: asyncio.Event,
        timeout: float | None,  # noqa: ASYNC109 (hypercorn's asyncio loop: no anyio scopes)
    ) -> None:
        """Wait until the client left, the server stops, one of the events is
        set, or the timeout passed."""
        assert self._stop is not None
        waiters = [asyncio.ensure_future(e.wait()) for e in (gone, self._stop, *events)]
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    def _over(self, gone: asyncio.Event) -> bool:
        assert self._stop is not None
        return gone.is_set() or self._stop.is_set()

    async def _events(self, request: Request, index: int, gone: asyncio.Event, send: Any) -> None:
        q = request.query
        key = request.key
        if "then" in q and index >= 1:
            await self._plain(send, int(q["then"]), b"unavailable")
            return
        if index < int(q.get("hold_head", "0")):
            await self._until(gone, self._gate(key), timeout=None)
            if self._over(gone):
                return
        prefix = q.get("prefix", "")
        n = 0
        last = request.last_event_id or ""
        if last.startswith(prefix) and last[len(prefix) :].isdigit():
            n = int(last[len(prefix) :])
        interval = float(q.get("interval", "0.02"))
        end_after = int(q["end_after"]) if "end_after" in q else None
        drop_after = int(q["drop_after"]) if "drop_after" in q else None
        hold_after = int(q["hold_after"]) if "hold_after" in q else None
        if q.get("hold_once") == "1" and index >= 1:
            hold_after = None
        burst = int(q.get("burst", "0"))
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream"),
                    (b"cache-control", b"no-cache"),
                ],
            }
        )
        head = f"retry: {q['retry']}\n\n" if "retry" in q else ":ok\n\n"
        await send({"type": "http.response.body", "body": head.encode(), "more_body": True})
        sent = 0
        if burst:
            text = "".join(f"id: {prefix}{n + i}\ndata: {n + i}\n\n" for i in range(1, burst + 1))
            await send({"type": "http.response.body", "body": text.encode(), "more_body": True})
            n += burst
            sent += burst
        while not self._over(gone):
            if end_after is not None and sent >= end_after:
                break
            if drop_after is not None and sent >= drop_after:
                raise _Drop
            if hold_after is not None and sent >= hold_after:
                await self._until(gone, self._gate(key), timeout=None)
                hold_after = None
                continue
            if sent:
                await self._until(gone, timeout=interval)
                if self._over(gone):
                    break
            n += 1
            sent += 1
            body = f"id: {prefix}{n}\ndata: {n}\n\n".encode()
            await send({"type": "http.response.body", "body": body, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _json(self, request: Request, index: int, gone: asyncio.Event, send: Any) -> None:
        body = json.dumps({"path": request.path, "ok": True}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        gate = request.query.get("hold")
        if gate is None:
            await send({"type": "http.response.body", "body": body})
            return
        half = len(body) // 2
        await send({"type": "http.response.body", "body": body[:half], "more_body": True})
        await self._until(gone, self._gate(gate), timeout=None)
        await send({"type": "http.response.body", "body": body[half:]})

    async def _redirect(self, request: Request, index: int, gone: asyncio.Event, send: Any) -> None:
        location = request.query["to"].encode()
        await send(
            {"type": "http.response.start", "status": 302, "headers": [(b"location", location)]}
        )
        await send({"type": "http.response.body", "body": b""})

    async def _status(self, request: Request, index: int, gone: asyncio.Event, send: Any) -> None:
        await self._plain(send, int(request.query.get("code", "200")), b"")

    async def _not_found(
        self, request: Request, index: int, gone: asyncio.Event, send: Any
    ) -> None:
        await self._plain(send, 404, b"not found")

    @staticmethod
    async def _plain(send: Any, status: int, body: bytes) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"text/plain")],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _Drop(Exception):
    pass


def _quiet_cancellations(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    # hypercorn cancels the connections still open at shutdown, and asyncio's
    # stream callback logs each cancellation as an error: not one.
    if isinstance(context.get("exception"), asyncio.CancelledError):
        return
    loop.default_exception_handler(context)


def refused_url() -> str:
    """A URL on a port that was bound and closed again: connecting is refused."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}/events"


@contextlib.asynccontextmanager
async def serving(handle: Any) -> AsyncIterator[str]:
    """The URL of a loopback listener whose connections ``handle`` serves (by
    hand) until the block ends."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, handle)
            yield f"http://127.0.0.1:{port}/"
            tg.cancel_scope.cancel()
    finally:
        await listener.aclose()


def shut_down(sock: socket.socket) -> None:
    """Shut a connection down both ways (wakes a thread blocked reading it)."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


_Listener = TypeVar("_Listener", bound="RawListener")


class RawListener:
    """A raw TCP listener on 127.0.0.1 at a free port; use as a context manager.

    A thread accepts connections and hands each to ``handle(sock, index,
    peer)`` in a thread of its own (``index``: accepted as the index-th
    connection; ``peer``: the client's port); the socket is closed when the
    handler returns. ``stop`` is set on exit (a test may set it earlier: no
    connection is accepted after that). On exit the accept loop ends, the
    listener closes, ``end(sock)`` ends every connection (by default shut
    down both ways; one tracked after that is ended at once), and every
    thread is joined: one still running after ``join`` seconds fails the exit.
    """

    def __init__(
        self,
        handle: Callable[[socket.socket, int, int], None],
        *,
        end: Callable[[socket.socket], None] = shut_down,
        backlog: int = 128,
        nodelay: bool = False,
        join: float = 5.0,
    ) -> None:
        self._handle = handle
        self._end = end
        self._nodelay = nodelay
        self._join = join
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=backlog)
        self._listener.settimeout(0.05)  # the accept loop checks for the stop this often
        self.port: int = self._listener.getsockname()[1]
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._threads: list[threading.Thread] = []
        self._socks: list[socket.socket] = []
        self._ending = False

    def spawn(self, target: Callable[..., None], *args: Any) -> threading.Thread:
        """Run ``target(*args)`` in a thread that the exit joins."""
        thread = threading.Thread(target=target, args=args, daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()
        return thread

    def track(self, sock: socket.socket) -> None:
        """End ``sock`` on exit too (a connection the server opened)."""
        with self._lock:
            if not self._ending:
                self._socks.append(sock)
                return
        self._end(sock)

    def __enter__(self: _Listener) -> _Listener:
        self._accepting.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop.set()
        shut_down(self._listener)  # ends a blocked accept() (Linux: at once)
        self._accepting.join(self._join)  # no connection comes after this
        self._listener.close()
        with self._lock:
            self._ending = True
            socks = list(self._socks)
        for sock in socks:
            self._end(sock)
        joined = 0
        while True:  # (a thread may start another one until it ends)
            with self._lock:
                threads = self._threads[joined:]
            if not threads:
                break
            for thread in threads:
                thread.join(self._join)
            joined += len(threads)
        running = self._accepting.is_alive() or any(t.is_alive() for t in self._threads)
        assert not running, f"{type(self).__name__} threads still running"

    def _accept(self) -> None:
        index = 0
        while not self.stop.is_set():
            try:
                sock, address = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            sock.settimeout(None)
            if self._nodelay:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.track(sock)
            self.spawn(self._serve, sock, index, address[1])
            index += 1

    def _serve(self, sock: socket.socket, index: int, peer: int) -> None:
        try:
            self._handle(sock, index, peer)
        finally:
            sock.close()
