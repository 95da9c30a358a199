"""Review of SSEServer(port=), the CLI's lazy imports, ConnectError's reason
and the CLI's TLS context through ssl_context_for (178b2d3..7fcd75c)."""

from __future__ import annotations

import errno
import socket
import ssl
from pathlib import Path

import pytest
import trustme

from eventsource._cli import main
from eventsource._request import ssl_context_for
from eventsource._stack import HTTPX
from eventsource.testing import SSEServer

from ._fastpath import make_tls


def test_a_port_held_by_a_connection_is_not_blamed_on_a_listener() -> None:
    # Nothing listens on the port: an outgoing connection's local end uses it
    # (as an ephemeral port may, once the server that had it stopped).
    with socket.socket() as listener, socket.socket() as client:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        client.bind(("127.0.0.1", 0))
        port = client.getsockname()[1]
        client.connect(listener.getsockname())
        with pytest.raises(OSError, match=f"127.0.0.1:{port} is in use") as info:
            with SSEServer(port=port):
                pass
    assert info.value.errno == errno.EADDRINUSE
    assert "another server listens there" not in str(info.value)
    assert "a connection" in str(info.value)


def _alpn_offered(client: ssl.SSLContext, ca: trustme.CA) -> str | None:
    """The protocol a server offering h2 and http/1.1 picks from what
    ``client`` offers (a handshake in memory, no socket)."""
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server)
    server.set_alpn_protocols(["h2", "http/1.1"])
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    ours = client.wrap_bio(c_in, c_out, server_hostname="127.0.0.1")
    theirs = server.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(10):
        for side in (ours, theirs):
            try:
                side.do_handshake()
            except ssl.SSLWantReadError:
                pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
    assert ours.version() is not None  # the handshake completed
    return ours.selected_alpn_protocol()


def test_the_cli_http2_leaves_the_shared_tls_context_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    tls = make_tls()
    pem = tmp_path / "ca.pem"
    tls.ca.cert_pem.write_to_path(str(pem))
    # The library's default context (its own cache entry: keyed by the
    # environment) trusts the test CA.
    monkeypatch.setenv("SSL_CERT_FILE", str(pem))
    offering_h2 = ssl.create_default_context(cafile=str(pem))
    offering_h2.set_alpn_protocols(["h2"])
    assert _alpn_offered(offering_h2, tls.ca) == "h2"  # the check sees an offer
    shared = ssl_context_for(True, HTTPX)
    assert _alpn_offered(shared, tls.ca) is None
    with SSEServer(["a"], tls=tls.server) as server:
        assert main([server.url, "-n", "1", "-f", "raw", "--http2"]) == 0
    assert capsys.readouterr().out == "data: a\n\n"
    assert ssl_context_for(True, HTTPX) is shared
    assert _alpn_offered(shared, tls.ca) is None  # an HTTP/1.1 source's context offers no h2
