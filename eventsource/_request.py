"""What a source sends on every attempt.

The URL rules, the request options, and building the request (httpx's public
API only; sending and everything below it is ``_httpx``'s).
"""

from __future__ import annotations

import logging
import os
import re
import ssl
import threading
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeAlias, TypeVar
from urllib.parse import unquote

from ._errors import ConnectReason, EventIdError, EventSourceError, connect_error
from ._stack import HTTPX, URL, Stack, Timeout
from ._transport import client_kwargs

__all__ = [
    "NO_CREDENTIALS",
    "HeadersArg",
    "ParamsArg",
    "RequestSpec",
    "Resume",
    "check_url",
    "last_event_id_header",
    "same_origin",
]

logger = logging.getLogger("eventsource")

T = TypeVar("T")
MaybeCallable: TypeAlias = T | Callable[[], T]
HeadersArg: TypeAlias = MaybeCallable[Mapping[str, str]] | None
ParamsArg: TypeAlias = MaybeCallable[Mapping[str, Any]] | None
#: How the stream of a request other than GET is resumed once its head
#: arrived: "get", "resend", None, or a callable given the last event ID that
#: returns the URL to GET.
Resume: TypeAlias = Literal["get", "resend"] | Callable[[str], "str | URL"] | None
# httpx's or httpx2's client, sync or async: the stack's own (typed Any: a
# union of the stacks' classes would not take each other's requests).
AnyClient: TypeAlias = Any

# WHATWG URL: forbidden domain code points (a space in a host, say). httpx
# percent-encodes them, and the request would then fail in DNS, again and again.
_FORBIDDEN_HOST = frozenset("\0\t\n\r #/:<>?@[\\]^|%\x7f") | frozenset(map(chr, range(32)))

# The headers every request starts from, as bytes: httpx keeps bytes as given,
# so an open stream's request holds these objects instead of its own copies
# (str names and values are encoded anew for each request).
_BASE_HEADERS = ((b"Accept", b"text/event-stream"), (b"Cache-Control", b"no-cache"))
# What a header value cannot hold once its ends are stripped: h11's
# field-vchar is [^\x00\s], with runs of SP and HTAB only between them, so it
# refuses NUL, CR, LF, VT and FF anywhere; RFC 9113 8.2.1 (HTTP/2) forbids NUL,
# CR and LF, and SP or HTAB at either end: a subset, once stripped.
_UNSENDABLE = re.compile("[\0\r\n\x0b\x0c]").search


def last_event_id_header(last_event_id: str) -> bytes:
    """The ``Last-Event-ID`` header value that sends an id.

    As a browser sends a header value, without leading and trailing spaces and
    tabs (HTTP whitespace; CR and LF, the rest of it, are refused anywhere),
    encoded as UTF-8 (WHATWG). The id itself stays as the stream gave it.
    Raises EventIdError for an id that the HTTP stack cannot send: the one
    check of it, made before anything is sent.
    """
    value = last_event_id.strip(" \t")
    bad = _UNSENDABLE(value)
    if bad is not None:
        raise EventIdError(last_event_id, f"it holds {bad.group()!r}")
    try:
        return value.encode()
    except UnicodeEncodeError as exc:  # a lone surrogate, given by the caller
        raise EventIdError(last_event_id, f"it is not encodable as UTF-8 ({exc.reason})") from None


# The send() keywords of a source without auth. Shared, never mutated (it is
# only unpacked with **): a dict each would be 64 bytes a source.
_NO_AUTH: dict[str, Any] = {}


