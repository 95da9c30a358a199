"""Issue 23, "The first hour": the API surprises a new user met, each as a
test (committed first as a strict xfail, then fixed)."""

from __future__ import annotations

import contextlib
import logging
import socket
import sys
import threading
import traceback
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

import eventsource
from eventsource import EventSource, ReadyState, ResponseError
from eventsource.testing import SSEMock, SSEServer, assert_events

PUBLIC_ERRORS = [
    name
    for name in eventsource.__all__
    if isinstance(getattr(eventsource, name), type)
    and issubclass(getattr(eventsource, name), BaseException)
]


@pytest.mark.parametrize("name", PUBLIC_ERRORS)
def test_public_exceptions_print_as_eventsource_s(name: str) -> None:
    kind = getattr(eventsource, name)
    assert kind.__module__ == "eventsource"
    error = kind.__new__(kind)
    printed = traceback.format_exception_only(kind, error)[-1]
    assert printed.startswith(f"eventsource.{name}"), printed


def test_public_classes_keep_their_source() -> None:
    """Only the exceptions name the package in ``__module__``: the classes a
    notebook user inspects (``EventSource??``) keep their source."""
    import inspect

    for name in ("EventSource", "ServerSentEvent", "ReadyState", "SSEParser"):
        assert "class " + name in inspect.getsource(getattr(eventsource, name)), name


def test_ready_state_formats_as_its_name(caplog: pytest.LogCaptureFixture) -> None:
    assert f"{ReadyState.OPEN}" == "OPEN"
    assert str(ReadyState.CLOSED) == "CLOSED"
    with caplog.at_level(logging.INFO):
        logging.getLogger("test").info("state %s", ReadyState.OPEN)
    assert caplog.records[-1].getMessage() == "state OPEN"
    assert ReadyState.OPEN == 1 and repr(ReadyState.OPEN) == "<ReadyState.OPEN: 1>"


def test_response_error_json_decodes_the_body() -> None:
    with SSEServer() as server:
        server.respond_with(
            401, {"Content-Type": "application/json"}, b'{"error": {"message": "bad key"}}'
        )
        with pytest.raises(ResponseError) as raised:
            EventSource(server.url).collect(timeout=5)
    assert raised.value.json() == {"error": {"message": "bad key"}}


def test_response_error_json_of_a_text_body_raises_value_error() -> None:
    with SSEServer() as server:
        server.respond_with(403, {"Content-Type": "text/plain"}, b"forbidden")
        with pytest.raises(ResponseError) as raised:
            EventSource(server.url).collect(timeout=5)
    with pytest.raises(ValueError):
        raised.value.json()


def test_enter_returns_self_typed() -> None:
    """``__enter__`` / ``__aenter__`` are annotated ``Self`` (a subclass keeps
    its type in ``with``)."""
    from typing import get_type_hints

    for method in (EventSource.__enter__, EventSource.__aenter__):
        hint = get_type_hints(method)["return"]
        assert "Self" in repr(hint), f"{method.__name__} returns {hint!r}"


def test_collect_on_a_closed_source_says_so() -> None:
    with SSEServer(events=[{"data": "a"}, {"data": "b"}]) as server:
        source = EventSource(server.url)
        assert [e.data for e in source.collect(n=1, timeout=5)] == ["a"]
        with pytest.raises(RuntimeError, match="closed"):
            source.collect(n=1, timeout=5)


@pytest.mark.anyio
async def test_acollect_on_a_closed_source_says_so() -> None:
    async with SSEServer(events=[{"data": "a"}]) as server:
        source = EventSource(server.url)
        assert [e.data for e in await source.acollect(n=1, timeout=5)] == ["a"]
        with pytest.raises(RuntimeError, match="closed"):
            await source.acollect(n=1, timeout=5)


