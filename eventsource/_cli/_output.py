"""The command line's output.

Events in the pretty, jsonl or raw format, colour, and the one-line description
of an error that ended a stream.
"""

from __future__ import annotations

import http
import json
import os
import re
import socket
import ssl
import unicodedata
from datetime import datetime
from typing import Any, TextIO

import httpx

from .._encoder import format_event
from .._errors import (
    ConnectError,
    ConnectionLostError,
    ConnectReason,
    EventTooLargeError,
    ReadTimeoutError,
    ResponseError,
    RetriesExhaustedError,
    reason_of,
)
from .._event import ServerSentEvent
from ._args import FORMATS

__all__ = [
    "FORMATS",
    "Printer",
    "Style",
    "cause_words",
    "visible",
    "describe_error",
    "reason",
    "short_error",
    "tolerant",
    "use_colour",
]

PRETTY_ONE_LINE = 80  # JSON shorter than this (compact) stays on one line


def use_colour(stream: TextIO, when: str = "auto") -> bool:
    """Whether to colour output to `stream`.

    --color always / never, or (auto) on a terminal when NO_COLOR is unset or
    empty.
    """
    if when != "auto":
        return when == "always"
    isatty = getattr(stream, "isatty", None)
    return bool(isatty is not None and isatty()) and not os.environ.get("NO_COLOR")


