"""SSEServer's fault plans.

What a connection's outbox may hold besides data, the faults armed for the next
connections, canned answers, and where ``drop_mid_event()`` cuts a block.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

__all__ = ["EVENT", "RAW", "DROP", "STALL", "END", "Canned", "CutPoint", "Plan", "count"]

#: Where drop_mid_event() cuts the block: a byte offset (negative: from the
#: end), or "line" / "utf8" / "crlf" (see drop_mid_event).
CutPoint = int | Literal["line", "utf8", "crlf"]

# Outbox items: (kind, payload), written in order by the connection's task.
EVENT = "event"  # a history block: counts as an event
RAW = "raw"  # a comment or raw bytes: sent, not counted
DROP = "drop"  # hang up
STALL = "stall"  # go silent until a DROP
END = "end"  # end the response normally


@dataclass
class Plan:
    """A fault armed for the next event-stream connection.

    After ``after`` events, drop, cut the next block at ``at`` ("mid"), stall,
    or end. A ``drop()`` / ``stall()`` / ``end()`` called while no stream was
    open is armed at a ``position`` of the history instead: the connection gets
    the history up to there (``after`` is set when it opens).
    """

    kind: Literal["drop", "mid", "stall", "end"]
    after: int
    at: CutPoint = 0
    position: int | None = None


@dataclass
class Canned:
    """A ``respond_with()`` answer, for ``times`` more requests (None: all)."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes
    times: int | None
    #: The body's framing is exact (a right Content-Length, or no body where
    #: none is allowed), so the connection can carry the next request.
    reusable: bool


def count(n: int, minimum: int = 0) -> int:
    """n, checked: an int (not a bool) >= minimum."""
    if isinstance(n, bool) or not isinstance(n, int) or n < minimum:
        raise ValueError(f"n must be an int >= {minimum}, not {n!r}")
    return n


def cut_point(block: bytes, at: CutPoint) -> int:
    """How many bytes of ``block`` to send before hanging up (0 < cut < len)."""
    if isinstance(at, int):
        cut = at if at >= 0 else len(block) + at
        if not 0 <= cut < len(block):
            raise ValueError(f"drop_mid_event: offset {at} outside a {len(block)}-byte block")
        return cut
    if at == "line":
        lines = [m for m in re.finditer(rb"[^\r\n]+", block) if m.end() - m.start() >= 2]
        if lines:
            last = lines[-1]
            return last.start() + (last.end() - last.start()) // 2
    elif at == "utf8":
        match = re.search(rb"[\xc0-\xff]", block)
        if match:
            return match.start() + 1
    elif at == "crlf":
        index = block.find(b"\r\n")
        if index >= 0:
            return index + 1
    raise ValueError(f"drop_mid_event: no {at!r} cut point in {block!r}")
