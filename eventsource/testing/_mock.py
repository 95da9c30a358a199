"""Mock responses for code that uses EventSource: no network at all.

httpx's requests are intercepted by respx (which patches httpcore's
connection pools). respx never sees httpx2's (httpcore2's pools), so an
SSEMock for httpx2 patches those pools the same way (``_patch``). A scripted
response is kept stack-neutral (``_Reply``) and built for the stack of the
request it answers.
"""

from __future__ import annotations

import json as jsonlib
import threading
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, get_args, overload

import httpx

from .._stack import (
    HTTPX,
    Httpx2Response,
    Request,
    Response,
    Stack,
    StackName,
    stack_named,
    stack_of,
)
from ._events import EventLike, encode_event
from ._patch import pool_patch

if TYPE_CHECKING:
    import respx

__all__ = ["SSEMock", "sse_response"]


def encode_events(events: Iterable[EventLike]) -> bytes:
    """The wire format of a sequence of events."""
    return b"".join(map(encode_event, events))


class _Chunks:
    """A body for sync and async readers alike, optionally ending in a drop.

    ``error``: the ReadError of the layer that reads it.
    """

    def __init__(self, chunks: list[bytes], drop: bool, error: type[Exception]) -> None:
        self._chunks = chunks
        self._drop = drop
        self._error = error

    def __iter__(self) -> Iterator[bytes]:
        yield from self._chunks
        if self._drop:
            raise self._error("connection dropped (sse_response(drop=True))")

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks:
            yield chunk
        if self._drop:
            raise self._error("connection dropped (sse_response(drop=True))")

    def close(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


_bodies: dict[str, type[_Chunks]] = {}


def _body_class(stack: Stack) -> type[_Chunks]:
    """``_Chunks`` as the stack's Sync- and AsyncByteStream, made once.

    httpx and httpx2 each check that a response's stream is theirs.
    """
    kind = _bodies.get(stack.name)
    if kind is None:
        bases = (_Chunks, stack.http.SyncByteStream, stack.http.AsyncByteStream)
        kind = _bodies[stack.name] = type("SSEBody", bases, {"__module__": __name__})
    return kind


class _Reply:
    """A scripted response for any stack: status, headers, body, drop."""

    def __init__(
        self, status: int, headers: dict[str, str], chunks: list[bytes], drop: bool
    ) -> None:
        self.status = status
        self.headers = headers
        self.chunks = chunks
        self.drop = drop

    def response(self, stack: Stack) -> Any:
        """The stack's Response (what respx, a MockTransport, a test wants)."""
        body = _body_class(stack)(self.chunks, self.drop, stack.http.ReadError)
        return stack.http.Response(self.status, headers=self.headers, stream=body)

    def core_response(self, stack: Stack) -> Any:
        """The stack's core Response (what a connection pool returns)."""
        return stack.core.module.Response(
            self.status,
            headers=[(k.encode("latin-1"), v.encode("latin-1")) for k, v in self.headers.items()],
            content=_Chunks(self.chunks, self.drop, stack.core.read_error),
            extensions={"http_version": b"HTTP/1.1"},
        )


_NO_BODY: Any = object()


def plain_body(json: Any = _NO_BODY, text: str | None = None) -> tuple[bytes, str] | None:
    """The body and content type of ``json=`` (any JSON value) or ``text=``.

    The vocabulary of ``respond_with()``, ``respond()`` and ``sse_response()``;
    None when neither is given. ValueError for both.
    """
    if json is not _NO_BODY and text is not None:
        raise ValueError("give json= or text=, not both")
    if json is not _NO_BODY:
        return jsonlib.dumps(json).encode(), "application/json"
    if text is not None:
        return text.encode(), "text/plain; charset=utf-8"
    return None


def _plain_reply(
    status: int, headers: Mapping[str, str] | None, body: tuple[bytes, str] | None
) -> _Reply:
    all_headers = {} if body is None else {"content-type": body[1]}
    all_headers.update({k.lower(): v for k, v in (headers or {}).items()})
    return _Reply(status, all_headers, [] if body is None else [body[0]], False)


def _sse_reply(
    events: Iterable[EventLike],
    status: int,
    headers: Mapping[str, str] | None,
    chunk_size: int | None,
    drop: bool,
) -> _Reply:
    if chunk_size is not None and chunk_size < 1:
        raise ValueError("chunk_size must be at least 1")
    events = list(events)
    if chunk_size is None:
        chunks = [encode_events([event]) for event in events]
    else:
        body = encode_events(events)
        chunks = [body[i : i + chunk_size] for i in range(0, len(body), chunk_size)]
    all_headers = {"content-type": "text/event-stream", "cache-control": "no-cache"}
    if headers:
        all_headers.update({k.lower(): v for k, v in headers.items()})
    return _Reply(status, all_headers, chunks, drop)


@overload
def sse_response(
    events: Iterable[EventLike] = (),
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    chunk_size: int | None = None,
    drop: bool = False,
    http: Literal["httpx"] = "httpx",
    json: Any = ...,
    text: str | None = None,
) -> httpx.Response: ...


@overload
def sse_response(
    events: Iterable[EventLike] = (),
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    chunk_size: int | None = None,
    drop: bool = False,
    http: Literal["httpx2"],
    json: Any = ...,
    text: str | None = None,
) -> Httpx2Response: ...


def sse_response(
    events: Iterable[EventLike] = (),
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    chunk_size: int | None = None,
    drop: bool = False,
    http: StackName = "httpx",
    json: Any = _NO_BODY,
    text: str | None = None,
) -> Response:
    """A response that streams ``events`` in the SSE wire format.

    For a ``MockTransport`` handler, a respx route, or any code that takes a
    response: ``httpx.MockTransport(lambda request: sse_response(["hi"]))``,
    ``httpx2.MockTransport(lambda request: sse_response(["hi"], http="httpx2"))``.

    Args:
        events: The events: ``ServerSentEvent``, dict of fields, str (data)
            or bytes (sent as they are).
        status: The status code.
        headers: Extra headers (``content-type: text/event-stream`` and
            ``cache-control: no-cache`` are set unless given).
        chunk_size: Split the body into reads of that many bytes (default:
            one read per event).
        drop: End the body with the stack's ``ReadError``, as a dropped
            connection does, instead of a clean end.
        http: The stack: ``"httpx"`` (an ``httpx.Response``) or ``"httpx2"``
            (an ``httpx2.Response``; needs httpx2).
        json: Instead of events, this JSON value as the body
            (``application/json``): an API's error, say.
        text: Instead of events, this text as the body (``text/plain``).

    Returns:
        An ``httpx.Response`` or ``httpx2.Response`` with a streaming body.

    Raises:
        ValueError: ``events`` with ``json`` or ``text``, or an event
            ``format_event()`` refuses.
        ImportError: ``http="httpx2"`` without httpx2 installed.
    """
    events = list(events)
    plain = plain_body(json, text)
    if plain is not None:
        if events:
            raise ValueError("give events, or json= / text=, not both")
        reply = _plain_reply(status, headers, plain)
    else:
        reply = _sse_reply(events, status, headers, chunk_size, drop)
    response: Response = reply.response(stack_named(http))
    return response


class SSEMock:
    """A scripted SSE endpoint: each request to ``url`` takes the next response.

    ::

        with SSEMock("https://api.test/stream") as mock:
            mock.respond([{"data": "a", "id": "1"}, {"data": "b", "id": "2"}], drop=True)
            mock.respond(status=503, headers={"Retry-After": "0"})
            mock.respond([{"data": "c", "id": "3"}])
            ...  # code under test
        assert mock.requests[2].headers["Last-Event-ID"] == "2"

    It intercepts the requests of any client of a stack, a source's own
    included: httpx's through respx, httpx2's by patching httpcore2's
    connection pools as respx patches httpcore's (respx does not see
    httpx2). Once the script is used up, every further request gets 204 No
    Content, which closes an EventSource cleanly. Any method is accepted.

    Requests to loopback hosts (127.0.0.1, ::1, localhost), an
    :class:`SSEServer` for one, go to the network as they are, so both work in
    one test. Other requests fail with an ``AssertionError`` ("not mocked"),
    as respx fails them.

    Args:
        url: The endpoint answered, matched as respx's ``url=`` matches: the
            scheme and host, and the port (other than the scheme's default),
            path and query (as parameters, in any order) when given.
        passthrough_loopback: Let loopback requests through; False mocks
            them too (``url`` may then be a loopback one).
        http: The stack intercepted: ``"httpx"`` (needs respx), ``"httpx2"``
            (needs httpx2, not respx), or None (the default): httpx, and
            httpx2 too when it is installed.

    Attributes:
        requests: Every request answered, in order: ``httpx.Request`` or
            ``httpx2.Request`` (the client's stack), body read.
    """

    LOOPBACK = ("127.0.0.1", "::1", "localhost")
    """The hosts passed through by default."""

    def __init__(
        self,
        url: str = "http://sse.test/stream",
        *,
        passthrough_loopback: bool = True,
        http: StackName | None = None,
    ) -> None:
        self.url = url
        self.passthrough_loopback = passthrough_loopback
        self.http = http
        self.requests: list[Request] = []
        self._script: list[_Reply] = []
        self._lock = threading.Lock()
        self._router: respx.MockRouter | None = None
        self._patched: list[Stack] = []

    def respond(
        self,
        events: Iterable[EventLike] = (),
        *,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        chunk_size: int | None = None,
        drop: bool = False,
        json: Any = _NO_BODY,
        text: str | None = None,
    ) -> SSEMock:
        """Add the next response; chainable.

        Args:
            events: The events streamed (see :func:`sse_response`).
            status: The status code; one other than 200 without ``events``
                is a plain response (no body, or ``json`` / ``text``).
            headers: Extra headers.
            chunk_size: Split the body into reads of that many bytes.
            drop: End the body with a network error instead of a clean end.
            json: Instead of events, this JSON value as the body
                (``application/json``): ``respond(status=401, json={...})``.
            text: Instead of events, this text as the body (``text/plain``).

        Returns:
            This mock.

        Raises:
            ValueError: ``events`` with ``json`` or ``text``, or an event
                ``format_event()`` refuses.
        """
        events = list(events)
        plain = plain_body(json, text)
        if plain is not None and events:
            raise ValueError("give events, or json= / text=, not both")
        if plain is not None or (status != 200 and not events):
            reply = _plain_reply(status, headers, plain)
        else:
            reply = _sse_reply(events, status, headers, chunk_size, drop)
        with self._lock:
            self._script.append(reply)
        return self

    def _next(self, request: Request) -> _Reply:
        with self._lock:
            self.requests.append(request)
            if self._script:
                return self._script.pop(0)
        return _Reply(204, {}, [], False)

    def _answer(self, request: Any) -> Any:
        return self._next(request).response(HTTPX)

    def _answer_core(self, request: Any) -> Any:
        stack = stack_of(request)
        assert stack is not None
        return self._next(request).core_response(stack)

    def _stacks(self) -> list[Stack]:
        if self.http is not None:
            return [stack_named(self.http)]
        stacks = []
        for name in get_args(StackName):  # every stack there is
            try:
                stacks.append(stack_named(name))
            except ImportError:
                pass  # not installed: nothing of it to mock
        return stacks

    def start(self) -> SSEMock:
        """Start intercepting (``with`` does it for you).

        Returns:
            This mock.

        Raises:
            ModuleNotFoundError: httpx is intercepted and respx is not
                installed (the ``testing`` extra).
        """
        stacks = self._stacks()
        if HTTPX in stacks:
            self._start_respx()
        passthrough = self.LOOPBACK if self.passthrough_loopback else ()
        for stack in stacks:
            if stack is not HTTPX:
                pool_patch(stack).add(self, self.url, passthrough, self._answer_core)
                self._patched.append(stack)
        return self

    def _start_respx(self) -> None:
        try:
            import respx  # optional: imported only when a mock is used
        except ModuleNotFoundError as exc:
            if exc.name != "respx":
                raise
            raise ModuleNotFoundError(
                'SSEMock needs respx: pip install -e ".[testing]" in a checkout of eventsource',
                name="respx",
            ) from None

        self._router = respx.mock(assert_all_called=False)
        self._router.start()
        self._router.route(url=self.url).mock(side_effect=self._answer)
        if self.passthrough_loopback:
            self._router.route(host__in=self.LOOPBACK).pass_through()

    def stop(self) -> None:
        """Stop intercepting (``with`` does it for you)."""
        if self._router is not None:
            self._router.stop()
            self._router = None
        while self._patched:
            pool_patch(self._patched.pop()).remove(self)

    def __enter__(self) -> SSEMock:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
