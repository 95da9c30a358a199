"""SSEServer's waits.

A test blocks until a condition on the server's state holds, woken each time
the state changes, never by polling or sleeping.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import anyio

from .._loop import loop_call_soon as _loop_call_soon
from ._faults import count as _count
from ._records import RecordedConnection

__all__ = ["Waiting"]

# Seconds between checks of a wait's condition when nothing on the server
# changed: a condition may hold state of the test's own (events received).
_POLL = 0.02


class Waiting:
    """The wait methods, and the lock and waiters behind them.

    The lock guards the server's state; the waiters are woken on each change
    (``_notify``).
    """

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
        """Wait until ``condition()`` is true.

        It is checked each time the server's state changes (a request, an event
        written, a close), and every 20 ms: a condition on the client's side
        (the events a test collected) ends the wait as soon.

        Args:
            condition: Called with no argument (``lambda: conn.closed``); the
                wait ends when it returns a true value.
            timeout: The most seconds to wait (default 5).

        Raises:
            TimeoutError: ``condition()`` is still false after ``timeout``
                seconds.
        """
        deadline = anyio.current_time() + timeout
        while True:
            event = anyio.Event()
            waker = _threadsafe_setter(event.set)
            with self._lock:
                self._waiters.append(waker)
            try:
                if condition():
                    return
                left = deadline - anyio.current_time()
                if left <= 0:
                    break
                with anyio.move_on_after(min(left, _POLL)):
                    await event.wait()
            finally:
                with self._lock:
                    self._waiters.remove(waker)
        raise TimeoutError(f"SSEServer: {_describe(condition)} still false after {timeout} s")

    def wait_until(self, condition: Callable[[], object], timeout: float = 5.0) -> None:
        """Block the calling thread until ``condition()`` is true.

        The sync ``await_until()``: not from the thread running the server's
        event loop.

        Args:
            condition: Called with no argument (``lambda: conn.closed``); the
                wait ends when it returns a true value.
            timeout: The most seconds to wait (default 5).

        Raises:
            TimeoutError: ``condition()`` is still false after ``timeout``
                seconds.
            RuntimeError: Called from the server's event loop thread (use
                ``await server.await_until(...)`` there).
        """
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
                event.wait(min(remaining, _POLL))
                event.clear()
        finally:
            with self._lock:
                self._waiters.remove(event.set)

    async def await_for_connections(
        self,
        n: int = 1,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> RecordedConnection:
        """Wait until n requests came in all.

        Each has its record in ``server.connections``, keep-alive or not.

        Args:
            n: The number of requests (default 1).
            timeout: The most seconds to wait (default 5).

        Returns:
            The n-th request's record.

        Raises:
            TimeoutError: Fewer than n requests came in ``timeout`` seconds.
            ValueError: ``n`` is no int >= 1.
        """
        _count(n, minimum=1)
        try:
            await self.await_until(lambda: len(self._connections) >= n, timeout)
        except TimeoutError:
            raise self._too_few(n, timeout) from None
        return self._connections[n - 1]

    def wait_for_connections(self, n: int = 1, timeout: float = 5.0) -> RecordedConnection:
        """Block until n requests came in all (the sync ``await_for_connections()``).

        Args:
            n: The number of requests (default 1).
            timeout: The most seconds to wait (default 5).

        Returns:
            The n-th request's record.

        Raises:
            TimeoutError: Fewer than n requests came in ``timeout`` seconds.
            ValueError: ``n`` is no int >= 1.
            RuntimeError: Called from the server's event loop thread.
        """
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
    """A function that runs ``set_event`` in the current event loop's thread.

    Whichever thread calls it.
    """
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
