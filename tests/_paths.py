"""Every body path a source can read, behind one scripted server side, for
tests/test_contract.py.

A test writes its server once, as a ``Script``: a history of events (a new
request receives those after its ``Last-Event-ID``, then everything sent while
it is open) and the faults ``end()``, ``cut()`` and ``drop_mid_event()``,
applied to the open responses. ``opened(case)`` puts that script behind the
case's body path and gives the test a URL, a client and the script:

- ``fast-chunked``, ``fast-length``, ``fast-close``: ``RawServer``, a
  hand-written HTTP/1.1 server on loopback (blocking sockets, a thread per
  connection) in one framing: chunked on keep-alive, a Content-Length body
  (64 KiB declared; ``end()`` fills the rest with a comment line), or a body
  that ends with the connection. The source's own client: the fast read.
- ``gzip``: the same server, chunked, every write gzip-compressed (a sync
  flush each, so every event can be decoded on arrival): the fast read,
  decoded by eventsource in bounded steps.
- ``public``: the ``gzip`` server read through a client of the test's own
  (``httpx.AsyncClient()`` / ``httpx.Client()``): httpx's public stream,
  its raw bytes decoded by eventsource.
- ``mock``: ``httpx.MockTransport`` whose responses stream a body the script
  feeds (a cut raises ``httpx.ReadError``).
- ``asgi``: an ASGI app on ``eventsource.testing.ASGIStreamTransport`` (a cut
  is the app raising).
- ``h2c``: the app on hypercorn (``tests/_servers.py``) over HTTP/2 cleartext,
  behind ``Proxy``, a loopback TCP relay that a cut resets (hypercorn cannot
  break an HTTP/2 stream from the app: an app that raises leaves it open).
- ``aiohttp``: ``RawServer`` (chunked) read through httpx-aiohttp's transport.

A cut resets the TCP connection (SO_LINGER 0): a close-delimited body would
end cleanly with a FIN, and the test is about a broken connection.

Control methods are plain calls, safe from any thread; state that other
threads change (requests, callbacks) is waited for with ``until()``, a
condition polled under a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import socket
import struct
import threading
import time
import zlib
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatch
from typing import Any

import anyio
import httpx
import pytest

from eventsource import EventSource, EventSourceError, ServerSentEvent
from eventsource.testing import ASGIStreamTransport

from ._servers import HyperServer, RawListener

__all__ = [
    "MODES",
    "PATHS",
    "Case",
    "Env",
    "Log",
    "Run",
    "Script",
    "cases",
    "event",
    "opened",
    "running",
    "holds",
    "until",
]

WATCHDOG = 15.0  # seconds: a helper that waits longer than this fails the test
JOIN = 5.0  # seconds a closed source may take to end when the test is over

# --- the matrix ---------------------------------------------------------------------------

#: mode -> the anyio backend the test runs on (sync: a thread, under asyncio)
MODES = {"asyncio": "asyncio", "trio": "trio", "sync": "asyncio"}


@dataclass(frozen=True)
class PathSpec:
    modes: tuple[str, ...]
    why_not: str = ""  # why the other modes are skipped
    fast: bool = False  # the fast read (the socket below httpcore)
    stack: str = "httpx"  # the HTTP stack: httpx, or httpx2 (on httpcore2)


HAS_HTTPX2 = importlib.util.find_spec("httpx2") is not None


PATHS = {
    "fast-chunked": PathSpec(("asyncio", "trio", "sync"), fast=True),
    "fast-length": PathSpec(("asyncio", "trio", "sync"), fast=True),
    "fast-close": PathSpec(("asyncio", "trio", "sync"), fast=True),
    "mock": PathSpec(("asyncio", "trio", "sync")),
    "gzip": PathSpec(("asyncio", "trio", "sync"), fast=True),
    "public": PathSpec(("asyncio", "trio", "sync")),
    "asgi": PathSpec(
        ("asyncio", "trio"), "ASGIStreamTransport is an async transport: no sync client uses it"
    ),
    "h2c": PathSpec(("asyncio", "trio", "sync")),
    "aiohttp": PathSpec(
        ("asyncio",), "httpx-aiohttp's transport runs on aiohttp: asyncio only, no sync client"
    ),
    # httpx2 (issue 22): a source's own client on it (http="httpx2": our
    # backend on httpcore2's pool), and a user's httpx2 client (its public
    # stream, gzip as "public").
    "httpx2-fast": PathSpec(("asyncio", "trio", "sync"), fast=True, stack="httpx2"),
    "httpx2-public": PathSpec(("asyncio", "trio", "sync"), stack="httpx2"),
    "httpx2-h2c": PathSpec(("asyncio", "trio", "sync"), stack="httpx2"),
}


@dataclass(frozen=True)
class Case:
    """One parametrization: a body path, a mode, and the test's own variant."""

    path: str
    mode: str
    variant: str = ""

    @property
    def id(self) -> str:
        return "-".join(part for part in (self.path, self.mode, self.variant) if part)

    @property
    def is_async(self) -> bool:
        return self.mode != "sync"

    @property
    def fast(self) -> bool:
        return PATHS[self.path].fast


