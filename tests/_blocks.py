"""Docs that run: the shared machinery of tests/test_readme.py (README.md)
and tests/test_docs.py (every page under docs/). Every ```python block of a
page is a test case of its own (``PAGE:LINE``).

How a block runs:

- In a fresh namespace seeded with what the docs leave to the reader: ``url``
  (an SSEServer streaming two "chunk" events and a "done" event, then
  answering 204 so that a source that reconnects closes), ``source`` (an
  EventSource on it, not opened), ``app`` (an ASGI app that streams the same
  events, then answers 204), ``chunks`` (bytes of an event stream), ``token``
  (a function returning a token), and ``EventSource``, which the pages import
  once. ``https://example.com/stream`` is replaced by ``url``, and a ``…`` in
  a string (a value for the reader to fill in, as in ``"Bearer …"``) by
  ``token``.
- A block with top-level ``await`` / ``async with`` runs in an event loop, on
  asyncio and on trio (asyncio only when it uses httpx_aiohttp).
- The ``test_*`` functions a block defines are then called, with the fixtures
  they name (``sse_server``, ``sse_server_sync``, ``sse_mock``) made as the
  pytest plugin makes them: ``async def`` ones in an event loop (asyncio and
  trio under ``@pytest.mark.anyio``, asyncio otherwise).
- A block that cannot run says why in a marker: the line before its fence is
  ``<!-- not run: REASON -->``, or its first line is ``# not run: REASON``.
  Such blocks are still compiled (top-level await allowed), so they are at
  least valid Python.

A new block without a marker is run like the others: whoever adds a block
that fails here fixes the block (or gives it a marker with a real reason).
"""

from __future__ import annotations

import ast
import inspect
import re
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest

from eventsource import EventSource, format_event
from eventsource.testing import SSEMock, SSEServer

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_URL = "https://example.com/stream"
# ```python, optionally with attributes (```python title="httpx-sse 0.4.3").
FENCE = re.compile(r"^```python(?:[ \t][^\n]*)?\n(.*?)^```[ \t]*$", re.S | re.M)
MARKER = re.compile(r"<!--\s*not run:\s*(.+?)\s*-->|^#\s*not run:\s*(.+)$")

EVENTS = [
    {"data": {"content": "Hi"}, "event": "chunk", "id": "1", "retry": 10},
    {"data": {"content": " there"}, "event": "chunk", "id": "2"},
    {"data": {}, "event": "done", "id": "3"},
]
CHUNKS = [b'event: chunk\ndata: {"content": "Hi"}\n', b"\nevent: done\ndata: {}\n\n"]


@dataclass(frozen=True)
class Block:
    page: str  # the page's path as test ids show it (README.md, docs/guides/llm.md)
    line: int  # of the first line of code
    code: str
    skip: str | None  # the marker's reason

    @property
    def is_async(self) -> bool:
        try:
            return bool(compile_block(self).co_flags & inspect.CO_COROUTINE)
        except SyntaxError:
            return False  # reported by its test case, not at collection


def page_name(path: Path) -> str:
    """The page as test ids name it: relative to the repository when inside it."""
    try:
        return path.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return path.name


def blocks(path: Path) -> list[Block]:
    """The ```python blocks of one Markdown page, in order."""
    text = path.read_text(encoding="utf-8")
    found = []
    for match in FENCE.finditer(text):
        code = match.group(1)
        before = text[: match.start()].rstrip().rsplit("\n", 1)[-1]
        first = code.split("\n", 1)[0]
        marker = MARKER.search(before) or MARKER.match(first.strip())
        reason = (marker.group(1) or marker.group(2)) if marker else None
        line = text.count("\n", 0, match.start()) + 2
        found.append(Block(page_name(path), line, code, reason))
    return found


def compile_block(block: Block) -> Any:
    code = block.code.replace(EXAMPLE_URL, "{url}")  # a placeholder, set below
    code = code.replace('"{url}"', "url")
    code = re.sub(r'"([^"\n]*)…([^"\n]*)"', r'"\1token\2"', code)
    flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    return compile(code, f"{block.page}:{block.line}", "exec", flags=flags)


def cases(found: list[Block]) -> Iterator[Any]:
    """One pytest case per block and event loop (``backend``; "" for sync)."""
    for block in found:
        backends = ["asyncio", "trio"] if block.is_async or "async def test" in block.code else [""]
        if "httpx_aiohttp" in block.code:
            backends = ["asyncio"]
        for backend in backends:
            marks = [pytest.mark.skip(reason=block.skip)] if block.skip else []
            suffix = f"-{backend}" if backend else ""
            yield pytest.param(block, backend, id=f"{block.page}:{block.line}{suffix}", marks=marks)


# --- what the docs leave to the reader -------------------------------------------------------


def ends_then_204(server: SSEServer, stop: threading.Event) -> None:
    """Once the first request came, answer every later one 204, then end the
    first stream: a source that reconnects closes, whatever it does."""
    try:
        server.wait_until(lambda: server.requests or stop.is_set(), timeout=30)
    except TimeoutError:
        return
    if not stop.is_set():
        server.respond_with(204, times=None)
        server.end()


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An ASGI app: the events on the first request, 204 on later ones."""
    assert scope["type"] == "http"
    first = not app_state["served"]
    app_state["served"] = True
    status = 200 if first else 204
    headers = [(b"content-type", b"text/event-stream")] if first else []
    await send({"type": "http.response.start", "status": status, "headers": headers})
    body = b"".join(format_event(**event) for event in EVENTS) if first else b""
    await send({"type": "http.response.body", "body": body})


app_state = {"served": False}


FIXTURES = {"sse_server": SSEServer, "sse_server_sync": SSEServer, "sse_mock": SSEMock}


def call_test(func: Any, backend: str) -> None:
    """Call a test function a block defined, with the fixtures it names."""
    names = list(inspect.signature(func).parameters)
    unknown = [name for name in names if name not in FIXTURES]
    assert not unknown, f"{func.__name__}: no such fixture here: {unknown}"
    with ExitStack() as stack:
        kwargs = {name: stack.enter_context(FIXTURES[name]()) for name in names}
        if inspect.iscoroutinefunction(func):
            anyio.run(lambda: func(**kwargs), backend=backend or "asyncio")
        else:
            func(**kwargs)


def run_block(block: Block, backend: str) -> None:
    """Run one block (and the tests it defines) against a fresh server."""
    code = compile_block(block)
    app_state["served"] = False
    stop = threading.Event()
    with SSEServer(EVENTS) as server:
        watcher = threading.Thread(target=ends_then_204, args=(server, stop))
        watcher.start()
        namespace: dict[str, Any] = {
            "__name__": "docs",
            "url": server.url,
            "source": EventSource(server.url),
            "app": app,
            "chunks": list(CHUNKS),
            "token": lambda: "token",
            "EventSource": EventSource,
        }
        try:
            if code.co_flags & inspect.CO_COROUTINE:
                anyio.run(lambda: eval(code, namespace), backend=backend or "asyncio")
            else:
                exec(code, namespace)
            tests = [f for name, f in namespace.items() if name.startswith("test_")]
            for func in tests:
                marks = {mark.name for mark in getattr(func, "pytestmark", [])}
                if inspect.iscoroutinefunction(func) and "anyio" not in marks:
                    if backend == "trio":
                        continue  # pytest-asyncio tests run on asyncio only
                call_test(func, backend)
        finally:
            stop.set()
            server._notify()  # wake the watcher if no request came
            watcher.join()
