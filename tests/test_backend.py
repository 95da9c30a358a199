"""eventsource's network backend (eventsource/_backend.py, _abackend.py,
_tls.py): where a connection's reads are cut so that h11 gets response heads
only (HeadCut), the streams' read timeouts and abort(), and the proxies that
a source's own client takes from the environment. Every server is on
127.0.0.1, started and stopped by its test."""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import sys
import threading
import time
import warnings
from collections.abc import AsyncIterator, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import anyio.to_thread
import httpcore
import httpx
import pytest

from eventsource import EventSource, ReadTimeoutError, ServerSentEvent
from eventsource._abackend import HIGH_WATER, AsyncBackend, AsyncioStream
from eventsource._backend import READ_SIZE, HeadCut, SyncBackend, SyncStream
from eventsource._transport import client_kwargs
from eventsource.testing import SSEServer

from ._fastpath import TLS, Opened, fast
from ._servers import serving
from .conftest import consume

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("loopback_only")]


# --- HeadCut (sans-IO) --------------------------------------------------------------------

GET = b"GET /stream HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"
POST = b"POST /stream HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\n\r\n"
OK = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n"
BODY = b"id: 1\ndata: a\n\nid: 2\ndata: b\n\n"  # (blank lines: no head end to find in it)


def test_nothing_is_cut_before_a_request_head_is_written() -> None:
    cut = HeadCut()
    assert not cut.heads  # a SOCKS handshake reads the proxy's bytes as they come
    for data in (b"\x05\x01\x00", b"\x05\x01\x00\x01\x7f\x00\x00\x01\x1f\x90", b"data: x\r\n"):
        cut.wrote(data)
        assert not cut.heads
    cut.wrote(GET)
    assert cut.heads and not cut.connect and not cut.body_fresh


def test_a_head_is_cut_at_its_end_when_the_body_comes_in_the_same_read() -> None:
    cut = HeadCut()
    for _ in range(3):  # keep-alive: each request on the connection is cut again
        cut.wrote(GET)
        assert cut.heads and not cut.body_fresh
        assert cut.cut(OK + BODY) == len(OK)
        assert not cut.heads and cut.body_fresh and not cut.tunnel


HEADS = {
    "crlf": OK,
    "lf": OK.replace(b"\r\n", b"\n"),
    "mixed": b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\n\r\n",
    "http/1.0": b"HTTP/1.0 200 OK\r\ncontent-type: text/event-stream\r\n\r\n",
}


@pytest.mark.parametrize("head", HEADS.values(), ids=HEADS.keys())
def test_heads_ending_in_crlf_or_bare_lf_are_cut_at_their_end(head: bytes) -> None:
    cut = HeadCut()
    cut.wrote(GET)
    assert cut.cut(head + BODY) == len(head) and cut.body_fresh


@pytest.mark.parametrize(
    "head", [*HEADS.values(), b"HTTP/1.1 100 Continue\r\n\r\n"], ids=[*HEADS, "100"]
)
def test_a_head_split_between_reads_is_cut_at_its_end(head: bytes) -> None:
    # However a head comes in (its end "\r\n" | "\r\n" or "\r\n\r" | "\n",
    # its status line cut), the read that ends it is cut there, and a 1xx
    # head is still followed by another.
    final = not head.startswith(b"HTTP/1.1 1")
    rest = BODY if final else OK + BODY
    for i in range(1, len(head)):
        cut = HeadCut()
        cut.wrote(GET)
        assert cut.cut(head[:i]) == i and cut.heads, i
        assert (cut.cut(head[i:] + rest), cut.heads) == (len(head) - i, not final), i


def test_informational_heads_are_handed_on_one_at_a_time() -> None:
    cont = b"HTTP/1.1 100 Continue\r\n\r\n"
    hints = b"HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\n\r\n"
    cut = HeadCut()
    cut.wrote(POST)
    data = cont + hints + OK + BODY  # all in one read: each head alone, the rest held
    for head in (cont, hints):
        assert cut.cut(data) == len(head) and cut.heads and not cut.body_fresh
        data = data[len(head) :]
    assert cut.cut(data) == len(OK) and not cut.heads and cut.body_fresh


