"""Does the peer that hung up on a plain HTTP request speak TLS?

OpenSSL's servers (uvicorn, hypercorn) close the connection without a word
when the first bytes of a connection are no TLS record: to a client, an
``http://`` URL to their TLS port looks like a dropped connection, retried
for ever. Retrying cannot fix a wrong scheme, so before a source ever
opened, a stream of eventsource's network backend whose plain connection
ended where a response head was due (nothing of it read) asks the address it
was connected to, once a source, with a TLS ClientHello (no request, no
certificate checked). A TLS record in answer is a ``SpeaksTLS`` (a fatal
``ConnectError``, "use https://").

The check runs inside the request's send, so the request's interruption,
cancellation and the origin's gate cover it, and it asks the peer the
request went to (a proxy's address when one is in the way). A client of the
caller's own (httpcore's backend), mocks and ASGI apps are never checked.
The driver hands the check to the send in ``CHECK_TLS`` (a context
variable), only while the source would try again (a failure that ends it
anyway is not delayed by a check).
"""

from __future__ import annotations

import contextvars
import re
import socket
import ssl
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio

if TYPE_CHECKING:
    from ._machine import Machine

__all__ = ["CHECK_TLS", "PROBE_TIMEOUT", "TLS_RECORD", "TLSCheck", "ask", "ask_async", "for_send"]

#: Seconds the check may take, connect and answer together: a TLS server
#: answers a ClientHello at once; a slower peer is taken for no TLS one.
PROBE_TIMEOUT = 2.0

# A TLS record's first bytes: an alert (21) or a handshake (22), version 3.x.
# An HTTP/1.x answer starts with "HTTP/": these can only be a TLS server's.
TLS_RECORD = re.compile(rb"[\x15\x16]\x03")


class TLSCheck:
    """A source's one check: ``done`` once a check had its answer."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = False


CHECK_TLS: contextvars.ContextVar[TLSCheck | None] = contextvars.ContextVar(
    "eventsource_check_tls", default=None
)


def for_send(check: TLSCheck, machine: Machine) -> TLSCheck | None:
    """What a driver puts in ``CHECK_TLS`` for its next send.

    The source's check while the source never opened and would try again (a
    GET, or ``resume="resend"``, and reconnecting), else None.
    """
    if check.done or machine.opens or not machine.resend or machine.policy.reconnect is False:
        return None
    return check


_context: ssl.SSLContext | None = None


def _client_hello() -> bytes:
    """A TLS ClientHello (no SNI: the peer is asked by its address)."""
    global _context
    if _context is None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # only whether TLS answers is asked
        _context = context
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = _context.wrap_bio(incoming, outgoing)
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def ask(peer: Any, family: int, holding: Callable[[socket.socket | None], None]) -> bool:
    """Ask the peer (blocking) whether it speaks TLS.

    False when it does not answer so in ``PROBE_TIMEOUT``, or when the check
    was shut down (``holding`` gets the check's socket while it runs, for
    ``abort()``).
    """
    deadline = time.monotonic() + PROBE_TIMEOUT
    data = b""
    sock = socket.socket(family, socket.SOCK_STREAM)
    holding(sock)
    try:
        sock.settimeout(PROBE_TIMEOUT)
        sock.connect(peer)
        sock.sendall(_client_hello())
        while len(data) < 2 and (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            chunk = sock.recv(16)
            if not chunk:
                break
            data += chunk
    except OSError:  # TimeoutError too
        pass
    finally:
        holding(None)
        sock.close()
    return TLS_RECORD.match(data) is not None


async def ask_async(peer: Any) -> bool:
    """Ask the peer whether it speaks TLS.

    False when it does not answer so in ``PROBE_TIMEOUT``. A cancel of the
    caller's ends it (raised).
    """
    data = b""
    with anyio.move_on_after(PROBE_TIMEOUT):
        try:
            async with await anyio.connect_tcp(peer[0], peer[1]) as stream:
                await stream.send(_client_hello())
                while len(data) < 2:
                    data += await stream.receive(16)
        except (OSError, anyio.EndOfStream, anyio.BrokenResourceError):
            pass
    return TLS_RECORD.match(data) is not None
