"""Is the port an ``http://`` URL named a TLS port?

Asked once, before a source ever opened, when the server hung up on the plain request without an
answer: OpenSSL's servers (uvicorn, hypercorn) do so when the first bytes
are no TLS record, and on a client of the user's own h11 hides a TLS alert
the same way. Retrying cannot fix a wrong scheme, so the source asks the
port with a TLS ClientHello (no request, no certificate checked) and fails
at once with a ConnectError when a TLS record comes back. The sans-IO parts
are here; the readers (``_io``) connect.
"""

from __future__ import annotations

import ipaddress
import ssl
import urllib.request
from typing import TYPE_CHECKING, Any

from ._backend import TLS_RECORD
from ._errors import ConnectError
from ._httpx import never_sent

if TYPE_CHECKING:
    from ._machine import Machine

__all__ = ["PROBE_TIMEOUT", "answers_tls", "client_hello", "speaks_tls_error", "target"]

#: Seconds the check may take, connect and answer together: a TLS server
#: answers a ClientHello at once; a slower port is taken for no TLS one.
PROBE_TIMEOUT = 2.0

_context: ssl.SSLContext | None = None


def client_hello(host: str) -> bytes:
    """A TLS ClientHello for this host (SNI unless it is an IP address)."""
    global _context
    if _context is None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # only whether TLS answers is asked
        _context = context
    try:
        ipaddress.ip_address(host)
        name: str | None = None
    except ValueError:
        name = host
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = _context.wrap_bio(incoming, outgoing, server_hostname=name)
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def answers_tls(data: bytes) -> bool:
    """Whether a port's first bytes in answer to a ClientHello are TLS's."""
    return TLS_RECORD.match(data) is not None


def target(exc: BaseException, machine: Machine) -> tuple[str, int] | None:
    """The host and port to ask, for a request that failed with this.

    None when there is nothing to ask: the source opened before, it would
    not try again anyway (``reconnect=False``, a request other than GET:
    the failure is final, and asking would only delay it), no connection
    was made, the URL is not ``http://``, the failure is no hang-up without
    an answer, or a proxy from the environment stands between (the port
    seen is the proxy's).
    """
    if machine.opens or machine.policy.reconnect is False or not machine.resend:
        return None
    if never_sent(exc):
        return None
    from ._stack import loaded_stacks  # (it imports _httpx, which this module does)

    stacks = loaded_stacks()
    if not any(isinstance(exc, (s.http.RemoteProtocolError, s.http.ReadError)) for s in stacks):
        return None
    try:
        url: Any = exc.request.url  # type: ignore[attr-defined]
    except (AttributeError, RuntimeError):  # httpx's .request raises when unset
        return None
    if url.scheme != "http" or not url.host:
        return None
    proxies = urllib.request.getproxies_environment()
    if (proxies.get("http") or proxies.get("all")) and not urllib.request.proxy_bypass(url.host):
        return None
    return url.host, url.port or 80


def speaks_tls_error(exc: BaseException) -> ConnectError:
    """The error for an ``http://`` URL whose port answered TLS."""
    detail = "the server answered with TLS"
    error = ConnectError(f"{detail}: use https:// for a TLS port", detail=detail)
    error.__cause__ = exc
    return error
