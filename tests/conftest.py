"""Shared test fixtures: anyio backends, the HTTP stack (``stack``), a callback
recorder, a driver that consumes an EventSource sync or async, scripted mock
bodies, and for the tests of real connections: no proxy from the environment
(``loopback_only``), a spy on the bodies a source opens (``bodies``) and a TLS
test CA (``tls``)."""

from __future__ import annotations

import importlib
import importlib.util
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.to_thread
import httpx
import pytest

from eventsource import EventSource, EventSourceError, ServerSentEvent

from ._fastpath import TLS, Opened, clear_proxies, make_tls, spy_bodies

pytest_plugins = ["pytester"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # overridden: every async test runs on asyncio and trio (below)


@pytest.fixture
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy from the environment: every request goes to 127.0.0.1. A
    module whose servers are all on loopback takes it for every test:
    ``pytestmark = pytest.mark.usefixtures("loopback_only")``."""
    clear_proxies(monkeypatch)


@pytest.fixture
def bodies(monkeypatch: pytest.MonkeyPatch) -> Opened:
    """The kind of body each response of the test opened (tests/_fastpath.py)."""
    return spy_bodies(monkeypatch)


@pytest.fixture(scope="module")
def tls() -> TLS:
    """A trustme CA's server and client contexts for 127.0.0.1."""
    return make_tls()


class Recorder:
    """Callbacks that log what they saw, with the source's state at the time."""

    def __init__(self) -> None:
        self.log: list[tuple[Any, ...]] = []
        self.source: EventSource | None = None

    def kwargs(self) -> dict[str, Any]:
        return {
            "on_open": self.on_open,
            "on_message": self.on_message,
            "on_error": self.on_error,
            "on_close": self.on_close,
        }

    def _state(self) -> str:
        return self.source.ready_state.name if self.source is not None else "?"

    def on_open(self) -> None:
        self.log.append(("open", self._state()))

    def on_message(self, event: ServerSentEvent) -> None:
        self.log.append(("message", event.data))

    def on_error(self, error: EventSourceError) -> None:
        self.log.append(("error", type(error).__name__))

    def on_close(self) -> None:
        self.log.append(("close", self._state()))

    def kinds(self) -> list[str]:
        return [entry[0] for entry in self.log]


@dataclass
class Outcome:
    events: list[ServerSentEvent] = field(default_factory=list)
    error: BaseException | None = None


WATCHDOG = 20.0  # seconds: a test's source that runs longer is hung


def _consume_sync(source: EventSource, limit: int | None) -> Outcome:
    outcome = Outcome()
    try:
        with source:
            for event in source:
                outcome.events.append(event)
                if limit is not None and len(outcome.events) >= limit:
                    break
    except EventSourceError as exc:
        outcome.error = exc
    return outcome


async def consume(source: EventSource, mode: str, limit: int | None = None) -> Outcome:
    """Iterate the source to its end (or `limit` events) in the given mode.

    A watchdog closes a source that is still running after WATCHDOG seconds
    and fails the test, so a hang cannot stall the whole run."""
    if mode == "sync":
        fired = threading.Event()

        def bark() -> None:
            fired.set()
            source.close()

        watchdog = threading.Timer(WATCHDOG, bark)
        watchdog.start()
        try:
            outcome = await anyio.to_thread.run_sync(_consume_sync, source, limit)
        finally:
            watchdog.cancel()
        if fired.is_set():
            pytest.fail(f"the source was still running after {WATCHDOG} s")
        return outcome
    outcome = Outcome()
    try:
        with anyio.fail_after(WATCHDOG):
            async with source:
                async for event in source:
                    outcome.events.append(event)
                    if limit is not None and len(outcome.events) >= limit:
                        break
    except EventSourceError as exc:
        outcome.error = exc
    return outcome


# --- the HTTP stack (issue 22) -----------------------------------------------------------

HAS_HTTPX2 = importlib.util.find_spec("httpx2") is not None
NO_HTTPX2 = "httpx2 is not installed (the httpx2 extra)"

#: `stack` params: a test that takes `stack` runs on httpx and on httpx2
STACKS = [
    pytest.param("httpx", id="httpx"),
    pytest.param("httpx2", id="httpx2", marks=pytest.mark.skipif(not HAS_HTTPX2, reason=NO_HTTPX2)),
]


def http_of(stack: str) -> Any:
    """The stack's client module: httpx or httpx2 (the same public names)."""
    return importlib.import_module(stack)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # A test that takes `stack` runs on both HTTP stacks: its source's own
    # client made on it (EventSource(..., http=stack)), or a client of the
    # user's from it (client_for(mode, stack)).
    if "stack" in metafunc.fixturenames:
        metafunc.parametrize("stack", STACKS)
    # A test that takes `mode` runs async on asyncio and on trio, and sync
    # (from a worker thread, under the asyncio backend).
    if "mode" in metafunc.fixturenames:
        metafunc.parametrize(
            ("mode", "anyio_backend"),
            [("async", "asyncio"), ("async", "trio"), ("sync", "asyncio")],
            ids=["asyncio", "trio", "sync"],
        )
    elif "anyio_backend" in metafunc.fixturenames:
        # A test about one backend's internals names it with its own
        # @pytest.mark.parametrize("anyio_backend", [...]).
        marks = metafunc.definition.iter_markers("parametrize")
        if not any("anyio_backend" in str(mark.args[0]) for mark in marks):
            metafunc.parametrize("anyio_backend", ["asyncio", "trio"])


def client_for(mode: str, stack: str = "httpx", **kwargs: Any) -> Any:
    """A client of the user's own on the stack (httpx or httpx2), sync or async."""
    http = http_of(stack)
    return http.Client(**kwargs) if mode == "sync" else http.AsyncClient(**kwargs)


class ScriptedBody(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A response body that yields chunks and then, optionally, fails like a
    dropped connection."""

    def __init__(self, *chunks: bytes, fail: bool = False) -> None:
        self.chunks = chunks
        self.fail = fail

    def __iter__(self) -> Iterator[bytes]:
        yield from self.chunks
        if self.fail:
            raise httpx.ReadError("connection reset")

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk
        if self.fail:
            raise httpx.ReadError("connection reset")


def sse(*chunks: bytes, status: int = 200, fail: bool = False, **headers: str) -> httpx.Response:
    """An SSE response whose body is the given chunks."""
    all_headers = {"content-type": "text/event-stream", **headers}
    return httpx.Response(status, headers=all_headers, stream=ScriptedBody(*chunks, fail=fail))
