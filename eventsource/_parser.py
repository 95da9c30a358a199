r"""SSEParser: the sans-IO event stream parser (bytes in, events out).

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
  \x0b, \x1c...: it is never used).
- Whole blocks: text is parsed when the blank line that ends its block has
  arrived, so a parse always starts at a block boundary. Lines kept back can
  only hold retry fields and comments, whose effects could be seen earlier:
  close() applies a kept-back retry, and with on_comment set every complete
  line is parsed at once instead.
- Kept bytes: what cannot complete anything is kept undecoded. A chunk with
  no CR or LF is appended to a list as it is (a C memchr or two per chunk:
  tiny chunks of long lines cost almost nothing). In whole-blocks mode, with
  no BOM to skip, the bytes path finds the last blank line on the bytes (CR
  and LF are ASCII, never inside a UTF-8 sequence nor a replaced invalid one,
  so normalising and cutting before decoding gives the same text), decodes
  only the whole blocks and keeps the rest as bytes; a CR at a chunk's end
  becomes an LF at once, and an LF starting the next chunk is dropped. Bytes
  are at least as many as the characters they decode to: kept bytes within
  the limit prove that the exact checks would pass; past it, the general path
  decodes everything and runs them (so an overflow of bytes is never an error
  by itself). A chunk parsed whole there with nothing kept makes the parser
  quiet: the next chunk of whole blocks with no CR (nor NUL, for an id) goes
  straight to the fast path, past every check of what is kept.
- The fast path (its forms are in ``_forms``): a run of whole blocks that all
  have one shape (the same event / id / data fields, each at most once, in the
  same order; in the extended forms also comment lines first, when on_comment
  is unset, and several consecutive "data: " lines) is parsed by one regex
  findall over the run. Each match is whole lines; the match count times the
  fixed lines per block, plus the newlines inside the variable groups, must
  equal the run's newline count, which proves the matches cover every line (a
  single match ending at the run's end covers it too). Everything else (retry,
  comments in between, NUL in an id, unknown fields, runs of blank lines,
  oversized input) goes through the general line-by-line state machine, the
  reference; the conformance tests run over all paths.
- Limits: a single line, and the data of one event, may not exceed
  max_event_size characters. An unfinished line or event is checked at the end
  of every feed() (text kept back is parsed as soon as it passes the limit), a
  finished one when it is dispatched: the outcome does not depend on the
  chunking, and memory stays within about twice the limit plus one chunk.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable, Iterable
from itertools import chain, islice
from typing import Any

from ._errors import EventTooLargeError
from ._event import ServerSentEvent
from ._forms import FORMS as _FORMS
from ._forms import PLAIN as _PLAIN
from ._forms import Form as _Form
from ._forms import shape_key as _shape_key

__all__ = ["SSEParser", "parse"]

DEFAULT_MAX_EVENT_SIZE = 16 * 1024 * 1024
# The longest reconnection time kept, in ms (292 million years): a longer
# retry: is kept as this. The spec takes any run of ASCII digits, but int()
# refuses more than 4300 of them (by default) and takes time quadratic in
# their count: it only ever sees 19 here.
MAX_RETRY = 2**63 - 1

_new = tuple.__new__
_Event = ServerSentEvent
_utf8_decode = codecs.utf_8_decode
# Past this many kept bytes of an unfinished block, the bytes path appends
# chunks to a list instead of copying the tail on each one (see feed()).
_LONG_TAIL = 4096
_FIELDS = frozenset(("data", "event", "id", "retry"))

# What _raw, _tail_more, _pending and _data hold until something is first
# kept in them after a _reset(): no list (an idle stream often never needs
# some of them, and an empty list is 56 bytes). The first append raises
# AttributeError and makes the list, which is kept from then on: a try costs
# nothing while nothing raises (CPython 3.11+; a cheap setup before), so the
# hot paths pay nothing for this, where a check before each append would.
_NONE = ()


_EOL = frozenset((10, 13))  # LF and CR, as a bytes object's items


class SSEParser:
    """Incremental, sans-IO parser of a ``text/event-stream`` body.

    Feed it the bytes of one connection as they arrive; it returns the events
    each chunk completes, whatever the chunking. ``close()`` ends the stream and
    makes the parser ready for the next connection (``last_event_id`` and
    ``retry`` are kept: the reconnect needs them).

    Args:
        max_event_size: The longest line, and the longest event data, in
            characters (default ``16 * 1024 * 1024``); beyond it ``feed``
            raises ``EventTooLargeError``, which carries the events completed
            before it in the same chunk.
        on_comment: Called as ``on_comment(text)`` for each comment line
            (``: text``, one leading space removed) as soon as its line ends,
            during ``feed``, so before the events of the same chunk are
            returned; None (the default): comments are skipped.
        last_event_id: The last event ID to start from (default ``""``).

    Attributes:
        last_event_id: The stream's last event ID, what a reconnect sends as
            ``Last-Event-ID``.
        retry: The latest valid ``retry:`` value in ms, or None. A retry field
            is seen when its event completes, or at ``close()`` at the latest.
            A value of any length is valid; one over ``MAX_RETRY``
            (2**63 - 1) is kept as ``MAX_RETRY``.

    Raises:
        ValueError: ``max_event_size`` is below 1.
    """

    __slots__ = (
        "last_event_id",
        "retry",
        "_limit",
        "_on_comment",
        "_whole_blocks",
        "_form",
        "_clean",
        "_raw",
        "_tail",
        "_tail_more",
        "_room",
        "_lean",
        "_quiet",
        "_skip",
        "_bom",
        "_skip_lf",
        "_cr",
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
        # The shape last seen, or None when the last run was not fast-path-able.
        self._form: _Form | None = _PLAIN
        self._out: list[ServerSentEvent] = []
        # Bytes received and not decoded yet follow _pending: _tail, kept by
        # the last feed() that looked at its chunk; then _tail_more, chunks the
        # bytes path kept while no blank line could have arrived (appended,
        # not joined: joining on every chunk made a growing block quadratic);
        # then the chunks in _raw, kept without a look.
        self._reset()

    def _reset(self) -> None:
        self._raw: list[bytes] | tuple[()] = _NONE
        self._tail = b""
        self._tail_more: list[bytes] | tuple[()] = _NONE
        # How many more bytes feed() may keep in _raw without looking at them,
        # or -1 while a BOM or an LF is to be skipped: see feed().
        self._room = -1
        self._lean = False  # the bytes path is open: whole blocks, nothing to skip
        self._quiet = False  # the bytes path parsed a chunk whole: see the Strategy
        self._skip = self._bom = True
        self._skip_lf = False
        self._cr = False  # the bytes path's _skip_lf: the last chunk's CR became an LF
        # The text after the last parsed line end, kept as a list of pieces
        # so that a long line arriving in small chunks is joined only once.
        self._pending: list[str] | tuple[()] = _NONE
        self._pending_len = 0
        self._data: list[str] | tuple[()] = _NONE
        self._data_len = 0
        self._data_counted = 0
        self._type = ""
        self._id_buf = self.last_event_id
        self._block_retry: int | None = None
        self._clean = True

    def close(self) -> list[ServerSentEvent]:
        """End the stream; the parser is ready for a new connection.

        An unfinished event is discarded; a ``retry:`` field among its lines
        still sets ``retry``.

        Returns:
            ``[]``: no event completes at the end of a stream.
        """
        if self._pending or self._tail or self._tail_more or self._raw:
            # Kept-back lines hold no blank line, so they dispatch nothing;
            # a retry field among them still sets the reconnection time.
            # (Kept bytes hold no CR: they were normalised or have no line end.)
            text = (
                "".join(self._pending)
                + _utf8_decode(b"".join([self._tail, *self._tail_more, *self._raw]), "replace")[0]
            )
            last = text.rfind("\n")
            if last > 0:
                self._out = []
                self._parse_lines(text[:last].split("\n"))
        self._reset()
        return []

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Parse the next chunk of the body.

        Args:
            chunk: The next bytes of the body, of any length.

        Returns:
            The events this chunk completes, in stream order.

        Raises:
            EventTooLargeError: A line or an event's data exceeds
                ``max_event_size``; ``close()`` the parser before feeding it
                again.
        """
        if self._quiet:  # the steady state of a live stream: see _reset()
            shape: Any = self._form
            if chunk[-2:] == b"\n\n" and chunk[0] != 10 and 13 not in chunk:
                if len(chunk) <= self._room and not (shape.has_id and 0 in chunk):
                    found = self._blocks(chunk.decode("utf-8", "replace"), shape)
                    if found is not None:
                        return found
            self._quiet = False  # the other paths: they set it again
        # A chunk without a line end completes nothing: keep its bytes as they
        # are. _room is what the limit leaves to the text kept back (pending
        # text, data, kept bytes); bytes are at least as many as the characters
        # they decode to, so while the kept bytes fit, the exact check at the
        # end of feed() would pass too. Past it, the general path decodes all
        # and runs the exact checks: an overflow here is never an error itself.
        # (10 in chunk is a C-level memchr; b"\n" in chunk costs ten times more.)
        if 10 not in chunk and 13 not in chunk:
            room = self._room - len(chunk)
            if room >= 0:
                self._room = room
                try:
                    self._raw.append(chunk)  # type: ignore[union-attr]
                except AttributeError:  # _NONE: see there
                    self._raw = [chunk]
                return []
        raw = self._raw
        if self._cr and chunk:
            # The last chunk ended with a CR: an LF that follows it at once
            # (kept chunks without line ends may come between only if empty)
            # completes that line end.
            self._cr = False
            if chunk[0] == 10 and not any(raw):
                chunk = chunk[1:]
                if not chunk:
                    return []
        if (
            self._lean
            and len(chunk) <= self._room
            and (chunk[0] not in _EOL or self._tail or self._tail_more or any(raw))
        ):
            # The bytes path: whole-blocks mode, no BOM or LF to skip, no data
            # of an unfinished block (see _lean), no blank line across the
            # boundary (kept bytes never start with a line end; empty chunks
            # may be kept, hence any()), nothing that could pass the limit.
            # Blocks are found on the bytes (CR and LF are ASCII: never part
            # of a UTF-8 sequence, nor of a replaced invalid one, so
            # normalising and cutting at an LF before decoding gives the same
            # text), and only the complete blocks are decoded; the rest is
            # kept as bytes (normalised: kept bytes hold no CR). A CR that
            # ends the chunk ends its line now; _cr drops the LF that may
            # follow it at the start of the next chunk.
            if 13 in chunk:
                self._cr = chunk[-1] == 13
                chunk = chunk.replace(b"\r\n", b"\n")
                if 13 in chunk:
                    chunk = chunk.replace(b"\r", b"\n")
            if raw:
                raw.append(chunk)
                chunk = b"".join(raw)
                raw.clear()
            more = self._tail_more
            if (more or len(self._tail) > _LONG_TAIL) and (
                b"\n\n" not in chunk
                and not (chunk[:1] == b"\n" and (more[-1] if more else self._tail)[-1:] == b"\n")
            ):
                # A long unfinished block, and no blank line can end in this
                # chunk: keep it without copying or scanning the tail again (a
                # short tail is cheaper to copy, and its cost stays bounded).
                try:
                    more.append(chunk)  # type: ignore[union-attr]
                except AttributeError:  # _NONE: see there
                    self._tail_more = [chunk]
                self._room -= len(chunk)
                return []
            if more:
                more.append(chunk)
                chunk = b"".join(more)
                more.clear()
            chunk = self._tail + chunk
            end = (chunk.rfind(b"\n\n") if len(chunk) < 4096 else _rfind_blank(chunk)) + 2
            if end < 2:  # no blank line: nothing to parse yet
                self._tail = chunk
                self._room = self._limit - self._pending_len - len(chunk)
                return []
            if end < len(chunk):
                self._tail = chunk[end:]
                self._room = self._limit - len(chunk) + end
                chunk = chunk[:end]
            else:
                self._tail = b""
                self._room = self._limit
            text = chunk.decode("utf-8", "replace")  # complete: it ends with an LF
            # An id with NUL is ignored: the general path knows how. (0 in chunk
            # is a C memchr; "\0" in a str with an emoji is a slow UCS-4 search.)
            nul = 0 in chunk
            pending = self._pending
            if pending:
                pending.append(text)
                text = "".join(pending)
                pending.clear()
                self._pending_len = 0
                nul = "\0" in text
            # text is whole blocks (the first one's start maybe parsed already),
            # and no longer than the limit: no check can fail.
            form = self._form
            if self._clean and form is not None and not (nul and form.has_id):
                found = self._blocks(text, form)
                if found is not None:
                    self._quiet = not (self._cr or self._tail)  # nothing kept
                    return found
            out = self._out = []
            self._run(text, len(text), form)
            return out

        if raw:
            raw.append(chunk)
            chunk = b"".join(raw)
            raw.clear()
        more = self._tail_more
        if more:
            chunk = b"".join([self._tail, *more, chunk])
            more.clear()
        elif self._tail:
            chunk = self._tail + chunk
        self._tail = b""
        self._room = -1
        out = self._feed_text(chunk)
        if self._skip or self._data:
            # The bytes path needs to know: the LF or BOM to skip, the data so far.
            self._lean = False
        else:
            self._lean = self._whole_blocks
        if not self._skip:
            self._room = (
                self._limit - self._pending_len - self._data_len - len(self._data) - len(self._tail)
            )
        return out

    def _blocks(self, text: str, form: _Form) -> list[ServerSentEvent] | None:
        """The events of text if it is whole blocks, all of the form's shape.

        No NUL in it unless the form has no id; else None.
        """
        match = form.pattern.match(text)
        if match is None:
            return None
        lid = self.last_event_id
        if match.end() == len(text):  # one block: the usual small chunk, or a huge event
            out = [form.one(match, lid)]
        else:  # two blocks that meet and end at the text's end cover it (no findall)
            second = form.pattern.match(text, match.end())
            if second is not None and second.end() == len(text):
                out = [form.one(match, lid), form.one(second, lid)]
            else:
                found = _match(form, text, 0, len(text), False)
                return None if found is None else self._built(form, found)
        if form.has_id:
            self.last_event_id = self._id_buf = out[-1][2]
        return out

    def _built(self, form: _Form, found: list[Any]) -> list[ServerSentEvent]:
        """The events of a run of blocks from its matches' groups (_match)."""
        out = form.build(
            found if form.reorder is None else map(form.reorder, found), self.last_event_id
        )
        if form.has_id:
            self.last_event_id = self._id_buf = out[-1][2]
        return out

    def _feed_text(self, chunk: bytes) -> list[ServerSentEvent]:
        """The general path of feed(): decode all, then parse the text."""
        text, used = _utf8_decode(chunk, "replace", False)
        if used != len(chunk):
            self._tail = chunk[used:]
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
            try:
                pending.append(text)  # type: ignore[union-attr]
            except AttributeError:  # _NONE: see there
                pending = self._pending = [text]
            self._pending_len += len(text)
            if self._pending_len + self._data_len + len(self._data) <= self._limit:
                return []
            text = "".join(pending)
            pending.clear()  # type: ignore[union-attr]  # a list: it holds text
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
            try:
                pending.append(text[end:] if end else text)  # type: ignore[union-attr]
            except AttributeError:  # _NONE: see there
                self._pending = [text[end:] if end else text]
        if not end:
            if self._pending_len > self._limit:
                self._fail([])
            return []

        # The common case inline: whole blocks of the shape last seen.
        form = self._form
        if self._clean and end <= self._limit and form is not None:
            found = _match(form, text, 0, end)
            if found is not None:
                out = self._built(form, found)
                if self._pending_len > self._limit:
                    self._fail(out)
                return out
        out = self._out = []
        self._run(text, end, form)
        if self._pending_len > self._limit:  # one unfinished line is too long
            self._fail(out)
        if self._data:
            self._check_data()
        return out

    def _skip_start(self, text: str) -> str:
        if self._bom:
            self._bom = False
            text = text[1:] if text[0] == "\ufeff" else text
        if self._skip_lf and text:
            self._skip_lf = False
            text = text[1:] if text[0] == "\n" else text
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

    def _run(self, text: str, end: int, tried: _Form | None) -> None:
        """Parse the complete lines text[:end] (text[end - 1] is an LF).

        Runs of whole blocks go on the fast path where it applies; ``tried`` is a
        form that failed on this text already.
        """
        pos = 0
        if not self._clean:
            # Inside a block: finish it on the general path first.
            if text[0] == "\n":
                pos = 1
            else:
                pos = text.find("\n\n", 0, end)
                pos = end if pos < 0 else pos + 2
            self._lines(text, 0, pos)
            tried = None
        if pos < end:
            stop = text.rfind("\n\n", pos, end) + 2
            if stop > pos + 2 and stop - pos <= self._limit and self._fast(text, pos, stop, tried):
                pos = stop
            if pos < end:
                self._lines(text, pos, end)

    def _fast(self, text: str, start: int, stop: int, tried: _Form | None) -> bool:
        """Parse text[start:stop], a run of whole blocks, if they all have one shape.

        The last one seen, else the first block's. Return False (having done
        nothing) otherwise.
        """
        form = self._form
        found = None if form is None or form is tried else _match(form, text, start, stop)
        if found is None or form is None:
            key = _shape_key(text[start : text.find("\n\n", start, stop)])
            new_form = _FORMS.get(key) if self._whole_blocks or not key[1] else None
            if new_form is None:
                # Not a fast shape: skip the attempt until a run's first block has one.
                self._form = None
                return False
            if new_form is form:
                return False
            found = _match(new_form, text, start, stop)
            if found is None and not key[2]:
                # Perhaps later blocks have several data lines: the multi-line
                # form takes one data line too.
                new_form = _FORMS[(key[0], key[1], True)]
                found = _match(new_form, text, start, stop)
            if found is None:
                return False
            self._form = form = new_form
        self._out += self._built(form, found)
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
                    try:
                        data.append(value)  # type: ignore[union-attr]
                    except AttributeError:  # _NONE: see there
                        data = self._data = [value]
                    continue
                if name not in _FIELDS:
                    name, colon, value = line.partition(":")
                    if value[:1] == " ":
                        value = value[1:]
                    if name == "data":
                        try:
                            data.append(value)  # type: ignore[union-attr]
                        except AttributeError:  # _NONE: see there
                            data = self._data = [value]
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
                        self.retry = retry = _retry(value)
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


