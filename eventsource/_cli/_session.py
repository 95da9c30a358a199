"""One run of the command: a stream's events printed until something stops it.

Without -v, each failed attempt that the source retries is one stderr line,
``retrying in 3.0 s: connection refused`` (from on_error's ``will_retry`` and
``retry_delay``); a connection that delivered events and then ended is a
plain reconnect, not a failure, and is not reported. With -v the logger's
richer lines say all of it instead.

One EventSource (sync) is iterated in a worker thread that prints the events;
the main thread only waits. So the two things that stop a run from outside,
``--timeout`` and Ctrl-C, are one call to the thread-safe ``close()``, which
interrupts a blocked read at once, and the run still ends through the source's
normal close path ("closed: URL" in the verbose lines, no traceback).
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Callable, Collection
from datetime import datetime, timezone
from typing import Any, TextIO

import httpx

from .._errors import ConnectError, EventSourceError
from .._event import ServerSentEvent
from .._request import ssl_context_for
from .._source import EventSource
from .._stack import HTTPX
from .._transport import client_kwargs
from ._args import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, silence_stdout
from ._output import (
    Printer,
    Style,
    cause_words,
    describe_error,
    reason,
    short_error,
    use_colour,
    visible,
)

__all__ = ["EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "Session"]

CONNECT_TIMEOUT = 10.0  # seconds, for connect / write / pool
JOIN_TIMEOUT = 5.0  # seconds to let the worker finish after close()
WAIT_SLICE = 0.5  # the main thread waits in slices, so Ctrl-C is seen on every OS


def _now() -> datetime:
    return datetime.now(timezone.utc)


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


class Session:
    """One run of the command.

    A source iterated in a worker thread, printed, and stopped by the stream,
    ``max_events``, ``timeout`` or Ctrl-C.
    """

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
        verify: bool | ssl.SSLContext | None = None,
        http2: bool = False,
        until_types: Collection[str] = (),
        until_data: Collection[str] = (),
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
        self.verify = (not insecure) if verify is None else verify
        self.http2 = http2
        self.until_types = frozenset(until_types)
        self.until_data = frozenset(until_data)
        self.source_options = dict(source_options or {})
        self.events: list[ServerSentEvent] = []  # the events printed
        self.opened = False  # a connection opened at least once
        self.timed_out = False
        self._error: EventSourceError | None = None
        self._crash: BaseException | None = None
        self._broken_pipe = False
        self._delivered = False  # the open connection delivered an event
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._err_style = Style(use_colour(err) if verbose else False)

    def run(self) -> int:
        """Run to the end; return the exit code.

        Ctrl-C (KeyboardInterrupt in this thread) closes the source and returns
        130.
        """
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
        try:
            # The library's context for verify=: SSL_CERT_FILE / SSL_CERT_DIR
            # that cannot be loaded are its ConnectError, not an OSError. Not
            # the shared default for --http2: httpcore sets ALPN "h2" on it.
            context = ssl_context_for(self.verify, HTTPX, shared=not self.http2)
        except ConnectError as exc:
            self._fail(describe_error(exc, self.url))
            return EXIT_FAILED
        # On eventsource's own transport (the fast read, which a close() from
        # another thread, --timeout or Ctrl-C, ends at once), with the
        # environment's proxies as httpx.Client() would take them.
        with httpx.Client(
            timeout=CONNECT_TIMEOUT,
            event_hooks=hooks,
            **client_kwargs(context, sync=True, http2=self.http2),
        ) as client:
            try:
                source = EventSource(
                    self.url,
                    client=client,
                    on_open=self._on_open,
                    on_message=self._on_message,
                    on_error=self._on_error,
                    **self.source_options,
                )
            except ValueError as exc:  # a URL without a scheme, say: no attempt is made
                self._fail(str(exc))
                return EXIT_USAGE
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
                    if not self.types or event.type in self.types:
                        self.printer.write(event, _now())
                        self.events.append(event)
                        if self.max_events is not None and len(self.events) >= self.max_events:
                            break
                    if event.type in self.until_types or event.data in self.until_data:
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
            silence_stdout()
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
            self.err.write(self._err_style.paint(visible(line), "36") + "\n")
            self.err.flush()

    def _fail(self, text: str) -> None:
        text = visible(" ".join(text.split()))  # one line, whatever the message holds
        style = Style(use_colour(self.err))
        self.err.write(f"{style.paint('error:', '1;31')} {text}\n")
        self.err.flush()

    def _on_open(self) -> None:
        self.opened = True
        self._delivered = False

    def _on_message(self, event: ServerSentEvent) -> None:
        self._delivered = True

    def _on_error(self, error: EventSourceError) -> None:
        """Without -v: one line per failed attempt that will be retried.

        A connection that delivered events and then ended is no failure.
        """
        delivered, self._delivered = self._delivered, False
        if self.verbose or not error.will_retry or delivered:
            return
        delay = error.retry_delay
        when = "" if delay is None else f" in {_seconds(delay)} s"
        with self._lock:
            self.err.write(f"retrying{when}: {cause_words(error)}\n")
            self.err.flush()

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


def _seconds(delay: float) -> str:
    """A delay for people: one decimal ("3.0"), two digits below 0.1 s ("0.05")."""
    return f"{delay:.1f}" if delay >= 0.1 or delay == 0 else f"{delay:.2g}"
