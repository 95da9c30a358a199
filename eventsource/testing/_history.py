"""SSEServer's history.

The wire blocks of every event sent, and where a client that sends
``Last-Event-ID`` resumes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from .._encoder import format_event
from ._events import EventLike, format_kwargs

__all__ = [
    "LINE_ENDINGS",
    "History",
    "HistoryItem",
    "LineEnding",
    "check_line_ending",
    "history_item",
    "with_line_ending",
]

LineEnding = Literal["\n", "\r\n", "\r"]
LINE_ENDINGS: tuple[LineEnding, ...] = ("\n", "\r\n", "\r")


def check_line_ending(line_ending: str) -> LineEnding:
    if line_ending not in LINE_ENDINGS:
        raise ValueError(f"line_ending must be '\\n', '\\r\\n' or '\\r', not {line_ending!r}")
    return line_ending


def with_line_ending(block: bytes, line_ending: LineEnding) -> bytes:
    """A block written by format_event (LF only) with other line ends."""
    return block if line_ending == "\n" else block.replace(b"\n", line_ending.encode())


@dataclass
class HistoryItem:
    block: bytes
    #: The id the block sets (its last ``id:`` field), None when it sets none.
    id: str | None


def history_item(event: EventLike, line_ending: LineEnding = "\n") -> HistoryItem:
    """An event's block (raw bytes as they are; others with ``line_ending``)."""
    kwargs = format_kwargs(event)
    if kwargs is None:
        block = bytes(event)  # type: ignore[arg-type]
        return HistoryItem(block, _block_id(block))
    return HistoryItem(with_line_ending(format_event(**kwargs), line_ending), kwargs.get("id"))


class History:
    """The blocks in order, with an index from each id, and their sizes.

    The index maps each id to the position after its last block; the sizes are
    a running total. A connection reads it through a cursor (``start()``,
    ``block()``): nothing is copied per connection, and resuming is a dict
    lookup. Not thread-safe: the server holds its lock.
    """

    def __init__(self, items: list[HistoryItem]) -> None:
        self._blocks: list[bytes] = []
        self._after: dict[str, int] = {}
        #: _ends[i]: the bytes in the first i blocks.
        self._ends: list[int] = [0]
        #: How many blocks hold a CRLF (a "crlf" cut point).
        self.crlf_blocks = 0
        self.extend(items)

    def __len__(self) -> int:
        return len(self._blocks)

    @property
    def blocks(self) -> list[bytes]:
        return list(self._blocks)

    def extend(self, items: list[HistoryItem]) -> None:
        for item in items:
            self._blocks.append(item.block)
            self._ends.append(self._ends[-1] + len(item.block))
            self.crlf_blocks += b"\r\n" in item.block
            if item.id:
                self._after[item.id] = len(self._blocks)

    def start(self, last_event_id: str | None, replay: bool) -> int:
        """Where a new connection starts reading.

        After ``last_event_id`` when the history holds it; else at the
        beginning, or at the end unless ``replay``.
        """
        start = self._after.get(last_event_id) if last_event_id else None
        if start is None:
            start = 0 if replay else len(self._blocks)
        return start

    def block(self, index: int) -> bytes:
        return self._blocks[index]

    def size(self, start: int, stop: int) -> int:
        """The bytes in blocks ``start`` to ``stop`` (excluded)."""
        return self._ends[stop] - self._ends[start]


def _block_id(block: bytes) -> str | None:
    """The value of the last ``id:`` field in a raw block, if any."""
    found = None
    for line in re.split(rb"\r\n|\r|\n", block):
        if line == b"id" or line.startswith(b"id:"):
            value = line[3:]
            found = (value[1:] if value.startswith(b" ") else value).decode("utf-8", "replace")
    return found