def test_101_is_a_final_head() -> None:
    switching = b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n"
    cut = HeadCut()
    cut.wrote(GET)
    assert cut.cut(switching + b"\x81\x05hello") == len(switching)
    assert not cut.heads and not cut.tunnel


def test_a_2xx_answer_to_connect_starts_a_tunnel() -> None:
    connect = b"CONNECT 127.0.0.1:443 HTTP/1.1\r\nHost: 127.0.0.1:443\r\n\r\n"
    cut = HeadCut()
    cut.wrote(connect)
    assert cut.connect
    refused = b"HTTP/1.1 407 Proxy Authentication Required\r\ncontent-length: 0\r\n\r\n"
    assert cut.cut(refused) == len(refused) and not cut.tunnel  # no tunnel: cut again
    cut.wrote(connect)
    established = b"HTTP/1.1 200 Connection established\r\n\r\n"
    hello = b"\x16\x03\x01\x00\x05hello"  # the server's first TLS bytes, same read
    assert cut.cut(established + hello) == len(established)
    assert cut.tunnel and not cut.heads
    cut.wrote(GET)  # whatever goes through the tunnel (a request in the clear): never cut
    assert not cut.heads


# --- a keep-alive connection of our transport ---------------------------------------------

JSON = b'{"ok": true}'
ANSWERS = [  # each answer in one write: the head's cut leaves its body held
    b"HTTP/1.1 204 No Content\r\n\r\n",
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 12\r\n\r\n" + JSON,
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n"
    b"content-type: application/json\r\n\r\nc\r\n" + JSON + b"\r\n0\r\n\r\n",
    b"HTTP/1.1 204 No Content\r\n\r\n",
]


async def test_a_keep_alive_connection_serves_plain_requests(
    mode: str, anyio_backend: str, tls: TLS
) -> None:
    # Requests of our transport's own, read by httpx as usual: h11 gets each
    # head and body right, and the connection goes back to the pool each time.
    connections = 0

    async def handle(stream: anyio.abc.SocketStream) -> None:
        nonlocal connections
        connections += 1
        buffer = b""
        async with stream:
            for answer in ANSWERS:
                while b"\r\n\r\n" not in buffer:
                    buffer += await stream.receive()
                buffer = buffer.split(b"\r\n\r\n", 1)[1]
                await stream.send(answer)
            with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
                await stream.receive()  # until the client leaves

    kwargs = client_kwargs(tls.client, sync=mode == "sync", trust_env=False)
    async with serving(handle) as url:
        if mode == "sync":

            def run() -> list[httpx.Response]:
                with httpx.Client(**kwargs) as client:
                    return [client.get(url) for _ in ANSWERS]

            responses = await anyio.to_thread.run_sync(run)
        else:
            async with httpx.AsyncClient(**kwargs) as client:
                responses = [await client.get(url) for _ in ANSWERS]
    assert [r.status_code for r in responses] == [204, 200, 200, 204]
    assert [r.content for r in responses] == [b"", JSON, JSON, b""]
    streams = {id(r.extensions["network_stream"]) for r in responses}
    kind = type(responses[0].extensions["network_stream"]).__name__
    assert (connections, len(streams), kind) == (1, 1, STREAMS[runs_on(mode, anyio_backend)])


STREAMS = {"sync": "SyncStream", "asyncio": "AsyncioStream", "trio": "TrioStream"}


def runs_on(mode: str, anyio_backend: str) -> str:
    return "sync" if mode == "sync" else anyio_backend


# --- streams of our backend: read timeouts ------------------------------------------------


