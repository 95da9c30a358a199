"""SSEParser: the sans-IO event stream parser (bytes in, events out).

Strategy
--------
This module implements WHATWG HTML, "9.2.6 Interpreting an event stream", and
nothing else: no I/O, no clock. Every rule of the format lives here.

- Decoding: UTF-8 with errors="replace", carrying an incomplete trailing
  sequence over to the next chunk, so a character split across chunks decodes
  right and invalid bytes become U+FFFD (Python replaces maximal subparts, as
  WHATWG's decoder does). One leading U+FEFF is dropped.
- Line ends: CRLF, LF and lone CR. Each decoded chunk is normalised to LF with
  two C-level str.replace calls. A chunk that ends with CR ends its line at
  once (an event is never held back waiting for the next chunk) and the parser
  drops an LF that starts the next chunk: CR + LF split across chunks is one
  line end. Nothing else ends a line (str.splitlines would split on U+2028,
  \\x0b, \\x1c...: it is never used).
- Whole blocks: text is parsed when the blank line that ends its block has
  arrived, so a parse always starts at a block boundary. Lines kept back can
  only hold retry fields and comments, whose effects could be seen earlier:
  close() applies a kept-back retry, and with on_comment set every complete
  line is parsed at once instead.
- The fast path: a run of whole blocks that all have one shape (the same
  event / id / data fields, each at most once, in the same order, nothing
  else) is parsed by one regex findall over the run; the match count times the
  lines per block must equal the run's newline count, which proves the matches
  cover every line. Everything else (comments, retry, multi-line data, NUL,
  unknown fields, runs of blank lines, oversized input) goes through the
  general line-by-line state machine, the reference; the conformance tests run
  over both paths.
- Limits: a single line, and the data of one event, may not exceed
  max_event_size characters. An unfinished line or event is checked at the end
  of every feed() (text kept back is parsed as soon as it passes the limit), a
  finished one when it is dispatched: the outcome does not depend on the
  chunking, and memory stays within about twice the limit plus one chunk.
"""

from __future__ import annotations

import codecs
import re
from itertools import islice, permutations
from operator import itemgetter
from typing import Any, Callable, Iterable, NamedTuple, Optional, Union

from ._errors import EventTooLargeError
from ._event import ServerSentEvent

__all__ = ["SSEParser", "parse"]

DEFAULT_MAX_EVENT_SIZE = 16 * 1024 * 1024

_new = tuple.__new__
_Event = ServerSentEvent
_utf8_decode = codecs.utf_8_decode
_FIELDS = frozenset(("data", "event", "id", "retry"))

_Shape = tuple[str, ...]
_Builder = Callable[[Iterable[Any], str], list[ServerSentEvent]]


def _build_d(rows: Iterable[Any], lid: str) -> list[ServerSentEvent]:
    return [_new(_Event, ("message", d, lid, None)) for d in rows]


def _build_e(rows: Iterable[Any], lid: str) -> list[ServerSentEvent]:
    return [_new(_Event, (t or "message", d, lid, None)) for t, d in rows]


def _build_i(rows: Iterable[Any], lid: str) -> list[ServerSentEvent]:
    return [_new(_Event, ("message", d, i, None)) for i, d in rows]


def _build_ei(rows: Iterable[Any], lid: str) -> list[ServerSentEvent]:
    return [_new(_Event, (t or "message", d, i, None)) for t, i, d in rows]


class _Form(NamedTuple):
    """How the fast path parses blocks of one shape."""

    pattern: re.Pattern[str]  # one block; groups are the field values
    lines: int  # newlines per block, blank line included
    reorder: Optional[itemgetter[Any]]  # puts groups in (event, id, data) order
    build: _Builder
    has_id: bool


