"""format_event(): the wire format writer, for servers and tests."""

from __future__ import annotations

import json
from typing import Any

from ._errors import EventIdError
from ._request import last_event_id_header

__all__ = ["format_event"]


def format_event(
    data: Any = None,
    *,
    event: str | None = None,
    id: str | None = None,
    retry: int | None = None,
    comment: str | None = None,
) -> bytes:
    """Return one event block in the ``text/event-stream`` format (UTF-8).

    Args:
        data: A str (each of its lines becomes a ``data:`` line) or any other
            value, which is written as compact JSON; None (the default) writes
            no data, so no event is dispatched (a block of only ``id`` /
            ``retry`` / ``comment`` is still meaningful).
        event: The event type (an ``event:`` line); None: none.
        id: The event ID (an ``id:`` line; ``""`` resets the client's); None:
            none.
        retry: The client's reconnection time, in milliseconds (a ``retry:``
            line); None: none.
        comment: Comment text, one ``:`` line per line, written first; None:
            none.

    Returns:
        The block, ending in a blank line.

    Raises:
        ValueError: CR or LF in ``event`` or ``id``, NUL in ``id``, a
            ``retry`` that is no non-negative int, nothing to write; or an
            ``id`` that a client cannot send back as it is in
            ``Last-Event-ID``: one with a space or tab at either end (sent
            stripped), a vertical tab or a form feed (h11 refuses to send
            them).
    """
    lines: list[str] = []
    if comment is not None:
        lines.extend(":" + _space(line) for line in _split_lines(comment))
    if event is not None:
        if "\r" in event or "\n" in event:
            raise ValueError("event must not contain CR or LF")
        lines.append("event:" + _space(event))
    if id is not None:
        if "\r" in id or "\n" in id or "\0" in id:
            raise ValueError("id must not contain CR, LF or NUL")
        try:
            sent = last_event_id_header(id)
        except EventIdError as exc:
            raise ValueError(f"a client cannot send this id back: {exc}") from None
        if sent != id.encode():
            raise ValueError(
                f"id {id!r} starts or ends with a space or tab: a client sends it back stripped"
            )
        lines.append("id:" + _space(id))
    if retry is not None:
        if isinstance(retry, bool) or not isinstance(retry, int) or retry < 0:
            raise ValueError("retry must be a non-negative int (milliseconds)")
        lines.append(f"retry: {retry}")
    if data is not None:
        if not isinstance(data, str):
            data = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
        lines.extend("data:" + _space(line) for line in _split_lines(data))
    if not lines:
        raise ValueError("nothing to send: give data, event, id, retry or comment")
    return ("\n".join(lines) + "\n\n").encode()


def _space(value: str) -> str:
    # The parser removes exactly one leading space, so a value that starts
    # with a space needs it doubled; empty values need none.
    return " " + value if value else ""


def _split_lines(text: str) -> list[str]:
    # The same line ends the parser recognises: CRLF, CR, LF and nothing else.
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
