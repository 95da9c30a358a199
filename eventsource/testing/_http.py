"""SSEServer's HTTP/1.1 layer: requests parsed with h11, responses framed here.

A body is framed one of three ways (``SSEServer(framing=...)``):

- "chunked": ``Transfer-Encoding: chunked``, one chunk per write; after the
  last chunk (``0``) the connection carries the next request (keep-alive).
- "close": the body ends when the connection does (``Connection: close``).
- "content-length": a body of known length; then the connection is kept alive.

A request that cannot keep the connection alive (HTTP/1.0, or ``Connection:
close``) is answered with ``Connection: close`` and the connection closed after
the response; an HTTP/1.0 one never gets chunks. A fault writes part of a
chunk, or less than the Content-Length, so the client sees a broken body.
"""

from __future__ import annotations

import contextlib
import http
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import anyio
import anyio.abc
import h11
import httpx

from ._records import RecordedRequest

__all__ = [
    "FRAMINGS",
    "LAST_CHUNK",
    "Framing",
    "HeadersLike",
    "Incoming",
    "Peer",
    "chunk_frame",
    "header_pairs",
    "response_head",
]

Framing = Literal["chunked", "close", "content-length"]
FRAMINGS: tuple[Framing, ...] = ("chunked", "close", "content-length")
HeadersLike = Mapping[str, str] | Sequence[tuple[str, str]]

MAX_HEAD = 64 * 1024
LAST_CHUNK = b"0\r\n\r\n"
#: Response headers the framing decides; the server drops them from the
#: ``headers`` given for event streams.
FRAMING_HEADERS = frozenset({"connection", "content-length", "transfer-encoding"})


@dataclass(frozen=True)
class Incoming:
    request: RecordedRequest
    #: HTTP/1.1 (chunks allowed); False for HTTP/1.0.
    http11: bool
    #: The client lets the connection carry another request.
    keep_alive: bool


class Peer:
    """One TCP connection.

    Reads requests off it, keeping any bytes that came early (the next
    request), and sees the client hang up.
    """

    def __init__(self, stream: anyio.abc.ByteStream, index: int) -> None:
        self.stream = stream
        self.index = index
        #: Requests received on it so far.
        self.requests = 0
        #: The client hung up (EOF or reset).
        self.eof = False
        self._buffer = bytearray()

    async def send(self, data: bytes) -> None:
        await self.stream.send(data)

    async def read_request(self) -> Incoming | None:
        """The next request, whole (body included).

        None when the client hangs up before one, or sends something h11 does
        not accept (answered with 400 and h11's reason).
        """
        parser = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        if self._buffer:  # bytes that came early (b"" would mean EOF to h11)
            parser.receive_data(bytes(self._buffer))
            self._buffer.clear()
        if self.eof:
            parser.receive_data(b"")
        head: h11.Request | None = None
        body = bytearray()
        try:
            while True:
                event = parser.next_event()
                if event is h11.NEED_DATA:
                    parser.receive_data(await self._receive())
                elif isinstance(event, h11.Request):
                    head = event
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    break
                else:  # ConnectionClosed (PAUSED cannot come before EndOfMessage)
                    return None
        except h11.RemoteProtocolError as exc:
            reason = f"SSEServer: bad request: {exc}\n".encode()
            fields = [("Content-Type", "text/plain"), ("Content-Length", str(len(reason)))]
            with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                await self.send(response_head(400, [*fields, ("Connection", "close")]) + reason)
            return None
        assert head is not None
        self._buffer += parser.trailing_data[0]
        self.requests += 1
        headers = httpx.Headers(list(head.headers.raw_items()))
        request = RecordedRequest(
            head.method.decode("latin-1"), head.target.decode("latin-1"), headers, bytes(body)
        )
        http11 = head.http_version == b"1.1"
        closing = "close" in headers.get("connection", "").lower()
        return Incoming(request, http11, http11 and not closing)

    async def watch(self) -> None:
        """Read until the client hangs up (what it sends is kept for ``read_request``).

        Returns then.
        """
        while not self.eof:
            data = await self._receive()
            if len(self._buffer) < MAX_HEAD:
                self._buffer += data

    async def _receive(self) -> bytes:
        if self.eof:
            return b""
        try:
            return await self.stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
            self.eof = True
            return b""


def header_pairs(headers: HeadersLike | None) -> list[tuple[str, str]]:
    """``headers`` as (name, value) pairs; CR or LF in either is an error."""
    if headers is None:
        return []
    items = headers.items() if isinstance(headers, Mapping) else headers
    pairs = [(str(name), str(value)) for name, value in items]
    for name, value in pairs:
        if any(c in name + value for c in "\r\n"):
            raise ValueError(f"header {name!r} contains CR or LF")
    return pairs


def response_head(status: int, headers: Sequence[tuple[str, str]]) -> bytes:
    """The status line and headers, in the order given, and the blank line."""
    try:
        reason = http.HTTPStatus(status).phrase
    except ValueError:
        reason = "Unknown"
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def chunk_frame(size: int) -> tuple[bytes, bytes]:
    """What goes before and after ``size`` bytes of data in a chunk."""
    return b"%x\r\n" % size, b"\r\n"
