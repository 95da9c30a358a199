"""The httpx transports of the clients a source makes for itself.

httpcore's public connection pool (or its proxy pools) on eventsource's network
backend (``_backend`` / ``_abackend``), with httpcore's errors turned into
httpx's as httpx's own transport turns them.

httpx reads the proxy environment (``HTTP_PROXY``, ``HTTPS_PROXY``,
``ALL_PROXY``, ``NO_PROXY``, through ``urllib.request.getproxies()``) only
for a client made without a transport, so ``client_kwargs()`` mounts the
proxies that environment names, on the same backend, as httpx would mount
its own: a source's own client goes where ``httpx.AsyncClient()`` would.
"""

from __future__ import annotations

import ipaddress
import ssl
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

from ._abackend import AsyncBackend
from ._backend import SyncBackend
from ._decode import ACCEPT_ENCODING, foreign_coding
from ._errors import ResponseError
from ._stack import HTTPX, Stack

__all__ = ["client_kwargs", "environment_proxies", "transport_class"]

# A core's errors and its stack's for each (the same names), most specific first.
_ERROR_NAMES = (
    "ConnectTimeout",
    "ReadTimeout",
    "WriteTimeout",
    "PoolTimeout",
    "TimeoutException",
    "ConnectError",
    "ReadError",
    "WriteError",
    "NetworkError",
    "ProxyError",
    "UnsupportedProtocol",
    "LocalProtocolError",
    "RemoteProtocolError",
    "ProtocolError",
)

_ErrorMap = list[tuple[type[Exception], Any]]


def _error_map(stack: Stack) -> _ErrorMap:
    return [(getattr(stack.core.module, name), getattr(stack.http, name)) for name in _ERROR_NAMES]


@contextmanager
def _mapped(request: Any, errors: _ErrorMap) -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        for core, mapped in errors:
            if isinstance(exc, core):
                raise mapped(str(exc), request=request) from exc
        raise


def _core_request(request: Any, core: Any) -> Any:
    url = request.url
    return core.Request(
        method=request.method,
        url=core.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path),
        headers=request.headers.raw,
        content=request.stream,
        extensions=request.extensions,
    )


class _AsyncBody:
    """A core's response stream as the stack's ``AsyncByteStream``."""

    def __init__(self, stream: Any, request: Any, errors: _ErrorMap) -> None:
        self._stream = stream
        self._request = request
        self._errors = errors

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _mapped(self._request, self._errors):
            async for part in self._stream:
                yield part

    async def aclose(self) -> None:
        await self._stream.aclose()


class _SyncBody:
    """A core's response stream as the stack's ``SyncByteStream``."""

    def __init__(self, stream: Any, request: Any, errors: _ErrorMap) -> None:
        self._stream = stream
        self._request = request
        self._errors = errors

    def __iter__(self) -> Iterator[bytes]:
        with _mapped(self._request, self._errors):
            yield from self._stream

    def close(self) -> None:
        self._stream.close()


_REDIRECTS = (301, 302, 303, 307, 308)


def _refusal(response: Any, request: Any, stack: Stack) -> ResponseError | None:
    """Why a source's own client refuses this response at once.

    None when it does not: a redirect that cannot be followed, or a stream in a
    coding that the client did not ask for (see ``_decode``).
    """
    location = _unusable_location(response, stack)
    if location is not None:
        return ResponseError(f"redirect with an unusable Location: {location!r}", status_code=None)
    if 200 <= response.status < 300:
        coding = foreign_coding(response.headers)
        if coding is not None and not _asked_for(request, coding):
            return ResponseError(
                f"the server answered in Content-Encoding {coding!r}, which was not asked for "
                f"(Accept-Encoding: {request.headers.get('accept-encoding', '')})",
                status_code=response.status,
            )
    return None


def _asked_for(request: Any, coding: str) -> bool:
    listed = request.headers.get_list("accept-encoding", split_commas=True)
    accepted = {c.split(";")[0].strip().lower() for c in listed}
    return all(c.strip().lower() in accepted for c in coding.split(",") if c.strip())


def _unusable_location(response: Any, stack: Stack) -> str | None:
    """The Location of a redirect that is no URL; None for any other response.

    httpx would refuse to follow it with a RemoteProtocolError, as for a broken
    connection: a source would retry for ever.
    """
    if response.status not in _REDIRECTS:
        return None
    for name, value in response.headers:
        if name.lower() == b"location":
            location: str = value.decode("latin-1")
            try:
                stack.http.URL(location)
            except stack.http.InvalidURL:
                return location
            return None
    return None