def _retry(digits: str) -> int:
    """The milliseconds of a retry.

    Value (ASCII digits, any number of them), at most MAX_RETRY, in time linear
    in their count.
    """
    significant = digits.lstrip("0")
    if len(significant) > 19:  # MAX_RETRY has 19 digits
        return MAX_RETRY
    return min(int(significant or "0"), MAX_RETRY)


def _match(form: _Form, text: str, start: int, stop: int, nul: bool = True) -> list[Any] | None:
    """The regex groups of every block in text[start:stop], if all have this form.

    None unless all of them have it; ``nul``: whether the text may hold a NUL.
    """
    if nul and form.has_id and text.find("\0", start, stop) >= 0:
        return None  # an id with NUL is ignored: the general path knows how
    pattern = form.pattern
    match = pattern.match(text, start, stop)
    if match is None:
        return None  # the first line is no match's
    if match.end() == stop:
        # One block, the common case of small chunks and of huge events: the
        # match covers the run.
        return [match[1] if pattern.groups == 1 else match.groups()]
    found = pattern.findall(text, start, stop)
    # Each match is whole lines: form.lines of them, plus those in its
    # groups. Equal counts prove that the matches cover the run.
    newlines = text.count("\n", start, stop)
    if form.extra:
        newlines -= "".join(chain.from_iterable(found)).count("\n")
    if len(found) * form.lines != newlines:
        return None
    return found


