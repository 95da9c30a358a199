"""A deliberately naive transcription of WHATWG "interpreting an event stream".

Character by character, no optimisation: the oracle the real parser is checked
against in differential tests. It is kept in tests, never imported by the library.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RefEvent:
    type: str
    data: str
    id: str
    retry: int | None


@dataclass
class RefResult:
    events: list[RefEvent] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    last_event_id: str = ""
    retry: int | None = None


def reference_parse(body: bytes, last_event_id: str = "") -> RefResult:
    text = body.decode("utf-8", errors="replace")
    if text.startswith("\ufeff"):
        text = text[1:]
    # Split into lines: CRLF, LF, or CR each end a line; the text after the
    # last line end is an unfinished line and is discarded at end of stream.
    lines: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\r":
            lines.append("".join(current))
            current = []
            if i + 1 < len(text) and text[i + 1] == "\n":
                i += 1
        elif ch == "\n":
            lines.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1

    result = RefResult(last_event_id=last_event_id)
    data_buffer = ""
    event_type = ""
    id_buffer = last_event_id
    block_retry: int | None = None
    for line in lines:
        if line == "":
            result.last_event_id = id_buffer
            if data_buffer == "":
                event_type = ""
                block_retry = None
                continue
            if data_buffer.endswith("\n"):
                data_buffer = data_buffer[:-1]
            result.events.append(
                RefEvent(event_type or "message", data_buffer, result.last_event_id, block_retry)
            )
            data_buffer = ""
            event_type = ""
            block_retry = None
            continue
        if line.startswith(":"):
            comment = line[1:]
            if comment.startswith(" "):
                comment = comment[1:]
            result.comments.append(comment)
            continue
        if ":" in line:
            name, value = line.split(":", 1)
            if value.startswith(" "):
                value = value[1:]
        else:
            name, value = line, ""
        if name == "event":
            event_type = value
        elif name == "data":
            data_buffer += value + "\n"
        elif name == "id":
            if "\0" not in value:
                id_buffer = value
        elif name == "retry":
            if value and all(c in "0123456789" for c in value):
                # Any length is valid; the library keeps at most 2**63 - 1 ms
                # (and int() refuses more than 4300 digits).
                digits = value.lstrip("0") or "0"
                result.retry = block_retry = (
                    min(int(digits), 2**63 - 1) if len(digits) <= 19 else 2**63 - 1
                )
    return result
