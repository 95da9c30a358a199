"""Review of issue 23's TLS check of an ``http://`` port (``_probe``): defects
found, each a strict xfail until fixed."""

from __future__ import annotations

import importlib
import socket
import ssl
import threading
import time
from typing import Any

import anyio
import pytest

import eventsource
from eventsource import EventSource

from ._servers import RawListener

pytestmark = pytest.mark.usefixtures("loopback_only")

EVENT = b"data: a\n\n"
OK = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: %d\r\n\r\n%s" % (
    len(EVENT),
    EVENT,
)


def _is_client_hello(sock: socket.socket) -> bool:
    """Whether the connection starts with a TLS handshake record (the check)."""
    sock.settimeout(5)
    try:
        return sock.recv(2, socket.MSG_PEEK) == b"\x16\x03"
    except OSError:
        return False


def _hang_up(sock: socket.socket) -> None:
    """Read the request and close without an answer (a drop)."""
    try:
        sock.recv(65536)
    except OSError:
        pass


class Seen:
    """What a listener was sent: plain requests (their first line) and checks."""

    def __init__(self) -> None:
        self.requests: list[bytes] = []
        self.hellos = 0
        self.lock = threading.Lock()

    def note(self, sock: socket.socket) -> bool:
        """Record the connection; True when it is the TLS check."""
        hello = _is_client_hello(sock)
        with self.lock:
            if hello:
                self.hellos += 1
            else:
                try:
                    line = sock.recv(65536, socket.MSG_PEEK).split(b"\r\n", 1)[0]
                except OSError:
                    line = b""
                self.requests.append(line)
        return hello

    def handle(self, sock: socket.socket, index: int, peer: int) -> None:
        """A RawListener handler that only records."""
        self.note(sock)


# --- the check does not go where the request went ---------------------------------------------

BYPASS = (
    "the TLS check connects straight to the URL's host and port with a socket of its "
    "own: it ignores the client's transport (mounts=, transport=, MockTransport, uds=) "
    "and proxy= settings, so it reaches a server the request never went to"
)


def test_the_check_does_not_bypass_a_user_client_s_mock_transport(stack: str) -> None:
    """A test suite mocks the network (httpx.MockTransport, respx): a mocked
    'server disconnected' must not make a real connection to the URL."""
    http = importlib.import_module(stack)
    seen = Seen()
    with RawListener(seen.handle) as origin:

        def disconnected(request: Any) -> Any:
            raise http.RemoteProtocolError(
                "Server disconnected without sending a response.", request=request
            )

        client = http.Client(transport=http.MockTransport(disconnected))
        try:
            source = EventSource(
                f"http://127.0.0.1:{origin.port}/",
                client=client,
                retry=0.05,
                min_retry_delay=0.05,
                max_retries=1,
            )
            with pytest.raises(eventsource.EventSourceError):
                source.collect(timeout=4)
        finally:
            client.close()
    assert seen.hellos == 0 and seen.requests == [], (seen.hellos, seen.requests)


def test_the_check_does_not_bypass_a_user_client_s_proxy(stack: str) -> None:
    """A client with proxy= reaches the origin only through the proxy."""
    http = importlib.import_module(stack)
    at_origin = Seen()
    at_proxy = Seen()

    def proxy(sock: socket.socket, index: int, peer: int) -> None:
        at_proxy.note(sock)
        _hang_up(sock)  # the proxy drops the request

    with (
        RawListener(at_origin.handle) as origin,
        RawListener(proxy) as proxy_port,
    ):
        client = http.Client(proxy=f"http://127.0.0.1:{proxy_port.port}", trust_env=False)
        try:
            source = EventSource(
                f"http://127.0.0.1:{origin.port}/",
                client=client,
                retry=0.05,
                min_retry_delay=0.05,
                max_retries=1,
            )
            with pytest.raises(eventsource.EventSourceError):
                source.collect(timeout=4)
        finally:
            client.close()
    assert len(at_proxy.requests) >= 2  # (the premise: both attempts went there)
    assert at_origin.hellos == 0, "the check went around the proxy to the origin"


