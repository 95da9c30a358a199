"""Does the peer that hung up on a plain HTTP request speak TLS?

OpenSSL's servers (uvicorn, hypercorn) close the connection without a word
when the first bytes of a connection are no TLS record: to a client, an
``http://`` URL to their TLS port looks like a dropped connection, retried
for ever. Retrying cannot fix a wrong scheme, so before a source ever
opened, a stream of eventsource's network backend whose plain connection
ended where a response head was due (nothing of it read) asks the address it
was connected to with a TLS ClientHello (no request, no certificate
checked; the request's Host as SNI, for fronts that route by it). A TLS
record in answer is a ``SpeaksTLS`` (a fatal ``ConnectError``, "use
https://"); another answer, or silence, means no; a peer that closes
without a word is asked again on a later hang-up, ``ASKS`` times at most.
Not through a SOCKS proxy (its handshake came first: the peer is the
proxy's), and an HTTP proxy that answers with TLS is named as the proxy.

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


#: Checks a source makes at most while none had an answer (the peer closed,
#: refused or stayed silent: a TLS service still starting behind a port
#: that accepts); one answer, TLS or not, is the verdict.
ASKS = 3


class TLSCheck:
    """A source's check: its ``verdict`` (None until a check had an answer)."""

    __slots__ = ("asks", "verdict")

    def __init__(self) -> None:
        self.verdict: bool | None = None
        self.asks = 0

    @property
    def due(self) -> bool:
        """Whether a hang-up should be checked (or failed on the verdict)."""
        return self.verdict is not False and (self.verdict or self.asks < ASKS)

    def heard(self, data: bytes | None) -> bool:
        """Take a check's answer (None: the peer kept silent); whether it speaks TLS."""
        self.asks += 1
        if data is not None and TLS_RECORD.match(data):
            self.verdict = True
        elif data is None or len(data) >= 2 or self.asks >= ASKS:
            # It answered, and not with TLS; or it waits for more (a plain
            # server wanting a line end); or it never answers.
            self.verdict = False
        return bool(self.verdict)


CHECK_TLS: contextvars.ContextVar[TLSCheck | None] = contextvars.ContextVar(
    "eventsource_check_tls", default=None
)


def for_send(check: TLSCheck, machine: Machine) -> TLSCheck | None:
    """What a driver puts in ``CHECK_TLS`` for its next send.

    The source's check while the source never opened and would try again (a
    GET, or ``resume="resend"``, and reconnecting), else None.
    """
    policy = machine.policy
    if not check.due or machine.opens or not machine.resend:
        return None
    if policy.reconnect is False or policy.max_retries == 0:
        return None
    return check


_context: ssl.SSLContext | None = None


def _client_hello(name: str | None) -> bytes:
    """A TLS ClientHello, with this server name (SNI) unless None."""
    global _context
    if _context is None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # only whether TLS answers is asked
        _context = context
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = _context.wrap_bio(incoming, outgoing, server_hostname=name)
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def ask(
    peer: Any, family: int, name: str | None, holding: Callable[[socket.socket | None], None]
) -> bytes | None:
    """Ask the peer (blocking) with a ClientHello: its first bytes.

    Empty when it closed or refused, or when the check was shut down
    (``holding`` gets the check's socket while it runs, for ``abort()``);
    None when it stayed silent for ``PROBE_TIMEOUT``.
    """
    deadline = time.monotonic() + PROBE_TIMEOUT
    data = b""
    sock = socket.socket(family, socket.SOCK_STREAM)
    holding(sock)
    try:
        sock.settimeout(PROBE_TIMEOUT)
        sock.connect(peer)
        sock.sendall(_client_hello(name))
        while len(data) < 2:
            left = deadline - time.monotonic()
            if left <= 0:
                return None if not data else data
            sock.settimeout(left)
            chunk = sock.recv(16)
            if not chunk:
                break
            data += chunk
    except TimeoutError:
        return None if not data else data
    except OSError:
        pass
    finally:
        holding(None)
        sock.close()
    return data


async def ask_async(peer: Any, name: str | None) -> bytes | None:
    """Ask the peer with a ClientHello: its first bytes.

    Empty when it closed or refused; None when it stayed silent for
    ``PROBE_TIMEOUT``. A cancel of the caller's ends it (raised).
    """
    data = b""
    with anyio.move_on_after(PROBE_TIMEOUT) as scope:
        try:
            async with await anyio.connect_tcp(peer[0], peer[1]) as stream:
                await stream.send(_client_hello(name))
                while len(data) < 2:
                    data += await stream.receive(16)
        except (OSError, anyio.EndOfStream, anyio.BrokenResourceError):
            pass
    if scope.cancelled_caught and not data:
        return None
    return data
