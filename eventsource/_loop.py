"""Thread-safe access to the running event loop.

For code that must reach it from other threads (EventSource.close(),
SSEServer's control methods).
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["loop_call_soon"]


def loop_call_soon() -> Callable[[Callable[[], None]], object] | None:
    """The running event loop's thread-safe "call this soon" (asyncio or trio).

    None outside an event loop. Call it from the loop's thread.
    """
    try:
        import asyncio

        return asyncio.get_running_loop().call_soon_threadsafe
    except RuntimeError:
        pass
    try:
        import trio

        return trio.lowlevel.current_trio_token().run_sync_soon
    except (ImportError, RuntimeError):
        return None


def _no_loop() -> object:
    raise RuntimeError("no event loop was running")  # so that callers look again


CallSoon = Callable[[Callable[[], None]], object]


def running_loop() -> tuple[object, Callable[[], object], CallSoon | None]:
    """The running event loop: its identity, a check of it and its "call soon".

    A tuple of its identity, a cheap function that returns the identity of the
    loop running when called (raising RuntimeError outside a loop of that kind),
    and its thread-safe "call soon"; (None, a function that raises RuntimeError,
    None) outside an event loop. Call it from the loop's thread.
    """
    try:
        import asyncio

        loop = asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        return loop, asyncio.get_running_loop, loop.call_soon_threadsafe
    try:
        import trio

        token = trio.lowlevel.current_trio_token()
    except (ImportError, RuntimeError):
        return None, _no_loop, None
    return token, trio.lowlevel.current_trio_token, token.run_sync_soon
