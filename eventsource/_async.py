"""The async driver: carries out the machine's steps with anyio (asyncio or trio).

It decides nothing: it asks the machine what to do, does the I/O through the
httpx adapter, and reports the outcome back. Only closing the response and the
source's own client is shielded (with a deadline); user callbacks never are,
so a caller's cancel scope is honoured whatever a callback does.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import anyio

from . import _httpx
from ._callbacks import Callback, Callbacks
from ._errors import ConnectionLostError, EventIdError, EventSourceError
from ._event import ServerSentEvent
from ._httpx import classify, never_sent
from ._io import AsyncReader
from ._loop import running_loop
from ._machine import CONNECT, FINISH, OPENED, READ, RELEASE, Comment, Failure, Machine, Output
from ._probe import CHECK_TLS, TLSCheck, for_send
from ._request import RequestSpec
from ._stack import AsyncClient, Response

__all__ = ["AsyncDriver"]

logger = logging.getLogger("eventsource")


# Steps in a row that may not have suspended before the driver checkpoints: a
# body that never suspends (a mock, a burst already read) stays cancellable
# and lets other tasks run. Each checkpoint is a pass of the event loop: at
# 128 steps that cost 0.2 us an event on asyncio (measured).
_CHECKPOINT_EVERY = 1024


class AsyncDriver:
    """Drives one source in async mode (``async for``, ``arun()``).

    Everything it does runs in the event loop's thread: ``next()``, ``aclose()``
    and the wake-ups that ``close()`` / ``restart()`` post from anywhere with
    the loop's thread-safe "call soon". So the machine is only ever driven from
    one thread, and the driver's own checks need no lock.
    """

    __slots__ = (
        "_call_soon",
        "_callback_task",
        "_tls_check",
        "_closer",
        "_current_task",
        "_done",
        "_in_callback",
        "_loop",
        "_pending",
        "_probe",
        "_steps",
        "_unraised",
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
        client: AsyncClient | None,
    ) -> None:
        self.machine = machine
        self.spec = spec
        self.callbacks = callbacks
        self.client = client
        self.own_client = client is None
        self.reader = AsyncReader(lambda: machine.interrupting)
        self.busy = False
        # The event loop driving the source, and its thread-safe "call soon":
        # bound again whenever another loop drives it (per-test loops, notebooks).
        self._loop: object = None
        self._probe: Callable[[], object] = _no_task
        self._tls_check = TLSCheck()  # the source's one check of a port (_probe)
        self._call_soon: Callable[[Callable[[], None]], object] | None = None
        self._current_task = _current_task_function()
        self._in_callback = 0  # depth of callbacks running in the iterating task
        self._callback_task: object = None  # the task awaiting a coroutine callback
        self._closer: object = None  # the task close() started, held until the source goes
        # Made by the first task that waits for the end (an event per source
        # would cost memory that thousands of idle sources pay for nothing).
        self._done: anyio.Event | None = None
        # An event a cancel kept from the caller, with its handlers still to run.
        self._pending: tuple[ServerSentEvent, list[Callback]] | None = None
        self._steps = 0  # steps since the last checkpoint
        self._unraised: EventSourceError | None = None  # the fatal error, until raised
        self._wake_at: float | None = None  # when the current reconnect wait ends
        self._bind()

    @property
    def response(self) -> Response | None:
        return self.reader.response

    def _bind(self) -> None:
        """Remember the running event loop (if another than before)."""
        loop, probe, call_soon = running_loop()
        if loop is not self._loop:
            if self._loop is not None and self.own_client:
                # httpcore's network backend sticks to the loop kind it first
                # ran under (trio or asyncio): a client of our own is made anew.
                self.client = None
            self._loop, self._probe, self._call_soon = loop, probe, call_soon
            self._current_task = _current_task_function()

    def _same_loop(self) -> bool:
        try:
            return self._probe() is self._loop
        except RuntimeError:
            return False

    def _rebind(self) -> None:
        """Bind again when another event loop drives the source now."""
        if not self._same_loop():
            self._bind()

    async def next(self) -> ServerSentEvent:
        """The next event; StopAsyncIteration at the end; the fatal error."""
        if self.busy:
            raise RuntimeError("this EventSource is already being iterated")
        machine = self.machine
        callbacks = self.callbacks
        item: Output | None = None
        if self._pending is None:
            # The usual step, an event of the last read with nobody to call:
            # handed out here, without the loop (nothing is awaited, so no
            # other task, nor a close() posted to the loop, comes in between).
            steps = self._steps + 1
            if steps < _CHECKPOINT_EVERY:
                self._steps = steps
                item = machine.take()  # an event is delivered as it is taken
                if (
                    item.__class__ is ServerSentEvent
                    and callbacks.on_message is None
                    and not callbacks.listeners
                ):
                    return item
        self.busy = True
        try:
            if self._pending is not None:  # a cancel came in its handlers: deliver it now
                pending, handlers = self._pending
                self._pending = None
                if not machine.closed:
                    await self._dispatch(pending, handlers)
                    return pending
            take = machine.take
            while True:
                if item is None:
                    self._steps += 1
                    if self._steps >= _CHECKPOINT_EVERY:
                        self._steps = 0
                        await anyio.lowlevel.checkpoint()
                    item = take()  # an event is delivered as it is taken
                kind = item.__class__
                if kind is ServerSentEvent:
                    if callbacks.on_message is not None or callbacks.listeners:
                        await self._dispatch(item, callbacks.handlers(item))  # type: ignore[arg-type]
                    return item  # type: ignore[return-value]
                if item is READ:
                    item = None
                    # The read, inline: a coroutine fewer to resume at every wake-up.
                    reader = self.reader
                    try:
                        data = await reader.read(self.spec.read_timeout)
                    except Exception as exc:
                        reader.fix(exc)
                        self._failed(exc, sending=False)
                        continue
                    except BaseException:
                        # The caller cancelled its wait. A body that cannot take up
                        # a read where a cancel left it (httpx's generators end) is
                        # broken now: the next step reconnects, never mistaking it
                        # for a clean end.
                        reader.cancelled()
                        raise
                    if data is None:
                        machine.end()
                    else:
                        machine.receive(data)
                    continue
                step, item = item, None
                if step is CONNECT:
                    await self._connect()
                elif step is RELEASE:
                    await self.reader.release()
                    machine.released()
                elif step is OPENED:
                    await self._invoke(callbacks.on_open)
                elif kind is Comment:
                    await self._invoke(callbacks.on_comment, str(step))
                elif kind is Failure:
                    assert isinstance(step, Failure)
                    await self._invoke(callbacks.on_error, step.error)
                elif step is FINISH:
                    await self._finish(raise_error=True)
                    raise StopAsyncIteration
                else:  # STOP: finished, or being finished by another task
                    await self._wait_ended()
                    unraised, self._unraised = self._unraised, None
                    if unraised is not None:  # a cancel came before it was raised
                        raise unraised
                    raise StopAsyncIteration
        finally:
            self.busy = False
            if machine.close_requested and not machine.ended:
                # A close that came while this task iterated, left unapplied
                # (a cancel, or an event returned): the closer finishes it.
                self._post()

    async def _dispatch(self, item: ServerSentEvent, handlers: list[Callback]) -> None:
        """Run the event's handlers in order.

        A cancel in one keeps the event and the handlers still to run: the next
        __anext__() runs them and returns the event (the one cancelled is not
        run again).
        """
        machine = self.machine
        for i, handler in enumerate(handlers):
            if machine.closed:
                break  # close() in a handler: no more on_message
            try:
                await self._invoke(handler, item)
            except BaseException:
                self._pending = (item, handlers[i + 1 :])
                raise

    async def _connect(self) -> None:
        machine = self.machine
        reader = self.reader
        # The event loop that waits and connects now: a source may be reused
        # under another one (per-test loops, notebooks). Checked here, where
        # the driver starts its I/O, not per event (a system call each on 3.11).
        self._rebind()
        if machine.delay:
            # A deadline, kept when the caller cancels the wait: the next
            # __anext__() waits what is left of it, not the whole delay again.
            wake_at = self._wake_at
            if wake_at is None:
                wake_at = self._wake_at = anyio.current_time() + machine.delay
            await reader.wait_until(wake_at)
            self._wake_at = None
            machine.waited()
            return
        self._wake_at = None
        # A transport that never suspends (a mock that refuses, retry=0) must
        # not make the loop uncancellable: every attempt is a checkpoint.
        await anyio.lowlevel.checkpoint()
        client = self._client()
        last_event_id = machine.start_attempt()
        if last_event_id is None:
            return  # closed meanwhile
        reader.begin()
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
            # Only a client of the source's own is gated: a shared client's
            # pool does work for every connection it holds on each request,
            # so with thousands on one client a gated attempt's connect waits
            # behind the others' past its timeout (measured; see _gate).
            response = await reader.send(
                client,
                request,
                self.spec.auth_for(request),
                gated=self.own_client,
                follow_redirects=self.spec.follow_redirects,
            )
        except Exception as exc:
            self._failed(exc, sending=True)
            return
        except BaseException:
            machine.in_doubt()  # a caller's cancel: a request other than GET may have run
            raise
        finally:
            CHECK_TLS.reset(checking)
        if response is None:
            machine.fail(ConnectionLostError("interrupted"))
        elif machine.response(
            response.status_code,
            response.headers,
            response,
            reason=response.reason_phrase,
            url=str(response.request.url),
            redirected=reader.hops > 0,
        ):
            reader.open(response, self.spec.read_timeout)
        else:
            await reader.close_refused(response, machine.error)

    def _failed(self, exc: Exception, *, sending: bool) -> None:
        result = classify(
            exc,
            sending=sending,
            read_timeout=self.spec.read_timeout,
            opened=self.machine.opens > 0,
        )
        if result is None:
            if not self._same_loop():
                # A connection opened under an event loop that is gone (the
                # source is reused under another): a dropped connection.
                lost = ConnectionLostError(f"connection lost: its event loop is gone ({exc!r})")
                lost.__cause__ = exc
                self.machine.fail(lost)
                return
            raise exc  # not an I/O failure: a bug to see
        error, fatal = result
        # Certainly not sent: no connection, and no redirect's head before it.
        unsent = sending and self.reader.hops == 0 and never_sent(exc)
        self.machine.fail(error, fatal=fatal, unsent=unsent)

    def _client(self) -> AsyncClient:
        if self.client is None:
            self.client = self.spec.stack.http.AsyncClient(**self.spec.client_kwargs(sync=False))
        return self.client

    async def _finish(self, *, raise_error: bool) -> None:
        machine = self.machine
        error = machine.final_error
        self._pending = None
        if raise_error:
            self._unraised = error  # raised by the next call if a cancel comes first
        try:
            try:
                with anyio.CancelScope(
                    shield=True, deadline=anyio.current_time() + _httpx.CLOSE_TIMEOUT
                ):
                    await self.reader.release()
                    if self.own_client and self.client is not None:
                        await self.client.aclose()
            finally:  # on asyncio a task's own cancel passes anyio's shield
                try:
                    if error is not None:
                        await self._invoke(self.callbacks.on_error, error)
                finally:
                    await self._invoke(self.callbacks.on_close)
        finally:  # whatever happened, nobody may wait for this end forever
            machine.finished()
            if self._done is not None:
                self._done.set()
        if error is not None and raise_error:
            self._unraised = None
            raise error

    async def _wait_ended(self) -> None:
        machine = self.machine
        if not machine.ended:
            if self._done is None:
                done = self._done = anyio.Event()
                call_soon = self._call_soon
                if call_soon is not None:
                    # The end may be carried out by another driver, in another
                    # thread (a close() of a source not used yet): it sets the
                    # event through the loop's thread-safe call.
                    def ended() -> None:
                        try:
                            call_soon(done.set)
                        except RuntimeError:  # the loop is gone
                            pass

                    machine.ended_hook = ended
            if machine.ended:  # (it ended as the hook was being set)
                return
            await self._done.wait()

    async def _invoke(self, callback: Callback | None, *args: Any) -> None:
        if callback is None:
            return
        self._in_callback += 1
        try:
            result = callback(*args)
            if inspect.isawaitable(result):
                # Only a coroutine callback can be suspended while another task
                # calls aclose(): only then is the task worth looking up.
                outer, self._callback_task = self._callback_task, self._current_task()
                try:
                    await result
                finally:
                    self._callback_task = outer
        except Exception as exc:
            report = self.callbacks.failed(callback, exc)
            if report is not None:
                await self._invoke(self.callbacks.on_error, report)
        finally:
            self._in_callback -= 1

    def _called_back(self) -> bool:
        """True inside one of this source's callbacks, in the task running it."""
        if not self._in_callback:
            return False
        task = self._callback_task
        return task is None or task is self._current_task()

    # --- control, from the user ---------------------------------------------------------

    async def aclose(self) -> None:
        """Close and wait for the end.

        Inside one of the source's own callbacks (on_close included) it returns
        at once: the end follows when the callback returns, and waiting for it
        there would wait for itself.
        """
        self.machine.close()
        self._rebind()
        if self._called_back():
            self._post()
            return
        if self.busy:  # another task iterates: wake it, and wait for its finish
            self.reader.interrupt()
            await self._wait_ended()
        elif self.machine.next() is FINISH:
            await self._finish(raise_error=False)
        else:
            await self._wait_ended()

    def close(self) -> None:
        """Ask to close, from any thread, task, callback or signal handler."""
        self.machine.close()
        self._post()

    def restart(self) -> None:
        """Ask to reconnect, from any thread, task, callback or signal handler."""
        self.machine.restart()
        self._post()

    def _post(self) -> None:
        """Wake the driver in its event loop.

        Always through the loop's thread-safe "call soon", even from the loop's
        thread (a signal handler may run between any two bytecodes of the
        driver).
        """
        call_soon = self._call_soon
        if call_soon is not None:
            try:
                call_soon(self._wake)
                return
            except RuntimeError:  # the loop is gone (the source was reused under another)
                pass
        # No loop to reach: end a read on the source's own socket from here
        # (thread-safe); the next step applies the request.
        self.reader.interrupt_socket()

    def _wake(self) -> None:
        """End the I/O of a request not applied yet; finish an unread closed source.

        Run in the loop: the I/O in progress ends for a request not applied yet, and
        a closed source that nobody iterates is finished.
        """
        machine = self.machine
        if not machine.interrupting or machine.ended:
            return  # applied already (a restart), or finished
        self.reader.interrupt()
        if machine.closed and not self.busy and self._closer is None:
            # Closing a response takes an await: done by a task of its own,
            # which the source holds (a task nothing refers to may be collected).
            self._closer = _spawn(self._finish_quietly)

    async def _finish_quietly(self) -> None:
        # A task of its own (a trio system task, where an exception would end
        # the whole run): the error was reported to on_error; log the rest.
        if self.machine.next() is FINISH:
            try:
                await self._finish(raise_error=False)
            except Exception:
                logger.exception("error while closing %s", self.machine.url)


def _current_task_function() -> Callable[[], object]:
    """The running backend's own "current task".

    anyio's builds a TaskInfo object on each call, too slow for once per
    callback.
    """
    try:
        import asyncio

        asyncio.get_running_loop()
        return asyncio.current_task
    except RuntimeError:
        pass
    try:
        import trio

        trio.lowlevel.current_task()
        return trio.lowlevel.current_task
    except (ImportError, RuntimeError):
        return _no_task


def _no_task() -> object:
    return None


def _spawn(function: Callable[[], Coroutine[Any, Any, None]]) -> object:
    """Start a coroutine function as a task of this thread's event loop.

    On asyncio or trio; return the task (None for trio, or outside a loop).
    """
    try:
        import asyncio

        loop = asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        return loop.create_task(function())
    try:
        import trio

        trio.lowlevel.current_trio_token()
    except (ImportError, RuntimeError):
        return None
    trio.lowlevel.spawn_system_task(function)
    return True