@contextlib.contextmanager
def sync_pair() -> Iterator[tuple[SyncStream, socket.socket]]:
    """A stream of SyncBackend's on 127.0.0.1, and the server's end of it."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        stream = SyncBackend().connect_tcp("127.0.0.1", listener.getsockname()[1], timeout=5)
        server, _ = listener.accept()
    assert isinstance(stream, SyncStream)
    with server:
        try:
            yield stream, server
        finally:
            stream.close()


@contextlib.asynccontextmanager
async def async_pair() -> AsyncIterator[tuple[Any, socket.socket]]:
    """A stream of AsyncBackend's on 127.0.0.1 (asyncio or trio), and the
    server's end of it (a blocking socket: small writes only)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        stream = await AsyncBackend().connect_tcp("127.0.0.1", listener.getsockname()[1], timeout=5)
        server, _ = listener.accept()  # connected already: no wait
    with server:
        try:
            yield stream, server
        finally:
            await stream.aclose()


async def server_sees_the_end(server: socket.socket) -> bool:
    server.settimeout(5)
    return await anyio.to_thread.run_sync(server.recv, 1) == b""


@contextlib.asynccontextmanager
async def async_tls_pair(tls: TLS, handshake_timeout: float) -> AsyncIterator[tuple[Any, Any]]:
    """A TLS stream (AsyncTLS) of AsyncBackend's, its handshake's reads
    timed by handshake_timeout (httpcore passes the connect timeout), and
    the server's end."""
    async with async_pair() as (plain, server_plain):
        ends: list[Any] = []

        def accept() -> None:
            server_plain.settimeout(5)
            ends.append(tls.server.wrap_socket(server_plain, server_side=True))

        async with anyio.create_task_group() as tg:
            tg.start_soon(anyio.to_thread.run_sync, accept)
            stream = await plain.start_tls(tls.client, "127.0.0.1", timeout=handshake_timeout)
        assert type(stream).__name__ == "AsyncTLS"
        with ends[0] as server:
            yield stream, server


@pytest.mark.parametrize("timeout", [0.15, None])
def test_a_sync_stream_times_out_each_silent_wait(timeout: float | None) -> None:
    # On Linux a plain socket blocks in the kernel with SO_RCVTIMEO as its
    # timeout (one system call a read, no poll first); elsewhere it keeps
    # Python's timeout. Either way each silent wait times out, and only those.
    with sync_pair() as (stream, server):
        server.sendall(b"a")
        assert stream.receive(timeout) == b"a"
        sock = stream.get_extra_info("socket")
        if sys.platform.startswith("linux"):
            assert sock.gettimeout() is None
            seconds, micros = struct.unpack(
                "@ll", sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, 16)
            )
            # The kernel keeps it in clock ticks (a few ms).
            assert seconds + micros / 1e6 == pytest.approx(timeout or 0.0, abs=0.02)
        else:
            assert sock.gettimeout() == timeout
        if timeout is None:
            server.sendall(b"b")
            server.shutdown(socket.SHUT_WR)
            assert stream.receive(timeout) == b"b"
            assert stream.receive(timeout) == b""  # the connection's end
            return
        for data in (b"b", b"c"):
            started = time.monotonic()
            with pytest.raises(httpcore.ReadTimeout):
                stream.receive(timeout)  # silence
            assert timeout * 0.9 <= time.monotonic() - started < timeout * 10
            server.sendall(data)
            assert stream.receive(timeout) == data  # the connection lives on