def _form_table() -> dict[_Shape, _Form]:
    """The block shapes the fast path takes: event, id and data fields, each
    at most once, data always, in any order."""
    table = {}
    for extra, build in (((), _build_d), (("event",), _build_e), (("id",), _build_i),
                         (("event", "id"), _build_ei)):
        for shape in permutations((*extra, "data")):
            pattern = re.compile(
                "^" + "".join(rf"{name}:\x20?([^\n]*)\n" for name in shape) + "\n", re.MULTILINE
            )
            order = tuple(shape.index(name) for name in ("event", "id", "data") if name in shape)
            reorder = None if order == tuple(range(len(shape))) else itemgetter(*order)
            table[shape] = _Form(pattern, len(shape) + 1, reorder, build, "id" in shape)
    return table


_FORMS = _form_table()


class SSEParser:
    """Incremental, sans-IO parser of a ``text/event-stream`` body.

    Feed it the bytes of one connection as they arrive; it returns the events
    each chunk completes, whatever the chunking. ``close()`` ends the stream and
    makes the parser ready for the next connection (``last_event_id`` and
    ``retry`` are kept: the reconnect needs them).

    - ``max_event_size``: the longest line, and the longest event data, in
      characters; beyond it ``feed`` raises ``EventTooLargeError``, which
      carries the events completed before it in the same chunk.
    - ``on_comment(text)``: called for each comment line (``: text``, one
      leading space removed) as soon as its line ends, during ``feed``, so
      before the events of the same chunk are returned.
    - ``last_event_id``: the stream's last event ID, what a reconnect sends
      as ``Last-Event-ID``; may be given to start from.
    - ``retry``: the latest valid ``retry:`` value in ms, or ``None``. A retry
      field is seen when its event completes, or at ``close()`` at the latest.
    """

    __slots__ = (
        "last_event_id",
        "retry",
        "_limit",
        "_on_comment",
        "_whole_blocks",
        "_form",
        "_clean",
        "_undecoded",
        "_skip",
        "_bom",
        "_skip_lf",
        "_pending",
        "_pending_len",
        "_data",
        "_data_len",
        "_data_counted",
        "_type",
        "_id_buf",
        "_block_retry",
        "_out",
    )

    def __init__(
        self,
        *,
        max_event_size: int = DEFAULT_MAX_EVENT_SIZE,
        on_comment: Callable[[str], object] | None = None,
        last_event_id: str = "",
    ) -> None:
        if max_event_size < 1:
            raise ValueError("max_event_size must be at least 1")
        self.last_event_id = last_event_id
        self.retry: int | None = None
        self._limit = max_event_size
        self._on_comment = on_comment
        self._whole_blocks = on_comment is None
        self._form = _FORMS[("data",)]  # the shape last seen
        self._out: list[ServerSentEvent] = []
        self._reset()

    def _reset(self) -> None:
        self._undecoded = b""
        self._skip = self._bom = True
        self._skip_lf = False
        # The text after the last parsed line end, kept as a list of pieces
        # so that a long line arriving in small chunks is joined only once.
        self._pending: list[str] = []
        self._pending_len = 0
        self._data: list[str] = []
        self._data_len = 0
        self._data_counted = 0
        self._type = ""
        self._id_buf = self.last_event_id
        self._block_retry: int | None = None
        self._clean = True

    def close(self) -> list[ServerSentEvent]:
        """End the stream: an unfinished event is discarded (so this returns
        ``[]``), and the parser is ready for a new connection."""
        if self._pending:
            # Kept-back lines hold no blank line, so they dispatch nothing;
            # a retry field among them still sets the reconnection time.
            text = "".join(self._pending)
            last = text.rfind("\n")
            if last > 0:
                self._out = []
                self._parse_lines(text[:last].split("\n"))
        self._reset()
        return []

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Parse the next chunk of the body; return the events it completes."""
        if self._undecoded:
            chunk = self._undecoded + chunk
            self._undecoded = b""
        text, used = _utf8_decode(chunk, "replace", False)
        if used != len(chunk):
            self._undecoded = chunk[used:]
        if not text:
            return []
        if self._skip:  # a BOM may start the stream, an LF may end a CR
            text = self._skip_start(text)
            if not text:
                return []
        if "\r" in text:
            self._skip = self._skip_lf = text[-1] == "\r"
            text = text.replace("\r\n", "\n").replace("\r", "\n")

        pending = self._pending
        if self._whole_blocks:
            ready = "\n\n" in text or (
                text[0] == "\n" and (pending[-1][-1] == "\n" if pending else not self._clean)
            )
        else:
            ready = "\n" in text
        if not ready:
            # Nothing to parse yet: keep the text, unless that passes the limit.
            pending.append(text)
            self._pending_len += len(text)
            if self._pending_len + self._data_len <= self._limit:
                return []
            text = "".join(pending)
            pending.clear()
            end = text.rfind("\n") + 1
        else:
            if pending:
                pending.append(text)
                text = "".join(pending)
                pending.clear()
            end = text.rfind("\n\n") + 2 if self._whole_blocks else text.rfind("\n") + 1
            if len(text) - end > self._limit:
                end = text.rfind("\n") + 1
        self._pending_len = len(text) - end
        if self._pending_len:
            pending.append(text[end:] if end else text)
        if not end:
            if self._pending_len > self._limit:
                self._fail([])
            return []

        # The common case inline: whole blocks of the shape last seen.
        form = self._form
        if self._clean and end <= self._limit:
            found = form.pattern.findall(text, 0, end)
            if len(found) * form.lines == text.count("\n", 0, end) and not (
                form.has_id and "\0" in text
            ):
                out = form.build(found if form.reorder is None else map(form.reorder, found),
                                 self.last_event_id)
                if form.has_id:
                    self.last_event_id = self._id_buf = out[-1][2]
                if self._pending_len > self._limit:
                    self._fail(out)
                return out
        out = self._out = []
        self._run(text, end)
        if self._pending_len > self._limit:  # one unfinished line is too long
            self._fail(out)
        if self._data:
            self._check_data()
        return out

    def _skip_start(self, text: str) -> str:
        if self._bom:
            self._bom = False
            if text[0] == "\ufeff":
                text = text[1:]
        if self._skip_lf and text:
            self._skip_lf = False
            if text[0] == "\n":
                text = text[1:]
        self._skip = self._bom or self._skip_lf
        return text

    def _check_data(self) -> None:
        """Fail if the unfinished event's data is already over the limit."""
        data = self._data
        if len(data) > self._data_counted:
            self._data_len += sum(map(len, islice(data, self._data_counted, None)))
            self._data_counted = len(data)
            if self._data_len + len(data) - 1 > self._limit:
                self._fail(self._out)

    def _fail(self, events: list[ServerSentEvent]) -> None:
        self._reset()
        raise EventTooLargeError(self._limit, events)

    def _run(self, text: str, end: int) -> None:
        """Parse the complete lines text[:end] (text[end - 1] is an LF),
        runs of whole blocks on the fast path where it applies."""
        pos = 0
        if not self._clean:
            # Inside a block: finish it on the general path first.
            if text[0] == "\n":
                pos = 1
            else:
                pos = text.find("\n\n", 0, end)
                pos = end if pos < 0 else pos + 2
            self._lines(text, 0, pos)
        if pos < end:
            stop = text.rfind("\n\n", pos, end) + 2
            if stop > pos + 2 and stop - pos <= self._limit and self._fast(text, pos, stop):
                pos = stop
            if pos < end:
                self._lines(text, pos, end)

    def _fast(self, text: str, start: int, stop: int) -> bool:
        """Parse text[start:stop], a run of whole blocks, if they all have one
        shape: the last one seen, else the first block's. Return False (having
        done nothing) otherwise."""
        form = self._form
        found = _match(form, text, start, stop)
        if found is None:
            first = text[start : text.find("\n\n", start, stop)]
            new_form = _FORMS.get(tuple(line.partition(":")[0] for line in first.split("\n")))
            if new_form is None or new_form is form:
                return False
            found = _match(new_form, text, start, stop)
            if found is None:
                return False
            self._form = form = new_form
        events = form.build(found if form.reorder is None else map(form.reorder, found),
                            self.last_event_id)
        if form.has_id:
            self.last_event_id = self._id_buf = events[-1][2]
        self._out += events
        return True

    def _lines(self, text: str, start: int, stop: int) -> None:
        """The general path: parse the complete lines text[start:stop]."""
        lines = text[start : stop - 1].split("\n")
        if stop - start > self._limit:
            for index, line in enumerate(lines):
                if len(line) > self._limit:
                    self._parse_lines(lines[:index])
                    self._fail(self._out)
        self._parse_lines(lines)

    def _parse_lines(self, lines: list[str]) -> None:
        out = self._out
        data = self._data
        limit = self._limit
        type_ = self._type
        id_buf = self._id_buf
        retry = self._block_retry
        too_large = False
        try:
            for line in lines:
                if not line:  # blank line: dispatch
                    self.last_event_id = id_buf
                    if data:
                        value = "\n".join(data)
                        data.clear()
                        self._data_len = self._data_counted = 0
                        if len(value) > limit:
                            too_large = True
                            break
                        out.append(_new(_Event, (type_ or "message", value, id_buf, retry)))
                    type_ = ""
                    retry = None
                    continue
                # partition(": ") is right whenever it yields a known field
                # name ("data: x" and a bare "data" alike); anything else
                # ("data:x", comments, unknown fields) is split again on ":".
                name, _, value = line.partition(": ")
                if name == "data":
                    data.append(value)
                    continue
                if name not in _FIELDS:
                    name, colon, value = line.partition(":")
                    if value[:1] == " ":
                        value = value[1:]
                    if name == "data":
                        data.append(value)
                        continue
                    if not name:
                        if colon and self._on_comment is not None:
                            self._on_comment(value)
                        continue
                if name == "event":
                    type_ = value
                elif name == "id":
                    if "\0" not in value:
                        id_buf = value
                elif name == "retry":
                    if value.isdigit() and value.isascii():
                        try:
                            self.retry = retry = int(value)
                        except ValueError:  # more digits than int() takes: unusable anyway
                            pass
        finally:
            self._type = type_
            self._id_buf = id_buf
            self._block_retry = retry
            # True at a block boundary: where the fast path may start.
            self._clean = not (data or type_ or retry is not None) and (
                id_buf == self.last_event_id
            )
        if too_large:
            self._fail(out)


