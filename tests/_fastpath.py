"""Helpers of tests/test_fast_path.py and tests/test_backend.py: which body a
source opened (and from which stream), a trustme CA for TLS on loopback, and
the environment of a source's own client (its TLS trust, its proxies). The
fixtures made of them (``loopback_only``, ``bodies``, ``tls``) are in
tests/conftest.py."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme

import eventsource._io as io_module
import eventsource._request as request_module

__all__ = [
    "PROXY_VARIABLES",
    "TLS",
    "Opened",
    "clear_proxies",
    "fast",
    "make_tls",
    "public",
    "spy_bodies",
]

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


def fast(mode: str) -> str:
    """The fast read's body: straight from a stream of eventsource's backend."""
    return "SyncFast" if mode == "sync" else "AsyncFast"


def public(mode: str) -> str:
    """httpx's public stream."""
    return "SyncPublic" if mode == "sync" else "AsyncPublic"


class Opened(list):  # type: ignore[type-arg]
    """The kind of body each response of the test opened, in order; and in
    ``streams`` the class of the stream each one is read (and aborted)
    from, None for httpx's public stream."""

    def __init__(self) -> None:
        super().__init__()
        self.streams: list[str | None] = []


def spy_bodies(monkeypatch: pytest.MonkeyPatch) -> Opened:
    opened = Opened()
    for name in ("open_async_body", "open_sync_body"):
        original = getattr(io_module, name)

        def spy(response: httpx.Response, timeout: float | None, _original: Any = original) -> Any:
            body, stream = _original(response, timeout)
            opened.append(type(body).__name__)
            opened.streams.append(None if stream is None else type(stream).__name__)
            return body, stream

        monkeypatch.setattr(io_module, name, spy)
    return opened


def clear_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy from the environment: every request goes to 127.0.0.1."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@dataclass(frozen=True)
class TLS:
    server: ssl.SSLContext  # a certificate for 127.0.0.1 from the test CA
    client: ssl.SSLContext  # trusts the test CA
    ca: trustme.CA

    def trust_in_own_clients(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A source without client= verifies with the client context
        (EventSource has no verify= option)."""
        monkeypatch.setattr(request_module, "_default_ssl_context", lambda *_: self.client)

    def trust_everywhere(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        """Every default context made from now on trusts the test CA too
        (OpenSSL reads SSL_CERT_FILE): httpcore's context for an https proxy."""
        pem = tmp_path / "ca.pem"
        self.ca.cert_pem.write_to_path(str(pem))
        monkeypatch.setenv("SSL_CERT_FILE", str(pem))


def make_tls() -> TLS:
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return TLS(server, client, ca)
