r"""ChunkedDecoder: the sans-IO HTTP/1.1 chunked transfer coding decoder.

Strategy
--------
This module implements RFC 9112, "7.1 Chunked Transfer Coding", for a response
body read straight from the socket: whole reads in, body bytes out; no I/O. It
is as strict as h11 (the reference: tests/test_chunked.py fuzzes one against
the other) and differs only where noted below.

- Grammar (h11's): a size line is 1 to 20 hex digits (either case, leading
  zeros counted), then optionally ``;`` and anything but LF (the extensions,
  ignored), then optional spaces or tabs, then CRLF. A bare LF anywhere in it
  is an error, as is a sign, ``0x``, ``_`` or a leading space (``int(s, 16)``
  accepts them: it only ever sees checked digits). Chunk data must be followed
  by CRLF. After the last chunk (size 0) come trailer fields, checked as h11
  checks header lines and then ignored, and a blank line; there, as h11 does
  (RFC 9112 2.2 allows it), a bare LF ends a line.
- The fast path: a read is cut at one ``bytes.find(b"\r\n")`` per chunk.
  The line found after a chunk's data starts with the CRLF that must end that
  data, so one dict lookup (``b"\r\n64"`` -> 100, cached once checked) both
  checks the CRLF and reads the size; the data is one slice into a list and
  the result one ``b"".join``. A read's first line has a cache of its own
  (``b"64"`` -> 100: never taken for a CRLF). Anything not cached
  (extensions, spaces, odd sizes, errors) takes the general path, which holds
  every rule: one regex, then ``int()`` of its checked digits. A read that is
  exactly one chunk costs one find, one lookup, one slice and one compare.
- Reads cut anywhere: chunk data left over from a read is passed through as it
  comes (a read that is all chunk data is returned as it is, uncopied) and its
  CRLF is checked byte by byte, as h11 does; an unfinished size line or
  trailer section is kept and the next read is appended to it, so it is
  parsed whole (a trailer section is searched from where the last search
  stopped), and a size line that cannot become valid fails at once, where h11
  waits for its CRLF to fail (the same outcome, earlier).
- Limits: a size line may not exceed MAX_SIZE_LINE bytes and the trailer
  section MAX_TRAILERS bytes, CRLFs included, however the reads are cut, so
  kept bytes stay under those bounds. h11 instead bounds what it keeps
  unfinished (16 KiB) and accepts longer lines that arrive whole.
- The end: ``done`` is set once the trailer section's blank line is read.
  Bytes after it are not part of this response (h11 would read them as the
  next one): they are ignored and kept in ``unused``, so a caller can tell
  that the connection is not reusable. ``close()``, at EOF, raises if the
  body is incomplete.
- Errors: ChunkedFramingError, a ConnectionLostError, so a stream resumes with
  Last-Event-ID as after any drop. Its ``data`` holds the body bytes that the
  failing feed() completed before the error (h11 returns them too). After an
  error the decoder stays broken.
- Deliberate differences from h11: chunk sizes of 2**64 and more are refused
  (h11 caps the digits at 20, meaning 64 bits: its comment cites
  ``len(str(2**64))``, but 20 hex digits reach 2**80), and the length limits
  above.
"""

from __future__ import annotations

import re
from typing import NoReturn

from ._errors import ConnectionLostError

__all__ = ["MAX_SIZE_LINE", "MAX_TRAILERS", "BodyFraming", "ChunkedDecoder", "ChunkedFramingError"]

MAX_SIZE_LINE = 4096  # one size line, extensions and CRLF included
MAX_TRAILERS = 16384  # the trailer section, its blank line included

_SIZE, _DATA, _CRLF, _TRAILERS, _DONE, _BROKEN = range(6)

