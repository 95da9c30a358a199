"""TLS failures that retrying cannot fix, before a source ever opened (issue
23): ``http://`` to a TLS port whose server hangs up on plain HTTP (OpenSSL's
servers: uvicorn, hypercorn) or answers with a TLS alert on a client of the
user's own; TLS versions the two sides do not share; a server that refuses
the handshake (no shared cipher, or a client certificate required). Each is
a ``ConnectError`` at once, one ``on_error``; a plain server that hangs up
stays retried."""

from __future__ import annotations

import importlib
import socket
import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import pytest

import eventsource
from eventsource import EventSource
from eventsource._httpx import classify
from eventsource._probe import ASKS

from ._servers import RawListener

pytestmark = pytest.mark.usefixtures("loopback_only")

USER_CLIENT = (
    "LIMITATION: on a client of the user's own (httpcore's network backend, or any "
    "transport, mock or proxy the user configured) the source does not ask the port "
    "whether it speaks TLS: the request's route is the client's, and a check around it "
    "would reach a host the client never talks to. A hang-up there stays retried"
)
OWN_OR_USER = [
    pytest.param(False, id="own"),
    pytest.param(True, id="user", marks=pytest.mark.xfail(strict=True, reason=USER_CLIENT)),
]


EVENT = b"data: a\n\n"
OK = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: %d\r\n\r\n%s" % (
    len(EVENT),
    EVENT,
)


