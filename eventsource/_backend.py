"""eventsource's network backend for httpcore and httpcore2, blocking.

Their public ``NetworkBackend`` API (``_httpx.Core`` has the names of each);
``_abackend`` has the async twin, ``_tls`` the TLS layer.

Why a backend of our own: the streams it makes hand h11 (through httpcore)
the response *head* only. The body bytes stay in the stream, so that an
event-stream body can be read straight from it (``_body``) with
``_chunked``'s framing instead of through h11, httpcore and httpx, each of
which copies and wraps every chunk; a refused response's body is read the
same way. h11 then never sees the end of such a body, so httpcore closes the
connection with the response: it is never handed to another request while a
source reads it, and shutting it down (``abort()``) touches nobody else.

How a head is cut (``HeadCut``): once a write carried an HTTP/1.x request
head, reads return bytes up to the end of the next response head, no
further; a 1xx head (but 101) is followed by another head; after a final
head, reads return the rest as it comes. Nothing is cut before a request
head was written (a SOCKS handshake runs over the same stream), after a 2xx
answer to CONNECT (a tunnel: the bytes held go to the TLS layer started on
it), or when ALPN chose h2.

Interrupting: ``abort()`` shuts the connection's socket down, from any
thread or a signal handler (a system call, no lock), so that the read, write
or wait for a head in progress ends; in a process forked after the connect,
it does nothing (the socket is the parent's too). A sync source that sends a
request sets ``ARMING`` (a context variable) around the send: the stream that
the request's head is written to registers itself there, so a close() from
another thread reaches it while the source waits for the head.
"""

from __future__ import annotations

import contextvars
import os
import re
import select
import socket
import ssl
import struct
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol

from . import _probe
from ._httpx import HTTPCORE, Core, SpeaksTLS
from ._probe import TLS_RECORD

if TYPE_CHECKING:
    from ._tls import SyncTLS

__all__ = [
    "ARMING",
    "READ_SIZE",
    "Arming",
    "Cutting",
    "SocketStream",
    "HeadCut",
    "SyncBackend",
    "SyncStream",
]

READ_SIZE = 64 * 1024  # bytes asked of the socket per read


class Arming(Protocol):
    """What ``ARMING`` holds: the interrupter of the request being sent."""

    def arm(self, stream: Any) -> None: ...


ARMING: contextvars.ContextVar[Arming | None] = contextvars.ContextVar(
    "eventsource_arming", default=None
)

_REQUEST_HEAD = re.compile(rb"[A-Z]+ ([^ \r\n]+) HTTP/1\.[01]\r?\n")
_HOST = re.compile(rb"\r?\n[Hh][Oo][Ss][Tt]:[ \t]*([A-Za-z0-9.-]+)")
_HEAD_END = re.compile(rb"\n\r?\n")
_STATUS = re.compile(rb"HTTP/1\.[01] +([0-9]{3})")
_STATUS_BYTES = 16  # enough of a head's start to hold its status code


