"""Test code that consumes Server-Sent Events.

A real loopback server with fault injection, mock responses, an ASGI transport
that streams, and a pytest plugin (fixtures ``sse_server``,
``sse_server_sync``, ``sse_mock``).

- :class:`SSEServer`: an SSE server on 127.0.0.1 that a test drives (send,
  drop, stall, answer 503...) and that records every request.
- :func:`sse_response` / :class:`SSEMock`: scripted responses, for unit tests
  with no network at all, on httpx (through respx, which SSEMock needs) and
  httpx2 (``sse_response(http="httpx2")``; SSEMock patches httpcore2's pools,
  as respx patches httpcore's).
- :class:`ASGIStreamTransport`: test a FastAPI / Starlette endpoint in-process,
  endless streams included, from an httpx or an httpx2 client.
- :func:`assert_events`: compare event sequences with a readable diff (a bare
  str is an event type, dict data matches as a subset, :data:`ANY` matches
  anything).
"""

from typing import TYPE_CHECKING as _TYPE_CHECKING

from .._lazy import exports as _exports

if _TYPE_CHECKING:
    from ._asgi import ASGIStreamTransport
    from ._assertions import ANY, assert_events
    from ._events import EventLike
    from ._mock import SSEMock, sse_response
    from ._server import RecordedConnection, RecordedRequest, SSEServer

# Imported on first use (PEP 562), so that the pytest plugin, which pytest
# imports at every start, costs nothing until a fixture is used.
_WHERE = {
    "ANY": "._assertions",
    "ASGIStreamTransport": "._asgi",
    "EventLike": "._events",
    "RecordedConnection": "._server",
    "RecordedRequest": "._server",
    "SSEMock": "._mock",
    "SSEServer": "._server",
    "assert_events": "._assertions",
    "sse_response": "._mock",
}

__all__ = [
    "ANY",
    "ASGIStreamTransport",
    "EventLike",
    "RecordedConnection",
    "RecordedRequest",
    "SSEMock",
    "SSEServer",
    "assert_events",
    "sse_response",
]


__getattr__, __dir__ = _exports(globals(), _WHERE, __all__)