def test_assert_events_hides_its_frames() -> None:
    """A failing assert_events points at the test's line, not the toolkit's
    (pytest honours ``__tracebackhide__``)."""
    from eventsource import ServerSentEvent
    from eventsource.testing import _assertions

    frames: list[Any] = []
    try:
        assert_events([ServerSentEvent(type="a")], ["b"])
    except AssertionError:
        tb = sys.exc_info()[2]
        while tb is not None:
            frames.append(tb.tb_frame)
            tb = tb.tb_next
    toolkit = [f for f in frames if f.f_code.co_filename == _assertions.__file__]
    assert toolkit, "assert_events did not fail"
    assert all(f.f_locals.get("__tracebackhide__") for f in toolkit)


def test_respond_takes_json_and_text_everywhere() -> None:
    """One vocabulary across SSEServer.respond_with, SSEMock.respond:
    ``json=`` (with its content type) and ``text=``."""
    with SSEServer() as server:
        server.respond_with(401, json={"error": "no"})
        with pytest.raises(ResponseError) as raised:
            EventSource(server.url).collect(timeout=5)
        assert raised.value.json() == {"error": "no"}
        assert raised.value.response is not None
        assert raised.value.response.headers["content-type"] == "application/json"
        server.respond_with(403, text="forbidden")
        with pytest.raises(ResponseError) as raised:
            EventSource(server.url).collect(timeout=5)
        assert raised.value.body == "forbidden"

    with SSEMock("http://sse.test/stream", http="httpx") as mock:
        mock.respond(status=401, json={"error": "no"})
        with pytest.raises(ResponseError) as raised:
            EventSource(mock.url).collect(timeout=5)
        assert raised.value.json() == {"error": "no"}
        mock.respond(status=403, text="forbidden")
        with pytest.raises(ResponseError) as raised:
            EventSource(mock.url).collect(timeout=5)
        assert raised.value.body == "forbidden"


# --- verify=, the retried statuses ---------------------------------------------------------


def _https_server(tls: Any) -> SSEServer:
    return SSEServer(events=[{"data": "a"}], tls=tls.server)


def test_verify_takes_a_ca_file_a_context_or_false(stack: str, tls: Any, tmp_path: Any) -> None:
    pem = tmp_path / "ca.pem"
    tls.ca.cert_pem.write_to_path(str(pem))
    with _https_server(tls) as server:
        url = server.url
        assert url.startswith("https://")
        for verify in (str(pem), tls.client, False):
            source = EventSource(url, http=stack, verify=verify)  # type: ignore[arg-type]
            assert [e.data for e in source.collect(n=1, timeout=5)] == ["a"], verify
        # The default verifies: the test CA is unknown to it.
        source = EventSource(url, http=stack, reconnect=False, max_retries=0)
        with pytest.raises(eventsource.EventSourceError):
            source.collect(n=1, timeout=5)


def test_verify_with_a_client_of_your_own_is_refused() -> None:
    import httpx

    with httpx.Client() as client, pytest.raises(ValueError, match="verify"):
        EventSource("https://127.0.0.1:1/", client=client, verify=False)


def test_default_retry_statuses_leave_out_what_retrying_cannot_fix() -> None:
    from eventsource import DEFAULT_RETRY_STATUSES

    assert {408, 429, 500, 502, 503, 504, 520, 521, 522, 523, 524, 529} <= DEFAULT_RETRY_STATUSES
    assert not {501, 505, 511} & DEFAULT_RETRY_STATUSES
    assert DEFAULT_RETRY_STATUSES == frozenset({408, 429, *range(500, 600)} - {501, 505, 511})


def test_help_names_the_default_retry_statuses() -> None:
    import inspect

    default = inspect.signature(EventSource).parameters["retry_statuses"].default
    assert repr(default) == "DEFAULT_RETRY_STATUSES"


def test_an_unreadable_ca_file_or_a_wrong_verify_fails_at_once(tmp_path: Any) -> None:
    with pytest.raises(ValueError, match="cannot load CA certificates"):
        EventSource("https://127.0.0.1:1/", verify=str(tmp_path / "missing.pem"))
    with pytest.raises(TypeError, match="verify must be"):
        EventSource("https://127.0.0.1:1/", verify=1.5)  # type: ignore[arg-type]


# --- URL hints (the command line prints check_url's message) -------------------------------


