"""eventsource's network backend for httpcore and httpcore2, async.

See ``_backend`` for what its streams do and why: on asyncio a protocol of
ours on the connection's transport, made with the loop's public
``create_connection()`` over a socket we connected; on trio a trio socket.
TLS is ``_tls.AsyncTLS``.

- asyncio: the protocol is a buffered one (the transport reads into a
  buffer of this thread's, where a plain protocol's transport would allocate
  256 KiB for every read) and keeps reading, so a wake-up costs one future;
  it buffers up to ``HIGH_WATER`` bytes nobody reads, then pauses. The read
  timeout is one timer per timeout period, not one per read. The protocol
  holds its stream weakly: a stream dropped unclosed aborts its transport.
- trio: the socket's own ``recv()``; the read timeout is kept by a watchdog
  (a system task that sleeps a timeout period at a time) which shuts down a
  connection whose read has waited too long: a timed-out read ends the
  connection anyway, and a cancel scope per read would cost more than the
  read and the parsing together.
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import os
import socket
import sys
import threading
import weakref
from collections.abc import Iterable
from typing import Any

import anyio
import anyio.lowlevel

from ._backend import READ_SIZE, HeadCut, SocketStream, _readable
from ._connect import first_connected, interleaved
from ._httpx import HTTPCORE, Core
from ._tls import AsyncStartsTLS

__all__ = ["HIGH_WATER", "AsyncBackend"]

HIGH_WATER = 256 * 1024  # bytes an asyncio stream holds unread before it pauses reading
_local = threading.local()  # the asyncio protocols' read buffer, one per thread (event loop)


class _AsyncSocketStream(SocketStream, AsyncStartsTLS):
    """What the asyncio and the trio stream share."""

    core: Core
    # Plain TCP: our pools speak HTTP/1.1 on it (they choose HTTP/2 through
    # ALPN only), so a connection is never a shared HTTP/2 one.
    abortable = True


# --- asyncio --------------------------------------------------------------------------


class _Protocol(asyncio.BufferedProtocol):
    __slots__ = ("_early", "_stream")

    def __init__(self) -> None:
        self._stream: weakref.ReferenceType[AsyncioStream] | None = None
        self._early: list[bytes] = []

    def attach(self, stream: AsyncioStream) -> None:
        self._stream = weakref.ref(stream)
        if self._early:  # (bytes before the stream existed: the same loop turn)
            for data in self._early:
                stream.received(data)
            self._early = []

    def get_buffer(self, sizehint: int) -> memoryview:
        try:
            return _local.view  # type: ignore[no-any-return]
        except AttributeError:
            _local.view = memoryview(bytearray(READ_SIZE))
            return _local.view  # type: ignore[no-any-return]

    def buffer_updated(self, nbytes: int) -> None:
        # Copied out at once: the buffer is the next read's.
        data = _local.view[:nbytes].tobytes()
        if self._stream is None:
            self._early.append(data)
            return
        stream = self._stream()
        if stream is not None:
            stream.received(data)

    def eof_received(self) -> bool:
        stream = self._stream() if self._stream is not None else None
        if stream is not None:
            stream.ended(None)
        return True  # closed by aclose(), as httpcore expects

    def connection_lost(self, exc: Exception | None) -> None:
        stream = self._stream() if self._stream is not None else None
        if stream is not None:
            stream.ended(exc if exc is not None else ConnectionResetError("connection lost"))
            stream.writable()

    def pause_writing(self) -> None:
        stream = self._stream() if self._stream is not None else None
        if stream is not None:
            stream.write_paused = True

    def resume_writing(self) -> None:
        stream = self._stream() if self._stream is not None else None
        if stream is not None:
            stream.write_paused = False
            stream.writable()


def _check(ref: weakref.ReferenceType[AsyncioStream]) -> None:
    """The read timeout's timer (it holds its stream weakly too)."""
    stream = ref()
    if stream is not None:
        stream.check()