def test_a_sync_tls_stream_times_out_each_silent_wait(tls: TLS) -> None:
    # The socket's own TLS (an ssl.SSLSocket): Python's timeouts.
    with sync_pair() as (plain, server_plain):
        handshake: list[Any] = []
        thread = threading.Thread(
            target=lambda: handshake.append(tls.server.wrap_socket(server_plain, server_side=True))
        )
        thread.start()
        stream = plain.start_tls(tls.client, "127.0.0.1", timeout=5)
        thread.join(5)
        with handshake[0] as server, contextlib.closing(stream):
            assert isinstance(stream, SyncStream) and stream.get_extra_info("ssl_object")
            for data in (b"a", b"b"):
                server.sendall(data)
                assert stream.receive(0.15) == data
                started = time.monotonic()
                with pytest.raises(httpcore.ReadTimeout):
                    stream.receive(0.15)
                assert 0.13 <= time.monotonic() - started < 1.5


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_the_asyncio_stream_times_out_each_silent_wait_and_only_those() -> None:
    async with async_pair() as (stream, server):
        assert isinstance(stream, AsyncioStream)
        with anyio.fail_after(5):
            for data in (b"a", b"b"):
                server.sendall(data)
                assert await stream.receive(0.15) == data
                started = anyio.current_time()
                with pytest.raises(httpcore.ReadTimeout):
                    await stream.receive(0.15)  # silence: the timer ends the wait
                assert 0.13 <= anyio.current_time() - started < 1.5
            got: list[bytes] = []

            async def read() -> None:
                got.append(await stream.receive(0.15))

            async with anyio.create_task_group() as tg:
                tg.start_soon(read)
                await anyio.wait_all_tasks_blocked()  # the read waits
                stream._deadline = 0.0
                stream.check()  # the timer fires...
                stream.received(b"c")  # ...as data arrives, in the same loop turn
            assert got == [b"c"]  # the data wins
            with pytest.raises(httpcore.ReadTimeout):
                await stream.receive(0.15)  # silence again


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_the_trio_watchdog_ends_a_timed_out_wait_and_spares_a_busy_reader() -> None:
    async with async_pair() as (stream, server):
        with anyio.fail_after(5):
            server.sendall(b"a")
            assert await stream.receive(0.2) == b"a"
            # Busy past the timeout between two reads: nobody waited, no timeout.
            await anyio.sleep(0.5)
            got: list[bytes] = []

            async def read() -> None:
                got.append(await stream.receive(0.2))

            async with anyio.create_task_group() as tg:
                tg.start_soon(read)
                await anyio.wait_all_tasks_blocked()  # the read waits
                server.sendall(b"b")
            assert got == [b"b"]
            started = anyio.current_time()
            with pytest.raises(httpcore.ReadTimeout):
                await stream.receive(0.2)  # silence: the watchdog shuts the connection
            assert 0.18 <= anyio.current_time() - started < 2.0
            assert await server_sees_the_end(server)
            with pytest.raises(httpcore.ReadTimeout):
                await stream.receive(0.2)  # ended for good


async def test_an_async_tls_stream_times_a_read_by_its_own_timeout(
    anyio_backend: str, tls: TLS
) -> None:
    # The handshake's reads carry the connect timeout (here 5 s); a body read
    # that waits carries read_timeout: a shorter one is not put off till then.
    async with async_tls_pair(tls, handshake_timeout=5.0) as (stream, server):
        with anyio.fail_after(10):
            server.sendall(b"a")
            assert await stream.receive(0.1) == b"a"
            started = anyio.current_time()
            with pytest.raises(httpcore.ReadTimeout):
                await stream.receive(0.1)
            assert anyio.current_time() - started < 1.0


async def test_an_async_tls_stream_never_times_out_a_read_without_a_timeout(
    anyio_backend: str, tls: TLS
) -> None:
    # A source's read_timeout=None after a handshake timed by 0.2 s: its reads
    # wait for as long as it takes.
    async with async_tls_pair(tls, handshake_timeout=0.2) as (stream, server):
        server.sendall(b"a")
        assert await stream.receive(None) == b"a"
        with anyio.move_on_after(1.0) as waited:  # 5x the handshake's timeout
            await stream.receive(None)
        assert waited.cancelled_caught
        server.sendall(b"b")
        assert await stream.receive(None) == b"b"


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_a_source_whose_server_goes_silent_times_out(
    mode: str, scheme: str, tls: TLS, bodies: Opened, monkeypatch: pytest.MonkeyPatch
) -> None:
    tls.trust_in_own_clients(monkeypatch)
    marks: list[tuple[str, float]] = []
    async with SSEServer(tls=tls.server if scheme == "https" else None) as server:
        server.send("a")  # then silence
        source = EventSource(
            server.url,
            read_timeout=0.3,
            reconnect=False,
            on_message=lambda event: marks.append(("message", time.monotonic())),
            on_error=lambda error: marks.append((type(error).__name__, time.monotonic())),
        )
        outcome = await consume(source, mode)
    assert [e.data for e in outcome.events] == ["a"] and bodies == [fast(mode)]
    assert [kind for kind, _ in marks] == ["message", "ReadTimeoutError"]
    assert isinstance(outcome.error, ReadTimeoutError) or outcome.error is None
    assert 0.27 <= marks[1][1] - marks[0][1] < 3.0


