"""A limit on the connection attempts to one origin in flight at once.

Opening thousands of async sources at once (a fan-out service starting up)
would otherwise build every attempt's request, connection and response
objects at the same time: memory that the allocator keeps for the life of
the process once they are freed, and a burst of connections that can
overflow the server's listen backlog. Measured with bare httpx at 10,000
streams: 37.5 KiB a stream of resident memory when all open at once, 19.5
with 256 at a time, in the same time.

So at most ``LIMIT`` attempts to one origin (scheme, host, port) are in flight
in one event loop; the others wait their turn, first come first served. A
slow server does not keep them waiting: each time no attempt has finished for
``STALL`` seconds, ``LIMIT`` more may go (until the origin has none left in
flight). One origin's gate never delays another's sources.

Only async sources with a client of their own (the default) are gated. A
shared client's connection pool does work for every connection it holds on
each request, so with thousands of sources on one client a gated attempt's
connect waited behind the others' past its timeout (1,536 of 10,000
ConnectTimeouts, measured); a shared client's own pool limits govern it. Sync
sources (a thread each) are not gated.
"""

from __future__ import annotations

from collections import deque

import anyio
import httpx
from anyio.lowlevel import RunVar

__all__ = ["LIMIT", "STALL", "Gate", "enter"]

LIMIT = 256  # attempts to one origin in flight at once (a browser's whole socket pool)
STALL = 1.0  # seconds without a finished attempt after which LIMIT more may go

_Key = tuple[str, str, "int | None"]
_gates: RunVar[dict[_Key, Gate]] = RunVar("eventsource_gates")


class _Waiter:
    __slots__ = ("event", "granted")

    def __init__(self) -> None:
        self.event = anyio.Event()
        self.granted = False


class Gate:
    """One origin's attempts in one event loop."""

    __slots__ = ("_gates", "_key", "in_flight", "last_done", "limit", "waiters")

    def __init__(self, gates: dict[_Key, Gate], key: _Key) -> None:
        self._gates = gates
        self._key = key
        self.in_flight = 0
        self.limit = LIMIT
        self.waiters: deque[_Waiter] = deque()
        self.last_done = anyio.current_time()

    def leave(self) -> None:
        """An attempt has its response (or failed): the next one may go."""
        self.last_done = anyio.current_time()
        if self.waiters:
            waiter = self.waiters.popleft()  # the turn passes on: in_flight stays
            waiter.granted = True
            waiter.event.set()
            self._wake_first()
            return
        self.in_flight -= 1
        if not self.in_flight and not self.waiters:
            self._gates.pop(self._key, None)

    async def wait_turn(self) -> None:
        waiter = _Waiter()
        self.waiters.append(waiter)
        try:
            while not waiter.granted:
                if self.waiters[0] is waiter:
                    # Only the first in line keeps a timer: one per gate,
                    # not one per waiting source.
                    with anyio.move_on_after(STALL):
                        await waiter.event.wait()
                    if waiter.granted:
                        break
                    if not waiter.event.is_set() and self._stalled():
                        self._widen()  # this waiter first
                        break
                else:
                    await waiter.event.wait()
                if waiter.event.is_set() and not waiter.granted:
                    waiter.event = anyio.Event()  # woken to be first in line
        except BaseException:  # cancelled (close(), a caller's scope)
            if waiter.granted:
                self.leave()  # the slot it was given passes on
            else:
                first = self.waiters[0] is waiter
                self.waiters.remove(waiter)
                if first:
                    self._wake_first()
                if not self.in_flight and not self.waiters:
                    self._gates.pop(self._key, None)
            raise

    def _stalled(self) -> bool:
        return anyio.current_time() - self.last_done >= STALL

    def _wake_first(self) -> None:
        if self.waiters:
            self.waiters[0].event.set()

    def _widen(self) -> None:
        """LIMIT more attempts may go, from now until the origin is idle."""
        self.limit += LIMIT
        while self.waiters and self.in_flight < self.limit:
            waiter = self.waiters.popleft()
            waiter.granted = True
            waiter.event.set()
            self.in_flight += 1
        self._wake_first()


async def enter(url: httpx.URL) -> Gate:
    """Wait for a turn to connect to url's origin.

    Call ``leave()`` on the result when the attempt has its response head, or
    has failed.
    """
    try:
        gates = _gates.get()
    except LookupError:
        gates = {}
        _gates.set(gates)
    key = (url.scheme, url.host, url.port)
    gate = gates.get(key)
    if gate is None:
        gate = gates[key] = Gate(gates, key)
    if gate.in_flight < gate.limit and not gate.waiters:
        gate.in_flight += 1
    else:
        await gate.wait_turn()
    return gate