def check_url(url: str | URL, *, relative_ok: bool = False, stack: Stack = HTTPX) -> Any:
    """The URL as the stack's URL.

    ValueError when retrying could never reach it: not absolute http(s), or
    rejected by httpx or the WHATWG host rules.
    """
    http = stack.http
    text = str(url)
    if "://" not in text and not relative_ok:
        # "localhost:8765/events" would parse with "localhost" as its scheme.
        raise ValueError(f"{text!r} is not an absolute http:// or https:// URL{_scheme_hint(text)}")
    try:
        parsed = http.URL(url if isinstance(url, (str, http.URL)) else text)
    except (http.InvalidURL, TypeError, ValueError) as exc:
        raise ValueError(f"invalid URL {text!r}: {exc}") from None
    if not parsed.is_absolute_url:
        if relative_ok and not parsed.scheme:
            return parsed  # the caller's client has a base_url
        raise ValueError(f"{text!r} is not an absolute http:// or https:// URL")
    if parsed.scheme not in ("http", "https"):
        raise ValueError(f"unsupported URL scheme {parsed.scheme!r} in {str(url)!r}")
    host = parsed.host
    if not host or (":" not in host and _FORBIDDEN_HOST.intersection(_raw_host(parsed))):
        raise ValueError(f"invalid host in URL {str(url)!r}")
    port = parsed.port
    if port is not None and not 0 < port < 65536:  # httpx accepts any digits
        raise ValueError(f"port out of range in URL {str(url)!r}")
    return parsed


