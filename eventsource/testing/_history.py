"""SSEServer's history: the wire blocks of every event sent, and where a
client that sends ``Last-Event-ID`` resumes."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .._encoder import format_event
from ._events import EventLike, format_kwargs

__all__ = ["History", "HistoryItem", "history_item"]


@dataclass
class HistoryItem:
    block: bytes
    #: The id the block sets (its last ``id:`` field), None when it sets none.
    id: str | None


def history_item(event: EventLike) -> HistoryItem:
    kwargs = format_kwargs(event)
    if kwargs is None:
        block = bytes(event)  # type: ignore[arg-type]
        return HistoryItem(block, _block_id(block))
    return HistoryItem(format_event(**kwargs), kwargs.get("id"))


class History:
    """The blocks in order, with an index from each id to the position after
    its last block. Not thread-safe: the server holds its lock."""

    def __init__(self, items: list[HistoryItem]) -> None:
        self._blocks: list[bytes] = []
        self._after: dict[str, int] = {}
        self.extend(items)

    def __len__(self) -> int:
        return len(self._blocks)

    @property
    def blocks(self) -> list[bytes]:
        return list(self._blocks)

    def extend(self, items: list[HistoryItem]) -> None:
        for item in items:
            self._blocks.append(item.block)
            if item.id:
                self._after[item.id] = len(self._blocks)

    def replay(self, last_event_id: str | None, replay: bool) -> list[bytes]:
        """The blocks a new connection gets: those after ``last_event_id``
        when the history holds it; else all of them, or none unless ``replay``."""
        start = self._after.get(last_event_id) if last_event_id else None
        if start is None:
            start = 0 if replay else len(self._blocks)
        return self._blocks[start:]


def _block_id(block: bytes) -> str | None:
    """The value of the last ``id:`` field in a raw block, if any."""
    found = None
    for line in re.split(rb"\r\n|\r|\n", block):
        if line == b"id" or line.startswith(b"id:"):
            value = line[3:]
            found = (value[1:] if value.startswith(b" ") else value).decode("utf-8", "replace")
    return found
