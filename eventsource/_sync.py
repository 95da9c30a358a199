"""The sync driver: carries out the machine's steps with blocking calls.

It mirrors the async driver step for step and decides nothing. ``close()`` and
``restart()`` may come from any thread: they flip the machine's state at once
and end a blocked wait or read through the adapter's interrupt.
"""

from __future__ import annotations

import inspect
import threading
from typing import Any

import httpx

from ._callbacks import Callback, Callbacks
from ._errors import EventIdError, EventSourceError
from ._event import ServerSentEvent
from ._httpx import classify
from ._io import SyncReader
from ._machine import CONNECT, FINISH, OPENED, READ, RELEASE, Comment, Failure, Machine
from ._request import RequestSpec

__all__ = ["SyncDriver"]


class SyncDriver:
    """Drives one source in sync mode (``for``, ``run()``)."""

    __slots__ = (
        "_thread",
        "busy",
        "callbacks",
        "client",
        "machine",
        "own_client",
        "reader",
        "spec",
    )

    def __init__(
        self,
        machine: Machine,
        spec: RequestSpec,
        callbacks: Callbacks,
        client: httpx.Client | None,
    ) -> None:
        self.machine = machine
        self.spec = spec
        self.callbacks = callbacks
        self.client = client
        self.own_client = client is None
        self.reader = SyncReader()
        self.busy = False
        self._thread: int | None = None  # the thread iterating now

    @property
    def response(self) -> httpx.Response | None:
        return self.reader.response

    def next(self) -> ServerSentEvent:
        """The next event; StopIteration at the end; the fatal error."""
        if self.busy:
            raise RuntimeError("this EventSource is already being iterated")
        self.busy = True
        self._thread = threading.get_ident()
        machine = self.machine
        callbacks = self.callbacks
        try:
            while True:
                item = machine.next()
                kind = item.__class__
                if kind is ServerSentEvent:
                    assert isinstance(item, ServerSentEvent)
                    machine.delivering(item)
                    if callbacks.on_message is not None or callbacks.listeners:
                        for handler in callbacks.handlers(item):
                            if machine.closed:
                                break  # close() in a handler: no more on_message
                            self._invoke(handler, item)
                    return item
                if item is READ:
                    self._read()
                elif item is CONNECT:
                    self._connect()
                elif item is RELEASE:
                    self.reader.release()
                    machine.released()
                elif item is OPENED:
                    self._invoke(callbacks.on_open)
                elif kind is Comment:
                    self._invoke(callbacks.on_comment, str(item))
                elif kind is Failure:
                    assert isinstance(item, Failure)
                    self._invoke(callbacks.on_error, item.error)
                elif item is FINISH:
                    self._finish(raise_error=True)
                    raise StopIteration
                else:  # STOP
                    raise StopIteration
        finally:
            self.busy = False

    def _connect(self) -> None:
        machine = self.machine
        if machine.delay:
            self.reader.wait(machine.delay, lambda: machine.interrupting or not machine.delay)
            machine.waited()
            return
        client = self._client()
        self.reader.begin()
        last_event_id = machine.start_attempt()
        if last_event_id is None:
            return  # closed meanwhile
        try:
            request = self.spec.build(client, last_event_id)
        except EventSourceError as exc:
            machine.fail(exc, fatal=isinstance(exc, EventIdError))  # the same id every time
            return
        try:
            response = self.reader.send(client, request, self.spec.auth)
        except Exception as exc:
            self._failed(exc, sending=True)
            return
        if machine.response(
            response.status_code,
            response.headers,
            response,
            reason=response.reason_phrase,
            url=str(response.request.url),
        ):
            self.reader.open(response, self.spec.read_timeout)
        else:
            self.reader.close_refused(response, machine.error)

    def _read(self) -> None:
        try:
            data = self.reader.read()
        except Exception as exc:
            self.reader.fix(exc)
            self._failed(exc, sending=False)
            return
        if data is None:
            self.machine.end()
        else:
            self.machine.receive(data)

    def _failed(self, exc: Exception, *, sending: bool) -> None:
        result = classify(exc, sending=sending, read_timeout=self.spec.read_timeout)
        if result is None:
            raise exc  # not an I/O failure: a bug to see
        error, fatal = result
        self.machine.fail(error, fatal=fatal)

    def _client(self) -> httpx.Client:
        if self.client is None:
            self.client = httpx.Client(**self.spec.client_kwargs())
        return self.client

    def finish_unused(self) -> None:
        """Finish a source closed before any use: on_close only."""
        self._finish(raise_error=False)

    def _finish(self, *, raise_error: bool) -> None:
        machine = self.machine
        error = machine.final_error
        try:
            self.reader.release()
            if self.own_client and self.client is not None:
                self.client.close()
            try:
                if error is not None:
                    self._invoke(self.callbacks.on_error, error)
            finally:
                self._invoke(self.callbacks.on_close)
        finally:
            machine.finished()
        if error is not None and raise_error:
            raise error

    def _invoke(self, callback: Callback | None, *args: Any) -> None:
        if callback is None:
            return
        try:
            result = callback(*args)
            if inspect.isawaitable(result):
                close = getattr(result, "close", None)
                if close is not None:
                    close()  # never awaited: close it so no warning follows
                raise TypeError("a coroutine callback needs the async API (async for / arun)")
        except Exception as exc:
            report = self.callbacks.failed(callback, exc)
            if report is not None:
                self._invoke(self.callbacks.on_error, report)

    # --- control, from the user (any thread) -----------------------------------------------

    def close(self) -> None:
        """Close: CLOSED at once; a blocked read in another thread ends."""
        self.machine.close()
        self.reader.interrupt()
        if self.busy:
            return  # the iterating side finishes when the callback or read returns
        if self.machine.next() is FINISH:
            self._finish(raise_error=False)

    def restart(self) -> None:
        self.machine.restart()
        self.reader.interrupt()
