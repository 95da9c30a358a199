"""The command line: ``eventsource URL`` prints a stream's events as they arrive.

One EventSource (sync) is iterated in a worker thread that prints the events;
the main thread only waits. So the two things that stop a run from outside,
``--timeout`` and Ctrl-C, are one call to the thread-safe ``close()``, which
interrupts a blocked read at once, and the run still ends through the source's
normal close path ("closed: URL" in the verbose lines, no traceback).

Exit codes: 0 the run ended normally (204 No Content, ``-n`` reached, the end of
the stream with ``--no-reconnect``, ``--timeout`` after the stream had opened,
stdout closed by its reader); 1 the stream failed (one ``error:`` line on
stderr); 2 a usage error (argparse); 130 Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Collection
from datetime import datetime, timezone
from typing import Any, TextIO

import httpx

from .._errors import EventSourceError
from .._event import ServerSentEvent
from .._source import EventSource
from .._version import __version__
from ._output import (
    FORMATS,
    Printer,
    Style,
    describe_error,
    reason,
    short_error,
    tolerant,
    use_colour,
)

__all__ = ["Printer", "Session", "build_parser", "main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
CONNECT_TIMEOUT = 10.0  # seconds, for connect / write / pool
JOIN_TIMEOUT = 5.0  # seconds to let the worker finish after close()
WAIT_SLICE = 0.5  # the main thread waits in slices, so Ctrl-C is seen on every OS

DESCRIPTION = """\
Connect to a Server-Sent Events stream and print its events as they arrive.
Reconnects like a browser (resuming with Last-Event-ID) until the server
answers 204, -n events were printed, --timeout passes or you press Ctrl-C."""

EPILOG = """\
output formats:
  pretty  one block per event: its type and id (dimmed), then the data, JSON
          pretty-printed (the default on a terminal; colours unless NO_COLOR)
  jsonl   one JSON object per event: type, data, id, retry, received_at
          (the default when stdout is not a terminal; ready for jq)
  raw     the events in the text/event-stream wire format

exit status:
  0    the run ended normally: 204 No Content, -n reached, the end of the
       stream with --no-reconnect, or --timeout once the stream had opened
  1    the stream failed (an error status, another content type, retries
       exhausted, an event too large, no stream opened within --timeout);
       one line on stderr says why
  2    invalid options
  130  interrupted (Ctrl-C)

examples:
  eventsource https://example.com/stream
  eventsource -v -n 5 --type chunk https://example.com/stream
  eventsource --json '{"prompt": "Hi"}' -H 'Authorization: Bearer T' https://example.com/chat
  eventsource https://example.com/stream | jq -r '.data'
  python -m eventsource --demo"""


def _now() -> datetime:
    return datetime.now(timezone.utc)


# --- arguments ---------------------------------------------------------------------------


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
    request.add_argument(
        "-k",
        "--insecure",
        action="store_true",
        help="do not verify the server's TLS certificate",
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
        "--max-retries",
        type=_count,
        metavar="N",
        help="give up after N failed reconnection attempts in a row (default: never)",
    )
    stream.add_argument(
        "--max-event-size",
        type=_positive_int,
        metavar="CHARS",
        help="fail on an event or line longer than this (default: 16 MiB)",
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


def _source_options(args: argparse.Namespace) -> dict[str, Any]:
    """EventSource's keyword arguments from the request and stream options.
    Raises ValueError (a usage error) for a body that cannot be used."""
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
        "reconnect": not args.no_reconnect,
        "max_retries": args.max_retries,
        "read_timeout": args.read_timeout,
    }
    if args.max_event_size is not None:
        options["max_event_size"] = args.max_event_size
    return options


class _LifeLines(logging.Handler):
    """Prints the eventsource logger's records as ``* message`` lines."""

    def __init__(self, write: Callable[[str], None]) -> None:
        super().__init__(logging.INFO)
        self._write = write

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._write(f"* {record.getMessage()}")
        except Exception:
            self.handleError(record)


# --- the run -------------------------------------------------------------------------------


