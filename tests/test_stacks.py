"""Both HTTP stacks (issue 22): what is specific to running a source on httpx
or on httpx2. The behaviour suites run on both through their own
parametrization (tests/_paths.py's httpx2 paths, the stack parameter);
this module checks the seams: which client is accepted, which stack a
source's own client is made on, each stack's errors classified alike, its
own response types handed out, redirects, auth and cookies on each, and
httpx2's ``alias_httpx()``."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any

import anyio
import httpx
import pytest

from eventsource import ConnectionLostError, EventSource, ReadTimeoutError, ResponseError
from eventsource._httpx import classify
from eventsource.testing import SSEServer

httpx2 = pytest.importorskip("httpx2", reason="httpx2 is not installed (the httpx2 extra)")
import httpcore2  # noqa: E402 (installed with httpx2)

MODULES: dict[str, Any] = {"httpx": httpx, "httpx2": httpx2}
EVENTS = [{"data": "a", "id": "1"}, {"data": "b", "id": "2"}]


def user_client(stack: str, *, sync: bool, **kwargs: Any) -> Any:
    module = MODULES[stack]
    return (module.Client if sync else module.AsyncClient)(trust_env=False, **kwargs)


# --- which client, which stack --------------------------------------------------------------


def test_a_client_of_neither_stack_is_refused_at_once() -> None:
    with pytest.raises(TypeError, match="httpx or httpx2 client"):
        EventSource("http://127.0.0.1:1/", client=object())  # type: ignore[arg-type]


def test_async_use_of_a_sync_client_names_its_stack(stack: str) -> None:
    with user_client(stack, sync=True) as client:
        source = EventSource("http://127.0.0.1:1/", client=client)

        async def use() -> None:
            async with source:
                pass

        with pytest.raises(TypeError, match=rf"client={stack}\.AsyncClient\(\)"):
            anyio.run(use)


def test_http_names_a_stack_and_agrees_with_the_client() -> None:
    with pytest.raises(ValueError, match="'httpx' or 'httpx2'"):
        EventSource("http://127.0.0.1:1/", http="requests")  # type: ignore[arg-type]
    with httpx.Client() as client, pytest.raises(ValueError, match="client= is httpx's"):
        EventSource("http://127.0.0.1:1/", client=client, http="httpx2")
    with httpx2.Client() as client2:
        EventSource("http://127.0.0.1:1/", client=client2, http="httpx2")  # agrees


def test_http_httpx2_without_httpx2_says_what_to_install() -> None:
    code = textwrap.dedent(
        """
        import sys
        sys.modules["httpx2"] = None  # not installed
        from eventsource import EventSource
        try:
            EventSource("http://127.0.0.1:1/", http="httpx2")
        except ImportError as exc:
            print("ImportError:", exc)
        EventSource("http://127.0.0.1:1/")  # httpx: fine
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert "pip install -e '.[httpx2]'" in out.stdout


# --- each stack's own types and errors --------------------------------------------------------


@pytest.mark.parametrize("own", [True, False], ids=["own", "user"])
def test_responses_are_the_stack_s_own(stack: str, own: bool) -> None:
    module = MODULES[stack]
    with SSEServer(events=EVENTS) as server:
        client = None if own else user_client(stack, sync=True)
        source = EventSource(server.url, client=client, http=stack if own else None)
        with source:
            event = next(iter(source))
            assert event.data == "a"
            assert isinstance(source.response, module.Response)
            assert source.response.status_code == 200
        if client is not None:
            client.close()

        server.respond_with(404, {"Content-Type": "application/json"}, b'{"error": "gone"}')
        client = None if own else user_client(stack, sync=True)
        with pytest.raises(ResponseError) as raised:
            EventSource(server.url, client=client, http=stack if own else None).collect(timeout=5)
        if client is not None:
            client.close()
    error = raised.value
    assert error.status_code == 404
    assert isinstance(error.response, module.Response)
    assert error.response.json() == {"error": "gone"}
    assert json.loads(error.body) == {"error": "gone"}


