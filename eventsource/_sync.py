"""The sync driver: carries out the machine's steps with blocking calls.

It mirrors the async driver step for step and decides nothing. ``close()`` and
``restart()`` may come from any thread or a signal handler: they record the
request in the machine and end a blocked wait or read through the reader's
interrupt; the thread that drives the machine applies the request.
"""

from __future__ import annotations

import inspect
import threading
import time
from typing import Any

from ._callbacks import Callback, Callbacks
from ._errors import ConnectionLostError, EventIdError, EventSourceError
from ._event import ServerSentEvent
from ._httpx import classify, never_sent
from ._io import SyncReader
from ._machine import CONNECT, FINISH, OPENED, READ, RELEASE, Comment, Failure, Machine, Output
from ._probe import CHECK_TLS, TLSCheck, for_send
from ._request import RequestSpec
from ._stack import Client, Response

__all__ = ["SyncDriver"]


class SyncDriver:
    """Drives one source in sync mode (``for``, ``run()``).

    The machine is driven by one thread at a time: the iterating thread
    (``busy``), or a closer (``_closing``): a thread that finishes a closed
    source nobody iterates. ``close()`` and ``restart()`` from any thread (or
    a signal handler) only record the request and interrupt the I/O in
    progress; the iterating thread applies the request at its next step.

    Who drives, without a lock on the iterator's path (it would cost a third
    of the time an event takes): each side raises its own flag, then looks at
    the other's. Both flags are plain attribute writes, and the interpreter
    makes them visible in order, so at least one side sees the other: a
    closer that sees ``busy`` backs off (never waiting: it may be a signal
    handler), and the iterator checks for a close once more as it lowers
    ``busy``; an iterator that sees ``_closing`` waits for that closer (it
    holds ``_closer``) before it drives. Closers take turns by a try-acquire.
    """

    __slots__ = (
        "_closer",
        "_tls_check",
        "_closing",
        "_wake_at",
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
        client: Client | None,
    ) -> None:
        self.machine = machine
        self.spec = spec
        self.callbacks = callbacks
        self.client = client
        self.own_client = client is None
        self.reader = SyncReader(lambda: machine.interrupting)
        self.busy = False
        # Reentrant: on_close run by a closer may iterate (and find the end).
        self._closer = threading.RLock()
        self._closing = False
        self._wake_at: float | None = None  # when the current reconnect wait ends
        self._tls_check = TLSCheck()  # the source's one check of a port (_probe)

    @property
    def response(self) -> Response | None:
        return self.reader.response

    def next(self) -> ServerSentEvent:
        """The next event; StopIteration at the end; the fatal error."""
        if self.busy:
            raise RuntimeError("this EventSource is already being iterated")
        self.busy = True
        try:
            if self._closing:  # a closer drives (rare): wait until it is done
                with self._closer:
                    pass
            item = self.machine.take()  # an event is delivered as it is taken
            if item.__class__ is ServerSentEvent:
                callbacks = self.callbacks
                if callbacks.on_message is None and not callbacks.listeners:
                    return item  # the usual step: an event of the last read
            return self._next(item)
        finally:
            self.busy = False
            if self.machine.close_requested:
                self._settle()

    def _next(self, item: Output | None) -> ServerSentEvent:
        """The loop of steps, from this one (taken already) if given."""
        machine = self.machine
        callbacks = self.callbacks
        take = machine.take
        while True:
            if item is None:
                item = take()  # an event is delivered as it is taken
            kind = item.__class__
            if kind is ServerSentEvent:
                if callbacks.on_message is not None or callbacks.listeners:
                    for handler in callbacks.handlers(item):  # type: ignore[arg-type]
                        if machine.closed:
                            break  # close() in a handler: no more on_message
                        self._invoke(handler, item)
                return item  # type: ignore[return-value]
            if item is READ:
                # The read, inline (a call fewer at every wake-up).
                item = None
                reader = self.reader
                try:
                    data = reader.read()
                except Exception as exc:
                    reader.fix(exc)
                    self._failed(exc, sending=False)
                    continue
                if data is None:
                    machine.end()
                else:
                    machine.receive(data)
                continue
            step, item = item, None
            if step is CONNECT:
                self._connect()
            elif step is RELEASE:
                self.reader.release()
                machine.released()
            elif step is OPENED:
                self._invoke(callbacks.on_open)
            elif kind is Comment:
                self._invoke(callbacks.on_comment, str(step))
            elif kind is Failure:
                assert isinstance(step, Failure)
                self._invoke(callbacks.on_error, step.error)
            elif step is FINISH:
                self._finish(raise_error=True)
                raise StopIteration
            else:  # STOP
                raise StopIteration

    def _connect(self) -> None:
        machine = self.machine
        reader = self.reader
        if machine.delay:
            # A deadline, kept when the wait is interrupted by the caller
            # (KeyboardInterrupt in a notebook): the next call waits the rest.
            wake_at = self._wake_at
            if wake_at is None:
                wake_at = self._wake_at = time.monotonic() + machine.delay
            reader.wait_until(wake_at, lambda: machine.interrupting)
            self._wake_at = None
            machine.waited()
            return
        self._wake_at = None
        client = self._client()
        last_event_id = machine.start_attempt()
        if last_event_id is None:
            return  # closed meanwhile
        reader.begin()
        if machine.interrupting:
            # Asked for while the last attempt's interrupt was being forgotten.
            machine.fail(ConnectionLostError("interrupted"))
            return
        try:
            request = self.spec.build(
                client, last_event_id, resume=machine.resuming, resume_url=machine.resume_url
            )
        except EventSourceError as exc:
            # Nothing was sent. The same id every time: fatal.
            machine.fail(exc, fatal=isinstance(exc, EventIdError), unsent=True)
            return
        checking = CHECK_TLS.set(for_send(self._tls_check, machine))
        try:
            response = reader.send(
                client,
                request,
                self.spec.auth_for(request),
                follow_redirects=self.spec.follow_redirects,
            )
        except Exception as exc:
            self._failed(exc, sending=True)
            return
        except BaseException:
            machine.in_doubt()  # KeyboardInterrupt: a request other than GET may have run
            raise
        finally:
            CHECK_TLS.reset(checking)
        if machine.response(
            response.status_code,
            response.headers,
            response,
            reason=response.reason_phrase,
            url=str(response.request.url),
            redirected=reader.hops > 0,
        ):
            reader.open(response, self.spec.read_timeout)
        else:
            reader.close_refused(response, machine.error)

    def _failed(self, exc: Exception, *, sending: bool) -> None:
        result = classify(
            exc,
            sending=sending,
            read_timeout=self.spec.read_timeout,
            opened=self.machine.opens > 0,
        )
        if result is None:
            raise exc  # not an I/O failure: a bug to see
        error, fatal = result
        # Certainly not sent: no connection, and no redirect's head before it.
        unsent = sending and self.reader.hops == 0 and never_sent(exc)
        self.machine.fail(error, fatal=fatal, unsent=unsent)

    def _client(self) -> Client:
        if self.client is None:
            self.client = self.spec.stack.http.Client(**self.spec.client_kwargs(sync=True))
        return self.client

    def finish_unused(self) -> None:
        """Finish a source closed before any use (FINISH was handed out)."""
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
        """Ask to close: CLOSED at once; a blocked read in another thread ends."""
        self.machine.close()
        self.reader.interrupt()
        self._settle()

    def restart(self) -> None:
        """Ask to reconnect; a blocked read in another thread ends."""
        self.machine.restart()
        # Carried out only while the restart is still wanted: once the driver
        # satisfied it, the interrupt would end the new attempt.
        self.reader.interrupt()

    def _settle(self) -> None:
        """Finish a closed source when no thread iterates it.

        The iterating thread calls this as it lowers ``busy``: one of the two
        finishes it.
        """
        machine = self.machine
        while machine.closed and not machine.ended:
            if not self._closer.acquire(blocking=False):
                return  # another closer is at it
            try:
                self._closing = True
                if self.busy:
                    return  # the iterating thread finishes, or settles as it leaves
                if machine.next() is not FINISH:
                    return  # finished already (STOP), by an earlier closer
                self._finish(raise_error=False)
            finally:
                self._closing = False
                self._closer.release()
