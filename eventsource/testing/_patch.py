"""How SSEMock intercepts httpx2.

respx patches httpcore's connection pools, so it never sees a request of
httpx2, which runs on httpcore2. While an SSEMock for httpx2 runs, this module
replaces the request method of httpcore2's two public pool classes
(``ConnectionPool.handle_request``,
``AsyncConnectionPool.handle_async_request``; its HTTP and SOCKS proxies are
pools too) with one that asks the running mocks first, as respx does for
httpcore. Everything above the pool runs for real: the client, its transport,
its error mapping and decoding, eventsource's own transport.

The patch is public API only (two public methods of two public classes,
through ``unittest.mock.patch.object``), applied once for all the mocks of
a core and removed when the last one stops.
"""

from __future__ import annotations

import threading
import urllib.parse
from collections.abc import Callable
from typing import Any
from unittest import mock

from .._stack import Stack

__all__ = ["PoolPatch", "pool_patch"]

#: What a mock answers a request with: the core's Response.
Answer = Callable[[Any], Any]


class _Route:
    """One running mock: its URL, the hosts it lets through, its answer."""

    __slots__ = ("answer", "owner", "passthrough", "url", "with_path")

    def __init__(
        self, owner: object, url: Any, passthrough: tuple[str, ...], answer: Answer, raw: str
    ) -> None:
        self.owner = owner
        self.url = url
        # As respx's url= pattern: a URL without a path matches any path.
        self.with_path = bool(urllib.parse.urlsplit(raw).path)
        self.passthrough = passthrough
        self.answer = answer

    def matches(self, url: Any, http: Any) -> bool:
        """Whether a request URL is this route's, as respx's ``url=`` decides.

        Scheme and host; the port, path and query only when the route's URL
        gives them (the query as parameters, in any order).
        """
        mine = self.url
        return (
            url.scheme == mine.scheme
            and url.host == mine.host
            and (mine.port is None or (url.port or _PORTS.get(url.scheme)) == mine.port)
            and (not self.with_path or url.path == mine.path)
            and (not mine.query or http.QueryParams(url.query) == http.QueryParams(mine.query))
        )


_PORTS = {"http": 80, "https": 443}


class PoolPatch:
    """The patch of one stack's core pools, shared by its running mocks."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.routes: list[_Route] = []
        self.lock = threading.Lock()
        self.patches: list[Any] = []

    def add(self, owner: object, url: str, passthrough: tuple[str, ...], answer: Answer) -> None:
        """Route ``url`` to ``answer`` until ``remove(owner)``.

        And ``passthrough`` hosts to the network; patches the pools for the first.
        """
        route = _Route(owner, self.stack.http.URL(url), passthrough, answer, url)
        with self.lock:
            if not self.routes:
                self.start()
            self.routes.append(route)

    def remove(self, owner: object) -> None:
        """Drop the routes of ``owner``; unpatches the pools after the last."""
        with self.lock:
            self.routes = [route for route in self.routes if route.owner is not owner]
            if not self.routes:
                self.stop()

    def route(self, request: Any) -> Answer | None:
        """The answer for a core request.

        None: pass it to the network. AssertionError (as respx's) for a request
        no mock takes.
        """
        http = self.stack.http
        url = http.URL(
            scheme=request.url.scheme.decode("ascii"),
            host=request.url.host.decode("ascii"),
            port=request.url.port,
            raw_path=request.url.target,
        )
        with self.lock:
            routes = list(self.routes)
        for route in routes:
            if route.matches(url, http):
                return route.answer
            if url.host in route.passthrough:
                return None
        method = request.method.decode("ascii")
        raise AssertionError(f"SSEMock: {method} {url} ({self.stack.name}) is not mocked")

    def request(self, request: Any, body: bytes) -> Any:
        """The stack's Request for a core request whose body was read."""
        url = request.url
        return self.stack.http.Request(
            request.method.decode("ascii"),
            self.stack.http.URL(
                scheme=url.scheme.decode("ascii"),
                host=url.host.decode("ascii"),
                port=url.port,
                raw_path=url.target,
            ),
            headers=request.headers,
            content=body,
            extensions=request.extensions,
        )

    def start(self) -> None:
        core = self.stack.core.module
        sync_pool, async_pool = core.ConnectionPool, core.AsyncConnectionPool
        original = sync_pool.handle_request
        original_async = async_pool.handle_async_request
        patch = self

        def handle_request(pool: Any, request: Any) -> Any:
            answer = patch.route(request)
            if answer is None:
                return original(pool, request)
            return answer(patch.request(request, b"".join(request.stream)))

        async def handle_async_request(pool: Any, request: Any) -> Any:
            answer = patch.route(request)
            if answer is None:
                return await original_async(pool, request)
            body = b"".join([part async for part in request.stream])
            return answer(patch.request(request, body))

        self.patches = [
            mock.patch.object(sync_pool, "handle_request", handle_request),
            mock.patch.object(async_pool, "handle_async_request", handle_async_request),
        ]
        for one in self.patches:
            one.start()

    def stop(self) -> None:
        while self.patches:
            self.patches.pop().stop()


_patches: dict[str, PoolPatch] = {}
_patches_lock = threading.Lock()  # one PoolPatch a stack, whichever threads start mocks


def pool_patch(stack: Stack) -> PoolPatch:
    """The pool patch of a stack (one per stack, made on first use)."""
    with _patches_lock:
        patch = _patches.get(stack.name)
        if patch is None:
            patch = _patches[stack.name] = PoolPatch(stack)
        return patch