class HeadCut:
    """Sans-IO: where the reads of a connection's bytes stop.

    So that h11 gets each response head and nothing after it (see the module
    docstring).
    """

    __slots__ = (
        "_start",
        "_tail",
        "body_fresh",
        "connect",
        "heads",
        "heard",
        "host",
        "preamble",
        "proxied",
        "tunnel",
    )

    def __init__(self) -> None:
        self.heads = False  # cutting: a response head is due
        self.connect = False  # the request due an answer is a CONNECT
        self.tunnel = False  # a CONNECT was answered: raw bytes from now on
        self.heard = False  # a byte of a head was read on the connection
        # What the first request head said of the peer (for _probe): bytes
        # before it (a SOCKS handshake), a proxy's request form, the Host.
        self.preamble = False
        self.proxied = False
        self.host: str | None = None
        # The last head was a final one and no byte after it was read yet.
        self.body_fresh = False
        # The head read so far, across reads: its last bytes (an end may be
        # split between two reads) and its first ones (the status line).
        self._tail = b""
        self._start = b""

    def wrote(self, data: bytes | bytearray | memoryview) -> None:
        """A write: a request head starts the cutting."""
        if not self.tunnel and (head := _REQUEST_HEAD.match(data)):
            if not self.heads:
                self._tail = self._start = b""
            self.heads = True
            self.connect = bytes(data[:8]) == b"CONNECT "
            self.body_fresh = False
            if self.host is None:  # the connection's first request
                self.proxied = self.connect or head.group(1).startswith(b"http")
                host = _HOST.search(data)
                self.host = host.group(1).decode("ascii", "replace") if host else ""
        elif self.host is None and data:
            self.preamble = True

    def cut(self, data: bytes) -> int:
        """How many of these bytes (read while a head is due) to hand over.

        Up to the end of the head, or all when it does not end in them.
        SpeaksTLS when the answer is a TLS record (see TLS_RECORD).
        """
        self.heard = True
        tail = self._tail
        if not self._start and not tail and TLS_RECORD.match(data):
            raise SpeaksTLS("the server answered with TLS")
        end = _HEAD_END.search(tail + data if tail else data)
        if len(self._start) < _STATUS_BYTES:
            self._start += data[: _STATUS_BYTES - len(self._start)]
        if end is None:
            self._tail = (tail + data)[-2:]
            return len(data)
        n = end.end() - len(tail)
        status = _STATUS.match(self._start)
        self._tail = self._start = b""  # the next head (after a 1xx) starts afresh
        code = int(status.group(1)) if status is not None else 0
        if code < 100 or code >= 200 or code == 101:
            self.heads = False
            self.body_fresh = True
            if self.connect and 200 <= code < 300:
                self.tunnel = True
        return n


def _can_cut(stream: Any) -> bool:
    tls = stream.get_extra_info("ssl_object")
    return tls is None or tls.selected_alpn_protocol() != "h2"


# --- blocking ------------------------------------------------------------------------


class Cutting:
    """What every stream of ours shares.

    The bytes held past a head, the cut, and the process that connected.
    """

    _held: bytes
    _cut: HeadCut
    core: Core
    _peer: Any = None  # the address connected to, once a request was written (sockets)

    def _answered_tls(self) -> Exception:
        """The core's SpeaksTLSError for this connection's peer."""
        peer = self._peer
        what = "the proxy" if self._cut.proxied else "the server"
        if peer is not None:
            where = f"[{peer[0]}]:{peer[1]}" if ":" in peer[0] else f"{peer[0]}:{peer[1]}"
            what = f"{what} at {where}"
        error = self.core.speaks_tls(f"{what} answered with TLS")
        error.proxy = self._cut.proxied
        return error

    def _hand(self, data: bytes) -> bytes:
        """Read bytes as httpcore may have them (the rest is held)."""
        cut = self._cut
        if cut.heads and data:
            try:
                n = cut.cut(data)
            except SpeaksTLS as exc:
                raise self._answered_tls() from exc
            if n < len(data):
                self._held = data[n:] + self._held
                return data[:n]
        else:
            cut.body_fresh = False
        return data

    def _take_held(self, max_bytes: int) -> bytes:
        held = self._held
        data, self._held = held[:max_bytes], held[max_bytes:]
        return data

    def _wrote(self, data: bytes) -> None:
        arming = ARMING.get()
        if arming is not None:
            arming.arm(self)
        self._cut.wrote(data)

    @property
    def body_fresh(self) -> bool:
        """A final response head was read and no byte after it yet."""
        return self._cut.body_fresh


