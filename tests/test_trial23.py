"""Issue 23's new-user trial (a helper with the README alone, three everyday
jobs): the defects it found, first committed as strict xfails."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from eventsource import ConnectionLostError, EventSource, RetriesExhaustedError, ServerSentEvent
from eventsource.testing import SSEServer

from .conftest import consume

pytestmark = pytest.mark.anyio

# Ten events in one block, so one read parses them all: what a source
# delivers then lags behind what its parser saw.
TEN = [b"".join(b"id: %d\ndata: %d\n\n" % (n, n) for n in range(1, 11))]


async def _collect(source: EventSource, mode: str, **kwargs: Any) -> list[ServerSentEvent]:
    if mode == "sync":
        return await anyio.to_thread.run_sync(lambda: source.collect(**kwargs))
    return await source.acollect(**kwargs)


async def test_last_event_id_after_close_is_the_last_delivered(mode: str, stack: str) -> None:
    """A service saves it at shutdown; a notebook pages with it."""
    async with SSEServer(TEN) as server:
        first = EventSource(server.url, http=stack)
        page = await _collect(first, mode, n=3, timeout=5)
        assert [e.id for e in page] == ["1", "2", "3"]
        assert first.last_event_id == "3"
    # Paging: the next source resumes from there (a server whose history
    # knows every id).
    async with SSEServer([{"data": str(n), "id": str(n)} for n in range(1, 11)]) as server:
        second = EventSource(server.url, http=stack, last_event_id=first.last_event_id)
        assert [e.id for e in await _collect(second, mode, n=3, timeout=5)] == ["4", "5", "6"]


async def test_last_event_id_after_break_is_the_last_delivered(mode: str, stack: str) -> None:
    async with SSEServer(TEN) as server:
        source = EventSource(server.url, http=stack)
        outcome = await consume(source, mode, limit=2)
    assert [e.id for e in outcome.events] == ["1", "2"] and source.last_event_id == "2"


async def test_the_error_collect_raises_holds_what_it_collected(mode: str, stack: str) -> None:
    """A POST stream that drops mid-answer: the partial answer is kept."""
    async with SSEServer([{"data": "Hel"}, {"data": "lo"}, {"data": "[DONE]"}]) as server:
        server.drop_mid_event(2)
        source = EventSource(server.url, http=stack, method="POST", json={})
        with pytest.raises(ConnectionLostError) as info:
            await _collect(source, mode, timeout=5, until=lambda e: e.data == "[DONE]")
    assert [e.data for e in info.value.collected] == ["Hel", "lo"]


async def test_retries_exhausted_names_the_url_and_the_last_cause(mode: str) -> None:
    async with SSEServer() as server:
        server.respond_with(503, times=None)
        source = EventSource(
            server.url, max_retries=1, retry=0.01, min_retry_delay=0.01, max_retry_delay=0.02
        )
        with pytest.raises(RetriesExhaustedError) as info:
            await _collect(source, mode, timeout=5)
        url = server.url
    text = str(info.value)
    assert url in text and "503" in text, text


# --- issue 24's breaker: a close() from another thread racing a first iteration -----------------


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_a_close_from_a_thread_racing_the_first_iteration_ends_it(
    anyio_backend: str,
) -> None:
    import socket
    import threading
    import time

    closes: list[int] = []
    with socket.socket() as placeholder:  # nothing is sent: the source is closed first
        placeholder.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{placeholder.getsockname()[1]}/"
    source = EventSource(url, on_close=lambda: (time.sleep(0.3), closes.append(1)))
    closer = threading.Thread(target=source.close)
    closer.start()
    await anyio.sleep(0.05)  # the closing thread is inside on_close now
    with anyio.fail_after(5):
        async for _ in source:
            pass
    await anyio.to_thread.run_sync(closer.join)
    assert closes == [1]