class _AsyncTransport:
    """A transport on a core's pool (a plain or a proxy one)."""

    _stack: Stack
    _errors: _ErrorMap
    _body: Any  # the stack's AsyncByteStream of _AsyncBody

    def __init__(self, pool: Any) -> None:
        self._pool = pool

    async def handle_async_request(self, request: Any) -> Any:
        with _mapped(request, self._errors):
            response = await self._pool.handle_async_request(
                _core_request(request, self._stack.core.module)
            )
        refusal = _refusal(response, request, self._stack)
        if refusal is not None:
            await response.aclose()
            raise refusal
        return self._stack.http.Response(
            status_code=response.status,
            headers=response.headers,
            stream=self._body(response.stream, request, self._errors),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()


class _SyncTransport:
    """The blocking twin of ``_AsyncTransport``."""

    _stack: Stack
    _errors: _ErrorMap
    _body: Any

    def __init__(self, pool: Any) -> None:
        self._pool = pool

    def handle_request(self, request: Any) -> Any:
        with _mapped(request, self._errors):
            response = self._pool.handle_request(_core_request(request, self._stack.core.module))
        refusal = _refusal(response, request, self._stack)
        if refusal is not None:
            response.close()
            raise refusal
        return self._stack.http.Response(
            status_code=response.status,
            headers=response.headers,
            stream=self._body(response.stream, request, self._errors),
            extensions=response.extensions,
        )

    def close(self) -> None:
        self._pool.close()


_kinds: dict[tuple[str, bool], Any] = {}


def transport_class(stack: Stack, *, sync: bool) -> Any:
    """The stack's transport class, made once.

    Its ``BaseTransport`` or ``AsyncBaseTransport``, with bodies of its byte
    streams: httpx and httpx2 check that a response's stream is theirs.
    """
    kind = _kinds.get((stack.name, sync))
    if kind is None:
        http = stack.http
        mixin, base, body, stream = (
            (_SyncTransport, http.BaseTransport, _SyncBody, http.SyncByteStream)
            if sync
            else (_AsyncTransport, http.AsyncBaseTransport, _AsyncBody, http.AsyncByteStream)
        )
        namespace = {
            "_stack": stack,
            "_errors": _error_map(stack),
            "_body": type(body.__name__, (body, stream), {"__module__": __name__}),
            "__module__": __name__,
        }
        name = "Transport" if sync else "AsyncTransport"
        kind = _kinds[(stack.name, sync)] = type(name, (mixin, base), namespace)
    return kind


def environment_proxies() -> dict[str, str | None]:
    """The proxy of each URL pattern that the environment names (None: no proxy).

    As httpx reads it for a client made without a transport.
    """
    found = urllib.request.getproxies()
    mounts: dict[str, str | None] = {}
    for scheme in ("http", "https", "all"):
        url = found.get(scheme)
        if url:
            mounts[f"{scheme}://"] = url if "://" in url else f"http://{url}"
    for host in (h.strip() for h in found.get("no", "").split(",")):
        if host == "*":
            return {}
        if not host:
            continue
        if "://" in host:
            mounts[host] = None
        elif _is_ip(host, 4) or host.lower() == "localhost":
            mounts[f"all://{host}"] = None
        elif _is_ip(host, 6):
            mounts[f"all://[{host}]"] = None
        else:
            mounts[f"all://*{host}"] = None
    return mounts


def _is_ip(host: str, version: int) -> bool:
    try:
        return ipaddress.ip_address(host.split("/")[0]).version == version
    except ValueError:
        return False


def _pool(
    stack: Stack, proxy: str | None, context: ssl.SSLContext, http2: bool, *, sync: bool
) -> Any:
    core = stack.core.module
    backend = SyncBackend(stack.core) if sync else AsyncBackend(stack.core)
    common: dict[str, Any] = {
        "ssl_context": context,
        "http1": True,
        "http2": http2,
        "network_backend": backend,
        "max_connections": 100,
        "max_keepalive_connections": 20,
        "keepalive_expiry": 5.0,
    }
    if proxy is None:
        return (core.ConnectionPool if sync else core.AsyncConnectionPool)(**common)
    described = stack.http.Proxy(proxy)
    url = described.url
    core_url = core.URL(
        scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path
    )
    kind: Any
    if url.scheme in ("socks5", "socks5h"):
        kind = core.SOCKSProxy if sync else core.AsyncSOCKSProxy
        return kind(proxy_url=core_url, proxy_auth=described.raw_auth, **common)
    kind = core.HTTPProxy if sync else core.AsyncHTTPProxy
    return kind(
        proxy_url=core_url,
        proxy_auth=described.raw_auth,
        proxy_headers=described.headers.raw,
        proxy_ssl_context=described.ssl_context,
        **common,
    )


def client_kwargs(
    context: ssl.SSLContext,
    *,
    sync: bool,
    http2: bool = False,
    trust_env: bool = True,
    stack: Stack = HTTPX,
) -> dict[str, Any]:
    """``transport=`` and ``mounts=`` for a client on eventsource's backend.

    For the stack's ``Client`` (sync) or ``AsyncClient``, with the environment's
    proxies when ``trust_env``.
    """
    kind = transport_class(stack, sync=sync)
    mounts: dict[str, Any] = {}
    if trust_env:
        for pattern, proxy in environment_proxies().items():
            mounts[pattern] = (
                None if proxy is None else kind(_pool(stack, proxy, context, http2, sync=sync))
            )
    return {
        "transport": kind(_pool(stack, None, context, http2, sync=sync)),
        "mounts": mounts,
        "trust_env": trust_env,
        # Only the codings eventsource decodes itself, in bounded steps.
        "headers": {"Accept-Encoding": ACCEPT_ENCODING},
    }