def cases(
    *,
    paths: tuple[str, ...] = tuple(PATHS),
    modes: tuple[str, ...] = tuple(MODES),
    variants: tuple[str, ...] = ("",),
    skip: Callable[[Case], str | None] | None = None,
    xfail: Mapping[str, str] | None = None,
) -> list[Any]:
    """pytest params ``(case, anyio_backend)``: every path x mode x variant; a
    combination the path cannot do is skipped (``PathSpec.why_not``, or the
    test's ``skip(case)`` reason); ``xfail`` maps id patterns (fnmatch) to
    the reason of a strict xfail."""
    params = []
    used: set[str] = set()
    for path in paths:
        spec = PATHS[path]
        for mode in modes:
            for variant in variants:
                case = Case(path, mode, variant)
                marks: list[Any] = []
                reason = None
                if mode not in spec.modes:
                    reason = f"{path} has no {mode} mode: {spec.why_not}"
                elif spec.stack == "httpx2" and not HAS_HTTPX2:
                    reason = "httpx2 is not installed (the httpx2 extra)"
                elif skip is not None:
                    reason = skip(case)
                for pattern, why in (xfail or {}).items():
                    if fnmatch(case.id, pattern):
                        used.add(pattern)  # (a real case, even where it is skipped)
                        if reason is None:
                            marks.append(pytest.mark.xfail(strict=True, reason=why))
                        break
                if reason is not None:
                    marks.append(pytest.mark.skip(reason=reason))
                params.append(pytest.param(case, MODES[mode], id=case.id, marks=marks))
    unused = set(xfail or {}) - used
    assert not unused, f"xfail patterns that match no case: {sorted(unused)}"
    return params


# --- waiting ----------------------------------------------------------------------------


async def holds(condition: Callable[[], object], timeout: float) -> bool:  # noqa: ASYNC109
    """Whether condition() holds within timeout seconds: state that other
    threads change (a server's, a sync source's), polled every 5 ms."""
    deadline = time.monotonic() + timeout
    while not condition():  # noqa: ASYNC110 (threads change it: no event to wait on)
        if time.monotonic() > deadline:
            return False
        await anyio.sleep(0.005)
    return True


async def until(condition: Callable[[], object], what: str, timeout: float = 5.0) -> None:  # noqa: ASYNC109
    """Wait until condition() holds (see holds()); AssertionError after timeout."""
    if not await holds(condition, timeout):
        raise AssertionError(f"waited {timeout} s for {what}")


# --- the script: the server side of a test -------------------------------------------------


def event(n: int, data: str | None = None) -> tuple[str, bytes]:
    """Event number n: its id and its wire block."""
    return str(n), f"id: {n}\ndata: {data or f'e{n}'}\n\n".encode()


@dataclass(frozen=True)
class Request:
    headers: dict[str, str] = field(repr=False)  # lower-case names
    time: float = field(repr=False)  # time.monotonic() when it arrived
    method: str = "GET"
    body: bytes = field(default=b"", repr=False)  # (paths that read it: raw, mock)

    @property
    def last_event_id(self) -> str | None:
        return self.headers.get("last-event-id")

    def __repr__(self) -> str:
        return f"Request({self.method}, last_event_id={self.last_event_id!r})"