@pytest.mark.parametrize(
    ("given", "hint"),
    [
        pytest.param("localhost:8765/events", "http://localhost:8765/events"),
        pytest.param("127.0.0.1:8765/events", "http://127.0.0.1:8765/events"),
        pytest.param("[::1]:8765/events", "http://[::1]:8765/events"),
        ("example.com/events", "https://example.com/events"),
        pytest.param(
            "api.example.com:8443/v1/stream",
            "https://api.example.com:8443/v1/stream",
        ),
        pytest.param("not a url", None),
        pytest.param("", None),
    ],
)
def test_a_url_without_a_scheme_gets_one_hint(given: str, hint: str | None) -> None:
    with pytest.raises(ValueError, match="not an absolute") as raised:
        EventSource(given)
    message = str(raised.value)
    if hint is None:
        assert "did you mean" not in message
    else:
        assert message.endswith(f"(did you mean {hint!r}?)"), message


# --- redirects -----------------------------------------------------------------------------


def test_follow_redirects_false_makes_a_redirect_an_error(stack: str) -> None:
    with SSEServer(events=[{"data": "a"}]) as server:
        server.respond_with(302, {"Location": "/elsewhere"})
        with pytest.raises(ResponseError) as raised:
            EventSource(server.url, http=stack, follow_redirects=False).collect(timeout=5)
        assert raised.value.status_code == 302
        assert len(server.requests) == 1
        # Followed by default, as browsers do.
        server.respond_with(302, {"Location": "/elsewhere"})
        assert [e.data for e in EventSource(server.url, http=stack).collect(n=1, timeout=5)] == [
            "a"
        ]


# --- the pytest plugin costs nothing until a fixture is used ----------------------------------