class SocketStream(Cutting):
    """A stream on a socket of its own, which ``abort()`` shuts down."""

    _sock: Any
    _pid: int  # the process that connected
    aborted = False
    _asking: socket.socket | None = None  # the socket of a TLS check (_probe)

    def _wrote(self, data: bytes) -> None:
        if self._peer is None:  # (read now: once the peer hung up, it is gone)
            try:
                self._peer = self._sock.getpeername()
            except OSError:
                pass
        super()._wrote(data)

    def abort(self) -> None:
        """End the read, write or head wait in progress, and every later one.

        From any thread, or a signal handler; nothing in a forked child.
        """
        self.aborted = True
        if os.getpid() == self._pid:
            _shutdown(self._sock)
            asking = self._asking
            if asking is not None:
                _shutdown(asking)

    # A plain connection that ended where a response head was due (see _probe)

    def _hung_up(self) -> _probe.TLSCheck | None:
        """The source's TLS check, when it is due here; else None.

        Due when this connection (to the server, not through a SOCKS
        handshake) ended or broke where a response head was due, nothing of
        any head read on it.
        """
        cut = self._cut
        if self.aborted or not cut.heads or cut.tunnel or cut.heard or cut.preamble:
            return None
        check = _probe.CHECK_TLS.get()
        return check if check is not None and check.due else None

    def _sni(self) -> str | None:
        host = self._cut.host
        if not host or self._cut.proxied or host.replace(".", "").isdigit():
            return None
        return host

    def _check_tls(self) -> None:
        """Raise the core's SpeaksTLSError when the peer speaks TLS (blocking)."""
        check = self._hung_up()
        if check is None or self._peer is None:
            return
        if check.verdict is None:
            data = _probe.ask(self._peer, self._sock.family, self._sni(), self._hold_asking)
            if self.aborted:
                return  # interrupted: asked again on a later attempt
            check.heard(data)
        if check.verdict:
            raise self._answered_tls()

    async def _acheck_tls(self) -> None:
        """Raise the core's SpeaksTLSError when the peer speaks TLS."""
        check = self._hung_up()
        if check is None or self._peer is None:
            return
        if check.verdict is None:
            data = await _probe.ask_async(self._peer, self._sni())
            if self.aborted:
                return
            check.heard(data)
        if check.verdict:
            raise self._answered_tls()

    def _hold_asking(self, sock: socket.socket | None) -> None:
        self._asking = sock
        if sock is not None and self.aborted:
            _shutdown(sock)  # aborted before it was held


# --- blocking ------------------------------------------------------------------------


class SyncStream(SocketStream):
    """A TCP connection (plain, or TLS in ``ssl.SSLSocket``) that cuts heads.

    httpcore's ``NetworkStream`` API, raising ``core``'s errors.
    """

    def __init__(self, sock: socket.socket, core: Core, pid: int | None = None) -> None:
        self._sock = sock
        self.core = core
        self._pid = os.getpid() if pid is None else pid  # the connecting process
        self._held = b""
        self._cut = HeadCut()
        self._mode: tuple[str, float | None] | None = None
        self._plain = not isinstance(sock, ssl.SSLSocket)

    # httpcore's side

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        if self._held:
            return self._hand(self._take_held(max_bytes))
        try:
            data = self._recv(max_bytes, timeout)
        except self.core.read_error:
            if self._plain:
                self._check_tls()
            raise
        if not data and self._plain:
            self._check_tls()
        return self._hand(data)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._wrote(buffer)
        if not buffer:
            return
        try:
            self._set_mode("w", timeout)
            self._sock.sendall(buffer)
        except TimeoutError as exc:
            raise self.core.write_timeout(str(exc) or "timed out") from exc
        except OSError as exc:
            raise self.core.write_error(str(exc) or repr(exc)) from exc

    def close(self) -> None:
        self._sock.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> SyncStream | SyncTLS:
        from ._tls import SyncTLS

        if self._plain and not self._held:
            # The socket's own TLS: the fastest reads.
            self._set_mode("w", timeout)
            try:
                sock = ssl_context.wrap_socket(self._sock, server_hostname=server_hostname)
            except TimeoutError as exc:
                self._sock.close()
                raise self.core.connect_timeout(str(exc) or "timed out") from exc
            except OSError as exc:
                self._sock.close()
                raise self.core.connect_error(str(exc) or repr(exc)) from exc
            except BaseException:
                self._sock.close()
                raise
            return SyncStream(sock, self.core, self._pid)
        # Bytes held (after a CONNECT) or TLS inside TLS: a TLS layer of ours.
        return SyncTLS.over(self, ssl_context, server_hostname, timeout)

    def get_extra_info(self, info: str) -> Any:
        sock = self._sock
        if info == "ssl_object":
            # An SSLSocket answers what httpx asks of an SSLObject
            # (selected_alpn_protocol(), getpeercert(), version()).
            return None if self._plain else sock
        if info == "client_addr":
            return sock.getsockname()
        if info == "server_addr":
            return sock.getpeername()
        if info == "socket":
            return sock
        if info == "is_readable":
            return bool(self._held) or _readable(sock)
        return None

    # eventsource's side

    @property
    def abortable(self) -> bool:
        """Shutting it down ends this connection's one exchange (not h2)."""
        return _can_cut(self)

    def receive(self, timeout: float | None) -> bytes:
        """The body's next bytes (b"" at the end): what is held, then the socket's."""
        held = self._held
        if held:
            self._held = b""
            return held
        return self._recv(READ_SIZE, timeout)

    def _recv(self, max_bytes: int, timeout: float | None) -> bytes:
        try:
            if self._mode != ("r", timeout):
                self._set_mode("r", timeout)
            data: bytes = self._sock.recv(max_bytes)
            if not data and self.aborted:
                raise self.core.read_error("interrupted")
            return data
        except (TimeoutError, BlockingIOError) as exc:  # SO_RCVTIMEO's EAGAIN: timed out
            raise self.core.read_timeout(str(exc) or "timed out") from exc
        except OSError as exc:
            raise self.core.read_error(str(exc) or repr(exc)) from exc

    def _set_mode(self, kind: str, timeout: float | None) -> None:
        mode = (kind, timeout)
        if self._mode == mode:
            return
        self._mode = mode
        # A socket with a timeout polls before every recv (two system calls a
        # read); on Linux a plain socket reads blocking with the kernel's own
        # receive timeout instead: one call a read.
        if kind == "r" and self._plain and _kernel_timeout(self._sock, timeout):
            return
        self._sock.settimeout(timeout)


