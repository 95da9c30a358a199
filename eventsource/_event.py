"""ServerSentEvent: one dispatched event."""

from __future__ import annotations

import json
from operator import itemgetter
from typing import Any

__all__ = ["ServerSentEvent"]


class ServerSentEvent(tuple):  # type: ignore[type-arg]
    r"""One event as dispatched by the stream; immutable.

    Build one with keywords, e.g. to compare in tests:
    ``ServerSentEvent(type="chunk", data='{"content": "Hi"}', id="7")``: each
    keyword sets the attribute of its name, and defaults as said below.

    Attributes:
        type: The ``event:`` field, or ``"message"`` (the default) when the
            block named none.
        data: The ``data:`` lines joined with ``"\n"`` (default ``""``).
        id: The stream's last event ID when the event was dispatched (like a
            browser's ``lastEventId``): ``""`` (the default) when there is none.
        retry: The reconnection time (ms) set by a ``retry:`` field inside this
            event's block, else None (the default).
    """

    # A tuple subclass rather than a dataclass: the parser creates one per
    # event, and tuple.__new__ is several times cheaper than __init__ on a
    # frozen dataclass. Attribute access goes through C-level itemgetters.
    __slots__ = ()
    __match_args__ = ("type", "data", "id", "retry")

    type: str = property(  # type: ignore[assignment]
        itemgetter(0), doc='The ``event:`` field, or ``"message"``.'
    )
    data: str = property(  # type: ignore[assignment]
        itemgetter(1), doc=r'The ``data:`` lines joined with ``"\n"``.'
    )
    id: str = property(  # type: ignore[assignment]
        itemgetter(2), doc='The stream\'s last event ID at dispatch (``""``: none).'
    )
    retry: int | None = property(  # type: ignore[assignment]
        itemgetter(3), doc="The ``retry:`` field of this event's block (ms), else None."
    )

    def __new__(
        cls,
        type: str = "message",
        data: str = "",
        id: str = "",
        retry: int | None = None,
    ) -> ServerSentEvent:
        return tuple.__new__(cls, (type, data, id, retry))

    def __getnewargs__(self) -> tuple[Any, ...]:  # copy and pickle
        return tuple(self)

    def json(self, **kwargs: Any) -> Any:
        """Decode ``data`` as JSON.

        Args:
            **kwargs: Passed on to ``json.loads`` (``object_hook=``...).

        Returns:
            The decoded value.

        Raises:
            json.JSONDecodeError: ``data`` is no JSON (a ValueError).
        """
        return json.loads(self[1], **kwargs)

    def __repr__(self) -> str:
        type_, data, id_, retry = self
        parts = [f"type={type_!r}", f"data={data!r}"]
        if id_:
            parts.append(f"id={id_!r}")
        if retry is not None:
            parts.append(f"retry={retry!r}")
        return f"ServerSentEvent({', '.join(parts)})"

    # Equal only to another ServerSentEvent, never to a plain tuple.
    def __eq__(self, other: object) -> bool:
        if isinstance(other, ServerSentEvent):
            return tuple.__eq__(self, other)
        return False if isinstance(other, tuple) else NotImplemented

    def __ne__(self, other: object) -> bool:
        if isinstance(other, ServerSentEvent):
            return tuple.__ne__(self, other)
        return True if isinstance(other, tuple) else NotImplemented

    __hash__ = tuple.__hash__