class AsyncioStream(_AsyncSocketStream):
    """A TCP connection on asyncio, read through a protocol of ours.

    httpcore's ``AsyncNetworkStream`` API, raising ``core``'s errors.
    """

    def __init__(self, sock: socket.socket, transport: asyncio.Transport, core: Core) -> None:
        self.core = core
        self._loop = asyncio.get_running_loop()
        self._sock = sock
        self._pid = os.getpid()
        self._transport = transport
        self._held = b""
        self._cut = HeadCut()
        self._waiter: asyncio.Future[None] | None = None
        self._drain: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._deadline = math.inf
        self._expired = False
        self._eof = False
        self._lost: Exception | None = None
        self._paused = False
        self._closed = False
        self._chunks: list[bytes] = []
        self._size = 0
        self.write_paused = False

    def __del__(self) -> None:
        # Dropped unclosed (a source nobody closed): end its connection, as
        # collecting a transport would. Never in a forked child: the loop and
        # the connection are the parent's.
        if not self._closed and os.getpid() == self._pid:
            try:
                self._loop.call_soon_threadsafe(self._transport.abort)
            except Exception:  # noqa: S110 (the loop is closed: so is the transport)
                pass

    # the protocol's side

    def received(self, data: bytes) -> None:
        self._chunks.append(data)
        self._size += len(data)
        if self._size > HIGH_WATER and not self._paused:
            self._paused = True
            self._transport.pause_reading()
        self._wake()

    def ended(self, exc: Exception | None) -> None:
        self._eof = True
        if exc is not None and self._lost is None:
            self._lost = exc
        self._wake()

    def writable(self) -> None:
        drain = self._drain
        if drain is not None and not drain.done():
            drain.set_result(None)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def check(self) -> None:
        """The timer: a wait that has lasted the timeout ends.

        One that started later is checked again at its own deadline.
        """
        self._timer = None
        waiter = self._waiter
        if waiter is None or waiter.done():
            return  # not waiting: the next wait arms the timer again
        if self._loop.time() < self._deadline:
            if self._deadline != math.inf:  # (an untimed wait needs no timer)
                self._timer = self._loop.call_at(self._deadline, _check, weakref.ref(self))
            return
        self._expired = True
        waiter.set_result(None)

    # httpcore's side

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        if not self._held:
            try:
                self._held = await self.receive(timeout)
            except self.core.read_error:
                await self._acheck_tls()
                raise
            if not self._held:
                await self._acheck_tls()
        return self._hand(self._take_held(max_bytes))

    async def receive(self, timeout: float | None) -> bytes:
        """The next bytes (b"" at the end), however many arrived."""
        held = self._held
        if held:
            self._held = b""
            return held
        chunks = self._chunks
        if not chunks and not self._eof:
            if self._paused:
                self._paused = False
                self._transport.resume_reading()
            loop = self._loop
            waiter = self._waiter = loop.create_future()
            if timeout is not None:
                deadline = self._deadline = loop.time() + timeout
                timer = self._timer
                if timer is None or timer.when() > deadline:
                    if timer is not None:
                        timer.cancel()  # (a longer timeout's: a connect's, say)
                    self._timer = loop.call_at(deadline, _check, weakref.ref(self))
            else:
                self._deadline = math.inf
            try:
                await waiter
            finally:
                self._waiter = None
            if self._expired:
                self._expired = False
                if not chunks and not self._eof:  # (data that came as well wins)
                    raise self.core.read_timeout("timed out")
        if chunks:
            data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            chunks.clear()
            self._size = 0
            return data
        if self._lost is not None:
            lost = self._lost
            raise self.core.read_error(str(lost) or repr(lost)) from lost
        if self.aborted:
            raise self.core.read_error("interrupted")
        return b""

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._wrote(buffer)
        if not buffer:
            return
        if self._lost is not None or self._transport.is_closing():
            raise self.core.write_error(f"connection lost: {self._lost!r}")
        self._transport.write(buffer)
        if self.write_paused:
            self._drain = self._loop.create_future()
            try:
                with anyio.fail_after(timeout):
                    await self._drain
            except TimeoutError as exc:
                raise self.core.write_timeout("timed out") from exc
            finally:
                self._drain = None
            if self._lost is not None:
                raise self.core.write_error(f"connection lost: {self._lost!r}")

    async def aclose(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        transport = self._transport
        if transport.get_write_buffer_size():
            transport.abort()  # close() would wait to flush what a stuck peer never reads
        else:
            transport.close()
        self._wake()
        await anyio.lowlevel.checkpoint()

    def get_extra_info(self, info: str) -> Any:
        return _extra(self._sock, info, bool(self._held or self._chunks) or self._eof)

    # eventsource's side


def _extra(sock: socket.socket, info: str, pending: bool) -> Any:
    if info == "socket":
        return sock
    if info == "client_addr":
        return sock.getsockname()
    if info == "server_addr":
        return sock.getpeername()
    if info == "is_readable":
        return pending or _readable(sock)
    return None


def _ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


async def _asyncio_connect(
    host: str, port: int, local_address: str | None, options: Iterable[Any] | None, core: Core
) -> AsyncioStream:
    loop = asyncio.get_running_loop()
    literal = _ip_literal(host)
    if literal is not None:
        # No resolver for an address (it would run in the loop's default
        # executor, a thread).
        family = socket.AF_INET6 if literal.version == 6 else socket.AF_INET
        infos: list[Any] = [(family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (host, port))]
    else:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    if not infos:
        raise OSError(f"no address for {host}")
    sock = await first_connected(loop, interleaved(infos), local_address, options)
    try:
        transport, protocol = await loop.create_connection(_Protocol, sock=sock)
    except BaseException:
        sock.close()
        raise
    stream = AsyncioStream(sock, transport, core)
    protocol.attach(stream)
    return stream


# --- trio -----------------------------------------------------------------------------


class TrioStream(_AsyncSocketStream):
    """A TCP connection on trio, read with its socket.

    httpcore's ``AsyncNetworkStream`` API, raising ``core``'s errors.
    """

    def __init__(self, sock: Any, core: Core) -> None:
        self.core = core
        self._sock = sock
        # Read with os.read() on its descriptor where sockets are files.
        self._fd: int | None = None if sys.platform == "win32" else sock.fileno()
        self._pid = os.getpid()
        self._held = b""
        self._cut = HeadCut()
        self._deadline = math.inf
        self._waiting = False
        self._expired = False
        self._watchdog: Any = None  # its cancel scope
        self._nap: Any = None  # the cancel scope of the watchdog's sleep

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        if self._held:
            return self._hand(self._take_held(max_bytes))
        try:
            data = await self._recv(max_bytes, timeout)
        except self.core.read_error:
            await self._acheck_tls()
            raise
        if not data:
            await self._acheck_tls()
        return self._hand(data)

    async def receive(self, timeout: float | None) -> bytes:
        """The next bytes (b"" at the end)."""
        held = self._held
        if held:
            self._held = b""
            return held
        return await self._recv(READ_SIZE, timeout)

    async def _recv(self, max_bytes: int, timeout: float | None) -> bytes:
        import trio

        if timeout is not None:
            deadline = self._deadline = trio.current_time() + timeout
            if self._watchdog is None:
                self._watchdog = trio.CancelScope()
                trio.lowlevel.spawn_system_task(_watch, weakref.ref(self), timeout, self._watchdog)
            elif self._nap is not None and self._nap.deadline > deadline:
                self._nap.deadline = deadline  # wake the watchdog for this shorter wait
        else:
            self._deadline = math.inf
        self._waiting = True
        try:
            fd = self._fd
            if fd is None:
                data: bytes = await self._sock.recv(max_bytes)
            else:
                # Wait, then read: the socket's recv() tries first, and a
                # stream whose events come a few at a time would pay a failed
                # system call for nearly every wake-up.
                while True:
                    await trio.lowlevel.wait_readable(self._sock)
                    try:
                        data = os.read(fd, max_bytes)
                        break
                    except BlockingIOError:
                        continue  # woken with nothing to read after all
        except (OSError, trio.ClosedResourceError, trio.BrokenResourceError) as exc:
            if self._expired:
                raise self.core.read_timeout("timed out") from None
            raise self.core.read_error(str(exc) or repr(exc)) from exc
        finally:
            self._waiting = False
        if not data:
            if self._expired:
                raise self.core.read_timeout("timed out")
            if self.aborted:
                raise self.core.read_error("interrupted")
        return data

    def tick(self, now: float, period: float, nap: Any) -> bool:
        """The watchdog's look: False once it timed the read out (it shut the connection down).

        Else it sleeps in ``nap``, whose deadline is set here (a later, shorter
        read moves it nearer).
        """
        deadline = self._deadline
        if deadline <= now and self._waiting:
            self._expired = True
            self.abort()
            return False
        # Asleep a period at most, so that a stream dropped unclosed frees it.
        nap.deadline = min(deadline, now + period) if deadline > now else now + period
        self._nap = nap
        return True

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        import trio

        self._wrote(buffer)
        view = memoryview(buffer)
        try:
            with trio.fail_after(math.inf if timeout is None else timeout):
                while view:
                    view = view[await self._sock.send(view) :]
        except trio.TooSlowError as exc:
            raise self.core.write_timeout("timed out") from exc
        except (OSError, trio.ClosedResourceError, trio.BrokenResourceError) as exc:
            raise self.core.write_error(str(exc) or repr(exc)) from exc

    async def aclose(self) -> None:
        import trio

        if self._watchdog is not None:
            self._watchdog.cancel()
        self._sock.close()
        await trio.lowlevel.checkpoint()

    def get_extra_info(self, info: str) -> Any:
        return _extra(self._sock, info, bool(self._held))


async def _watch(ref: weakref.ReferenceType[TrioStream], period: float, scope: Any) -> None:
    """The watchdog of a trio read's timeout (a system task: it never raises)."""
    import trio

    with scope:
        try:
            while True:
                stream = ref()
                if stream is None:
                    return
                nap = trio.CancelScope()
                awake = stream.tick(trio.current_time(), period, nap)
                del stream
                if not awake:
                    return
                with nap:
                    await trio.sleep_forever()
        except Exception:  # noqa: S110 (a system task's error would crash the run)
            pass


async def _trio_connect(
    host: str,
    port: int,
    local_address: str | None,
    options: Iterable[Any] | None,
    core: Core,
) -> TrioStream:
    import trio

    stream = await trio.open_tcp_stream(host, port, local_address=local_address)
    sock = stream.socket
    try:
        for option in options or ():
            sock.setsockopt(*option)
    except BaseException:
        await stream.aclose()
        raise
    return TrioStream(sock, core)


# --- the backend ----------------------------------------------------------------------


def _on_trio() -> bool:
    """Trio runs this task (asked first: trio in guest mode runs inside an asyncio loop)."""
    trio = sys.modules.get("trio")
    if trio is None:
        return False
    try:
        trio.lowlevel.current_task()
    except RuntimeError:
        return False
    return True


class AsyncBackend:
    """An async network backend of our streams, on asyncio or trio.

    httpcore's ``AsyncNetworkBackend`` API, for ``core``'s pools.
    """

    def __init__(self, core: Core = HTTPCORE) -> None:
        self.core = core

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> AsyncioStream | TrioStream:
        core = self.core
        try:
            with anyio.fail_after(timeout):
                if _on_trio():
                    return await _trio_connect(host, port, local_address, socket_options, core)
                return await _asyncio_connect(host, port, local_address, socket_options, core)
        except TimeoutError as exc:
            raise core.connect_timeout(str(exc) or "timed out") from exc
        except OSError as exc:
            raise core.connect_error(str(exc) or repr(exc)) from exc

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> AsyncioStream:
        raise self.core.unsupported_protocol("eventsource's own clients do not use Unix sockets")

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)
