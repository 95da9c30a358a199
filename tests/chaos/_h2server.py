"""The chaos suite's server over HTTP/2: hypercorn serving an ASGI app, h2c
(cleartext, prior knowledge), on 127.0.0.1, in a thread with its own asyncio
loop (tests/_servers.py's HyperServer, whose thread, socket and shutdown it
reuses; only the app differs).

It plays the part of the testing toolkit's SSEServer in the chaos suite: it
holds a fixed history of raw event blocks and has the control methods the
suite's ``Chaos`` calls (``drop_after``, ``stall_after``, ``drop_mid_event``,
``respond_with``, ``slow_drip``), plus ``url`` and ``requests``.

Each control call arms one plan, and each request takes the oldest plan armed
(one plan per connection attempt; a request with none armed gets the plain
stream). The plans are kept under a lock: the suite arms them from the
client's ``on_error``, in the test's thread or a sync client's worker thread,
while the app runs in the server's thread and reads its plan when the request
arrives. The slow-drip setting is read at the same moment, for the whole
response.

A stream starts after the block whose id is the request's Last-Event-ID (from
the first block when it is absent or unknown). What the plans do on HTTP/2:

- drop (``drop_after(n)``, ``drop_mid_event(n, at=...)``): n blocks, then, for
  a mid-event drop, the start of block n+1 up to the cut, then the end of the
  response (END_STREAM). hypercorn cannot reset a single stream from an ASGI
  app, so a drop is a clean end of the body: when it falls inside an event,
  the client must discard that partial event and resume from its
  Last-Event-ID, as after a reset.
- stall (``stall_after(n)``): n blocks, then nothing until the stream or the
  connection ends (the client's read_timeout fires; httpcore never resets a
  stream it stops reading, so the server learns of it only when the client's
  connection closes, or when the server stops).
- status (``respond_with(503, {"Retry-After": "0"})``): that answer, no stream.
- no plan: every block from the resume point, then the stream stays open
  until the client leaves.

After ``max_requests`` requests on a connection hypercorn sends GOAWAY (its
``keep_alive_max_requests``); the client must move to a new connection.

``served`` records what each request got: its plan, events and bytes sent,
and how its response ended.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from hypercorn.config import Config, Sockets

from eventsource.testing._faults import CutPoint
from eventsource.testing._faults import count as _count
from eventsource.testing._faults import cut_point as _cut_point
from eventsource.testing._history import _block_id

from .._servers import HyperServer, Request

__all__ = ["H2ChaosServer", "Served"]


_STREAM_HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]


@dataclass(frozen=True)
class _Plan:
    kind: Literal["drop", "mid", "stall", "status"]
    after: int = 0  # events before the fault
    at: CutPoint = 0  # "mid": where block after+1 is cut
    status: int = 200  # "status": the answer
    headers: tuple[tuple[bytes, bytes], ...] = ()
    body: bytes = b""


@dataclass
class Served:
    """What one request got."""

    request: Request
    plan: str  # "drop", "mid", "stall", "status" or "" (no plan)
    drip: bool = False
    events_sent: int = 0
    bytes_sent: int = 0
    # "end": the server ended the response; "client": the client left first
    # (its stream or connection ended); "stop": the server stopped.
    ended: str = ""
    ended_at: float = 0.0  # time.monotonic() then
    # The request that made hypercorn send GOAWAY (its connection's
    # max_requests + 1st): httpcore fails every stream still waiting on a
    # connection that got GOAWAY, this one too, though hypercorn answers it.
    goaway: bool = False


class H2ChaosServer(HyperServer):
    """A fixed history of event blocks over h2c, with armed faults; use as a
    context manager (a sync one: starting and stopping are quick)."""

    def __init__(self, blocks: Sequence[bytes], *, max_requests: int = 1000) -> None:
        super().__init__("h2c")
        self.max_requests = max_requests  # per connection, then GOAWAY (hypercorn's default)
        self._per_connection: Counter[int] = Counter()  # requests by client port
        self.blocks = [bytes(block) for block in blocks]
        self._resume_at: dict[str, int] = {}
        for index, block in enumerate(self.blocks):
            block_id = _block_id(block)
            if block_id is not None:
                self._resume_at[block_id] = index + 1
        self._lock = threading.Lock()
        self._plans: deque[_Plan] = deque()
        self._drip: float | None = None
        self._served: list[Served] = []
        self._errors: list[Exception] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/events"

    @property
    def served(self) -> list[Served]:
        with self._lock:
            return list(self._served)

    def __enter__(self) -> H2ChaosServer:
        self.start()
        return self

    def stop(self) -> None:
        super().stop()
        if self._errors:
            raise self._errors[0]

    # --- the control methods (thread-safe) ----------------------------------------------

    def drop_after(self, n: int) -> None:
        """End the next response after n events."""
        self._arm(_Plan("drop", _count(n)))

    def stall_after(self, n: int) -> None:
        """Make the next response go silent after n events."""
        self._arm(_Plan("stall", _count(n)))

    def drop_mid_event(self, n: int, *, at: CutPoint = "line") -> None:
        """After n events, send the next block up to the cut, then end the
        response. ``at``: as SSEServer's (a byte offset, negative from the
        block's end; "line": the middle of its last non-empty line; "utf8":
        inside its first multi-byte character; "crlf": between the CR and LF
        of its first CRLF). A block without such a point fails the request
        (the error is re-raised when the server stops)."""
        if isinstance(at, bool) or (not isinstance(at, int) and at not in ("line", "utf8", "crlf")):
            raise ValueError(f"at must be an int, 'line', 'utf8' or 'crlf', not {at!r}")
        self._arm(_Plan("mid", _count(n), at))

    def respond_with(
        self,
        status: int,
        headers: Mapping[str, str] | None = None,
        body: bytes | str = b"",
        *,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` requests with this status, headers and body."""
        if isinstance(times, bool) or not isinstance(times, int) or times < 1:
            raise ValueError(f"times must be an int >= 1, not {times!r}")
        pairs = tuple(
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in (headers or {}).items()
        )
        payload = body.encode() if isinstance(body, str) else bytes(body)
        plan = _Plan("status", status=status, headers=pairs, body=payload)
        with self._lock:
            self._plans.extend([plan] * times)

    def slow_drip(self, delay: float | None) -> None:
        """Write the responses of the requests that arrive from now on one
        byte at a time, ``delay`` seconds apart; None ends it."""
        if delay is not None and delay < 0:
            raise ValueError("delay must be >= 0 or None")
        with self._lock:
            self._drip = delay

    def _arm(self, plan: _Plan) -> None:
        with self._lock:
            self._plans.append(plan)

    # --- the app (in the server's thread) --------------------------------------------------

    async def _serve(self, config: Config, sockets: Sockets) -> None:
        config.keep_alive_max_requests = self.max_requests
        await super()._serve(config, sockets)

    async def _app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        request = self._record(scope)
        with self._lock:
            plan = self._plans.popleft() if self._plans else None
            drip = self._drip
            self._per_connection[request.client_port] += 1
            goaway = self._per_connection[request.client_port] == self.max_requests + 1
            served = Served(request, plan.kind if plan else "", drip is not None, goaway=goaway)
            self._served.append(served)
        gone = asyncio.Event()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()

        watcher = asyncio.ensure_future(watch())
        try:
            if plan is not None and plan.kind == "status":
                await send(
                    {
                        "type": "http.response.start",
                        "status": plan.status,
                        "headers": [*plan.headers, (b"content-length", b"%d" % len(plan.body))],
                    }
                )
                await send({"type": "http.response.body", "body": plan.body})
                served.bytes_sent = len(plan.body)
                served.ended, served.ended_at = "end", time.monotonic()
                return
            await send({"type": "http.response.start", "status": 200, "headers": _STREAM_HEADERS})
            await self._stream(request, plan, drip, served, gone, send)
        finally:
            watcher.cancel()

    async def _stream(
        self,
        request: Request,
        plan: _Plan | None,
        drip: float | None,
        served: Served,
        gone: asyncio.Event,
        send: Any,
    ) -> None:
        start = self._resume_at.get(request.last_event_id or "", 0)
        blocks = self.blocks[start:]
        after = len(blocks) if plan is None else min(plan.after, len(blocks))
        for block in blocks[:after]:
            if self._over(gone):
                break
            await self._write(block, drip, served, gone, send)
            served.events_sent += 1
        if plan is not None and plan.kind == "mid" and after < len(blocks):
            try:
                cut = _cut_point(blocks[after], plan.at)
            except ValueError as exc:
                self._errors.append(exc)  # raised by stop()
            else:
                await self._write(blocks[after][:cut], drip, served, gone, send)
        elif plan is None or plan.kind != "drop" or after < plan.after:
            # Silent until the client leaves (or the server stops).
            await self._until(gone, timeout=None)
        assert self._stop is not None
        served.ended = "client" if gone.is_set() else "stop" if self._stop.is_set() else "end"
        served.ended_at = time.monotonic()
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _write(
        self, data: bytes, drip: float | None, served: Served, gone: asyncio.Event, send: Any
    ) -> None:
        if drip is None:
            await send({"type": "http.response.body", "body": data, "more_body": True})
            served.bytes_sent += len(data)
            return
        for index in range(len(data)):
            if self._over(gone):
                return
            await send(
                {"type": "http.response.body", "body": data[index : index + 1], "more_body": True}
            )
            served.bytes_sent += 1
            await asyncio.sleep(drip)
