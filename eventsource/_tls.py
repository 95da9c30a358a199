"""TLS over one of our streams, in memory (``ssl.MemoryBIO``).

Every TLS connection on async, and on sync the cases the socket's own TLS
cannot take (TLS inside a proxy's TLS; bytes already held when a CONNECT tunnel
starts TLS, which go to this layer first). It cuts heads like the stream below
(``_backend.HeadCut``) and aborts through it.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

from ._backend import READ_SIZE, Cutting, HeadCut
from ._httpx import Core

__all__ = ["AsyncStartsTLS", "AsyncTLS", "SyncTLS"]

T = TypeVar("T")


def _as_connect_error(exc: Exception, core: Core) -> Exception:
    timeout = isinstance(exc, (core.read_timeout, core.write_timeout))
    kind = core.connect_timeout if timeout else core.connect_error
    error = kind(str(exc) or repr(exc))
    error.__cause__ = exc
    return error


async def _aclose(raw: Any) -> None:
    import anyio

    with anyio.CancelScope(shield=True):
        await raw.aclose()


class _TLS(Cutting):
    def __init__(self, raw: Any, context: ssl.SSLContext, server_hostname: str | None) -> None:
        self._raw = raw
        self.core: Core = raw.core
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._in, self._out, server_hostname=server_hostname)
        self._held = b""
        self._cut = HeadCut()

    def _fed(self, data: bytes) -> None:
        if data:
            self._in.write(data)
        else:
            self._in.write_eof()

    def get_extra_info(self, info: str) -> Any:
        if info == "ssl_object":
            return self._tls
        if info == "is_readable":
            return bool(self._held) or self._raw.get_extra_info("is_readable")
        return self._raw.get_extra_info(info)

    @property
    def abortable(self) -> bool:
        return self._tls.selected_alpn_protocol() != "h2"

    def abort(self) -> None:
        """Abort the stream below (its ``abort()``)."""
        self._raw.abort()


class SyncTLS(_TLS):
    """TLS over a blocking stream of ours (httpcore's ``NetworkStream`` API)."""

    @classmethod
    def over(
        cls,
        raw: Any,
        context: ssl.SSLContext,
        server_hostname: str | None,
        timeout: float | None,
    ) -> SyncTLS:
        # A failed handshake closes the connection (httpcore leaves that to
        # the stream, as its own backends do).
        try:
            stream = cls(raw, context, server_hostname)
            stream._retry(stream._tls.do_handshake, timeout)
        except (ssl.SSLError, *raw.core.io_errors) as exc:
            raw.close()
            raise _as_connect_error(exc, raw.core) from exc
        except BaseException:
            raw.close()
            raise
        return stream

    def _retry(self, step: Callable[[], T], timeout: float | None) -> T:
        while True:
            try:
                result = step()
            except ssl.SSLWantReadError:
                self._flush(timeout)
                self._fed(self._raw.read(READ_SIZE, timeout))
            else:
                self._flush(timeout)
                return result

    def _flush(self, timeout: float | None) -> None:
        data = self._out.read()
        if data:
            self._raw.write(data, timeout)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        if self._held:
            return self._hand(self._take_held(max_bytes))
        return self._hand(self._read(max_bytes, timeout))

    def _read(self, max_bytes: int, timeout: float | None) -> bytes:
        try:
            return self._retry(lambda: self._tls.read(max_bytes), timeout)
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            return b""
        except ssl.SSLError as exc:
            raise self.core.read_error(str(exc)) from exc

    def receive(self, timeout: float | None) -> bytes:
        """The body's next bytes (b"" at the end)."""
        if self._held:
            return self._take_held(len(self._held))
        return self._read(READ_SIZE, timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._wrote(buffer)
        view = memoryview(buffer)
        try:
            while view:
                n = self._retry(partial(self._tls.write, view), timeout)
                view = view[n:]
        except ssl.SSLError as exc:
            raise self.core.write_error(str(exc)) from exc

    def close(self) -> None:
        self._raw.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> SyncTLS:
        return SyncTLS.over(self, ssl_context, server_hostname, timeout)


class AsyncStartsTLS:
    """``start_tls()`` of the async streams (a socket's, a TLS layer's: TLS inside a proxy's TLS).

    Our in-memory TLS over them.
    """

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> AsyncTLS:
        return await AsyncTLS.over(self, ssl_context, server_hostname, timeout)


class AsyncTLS(_TLS, AsyncStartsTLS):
    """TLS over an async stream of ours (httpcore's ``AsyncNetworkStream`` API)."""

    @classmethod
    async def over(
        cls,
        raw: Any,
        context: ssl.SSLContext,
        server_hostname: str | None,
        timeout: float | None,
    ) -> AsyncTLS:
        try:
            stream = cls(raw, context, server_hostname)
            await stream._retry(stream._tls.do_handshake, timeout)
        except (ssl.SSLError, *raw.core.io_errors) as exc:
            await _aclose(raw)
            raise _as_connect_error(exc, raw.core) from exc
        except BaseException:
            await _aclose(raw)
            raise
        return stream

    async def _retry(self, step: Callable[[], T], timeout: float | None) -> T:
        while True:
            try:
                result = step()
            except ssl.SSLWantReadError:
                await self._flush(timeout)
                self._fed(await self._raw.read(READ_SIZE, timeout))
            else:
                await self._flush(timeout)
                return result

    async def _flush(self, timeout: float | None) -> None:
        data = self._out.read()
        if data:
            await self._raw.write(data, timeout)

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        if self._held:
            return self._hand(self._take_held(max_bytes))
        return self._hand(await self._read(max_bytes, timeout))

    async def _read(self, max_bytes: int, timeout: float | None) -> bytes:
        tls = self._tls
        try:
            # Decrypt what is there before waiting (the common case: a
            # record's bytes arrived together).
            return tls.read(max_bytes)
        except ssl.SSLWantReadError:
            pass
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            return b""
        except ssl.SSLError as exc:
            raise self.core.read_error(str(exc)) from exc
        try:
            return await self._retry(lambda: tls.read(max_bytes), timeout)
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            return b""
        except ssl.SSLError as exc:
            raise self.core.read_error(str(exc)) from exc

    async def receive(self, timeout: float | None) -> bytes:
        """The body's next bytes (b"" at the end)."""
        if self._held:
            return self._take_held(len(self._held))
        return await self._read(READ_SIZE, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._wrote(buffer)
        view = memoryview(buffer)
        try:
            while view:
                n = await self._retry(partial(self._tls.write, view), timeout)
                view = view[n:]
        except ssl.SSLError as exc:
            raise self.core.write_error(str(exc)) from exc

    async def aclose(self) -> None:
        await self._raw.aclose()
