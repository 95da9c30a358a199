"""Issue 23's second breaker (hostile servers and races against the check of
a port with a TLS ClientHello, ``_probe``): the defects found, as strict
xfails. Loopback only: every server here is on 127.0.0.1 and counts the
connections it gets."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import anyio.to_thread
import httpx
import pytest

import eventsource
from eventsource import EventSource

pytestmark = pytest.mark.usefixtures("loopback_only")


@contextmanager
def _counting(handle: Callable[[socket.socket], None]) -> Iterator[tuple[int, list[bytes]]]:
    """A loopback listener: each connection's first bytes go into the list
    (b"" when none came), then ``handle(sock)`` runs in a thread of its own."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    seen: list[bytes] = []
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def one(sock: socket.socket) -> None:
        with sock:
            sock.settimeout(5)
            try:
                first = sock.recv(1, socket.MSG_PEEK)
            except OSError:
                first = b""
            seen.append(first)
            try:
                handle(sock)
            except OSError:
                pass

    def accept() -> None:
        while not stop.is_set():
            try:
                sock, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=one, args=(sock,), daemon=True)
            threads.append(thread)
            thread.start()

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        yield listener.getsockname()[1], seen
    finally:
        stop.set()
        acceptor.join(5)
        listener.close()
        for thread in threads:
            thread.join(5)


def _tls_handshake(context: ssl.SSLContext) -> Callable[[socket.socket], None]:
    """As OpenSSL's servers: plain HTTP is hung up on, a ClientHello answered."""

    def handle(sock: socket.socket) -> None:
        try:
            context.wrap_socket(sock, server_side=True).close()
        except ssl.SSLError:
            pass

    return handle


def _hang_up(sock: socket.socket) -> None:
    sock.recv(65536)  # the request, then no answer


def _tls_port(tls: Any) -> Any:
    return _counting(_tls_handshake(tls.server))


# --- the check goes where the client does not -----------------------------------------------


