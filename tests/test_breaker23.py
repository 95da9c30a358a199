"""Issue 23's breaker (a helper trying to break the first-hour changes with
hostile servers): the defects it found, first committed as strict xfails.
Loopback only."""

from __future__ import annotations

import math
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from eventsource import EventSource, ResponseError
from eventsource._httpx import classify
from eventsource.testing import SSEServer

SSE_BODY = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: 10\r\n\r\ndata: ok\n\n"
)


def _redirect(to: bytes) -> bytes:
    return (
        b"HTTP/1.1 302 Found\r\nlocation: "
        + to
        + b"\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    )


@contextmanager
def _raw(answer: Callable[[str], bytes], seen: list[tuple[int, str, str | None]]) -> Iterator[int]:
    """A loopback HTTP/1.1 server answering each request from its path;
    ``seen`` gets (port, path, Authorization) of each."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)  # (closing it would not wake a blocked accept())
    port = listener.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(5)
            with conn:
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    head += chunk
                lines = head.decode("latin-1").split("\r\n")
                path = lines[0].split()[1]
                auth = next(
                    (
                        x.split(":", 1)[1].strip()
                        for x in lines
                        if x.lower().startswith("authorization:")
                    ),
                    None,
                )
                seen.append((port, path, auth))
                conn.sendall(answer(path))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def test_credentials_never_reach_another_origin_down_a_redirect_chain() -> None:
    seen: list[tuple[int, str, str | None]] = []
    with _raw(lambda path: SSE_BODY if path == "/y" else _redirect(b"/y"), seen) as b:
        to_b = f"http://127.0.0.1:{b}/x".encode()
        with _raw(lambda path: _redirect(to_b), seen) as a:
            EventSource(f"http://127.0.0.1:{a}/start", auth=("alice", "s3cret")).collect(
                n=1, timeout=5
            )
    assert [(port == a, path, auth is not None) for port, path, auth in seen] == [
        (True, "/start", True),
        (False, "/x", False),
        (False, "/y", False),
    ]


def test_credentials_come_back_on_a_hop_back_to_the_sources_origin() -> None:
    seen: list[tuple[int, str, str | None]] = []
    ports: dict[str, int] = {}

    def answer_a(path: str) -> bytes:
        return SSE_BODY if path == "/stream" else _redirect(b"http://127.0.0.1:%d/x" % ports["b"])

    def answer_b(path: str) -> bytes:
        return _redirect(b"http://127.0.0.1:%d/stream" % ports["a"])

    with _raw(answer_a, seen) as ports["a"], _raw(answer_b, seen) as ports["b"]:
        EventSource(f"http://127.0.0.1:{ports['a']}/start", auth=("alice", "s3cret")).collect(
            n=1, timeout=5
        )
    assert [(path, auth is not None) for _, path, auth in seen] == [
        ("/start", True),
        ("/x", False),
        ("/stream", True),
    ]


@pytest.mark.parametrize(
    "error",
    [ssl.SSLCertVerificationError("certificate verify failed"), ssl.SSLError("wrong version")],
    ids=["verify", "ssl"],
)
def test_classify_takes_ssl_errors_made_in_python(error: ssl.SSLError) -> None:
    wrapped = httpx.ConnectError("failed")
    wrapped.__cause__ = error
    result = classify(wrapped, sending=True, opened=False)
    assert result is not None


def test_a_timeout_with_read_none_means_no_read_timeout() -> None:
    source = EventSource("http://127.0.0.1:1/", timeout=httpx.Timeout(10, read=None))
    assert source._spec.read_timeout is None


@pytest.mark.parametrize("option", ["retry", "max_retry_delay", "min_retry_delay"])
def test_nan_delays_are_refused(option: str) -> None:
    with pytest.raises(ValueError, match=option):
        EventSource("http://127.0.0.1:1/", **{option: math.nan})


def test_a_redirect_not_followed_says_so() -> None:
    with SSEServer() as server:
        server.respond_with(302, {"Location": "/elsewhere"})
        with pytest.raises(ResponseError) as info:
            EventSource(server.url, follow_redirects=False).collect(timeout=5)
    assert "usable" not in str(info.value) and "not followed" in str(info.value)


def test_response_error_json_takes_a_bom() -> None:
    with SSEServer() as server:
        body = '\ufeff{"error": {"message": "token expired"}}'
        server.respond_with(401, {"Content-Type": "application/json"}, body.encode())
        with pytest.raises(ResponseError) as info:
            EventSource(server.url).collect(timeout=5)
    assert info.value.json() == {"error": {"message": "token expired"}}


@pytest.mark.parametrize(
    "verify",
    [pytest.param("", id="empty-path"), pytest.param("server-context", id="server-context")],
)
def test_verify_that_cannot_work_is_refused(verify: Any) -> None:
    if verify == "server-context":
        verify = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    with pytest.raises(ValueError, match="verify"):
        EventSource("https://127.0.0.1:1/", verify=verify)


def test_ssl_cert_file_is_followed_and_an_unloadable_one_is_a_connect_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    from eventsource import ConnectError
    from eventsource._request import _default_ssl_context
    from eventsource._stack import HTTPX

    before = _default_ssl_context(HTTPX)
    assert _default_ssl_context(HTTPX) is before  # the same environment: one context
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "missing.pem"))
    with pytest.raises(ConnectError, match="SSL_CERT_FILE"):
        EventSource("https://127.0.0.1:1/").collect(timeout=2)


def test_verify_takes_a_path_object_and_a_ca_directory(tmp_path: Any, tls: Any) -> None:
    from pathlib import Path

    bundle = tmp_path / "ca.pem"
    tls.ca.cert_pem.write_to_path(str(bundle))
    assert isinstance(
        EventSource("https://127.0.0.1:1/", verify=Path(bundle))._spec.verify, ssl.SSLContext
    )
    assert isinstance(
        EventSource("https://127.0.0.1:1/", verify=str(tmp_path))._spec.verify, ssl.SSLContext
    )
