"""The command line's arguments: the parser, and EventSource's options from them.

Building and running the parser imports no HTTP stack: ``--version`` and
``--help`` answer before httpx, httpcore and anyio are imported (httpx and ssl
are imported by the functions that use them).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._version import __version__

if TYPE_CHECKING:
    import ssl

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "FORMATS",
    "build_parser",
    "check_http2",
    "source_options",
    "tls_verify",
    "silence_stdout",
]

FORMATS = ("pretty", "jsonl", "raw")
# The exit codes (the epilog's "exit status").
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

HTTP2_MISSING = (
    "--http2 needs the http2 extra: pip install -e '.[http2]' in a checkout of eventsource"
)

DESCRIPTION = """\
Connect to a Server-Sent Events stream and print its events as they arrive.
Reconnects like a browser (resuming with Last-Event-ID) until the server
answers 204, -n events were printed, an --until / --until-data event arrived,
--timeout passes or you press Ctrl-C. Without -v, each failed attempt is one
line on stderr ("retrying in 3.0 s: connection refused")."""

EPILOG = """\
output formats:
  pretty  one block per event: its type and id (dimmed), then the data, JSON
          pretty-printed (the default on a terminal; colours unless NO_COLOR)
  jsonl   one JSON object per event: type, data, id, retry, received_at
          (the default when stdout is not a terminal; ready for jq); data is
          a string, or with --json-data the decoded JSON when it is JSON
  raw     the events in the text/event-stream wire format

exit status:
  0    the run ended normally: 204 No Content, -n reached, an --until or
       --until-data event, the end of the stream with --no-reconnect, or
       --timeout once the stream had opened
  1    the stream failed (an error status, another content type, retries
       exhausted, an event too large, no stream opened within --timeout);
       one line on stderr says why
  2    invalid options (a URL without http:// or https://, a --cacert file
       that cannot be read, --http2 without the http2 extra)
  130  interrupted (Ctrl-C)

examples:
  eventsource https://example.com/stream
  eventsource -v -n 5 --type chunk https://example.com/stream
  eventsource --json '{"prompt": "Hi"}' -H 'Authorization: Bearer T' https://example.com/chat
  eventsource https://example.com/stream | jq -r '.data'
  eventsource --json '{"stream": true}' --until-data '[DONE]' -f jsonl --json-data \\
      https://example.com/v1/chat | jq '.data.content'
  eventsource --cacert ca.pem --http2 https://localhost:8443/stream
  python -m eventsource --demo"""


def _int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer no smaller than `minimum`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, not {value}")
        return value

    return parse


_positive_int = _int_at_least(1)
_count = _int_at_least(0)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text}")
    return value


def _header(text: str) -> tuple[str, str]:
    name, colon, value = text.partition(":")
    name, value = name.strip(), value.strip()
    if not colon or not name or any(c in name + value for c in "\r\n\0") or " " in name:
        raise argparse.ArgumentTypeError(f"expected 'Name: value', got {text!r}")
    return name, value


def _event_id(text: str) -> str:
    if any(c in text for c in "\r\n\0"):
        raise argparse.ArgumentTypeError("an event id cannot contain CR, LF or NUL")
    return text


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``eventsource`` command."""
    parser = argparse.ArgumentParser(
        prog="eventsource",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("url", nargs="?", help="the stream's URL")
    parser.add_argument(
        "--demo",
        action="store_true",
        help="play a chat answer from an embedded loopback server (no network needed)",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")

    request = parser.add_argument_group("request")
    request.add_argument(
        "-H",
        "--header",
        dest="headers",
        action="append",
        type=_header,
        default=[],
        metavar="'NAME: VALUE'",
        help="add a request header (repeatable)",
    )
    request.add_argument(
        "-X", "--method", help="the HTTP method (default: GET, or POST with a body)"
    )
    body = request.add_mutually_exclusive_group()
    body.add_argument(
        "-d", "--data", metavar="DATA", help="send DATA as the body; @FILE reads a file, @- stdin"
    )
    body.add_argument(
        "--json",
        metavar="JSON",
        help="send JSON as the body, with Content-Type: application/json (@FILE, @- too)",
    )
    request.add_argument(
        "--last-event-id",
        default="",
        type=_event_id,
        metavar="ID",
        help="resume after this event id (sent as Last-Event-ID)",
    )
    tls = request.add_mutually_exclusive_group()
    tls.add_argument(
        "-k",
        "--insecure",
        action="store_true",
        help="do not verify the server's TLS certificate",
    )
    tls.add_argument(
        "--cacert",
        metavar="FILE",
        help="verify the server's certificate with the CA certificates in FILE (PEM)",
    )
    request.add_argument(
        "--http2",
        action="store_true",
        help="offer HTTP/2 (over TLS; needs the http2 extra: "
        "pip install -e '.[http2]' in a checkout)",
    )

    stream = parser.add_argument_group("stream")
    stream.add_argument(
        "-n", "--max-events", type=_positive_int, metavar="N", help="stop after N events"
    )
    stream.add_argument(
        "--type",
        dest="types",
        action="append",
        default=[],
        metavar="TYPE",
        help="print only events of this type (repeatable); -n counts these only",
    )
    stream.add_argument(
        "--until",
        dest="until_types",
        action="append",
        default=[],
        metavar="TYPE",
        help="stop after the first event of this type, and exit 0 (repeatable); "
        "the event is printed unless --type hides it",
    )
    stream.add_argument(
        "--until-data",
        action="append",
        default=[],
        metavar="TEXT",
        help="stop after the first event whose data is TEXT, e.g. '[DONE]' (repeatable)",
    )
    stream.add_argument(
        "--timeout", type=_seconds, metavar="SECONDS", help="stop after SECONDS (the whole run)"
    )
    stream.add_argument(
        "--read-timeout",
        type=_seconds,
        default=60.0,
        metavar="SECONDS",
        help="reconnect when nothing arrives for SECONDS (default: 60)",
    )
    stream.add_argument(
        "--no-reconnect",
        action="store_true",
        help="stop when the stream ends or drops, instead of reconnecting",
    )
    stream.add_argument(
        "--resume",
        choices=("get", "resend", "none"),
        default="get",
        help="how a stream of a request other than GET (a POST) that gave event ids "
        "is resumed once it opened: get (default; a GET with Last-Event-ID, as MCP "
        "servers expect), resend (the request again), none",
    )
    stream.add_argument(
        "--max-retries",
        type=_count,
        metavar="N",
        help="give up after N failed reconnection attempts in a row (default: never)",
    )
    stream.add_argument(
        "--max-event-size",
        type=_positive_int,
        metavar="CHARS",
        help="fail on an event or line longer than this many characters (default: 16 Mi)",
    )

    output = parser.add_argument_group("output")
    output.add_argument(
        "-f",
        "--format",
        choices=FORMATS,
        help="pretty, jsonl or raw (default: pretty on a terminal, else jsonl)",
    )
    output.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="colour the pretty format (default: auto, on a terminal without NO_COLOR)",
    )
    output.add_argument(
        "--json-data",
        action="store_true",
        help="jsonl: write data that is JSON as JSON (an object, not a string), "
        "so jq reads .data.content; other data stays a string",
    )
    output.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="show the connection's life on stderr: requests, status and headers, "
        "open, drop, reconnect delay and Last-Event-ID, close",
    )
    return parser