class Conn:
    """A response being streamed: what each transport implements. Called
    under the script's lock, never blocking for long."""

    def start(self) -> None:
        raise NotImplementedError

    def write(self, data: bytes) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        """End the body normally."""
        raise NotImplementedError

    def cut(self, after: bytes) -> None:
        """Break the connection (once ``after``, the last bytes written, are
        on their way)."""
        raise NotImplementedError


Responder = Callable[[socket.socket], None]


class Script:
    """The server side of a test, the same on every path (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._history: list[tuple[str, bytes]] = []
        self._live: list[Conn] = []
        self._requests: list[Request] = []
        #: raw responders (RawServer only) for the next requests, in order
        self.special: deque[Responder] = deque()

    @property
    def requests(self) -> list[Request]:
        with self._lock:
            return list(self._requests)

    def attach(
        self, headers: Mapping[str, str], conn: Conn, method: str = "GET", body: bytes = b""
    ) -> Responder | None:
        """A request arrived: record it and start its response with the
        history after its Last-Event-ID (or return the special responder
        that answers it instead)."""
        with self._lock:
            lowered = {k.lower(): v for k, v in headers.items()}
            request = Request(lowered, time.monotonic(), method, body)
            self._requests.append(request)
            if self.special:
                return self.special.popleft()
            conn.start()
            ids = [i for i, _ in self._history]
            last = request.last_event_id
            start = ids.index(last) + 1 if last in ids else 0
            replay = b"".join(block for _, block in self._history[start:])
            if replay:
                conn.write(replay)
            self._live.append(conn)
        return None

    def gone(self, conn: Conn) -> None:
        with self._lock:
            if conn in self._live:
                self._live.remove(conn)

    def add(self, id: str, block: bytes) -> None:
        """Add an event to the history only (for the next requests)."""
        with self._lock:
            self._history.append((id, block))

    def send(self, id: str, block: bytes) -> None:
        """Add an event to the history and write it to every open response."""
        with self._lock:
            self._history.append((id, block))
            for conn in self._live:
                conn.write(block)

    def end(self) -> None:
        """End every open response normally."""
        with self._lock:
            live, self._live = self._live, []
            for conn in live:
                conn.finish()

    def cut(self) -> None:
        """Break every open connection."""
        with self._lock:
            live, self._live = self._live, []
            for conn in live:
                conn.cut(b"")

    def drop_mid_event(self, id: str, block: bytes) -> bytes:
        """Write the first half of the event block (its id line complete) to
        every open response, then break the connection; the event joins the
        history, so a resumed request gets it whole. Returns the half."""
        half = block[: block.index(b"\ndata: ") + len(b"\ndata: ")]
        with self._lock:
            live, self._live = self._live, []
            for conn in live:
                conn.write(half)
                conn.cut(half)
            self._history.append((id, block))
        return half


# --- RawServer: HTTP/1.1 by hand ---------------------------------------------------------

LENGTH = 64 * 1024  # the Content-Length a "length" response declares


def _reset(sock: socket.socket) -> None:
    """Close with a TCP reset (and wake a thread blocked reading it)."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RD)
    sock.close()


class _RawConn(Conn):
    def __init__(self, sock: socket.socket, framing: str, gzip: bool) -> None:
        assert not (gzip and framing == "length")
        self._sock = sock
        self._framing = framing
        self._zip = zlib.compressobj(wbits=31) if gzip else None
        self._sent = 0
        self.dead = False

    def _send(self, data: bytes) -> None:
        if self.dead:
            return
        try:
            self._sock.sendall(data)
        except OSError:
            self.dead = True

    def start(self) -> None:
        head = ["HTTP/1.1 200 OK", "content-type: text/event-stream", "cache-control: no-cache"]
        if self._zip is not None:
            head.append("content-encoding: gzip")
        if self._framing == "chunked":
            head.append("transfer-encoding: chunked")
        elif self._framing == "length":
            head.append(f"content-length: {LENGTH}")
        else:
            head.append("connection: close")
        self._send(("\r\n".join(head) + "\r\n\r\n").encode())

    def _frame(self, data: bytes) -> None:
        if self._framing == "chunked":
            self._send(b"%x\r\n%s\r\n" % (len(data), data))
        elif self._framing == "length":
            self._sent += len(data)
            assert self._sent <= LENGTH - 2, "a length response outgrew its Content-Length"
            self._send(data)
        else:
            self._send(data)

    def write(self, data: bytes) -> None:
        if self._zip is not None:
            data = self._zip.compress(data) + self._zip.flush(zlib.Z_SYNC_FLUSH)
        self._frame(data)

    def finish(self) -> None:
        if self._zip is not None:
            self._frame(self._zip.flush())
        if self._framing == "chunked":
            self._send(b"0\r\n\r\n")
        elif self._framing == "length":
            self._send(b":" + b"." * (LENGTH - self._sent - 2) + b"\n")
        else:
            self.dead = True
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_WR)

    def cut(self, after: bytes) -> None:
        self.dead = True
        _reset(self._sock)