# Extensions swallow trailing spaces: no ambiguity, so no backtracking.
_HEX_SIZE = re.compile(rb"([0-9A-Fa-f]{1,20})(?:;[^\n]*|[ \t]*)").fullmatch
# What an unfinished size line (no CRLF yet) may hold to still become valid.
_SIZE_PREFIX = re.compile(rb"(?:[0-9A-Fa-f]{1,20}(?:;[^\n]*|[ \t]*\r?))?").fullmatch
_BLANK_LINE = re.compile(rb"\n\r?\n").search
# h11's header_field: token ":" OWS [field-content] OWS (bytes: \s is ASCII).
_FIELD = re.compile(
    rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+:[ \t]*(?:[^\x00\s]+(?:[ \t]+[^\x00\s]+)*)?[ \t]*"
)
_FOLD = re.compile(rb"[ \t]+").match

# Checked size lines of hex digits only: b"64" -> 100 for a read's first line,
# and with the CRLF that ends the chunk data before it, b"\r\n64" -> 100, for
# the others. Servers repeat a few sizes; the cap bounds hostile ones.
_line_sizes: dict[bytes, int] = {}
_sizes: dict[bytes, int] = {}
_SIZES_CAP = 4096


class ChunkedFramingError(ConnectionLostError):
    """The chunked body is broken.

    The server broke the framing, or the connection ended inside the body.
    ``data`` holds the body bytes completed by the failing ``feed()`` before
    the error: deliver them first.
    """

    def __init__(self, message: str, data: bytes = b"") -> None:
        super().__init__(message)
        self.data = data