async def test_a_source_without_read_timeout_is_never_timed_out(
    mode: str, tls: TLS, monkeypatch: pytest.MonkeyPatch
) -> None:
    # read_timeout=None over TLS, the handshake timed by a connect timeout of
    # 0.2 s: a silent server is waited for (here 1 s, then the source is closed).
    tls.trust_in_own_clients(monkeypatch)
    errors: list[Exception] = []
    async with SSEServer(tls=tls.server) as server:
        server.send("a")  # then silence
        source = EventSource(server.url, timeout=0.2, read_timeout=None, on_error=errors.append)

        async def close_later() -> None:
            await server.await_for_connections(1)
            await anyio.sleep(1.0)
            source.close()

        async with anyio.create_task_group() as tg:
            tg.start_soon(close_later)
            outcome = await consume(source, mode)
    assert [e.data for e in outcome.events] == ["a"] and outcome.error is None
    assert errors == []


# --- streams of our backend: abort(), buffers ---------------------------------------------


def _waits_in(thread: threading.Thread, function: str) -> bool:
    frame = sys._current_frames().get(thread.ident or 0)
    return frame is not None and frame.f_code.co_name == function


def test_abort_from_another_thread_ends_a_sync_read_at_once() -> None:
    with sync_pair() as (stream, server):
        raised: list[BaseException] = []

        def read() -> None:
            try:
                stream.receive(None)
            except BaseException as exc:  # noqa: BLE001 (reported below)
                raised.append(exc)

        thread = threading.Thread(target=read)
        thread.start()
        deadline = time.monotonic() + 5
        while not _waits_in(thread, "_recv") and time.monotonic() < deadline:
            time.sleep(0.001)
        started = time.monotonic()
        stream.abort()
        thread.join(5)
        elapsed = time.monotonic() - started
        assert not thread.is_alive() and elapsed < 0.5
        assert len(raised) == 1 and isinstance(raised[0], httpcore.ReadError)
        server.settimeout(5)
        assert server.recv(1) == b""  # shut down: the server sees the end
        with pytest.raises(httpcore.ReadError):
            stream.receive(None)  # and every later read ends at once


async def test_abort_ends_an_async_read(anyio_backend: str) -> None:
    async with async_pair() as (stream, server):
        raised: list[BaseException] = []

        async def read() -> None:
            try:
                await stream.receive(None)
            except httpcore.ReadError as exc:
                raised.append(exc)

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(read)
                await anyio.wait_all_tasks_blocked()  # the read waits
                stream.abort()
            assert len(raised) == 1
            assert await server_sees_the_end(server)


def _fork_and_abort(stream: Any) -> None:
    """A forked child calls the stream's abort() and exits."""
    with warnings.catch_warnings():  # (Python 3.12+ warns about forking with threads)
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:
        code = 1
        try:
            stream.abort()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork()")
def test_a_forked_childs_abort_leaves_the_parents_sync_connection_alone() -> None:
    with sync_pair() as (stream, server):
        _fork_and_abort(stream)
        server.sendall(b"still here")
        assert stream.receive(5) == b"still here" and not stream.aborted
        stream.write(b"ping", 5)
        assert server.recv(4) == b"ping"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork()")
