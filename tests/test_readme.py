"""Docs that run: every ```python block of README.md is executed here, so an
example can never again be wrong.

How a block runs:

- Each block is a test case of its own (``README.md:LINE``), in a fresh
  namespace seeded with what the README leaves to the reader: ``url`` (an
  SSEServer streaming two "chunk" events and a "done" event, then answering
  204 so that a source that reconnects closes), ``source`` (an EventSource on
  it, not opened), ``app`` (an ASGI app that streams the same events, then
  answers 204), ``chunks`` (bytes of an event stream), ``token`` (a function
  returning a token), and ``EventSource``, which the README imports once.
  ``https://example.com/stream`` is replaced by ``url``, and a ``…`` in a
  string (a value for the reader to fill in, as in ``"Bearer …"``) by
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
import json
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

README = Path(__file__).resolve().parent.parent / "README.md"
EXAMPLE_URL = "https://example.com/stream"
FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)
MARKER = re.compile(r"<!--\s*not run:\s*(.+?)\s*-->|^#\s*not run:\s*(.+)$")

EVENTS = [
    {"data": {"content": "Hi"}, "event": "chunk", "id": "1", "retry": 10},
    {"data": {"content": " there"}, "event": "chunk", "id": "2"},
    {"data": {}, "event": "done", "id": "3"},
]
CHUNKS = [b'event: chunk\ndata: {"content": "Hi"}\n', b"\nevent: done\ndata: {}\n\n"]


@dataclass(frozen=True)
class Block:
    line: int  # of the first line of code
    code: str
    skip: str | None  # the marker's reason

    @property
    def is_async(self) -> bool:
        try:
            return bool(compile_block(self).co_flags & inspect.CO_COROUTINE)
        except SyntaxError:
            return False  # reported by its test case, not at collection


def blocks() -> list[Block]:
    text = README.read_text(encoding="utf-8")
    found = []
    for match in FENCE.finditer(text):
        code = match.group(1)
        before = text[: match.start()].rstrip().rsplit("\n", 1)[-1]
        first = code.split("\n", 1)[0]
        marker = MARKER.search(before) or MARKER.match(first.strip())
        reason = (marker.group(1) or marker.group(2)) if marker else None
        found.append(Block(text.count("\n", 0, match.start()) + 2, code, reason))
    return found


def compile_block(block: Block) -> Any:
    code = block.code.replace(EXAMPLE_URL, "{url}")  # a placeholder, set below
    code = code.replace('"{url}"', "url")
    code = re.sub(r'"([^"\n]*)…([^"\n]*)"', r'"\1token\2"', code)
    flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    return compile(code, f"README.md:{block.line}", "exec", flags=flags)


def cases() -> Iterator[Any]:
    for block in blocks():
        backends = ["asyncio", "trio"] if block.is_async or "async def test" in block.code else [""]
        if "httpx_aiohttp" in block.code:
            backends = ["asyncio"]
        for backend in backends:
            marks = [pytest.mark.skip(reason=block.skip)] if block.skip else []
            suffix = f"-{backend}" if backend else ""
            yield pytest.param(block, backend, id=f"README.md:{block.line}{suffix}", marks=marks)


# --- what the README leaves to the reader ---------------------------------------------------


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


@pytest.mark.parametrize(("block", "backend"), list(cases()))
def test_readme_block(block: Block, backend: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = compile_block(block)
    app_state["served"] = False
    stop = threading.Event()
    with SSEServer(EVENTS) as server:
        watcher = threading.Thread(target=ends_then_204, args=(server, stop))
        watcher.start()
        namespace: dict[str, Any] = {
            "__name__": "readme",
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


def test_every_python_block_is_found() -> None:
    found = blocks()
    assert len(found) >= 10
    assert all(compile_block(block) for block in found)  # marked ones are valid Python too
    # the README's first lines, the set-up commands, are a shell block, not run
    assert README.read_text(encoding="utf-8").startswith("# eventsource\n\n```sh\n")


def test_a_marker_skips_a_block(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(
        "<!-- not run: needs a real API -->\n```python\nboom()\n```\n\n"
        "```python\n# not run: a sketch\nboom()\n```\n\n```python\nx = 1\n```\n",
        encoding="utf-8",
    )
    monkeypatch.setattr(f"{__name__}.README", readme)
    assert [(b.line, b.skip) for b in blocks()] == [
        (3, "needs a real API"),
        (7, "a sketch"),
        (12, None),
    ]
    assert json.dumps([b.code for b in blocks()][2]) == '"x = 1\\n"'
