"""The pytest plugin, registered by installing the package (entry point ``pytest11``).

Fixtures for testing SSE code.

- ``sse_server``: a running :class:`SSEServer`, for any test: async under
  anyio's plugin (``@pytest.mark.anyio``, asyncio or trio) or pytest-asyncio
  (strict mode's ``@pytest.mark.asyncio`` or auto mode), and sync;
- ``sse_server_sync``: the same (the name sync test suites used so far);
- ``sse_mock``: an :class:`SSEMock` on ``sse_mock.url``, for the clients of
  both HTTP stacks (httpx's, and httpx2's when it is installed; a source's
  own client included). Needs respx: the ``testing`` extra.

The server is a real one on 127.0.0.1, so any client reaches it: httpx's,
httpx2's, a source's own.

The fixtures are plain (not ``async def``): the server runs in a background
thread with its own event loop, so no async plugin has to set it up, and its
teardown never depends on which task the plugin runs it in. Its control
methods are thread-safe and ``await server.await_until(...)`` works from the
test's event loop.

The toolkit is imported when a fixture is used, so the plugin costs nothing
to test runs that do not use it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from ._mock import SSEMock
    from ._server import SSEServer

#: What to install for a fixture's optional dependency.
EXTRA = 'pip install -e ".[testing]" in a checkout of eventsource'


@pytest.fixture
def sse_server() -> Iterator[SSEServer]:
    """A running SSEServer (in a background thread), for async and sync tests.

    Yields:
        The server; it stops when the test ends.
    """
    from ._server import SSEServer

    with SSEServer() as server:
        yield server


@pytest.fixture
def sse_server_sync() -> Iterator[SSEServer]:
    """A running SSEServer in a background thread (the same as ``sse_server``).

    Yields:
        The server; it stops when the test ends.
    """
    from ._server import SSEServer

    with SSEServer() as server:
        yield server


@pytest.fixture
def sse_mock() -> Iterator[SSEMock]:
    """An SSEMock intercepting ``sse_mock.url`` on httpx and httpx2 (when installed).

    Script it with ``respond()``. Requests to loopback addresses (an SSEServer)
    pass through. Needs respx (the ``testing`` extra): the test fails, saying
    what to install, without it.

    Yields:
        The mock; it stops intercepting when the test ends.
    """
    require("respx", "sse_mock")
    from ._mock import SSEMock

    with SSEMock() as mock:
        yield mock


def require(module: str, fixture: str) -> None:
    """Fail the test with what to install when ``module`` is missing."""
    try:
        __import__(module)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
        missing = True
    else:
        missing = False
    if missing:  # outside the except: no chained traceback, just the message
        pytest.fail(f"the {fixture} fixture needs {module}: {EXTRA}", pytrace=False)