def _rfind_blank(chunk: bytes) -> int:
    r"""chunk.rfind(b"\n\n"), faster on a big chunk.

    A two-byte search looks at every byte, a one-byte one is a C memrchr.
    """
    end = chunk.rfind(b"\n")
    for _ in range(8):
        if end <= 0 or chunk[end - 1] == 10:
            return end - 1 if end > 0 else -1
        end = chunk.rfind(b"\n", 0, end)
    return chunk.rfind(b"\n\n", 0, end + 1)


def parse(
    data: bytes | str | Iterable[bytes | str],
    *,
    max_event_size: int = DEFAULT_MAX_EVENT_SIZE,
) -> list[ServerSentEvent]:
    """Parse a whole event stream at once and return its events.

    An unfinished event at the end is discarded, as at the end of a
    connection.

    Args:
        data: The body as bytes or str, or an iterable of chunks (bytes or
            str).
        max_event_size: The longest line, and the longest event data, in
            characters (default ``16 * 1024 * 1024``).

    Returns:
        The events, in stream order.

    Raises:
        EventTooLargeError: A line or an event's data exceeds
            ``max_event_size``.
        ValueError: ``max_event_size`` is below 1.
    """
    parser = SSEParser(max_event_size=max_event_size)
    chunks = (data,) if isinstance(data, (bytes, bytearray, memoryview, str)) else data
    events: list[ServerSentEvent] = []
    for chunk in chunks:
        events += parser.feed(chunk.encode() if isinstance(chunk, str) else bytes(chunk))
    events += parser.close()
    return events