class ChunkedDecoder:
    """Decodes one chunked response body.

    ``feed()`` every socket read, in order; ``close()`` at EOF. ``done`` is
    true once the body has ended.
    """

    __slots__ = ("_buf", "_error", "_left", "_state", "done", "unused")

    def __init__(self) -> None:
        self._state = _SIZE
        self._left = 0  # _DATA: chunk bytes to come; _CRLF: bytes of CRLF to come
        self._buf = b""  # _SIZE / _TRAILERS: the unfinished line or section
        self._error = ""
        #: Bytes received after the body's end: not part of this response.
        self.unused = b""
        #: True once the last chunk, its trailers and the final CRLF are read
        #: (an attribute, not a property: it is asked at every read).
        self.done = False

    def feed(self, data: bytes) -> bytes:
        """Decode one read; return the body bytes it completes (b"" if none).

        Raises ChunkedFramingError if the framing is broken.
        """
        state = self._state
        if state == _SIZE:
            if self._buf:
                data = self._buf + data
                self._buf = b""
            return self._chunks(data, 0, [])
        if state == _DATA:
            left = self._left
            if left >= len(data):
                self._left = left - len(data)
                if not self._left:
                    self._state, self._left = _CRLF, 2
                return data
            out = [data[:left]]
            self._state, self._left = _CRLF, 2
            return self._after_crlf(data, left, out)
        if state == _CRLF:
            return self._after_crlf(data, 0, [])
        if state == _TRAILERS:
            kept = self._buf
            self._buf = b""
            return self._trailers(kept + data, 0, [], len(kept))
        if state == _DONE:
            self.unused += data
            return b""
        raise ChunkedFramingError(self._error)

    def close(self) -> None:
        """The connection has ended (EOF): raise if the body is incomplete."""
        state = self._state
        if state == _DONE:
            return
        if state == _BROKEN:
            raise ChunkedFramingError(self._error)
        if state == _DATA:
            where = f"inside a chunk's data ({self._left} bytes missing)"
        elif state == _CRLF:
            where = "before the CRLF that ends a chunk's data"
        elif state == _TRAILERS:
            where = "inside the trailer section"
        else:
            where = "inside a size line" if self._buf else "before the last chunk"
        self._fail(f"the chunked body ended early: the connection closed {where}")

    # --- the framing ------------------------------------------------------------------

    def _chunks(self, data: bytes, pos: int, out: list[bytes]) -> bytes:
        """Decode from the start of a size line at pos to the read's end."""
        find = data.find
        n = len(data)
        j = find(b"\r\n", pos)
        if j < 0:
            return self._keep_size_line(data, pos, out)
        line = data[pos:j]
        size = _line_sizes.get(line, -1)
        if size < 0:
            size = self._size(line, out, line, _line_sizes)
        pos = j + 2
        get = _sizes.get
        while size:
            end = pos + size
            if end + 2 >= n:  # the chunk reaches the read's end
                if end + 2 == n and data[end:] == b"\r\n":  # ends the read: the usual case
                    out.append(data[pos:end])
                    return b"".join(out)
                return self._tail(data, pos, end, out)
            out.append(data[pos:end])
            j = find(b"\r\n", end + 2)
            if j < 0:
                if data[end : end + 2] != b"\r\n":
                    self._no_crlf(data[end : end + 2], out)
                return self._keep_size_line(data, end + 2, out)
            line = data[end:j]
            size = get(line, -1)
            if size < 0:
                if line[:2] != b"\r\n":
                    self._no_crlf(line[:2], out)
                size = self._size(line[2:], out, line, _sizes)
            pos = j + 2
        return self._trailers(data, pos, out)

    def _size(self, line: bytes, out: list[bytes], key: bytes, cache: dict[bytes, int]) -> int:
        """The size a size line (without its CRLF) gives, or raise.

        Cache it under key if the line is only digits.
        """
        if len(line) + 2 > MAX_SIZE_LINE:
            self._break(f"a size line is longer than {MAX_SIZE_LINE} bytes", out)
        match = _HEX_SIZE(line)
        if match is None:
            self._break(f"invalid chunk size line {line[:40]!r}", out)
        digits = match.group(1)
        size = int(digits, 16)  # safe: digits are hex digits only
        if size >> 64:
            self._break(f"chunk size {digits.decode()} is 2**64 or more", out)
        if len(digits) == len(line) and len(cache) < _SIZES_CAP:
            cache[key] = size
        return size

    def _tail(self, data: bytes, pos: int, end: int, out: list[bytes]) -> bytes:
        """The chunk at pos..end reaches the read's end.

        Pass its data through, check what the read holds of its CRLF, and keep
        the state.
        """
        n = len(data)
        if end > n:
            if pos < n:
                out.append(data[pos:])
            self._state, self._left = _DATA, end - n
        else:
            out.append(data[pos:end])
            crlf = data[end:]
            if b"\r\n".startswith(crlf):
                if len(crlf) < 2:
                    self._state, self._left = _CRLF, 2 - len(crlf)
            else:
                self._no_crlf(crlf, out)
        return b"".join(out)

    def _after_crlf(self, data: bytes, pos: int, out: list[bytes]) -> bytes:
        """Check the rest of a chunk data's CRLF at pos, then go on."""
        left = self._left
        got = data[pos : pos + left]
        if got != b"\r\n"[2 - left : 2 - left + len(got)]:
            self._no_crlf(got, out)
        if len(got) < left:
            self._left = left - len(got)
            return b"".join(out)
        self._state = _SIZE
        return self._chunks(data, pos + left, out)

    def _keep_size_line(self, data: bytes, pos: int, out: list[bytes]) -> bytes:
        """Keep an unfinished size line, if it can still become a valid one."""
        rest = data[pos:]
        if len(rest) >= MAX_SIZE_LINE:
            self._break(f"a size line is longer than {MAX_SIZE_LINE} bytes", out)
        if _SIZE_PREFIX(rest) is None:
            self._break(f"invalid chunk size line {rest[:40]!r}", out)
        self._state, self._buf = _SIZE, rest
        return b"".join(out)

    def _trailers(self, data: bytes, pos: int, out: list[bytes], seen: int = 0) -> bytes:
        """Read the trailer section at pos (after the last chunk's size line).

        data[:seen] was searched before.
        """
        end = _trailers_end(data, pos, seen)
        if end < 0:
            if len(data) - pos >= MAX_TRAILERS:
                self._break(f"the trailer section is longer than {MAX_TRAILERS} bytes", out)
            self._state, self._buf = _TRAILERS, data[pos:]
            return b"".join(out)
        if end - pos > MAX_TRAILERS:
            self._break(f"the trailer section is longer than {MAX_TRAILERS} bytes", out)
        problem = _bad_trailer(data[pos:end])
        if problem:
            self._break(problem, out)
        self._state, self._buf = _DONE, b""
        self.done = True
        self.unused = data[end:]
        return b"".join(out)

    def _no_crlf(self, got: bytes, out: list[bytes]) -> NoReturn:
        self._break(f"chunk data is followed by {got!r}, not CRLF", out)

    def _break(self, problem: str, out: list[bytes]) -> NoReturn:
        self._fail(f"the server broke the chunked framing: {problem}", b"".join(out))

    def _fail(self, message: str, data: bytes = b"") -> NoReturn:
        self._state, self._buf, self._error = _BROKEN, b"", message
        raise ChunkedFramingError(message, data)