def test_each_stack_s_errors_are_classified_alike(stack: str) -> None:
    module = MODULES[stack]
    core = {"httpx": __import__("httpcore"), "httpx2": httpcore2}[stack]
    request = module.Request("GET", "http://127.0.0.1:1/")

    def kind(exc: BaseException, sending: bool = False) -> tuple[type, bool]:
        result = classify(exc, sending=sending, read_timeout=5)
        assert result is not None, f"{exc!r} was not classified"
        return type(result[0]), result[1]

    assert kind(module.UnsupportedProtocol("ftp", request=request)) == (ResponseError, True)
    assert kind(module.InvalidURL("bad")) == (ResponseError, True)
    assert kind(module.TooManyRedirects("loop", request=request)) == (ResponseError, True)
    assert kind(module.ReadTimeout("slow", request=request)) == (ReadTimeoutError, False)
    assert kind(core.ReadTimeout("slow")) == (ReadTimeoutError, False)
    for lost in (
        module.ConnectError("refused", request=request),
        module.ReadError("reset", request=request),
        module.RemoteProtocolError("bad chunk", request=request),
        module.DecodingError("bad gzip", request=request),
        core.ReadError("reset"),
        core.RemoteProtocolError("bad"),
    ):
        assert kind(lost) == (ConnectionLostError, False), lost
    assert classify(ValueError("a bug"), sending=False) is None


# --- redirects, auth, cookies ---------------------------------------------------------------


@pytest.mark.parametrize("own", [True, False], ids=["own", "user"])
def test_redirects_auth_and_cookies_on_each_stack(stack: str, own: bool) -> None:
    module = MODULES[stack]
    with SSEServer(events=EVENTS) as server:
        server.respond_with(302, {"Location": "/moved?x=1"})
        if own:
            source = EventSource(
                server.url, http=stack, auth=("user", "pw"), cookies={"session": "s1"}
            )
        else:
            client = user_client(
                stack, sync=True, auth=module.BasicAuth("user", "pw"), cookies={"session": "s1"}
            )
            source = EventSource(server.url, client=client)
        events = source.collect(n=2, timeout=5)
        if not own:
            client.close()
        requests = server.requests
    assert [e.data for e in events] == ["a", "b"]
    assert [r.path for r in requests[:2]] == ["/stream", "/moved?x=1"]
    followed = requests[1].headers
    assert followed["authorization"] == "Basic dXNlcjpwdw=="
    assert "session=s1" in followed.get("cookie", "")


def test_an_unusable_location_is_final_on_the_own_client(stack: str) -> None:
    with SSEServer(events=EVENTS) as server:
        server.respond_with(302, {"Location": "http://[::1"}, times=None)
        with pytest.raises(ResponseError, match="unusable Location"):
            EventSource(server.url, http=stack).collect(timeout=5)
        assert len(server.requests) == 1


@pytest.mark.anyio
async def test_a_digest_auth_flow_on_each_stack(stack: str) -> None:
    """An auth flow (a 401 answered with a second request) on the user's
    client of each stack: the source sees one open."""
    module = MODULES[stack]
    async with SSEServer(events=EVENTS) as server:
        server.respond_with(
            401, {"WWW-Authenticate": 'Digest realm="r", nonce="n", qop="auth", algorithm=MD5'}
        )
        async with user_client(stack, sync=False, auth=module.DigestAuth("u", "p")) as client:
            events = await EventSource(server.url, client=client).acollect(n=2, timeout=5)
        requests = server.requests
    assert [e.data for e in events] == ["a", "b"]
    assert requests[1].headers["authorization"].startswith("Digest ")


# --- httpx2.alias_httpx() ---------------------------------------------------------------------


