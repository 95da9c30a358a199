"""A source's callbacks and listeners, and what both drivers do with them."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from ._errors import EventSourceError
from ._event import ServerSentEvent

__all__ = [
    "Callback",
    "Callbacks",
    "Listener",
    "OnClose",
    "OnComment",
    "OnError",
    "OnMessage",
    "OnOpen",
]

logger = logging.getLogger("eventsource")

Callback = Callable[..., Any]  # any of these, as the drivers call them
# Each may also be a coroutine function in async mode: it returns an awaitable,
# which is an object too.
OnOpen = Callable[[], object]
OnMessage = Callable[[ServerSentEvent], object]
OnError = Callable[[EventSourceError], object]
OnClose = Callable[[], object]
OnComment = Callable[[str], object]
Listener = Callable[[ServerSentEvent], object]
_NO_HANDLERS: list[Callback] = []  # never mutated
# The listeners of a source that has none: most have none, and an empty dict
# each is 64 bytes. Read-only, so that nothing can add to it by mistake.
_NO_LISTENERS: Mapping[str, list[Callback]] = MappingProxyType({})


class Callbacks:
    """on_open / on_message / on_error / on_close / on_comment, and the per-type listeners."""

    __slots__ = ("listeners", "on_close", "on_comment", "on_error", "on_message", "on_open")

    def __init__(
        self,
        on_open: OnOpen | None,
        on_message: OnMessage | None,
        on_error: OnError | None,
        on_close: OnClose | None,
        on_comment: OnComment | None,
    ) -> None:
        self.on_open: Callback | None = on_open
        self.on_message: Callback | None = on_message
        self.on_error: Callback | None = on_error
        self.on_close: Callback | None = on_close
        self.on_comment: Callback | None = on_comment
        self.listeners: Mapping[str, list[Callback]] = _NO_LISTENERS

    def add_listener(self, type: str, listener: Callback) -> None:
        """Call ``listener(event)`` for every event of this type too."""
        listeners = self.listeners
        if not isinstance(listeners, dict):
            listeners = self.listeners = {}  # the first listener
        listeners.setdefault(type, []).append(listener)

    def handlers(self, event: ServerSentEvent) -> list[Callback]:
        """Who hears of this event: on_message, then the type's listeners."""
        listeners = self.listeners.get(event[0]) if self.listeners else None
        if self.on_message is None:
            return listeners or _NO_HANDLERS
        return [self.on_message, *listeners] if listeners else [self.on_message]

    def failed(self, callback: Callback, exc: Exception) -> EventSourceError | None:
        """Log a callback's exception.

        Return what on_error should receive (None when on_error itself raised).
        """
        if callback is self.on_error:
            logger.exception("on_error callback raised", exc_info=exc)
            return None
        logger.warning("%r raised %r; the stream goes on", callback, exc)
        error = EventSourceError(f"callback {getattr(callback, '__name__', callback)!r} raised")
        error.__cause__ = exc
        return error