def _trailers_end(data: bytes, pos: int, seen: int) -> int:
    """Where the trailer section starting at pos ends (-1: not yet), as h11 finds it.

    At once for a bare blank line, else after the first LF, optional CR, LF (a
    match ending after data[:seen] starts at seen - 2 or later).
    """
    if data[pos : pos + 1] == b"\n":
        return pos + 1
    if data[pos : pos + 2] == b"\r\n":
        return pos + 2
    match = _BLANK_LINE(data, max(pos, seen - 2))
    return -1 if match is None else match.end()


def _bad_trailer(section: bytes) -> str:
    """What is wrong with a whole trailer section ("" if nothing).

    Each line, continuation lines joined to the one before, must be a header
    field.
    """
    lines = section.split(b"\n")[:-2]  # the blank line
    fields: list[bytes] = []
    for line in lines:
        if line.endswith(b"\r"):
            line = line[:-1]
        fold = _FOLD(line)
        if fold is None:
            fields.append(line)
        elif not fields:
            return "the trailer section starts with a continuation line"
        else:
            fields[-1] += b" " + line[fold.end() :]
    for field in fields:
        if _FIELD.fullmatch(field) is None:
            return f"invalid trailer field {field[:40]!r}"
    return ""


class BodyFraming:
    """Where an HTTP/1.1 body read straight from its connection ends.

    Its chunked framing, its Content-Length, or the connection's end.

    A Content-Length body ends at exactly that many bytes, as h11 ends it,
    however the reads are cut: what a read holds past them is not this
    response's and is dropped (the connection is closed with the response,
    never reused), and the body is complete, a clean end.
    """

    __slots__ = ("_decoder", "_left", "failed")

    def __init__(self, chunked: bool, length: int | None) -> None:
        self._decoder = ChunkedDecoder() if chunked else None
        self._left = None if chunked else length
        # A framing error found after body bytes in the same read: raised at
        # the next read, once the events of those bytes are delivered.
        self.failed: ChunkedFramingError | None = None

    @property
    def complete(self) -> bool:
        """Whether the whole body was read.

        A framed body's; a close-delimited one ends with its connection.
        """
        decoder = self._decoder
        return decoder.done if decoder is not None else self._left == 0

    def take(self, data: bytes) -> bytes | None:
        """The body bytes in one read (b"" at the connection's end).

        None once the body is complete. Raises ChunkedFramingError when it is
        cut short.
        """
        decoder = self._decoder
        if decoder is not None:
            if decoder.done:
                return None
            if not data:
                decoder.close()  # raises: the body is incomplete
                return None
            try:
                return decoder.feed(data)
            except ChunkedFramingError as exc:
                if not exc.data:
                    raise
                self.failed = exc
                return exc.data
        left = self._left
        if left is None:
            return data or None  # close-delimited: the end of the connection ends it
        if left == 0:
            return None
        if not data:
            raise ChunkedFramingError(f"connection closed {left} bytes before the body's end")
        if len(data) < left:
            self._left = left - len(data)
            return data
        self._left = 0  # complete: whatever follows in this read is not the body
        return data if len(data) == left else data[:left]
