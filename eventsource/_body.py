"""The readers of a response's body, async and sync, on either path.

- the fast read: the body straight from its connection, when the response
  came on a stream of eventsource's backend (``_backend``) that handed h11
  the head only; ``_chunked``'s ``BodyFraming`` says where the body ends;
- httpx's public stream (``aiter_raw()`` / ``iter_raw()``): any other
  client, transport or HTTP version.

Both undo gzip / deflate themselves, in bounded steps (``_decode``), and
raise httpx's errors, the ones httpx's own reading would raise.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Any, Protocol

import anyio.lowlevel

from ._abackend import AsyncioStream, TrioStream
from ._backend import SyncStream
from ._chunked import BodyFraming, ChunkedFramingError
from ._decode import Decoder, Layers, coding_of, decoder_for
from ._stack import Request, Response, Stack, stack_of
from ._tls import AsyncTLS, SyncTLS

__all__ = [
    "AsyncFast",
    "AsyncPublic",
    "SyncFast",
    "SyncPublic",
    "AsyncBody",
    "SyncBody",
    "fast_stream",
    "framing_of",
    "open_async_body",
    "open_async_refused",
    "open_sync_body",
    "open_sync_refused",
]

_ASYNC_STREAMS = (AsyncioStream, TrioStream, AsyncTLS)
_SYNC_STREAMS = (SyncStream, SyncTLS)


def fast_stream(response: Response, *, sync: bool) -> Any:
    """The stream of ours whose body this response has not read yet.

    The body can be read straight from it. None otherwise.
    """
    if response.http_version not in ("HTTP/1.1", "HTTP/1.0"):
        return None
    if response.is_stream_consumed or response.is_closed:
        return None
    stream = response.extensions.get("network_stream")
    if not isinstance(stream, _SYNC_STREAMS if sync else _ASYNC_STREAMS):
        return None
    if coding_of(response) == "other":
        return None  # httpx's decoders (a user's client asked for br or zstd)
    return stream if stream.body_fresh else None


def framing_of(response: Response) -> BodyFraming:
    """Where the body ends (h11 checked the head's framing headers)."""
    status = response.status_code
    if response.request.method == "HEAD" or status in (204, 304) or status < 200:
        return BodyFraming(False, 0)
    headers = response.headers
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return BodyFraming(True, None)
    length = headers.get("content-length")
    if length is None:
        return BodyFraming(False, None)
    values = {value.strip() for value in length.split(",")}
    if len(values) != 1:
        raise ChunkedFramingError(f"conflicting Content-Length: {length}")
    return BodyFraming(False, int(values.pop()))


def _read_already(response: Response) -> bool:
    """Whether httpx read the body when the response was made.

    A mock's or an ASGI app's response given its content whole.
    """
    if not response.is_stream_consumed:
        return False
    try:
        response.content  # noqa: B018
    except RuntimeError:  # ResponseNotRead, httpx's or httpx2's
        return False
    return True


def _mapped(exc: Exception, request: Request, stack: Stack) -> Exception:
    """A read's error as the stack's own read would raise it."""
    http = stack.http
    if isinstance(exc, ChunkedFramingError):
        return http.RemoteProtocolError(str(exc), request=request)  # type: ignore[no-any-return]
    if isinstance(exc, stack.core.read_timeout):
        return http.ReadTimeout(str(exc), request=request)  # type: ignore[no-any-return]
    return http.ReadError(str(exc), request=request)  # type: ignore[no-any-return]


class _Fast:
    """What the fast readers share: the framing, the decoder, the timeout."""

    __slots__ = (
        "_decoder",
        "_errors",
        "_feed",
        "_framing",
        "_request",
        "_stack",
        "_stream",
        "timeout",
    )
    scoped = False  # interrupted by abort(); reads carry the timeout
    resumable = True  # what arrives during a cancelled read stays in the buffers

    def __init__(self, stream: Any, response: Response, timeout: float | None) -> None:
        self._stream = stream
        stack = stack_of(response)
        assert stack is not None and stack.core.module is stream.core.module
        self._stack = stack
        # What a read may raise: the stream's core's I/O errors, the framing's.
        self._errors: tuple[type[Exception], ...] = (*stream.core.io_errors, ChunkedFramingError)
        self._framing = framing_of(response)
        self._decoder: Decoder | Layers | None = decoder_for(response)
        # What a read's bytes go through (a call fewer without a decoder).
        self._feed = self._framing.take if self._decoder is None else self._take
        self._request = response.request
        self.timeout = timeout  # a refused body's reader shortens it

    def _take(self, data: bytes) -> bytes | None:
        body = self._framing.take(data)
        decoder = self._decoder
        if body is None or decoder is None:
            return body
        return decoder.decode(body) if body else body


class AsyncFast(_Fast):
    __slots__ = ()

    async def read(self) -> bytes | None:
        """The body's next bytes; None at its end."""
        decoder = self._decoder
        try:
            if decoder is not None and decoder.pending:
                # A checkpoint per decoded step: a compressed burst that
                # expands a thousandfold would hold the loop for seconds.
                await anyio.lowlevel.checkpoint()
                return decoder.more()
            framing = self._framing
            if framing.failed is not None:
                raise framing.failed
            if framing.complete:
                return None  # the connection stays open: nothing more is ours
            return self._feed(await self._stream.receive(self.timeout))
        except self._errors as exc:
            raise _mapped(exc, self._request, self._stack) from exc

    async def finish(self) -> None:
        pass


class SyncFast(_Fast):
    __slots__ = ()

    def read(self) -> bytes | None:
        """The body's next bytes; None at its end."""
        decoder = self._decoder
        try:
            if decoder is not None and decoder.pending:
                return decoder.more()
            framing = self._framing
            if framing.failed is not None:
                raise framing.failed
            if framing.complete:
                return None
            return self._feed(self._stream.receive(self.timeout))
        except self._errors as exc:
            raise _mapped(exc, self._request, self._stack) from exc

    def finish(self) -> None:
        pass


class AsyncPublic:
    """httpx's public stream, its raw bytes decoded here."""

    __slots__ = ("_chunks", "_decoder", "scoped", "timeout")
    resumable = False  # a cancel ends httpx's chain of generators

    def __init__(self, response: Response, scoped: bool = True) -> None:
        self.scoped = scoped
        self.timeout: float | None = None  # the reader's cancel scope keeps it
        if _read_already(response) or coding_of(response) == "other":
            self._decoder = None  # httpx decodes it (or did, as it read it)
            self._chunks: AsyncIterator[bytes] = response.aiter_bytes()
        else:
            self._decoder = decoder_for(response)
            self._chunks = response.aiter_raw()

    @property
    def chunks(self) -> AsyncIterator[bytes]:
        return self._chunks

    async def read(self) -> bytes | None:
        decoder = self._decoder
        if decoder is not None and decoder.pending:
            await anyio.lowlevel.checkpoint()  # (see AsyncFast.read)
            return decoder.more()
        try:
            data = await self._chunks.__anext__()
        except StopAsyncIteration:
            return None
        return data if decoder is None else decoder.decode(data)

    async def finish(self) -> None:
        from ._httpx import end_generators

        await end_generators(self._chunks)


class SyncPublic:
    """httpx's public stream, its raw bytes decoded here."""

    __slots__ = ("_chunks", "_decoder", "_deadline", "timeout")

    def __init__(self, response: Response, deadline: float | None = None) -> None:
        self._decoder = decoder_for(response)
        self._deadline = deadline
        self.timeout: float | None = None  # httpx's stream keeps the client's
        if deadline is not None:
            # httpcore reads the body's read timeout from the request's
            # "timeout" extension when the body's first read starts: a
            # refused body's reads end by its deadline, not read_timeout's.
            timeouts = response.request.extensions.get("timeout")
            if isinstance(timeouts, dict):
                left = max(deadline - time.monotonic(), 0.001)
                read = timeouts.get("read")
                timeouts["read"] = left if read is None else min(read, left)
        if _read_already(response) or coding_of(response) == "other":
            self._decoder = None
            self._chunks: Iterator[bytes] = response.iter_bytes()
        else:
            self._chunks = response.iter_raw()

    def read(self) -> bytes | None:
        decoder = self._decoder
        if decoder is not None and decoder.pending:
            return decoder.more()
        if self._deadline is not None and time.monotonic() > self._deadline:
            return None
        data = next(self._chunks, None)
        if data is None:
            return None
        return data if decoder is None else decoder.decode(data)

    def finish(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()


# --- opening a body -------------------------------------------------------------------


class AsyncBody(Protocol):
    scoped: bool  # reads need a cancel scope to be timed and interrupted
    resumable: bool  # a read the caller cancelled can be taken up again
    timeout: float | None

    async def read(self) -> bytes | None: ...
    async def finish(self) -> None: ...


class SyncBody(Protocol):
    timeout: float | None  # of each read (the fast read's; a refused body's shortens it)

    def read(self) -> bytes | None: ...
    def finish(self) -> None: ...


def open_async_body(response: Response, read_timeout: float | None) -> tuple[AsyncBody, Any]:
    """The body to read, and the stream that aborts it (None: the read needs a cancel scope)."""
    stream = fast_stream(response, sync=False)
    if stream is not None and stream.abortable:
        return AsyncFast(stream, response, read_timeout), stream
    return AsyncPublic(response), None


def open_sync_body(response: Response, read_timeout: float | None) -> tuple[SyncBody, Any]:
    """The body to read, and the stream that aborts it from another thread."""
    stream = fast_stream(response, sync=True)
    if stream is not None and stream.abortable:
        return SyncFast(stream, response, read_timeout), stream
    return SyncPublic(response), None


def open_async_refused(response: Response, deadline: float) -> tuple[AsyncBody, Any]:
    """A refused response's body (read in a cancel scope with its deadline)."""
    stream = fast_stream(response, sync=False)
    if stream is not None and stream.abortable:
        return AsyncFast(stream, response, None), stream
    return AsyncPublic(response), None


def open_sync_refused(response: Response, deadline: float) -> tuple[SyncFast | SyncPublic, Any]:
    """A refused response's body, whose reads end by the deadline (time.monotonic()).

    The fast read shortens each read's timeout.
    """
    stream = fast_stream(response, sync=True)
    if stream is not None and stream.abortable:
        return SyncFast(stream, response, max(deadline - time.monotonic(), 0.001)), stream
    return SyncPublic(response, deadline), None
