"""Mock responses for code that uses EventSource: no network at all."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING

import httpx

from ._events import EventLike, encode_event

if TYPE_CHECKING:
    import respx

__all__ = ["SSEMock", "sse_response"]


def encode_events(events: Iterable[EventLike]) -> bytes:
    """The wire format of a sequence of events."""
    return b"".join(map(encode_event, events))


class _Body(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A body for sync and async clients alike, optionally ending in a drop."""

    def __init__(self, chunks: list[bytes], drop: bool) -> None:
        self._chunks = chunks
        self._drop = drop

    def __iter__(self) -> Iterator[bytes]:
        yield from self._chunks
        if self._drop:
            raise httpx.ReadError("connection dropped (sse_response(drop=True))")

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks:
            yield chunk
        if self._drop:
            raise httpx.ReadError("connection dropped (sse_response(drop=True))")


def sse_response(
    events: Iterable[EventLike] = (),
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    chunk_size: int | None = None,
    drop: bool = False,
) -> httpx.Response:
    """An ``httpx.Response`` that streams ``events`` in the SSE wire format.

    ``chunk_size`` splits the body into reads of that many bytes (default: one
    read per event); ``drop=True`` ends the body with a network error instead
    of a clean end, as a dropped connection does.
    """
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
    return httpx.Response(status, headers=all_headers, stream=_Body(chunks, drop))


class SSEMock:
    """A scripted SSE endpoint on respx: each request takes the next response.

    ::

        with SSEMock("https://api.test/stream") as mock:
            mock.respond([{"data": "a", "id": "1"}, {"data": "b", "id": "2"}], drop=True)
            mock.respond(status=503, headers={"Retry-After": "0"})
            mock.respond([{"data": "c", "id": "3"}])
            ...  # code under test
        assert mock.requests[2].headers["Last-Event-ID"] == "2"

    Once the script is used up, every further request gets 204 No Content,
    which closes an EventSource cleanly. Any method is accepted.

    Requests to loopback hosts (127.0.0.1, ::1, localhost), an
    :class:`SSEServer` for one, go to the network as they are, so both work in
    one test; ``passthrough_loopback=False`` mocks them too (respx then fails
    an unmatched request). Other unmatched requests fail as respx does.
    """

    #: The hosts passed through by default.
    LOOPBACK = ("127.0.0.1", "::1", "localhost")

    def __init__(
        self, url: str = "http://sse.test/stream", *, passthrough_loopback: bool = True
    ) -> None:
        self.url = url
        self.passthrough_loopback = passthrough_loopback
        self.requests: list[httpx.Request] = []
        self._script: list[httpx.Response] = []
        self._router: respx.MockRouter | None = None

    def respond(
        self,
        events: Iterable[EventLike] = (),
        *,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        chunk_size: int | None = None,
        drop: bool = False,
    ) -> SSEMock:
        """Add the next response (see :func:`sse_response`); chainable."""
        if status != 200 and not events:
            response = httpx.Response(status, headers=dict(headers or {}))
        else:
            response = sse_response(
                events, status=status, headers=headers, chunk_size=chunk_size, drop=drop
            )
        self._script.append(response)
        return self

    def _answer(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self._script:
            return self._script.pop(0)
        return httpx.Response(204)

    def start(self) -> SSEMock:
        """Start intercepting (``with`` does it for you)."""
        try:
            import respx  # optional: imported only when a mock is used
        except ModuleNotFoundError as exc:
            if exc.name != "respx":
                raise
            raise ModuleNotFoundError(
                'SSEMock needs respx: pip install "eventsource-client[testing]"', name="respx"
            ) from None

        self._router = respx.mock(assert_all_called=False)
        self._router.start()
        self._router.route(url=self.url).mock(side_effect=self._answer)
        if self.passthrough_loopback:
            self._router.route(host__in=self.LOOPBACK).pass_through()
        return self

    def stop(self) -> None:
        if self._router is not None:
            self._router.stop()
            self._router = None

    def __enter__(self) -> SSEMock:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
