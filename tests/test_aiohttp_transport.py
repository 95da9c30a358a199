"""EventSource over httpx-aiohttp's client (the `aiohttp` extra), against a
real server on 127.0.0.1. aiohttp runs on asyncio only, so these tests drive
asyncio themselves; the server runs in its own thread."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from eventsource import EventSource, ReadTimeoutError, ServerSentEvent
from eventsource.testing import SSEServer

httpx_aiohttp = pytest.importorskip("httpx_aiohttp")

E = ServerSentEvent
WAIT = 10.0


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, WAIT))


def test_events_and_resume_after_a_drop() -> None:
    history = [{"data": f"n{i}", "id": str(i)} for i in range(1, 7)]
    with SSEServer(history) as server:
        server.drop_after(3)  # the first connection ends after three events

        async def main() -> list[ServerSentEvent]:
            async with httpx_aiohttp.HttpxAiohttpClient() as client:
                received = []
                async with EventSource(server.url, client=client, retry=0.001) as source:
                    async for event in source:
                        received.append(event)
                        if len(received) == 6:
                            break
                return received

        events = run(main())
        assert [e.data for e in events] == [f"n{i}" for i in range(1, 7)]
        assert server.requests[1].last_event_id == "3"


def test_a_stalled_stream_is_dropped_after_read_timeout() -> None:
    errors: list[Any] = []
    with SSEServer([{"data": "before", "id": "1"}, {"data": "after", "id": "2"}]) as server:
        server.stall_after(1)

        async def main() -> list[str]:
            async with httpx_aiohttp.HttpxAiohttpClient() as client:
                source = EventSource(
                    server.url, client=client, retry=0.001, read_timeout=0.3, on_error=errors.append
                )
                async with source:
                    return [(await source.__anext__()).data, (await source.__anext__()).data]

        assert run(main()) == ["before", "after"]
    assert len(errors) == 1 and isinstance(errors[0], ReadTimeoutError)


def test_close_from_another_task_and_thread_while_blocked_reading() -> None:
    with SSEServer([{"data": "first", "id": "1"}]) as server:

        async def main(from_thread: bool) -> list[str]:
            closed = asyncio.Event()
            async with httpx_aiohttp.HttpxAiohttpClient() as client:
                source = EventSource(server.url, client=client, on_close=closed.set)
                received = []
                async for event in source:  # the second read waits until the close
                    received.append(event.data)
                    if from_thread:
                        threading.Timer(0.05, source.close).start()
                    else:
                        asyncio.get_running_loop().call_later(0.05, source.close)
                await closed.wait()
                return received

        assert run(main(from_thread=False)) == ["first"]
        assert run(main(from_thread=True)) == ["first"]
        server.wait_until(lambda: all(c.closed_by_client for c in server.connections))
        assert len(server.connections) == 2
