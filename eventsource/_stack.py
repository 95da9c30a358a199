"""The HTTP stacks a source runs on.

httpx on httpcore (the declared dependency) and httpx2 on httpcore2 (the
``httpx2`` extra; openai, anthropic, pydantic-ai and mcp use it). httpx2
continues httpx 0.x's API under another name, so one ``Stack`` object holds a
stack's module and its core, and the transport layer (``_request``, ``_io``,
``_httpx``, ``_body``, ``_transport``) takes every stack-specific name from it.
The machine, the drivers and the public API know a stack only as the client a
source was given or the one it makes (``http=``).

This module and ``_httpx`` are the only ones that name httpx2 or a core;
httpx2 is imported when first asked for (a client of its own, ``http=``).
"""

from __future__ import annotations

import importlib
import sys
import threading
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import httpx

from ._httpx import HTTPCORE, Core, core_named

if TYPE_CHECKING:
    import httpx2

    Response: TypeAlias = httpx.Response | httpx2.Response
    Request: TypeAlias = httpx.Request | httpx2.Request
    URL: TypeAlias = httpx.URL | httpx2.URL
    Client: TypeAlias = httpx.Client | httpx2.Client
    AsyncClient: TypeAlias = httpx.AsyncClient | httpx2.AsyncClient
    Auth: TypeAlias = httpx.Auth | httpx2.Auth
    Timeout: TypeAlias = httpx.Timeout | httpx2.Timeout
    Httpx2Response: TypeAlias = httpx2.Response  # (for overloads keyed on http=)
else:
    Response = Request = URL = Client = AsyncClient = Auth = Timeout = Httpx2Response = Any

__all__ = [
    "HTTPX",
    "AsyncClient",
    "Httpx2Response",
    "Auth",
    "Client",
    "Request",
    "Response",
    "Stack",
    "StackName",
    "Timeout",
    "URL",
    "loaded_stacks",
    "in_stack",
    "stack_named",
    "stack_of",
]

StackName: TypeAlias = Literal["httpx", "httpx2"]


class Stack:
    """One HTTP stack.

    ``http`` is its client module (httpx or httpx2; the same public names),
    ``core`` its core's names.
    """

    __slots__ = ("core", "http", "lost", "name", "timeouts")

    def __init__(self, http: Any, core: Core) -> None:
        self.http = http
        self.core = core
        self.name: str = http.__name__
        # What a request or a read of this stack raises when it timed out,
        # and when the connection broke (or never came).
        self.timeouts: tuple[type[Exception], ...] = (http.ReadTimeout, core.read_timeout)
        self.lost: tuple[type[Exception], ...] = (
            http.HTTPError,
            http.StreamError,
            *core.io_errors,
            core.protocol_error,
        )

    def __repr__(self) -> str:
        return f"Stack({self.name} on {self.core.name})"


HTTPX = Stack(httpx, HTTPCORE)
_stacks: dict[str, Stack] = {"httpx": HTTPX}
_lock = threading.Lock()


def stack_named(name: str) -> Stack:
    """The stack of that name, imported on first use.

    ImportError saying what to install when httpx2 is not installed.
    """
    stack = _stacks.get(name)
    if stack is not None:
        return stack
    if name != "httpx2":
        raise ValueError(f"http= must be 'httpx' or 'httpx2', not {name!r}")
    with _lock:  # one Stack a module: it is compared by identity
        stack = _stacks.get(name)
        if stack is not None:
            return stack
        try:
            module = importlib.import_module("httpx2")
            core = core_named("httpcore2")
        except ImportError as exc:
            raise ImportError(
                "http='httpx2' needs httpx2: "
                "pip install -e '.[httpx2]' in a checkout of eventsource"
            ) from exc
        # httpx2's alias_httpx() makes "httpx" httpx2 itself: one stack.
        stack = _stacks[name] = HTTPX if module is httpx else Stack(module, core)
    return stack


def loaded_stacks() -> tuple[Stack, ...]:
    """The stacks in use so far (an error of any of them may reach a source)."""
    if "httpx2" not in _stacks and sys.modules.get("httpx2") is not None:
        try:
            stack_named("httpx2")  # imported by the application: its errors may come
        except ImportError:  # (httpx2 without its httpcore2: not a stack to run on)
            pass
    return tuple(_stacks.values())


def in_stack(stack: Stack, *, timeout: Any, auth: Any) -> tuple[Any, Any]:
    """``timeout=`` and ``auth=`` for a source on this stack.

    Another stack's ``Timeout`` converted field by field, another stack's
    ``Auth`` refused (TypeError: its flow is written against that stack's
    requests).
    """
    for other in loaded_stacks():
        if other.http is stack.http:
            continue
        if isinstance(timeout, other.http.Timeout):
            timeout = stack.http.Timeout(
                connect=timeout.connect, read=timeout.read, write=timeout.write, pool=timeout.pool
            )
        if isinstance(auth, other.http.Auth) and not isinstance(auth, stack.http.Auth):
            raise TypeError(
                f"auth= is {other.name}'s {type(auth).__name__}, but the source runs on "
                f"{stack.name}: use {stack.name}'s auth classes (or a (user, password) tuple)"
            )
    return timeout, auth


def stack_of(thing: object) -> Stack | None:
    """The stack of an httpx or httpx2 object; None for anything else.

    A client, sync or async, a response, a request; a subclass of one, such as
    httpx-aiohttp's client.
    """
    root = type(thing).__module__.partition(".")[0]
    if root in ("httpx", "httpx2"):
        return stack_named(root)  # (imported already: the object is its)
    for stack in loaded_stacks():
        http = stack.http
        if isinstance(thing, (http.Client, http.AsyncClient, http.Response, http.Request)):
            return stack
    return None