class RawServer(RawListener):
    """HTTP/1.1 on 127.0.0.1 by hand: a thread per connection, requests one
    after another on keep-alive connections, responses from the script. On
    exit every connection is reset and every thread joined."""

    def __init__(self, script: Script, framing: str = "chunked", gzip: bool = False) -> None:
        super().__init__(self._answer, end=_reset, nodelay=True, join=JOIN)
        self.script = script
        self.framing = framing
        self.gzip = gzip

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream"

    def _answer(self, sock: socket.socket, index: int, peer: int) -> None:
        buffer = b""
        conn: _RawConn | None = None
        try:
            while not self.stop.is_set():
                while b"\r\n\r\n" not in buffer:
                    data = sock.recv(65536)
                    if not data:
                        return  # the client closed (or a cut woke us)
                    buffer += data
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                headers = {}
                request_line, *lines = head.decode("latin-1").split("\r\n")
                for line in lines:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                # A request body (a POST's) is read whole: what follows it on
                # a keep-alive connection is the next request.
                length = int(headers.get("content-length", "0"))
                while len(buffer) < length:
                    data = sock.recv(65536)
                    if not data:
                        return
                    buffer += data
                body, buffer = buffer[:length], buffer[length:]
                if conn is not None:
                    self.script.gone(conn)
                conn = _RawConn(sock, self.framing, self.gzip)
                method = request_line.partition(" ")[0]
                special = self.script.attach(headers, conn, method, body)
                if special is not None:
                    special(sock)
                    return
        except OSError:
            return
        finally:
            if conn is not None:
                self.script.gone(conn)


# --- httpx.MockTransport ------------------------------------------------------------------

_END = object()
_CUT = object()
_START = object()
_GONE = object()  # (ASGI on hypercorn) the client left


class _Queued(Conn):
    """A response whose calls become items for its reader: _START, the data,
    _END, _CUT, each passed to ``_put``."""

    def _put(self, item: Any) -> None:
        raise NotImplementedError

    def start(self) -> None:
        self._put(_START)

    def write(self, data: bytes) -> None:
        self._put(data)

    def finish(self) -> None:
        self._put(_END)

    def cut(self, after: bytes) -> None:
        self._put(_CUT)


class _SyncBody(_Queued, httpx.SyncByteStream):
    """A mock body fed from other threads; its reads block until fed."""

    def __init__(self, script: Script) -> None:
        self._script = script
        self._items: deque[Any] = deque()
        self._cond = threading.Condition()

    def _put(self, item: Any) -> None:
        with self._cond:
            self._items.append(item)
            self._cond.notify_all()

    def start(self) -> None:
        pass  # the head is the mock's httpx.Response

    def __iter__(self) -> Iterator[bytes]:
        while True:
            with self._cond:
                if not self._cond.wait_for(lambda: self._items, timeout=WATCHDOG):
                    raise httpx.ReadTimeout("the test's mock body waited too long")
                item = self._items.popleft()
            if item is _END:
                return
            if item is _CUT:
                raise httpx.ReadError("the test cut the mock body")
            yield item

    def close(self) -> None:
        self._script.gone(self)


class _AsyncInbox(_Queued):
    """Items for a task of the test's event loop (fed from that loop's thread)."""

    def __init__(self) -> None:
        self._items: deque[Any] = deque()
        self._wake = anyio.Event()

    def _put(self, item: Any) -> None:
        self._items.append(item)
        self._wake.set()

    async def get(self) -> Any:
        while not self._items:
            self._wake = anyio.Event()
            await self._wake.wait()
        return self._items.popleft()