async def test_a_forked_childs_abort_leaves_the_parents_async_connection_alone(
    anyio_backend: str,
) -> None:
    async with async_pair() as (stream, server):
        with anyio.fail_after(5):
            _fork_and_abort(stream)
            server.sendall(b"still here")
            assert await stream.receive(5) == b"still here" and not stream.aborted
            await stream.write(b"ping", 5)
            assert server.recv(4) == b"ping"


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_the_asyncio_stream_pauses_reading_past_high_water(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    held: list[int] = []  # bytes held unread after each transport read
    paused = anyio.Event()
    original = AsyncioStream.received

    def spy(self: AsyncioStream, data: bytes) -> None:
        original(self, data)
        held.append(self._size)
        if not self._transport.is_reading():
            paused.set()

    monkeypatch.setattr(AsyncioStream, "received", spy)
    total = 4 * 1024 * 1024
    async with async_pair() as (stream, server), anyio.create_task_group() as tg:
        tg.start_soon(partial(anyio.to_thread.run_sync, server.sendall, b"x" * total))
        with anyio.fail_after(5):
            await paused.wait()  # nobody reads: it fills up, then pauses
            assert HIGH_WATER < stream._size <= HIGH_WATER + READ_SIZE
            got = 0
            while got < total:  # reading resumes it
                got += len(await stream.receive(5))
            assert stream._transport.is_reading()
    assert got == total
    assert max(held) <= HIGH_WATER + READ_SIZE


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_the_asyncio_protocol_hands_on_bytes_of_their_own() -> None:
    # The transport reads into one buffer per thread (a BufferedProtocol: no
    # 256 KiB allocation a read), which the next read reuses: the stream must
    # hold bytes of its own (and bytes, never a view or a bytearray).
    import asyncio

    async with async_pair() as (stream, server):
        protocol = stream._transport.get_protocol()
        assert isinstance(protocol, asyncio.BufferedProtocol)
        for text in (b"data: one\n\n", b"data: two\n\n"):  # two reads into one buffer
            buffer = memoryview(protocol.get_buffer(-1))
            buffer[: len(text)] = text
            protocol.buffer_updated(len(text))
        data = await stream.receive(5)
        assert data == b"data: one\n\ndata: two\n\n" and type(data) is bytes
        server.sendall(b"data: three\n\n")  # and a real read, from the socket
        assert await stream.receive(5) == b"data: three\n\n"


# --- proxies from the environment ---------------------------------------------------------


class Proxy:
    """A loopback HTTP proxy: forwards absolute-form requests (plain HTTP) and
    tunnels CONNECT, to 127.0.0.1 only; ``seen`` has every request line."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def handle(self, client: anyio.abc.ByteStream) -> None:
        async with client:
            head = b""
            with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
                while b"\r\n\r\n" not in head:
                    head += await client.receive()
            if b"\r\n\r\n" not in head:
                return
            line, rest = head.split(b"\r\n", 1)
            self.seen.append(line.decode())
            method, target, version = line.split(b" ")
            if method == b"CONNECT":
                host, port = target.rsplit(b":", 1)
                url = httpx.URL(f"http://{host.decode()}:{int(port)}/")
            else:
                url = httpx.URL(target.decode())
            assert url.host == "127.0.0.1", f"not a loopback target: {target!r}"
            async with await anyio.connect_tcp("127.0.0.1", url.port or 80) as upstream:
                if method == b"CONNECT":
                    await client.send(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    _, after = rest.split(b"\r\n\r\n", 1)
                else:  # to origin-form
                    after = b" ".join((method, url.raw_path, version)) + b"\r\n" + rest
                if after:
                    await upstream.send(after)
                async with anyio.create_task_group() as tg:
                    tg.start_soon(_pump, client, upstream, tg.cancel_scope)
                    tg.start_soon(_pump, upstream, client, tg.cancel_scope)


async def _pump(
    source: anyio.abc.ByteStream, sink: anyio.abc.ByteStream, scope: anyio.CancelScope
) -> None:
    """Bytes one way until either side ends; then both ways end."""
    try:
        async for data in source:
            await sink.send(data)
    except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
        pass
    finally:
        scope.cancel()


@contextlib.asynccontextmanager
async def proxying(tls: TLS | None = None) -> AsyncIterator[tuple[Proxy, str]]:
    """A loopback proxy (an https one with tls) and its URL, until the block ends."""
    from anyio.streams.tls import TLSListener

    proxy = Proxy()
    tcp = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = tcp.extra(anyio.abc.SocketAttribute.local_port)
    listener: Any = tcp
    if tls is not None:
        listener = TLSListener(tcp, tls.server, standard_compatible=False)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, proxy.handle)
            yield proxy, f"{'https' if tls else 'http'}://127.0.0.1:{port}"
            tg.cancel_scope.cancel()
    finally:
        await listener.aclose()


# The class of the stream a fast body is read from, through a CONNECT tunnel
# for https: sync, the socket's own TLS (ssl.SSLSocket); async, ours (AsyncTLS).
FAST_STREAMS = {"http": STREAMS, "https": {**STREAMS, "asyncio": "AsyncTLS", "trio": "AsyncTLS"}}


async def _events_through(mode: str, url: str, server: SSEServer) -> list[str]:
    """The events a source gets: the first in the server's history, the rest
    sent once the source has it (they come through the proxy on their own)."""

    def on_message(event: ServerSentEvent) -> None:
        if event.id == "1":
            server.send("event 2", id="2")
            server.send("event 3", id="3")
            server.end()

    server.send("event 1", id="1")
    outcome = await consume(EventSource(url, reconnect=False, on_message=on_message), mode)
    assert outcome.error is None
    return [e.data for e in outcome.events]


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_a_source_goes_through_the_environments_proxy(
    mode: str,
    anyio_backend: str,
    scheme: str,
    tls: TLS,
    bodies: Opened,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # http: a forward proxy (HTTP_PROXY), sent the absolute-form request
    # line; https: a CONNECT tunnel (HTTPS_PROXY), TLS to the server inside.
    tls.trust_in_own_clients(monkeypatch)
    async with SSEServer(tls=tls.server if scheme == "https" else None) as server:
        async with proxying() as (proxy, proxy_url):
            monkeypatch.setenv(f"{scheme.upper()}_PROXY", proxy_url)
            events = await _events_through(mode, server.url, server)
        expected = {
            "http": f"GET {server.url} HTTP/1.1",
            "https": f"CONNECT 127.0.0.1:{server.port} HTTP/1.1",
        }
        assert len(server.requests) == 1 and server.requests[0].path == "/stream"
    assert events == ["event 1", "event 2", "event 3"]
    assert proxy.seen == [expected[scheme]] and bodies == [fast(mode)]
    assert bodies.streams == [FAST_STREAMS[scheme][runs_on(mode, anyio_backend)]]


@pytest.mark.parametrize("no_proxy", ["127.0.0.1", "localhost,127.0.0.1", "*"])
async def test_no_proxy_bypasses_the_proxy(
    mode: str, no_proxy: str, bodies: Opened, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with SSEServer() as server, proxying() as (proxy, proxy_url):
        monkeypatch.setenv("HTTP_PROXY", proxy_url)
        monkeypatch.setenv("NO_PROXY", no_proxy)
        events = await _events_through(mode, server.url, server)
    assert events == ["event 1", "event 2", "event 3"]
    assert proxy.seen == [] and bodies == [fast(mode)]


async def test_https_through_an_https_proxy_reads_the_inner_tls(
    mode: str,
    anyio_backend: str,
    tls: TLS,
    bodies: Opened,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    # TLS inside the proxy's TLS: the stream under the inner TLS carries the
    # outer layer, so the body is read from a TLS layer of ours over it
    # (SyncTLS over the proxy's ssl.SSLSocket; AsyncTLS over AsyncTLS).
    tls.trust_in_own_clients(monkeypatch)
    tls.trust_everywhere(monkeypatch, tmp_path)  # (httpcore's context for the proxy)
    async with SSEServer(tls=tls.server) as server, proxying(tls) as (proxy, proxy_url):
        monkeypatch.setenv("HTTPS_PROXY", proxy_url)
        events = await _events_through(mode, server.url, server)
        connect = f"CONNECT 127.0.0.1:{server.port} HTTP/1.1"
    assert events == ["event 1", "event 2", "event 3"]
    assert proxy.seen == [connect]
    assert bodies == [fast(mode)]
    assert bodies.streams == ["SyncTLS" if mode == "sync" else "AsyncTLS"]


# --- Happy Eyeballs (asyncio; trio's open_tcp_stream races addresses itself) ---------------


def test_addresses_are_interleaved_by_family() -> None:
    from eventsource._connect import interleaved as _interleaved

    v6 = [(socket.AF_INET6, 0, 0, "", (f"::{i}", 1)) for i in (1, 2, 3)]
    v4 = [(socket.AF_INET, 0, 0, "", (f"10.0.0.{i}", 1)) for i in (1, 2)]
    mixed = _interleaved([v6[0], v6[1], v4[0], v6[2], v4[1]])
    assert [info[4][0] for info in mixed] == ["::1", "10.0.0.1", "::2", "10.0.0.2", "::3"]


@contextlib.contextmanager
def _two_addresses(monkeypatch: pytest.MonkeyPatch, hang: str) -> Iterator[tuple[int, list[Any]]]:
    """A listener on 127.0.0.1, reached as "dual.test", which resolves to
    127.0.0.2 first and 127.0.0.1 second; connects to ``hang`` never end.
    Yields the port and every socket an attempt connected with."""
    import asyncio

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    attempts: list[Any] = []
    loop_class = type(asyncio.get_running_loop())  # (entered in the test's loop)
    original_connect = loop_class.sock_connect

    async def getaddrinfo(self: Any, host: str, wanted: int, **kwargs: Any) -> list[Any]:
        assert host == "dual.test"
        return [
            (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (ip, wanted))
            for ip in ("127.0.0.2", "127.0.0.1")
        ]

    async def sock_connect(self: Any, sock: socket.socket, address: Any) -> None:
        attempts.append(sock)
        if address[0] == hang:
            await asyncio.sleep(3600)  # a black hole: the SYN is never answered
        await original_connect(self, sock, address)

    monkeypatch.setattr(loop_class, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(loop_class, "sock_connect", sock_connect)
    try:
        yield port, attempts
    finally:
        listener.close()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_black_holed_first_address_costs_the_happy_eyeballs_delay(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from eventsource._connect import HAPPY_EYEBALLS_DELAY

    with _two_addresses(monkeypatch, hang="127.0.0.2") as (port, attempts):
        started = time.monotonic()
        stream = await AsyncBackend().connect_tcp("dual.test", port, timeout=30)
        took = time.monotonic() - started
        try:
            assert stream.get_extra_info("server_addr") == ("127.0.0.1", port)
        finally:
            await stream.aclose()
    assert HAPPY_EYEBALLS_DELAY <= took < 10 * HAPPY_EYEBALLS_DELAY
    assert len(attempts) == 2
    assert attempts[0].fileno() == -1, "the losing attempt's socket was left open"


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_connect_timeout_during_the_race_leaves_no_socket(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with _two_addresses(monkeypatch, hang="127.0.0.1") as (port, attempts):
        monkeypatch.setattr(
            "eventsource._abackend.interleaved", lambda infos: [infos[1], infos[1]]
        )  # both attempts go to the black hole
        with pytest.raises(httpcore.ConnectTimeout):
            await AsyncBackend().connect_tcp("dual.test", port, timeout=0.6)
    assert len(attempts) == 2
    assert all(sock.fileno() == -1 for sock in attempts)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_every_address_refused_is_a_connect_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # A failed attempt starts the next at once: with a 10 s delay, waiting it
    # out would show.
    monkeypatch.setattr("eventsource._connect.HAPPY_EYEBALLS_DELAY", 10.0)
    with _two_addresses(monkeypatch, hang="none") as (port, attempts):
        closed = socket.create_server(("127.0.0.1", 0))
        free_port = closed.getsockname()[1]
        closed.close()  # nobody listens there now: refused at once
        started = time.monotonic()
        with pytest.raises(httpcore.ConnectError):
            await AsyncBackend().connect_tcp("dual.test", free_port, timeout=30)
    assert time.monotonic() - started < 5  # no waiting out the delay per address
    assert len(attempts) == 2 and all(sock.fileno() == -1 for sock in attempts)