def test_the_check_does_not_go_around_a_user_clients_transport(tls: Any) -> None:
    def hang_up(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError("Server disconnected", request=request)

    client = httpx.Client(transport=httpx.MockTransport(hang_up), trust_env=False)
    with _tls_port(tls) as (port, seen), client:
        source = EventSource(
            f"http://127.0.0.1:{port}/",
            client=client,
            retry=0.05,
            min_retry_delay=0.05,
            max_retries=1,
        )
        with pytest.raises(eventsource.EventSourceError) as caught:
            source.collect(timeout=4)
    assert seen == [], f"{len(seen)} connection(s) at a port the client never used"
    assert type(caught.value) is eventsource.RetriesExhaustedError, repr(caught.value)


def test_the_check_does_not_go_around_a_user_clients_proxy(tls: Any) -> None:
    with _counting(_hang_up) as (proxy, via_proxy), _tls_port(tls) as (port, seen):
        client = httpx.Client(proxy=f"http://127.0.0.1:{proxy}", trust_env=False)
        with client:
            source = EventSource(
                f"http://127.0.0.1:{port}/",
                client=client,
                retry=0.05,
                min_retry_delay=0.05,
                max_retries=1,
            )
            with pytest.raises(eventsource.EventSourceError):
                source.collect(timeout=4)
    assert via_proxy, "the request did not go through the proxy"
    assert seen == [], f"{len(seen)} connection(s) around the proxy"


def test_the_check_does_not_go_around_an_environment_proxy(
    tls: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _counting(_hang_up) as (proxy, via_proxy), _tls_port(tls) as (port, seen):
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy}")
        monkeypatch.setenv("NO_PROXY", ".localhost")
        source = EventSource(
            f"http://localhost:{port}/", retry=0.05, min_retry_delay=0.05, max_retries=1
        )
        with pytest.raises(eventsource.EventSourceError):
            source.collect(timeout=4)
    assert via_proxy, "the request did not go through the proxy"
    assert seen == [], f"{len(seen)} connection(s) around the proxy"


# --- a cancelled wait during the check ------------------------------------------------------


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
@pytest.mark.anyio
async def test_a_cancel_during_the_check_does_not_give_it_up(tls: Any, anyio_backend: str) -> None:
    checking = threading.Event()
    answer = threading.Event()

    def handle(sock: socket.socket) -> None:
        if sock.recv(1, socket.MSG_PEEK) == b"\x16":  # the check: answered when told
            checking.set()
            answer.wait(5)
            _tls_handshake(tls.server)(sock)
        else:
            _hang_up(sock)

    with _counting(handle) as (port, seen):
        source = EventSource(f"http://127.0.0.1:{port}/", retry=0.05, min_retry_delay=0.05)
        try:
            async with anyio.create_task_group() as group:
                with anyio.CancelScope() as scope:

                    async def cancel_during_the_check() -> None:
                        await anyio.to_thread.run_sync(checking.wait, 5)
                        scope.cancel()

                    group.start_soon(cancel_during_the_check)
                    await source.__anext__()
            answer.set()
            assert checking.is_set()
            with anyio.fail_after(3), pytest.raises(eventsource.ConnectError, match="https://"):
                await source.__anext__()
        finally:
            answer.set()
            await source.aclose()


def test_a_host_the_check_cannot_encode_raises_a_library_error() -> None:
    # No lookup happens: the socket module's IDNA encoding fails first.
    def hang_up(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError("Server disconnected", request=request)

    with httpx.Client(transport=httpx.MockTransport(hang_up), trust_env=False) as client:
        source = EventSource(
            "http://" + "a" * 64 + ".invalid/", client=client, retry=0.05, max_retries=1
        )
        with pytest.raises(eventsource.EventSourceError):
            source.collect(timeout=3)


def test_a_restart_during_the_check_does_not_give_it_up(tls: Any) -> None:
    sources: list[EventSource] = []
    restarted = threading.Event()

    def handle(sock: socket.socket) -> None:
        if sock.recv(1, socket.MSG_PEEK) == b"\x16" and not restarted.is_set():
            restarted.set()
            sources[0].restart()  # while the check waits for this answer
            sock.recv(1)  # the check's socket, shut down by the restart
            return
        _tls_handshake(tls.server)(sock)

    with _counting(handle) as (port, seen):
        sources.append(
            EventSource(
                f"http://127.0.0.1:{port}/", retry=0.05, min_retry_delay=0.05, max_retries=3
            )
        )
        with pytest.raises(eventsource.EventSourceError) as caught:
            sources[0].collect(timeout=4)
    assert restarted.is_set()
    assert type(caught.value) is eventsource.ConnectError, repr(caught.value)


# --- many sources at once ---------------------------------------------------------------------


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
@pytest.mark.anyio
async def test_the_checks_of_many_sources_go_through_the_origins_gate(
    anyio_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from eventsource import _gate

    monkeypatch.setattr(_gate, "LIMIT", 4)  # (256 by default: the same with 300 sources)
    lock = threading.Lock()
    now = [0]
    most = [0]

    def handle(sock: socket.socket) -> None:
        with lock:
            now[0] += 1
            most[0] = max(most[0], now[0])
        try:
            if sock.recv(65536)[:1] == b"\x16":
                threading.Event().wait(0.2)  # a server slow to answer the check
                sock.sendall(b"\x15\x03\x03\x00\x02\x02\x28")  # a TLS alert
        finally:
            with lock:
                now[0] -= 1

    errors: list[BaseException] = []
    with _counting(handle) as (port, seen):
        sources = [EventSource(f"http://127.0.0.1:{port}/", retry=5) for _ in range(24)]

        async def run(source: EventSource) -> None:
            try:
                await source.acollect(timeout=8)
            except eventsource.EventSourceError as exc:
                errors.append(exc)

        with anyio.fail_after(10):
            async with anyio.create_task_group() as group:
                for source in sources:
                    group.start_soon(run, source)
    assert len(errors) == 24 and all(type(e) is eventsource.ConnectError for e in errors)
    assert most[0] <= 4, f"{most[0]} connections to the origin at once (gate: 4)"