def test_the_check_of_an_own_client_follows_its_environment_proxy(
    stack: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    at_origin = Seen()
    at_proxy = Seen()

    def proxy(sock: socket.socket, index: int, peer: int) -> None:
        at_proxy.note(sock)
        _hang_up(sock)

    with (
        RawListener(at_origin.handle) as origin,
        RawListener(proxy) as proxy_port,
    ):
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy_port.port}")
        monkeypatch.setenv("NO_PROXY", ".localhost")  # subdomains of localhost only (httpx)
        source = EventSource(
            f"http://localhost:{origin.port}/",
            http=stack,  # type: ignore[arg-type]
            retry=0.05,
            min_retry_delay=0.05,
            max_retries=1,
        )
        with pytest.raises(eventsource.EventSourceError):
            source.collect(timeout=4)
    assert len(at_proxy.requests) >= 2  # (the premise: the requests went to the proxy)
    assert at_origin.hellos == 0, "the check went around the proxy to the origin"


def test_the_check_follows_a_system_proxy_as_the_client_does(
    stack: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import urllib.request

    at_origin = Seen()
    at_proxy = Seen()

    def proxy(sock: socket.socket, index: int, peer: int) -> None:
        at_proxy.note(sock)
        _hang_up(sock)

    with (
        RawListener(at_origin.handle) as origin,
        RawListener(proxy) as proxy_port,
    ):
        # The system's setting, as urllib reads it on macOS (SystemConfiguration)
        # or Windows (the registry); no variable in the environment.
        system = {"http": f"http://127.0.0.1:{proxy_port.port}"}
        monkeypatch.setattr(urllib.request, "getproxies", lambda: dict(system))
        source = EventSource(
            f"http://127.0.0.1:{origin.port}/",
            http=stack,  # type: ignore[arg-type]
            retry=0.05,
            min_retry_delay=0.05,
            max_retries=1,
        )
        with pytest.raises(eventsource.EventSourceError):
            source.collect(timeout=4)
    assert len(at_proxy.requests) >= 2  # (the premise: the requests went to the proxy)
    assert at_origin.hellos == 0, "the check went around the proxy to the origin"


@pytest.mark.xfail(
    strict=True,
    reason="LIMITATION: a client of the user's own is never checked (its route is its "
    "own: transports, mocks, proxies); http:// to a TLS port that hangs up is retried there "
    "(tests/test_tls_mismatch.py USER_CLIENT)",
)
def test_the_check_runs_for_a_user_client_that_ignores_the_environment(
    stack: str, tls: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def openssl_server(sock: socket.socket, index: int, peer: int) -> None:
        sock.settimeout(5)
        try:  # plain HTTP fails the handshake: the server hangs up
            tls.server.wrap_socket(sock, server_side=True).close()
        except (ssl.SSLError, OSError):
            pass

    http = importlib.import_module(stack)
    with RawListener(openssl_server) as server, RawListener(_hang_up_handler) as unused:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{unused.port}")
        client = http.Client(trust_env=False)  # the environment's proxy: not used
        try:
            source = EventSource(
                f"http://127.0.0.1:{server.port}/",
                client=client,
                retry=0.05,
                min_retry_delay=0.05,
                max_retries=2,
            )
            with pytest.raises(eventsource.EventSourceError) as raised:
                source.collect(timeout=4)
        finally:
            client.close()
    assert type(raised.value) is eventsource.ConnectError, repr(raised.value)


def _hang_up_handler(sock: socket.socket, index: int, peer: int) -> None:
    _hang_up(sock)


# --- false alarm: a port that speaks both -------------------------------------------------------


@pytest.mark.xfail(
    strict=True,
    reason="LIMITATION (accepted): a port that serves plain HTTP and TLS both (Envoy's "
    "tls_inspector, sslh, cmux, Twisted/Kestrel-style sniffing) and dropped the first "
    "request (a restart, overload) is failed for ever with ConnectError 'use https://' "
    "although http:// works: one dropped request is taken for proof of a wrong scheme",
)
def test_a_port_that_speaks_plain_http_and_tls_and_drops_once_is_retried(
    stack: str, tls: Any
) -> None:
    seen = Seen()

    def handle(sock: socket.socket, index: int, peer: int) -> None:
        if seen.note(sock):
            try:
                with tls.server.wrap_socket(sock, server_side=True):
                    pass
            except (ssl.SSLError, OSError):
                pass  # the check hangs up after the server's first record
            return
        _hang_up(sock)  # (read the request)
        if len(seen.requests) > 1:  # the first request was dropped, the others served
            sock.sendall(OK)

    with RawListener(handle) as server:
        source = EventSource(
            f"http://127.0.0.1:{server.port}/",
            http=stack,  # type: ignore[arg-type]
            retry=0.05,
            min_retry_delay=0.05,
            max_retries=3,
        )
        events = source.collect(n=1, timeout=4)
    assert [e.data for e in events] == ["a"]


def test_the_error_names_the_redirect_target_that_answered_tls(stack: str, tls: Any) -> None:
    def openssl_server(sock: socket.socket, index: int, peer: int) -> None:
        sock.settimeout(5)
        try:
            tls.server.wrap_socket(sock, server_side=True).close()
        except (ssl.SSLError, OSError):
            pass

    with RawListener(openssl_server) as target:
        moved = (
            b"HTTP/1.1 307 Temporary Redirect\r\nlocation: http://127.0.0.1:%d/\r\n"
            b"content-length: 0\r\n\r\n" % target.port
        )

        def plain(sock: socket.socket, index: int, peer: int) -> None:
            _hang_up(sock)
            sock.sendall(moved)

        with RawListener(plain) as first:
            source = EventSource(
                f"http://127.0.0.1:{first.port}/",
                http=stack,  # type: ignore[arg-type]
                retry=0.05,
                min_retry_delay=0.05,
                max_retries=1,
            )
            with pytest.raises(eventsource.ConnectError) as raised:
                source.collect(timeout=4)
    assert f"127.0.0.1:{target.port}" in str(raised.value), str(raised.value)


# --- interruptions during the check -------------------------------------------------------------


class _Interrupted(BaseException):
    """What a signal handler raises (as KeyboardInterrupt does)."""


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
@pytest.mark.anyio
async def test_the_checks_of_many_sources_keep_to_the_origin_s_gate(
    stack: str, anyio_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from eventsource import _gate

    monkeypatch.setattr(_gate, "LIMIT", 2)
    monkeypatch.setattr(_gate, "STALL", 30.0)  # (no widening during the test)
    lock = threading.Lock()
    checks = [0, 0]  # in flight, most at once
    stop = threading.Event()

    def handle(sock: socket.socket, index: int, peer: int) -> None:
        if not _is_client_hello(sock):
            _hang_up(sock)
            return
        with lock:
            checks[0] += 1
            checks[1] = max(checks)
        # Closed after a while without a word (no verdict: the source may
        # ask again on its next attempt).
        stop.wait(0.5)
        with lock:
            checks[0] -= 1

    with RawListener(handle) as server:

        async def one() -> None:
            source = EventSource(
                f"http://127.0.0.1:{server.port}/",
                http=stack,  # type: ignore[arg-type]
                retry=0.05,
                min_retry_delay=0.05,
                max_retries=1,
            )
            with pytest.raises(eventsource.RetriesExhaustedError):
                await source.acollect(timeout=20)

        try:
            with anyio.fail_after(30):
                async with anyio.create_task_group() as group:
                    for _ in range(6):
                        group.start_soon(one)
        finally:
            stop.set()
    assert checks[1] <= 2, f"{checks[1]} checks of the port at once (the gate: 2)"


def test_a_restart_during_the_check_does_not_lose_it(stack: str, tls: Any) -> None:
    seen = Seen()
    holder: list[EventSource] = []

    def handle(sock: socket.socket, index: int, peer: int) -> None:
        if seen.note(sock):
            if seen.hellos == 1:
                holder[0].restart()  # (from another thread: thread-safe)
                time.sleep(0.3)
            try:
                with tls.server.wrap_socket(sock, server_side=True):
                    pass
            except (ssl.SSLError, OSError):
                pass
            return
        try:  # an OpenSSL server: plain HTTP fails its handshake, it hangs up
            tls.server.wrap_socket(sock, server_side=True).close()
        except (ssl.SSLError, OSError):
            pass

    with RawListener(handle) as server:
        source = EventSource(
            f"http://127.0.0.1:{server.port}/",
            http=stack,  # type: ignore[arg-type]
            retry=0.05,
            min_retry_delay=0.05,
            max_retries=3,
        )
        holder.append(source)
        with pytest.raises(eventsource.EventSourceError) as raised:
            source.collect(timeout=4)
    assert seen.hellos >= 1  # (the premise: the check ran and was restarted)
    assert type(raised.value) is eventsource.ConnectError, repr(raised.value)


# --- an internationalized host name -------------------------------------------------------------

# Valid in IDNA 2008 (httpx, the idna package: an RTL label may end with a
# digit), refused by Python's own "idna" codec (IDNA 2003, bidi rule 3).
IDN = "\u0645\u062b\u0627\u06441.test"
IDN_ASCII = "xn--1-ymcl5hc.test"


def test_the_check_of_an_internationalized_host_does_not_crash_the_source(
    stack: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = socket.getaddrinfo

    def resolve(host: Any, *args: Any, **kwargs: Any) -> Any:
        # The test's own resolver: the IDN's ASCII form is loopback (no DNS).
        name = host.decode() if isinstance(host, bytes) else host
        return real("127.0.0.1" if name == IDN_ASCII else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    with RawListener(_hang_up_handler) as server:
        source = EventSource(
            f"http://{IDN}:{server.port}/",
            http=stack,  # type: ignore[arg-type]
            retry=0.05,
            min_retry_delay=0.05,
            max_retries=1,
        )
        with pytest.raises(eventsource.RetriesExhaustedError):
            source.collect(timeout=4)


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
@pytest.mark.anyio
async def test_the_async_check_of_an_internationalized_host_does_not_crash_the_source(
    stack: str, anyio_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = socket.getaddrinfo

    def resolve(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        return real("127.0.0.1" if name == IDN_ASCII else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    with RawListener(_hang_up_handler) as server:
        source = EventSource(
            f"http://{IDN}:{server.port}/",
            http=stack,  # type: ignore[arg-type]
            retry=0.05,
            min_retry_delay=0.05,
            max_retries=1,
        )
        with anyio.fail_after(5), pytest.raises(eventsource.RetriesExhaustedError):
            await source.acollect(timeout=4)


# --- handshake refusals -------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["unknown-ca", "expired"])
def test_a_client_certificate_the_server_rejects_fails_at_once(
    stack: str, case: str, tls: Any
) -> None:
    import datetime

    import trustme

    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.ca.issue_cert("127.0.0.1").configure_cert(server)
    server.verify_mode = ssl.CERT_REQUIRED
    tls.ca.configure_trust(server)
    client = ssl.create_default_context()
    tls.ca.configure_trust(client)
    if case == "unknown-ca":  # signed by a CA the server does not trust
        trustme.CA().issue_cert("client@example.test").configure_cert(client)
    else:
        expired = datetime.datetime(2020, 1, 1)
        tls.ca.issue_cert("client@example.test", not_after=expired).configure_cert(client)

    def handle(sock: socket.socket, index: int, peer: int) -> None:
        sock.settimeout(5)
        try:
            with server.wrap_socket(sock, server_side=True) as conn:
                conn.recv(65536)
                conn.sendall(OK)
        except (ssl.SSLError, OSError):
            pass  # the server refuses the client's certificate

    with RawListener(handle) as port:
        source = EventSource(
            f"https://127.0.0.1:{port.port}/",
            http=stack,  # type: ignore[arg-type]
            verify=client,
            retry=0.05,
            min_retry_delay=0.05,
            max_retries=2,
        )
        with pytest.raises(eventsource.EventSourceError) as raised:
            source.collect(timeout=4)
    assert type(raised.value) is eventsource.ConnectError, repr(raised.value)


# --- the command line ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        pytest.param("\u05e9\u05d2\u05d9\u05d0\u05d4\u200f: 403\u200f", id="hebrew-rlm"),
        pytest.param(
            "Slow down \U0001f3f3\ufe0f\u200d\U0001f308 \U0001f468\u200d\U0001f469\u200d\U0001f467",
            id="emoji-zwj",
        ),
    ],
)
def test_the_command_line_shows_a_text_body_with_format_characters(body: str) -> None:
    from eventsource._cli._output import describe_error
    from eventsource.testing import SSEServer

    with SSEServer() as server:
        server.respond_with(403, {"Content-Type": "text/plain; charset=utf-8"}, body)
        with pytest.raises(eventsource.ResponseError) as raised:
            EventSource(server.url).collect(timeout=5)
        line = describe_error(raised.value, server.url)
    assert "not text" not in line, line
    assert body in line, line