class Style:
    """ANSI styles, or plain text when colour is off."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def paint(self, text: str, code: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.enabled and text else text

    def dim(self, text: str) -> str:
        return self.paint(text, "2")


# What a terminal would act on rather than show: C0 controls but newline and
# tab, DEL, and the C1 controls (U+0080-U+009F; U+009B is a one-character CSI).
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_C1 = re.compile("[\x7f-\x9f]")


def visible(text: str) -> str:
    r"""Text a server chose, made safe for a terminal.

    Its control characters (an escape sequence that sets the title, clears the
    screen or asks the terminal to type a reply) shown as ``\x1b``, not acted
    on.
    """
    return _CONTROLS.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _json_line(record: dict[str, Any]) -> str:
    """One JSON line; C1 controls escaped too (json.dumps escapes only C0)."""
    text = json.dumps(record, ensure_ascii=False)
    return _C1.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


class Printer:
    """Writes events to a stream in one of the output formats."""

    def __init__(
        self, out: TextIO, format: str, colour: bool = False, *, json_data: bool = False
    ) -> None:
        if format not in FORMATS:
            raise ValueError(f"unknown format {format!r}")
        self.out = out
        self.format = format
        self.style = Style(colour and format == "pretty")
        self.json_data = json_data  # jsonl: data that is JSON written as JSON
        self._last_id = ""  # raw: the id the reader already knows
        isatty = getattr(out, "isatty", None)
        # On a terminal, what the server sent is shown, never acted on.
        self.terminal = bool(isatty is not None and isatty())

    @classmethod
    def for_stream(
        cls, out: TextIO, format: str | None, color: str = "auto", *, json_data: bool = False
    ) -> Printer:
        """The format asked for, else pretty on a terminal and jsonl elsewhere."""
        if format is None:
            isatty = getattr(out, "isatty", None)
            format = "pretty" if isatty is not None and isatty() else "jsonl"
        return cls(out, format, use_colour(out, color), json_data=json_data)

    def start(self, last_event_id: str) -> None:
        """Note the id the stream starts from (raw writes ids only as they change)."""
        self._last_id = last_event_id

    def write(self, event: ServerSentEvent, received_at: datetime) -> None:
        """Write one event and flush, so a reader sees it at once."""
        if self.format == "jsonl":
            record = {
                "type": event.type,
                "data": _decoded(event.data) if self.json_data else event.data,
                "id": event.id,
                "retry": event.retry,
                "received_at": received_at.isoformat(timespec="milliseconds"),
            }
            self._write_bytes((_json_line(record) + "\n").encode())
        elif self.format == "raw":
            block = format_event(
                event.data,
                event=event.type if event.type != "message" else None,
                id=event.id if event.id != self._last_id else None,
                retry=event.retry,
            )
            self._last_id = event.id
            if self.terminal:
                block = visible(block.decode()).encode()
            self._write_bytes(block)
        else:
            self.out.write(self._pretty(event))
            self.out.flush()

    def _pretty(self, event: ServerSentEvent) -> str:
        head = [visible(event.type)]
        if event.id:
            head.append(f"id: {visible(event.id)}")
        if event.retry is not None:
            head.append(f"retry: {event.retry} ms")
        data = visible(_pretty_data(event.data))
        body = data if event.data else self.style.dim("(empty data)")
        return f"{self.style.dim('  '.join(head))}\n{body}\n\n"

    def _write_bytes(self, data: bytes) -> None:
        # jsonl and raw are UTF-8 whatever the locale (JSON and the wire format
        # both are); a stream without a byte buffer gets the text.
        buffer = getattr(self.out, "buffer", None)
        if buffer is not None:
            self.out.flush()
            buffer.write(data)
            buffer.flush()
        else:
            self.out.write(data.decode())
            self.out.flush()


def _decoded(data: str) -> Any:
    """The data decoded when it is JSON, else the string itself."""
    try:
        return json.loads(data)
    except (ValueError, RecursionError):  # not JSON, or nested beyond Python's limit
        return data


def _pretty_data(data: str) -> str:
    """JSON objects and arrays pretty-printed (on one line when short), other data as it is."""
    if data[:1] not in ("{", "["):
        return data
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):
        return data
    compact = json.dumps(value, ensure_ascii=False)
    if len(compact) <= PRETTY_ONE_LINE:
        return compact
    return json.dumps(value, ensure_ascii=False, indent=2)


def reason(status: int, response: Any) -> str:
    """A status and its phrase, e.g. "404 Not Found"."""
    phrase = visible(getattr(response, "reason_phrase", "") or "")
    if not phrase:
        try:
            phrase = http.HTTPStatus(status).phrase
        except ValueError:
            phrase = ""
    return f"{status} {phrase}".rstrip()


_SCHEME_ADVICE = "check the URL's scheme (http:// or https://)"
# The command line's advice for a ConnectError, by its reason (what the
# library's message advises, verify= and the like, is no option here).
_CONNECT_ADVICE: dict[ConnectReason | None, str] = {
    ConnectReason.CERTIFICATE: "use --cacert FILE, or -k to skip verification",
    ConnectReason.NOT_TLS: _SCHEME_ADVICE,
    ConnectReason.ANSWERED_TLS: _SCHEME_ADVICE,
    ConnectReason.PROXY_ANSWERED_TLS: (
        "use an https:// URL for that proxy (HTTPS_PROXY, HTTP_PROXY)"
    ),
    ConnectReason.NO_SHARED_VERSION: (
        "the server's TLS versions are not ones this Python's OpenSSL allows"
    ),
    ConnectReason.REFUSED: (
        "the server may require a client certificate, which the command line cannot present"
    ),
    ConnectReason.CA_BUNDLE: "fix or unset SSL_CERT_FILE / SSL_CERT_DIR",
}


def _describe_error(error: BaseException, url: str) -> str:
    """One line naming what ended the stream, for ``error: ...``."""
    if isinstance(error, ResponseError):
        response = error.response
        request = getattr(response, "request", None)
        where = str(request.url) if request is not None else url
        if error.status_code is not None and error.status_code != 200:
            said = _api_message(error)
            line = f"{reason(error.status_code, response)} from {where}: not retrying"
            return f"{line}: {said}" if said else line
        if error.status_code == 200:
            return str(error)  # it names the URL
        return f"{error} from {where}"
    if isinstance(error, RetriesExhaustedError):
        attempts = "1 attempt" if error.attempts == 1 else f"{error.attempts} attempts"
        text = f"gave up on {url} after {attempts} in a row failed"
        cause = error.__cause__
        if cause is not None:
            text += f"; the last: {_short_error(cause)}"
        return text
    if isinstance(error, EventTooLargeError):
        return f"{error} from {url}"
    if isinstance(error, ConnectError):
        advice = _CONNECT_ADVICE.get(reason_of(error), _SCHEME_ADVICE)
        return f"cannot connect to {url}: {error.detail}: {advice}"
    if isinstance(error, ConnectionLostError):
        cause = error.__cause__
        if isinstance(cause, (httpx.ConnectError, httpx.ConnectTimeout)):
            return f"cannot connect to {url}: {cause or type(cause).__name__}"
        return f"{error} ({url})"
    return f"{error} ({url})"


def _short_error(error: BaseException) -> str:
    """An error in a few words.

    The status of a ResponseError, the network error behind a failed
    connection.
    """
    if isinstance(error, ResponseError) and error.status_code not in (None, 200):
        assert error.status_code is not None
        return reason(error.status_code, error.response)
    cause = error.__cause__
    if isinstance(cause, (httpx.ConnectError, httpx.ConnectTimeout)):
        return f"cannot connect: {cause or type(cause).__name__}"
    return str(error)


def _cause_words(error: BaseException) -> str:
    """What made an attempt fail, in a few words, for ``retrying in N s:`` lines.

    "503 Service Unavailable", "connection refused", "certificate verify
    failed: …", "timed out connecting", "no data for 60 s".
    """
    if isinstance(error, ResponseError) and error.status_code not in (None, 200):
        assert error.status_code is not None
        return reason(error.status_code, error.response)
    if isinstance(error, ReadTimeoutError):
        return str(error)
    chain: list[BaseException] = []
    link: BaseException | None = error.__cause__
    while link is not None and link not in chain and len(chain) < 10:
        chain.append(link)
        link = link.__cause__ or link.__context__
    for link in chain:
        if isinstance(link, ssl.SSLCertVerificationError):
            detail = link.verify_message
            return f"certificate verify failed: {detail}" if detail else "certificate verify failed"
        if isinstance(link, ConnectionRefusedError):
            return "connection refused"
        if isinstance(link, socket.gaierror):
            return f"cannot resolve the host name ({link.strerror or link})"
    for link in chain:
        if isinstance(link, httpx.ConnectTimeout):
            return "timed out connecting"
        if isinstance(link, (httpx.TimeoutException, TimeoutError)):
            return "timed out"
    text = str(chain[0]) if chain else ""
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return "certificate verify failed"
    if "Connection refused" in text or "[Errno 111]" in text:
        return "connection refused"
    if chain and isinstance(chain[0], (httpx.ConnectError, OSError)):
        return f"cannot connect: {text or type(chain[0]).__name__}"
    return " ".join((str(error) or type(error).__name__).split())


def describe_error(error: BaseException, url: str) -> str:
    """One line naming what ended the stream, for ``error: ...``.

    What the server chose in it is shown, not acted on: see ``visible``.
    """
    return visible(_describe_error(error, url))


_SAID = 200  # characters of a refused body shown when it is no JSON message


def _api_message(error: ResponseError) -> str:
    """What the API said in its refused body.

    ``error.message`` (OpenAI's, Anthropic's shape) or ``message`` of a JSON
    object, else the start of the text, on one line.
    """
    try:
        value = error.json()
    except (ValueError, RecursionError):  # (json() turns the latter into the former)
        value = None
    if isinstance(value, dict):
        inner = value.get("error")
        for said in (
            inner.get("message") if isinstance(inner, dict) else inner,
            value.get("message"),
        ):
            if isinstance(said, str) and said.strip():
                return " ".join(said.split())[: _SAID * 2]
    text = " ".join(error.body.split())
    # A body that is mostly control characters or undecodable bytes (not
    # format characters: right-to-left marks, emoji joiners are text) would
    # fill the line with escapes: say what it is instead.
    odd = sum(1 for c in text[:_SAID] if c == "\ufffd" or unicodedata.category(c) == "Cc")
    if odd * 10 > min(len(text), _SAID):
        return f"({len(error.body)} characters, not text)"
    return text if len(text) <= _SAID else text[:_SAID] + "…"


def short_error(error: BaseException) -> str:
    """An error in a few words.

    The status of a ResponseError, the network error behind a failed
    connection.
    """
    return visible(_short_error(error))


def cause_words(error: BaseException) -> str:
    """What made an attempt fail, in a few words, for ``retrying in N s:`` lines.

    See ``_cause_words``.
    """
    return visible(_cause_words(error))


def tolerant(stream: TextIO) -> None:
    """Let a terminal that cannot show a character show a replacement.

    Instead of ending the run with UnicodeEncodeError.
    """
    reconfigure = getattr(stream, "reconfigure", None)
    if reconfigure is not None:
        try:
            reconfigure(errors="replace")
        except (ValueError, OSError):
            pass
