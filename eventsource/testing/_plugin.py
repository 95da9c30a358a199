"""The pytest plugin, registered by installing the package (entry point
``pytest11``): fixtures for testing SSE code.

- ``sse_server``: an :class:`SSEServer` in the test's event loop (async tests
  run by anyio's pytest plugin: ``@pytest.mark.anyio``);
- ``sse_server_sync``: an :class:`SSEServer` in a background thread, for sync
  tests;
- ``sse_mock``: an :class:`SSEMock` on ``sse_mock.url`` (needs respx).

The toolkit is imported when a fixture is used, so the plugin costs nothing
to test runs that do not use it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from ._mock import SSEMock
    from ._server import SSEServer


@pytest.fixture
async def sse_server() -> AsyncIterator[SSEServer]:
    """A running SSEServer in the test's event loop (asyncio or trio)."""
    from ._server import SSEServer

    async with SSEServer() as server:
        yield server


@pytest.fixture
def sse_server_sync() -> Iterator[SSEServer]:
    """A running SSEServer in a background thread, for sync tests."""
    from ._server import SSEServer

    with SSEServer() as server:
        yield server


@pytest.fixture
def sse_mock() -> Iterator[SSEMock]:
    """An SSEMock intercepting ``sse_mock.url``: script it with ``respond()``."""
    from ._mock import SSEMock

    with SSEMock() as mock:
        yield mock
