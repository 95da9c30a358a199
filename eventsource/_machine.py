"""The connection machine: a source's whole life, without I/O.

A driver (``_async``, ``_sync``) asks ``next()`` what to do, does it, and
reports the outcome back as an input; every decision is made here, once, for
both drivers. No I/O, no clock, no threads.

Requests: ``close()`` and ``restart()`` may come from any thread, task,
callback or signal handler. They only record the request (a plain attribute
write each: no lock, nothing that could block or run half-way under a signal)
and change nothing else; ``ready_state`` reads CLOSED from the moment
``close()`` returns. Every transition happens on the driver's side, in
``next()`` and the driver's inputs: one thread at a time (the sync driver's
turn, the async driver's event loop). A close request is never cleared; a
restart request is cleared by the transition that satisfies it (a new attempt
starting, or the connection released), so a restart asked for after that
transition is applied again, and one asked for before it is satisfied by it.
The driver wakes itself up for a request (``interrupting``) through the
reader's interrupt, and checks ``interrupting`` again after every step that
arms an interrupt, so a request is never lost between a check and a wait.

States and transitions (``ready_state`` in brackets)::

    state         input                          -> state        outputs
    WAITING  [0]  start_attempt()                -> CONNECTING
    CONNECTING[0] response(): 200 event-stream   -> OPEN         OPENED
                  response(): retried status     -> WAITING      Failure, CONNECT after delay
                  response(): 204                -> CLOSED       FINISH
                  response(): other / fail(fatal)-> CLOSED       FINISH with the error
                  fail(transient)                -> WAITING      Failure, CONNECT after delay
    OPEN     [1]  receive(bytes)                 -> OPEN         events, comments
                  end() / fail()                 -> WAITING      RELEASE, Failure, CONNECT
                  restart()                      -> WAITING      RELEASE, CONNECT at once
                  receive() too large / no reconnect and fail()
                                                 -> CLOSED       RELEASE, FINISH with the error
    any           close() (applied by next())    -> CLOSED       FINISH (once), then STOP
    WAITING       max_retries failures in a row  -> CLOSED       Failure, FINISH (RetriesExhausted)

``next()`` answers, in this order of priority: FINISH once closed (then STOP);
RELEASE (close the response) when a connection has ended; then the queue, in
stream order (events, comments, OPENED, Failure notices); then FINISH for a
fatal error; READ while open (RELEASE first when a restart is pending); else
CONNECT (wait ``delay`` seconds first, then ``waited()``; ``start_attempt()``).

Requests other than GET (``resend`` false): the request is sent again only
when it certainly was not processed (``fail(unsent=True)``: no connection, so
nothing was sent; or a 408, 429 or 503 answer). Once a stream head arrived it
is never sent again: a stream that gave an id is resumed (``resuming``: the
driver sends a GET with Last-Event-ID, MCP's Streamable HTTP), one that gave
none ends. A resume is a GET: retried as any, from the newest id.

A failure report that arrives while a close or a restart is pending is the
interrupted I/O ending: it is not an error. Events are read only when the
queue is empty, so everything received before a drop is delivered before the
drop is reported.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Literal

from ._errors import (
    ConnectionLostError,
    EventSourceError,
    EventTooLargeError,
    RetriesExhaustedError,
)
from ._event import ServerSentEvent
from ._parser import SSEParser
from ._policy import Action, ConnectionPolicy
from ._steps import (
    _STATES,
    CONNECT,
    FINISH,
    OPENED,
    READ,
    RELEASE,
    STOP,
    Comment,
    Failure,
    Output,
    ReadyState,
    _cannot_restart,
    _cause,
    _State,
)

if TYPE_CHECKING:
    from ._stack import Response

__all__ = [
    "CONNECT",
    "FINISH",
    "OPENED",
    "READ",
    "RELEASE",
    "STOP",
    "Comment",
    "Failure",
    "Machine",
    "Output",
    "ReadyState",
]

logger = logging.getLogger("eventsource")

#: How a request other than GET is resumed: "get" (a GET with
#: Last-Event-ID), "resend" (the request again), None (not at all).
ResumeMode = Literal["get", "resend"] | None

#: The statuses that say a request was not processed: it may be sent again.
UNPROCESSED = frozenset({408, 429, 503})


class Machine:
    """One source's connection life: see the module docstring."""

    __slots__ = (
        "_delivered",
        "_fatal",
        "_finished",
        "_queue",
        "_ready",
        "_release",
        "_restart",
        "_state",
        "close_requested",
        "delay",
        "delivered_id",
        "ended",
        "ended_hook",
        "error",
        "events_received",
        "final_error",
        "last_event",
        "method",
        "opens",
        "parser",
        "policy",
        "resend",
        "resume_url",
        "resumes",
        "resuming",
        "_given_id",
        "_start_id",
        "url",
    )

    def __init__(
        self,
        policy: ConnectionPolicy,
        *,
        max_event_size: int,
        last_event_id: str = "",
        comments: bool = False,
        method: str = "GET",
        url: object = "",
        resume: ResumeMode = "get",
    ) -> None:
        self.parser = SSEParser(
            max_event_size=max_event_size,
            on_comment=self._queue_comment if comments else None,
            last_event_id=last_event_id,
        )
        self.policy = policy
        # For log lines, which format it with %s: the source's httpx.URL, say
        # (a str of it would be one more copy of the URL a stream holds).
        self.url = url
        self.method = method
        # The request may be sent again whatever came of it (a GET, or the
        # caller said so); else, once a head arrived, only resumed.
        self.resend = method == "GET" or resume == "resend"
        self.resumes = resume is not None and not self.resend
        self.resuming = False  # the attempts are resumes (GET with Last-Event-ID)
        self.resume_url = ""  # where the request's stream came from (after redirects)
        self._start_id = last_event_id  # the last event ID when the attempt started
        self._given_id = last_event_id  # the caller's
        self.opens = 0  # connections opened
        # The outputs not handed out yet, last first: next() pops from the end
        # (O(1) however long a burst). A list, not a deque: an empty deque
        # holds 760 bytes, an empty list 56, and an idle source keeps one.
        self._queue: list[Output] = []
        self._state = _State.WAITING
        self._ready = ReadyState.CONNECTING
        self.delay = 0.0  # seconds to wait before the next attempt
        self.error: EventSourceError | None = None  # the latest error
        self.final_error: EventSourceError | None = None  # what FINISH reports
        self.delivered_id = last_event_id
        self.last_event: ServerSentEvent | None = None
        self.events_received = 0
        self._delivered = False  # this attempt's connection produced an event
        self._fatal: EventSourceError | None = None
        self._release = False
        self._restart = False  # a restart was asked for and is not satisfied yet
        self.close_requested = False  # close() was called (never cleared)
        # Popped by whoever is handed FINISH: list.pop() is atomic, so two
        # threads that both find the source closed (a close before any use
        # racing a first iteration) cannot both finish it.
        self._finished = [FINISH]
        self.ended = False  # ... and carried out
        # Called once it is (from the finisher's thread): how a driver waiting
        # for an end that another driver carries out hears of it.
        self.ended_hook: Callable[[], None] | None = None

    def _to(self, state: _State) -> None:
        self._state = state
        self._ready = _STATES[state]

    # --- outputs ------------------------------------------------------------------

    @property
    def ready_state(self) -> ReadyState:
        """CLOSED from the moment close() was asked for, else the state's."""
        return ReadyState.CLOSED if self.close_requested else self._ready

    @property
    def closed(self) -> bool:
        """Closed, or asked to close: nothing more is delivered."""
        return self.close_requested or self._state is _State.CLOSED

    @property
    def interrupting(self) -> bool:
        """A close or restart waits for the current I/O to end."""
        return self.close_requested or self._restart

    @property
    def last_event_id(self) -> str:
        """The last event ID as delivered: what a reconnect sends."""
        if self._queue or self._state is _State.CLOSED:
            return self.delivered_id
        return self.parser.last_event_id

    def next(self) -> Output:
        """What the driver does next (see the module docstring)."""
        if self.close_requested and self._state is not _State.CLOSED:
            self._close(None)
        if self._state is _State.CLOSED:
            try:
                return self._finished.pop()
            except IndexError:
                return STOP
        if self._release:
            return RELEASE
        if self._queue:
            return self._queue.pop()
        if self._fatal is not None:
            self._close(self._fatal)
            return self.next()
        if self._restart:
            if self._state is _State.OPEN:
                self._restart = False
                self._release = True
                if not self._may_restart():
                    self._fatal = _cannot_restart(self.method)
                    return RELEASE
                self._to(_State.WAITING)
                self.delay = 0.0
                if self._progressed():  # progress, not a failure: the count restarts
                    self.policy.failures = 0
                logger.info("restart: reconnecting to %s", self.url)
                return RELEASE
            if self._state is _State.WAITING:
                self.delay = 0.0  # cleared by the attempt it starts
        if self._state is _State.OPEN:
            return READ
        return CONNECT

    def delivering(self, event: ServerSentEvent) -> None:
        """The driver hands this event to the user now."""
        self.last_event = event
        self.delivered_id = event[2]
        self.events_received += 1

    def take(self) -> Output:
        """``next()``, and ``delivering()`` for an event it returns.

        The drivers' step, which hands every event to the user at once.

        The events of a read, and the next read, are answered here without
        all the checks next() makes first: nothing comes before a queued item
        but a close or a release (a closed machine's queue is empty, and
        nothing is queued once it is), and an open connection with nothing
        queued and nothing pending is read.
        """
        if not (self.close_requested or self._release):
            queue = self._queue
            if queue:
                item = queue.pop()
                if item.__class__ is ServerSentEvent:
                    self.last_event = item
                    self.delivered_id = item[2]
                    self.events_received += 1
                return item
            if self._state is _State.OPEN and self._fatal is None and not self._restart:
                return READ  # (what next() answers then, in its order)
        return self.next()  # no event: the queue is empty

    # --- requests from the user (any thread, task, callback or signal handler) ---------

    def close(self) -> None:
        """Ask to close: ``ready_state`` is CLOSED from now on, nothing more is delivered.

        The driver applies it at its next step.
        """
        self.close_requested = True

    def restart(self) -> None:
        """Ask to drop the connection and reconnect at once (no error, no backoff).

        The driver applies it at its next step.
        """
        self._restart = True

    def _close(self, error: EventSourceError | None) -> None:
        # What was parsed but not delivered is dropped: the last event ID is
        # the delivered one from now on (what a new source resumes from).
        self.delivered_id = self.last_event_id
        self._to(_State.CLOSED)
        self._queue.clear()
        self._fatal = None
        self.final_error = error
        if error is not None:
            error.will_retry = False
            error.retry_delay = None
            self.error = error
            # INFO: the error is raised to the caller (and given to on_error);
            # logging it at ERROR too would report it twice.
            logger.info("stream failed: %s: %s", self.url, error)

    # --- inputs from the driver ----------------------------------------------------------

    def waited(self) -> None:
        """The delay before the next attempt has passed."""
        self.delay = 0.0

    def start_attempt(self) -> str | None:
        """A request is about to be sent.

        Returns the Last-Event-ID to send, or None when the source was closed
        meanwhile (send nothing).
        """
        if self.close_requested or self._state is _State.CLOSED:
            return None
        self._to(_State.CONNECTING)
        self._restart = False  # this attempt is the restart asked for
        self._delivered = False
        self._start_id = self.parser.last_event_id
        return self._start_id

    def response(
        self,
        status: int,
        headers: Mapping[str, str],
        response: Response | None = None,
        *,
        reason: str = "",
        url: str = "",
        redirected: bool = False,
    ) -> bool:
        """The response head arrived: whether the stream opens.

        ``redirected``: after a redirect's, so the request was answered. True when
        the stream opens (read it), False when the driver is to close the response
        now (``error`` then holds the ResponseError, if it is one).
        """
        if self._state is not _State.CONNECTING or self.close_requested:
            return False  # closed meanwhile
        if self._restart:
            self._restart = False
            if not self._may_restart():
                self._close(_cannot_restart(self.method))
                return False
            self._to(_State.WAITING)
            self.delay = 0.0
            return False
        verdict = self.policy.judge(
            status,
            headers,
            response,
            reason=reason,
            method="GET" if self.resuming else self.method,
            url=url or str(self.url),
            resuming=self.resuming,
        )
        if verdict.action is Action.OPEN:
            self._to(_State.OPEN)
            if not self.resuming:  # a resume goes where a redirect led
                self.resume_url = (url or str(self.url)) if redirected else ""
            self.opens += 1
            self.error = None
            self._queue.insert(0, OPENED)
            logger.info("open: %s (HTTP %d)", self.url, status)
            return True
        if verdict.action is Action.CLOSE:
            logger.info("HTTP 204 from %s: closing", self.url)
            self._close(None)
        elif verdict.action is Action.FAIL or not (
            self.resend or self.resuming or (status in UNPROCESSED and not redirected)
        ):
            # (A request other than GET answered 500, say: it may have run.)
            assert verdict.error is not None
            self._close(verdict.error)
        else:
            assert verdict.error is not None
            self._retry(verdict.error, verdict.retry_after)
        return False

    def receive(self, data: bytes) -> None:
        """Body bytes arrived."""
        if self._state is not _State.OPEN:
            return
        parser = self.parser
        try:
            events = parser.feed(data)
        except EventTooLargeError as exc:
            self._enqueue(list(exc.events))  # a copy: the error keeps its list
            self._fatal = exc
            self._release = True
            return
        if parser.retry is not None:
            self.policy.set_stream_retry(parser.retry)
        if events:
            if not self._delivered and not all(isinstance(e, Comment) for e in events):
                self._delivered = True  # a comment alone is not an event
            self._enqueue(events)  # type: ignore[arg-type]

    def _enqueue(self, items: list[Output]) -> None:
        """Queue items, in order, after those queued.

        The list becomes the queue (reversed in place): feed() hands over a new
        list each time.
        """
        items.reverse()
        if self._queue:  # not drained yet (drivers read only when it is)
            items += self._queue
        self._queue = items

    def _queue_comment(self, text: str) -> None:
        # Called by the parser during feed(): the list it is filling holds the
        # events that came before this comment, so appending keeps the order.
        self.parser._out.append(Comment(text))  # type: ignore[arg-type]  # noqa: SLF001 (our parser's list being filled)

    def end(self) -> None:
        """The server ended the body."""
        if self._state is _State.OPEN and self.close_requested:
            self._release = True  # next() closes
            return
        if self._state is not _State.OPEN or self._restart:
            self.fail(ConnectionLostError("the server ended the stream"))
            return
        self._release = True
        if not self._reconnects():
            logger.info("stream ended: %s (no reconnect)", self.url)
            self._close(None)
            return
        self._retry(ConnectionLostError("the server ended the stream"), None)

    def fail(
        self,
        error: EventSourceError,
        *,
        fatal: bool = False,
        retry_after: float | None = None,
        unsent: bool = False,
    ) -> None:
        """The attempt or the connection failed (a classified cause).

        ``unsent``: the request certainly did not leave (no connection).
        """
        if self._state is _State.OPEN:
            self._release = True
        elif self._state is not _State.CONNECTING:
            return  # closed (the I/O a close interrupted), or no attempt under way
        if self.close_requested:
            return  # the I/O a close interrupted: next() closes
        if self._restart:
            self._restart = False
            if not self._may_restart():
                self._close(_cannot_restart(self.method))
                return
            self._to(_State.WAITING)
            self.delay = 0.0
            logger.info("restart: reconnecting to %s", self.url)
            return
        if fatal or not self._reconnects(unsent=unsent):
            self._close(error)
            return
        self._retry(error, retry_after)

    def released(self) -> None:
        """The driver closed the response: the parser is ready for the next one."""
        self._release = False
        self.parser.close()
        if self.parser.retry is not None:  # a retry field kept back in the last block
            self.policy.set_stream_retry(self.parser.retry)

    def finished(self) -> None:
        """The driver has finished (connection and client closed, callbacks run)."""
        self.ended = True
        logger.info("closed: %s", self.url)
        hook = self.ended_hook
        if hook is not None:
            hook()

    def _reconnects(self, *, unsent: bool = False) -> bool:
        """Whether what just failed or ended is attempted again (see the module docstring).

        A GET always; a request other than GET again only when it was
        ``unsent``; once its head arrived, resumed by GET when the stream gave
        an id.
        """
        if self.policy.reconnect is False:
            return False
        if self.resend:
            return True
        if self._state is _State.CONNECTING and not self.resuming:
            return unsent  # the request's own attempt: it may have run
        if self.resumes and self._stream_gave_id():
            self.resuming = True
            return True
        return False  # no id to resume from: a GET without one opens another stream

    def _may_restart(self) -> bool:
        """Whether a restart reconnects.

        A GET (or ``resend``) always; a request other than GET resumes by GET
        when its stream opened and gave an id; else it is not sent again (it
        may have run): the source ends.
        """
        if self.resend:
            return True
        if self.resumes and self.opens and self._stream_gave_id():
            self.resuming = True
            return True
        return False

    def _stream_gave_id(self) -> bool:
        """The request's stream (or a resume of it) set the last event ID.

        Not only the caller's ``last_event_id=`` (an id of another stream).
        """
        last = self.parser.last_event_id
        return bool(last) and (self.resuming or last != self._given_id)

    def in_doubt(self) -> None:
        """The send of an attempt ended without an answer.

        The caller's cancel, a KeyboardInterrupt: a request other than GET may have
        run, so it is not sent again: the source ends with ConnectionLostError.
        """
        if (
            self._state is _State.CONNECTING
            and not (self.resend or self.resuming)
            and not self.close_requested
        ):
            self._close(
                ConnectionLostError(
                    f"the wait for the answer to {self.method} was cancelled: the request "
                    "may have run, so it is not sent again"
                )
            )

    def _progressed(self) -> bool:
        """This connection delivered an event or moved the last event ID."""
        return self._delivered or self.parser.last_event_id != self._start_id

    def _retry(self, error: EventSourceError, retry_after: float | None) -> None:
        self._to(_State.WAITING)
        self.error = error
        try:
            self.delay = self.policy.next_delay(
                delivered=self._progressed(), polled=not self._delivered, retry_after=retry_after
            )
        except RetriesExhaustedError as exc:
            # One final report: RetriesExhaustedError, the last error as its
            # cause (handing on_error that error too would report the end twice).
            exc.__cause__ = error
            exc.args = (f"{exc.args[0]} to {self.url}; the last: {error}",)
            error.will_retry = False
            error.retry_delay = None
            self._fatal = exc
            return
        error.will_retry = True
        error.retry_delay = self.delay
        self._delivered = False
        last_id = self.parser.last_event_id
        logger.info(
            "%s; reconnecting in %.3g s%s",
            _cause(error, self.url),
            self.delay,
            f" with Last-Event-ID {last_id!r}" if last_id else "",
        )
        self._queue.insert(0, Failure((error,)))