def _readable(sock: Any) -> bool:
    """Bytes (or the end) wait to be read.

    An idle pooled connection the server closed (poll, where there is one:
    select() refuses a descriptor past 1023).
    """
    try:
        fd = sock.fileno()
        if fd < 0:
            return True
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            return bool(poller.poll(0))
        return bool(select.select([fd], [], [], 0)[0])
    except (OSError, ValueError):
        return True  # closed: "readable", so that httpcore drops it


def _shutdown(sock: Any) -> None:
    """Shut a socket down for reading and writing.

    An SSLSocket's own shutdown() would drop its TLS state first, and a write
    racing it could go out in plaintext: the plain socket's shutdown(2) is
    called instead.
    """
    try:
        if isinstance(sock, ssl.SSLSocket):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        else:
            sock.shutdown(socket.SHUT_RDWR)
    except (OSError, ValueError):
        pass  # not connected any more, or closed: nothing to end


def _kernel_timeout(sock: socket.socket, timeout: float | None) -> bool:
    """Make a plain socket blocking, with SO_RCVTIMEO as its read timeout.

    Linux only: the option's struct differs elsewhere. False: not done.
    """
    if not sys.platform.startswith("linux"):
        return False
    seconds = 0 if timeout is None else max(timeout, 1e-6)  # 0 means no timeout
    whole = int(seconds)
    try:
        sock.setsockopt(
            socket.SOL_SOCKET,
            socket.SO_RCVTIMEO,
            struct.pack("@ll", whole, round((seconds - whole) * 1e6)),
        )
        sock.settimeout(None)
    except (OSError, OverflowError):  # a timeout too big for a timeval: Python's own
        return False
    return True


def configure(sock: socket.socket, options: Iterable[Any] | None) -> None:
    """The socket options: httpcore's, and no Nagle delay (as httpcore's backends)."""
    for option in options or ():
        sock.setsockopt(*option)
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class SyncBackend:
    """A blocking network backend of ``SyncStream``s, for ``core``'s pools.

    httpcore's ``NetworkBackend`` API.
    """

    def __init__(self, core: Core = HTTPCORE) -> None:
        self.core = core

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> SyncStream:
        source = None if local_address is None else (local_address, 0)
        try:
            sock = socket.create_connection((host, port), timeout, source_address=source)
        except TimeoutError as exc:
            raise self.core.connect_timeout(str(exc) or "timed out") from exc
        except OSError as exc:
            raise self.core.connect_error(str(exc) or repr(exc)) from exc
        try:
            configure(sock, socket_options)
        except BaseException:
            sock.close()
            raise
        return SyncStream(sock, self.core)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> SyncStream:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            configure(sock, socket_options)
            sock.settimeout(timeout)
            sock.connect(path)
        except TimeoutError as exc:
            sock.close()
            raise self.core.connect_timeout(str(exc) or "timed out") from exc
        except OSError as exc:
            sock.close()
            raise self.core.connect_error(str(exc) or repr(exc)) from exc
        return SyncStream(sock, self.core)