def _read_argument(value: str) -> bytes:
    """A body argument: the text itself, or @FILE's bytes (@- reads stdin)."""
    if not value.startswith("@"):
        return value.encode()
    if value == "@-":
        return sys.stdin.buffer.read()
    with open(value[1:], "rb") as file:
        return file.read()


def source_options(args: argparse.Namespace) -> dict[str, Any]:
    """EventSource's keyword arguments from the request and stream options.

    Raises OSError or ValueError (a usage error) for a body that cannot be
    used.
    """
    import httpx

    headers = httpx.Headers(args.headers)
    content: bytes | None = None
    if args.data is not None:
        content = _read_argument(args.data)
    elif args.json is not None:
        content = _read_argument(args.json)
        try:
            json.loads(content)
        except ValueError as exc:
            raise ValueError(f"--json: not valid JSON ({exc})") from None
        headers.setdefault("Content-Type", "application/json")
    method = args.method or ("POST" if content is not None else "GET")
    options: dict[str, Any] = {
        "method": method,
        "headers": headers,
        "content": content,
        "last_event_id": args.last_event_id,
        "reconnect": False if args.no_reconnect else None,
        "resume": None if args.resume == "none" else args.resume,
        "max_retries": args.max_retries,
        "read_timeout": args.read_timeout,
    }
    if args.max_event_size is not None:
        options["max_event_size"] = args.max_event_size
    return options


def tls_verify(args: argparse.Namespace) -> bool | ssl.SSLContext:
    """The ``verify`` for httpx: False with -k, a context trusting --cacert's CA bundle, else True.

    Raises ValueError (one line) for a file that cannot be read or holds no
    certificate.
    """
    if args.insecure:
        return False
    if args.cacert is None:
        return True
    import ssl

    try:
        return ssl.create_default_context(cafile=args.cacert)
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        cause = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ValueError(f"--cacert {args.cacert}: {cause}") from None


def check_http2() -> None:
    """Raise ValueError (the line to show) when HTTP/2 cannot be offered.

    httpx needs the h2 package for it.
    """
    try:
        importlib.import_module("h2")
    except ImportError:
        raise ValueError(HTTP2_MISSING) from None


def silence_stdout() -> None:
    """After a broken pipe, point stdout at devnull.

    So that the interpreter's final flush does not report the error again.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass
