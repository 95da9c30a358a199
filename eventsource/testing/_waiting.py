"""SSEServer's waits: a test blocks until a condition on the server's state
holds, woken each time the state changes, never by polling or sleeping."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import anyio

from .._loop import loop_call_soon as _loop_call_soon
from ._faults import count as _count
from ._records import RecordedConnection

__all__ = ["Waiting"]


class Waiting:
    """The lock that guards the server's state, the waiters woken on each
    change (``_notify``), and the wait methods."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: list[Callable[[], None]] = []
        self._connections: list[RecordedConnection] = []
        #: The thread running the server's event loop, while it runs.
        self._loop_thread: int | None = None

    # A wait with a default timeout is the point here: a test must never hang.
    async def await_until(
        self,
        condition: Callable[[], object],
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> None:
        """Wait until ``condition()`` is true; it is checked each time the
        server's state changes (a request, an event written, a close).
        Raises TimeoutError after ``timeout`` seconds."""
        deadline = anyio.current_time() + timeout
        while True:
            event = anyio.Event()
            waker = _threadsafe_setter(event.set)
            with self._lock:
                self._waiters.append(waker)
            try:
                if condition():
                    return
                with anyio.move_on_after(deadline - anyio.current_time()):
                    await event.wait()
                    continue
            finally:
                with self._lock:
                    self._waiters.remove(waker)
            if condition():
                return
            raise TimeoutError(f"SSEServer: {_describe(condition)} still false after {timeout} s")

    def wait_until(self, condition: Callable[[], object], timeout: float = 5.0) -> None:
        """Block the calling thread until ``condition()`` is true (see
        ``await_until``); not from the thread running the server's event loop."""
        if threading.get_ident() == self._loop_thread:
            raise RuntimeError(
                "wait_until() would block the server's event loop: "
                "use `await server.await_until(...)` in async code"
            )
        event = threading.Event()
        with self._lock:
            self._waiters.append(event.set)
        try:
            deadline = time.monotonic() + timeout
            while not condition():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"SSEServer: {_describe(condition)} still false after {timeout} s"
                    )
                event.wait(remaining)
                event.clear()
        finally:
            with self._lock:
                self._waiters.remove(event.set)

    async def await_for_connections(
        self,
        n: int = 1,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> RecordedConnection:
        """Wait until n requests came in all (each has its record in
        ``server.connections``, keep-alive or not); return the n-th record."""
        _count(n, minimum=1)
        try:
            await self.await_until(lambda: len(self._connections) >= n, timeout)
        except TimeoutError:
            raise self._too_few(n, timeout) from None
        return self._connections[n - 1]

    def wait_for_connections(self, n: int = 1, timeout: float = 5.0) -> RecordedConnection:
        """Block until n requests came in all (see ``await_for_connections``);
        return the n-th."""
        _count(n, minimum=1)
        try:
            self.wait_until(lambda: len(self._connections) >= n, timeout)
        except TimeoutError:
            raise self._too_few(n, timeout) from None
        return self._connections[n - 1]

    def _too_few(self, n: int, timeout: float) -> TimeoutError:
        return TimeoutError(
            f"SSEServer: {len(self._connections)} connection(s) after {timeout} s, waiting for {n}"
        )

    def _notify(self) -> None:
        with self._lock:
            waiters = list(self._waiters)
        for wake in waiters:
            wake()


def _describe(condition: Callable[[], object]) -> str:
    name = getattr(condition, "__qualname__", None) or repr(condition)
    return f"condition {name}"


def _threadsafe_setter(set_event: Callable[[], None]) -> Callable[[], None]:
    """A function that runs ``set_event`` in the current event loop's thread,
    whichever thread calls it."""
    owner = threading.get_ident()
    call_soon = _loop_call_soon()

    def wake() -> None:
        if threading.get_ident() == owner or call_soon is None:
            set_event()
        else:
            try:
                call_soon(set_event)
            except RuntimeError:  # the loop is gone
                pass

    return wake