def _match(form: _Form, text: str, start: int, stop: int) -> list[Any] | None:
    """The regex groups of every block in text[start:stop], or None unless all
    of them have this form."""
    if form.has_id and text.find("\0", start, stop) >= 0:
        return None  # an id with NUL is ignored: the general path knows how
    found = form.pattern.findall(text, start, stop)
    # Each match is form.lines whole lines, so equal counts prove that the
    # matches cover the run.
    if len(found) * form.lines != text.count("\n", start, stop):
        return None
    return found


def parse(
    data: Union[bytes, str, Iterable[Union[bytes, str]]],  # noqa: UP007
    *,
    max_event_size: int = DEFAULT_MAX_EVENT_SIZE,
) -> list[ServerSentEvent]:
    """Parse a whole event stream at once and return its events.

    ``data`` is the body as bytes or str, or an iterable of chunks. An
    unfinished event at the end is discarded, as at the end of a connection.
    """
    parser = SSEParser(max_event_size=max_event_size)
    chunks = (data,) if isinstance(data, (bytes, bytearray, memoryview, str)) else data
    events: list[ServerSentEvent] = []
    for chunk in chunks:
        events += parser.feed(chunk.encode() if isinstance(chunk, str) else bytes(chunk))
    events += parser.close()
    return events