class Session:
    """One run of the command: a source iterated in a worker thread, printed,
    and stopped by the stream, ``max_events``, ``timeout`` or Ctrl-C."""

    def __init__(
        self,
        url: str,
        *,
        printer: Printer,
        err: TextIO,
        verbose: bool = False,
        show_headers: bool = True,
        types: Collection[str] = (),
        max_events: int | None = None,
        timeout: float | None = None,
        insecure: bool = False,
        source_options: dict[str, Any] | None = None,
    ) -> None:
        self.url = url
        self.printer = printer
        self.err = err
        self.verbose = verbose
        self.show_headers = show_headers
        self.types = frozenset(types)
        self.max_events = max_events
        self.timeout = timeout
        self.insecure = insecure
        self.source_options = dict(source_options or {})
        self.events: list[ServerSentEvent] = []  # the events printed
        self.opened = False  # a connection opened at least once
        self.timed_out = False
        self._error: EventSourceError | None = None
        self._crash: BaseException | None = None
        self._broken_pipe = False
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._err_style = Style(use_colour(err) if verbose else False)

    def run(self) -> int:
        """Run to the end; return the exit code. Ctrl-C (KeyboardInterrupt in
        this thread) closes the source and returns 130."""
        logger = logging.getLogger("eventsource")
        saved = (logger.level, logger.propagate)
        handler: logging.Handler = _LifeLines(self._say) if self.verbose else logging.NullHandler()
        logger.addHandler(handler)
        logger.setLevel(logging.INFO if self.verbose else logging.CRITICAL + 1)
        logger.propagate = False  # the CLI decides what reaches the terminal
        try:
            return self._run()
        finally:
            logger.removeHandler(handler)
            logger.setLevel(saved[0])
            logger.propagate = saved[1]

    def _run(self) -> int:
        hooks: dict[str, list[Callable[..., Any]]] = {"request": [], "response": []}
        if self.verbose:
            hooks = {"request": [self._show_request], "response": [self._show_response]}
        with httpx.Client(
            verify=not self.insecure, timeout=CONNECT_TIMEOUT, event_hooks=hooks
        ) as client:
            source = EventSource(
                self.url, client=client, on_open=self._on_open, **self.source_options
            )
            self.printer.start(source.last_event_id)
            worker = threading.Thread(
                target=self._consume, args=(source,), name="eventsource-cli", daemon=True
            )
            worker.start()
            try:
                self._wait()
            except KeyboardInterrupt:
                source.close()
                worker.join(JOIN_TIMEOUT)  # a second Ctrl-C ends the wait (main returns 130)
                return EXIT_INTERRUPTED
            if not self._done.is_set():
                self.timed_out = True
                source.close()
                worker.join(JOIN_TIMEOUT)
            else:
                worker.join()
        return self._exit_code(source)

    def _wait(self) -> None:
        """Wait for the worker, or the timeout."""
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        while True:
            remaining = WAIT_SLICE if deadline is None else deadline - time.monotonic()
            if remaining <= 0 or self._done.wait(min(remaining, WAIT_SLICE)):
                return

    def _consume(self, source: EventSource) -> None:
        try:
            with source:
                for event in source:
                    if self.types and event.type not in self.types:
                        continue
                    self.printer.write(event, _now())
                    self.events.append(event)
                    if self.max_events is not None and len(self.events) >= self.max_events:
                        break
        except EventSourceError as exc:
            self._error = exc
        except BrokenPipeError:
            self._broken_pipe = True  # the reader is gone (`| head`): stop quietly
            source.close()
        except BaseException as exc:  # a bug: re-raised in the main thread
            self._crash = exc
            source.close()
        finally:
            self._done.set()

    def _exit_code(self, source: EventSource) -> int:
        if self._crash is not None:
            raise self._crash
        if self._broken_pipe:
            _silence_stdout()
            return EXIT_OK
        if self._error is not None:
            self._fail(describe_error(self._error, self.url))
            return EXIT_FAILED
        if self.timed_out and not self.opened:
            text = f"no stream opened from {self.url} within {self.timeout:g} s"
            if source.error is not None:
                text += f"; the last error: {short_error(source.error)}"
            self._fail(text)
            return EXIT_FAILED
        return EXIT_OK

    # --- verbose output ---

    def _say(self, line: str) -> None:
        with self._lock:
            self.err.write(self._err_style.paint(line, "36") + "\n")
            self.err.flush()

    def _fail(self, text: str) -> None:
        text = " ".join(text.split())  # one line, whatever the message holds
        style = Style(use_colour(self.err))
        self.err.write(f"{style.paint('error:', '1;31')} {text}\n")
        self.err.flush()

    def _on_open(self) -> None:
        self.opened = True

    def _show_request(self, request: httpx.Request) -> None:
        self._say(f"> {request.method} {request.url}")
        last_id = request.headers.get("last-event-id")
        if last_id is not None:
            self._say(f"> Last-Event-ID: {last_id}")

    def _show_response(self, response: httpx.Response) -> None:
        self._say(f"< {response.http_version} {reason(response.status_code, response)}")
        if self.show_headers:
            for name, value in response.headers.multi_items():
                self._say(f"< {name}: {value}")


def _silence_stdout() -> None:
    """After a broken pipe, point stdout at devnull so the interpreter's final
    flush does not report the error again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


# --- entry point ----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Run the command; return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.demo:
            if args.url:
                parser.error("--demo takes no URL")
            from ._demo import run_demo

            return run_demo()
        if not args.url:
            parser.error("give a URL, or --demo")
        try:
            options = _source_options(args)
        except (OSError, ValueError) as exc:
            parser.error(str(exc))
        printer = Printer.for_stream(sys.stdout, args.format, args.color)
        if printer.format == "pretty":
            tolerant(sys.stdout)
        session = Session(
            args.url,
            printer=printer,
            err=sys.stderr,
            verbose=args.verbose,
            types=args.types,
            max_events=args.max_events,
            timeout=args.timeout,
            insecure=args.insecure,
            source_options=options,
        )
        return session.run()
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