def test_the_plugin_imports_nothing_heavy() -> None:
    import subprocess

    code = (
        "import sys, eventsource.testing._plugin\n"
        "heavy = [m for m in ('httpx', 'httpcore', 'h11', 'anyio', 'eventsource._source',"
        " 'eventsource.testing._server', 'eventsource.testing._asgi') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]"


def test_the_lazy_package_still_gives_every_public_name() -> None:
    import subprocess

    code = (
        "import eventsource, eventsource.testing\n"
        "for name in eventsource.__all__: getattr(eventsource, name)\n"
        "for name in eventsource.testing.__all__: getattr(eventsource.testing, name)\n"
        "from eventsource import *\n"
        "from eventsource.testing import *\n"
        "assert sorted(dir(eventsource)) == sorted(set(dir(eventsource)))\n"
        "assert set(eventsource.__all__) <= set(dir(eventsource))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr


# --- the terminal is the user's ---------------------------------------------------------------

HOSTILE = "\x1b]0;pwned\x07\x1b[2J\x1b[6n\x9b31m\x1b]8;;http://evil/\x1b\\link\x1b]8;;\x1b\\"


class _Terminal:
    """A text stream that says it is a terminal."""

    def __init__(self) -> None:
        import io

        self.text = io.StringIO()

    def isatty(self) -> bool:
        return True

    def write(self, s: str) -> int:
        return self.text.write(s)

    def flush(self) -> None:
        pass


def _controls(text: str) -> list[str]:
    return [c for c in text if (ord(c) < 32 and c not in "\n") or 0x7F <= ord(c) < 0xA0]


@pytest.mark.parametrize("format", ["pretty", "raw"])
def test_a_terminal_gets_the_server_s_control_characters_escaped(format: str) -> None:
    from datetime import datetime, timezone

    from eventsource import ServerSentEvent
    from eventsource._cli._output import Printer

    out = _Terminal()
    printer = Printer.for_stream(out, format, "never")  # type: ignore[arg-type]
    event = ServerSentEvent(type="t" + HOSTILE, data="line\n" + HOSTILE, id="i" + HOSTILE)
    printer.write(event, datetime.now(timezone.utc))
    written = out.text.getvalue()
    assert _controls(written) == [], repr(written)
    assert "\\x1b" in written and "\\x9b" in written  # shown, not dropped


def test_json_lines_escape_c1_controls_too() -> None:
    import io
    import json
    from datetime import datetime, timezone

    from eventsource import ServerSentEvent
    from eventsource._cli._output import Printer

    out = io.StringIO()
    Printer(out, "jsonl").write(ServerSentEvent(data=HOSTILE), datetime.now(timezone.utc))
    line = out.getvalue()
    assert _controls(line.rstrip("\n")) == [], repr(line)
    assert json.loads(line)["data"] == HOSTILE  # the same text, escaped in JSON


def test_an_error_line_escapes_the_reason_phrase() -> None:
    from eventsource._cli._output import describe_error

    class Response:
        reason_phrase = "Nope" + HOSTILE
        request = None

    error = ResponseError("refused", status_code=403, response=Response())  # type: ignore[arg-type]
    line = describe_error(error, "http://127.0.0.1:1/")
    assert _controls(line) == [], repr(line)


# --- one final on_error a failure ---------------------------------------------------------------


def test_retries_running_out_is_one_final_on_error(stack: str) -> None:
    from eventsource import ConnectionLostError, RetriesExhaustedError

    errors: list[Any] = []
    with SSEServer() as server:
        server.respond_with(503, {"Retry-After": "0"}, times=None)
        source = EventSource(
            server.url,
            http=stack,
            max_retries=2,
            retry=0.01,
            min_retry_delay=0.01,
            on_error=errors.append,
        )
        with pytest.raises(RetriesExhaustedError) as raised:
            source.collect(timeout=10)
    final = [error for error in errors if not error.will_retry]
    assert len(final) == 1, final
    assert isinstance(final[0], RetriesExhaustedError) and final[0] is raised.value
    assert isinstance(final[0].__cause__, ResponseError)
    assert [e.will_retry for e in errors] == [True, True, False]
    assert not isinstance(final[0], ConnectionLostError)


# --- failures that retrying cannot fix ----------------------------------------------------------


def _first_error(url: str, stack: str, user: bool, **kwargs: Any) -> tuple[Any, float, int]:
    """What a source raises (and how soon, and how many errors it reported)."""
    import time

    errors: list[Any] = []
    client = None
    if user:
        import importlib

        client = importlib.import_module(stack).Client(trust_env=False)
    started = time.monotonic()
    try:
        EventSource(
            url,
            client=client,
            http=None if user else stack,  # type: ignore[arg-type]
            retry=0.2,
            min_retry_delay=0.2,
            on_error=errors.append,
            **kwargs,
        ).collect(timeout=4)
    except eventsource.EventSourceError as exc:
        return exc, time.monotonic() - started, len(errors)
    finally:
        if client is not None:
            client.close()
    raise AssertionError("the source raised nothing")


@pytest.mark.parametrize("user", [False, True], ids=["own", "user"])
def test_a_certificate_that_fails_verification_fails_at_once(
    stack: str, user: bool, tls: Any
) -> None:
    with SSEServer(events=[{"data": "a"}], tls=tls.server) as server:
        error, took, reported = _first_error(server.url, stack, user)
    assert type(error).__name__ == "ConnectError", repr(error)
    assert "certificate verify failed" in str(error)
    assert "verify=" in str(error)
    assert took < 3 and reported == 1


@pytest.mark.parametrize("user", [False, True], ids=["own", "user"])
def test_https_to_a_plain_port_fails_at_once(stack: str, user: bool) -> None:
    with SSEServer(events=[{"data": "a"}]) as server:
        url = server.url.replace("http://", "https://")
        error, took, reported = _first_error(url, stack, user)
    assert type(error).__name__ == "ConnectError", repr(error)
    assert "TLS" in str(error)
    assert took < 3 and reported == 1


NGINX_400 = (
    b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/html\r\ncontent-length: 48\r\n"
    b"connection: close\r\n\r\nThe plain HTTP request was sent to HTTPS port..."
)
TLS_ALERT = b"\x15\x03\x03\x00\x02\x02\x46"  # a TLS alert record: protocol_version


@contextlib.contextmanager
def _answering(answer: bytes) -> Iterator[int]:
    """A loopback port whose server answers every request with these bytes
    and hangs up (stopped on exit: a polled accept, as closing a listener
    does not wake one blocked in accept())."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                conn.recv(65536)
                conn.sendall(answer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        listener.close()


TLS_ALERT_USER = (
    "LIMITATION: on a client of the user's own (httpcore's network backend) a TLS server "
    "that answers plain HTTP with a TLS alert record is retried as a broken response: "
    "h11's error does not show the bytes, and the source does not ask the port around "
    "the client's own route (tests/test_tls_mismatch.py). eventsource's own backend reads "
    "the record and fails at once (ConnectError); nginx and Go answer 400 (a ResponseError)"
)


@pytest.mark.parametrize(
    ("answer", "user"),
    [
        pytest.param(NGINX_400, False, id="400-own"),
        pytest.param(NGINX_400, True, id="400-user"),
        pytest.param(TLS_ALERT, False, id="tls-alert-own"),
        pytest.param(
            TLS_ALERT,
            True,
            id="tls-alert-user",
            marks=pytest.mark.xfail(strict=True, reason=TLS_ALERT_USER),
        ),
    ],
)
def test_http_to_a_tls_port_fails_at_once(stack: str, user: bool, answer: bytes) -> None:
    with _answering(answer) as port:
        error, took, reported = _first_error(f"http://127.0.0.1:{port}/", stack, user)
    assert isinstance(error, (ResponseError, eventsource.ConnectError)), repr(error)
    assert took < 3 and reported == 1
    if answer == TLS_ALERT:
        assert "answered with TLS: use https://" in str(error), str(error)


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
@pytest.mark.anyio
async def test_http_to_a_tls_port_that_sends_an_alert_fails_at_once_in_async_code(
    stack: str, anyio_backend: str
) -> None:
    errors: list[Any] = []
    with _answering(TLS_ALERT) as port, anyio.fail_after(4):
        url = f"http://127.0.0.1:{port}/"
        source = EventSource(url, http=stack, retry=0.2, on_error=errors.append)  # type: ignore[arg-type]
        with pytest.raises(eventsource.ConnectError, match="answered with TLS: use https://"):
            await source.acollect(timeout=3)
    assert len(errors) == 1


def test_a_tls_record_where_a_head_is_due_is_told_apart() -> None:
    from eventsource._backend import HeadCut
    from eventsource._httpx import SpeaksTLS

    for record in (TLS_ALERT, b"\x16\x03\x01\x00\x05hello"):
        cut = HeadCut()
        cut.wrote(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        with pytest.raises(SpeaksTLS):
            cut.cut(record)
    cut = HeadCut()
    cut.wrote(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert cut.cut(b"HTTP/1.1 200 OK\r\n\r\n\x15\x03") == 19  # body bytes are no head


def test_a_certificate_failure_after_a_first_open_is_retried(stack: str, tls: Any) -> None:
    """A certificate rotated mid-life (here: the second connection presents
    one from another CA) is retried, as a dropped connection is."""
    import socket
    import ssl
    import threading

    import trustme

    other = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert("127.0.0.1").configure_cert(other)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    done = threading.Event()

    def serve() -> None:
        for n in range(3):
            try:
                raw, _ = listener.accept()
            except OSError:
                return
            context = other if n == 1 else tls.server
            try:
                conn = context.wrap_socket(raw, server_side=True)
                conn.recv(65536)
                event = b"id: %d\ndata: e%d\n\n" % (n, n)
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                    b"content-length: %d\r\n\r\n%s" % (len(event), event)
                )
                conn.close()
            except (OSError, ssl.SSLError):
                raw.close()
        done.set()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    errors: list[Any] = []
    try:
        events = EventSource(
            f"https://127.0.0.1:{port}/",
            http=stack,  # type: ignore[arg-type]
            verify=tls.client,
            retry=0.05,
            min_retry_delay=0.05,
            on_error=errors.append,
        ).collect(n=2, timeout=10)
    finally:
        listener.close()
        thread.join(5)
    assert [e.data for e in events] == ["e0", "e2"]
    failed = [e for e in errors if "certificate" in str(e)]
    assert failed and all(e.will_retry for e in failed), errors


# --- errors and logs ---------------------------------------------------------------------------


def test_a_raised_failure_is_not_logged_at_error(caplog: pytest.LogCaptureFixture) -> None:
    with SSEServer() as server, caplog.at_level(logging.DEBUG, logger="eventsource"):
        server.respond_with(404)
        with pytest.raises(ResponseError):
            EventSource(server.url).collect(timeout=5)
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_retry_log_lines_name_their_cause(caplog: pytest.LogCaptureFixture) -> None:
    import socket

    with (
        SSEServer(events=[{"data": "a"}]) as server,
        caplog.at_level(logging.INFO, logger="eventsource"),
    ):
        server.respond_with(503, {"Retry-After": "0"})
        EventSource(server.url, retry=0.01, min_retry_delay=0.01).collect(n=1, timeout=5)
    retried = [r.getMessage() for r in caplog.records if "reconnecting in" in r.getMessage()]
    assert retried and all("connection lost" not in line for line in retried), retried
    assert any("503" in line for line in retried), retried

    caplog.clear()
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nobody listens: refused
    with caplog.at_level(logging.INFO, logger="eventsource"):
        with pytest.raises(eventsource.EventSourceError):
            EventSource(
                f"http://127.0.0.1:{port}/", max_retries=1, retry=0.01, min_retry_delay=0.01
            ).collect(timeout=5)
    retried = [r.getMessage() for r in caplog.records if "reconnecting in" in r.getMessage()]
    assert retried and all(line.startswith("cannot connect") for line in retried), retried


@pytest.mark.parametrize("bad", [0, -1, float("nan")])
def test_a_read_timeout_that_is_no_duration_is_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="read_timeout"):
        EventSource("http://127.0.0.1:1/", read_timeout=bad)


@pytest.mark.parametrize(
    ("body", "content_type", "shown"),
    [
        (
            b'{"error": {"message": "Incorrect API key provided"}}',
            "application/json",
            "Incorrect API key provided",
        ),
        (b'{"message": "token expired"}', "application/json", "token expired"),
        (b"Forbidden: ask an admin\n" + b"x" * 500, "text/plain", "Forbidden: ask an admin"),
        pytest.param(
            bytes(range(256)) * 4,
            "application/octet-stream",
            "not text",
            id="binary",
        ),
    ],
)
def test_the_cli_shows_the_refused_body(body: bytes, content_type: str, shown: str) -> None:
    from eventsource._cli._output import describe_error

    with SSEServer() as server:
        server.respond_with(401, {"Content-Type": content_type}, body)
        with pytest.raises(ResponseError) as raised:
            EventSource(server.url).collect(timeout=5)
        line = describe_error(raised.value, server.url)
    assert line.startswith("401 Unauthorized from ")
    assert shown in line, line
    assert len(line) < 400 and "\n" not in line


def test_a_timeout_object_s_read_sets_the_read_timeout(stack: str) -> None:
    import importlib

    from eventsource import ReadTimeoutError

    module = importlib.import_module(stack)
    errors: list[Any] = []
    with SSEServer(events=[{"data": "a"}]) as server:
        source = EventSource(
            server.url,
            http=stack,  # type: ignore[arg-type]
            timeout=module.Timeout(10, read=0.3),
            retry=0.01,
            min_retry_delay=0.01,
            on_error=errors.append,
        )
        source.collect(timeout=3)  # the stream stays silent after "a"
    assert any(isinstance(e, ReadTimeoutError) for e in errors), errors


def test_an_explicit_read_timeout_wins_over_the_timeout_object() -> None:
    import httpx

    def read_timeout(source: EventSource) -> Any:
        return source._spec.read_timeout  # noqa: SLF001 (what the source will use)

    url = "http://127.0.0.1:1/"
    assert read_timeout(EventSource(url, timeout=httpx.Timeout(10, read=0.3), read_timeout=7)) == 7
    # Timeout(10) sets all four alike: an event stream keeps its 60 s.
    assert read_timeout(EventSource(url, timeout=httpx.Timeout(10.0))) == 60
    assert read_timeout(EventSource(url, timeout=10.0)) == 60
    with httpx.Client() as client:  # a client of your own: its Timeout is its own business
        assert read_timeout(EventSource(url, client=client, timeout=httpx.Timeout(1, read=2))) == 60