class _AsyncBody(_AsyncInbox, httpx.AsyncByteStream):
    """A mock body: its reads wait until the test feeds it."""

    def __init__(self, script: Script) -> None:
        super().__init__()
        self._script = script

    def start(self) -> None:
        pass

    def __aiter__(self) -> _AsyncBody:
        return self

    async def __anext__(self) -> bytes:
        item = await self.get()
        if item is _END:
            raise StopAsyncIteration
        if item is _CUT:
            raise httpx.ReadError("the test cut the mock body")
        return item  # type: ignore[no-any-return]

    async def aclose(self) -> None:
        self._script.gone(self)


HEADERS = {"content-type": "text/event-stream", "cache-control": "no-cache"}


def mock_transport(script: Script, is_async: bool) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        body: _SyncBody | _AsyncBody = _AsyncBody(script) if is_async else _SyncBody(script)
        script.attach(dict(request.headers.items()), body, request.method, request.content)
        return httpx.Response(200, headers=HEADERS, stream=body)

    return httpx.MockTransport(handler)


# --- ASGI ----------------------------------------------------------------------------------


class _Cut(Exception):
    pass


def asgi_app(script: Script) -> Callable[..., Any]:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        inbox = _AsyncInbox()
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        script.attach(headers, inbox, scope["method"])
        try:
            await _play(inbox.get, send)
        finally:
            script.gone(inbox)

    return app


async def _play(get: Callable[[], Any], send: Any) -> None:
    """Send a conn's items as ASGI messages; END returns, CUT raises."""
    while True:
        item = await get()
        if item is _GONE:
            return
        if item is _START:
            headers = [(k.encode(), v.encode()) for k, v in HEADERS.items()]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
        elif item is _END:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        elif item is _CUT:
            raise _Cut("the test cut the stream")
        else:
            await send({"type": "http.response.body", "body": item, "more_body": True})


# --- HTTP/2: hypercorn behind a relay that can reset the connection ------------------------


class _Pair:
    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client = client
        self.upstream = upstream
        self.down = bytearray()  # what was relayed to the client
        self.cond = threading.Condition()

    def reset(self) -> None:
        _reset(self.client)
        _reset(self.upstream)


class Proxy(RawListener):
    """A loopback TCP relay in front of a server; ``cut(after)`` resets every
    relayed connection once ``after`` has been relayed to the client. On exit
    every relayed connection (both sides) is reset and every thread joined."""

    def __init__(self, upstream_port: int) -> None:
        super().__init__(self._relay, end=_reset, nodelay=True, join=JOIN)
        self._upstream = upstream_port
        self._pairs: list[_Pair] = []

    def _relay(self, client: socket.socket, index: int, peer: int) -> None:
        upstream = socket.create_connection(("127.0.0.1", self._upstream))
        self.track(upstream)
        upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pair = _Pair(client, upstream)
        self._pairs.append(pair)
        down = self.spawn(self._pump, pair, upstream, client, True)
        self._pump(pair, client, upstream, False)
        down.join()  # the client's socket stays open until both ways end

    def _pump(self, pair: _Pair, source: socket.socket, sink: socket.socket, down: bool) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    sink.shutdown(socket.SHUT_WR)
                    return
                sink.sendall(data)
                if down:
                    with pair.cond:
                        pair.down += data
                        pair.cond.notify_all()
        except OSError:
            return

    def cut(self, after: bytes) -> None:
        """Reset the connections open now, each once ``after`` went through
        (from a thread of its own: the caller does not wait)."""
        pairs = list(self._pairs)
        self.spawn(self._cut, pairs, after)

    def _cut(self, pairs: list[_Pair], after: bytes) -> None:
        for pair in pairs:
            with pair.cond:
                pair.cond.wait_for(lambda: after in pair.down, timeout=JOIN)  # noqa: B023
            pair.reset()


class _H2Conn(_Queued):
    def __init__(self, loop: asyncio.AbstractEventLoop, proxy: Proxy) -> None:
        self._loop = loop
        self._proxy = proxy
        self.queue: asyncio.Queue[Any] = asyncio.Queue()

    def _put(self, item: Any) -> None:
        self._loop.call_soon_threadsafe(self.queue.put_nowait, item)

    def cut(self, after: bytes) -> None:
        self._proxy.cut(after)  # (the relay resets the connection)