def test_alias_httpx_runs_everything_on_httpx2() -> None:
    """httpx2's ``alias_httpx()`` makes ``import httpx`` (and httpcore) resolve
    to httpx2 (httpcore2) process-wide, before eventsource is imported: a
    source then runs on httpx2 alone, its own client and a user's alike."""
    code = textwrap.dedent(
        """
        import httpx2
        httpx2.alias_httpx()
        import httpx, anyio
        assert httpx is httpx2
        from eventsource import EventSource
        from eventsource.testing import SSEServer

        with SSEServer(events=[{"data": "a"}, {"data": "b"}]) as server:
            own = EventSource(server.url).collect(n=2, timeout=5)
            with httpx2.Client() as client:
                user = EventSource(server.url, client=client).collect(n=2, timeout=5)

            async def main():
                async with httpx2.AsyncClient() as client:
                    return await EventSource(server.url, client=client).acollect(n=2, timeout=5)

            asynced = anyio.run(main)
        print([e.data for e in own + user + asynced])
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(["a", "b"] * 3)


# --- review22: another stack's Timeout / Auth ------------------------------------------------


@pytest.mark.parametrize("what", ["timeout", "auth"])
def test_another_stack_s_timeout_or_auth_is_converted_or_refused_at_once(what: str) -> None:
    kwargs: dict[str, Any] = (
        {"timeout": httpx.Timeout(5)} if what == "timeout" else {"auth": httpx.BasicAuth("u", "p")}
    )
    closed: list[int] = []
    with SSEServer(events=EVENTS) as server:
        try:
            source = EventSource(
                server.url, http="httpx2", on_close=lambda: closed.append(1), **kwargs
            )
        except TypeError as exc:
            assert what == "auth" and "httpx's BasicAuth" in str(exc)
            return  # refused at construction, naming the mismatch
        events = source.collect(n=2, timeout=5)
    assert [e.data for e in events] == ["a", "b"]
    assert closed == [1]


# --- credentials on redirect hops (found while doing issue 23's auth item) ----------------


def test_a_cross_origin_redirect_carries_no_credentials(stack: str) -> None:
    module = MODULES[stack]
    with SSEServer(events=[{"data": "a"}]) as a, SSEServer(events=[{"data": "b"}]) as b:
        a.respond_with(302, {"Location": b.url})
        with module.Client(auth=("user", "secret"), trust_env=False) as client:
            events = EventSource(a.url, client=client).collect(n=1, timeout=5)
        a.respond_with(302, {"Location": b.url})
        EventSource(a.url, http=stack, auth=("user", "secret")).collect(n=1, timeout=5)
        sent = [request.headers.get("authorization") for request in b.requests]
    assert [e.data for e in events] == ["b"]
    assert sent == [None, None]


class _RefreshingToken:
    """An auth flow that refreshes its token when it meets a 401 (the httpx
    way): token 1 first, token 2 after a 401."""

    requires_request_body = False
    requires_response_body = False

    def __init__(self) -> None:
        self.token = 1

    def sync_auth_flow(self, request: Any) -> Any:
        request.headers["Authorization"] = f"Bearer {self.token}"
        response = yield request
        if response.status_code == 401:
            self.token += 1
            request.headers["Authorization"] = f"Bearer {self.token}"
            yield request

    async def async_auth_flow(self, request: Any) -> Any:
        flow = self.sync_auth_flow(request)
        request = next(flow)
        response = yield request
        try:
            yield flow.send(response)
        except StopIteration:
            return


def test_a_same_origin_redirect_hop_runs_the_auth_flow(stack: str) -> None:
    module = MODULES[stack]
    auth = type("Refreshing", (_RefreshingToken, module.Auth), {})()
    with SSEServer(events=[{"data": "a"}]) as server:
        server.respond_with(302, {"Location": "/elsewhere"})
        server.respond_with(401)
        events = EventSource(server.url, http=stack, auth=auth).collect(n=1, timeout=5)
        sent = [request.headers.get("authorization") for request in server.requests]
    assert [e.data for e in events] == ["a"]
    assert sent == ["Bearer 1", "Bearer 1", "Bearer 2"]


@pytest.mark.anyio
async def test_redirect_hop_credentials_in_async_mode(stack: str) -> None:
    """The async reader follows the same rules: the flow on a same-origin
    hop, no client-level credentials on a cross-origin one."""
    module = MODULES[stack]
    auth = type("Refreshing", (_RefreshingToken, module.Auth), {})()
    async with SSEServer(events=[{"data": "a"}]) as a, SSEServer(events=[{"data": "b"}]) as b:
        a.respond_with(302, {"Location": "/elsewhere"})
        a.respond_with(401)
        events = await EventSource(a.url, http=stack, auth=auth).acollect(n=1, timeout=5)
        sent = [request.headers.get("authorization") for request in a.requests]
        a.respond_with(302, {"Location": b.url})
        async with module.AsyncClient(auth=("user", "secret"), trust_env=False) as client:
            crossed = await EventSource(a.url, client=client).acollect(n=1, timeout=5)
        leaked = [request.headers.get("authorization") for request in b.requests]
    assert [e.data for e in events] == ["a"]
    assert sent == ["Bearer 1", "Bearer 1", "Bearer 2"]
    assert [e.data for e in crossed] == ["b"] and leaked == [None]