@contextmanager
def tls_port(context: ssl.SSLContext) -> Iterator[RawListener]:
    """A TLS server on loopback as OpenSSL's servers behave: a handshake that
    fails (plain HTTP, no shared version) closes the connection; one that
    succeeds is answered with one event. Its ``handshakes`` list records each
    connection's outcome ("ok" or the SSL error's reason)."""
    handshakes: list[str] = []

    def handle(sock: socket.socket, index: int, peer: int) -> None:
        sock.settimeout(5)
        try:
            conn = context.wrap_socket(sock, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            handshakes.append(str(getattr(exc, "reason", None) or type(exc).__name__))
            return
        handshakes.append("ok")
        with conn:
            try:
                conn.recv(65536)
                conn.sendall(OK)
            except (ssl.SSLError, OSError):
                pass

    with RawListener(handle) as listener:
        listener.handshakes = handshakes  # type: ignore[attr-defined]
        yield listener


def _client(stack: str, user: bool, verify: Any) -> Any:
    if not user:
        return None
    return importlib.import_module(stack).Client(trust_env=False, verify=verify)


def _first_error(
    url: str, stack: str, user: bool, verify: Any = True
) -> tuple[Any, float, list[Any]]:
    """What a sync source raises, how soon, and the errors it reported."""
    errors: list[Any] = []
    client = _client(stack, user, verify)
    kwargs: dict[str, Any] = {} if user else {"http": stack, "verify": verify}
    started = time.monotonic()
    try:
        EventSource(
            url, client=client, retry=0.2, min_retry_delay=0.2, on_error=errors.append, **kwargs
        ).collect(timeout=4)
    except eventsource.EventSourceError as exc:
        return exc, time.monotonic() - started, errors
    finally:
        if client is not None:
            client.close()
    raise AssertionError("the source raised nothing")


# --- http:// to a TLS port ------------------------------------------------------------------


@pytest.mark.parametrize("user", OWN_OR_USER)
def test_http_to_a_tls_port_that_hangs_up_fails_at_once(stack: str, user: bool, tls: Any) -> None:
    with tls_port(tls.server) as server:
        error, took, errors = _first_error(f"http://127.0.0.1:{server.port}/", stack, user)
    assert type(error) is eventsource.ConnectError, repr(error)
    assert "use https://" in str(error), str(error)
    assert took < 3 and len(errors) == 1
    # The plain request, then one check of the port (and nothing more).
    assert len(server.handshakes) == 2, server.handshakes  # type: ignore[attr-defined]


@pytest.mark.parametrize("user", OWN_OR_USER)
@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
@pytest.mark.anyio
async def test_http_to_a_tls_port_that_hangs_up_fails_at_once_in_async_code(
    stack: str, user: bool, tls: Any, anyio_backend: str
) -> None:
    errors: list[Any] = []
    client = importlib.import_module(stack).AsyncClient(trust_env=False) if user else None
    with tls_port(tls.server) as server, anyio.fail_after(4):
        source = EventSource(
            f"http://127.0.0.1:{server.port}/",
            client=client,
            http=None if user else stack,  # type: ignore[arg-type]
            retry=0.2,
            on_error=errors.append,
        )
        try:
            with pytest.raises(eventsource.ConnectError, match="use https://"):
                await source.acollect(timeout=3)
        finally:
            if client is not None:
                await client.aclose()
    assert len(errors) == 1


def test_a_plain_server_that_hangs_up_is_still_retried(stack: str) -> None:
    """No false alarm: a plain HTTP server that closes every connection
    without an answer is a drop (retried), whatever the check of the port."""
    accepted: list[int] = []

    def handle(sock: socket.socket, index: int, peer: int) -> None:
        accepted.append(index)
        sock.settimeout(5)
        try:
            sock.recv(65536)
        except OSError:
            pass

    with RawListener(handle) as server:
        errors: list[Any] = []
        source = EventSource(
            f"http://127.0.0.1:{server.port}/",
            http=stack,  # type: ignore[arg-type]
            retry=0.05,
            min_retry_delay=0.05,
            max_retries=3,
            on_error=errors.append,
        )
        with pytest.raises(eventsource.RetriesExhaustedError):
            source.collect(timeout=4)
    assert all(type(e) is not eventsource.ConnectError for e in errors), errors
    # 4 attempts and at most ASKS checks of the port (no storm): a peer that
    # closes on the ClientHello without a word may be a TLS service starting.
    assert 4 <= len(accepted) <= 4 + ASKS, accepted


# --- TLS versions and refused handshakes ----------------------------------------------------


def _server_context(tls: Any, **settings: Any) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.ca.issue_cert("127.0.0.1").configure_cert(context)
    for name, value in settings.items():
        setattr(context, name, value)
    return context


def _client_context(tls: Any, **settings: Any) -> ssl.SSLContext:
    context = ssl.create_default_context()
    tls.ca.configure_trust(context)
    for name, value in settings.items():
        setattr(context, name, value)
    return context


@pytest.mark.parametrize("user", [False, True], ids=["own", "user"])
@pytest.mark.parametrize("side", ["server-older", "client-older"])
def test_tls_versions_not_shared_fail_at_once(stack: str, user: bool, side: str, tls: Any) -> None:
    if side == "server-older":
        server = _server_context(tls, maximum_version=ssl.TLSVersion.TLSv1_2)
        client = _client_context(tls, minimum_version=ssl.TLSVersion.TLSv1_3)
    else:
        server = _server_context(tls, minimum_version=ssl.TLSVersion.TLSv1_3)
        client = _client_context(tls, maximum_version=ssl.TLSVersion.TLSv1_2)
    with tls_port(server) as port:
        error, took, errors = _first_error(f"https://127.0.0.1:{port.port}/", stack, user, client)
    assert type(error) is eventsource.ConnectError, repr(error)
    assert "TLS version" in str(error), str(error)
    assert took < 3 and len(errors) == 1


@pytest.mark.parametrize("user", [False, True], ids=["own", "user"])
def test_a_server_that_requires_a_client_certificate_fails_at_once(
    stack: str, user: bool, tls: Any
) -> None:
    # TLS 1.2: the server refuses the handshake (a handshake_failure alert).
    server = _server_context(
        tls, verify_mode=ssl.CERT_REQUIRED, maximum_version=ssl.TLSVersion.TLSv1_2
    )
    tls.ca.configure_trust(server)
    with tls_port(server) as port:
        error, took, errors = _first_error(
            f"https://127.0.0.1:{port.port}/", stack, user, tls.client
        )
    assert type(error) is eventsource.ConnectError, repr(error)
    assert "client certificate" in str(error), str(error)
    assert took < 3 and len(errors) == 1


def test_a_client_certificate_in_the_context_is_presented(stack: str, tls: Any) -> None:
    """The advice works: the same server, a context with load_cert_chain()."""
    server = _server_context(
        tls, verify_mode=ssl.CERT_REQUIRED, maximum_version=ssl.TLSVersion.TLSv1_2
    )
    tls.ca.configure_trust(server)
    client = _client_context(tls)
    tls.ca.issue_cert("client@example.test").configure_cert(client)
    with tls_port(server) as port:
        source = EventSource(f"https://127.0.0.1:{port.port}/", http=stack, verify=client)  # type: ignore[arg-type]
        events = source.collect(n=1, timeout=4)
    assert [e.data for e in events] == ["a"]


def _ssl_error(reason: str) -> ssl.SSLError:
    error = ssl.SSLError(1, f"[SSL: {reason}] ({reason.lower()})")
    error.reason = reason  # type: ignore[misc]
    return error


@pytest.mark.parametrize(
    ("reason", "words"),
    [
        ("TLSV1_ALERT_PROTOCOL_VERSION", "TLS version"),
        ("UNSUPPORTED_PROTOCOL", "TLS version"),
        ("NO_PROTOCOLS_AVAILABLE", "TLS version"),
        ("TLSV13_ALERT_CERTIFICATE_REQUIRED", "client certificate"),
        ("SSLV3_ALERT_BAD_CERTIFICATE", "client certificate"),
        ("SSLV3_ALERT_HANDSHAKE_FAILURE", "client certificate"),
    ],
)
def test_handshake_refusals_are_fatal_before_a_first_open_only(reason: str, words: str) -> None:
    import httpx

    exc = httpx.ConnectError("handshake")
    exc.__cause__ = _ssl_error(reason)
    error, fatal = classify(exc, sending=True, opened=False)  # type: ignore[misc]
    assert fatal and type(error) is eventsource.ConnectError, repr(error)
    assert words in str(error)
    error, fatal = classify(exc, sending=True, opened=True)  # type: ignore[misc]
    assert not fatal and type(error) is eventsource.ConnectionLostError


def test_handshake_eof_reset_and_timeout_stay_transient() -> None:
    import httpx

    for cause in (
        ssl.SSLEOFError(8, "EOF occurred in violation of protocol"),
        ConnectionResetError(104, "reset"),
        TimeoutError("timed out"),
    ):
        exc = httpx.ConnectError("handshake")
        exc.__cause__ = cause
        result = classify(exc, sending=True, opened=False)
        assert result is not None and result[1] is False, (cause, result)


# --- the command line -----------------------------------------------------------------------


@pytest.mark.parametrize("case", ["http-to-tls", "client-certificate"])
def test_the_command_line_says_what_to_do(
    case: str, tls: Any, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from eventsource._cli import main

    if case == "http-to-tls":
        server, scheme, extra = tls.server, "http", []
        advice = "answered with TLS: check the URL's scheme (http:// or https://)"
    else:
        server = _server_context(
            tls, verify_mode=ssl.CERT_REQUIRED, maximum_version=ssl.TLSVersion.TLSv1_2
        )
        tls.ca.configure_trust(server)
        pem = tmp_path / "ca.pem"
        tls.ca.cert_pem.write_to_path(str(pem))
        scheme, extra = "https", ["--cacert", str(pem)]
        advice = "the server may require a client certificate, which the command line cannot"
    with tls_port(server) as port:
        url = f"{scheme}://127.0.0.1:{port.port}/"
        assert main([url, *extra]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot connect to {url}: "), err
    assert advice in err and err.count("\n") == 1, err


@pytest.mark.parametrize("options", [{"reconnect": False}, {"method": "POST"}])
def test_a_failure_that_is_final_anyway_is_not_delayed_by_a_check(
    stack: str, tls: Any, options: dict[str, Any]
) -> None:
    """reconnect=False, or a POST (it may have run): the hang-up is the end
    at once; the port is not asked (the check could only delay the end)."""
    with tls_port(tls.server) as server:
        source = EventSource(f"http://127.0.0.1:{server.port}/", http=stack, **options)  # type: ignore[arg-type]
        started = time.monotonic()
        with pytest.raises(eventsource.ConnectionLostError):
            source.collect(timeout=4)
        took = time.monotonic() - started
    assert took < 1.5
    assert len(server.handshakes) == 1, server.handshakes  # type: ignore[attr-defined]
