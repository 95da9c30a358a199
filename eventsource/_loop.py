"""Thread-safe access to the running event loop, for code that must reach
it from other threads (EventSource.close(), SSEServer's control methods)."""

from __future__ import annotations

from typing import Callable

__all__ = ["loop_call_soon"]


def loop_call_soon() -> Callable[[Callable[[], None]], object] | None:
    """The running event loop's thread-safe "call this soon" (asyncio or
    trio), or None outside an event loop. Call it from the loop's thread."""
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
