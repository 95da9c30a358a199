"""The httpx transports of the clients a source makes for itself: httpcore's
public connection pool (or its proxy pools) on eventsource's network backend
(``_backend`` / ``_abackend``), with httpcore's errors turned into httpx's as
httpx's own transport turns them.

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

import httpx

from ._abackend import AsyncBackend
from ._backend import SyncBackend
from ._core import HTTPCORE, Core
from ._decode import ACCEPT_ENCODING, foreign_coding
from ._errors import ResponseError

__all__ = ["AsyncTransport", "Transport", "client_kwargs", "environment_proxies"]

# A core's errors and httpx's for each (the same names), most specific first.
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


def _error_map(core: Core) -> list[tuple[type[Exception], type[httpx.TransportError]]]:
    return [(getattr(core.module, name), getattr(httpx, name)) for name in _ERROR_NAMES]


_ERRORS = _error_map(HTTPCORE)


@contextmanager
def _mapped(request: httpx.Request) -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        for core, mapped in _ERRORS:
            if isinstance(exc, core):
                raise mapped(str(exc), request=request) from exc
        raise


def _core_request(request: httpx.Request) -> Any:
    url = request.url
    core = HTTPCORE.module
    return core.Request(
        method=request.method,
        url=core.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path),
        headers=request.headers.raw,
        content=request.stream,
        extensions=request.extensions,
    )


class _AsyncBody(httpx.AsyncByteStream):
    def __init__(self, stream: Any, request: httpx.Request) -> None:
        self._stream = stream
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _mapped(self._request):
            async for part in self._stream:
                yield part

    async def aclose(self) -> None:
        await self._stream.aclose()


class _SyncBody(httpx.SyncByteStream):
    def __init__(self, stream: Any, request: httpx.Request) -> None:
        self._stream = stream
        self._request = request

    def __iter__(self) -> Iterator[bytes]:
        with _mapped(self._request):
            yield from self._stream

    def close(self) -> None:
        self._stream.close()


_REDIRECTS = (301, 302, 303, 307, 308)


def _refusal(response: Any, request: httpx.Request) -> ResponseError | None:
    """Why a source's own client refuses this response at once; None when
    it does not: a redirect that cannot be followed, or a stream in a
    coding that the client did not ask for (see ``_decode``)."""
    location = _unusable_location(response)
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


def _asked_for(request: httpx.Request, coding: str) -> bool:
    listed = request.headers.get_list("accept-encoding", split_commas=True)
    accepted = {c.split(";")[0].strip().lower() for c in listed}
    return all(c.strip().lower() in accepted for c in coding.split(",") if c.strip())


def _unusable_location(response: Any) -> str | None:
    """The Location of a redirect that is no URL (httpx would refuse to
    follow it with a RemoteProtocolError, as for a broken connection: a
    source would retry for ever); None for any other response."""
    if response.status not in _REDIRECTS:
        return None
    for name, value in response.headers:
        if name.lower() == b"location":
            location: str = value.decode("latin-1")
            try:
                httpx.URL(location)
            except httpx.InvalidURL:
                return location
            return None
    return None


class AsyncTransport(httpx.AsyncBaseTransport):
    """An httpx transport on an httpcore pool (a plain or a proxy one)."""

    def __init__(self, pool: Any) -> None:
        self._pool = pool

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        with _mapped(request):
            response = await self._pool.handle_async_request(_core_request(request))
        refusal = _refusal(response, request)
        if refusal is not None:
            await response.aclose()
            raise refusal
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_AsyncBody(response.stream, request),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()


class Transport(httpx.BaseTransport):
    """The blocking twin of ``AsyncTransport``."""

    def __init__(self, pool: Any) -> None:
        self._pool = pool

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with _mapped(request):
            response = self._pool.handle_request(_core_request(request))
        refusal = _refusal(response, request)
        if refusal is not None:
            response.close()
            raise refusal
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_SyncBody(response.stream, request),
            extensions=response.extensions,
        )

    def close(self) -> None:
        self._pool.close()


def environment_proxies() -> dict[str, str | None]:
    """The proxy of each URL pattern that the environment names (None: no
    proxy), as httpx reads it for a client made without a transport."""
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


def _pool(proxy: str | None, context: ssl.SSLContext, http2: bool, *, sync: bool) -> Any:
    core = HTTPCORE.module
    backend: Any = SyncBackend(HTTPCORE) if sync else AsyncBackend(HTTPCORE)
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
    described = httpx.Proxy(proxy)
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
    context: ssl.SSLContext, *, sync: bool, http2: bool = False, trust_env: bool = True
) -> dict[str, Any]:
    """``transport=`` and ``mounts=`` for an ``httpx.Client`` (sync) or
    ``httpx.AsyncClient`` on eventsource's backend, with the environment's
    proxies when ``trust_env``."""
    kind: Any = Transport if sync else AsyncTransport
    mounts: dict[str, Any] = {}
    if trust_env:
        for pattern, proxy in environment_proxies().items():
            mounts[pattern] = (
                None if proxy is None else kind(_pool(proxy, context, http2, sync=sync))
            )
    return {
        "transport": kind(_pool(None, context, http2, sync=sync)),
        "mounts": mounts,
        "trust_env": trust_env,
        # Only the codings eventsource decodes itself, in bounded steps.
        "headers": {"Accept-Encoding": ACCEPT_ENCODING},
    }
