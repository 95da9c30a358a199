"""The event forms the testing tools accept, and their wire format."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._encoder import format_event
from .._event import ServerSentEvent

EventLike = ServerSentEvent | Mapping[str, Any] | str | bytes
"""An event to send.

A ServerSentEvent, a dict of ``format_event()`` keywords, a str (the data of a
"message" event) or bytes (sent as they are).
"""


def format_kwargs(event: EventLike) -> dict[str, Any] | None:
    """format_event() keywords for an event; None for raw bytes."""
    if isinstance(event, (bytes, bytearray)):
        return None
    if isinstance(event, ServerSentEvent):
        return {
            "data": event.data,
            "event": None if event.type == "message" else event.type,
            "id": event.id or None,
            "retry": event.retry,
        }
    if isinstance(event, str):
        return {"data": event}
    if isinstance(event, Mapping):
        return dict(event)
    raise TypeError(f"an event is a dict, ServerSentEvent, str or bytes, not {event!r}")


def encode_event(event: EventLike) -> bytes:
    """One event's block in the wire format."""
    kwargs = format_kwargs(event)
    return bytes(event) if kwargs is None else format_event(**kwargs)  # type: ignore[arg-type]
