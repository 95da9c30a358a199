"""The I/O steps the drivers carry out.

wait, send (following redirects, each Location checked), open a body, read,
release, refuse. Built on ``_httpx``, which holds everything that reaches below
httpx's public API; this module uses that API only.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias

import anyio

from . import _gate
from ._backend import ARMING
from ._body import (
    AsyncBody,
    SyncBody,
    open_async_body,
    open_async_refused,
    open_sync_body,
    open_sync_refused,
)
from ._errors import ConnectionLostError, ResponseError
from ._httpx import Interrupter, aclose_response, close_response, fix_request
from ._request import NO_CREDENTIALS, check_url, same_origin
from ._stack import HTTPX, Response, stack_of

__all__ = ["AsyncReader", "SyncReader"]

logger = logging.getLogger("eventsource")

AnyClient: TypeAlias = Any  # the stack's client (see _request.AnyClient)

_BODY_LIMIT = 64 * 1024  # bytes of a refused response's body kept in its error
_BODY_DEADLINE = 2.0  # seconds that reading them may take


def _redirect(response: Response, client: AnyClient, hops: int, follow: bool) -> Any:
    """The next request of a redirect, checked.

    None when this is no redirect or redirects are not followed (the 3xx is
    then the answer).
    """
    request = response.next_request
    if request is None or not follow:
        return None
    if hops >= client.max_redirects:
        raise ResponseError(f"more than {client.max_redirects} redirects", status_code=None)
    try:
        check_url(request.url, stack=stack_of(request) or HTTPX)
    except ValueError as exc:
        raise ResponseError(f"redirect to an unusable URL: {exc}", status_code=None) from None
    return request


def _hop_auth(first: Any, hop: Any, auth: dict[str, Any]) -> dict[str, Any]:
    """The ``auth=`` of a redirect hop.

    The source's (or else the client's) on the origin of the first request,
    whose credentials they are, so that its flow runs there too (a token
    refreshed on a 401; a chain that comes back gets them back); none on any
    other origin, where httpx and browsers drop credentials (``same_origin``),
    however many hops down.
    """
    return auth if same_origin(first.url, hop.url) else NO_CREDENTIALS


def _keep_body(error: object, response: Response, body: bytes) -> None:
    """Give the error a closed, readable copy of the response with this body."""
    assert isinstance(error, ResponseError)
    headers = type(response.headers)(response.headers)  # (the response's stack's)
    for name in ("content-encoding", "content-length", "transfer-encoding"):
        headers.pop(name, None)  # the body is decoded, and maybe cut
    stack = stack_of(response)
    kind: Any = stack.http.Response if stack is not None else type(response)
    copy: Response = kind(
        response.status_code,
        headers=headers,
        content=body,
        request=response.request,
        extensions={
            "http_version": response.http_version.encode(),
            "reason_phrase": response.reason_phrase.encode(),
        },
    )
    error.response = copy
    error.body = copy.text


def _wants_body(error: object, response: Response) -> bool:
    return isinstance(error, ResponseError) and error.response is response


class AsyncReader:
    """Sends a source's requests and reads its bodies, async.

    The interrupt interface (what "end this step now" means, on every path):
    ``interrupt()``, called in the event loop's thread, ends the wait, send
    or read in progress, and any read of the current attempt that starts
    after it: a wait returns early, a send returns None, a read raises
    ConnectionLostError (or the transport's error for a socket shut down
    under it, which the machine ignores for an interrupted attempt). It never
    touches a connection another request could use. ``begin()`` starts a new
    attempt and forgets the last one's interrupt. A read that the caller
    cancels leaves a body that either resumes where it was (``resumable``:
    the fast read, whose buffers keep what arrives) or is broken: its next
    read raises ConnectionLostError, never a clean end.
    """

    __slots__ = ("_body", "_broken", "_interrupter", "_scope", "hops", "response")

    def __init__(self, wanted: Callable[[], bool] = lambda: True) -> None:
        """A reader with no response yet.

        Args:
            wanted: Tells whether an interrupt is still wanted when it is
                carried out (the machine's ``interrupting``).
        """
        self.response: Response | None = None
        self._body: AsyncBody | None = None
        self._interrupter = Interrupter(wanted)
        self.hops = 0
        self._scope: anyio.CancelScope | None = None
        self._broken = False

    def begin(self) -> None:
        """Called after each attempt's machine.start_attempt()."""
        self._interrupter.begin()
        self.hops = 0  # redirects followed: a head arrived

    def interrupt(self) -> None:
        """End the wait, send or read in progress (call in the loop's thread)."""
        if self._scope is not None:
            self._scope.cancel()
        self._interrupter.fire()

    def interrupt_socket(self) -> None:
        """The part of ``interrupt()`` that is safe from any thread.

        Shut the source's own socket down (a fast read, or a head wait, ends).
        """
        self._interrupter.fire()

    async def wait_until(self, deadline: float) -> None:
        """Sleep until the deadline (anyio's clock), unless interrupted."""
        try:
            with anyio.CancelScope(deadline=deadline) as self._scope:
                await anyio.sleep_forever()
        finally:
            self._scope = None

    def cancelled(self) -> None:
        """The caller cancelled a read: a body that cannot resume is broken."""
        body = self._body
        if body is not None and not body.resumable:
            self._broken = True

    async def send(
        self,
        client: Any,
        request: Any,
        auth: dict[str, Any],
        *,
        gated: bool = False,
        follow_redirects: bool = True,
    ) -> Response | None:
        """Send (following redirects unless told not to).

        None when interrupted. Gated: wait for a turn at the origin's gate
        first (``_gate``).
        """
        response: Response | None = None
        try:
            with anyio.CancelScope() as scope:
                self._scope = scope
                # One turn at the origin's gate for the whole exchange, redirects too.
                gate = await _gate.enter(request.url) if gated else None
                try:
                    hops = 0
                    response = await client.send(
                        request, stream=True, follow_redirects=False, **auth
                    )
                    while True:
                        try:
                            follow = _redirect(response, client, hops, follow_redirects)
                        except BaseException:
                            await aclose_response(response)
                            raise
                        if follow is None:
                            break
                        await aclose_response(response)
                        response = None
                        hops = self.hops = hops + 1
                        response = await client.send(
                            follow,
                            stream=True,
                            follow_redirects=False,
                            **_hop_auth(request, follow, auth),
                        )
                finally:
                    if gate is not None:
                        gate.leave()
        finally:
            self._scope = None
        if scope.cancel_called:
            if response is not None:
                await aclose_response(response)
            return None
        return response

    def open(self, response: Response, read_timeout: float | None) -> None:
        """Start reading this response's body."""
        self.response = response
        body, stream = open_async_body(response, read_timeout)
        self._body = body
        self._interrupter.arm(stream)

    def read(self, read_timeout: float | None) -> Awaitable[bytes | None]:
        """The next bytes; None at the end.

        Raises what the transport raised, TimeoutError after read_timeout,
        ConnectionLostError when interrupted.
        """
        body = self._body
        assert body is not None
        if self._broken:
            return self._broken_read()
        if not body.scoped:
            # A cancel scope per read would cost more than the read and the
            # parsing together. Without one, interrupt() shuts the socket down,
            # and the transport enforces the read timeout. (The body's own
            # coroutine is awaited: a layer fewer to resume at every wake-up.)
            return body.read()
        return self._scoped_read(body, read_timeout)

    async def _broken_read(self) -> bytes | None:
        raise ConnectionLostError("connection lost: a read of this body was cancelled")

    async def _scoped_read(self, body: AsyncBody, read_timeout: float | None) -> bytes | None:
        deadline = anyio.current_time() + read_timeout if read_timeout is not None else math.inf
        try:
            with anyio.CancelScope(deadline=deadline) as scope:
                self._scope = scope
                return await body.read()
        finally:
            self._scope = None
        if self._interrupter.fired:
            raise ConnectionLostError("interrupted")
        raise TimeoutError

    def fix(self, exc: BaseException) -> None:
        if self.response is not None:
            fix_request(exc, self.response)

    async def close_refused(self, response: Response, error: object = None) -> None:
        """Close a response that does not open the stream.

        When it is the error's, read the start of its body into it first (an
        API's JSON error).
        """
        body: AsyncBody | None = None
        try:
            if _wants_body(error, response):
                kept = bytearray()
                body, stream = open_async_refused(response, _BODY_DEADLINE)
                self._interrupter.arm(stream)
                try:
                    # In the reader's scope: interrupt() (a close) ends it at once.
                    with anyio.move_on_after(_BODY_DEADLINE) as self._scope:
                        while len(kept) < _BODY_LIMIT:
                            data = await body.read()
                            if data is None:
                                break
                            kept += data
                except Exception as exc:  # the body is a courtesy: its failure is no error
                    logger.debug("error while reading a refused response's body: %r", exc)
                finally:
                    self._scope = None
                _keep_body(error, response, bytes(kept[:_BODY_LIMIT]))
        finally:  # a cancel too: the connection goes back (or is closed) now
            self._interrupter.disarm()
            await aclose_response(response, body)

    async def release(self) -> None:
        """Close the response (shielded, with a deadline)."""
        self._interrupter.disarm()
        response, self.response = self.response, None
        body, self._body = self._body, None
        self._scope = None
        self._broken = False
        if response is not None:
            await aclose_response(response, body)


class SyncReader:
    """Sends a source's requests and reads its bodies, blocking.

    The interrupt interface of ``AsyncReader``, from any thread (or a signal
    handler: it takes no lock it would wait for): ``interrupt()`` ends the
    wait, and the send or read in progress on a connection that is the
    source's alone (its socket is shut down); a read on a shared HTTP/2
    connection ends with its next frame or read_timeout.
    """

    __slots__ = ("_body", "_interrupter", "_sleeper", "hops", "response")

    def __init__(self, wanted: Callable[[], bool] = lambda: True) -> None:
        """A reader with no response yet.

        Args:
            wanted: Tells whether an interrupt is still wanted when it is
                carried out (the machine's ``interrupting``).
        """
        self.response: Response | None = None
        self._body: SyncBody | None = None
        self._interrupter = Interrupter(wanted)
        self.hops = 0
        # Held while a wait sleeps on it; interrupt() releases it. A lock, not
        # a threading.Event: Event.set() takes a lock that the interrupted
        # thread may hold when a signal handler calls close().
        self._sleeper: threading.Lock | None = None

    def begin(self) -> None:
        """Called after each attempt's machine.start_attempt()."""
        self._interrupter.begin()
        self.hops = 0  # redirects followed: a head arrived

    def interrupt(self) -> None:
        """End the wait, send or read in progress (from any thread)."""
        sleeper = self._sleeper
        if sleeper is not None:
            try:
                sleeper.release()
            except RuntimeError:  # woken already
                pass
        self._interrupter.fire()

    def wait_until(self, deadline: float, interrupted: Callable[[], bool]) -> None:
        """Sleep until the deadline (time.monotonic()), unless interrupted."""
        sleeper = threading.Lock()
        sleeper.acquire()
        self._sleeper = sleeper
        try:
            # Checked before each sleep (a request that came before the
            # sleeper was there) and after each wake-up (one that a stale
            # interrupt caused sleeps on: the acquire took the lock again).
            while not interrupted():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                sleeper.acquire(timeout=left)
        finally:
            self._sleeper = None

    def send(
        self,
        client: Any,
        request: Any,
        auth: dict[str, Any],
        *,
        follow_redirects: bool = True,
    ) -> Response:
        """Send (following redirects unless told not to).

        The stream each request's head is written to arms the interrupter
        (``_backend.ARMING``): a close() from another thread ends the wait for
        the head.
        """
        token = ARMING.set(self._interrupter)
        try:
            hops = 0
            response: Response = client.send(request, stream=True, follow_redirects=False, **auth)
            while True:
                try:
                    follow = _redirect(response, client, hops, follow_redirects)
                except BaseException:
                    self._interrupter.disarm()
                    close_response(response)
                    raise
                if follow is None:
                    return response
                self._interrupter.disarm()
                close_response(response)
                hops = self.hops = hops + 1
                response = client.send(
                    follow, stream=True, follow_redirects=False, **_hop_auth(request, follow, auth)
                )
        finally:
            ARMING.reset(token)

    def open(self, response: Response, read_timeout: float | None) -> None:
        self.response = response
        body, stream = open_sync_body(response, read_timeout)
        self._body = body
        self._interrupter.arm(stream)

    def read(self) -> bytes | None:
        """The next bytes; None at the end."""
        body = self._body
        assert body is not None
        return body.read()

    def fix(self, exc: BaseException) -> None:
        if self.response is not None:
            fix_request(exc, self.response)

    def release(self) -> None:
        # Disarmed first: once closed, the connection may serve another request.
        self._interrupter.disarm()
        response, self.response = self.response, None
        body, self._body = self._body, None
        if response is not None:
            close_response(response, body)

    def close_refused(self, response: Response, error: object = None) -> None:
        """Close a response that does not open the stream.

        When it is the error's, read the start of its body into it first (an
        API's JSON error), for ``_BODY_DEADLINE`` at most.
        """
        body: SyncBody | None = None
        try:
            if _wants_body(error, response):
                kept = bytearray()
                deadline = time.monotonic() + _BODY_DEADLINE
                body, stream = open_sync_refused(response, deadline)
                self._interrupter.arm(stream)
                try:
                    while len(kept) < _BODY_LIMIT:
                        left = deadline - time.monotonic()
                        if left <= 0:
                            break
                        body.timeout = left  # each read ends by the deadline
                        data = body.read()
                        if data is None:
                            break
                        kept += data
                except Exception as exc:  # the body is a courtesy: its failure is no error
                    logger.debug("error while reading a refused response's body: %r", exc)
                _keep_body(error, response, bytes(kept[:_BODY_LIMIT]))
        finally:
            self._interrupter.disarm()
            close_response(response, body)
