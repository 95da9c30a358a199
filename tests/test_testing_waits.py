"""The toolkit's waits end when their condition becomes true, whatever made
it true: a condition on the client's side (events a test collected) is not
a change of the server's state, and must not wait for the timeout (found by
issue 23's new-user trial)."""

from __future__ import annotations

import threading
import time

import anyio
import pytest

from eventsource import EventSource
from eventsource.testing import SSEServer

pytestmark = pytest.mark.usefixtures("loopback_only")


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
@pytest.mark.anyio
async def test_await_until_a_client_side_condition(anyio_backend: str) -> None:
    got: list[str] = []

    async def collect() -> None:  # the client's side: no change on the server
        await anyio.sleep(0.05)
        got.append("a")

    with SSEServer() as server:
        async with anyio.create_task_group() as tg:
            tg.start_soon(collect)
            started = anyio.current_time()
            await server.await_until(lambda: len(got) == 1, timeout=10)
            took = anyio.current_time() - started
    assert took < 1.0, took  # a tenth of the timeout


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
@pytest.mark.anyio
async def test_await_until_events_a_source_received(anyio_backend: str) -> None:
    got: list[str] = []
    with SSEServer(events=[{"data": "a"}]) as server:

        async def read() -> None:
            async with EventSource(server.url) as source:
                async for event in source:
                    got.append(event.data)

        async with anyio.create_task_group() as tg:
            tg.start_soon(read)
            await server.await_until(lambda: len(got) == 1, timeout=10)
            tg.cancel_scope.cancel()
    assert got == ["a"]


def test_wait_until_a_condition_another_thread_sets() -> None:
    flag = threading.Event()
    with SSEServer() as server:
        timer = threading.Timer(0.05, flag.set)
        timer.start()
        started = time.monotonic()
        server.wait_until(flag.is_set, timeout=10)
        took = time.monotonic() - started
        timer.join()
    assert took < 1.0, took


def test_a_tls_server_is_quiet_about_a_client_s_failed_handshake(
    tls: object, caplog: pytest.LogCaptureFixture
) -> None:
    import eventsource

    with SSEServer(tls=tls.server) as server:  # type: ignore[attr-defined]
        source = EventSource(server.url.replace("https://", "http://"), retry=0.05)
        with pytest.raises(eventsource.ConnectError, match="answered with TLS"):
            source.collect(timeout=4)
    assert not [r for r in caplog.records if r.levelname == "ERROR"], caplog.records