_HOST_AND_REST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::[0-9]+)?(?:[/?#].*)?", re.S)


def _scheme_hint(text: str) -> str:
    """The hint ``" (did you mean 'http://…'?)"`` for text that starts with a host.

    The host may have a port. http:// for a loopback host, https:// for any
    other; "" for text that is no host.
    """
    match = _HOST_AND_REST.fullmatch(text)
    if match is None or not any(c.isalnum() for c in match.group(1)):
        return ""
    host = match.group(1).strip("[]").lower()
    loopback = host == "localhost" or host.startswith("127.") or host == "::1"
    return f" (did you mean '{'http' if loopback else 'https'}://{text}'?)"


def _raw_host(url: Any) -> str:
    # httpx percent-encodes what it cannot put in a host: decode to judge it.
    return unquote(url.host)


NO_CREDENTIALS: dict[str, Any] = {"auth": None}  # never mutated


def same_origin(old: Any, new: Any) -> bool:
    """Whether credentials for URL ``old`` may go to URL ``new``.

    The same origin, or an http -> https upgrade of the same host (httpx keeps
    them then; browsers and httpx drop them for any other origin).
    """
    return old.host == new.host and (
        (old.scheme == new.scheme and old.port == new.port)
        or (
            old.scheme == "http"
            and new.scheme == "https"
            and old.port in (None, 80)
            and new.port in (None, 443)
        )
    )


class RequestSpec:
    """What a source sends on every attempt."""

    __slots__ = (
        "auth",
        "content",
        "cookies",
        "follow_redirects",
        "headers",
        "json",
        "method",
        "params",
        "read_timeout",
        "resume",
        "stack",
        "timeout",
        "url",
        "verify",
    )

    def __init__(
        self,
        url: URL,
        *,
        method: str,
        headers: HeadersArg,
        params: ParamsArg,
        json: Any,
        content: bytes | str | None,
        cookies: Mapping[str, str] | None,
        auth: Any,
        timeout: Timeout | float | None,
        read_timeout: float | None,
        stack: Stack = HTTPX,
        verify: bool | str | os.PathLike[str] | ssl.SSLContext = True,
        follow_redirects: bool = True,
        resume: Callable[[str], str | URL] | None = None,
    ) -> None:
        self.follow_redirects = follow_redirects
        self.resume = resume  # the caller's resume URL builder, if any
        self.stack = stack  # the HTTP stack of the source's client
        self.verify = _checked_verify(verify)  # its own client's (see ssl_context_for)
        self.url = url
        self.method = method
        self.headers = headers
        self.params = params
        self.json = json
        self.content = content
        self.cookies = cookies
        # Passing auth=None to httpx would switch off a caller's client-level
        # auth, so auth is passed only when given.
        self.auth: dict[str, Any] = {"auth": auth} if auth is not None else _NO_AUTH
        self.timeout = timeout
        self.read_timeout = read_timeout

    def client_kwargs(self, *, sync: bool) -> dict[str, Any]:
        """Keywords for the client a source makes for itself.

        On eventsource's transport (``_transport``), with the environment's
        proxies.
        """
        stack = self.stack
        kwargs: dict[str, Any] = {
            "timeout": self.timeout,
            **client_kwargs(ssl_context_for(self.verify, stack), sync=sync, stack=stack),
        }
        if self.cookies:
            # In the client's jar, for the URL's host: httpx then sends them
            # to that host only (by host, as browsers do: any port or scheme).
            # The domain as http.cookiejar sees the host: an IPv6 literal in
            # brackets, and ".local" after a name without a dot ("localhost").
            domain = self.url.host
            if ":" in domain:
                domain = f"[{domain}]"
            if "." not in domain:
                domain += ".local"
            jar = stack.http.Cookies()
            for name, value in self.cookies.items():
                jar.set(name, value, domain=domain)
            kwargs["cookies"] = jar
        return kwargs

    def build(
        self, client: AnyClient, last_event_id: str, *, resume: bool = False, resume_url: str = ""
    ) -> Any:
        """The request of one attempt.

        With ``resume``, a GET that resumes the request's stream: of
        ``resume_url`` (where a redirect led), else of the source's URL with
        its params (the callable's, evaluated again), or of the ``resume``
        callable's URL (relative to the stream's); with the headers but
        ``Content-*``, and no credentials on another origin. A raising headers
        / params / resume callable raises EventSourceError (its __cause__ the
        original); an id that cannot be sent, EventIdError (see
        last_event_id_header); a resume callable's result that is no URL,
        TypeError (a bug to see).
        """
        http = self.stack.http
        headers = http.Headers(_BASE_HEADERS)
        method, url, params = self.method, self.url, None
        where: Any = http.URL(resume_url) if resume and resume_url else None
        given: Any = None
        try:
            extra = self.headers() if callable(self.headers) else self.headers
            if where is None:  # (a redirect's URL keeps the query it was given)
                params = self.params() if callable(self.params) else self.params
            if resume and self.resume is not None:
                given = self.resume(last_event_id)
        except Exception as exc:
            error = EventSourceError(f"the headers, params or resume callable raised {exc!r}")
            error.__cause__ = exc
            raise error from exc
        if resume:
            method = "GET"
            if self.resume is not None:
                if not isinstance(given, (str, http.URL)):
                    raise TypeError(f"resume= must return a URL (a str), not {given!r}")
                where, params = (url if where is None else where).join(given), None
        if extra:
            headers.update(extra)
        if where is not None:
            url = where
            if not same_origin(self.url, where):  # as on a redirect to it
                for name in ("authorization", "cookie", "proxy-authorization"):
                    headers.pop(name, None)
        if last_event_id:
            # As bytes: httpx encodes a str value as ASCII once it has looked
            # at its headers (update() does), so a non-ASCII id would raise.
            # CR, LF and NUL are refused too, though the parser never lets
            # them into an id: this is where a header could be injected.
            headers.update([(b"Last-Event-ID", last_event_id_header(last_event_id))])
        base = client.timeout
        request = client.build_request(
            method,
            url,  # (the stack's, as the client is; a resume's str or URL)
            headers=headers,
            params=params,
            json=None if resume else self.json,
            content=None if resume else self.content,
            # The client's connect / write / pool timeouts, the source's read timeout.
            timeout=http.Timeout(
                connect=base.connect, read=self.read_timeout, write=base.write, pool=base.pool
            ),
        )
        if resume:  # a resume carries no body, nor what described it (the client's too)
            for name in [name for name in request.headers if name.startswith("content-")]:
                del request.headers[name]
        logger.debug("connecting: %s %s", request.method, request.url)
        return request

    def auth_for(self, request: Any) -> dict[str, Any]:
        """The ``auth=`` keywords for a request.

        The source's (or the client's), none for another origin (a resume that
        went there).
        """
        return self.auth if same_origin(self.url, request.url) else NO_CREDENTIALS


def _checked_verify(
    verify: bool | str | os.PathLike[str] | ssl.SSLContext,
) -> bool | ssl.SSLContext:
    """``verify=`` checked when the source is made.

    A CA bundle's path (or a directory's, as httpx takes) is loaded now
    (ValueError when it cannot be), a server-side context is a ValueError, a
    wrong type a TypeError.
    """
    if isinstance(verify, os.PathLike):
        verify = os.fspath(verify)
    if isinstance(verify, str):
        if not verify:
            raise ValueError("verify='' names no CA file: give a path, True or False")
        folder = os.path.isdir(verify)
        try:
            if folder:
                return ssl.create_default_context(capath=verify)
            return ssl.create_default_context(cafile=verify)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"verify={verify!r}: cannot load CA certificates: {exc}") from exc
    if isinstance(verify, ssl.SSLContext) and verify.protocol == ssl.PROTOCOL_TLS_SERVER:
        raise ValueError(
            "verify= needs a client-side ssl.SSLContext (ssl.create_default_context()), "
            "not a server-side one (Purpose.CLIENT_AUTH)"
        )
    if not isinstance(verify, (bool, ssl.SSLContext)):
        raise TypeError(
            f"verify must be a bool, a CA file's path or an ssl.SSLContext, not {verify!r}"
        )
    return verify


def ssl_context_for(
    verify: bool | ssl.SSLContext, stack: Stack, *, shared: bool = True
) -> ssl.SSLContext:
    """The TLS context of ``verify=``.

    The stack's default (shared), a CA bundle's (a path), the caller's own
    context, or one that checks nothing.

    Args:
        verify: What to verify with (see ``RequestSpec``).
        stack: The HTTP stack whose default context is wanted.
        shared: False: a default context of the caller's own, for a client
            that changes it (httpcore sets an HTTP/2 client's ALPN, "h2",
            on its context; the shared one must offer only HTTP/1.1).

    Raises:
        ConnectError: SSL_CERT_FILE / SSL_CERT_DIR cannot be loaded.
    """
    if verify is True:
        return _default_ssl_context(stack) if shared else _new_default_context(stack)
    if isinstance(verify, ssl.SSLContext):
        return verify
    context: ssl.SSLContext = stack.http.create_ssl_context(verify=False)
    return context


_ssl_contexts: dict[str, ssl.SSLContext] = {}
_ssl_lock = threading.Lock()


def _default_ssl_context(stack: Stack) -> ssl.SSLContext:
    """The stack's default TLS context (verification on), made once.

    httpx2's trusts the system's store. Building one loads the CA bundle, which
    takes longer than opening a stream, and every source without a client of
    its own makes a client.
    """
    # Keyed by the environment too: SSL_CERT_FILE set later (a notebook
    # fixing its setup) is taken, as httpx takes it for each client.
    env = (os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
    key = f"{stack.name} {env}"
    with _ssl_lock:
        context = _ssl_contexts.get(key)
        if context is None:
            context = _ssl_contexts[key] = _new_default_context(stack)
        return context


def _new_default_context(stack: Stack) -> ssl.SSLContext:
    """A new default TLS context of the stack (SSL_CERT_FILE / SSL_CERT_DIR taken).

    Raises:
        ConnectError: They cannot be loaded.
    """
    try:
        context: ssl.SSLContext = stack.http.create_ssl_context()
    except (OSError, ssl.SSLError) as exc:
        detail = f"cannot load the CA certificates of SSL_CERT_FILE / SSL_CERT_DIR: {exc}"
        raise connect_error(
            f"{detail}: fix or unset them", detail=detail, reason=ConnectReason.CA_BUNDLE
        ) from exc
    return context
