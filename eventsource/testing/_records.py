"""What SSEServer records: every request, and what became of its answer."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio
import httpx

if TYPE_CHECKING:
    from ._faults import Plan

__all__ = ["RecordedConnection", "RecordedRequest"]


@dataclass(frozen=True)
class RecordedRequest:
    """A request the server received.

    Attributes:
        method: The request method (``"GET"``, ``"POST"``...).
        path: The request target as sent: path and query string.
        headers: The request headers, case-insensitive:
            ``request.headers["last-event-id"]``; the bytes as received are in
            ``request.headers.raw``.
        body: The request body.
    """

    method: str
    path: str
    headers: httpx.Headers
    body: bytes

    @property
    def last_event_id(self) -> str | None:
        """The ``Last-Event-ID`` header decoded as UTF-8, or None when it was not sent.

        Decoded as a client sends an id it received.
        """
        values = [
            value.decode("utf-8", "replace")
            for name, value in self.headers.raw
            if name.lower() == b"last-event-id"
        ]
        return ", ".join(values) if values else None


@dataclass(eq=False)
class RecordedConnection:
    """One request and its answer.

    The event stream or a ``respond_with()`` response. Several can share a TCP
    connection (keep-alive): ``tcp_index`` tells which.

    The flags are updated by the server; wait on them with
    ``server.wait_until(lambda: conn.closed)`` (in async code:
    ``await server.await_until(...)``).

    Attributes:
        request: The request.
        status: The status the server answered (200 for an event stream).
        tcp_index: Which TCP connection carried the request: 0 for the first
            the server accepted, 1 for the next...; requests on one keep-alive
            connection share it.
        events_sent: Events (history blocks) written completely.
        bytes_sent: Body bytes written (head and chunk framing not counted),
            partial blocks included.
        complete: The whole response was sent: the last chunk, the whole
            Content-Length, a ``respond_with()`` answer, or ``end()`` in
            "close" framing.
        closed: The exchange is over: the response is complete or the
            connection closed (by either side). A complete response on a
            keep-alive connection leaves the TCP connection open for the next
            request.
        closed_by_client: The client hung up before the response was complete
            (the server saw EOF or a reset).
        held: The request was held by ``hold()`` and no response head was sent
            yet; stays True if the connection closed while held (it never got
            an answer).
        opened_at: ``time.monotonic()`` when the request was received.
        closed_at: ``time.monotonic()`` when the exchange ended; None until
            then.
    """

    request: RecordedRequest
    status: int = 200
    tcp_index: int = 0
    events_sent: int = 0
    bytes_sent: int = 0
    complete: bool = False
    closed: bool = False
    closed_by_client: bool = False
    held: bool = False
    opened_at: float = field(default_factory=time.monotonic)
    closed_at: float | None = None
    # What the writer sends: first the history from _cursor to _replay_end
    # (the blocks there when the request came), then the outbox (what was
    # queued for this connection since).
    _cursor: int = field(default=0, repr=False)
    _replay_end: int = field(default=0, repr=False)
    _outbox: deque[tuple[str, bytes]] = field(default_factory=deque, repr=False)
    _wakeup: anyio.Event | None = field(default=None, repr=False)
    _plan: Plan | None = field(default=None, repr=False)
    _hung_up: bool = field(default=False, repr=False)