class ScriptedHyper(HyperServer):
    """hypercorn (HTTP/2 cleartext) answering every request from a script."""

    def __init__(self, script: Script) -> None:
        super().__init__("h2c")
        self.script = script
        self.proxy: Proxy | None = None

    async def _app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await super()._app(scope, receive, send)  # lifespan
            return
        assert self.proxy is not None
        conn = _H2Conn(asyncio.get_running_loop(), self.proxy)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        self.script.attach(headers, conn, scope["method"])

        async def disconnected() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        gone = asyncio.ensure_future(disconnected())
        try:

            async def get() -> Any:
                getter = asyncio.ensure_future(conn.queue.get())
                await asyncio.wait({getter, gone}, return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():
                    getter.cancel()
                    return _GONE
                return getter.result()

            await _play(get, send)
        finally:
            gone.cancel()
            self.script.gone(conn)


# --- a case's environment --------------------------------------------------------------------


@dataclass
class Env:
    case: Case
    script: Script
    url: str
    client: Any  # httpx's or httpx2's client, or None: the source's own
    bodies: list[str] = field(default_factory=list)  # the kind of each body opened

    def source(self, **kwargs: Any) -> EventSource:
        if self.client is None and PATHS[self.case.path].stack == "httpx2":
            kwargs.setdefault("http", "httpx2")
        return EventSource(self.url, client=self.client, **kwargs)


# The body each path must be read through (eventsource/_direct.py, _httpx.py):
# a test of one path that silently took another would prove nothing.
def expected_body(case: Case) -> str:
    if case.fast:
        return "AsyncFast" if case.is_async else "SyncFast"
    return "AsyncPublic" if case.is_async else "SyncPublic"


@contextlib.contextmanager
def _spy_bodies(bodies: list[str]) -> Iterator[None]:
    """Record the class of every body the sources open."""
    import eventsource._io as io_module

    originals = {name: getattr(io_module, name) for name in ("open_async_body", "open_sync_body")}

    def spy(original: Callable[..., Any]) -> Callable[..., Any]:
        def open_body(response: httpx.Response, timeout: float | None) -> Any:
            body, sock = original(response, timeout)
            bodies.append(type(body).__name__)
            return body, sock

        return open_body

    for name, original in originals.items():
        setattr(io_module, name, spy(original))
    try:
        yield
    finally:
        for name, original in originals.items():
            setattr(io_module, name, original)


@contextlib.asynccontextmanager
async def opened(case: Case) -> AsyncIterator[Env]:
    """The case's path serving a new script (everything stopped on exit);
    on a normal exit, checks that every body was read the path's way."""
    script = Script()
    bodies: list[str] = []
    client: Any = None
    async with contextlib.AsyncExitStack() as stack:
        stack.enter_context(_spy_bodies(bodies))
        raw = ("gzip", "public", "aiohttp", "httpx2-fast", "httpx2-public")
        if case.path.startswith("fast-") or case.path in raw:
            framing = case.path[len("fast-") :] if case.path.startswith("fast-") else "chunked"
            gzip = case.path in ("gzip", "public", "httpx2-public")
            server = stack.enter_context(RawServer(script, framing, gzip=gzip))
            url = server.url
            if case.path in ("public", "httpx2-public"):
                http: Any = httpx
                if case.path == "httpx2-public":
                    import httpx2 as http
                if case.is_async:
                    client = await stack.enter_async_context(http.AsyncClient(trust_env=False))
                else:
                    client = stack.enter_context(http.Client(trust_env=False))
            if case.path == "aiohttp":
                httpx_aiohttp = pytest.importorskip("httpx_aiohttp")
                client = await stack.enter_async_context(httpx_aiohttp.HttpxAiohttpClient())
        elif case.path == "mock":
            url = "http://sse.test/stream"
            mock = mock_transport(script, case.is_async)
            if case.is_async:
                client = await stack.enter_async_context(httpx.AsyncClient(transport=mock))
            else:
                client = stack.enter_context(httpx.Client(transport=mock))
        elif case.path == "asgi":
            url = "http://sse.test/stream"
            asgi = ASGIStreamTransport(asgi_app(script), disconnect_timeout=0)
            client = await stack.enter_async_context(httpx.AsyncClient(transport=asgi))
        elif case.path in ("h2c", "httpx2-h2c"):
            hyper = ScriptedHyper(script)
            stack.enter_context(hyper)
            proxy = hyper.proxy = stack.enter_context(Proxy(hyper.port))
            url = f"http://127.0.0.1:{proxy.port}/stream"
            h2: Any = httpx
            if case.path == "httpx2-h2c":
                import httpx2 as h2
            if case.is_async:  # prior knowledge
                client = await stack.enter_async_context(h2.AsyncClient(http1=False, http2=True))
            else:
                client = stack.enter_context(h2.Client(http1=False, http2=True))
        else:
            raise AssertionError(f"unknown path {case.path}")
        yield Env(case, script, url, client, bodies)
    assert bodies, "no body was opened"
    assert set(bodies) == {expected_body(case)}, f"{case.path} read through {bodies}"


# --- the source's side ---------------------------------------------------------------------------


@dataclass
class Log:
    """Callbacks that log what they saw, in order, with the time."""

    entries: list[tuple[Any, ...]] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    errors: list[EventSourceError] = field(default_factory=list)
    source: EventSource | None = None

    def kwargs(self) -> dict[str, Any]:
        return {
            "on_open": self.on_open,
            "on_message": self.on_message,
            "on_error": self.on_error,
            "on_close": self.on_close,
        }

    def add(self, *entry: Any) -> None:
        self.entries.append(entry)
        self.times.append(time.monotonic())

    def on_open(self) -> None:
        self.add("open")

    def on_message(self, event: ServerSentEvent) -> None:
        self.add("message", event.data)

    def on_error(self, error: EventSourceError) -> None:
        self.errors.append(error)
        self.add("error", type(error).__name__, error.will_retry)

    def on_close(self) -> None:
        assert self.source is not None
        self.add("close", self.source.ready_state.name)

    def time_of(self, *entry: Any) -> float:
        return self.times[self.entries.index(entry)]


class Run:
    """A source iterated to its end in the background (a task or a thread)."""

    def __init__(self, source: EventSource) -> None:
        self.source = source
        self.events: list[ServerSentEvent] = []
        self.error: EventSourceError | None = None
        self.crash: BaseException | None = None
        self.done = threading.Event()
        self.done_at = 0.0

    @property
    def data(self) -> list[str]:
        return [e.data for e in self.events]

    def iterate_sync(self) -> None:
        try:
            with self.source:
                for event in self.source:
                    self.events.append(event)
        except EventSourceError as exc:
            self.error = exc
        except BaseException as exc:  # the test reports it
            self.crash = exc
        finally:
            self.done_at = time.monotonic()
            self.done.set()

    async def iterate_async(self) -> None:
        try:
            async with self.source:
                async for event in self.source:
                    self.events.append(event)
        except EventSourceError as exc:
            self.error = exc
        except Exception as exc:  # the test reports it
            self.crash = exc
        finally:
            self.done_at = time.monotonic()
            self.done.set()


@contextlib.asynccontextmanager
async def running(source: EventSource, env: Env) -> AsyncIterator[Run]:
    """Iterate the source in the background for the block; on the way out,
    close it, break the script's connections (a read close() cannot end, in a
    test that failed) and wait (bounded) until the iteration ended."""
    run = Run(source)
    if env.case.is_async:
        async with anyio.create_task_group() as tg:
            tg.start_soon(run.iterate_async)
            try:
                yield run
            finally:
                source.close()
                env.script.cut()
                with anyio.CancelScope(shield=True):
                    await holds(run.done.is_set, JOIN)
                tg.cancel_scope.cancel()
    else:
        thread = threading.Thread(target=run.iterate_sync, daemon=True)
        thread.start()
        try:
            yield run
        finally:
            source.close()
            env.script.cut()
            await anyio.to_thread.run_sync(thread.join, JOIN)
    if not run.done.is_set():
        pytest.fail(f"the source did not end within {JOIN} s of close()")
    if run.crash is not None:
        raise run.crash
