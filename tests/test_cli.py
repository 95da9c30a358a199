"""The command line, in-process: main(argv) against a loopback SSEServer.

The same entry point run as a subprocess (formats, the demo, Ctrl-C, a closed
pipe) is in test_cli_process.py.
"""

from __future__ import annotations

import ast
import io
import json
import socket
import ssl
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import trustme

import eventsource._cli._session as session_module
from eventsource import parse
from eventsource.__main__ import main
from eventsource._cli._demo import run_demo
from eventsource.testing import SSEServer

ROOT = Path(__file__).resolve().parent.parent
ANSI = "\x1b["
FIXED = datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=timezone.utc)

# Five events: a type, JSON with a retry field, multi-line data, an event that
# inherits the last id, empty data. The server ends the stream after them.
EVENTS: list[dict[str, Any]] = [
    {"data": "a", "event": "chunk", "id": "1"},
    {"data": {"content": "héllo"}, "event": "chunk", "id": "2", "retry": 50},
    {"data": "line 1\nline 2", "id": "3"},
    {"data": "no id"},
    {"data": "", "event": "done", "id": "4"},
]

JSONL = (
    '{"type": "chunk", "data": "a", "id": "1", "retry": null,'
    ' "received_at": "2024-05-01T12:00:00.123+00:00"}\n'
    '{"type": "chunk", "data": "{\\"content\\":\\"héllo\\"}", "id": "2", "retry": 50,'
    ' "received_at": "2024-05-01T12:00:00.123+00:00"}\n'
    '{"type": "message", "data": "line 1\\nline 2", "id": "3", "retry": null,'
    ' "received_at": "2024-05-01T12:00:00.123+00:00"}\n'
    '{"type": "message", "data": "no id", "id": "3", "retry": null,'
    ' "received_at": "2024-05-01T12:00:00.123+00:00"}\n'
    '{"type": "done", "data": "", "id": "4", "retry": null,'
    ' "received_at": "2024-05-01T12:00:00.123+00:00"}\n'
)

RAW = (
    "event: chunk\nid: 1\ndata: a\n\n"
    'event: chunk\nid: 2\nretry: 50\ndata: {"content":"héllo"}\n\n'
    "id: 3\ndata: line 1\ndata: line 2\n\n"
    "data: no id\n\n"
    "event: done\nid: 4\ndata:\n\n"
)

PRETTY = (
    "chunk  id: 1\na\n\n"
    'chunk  id: 2  retry: 50 ms\n{"content": "héllo"}\n\n'
    "message  id: 3\nline 1\nline 2\n\n"
    "message  id: 3\nno id\n\n"
    "done  id: 4\n(empty data)\n\n"
)


@pytest.fixture
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(session_module, "_now", lambda: FIXED)


@pytest.fixture
def server() -> Any:
    """A server that plays EVENTS, then ends the stream (once)."""
    with SSEServer(EVENTS) as server:
        server.end_after(len(EVENTS))
        yield server


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def refused_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/stream"


# --- output formats -------------------------------------------------------------------------


def test_jsonl_is_the_default_when_piped(
    server: SSEServer, fixed_clock: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([server.url, "--no-reconnect"]) == 0
    out, err = capsys.readouterr()
    assert out == JSONL
    assert err == ""


def test_raw_gives_the_wire_format_back(
    server: SSEServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([server.url, "--no-reconnect", "--format", "raw"]) == 0
    out = capsys.readouterr().out
    assert out == RAW
    assert out.encode() == b"".join(server.history)  # byte for byte what was sent
    assert [e.data for e in parse(out)] == [
        "a",
        '{"content":"héllo"}',
        "line 1\nline 2",
        "no id",
        "",
    ]


def test_pretty_without_a_terminal_has_no_colour(
    server: SSEServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([server.url, "--no-reconnect", "-f", "pretty"]) == 0
    out = capsys.readouterr().out
    assert out == PRETTY
    assert ANSI not in out


def test_pretty_is_the_default_on_a_terminal_with_type_and_id_dimmed(
    server: SSEServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    tty = FakeTTY()
    monkeypatch.setattr(sys, "stdout", tty)
    assert main([server.url, "--no-reconnect"]) == 0
    out = tty.getvalue()
    assert out.startswith("\x1b[2mchunk  id: 1\x1b[0m\na\n\n")
    assert "\x1b[2mdone  id: 4\x1b[0m\n" in out
    # Without the escapes, it is the plain pretty format.
    assert out.replace("\x1b[2m", "").replace("\x1b[0m", "") == PRETTY


def test_no_color_turns_colours_off_on_a_terminal(
    server: SSEServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    tty = FakeTTY()
    monkeypatch.setattr(sys, "stdout", tty)
    assert main([server.url, "--no-reconnect"]) == 0
    assert tty.getvalue() == PRETTY


def test_color_always_wins_over_no_color(
    server: SSEServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    assert main([server.url, "--no-reconnect", "-f", "pretty", "--color", "always"]) == 0
    assert "\x1b[2mchunk  id: 1\x1b[0m" in capsys.readouterr().out


def test_pretty_prints_long_json_indented(capsys: pytest.CaptureFixture[str]) -> None:
    data = {"role": "assistant", "content": "x" * 80}
    with SSEServer([{"data": data, "event": "message"}]) as server:
        assert main([server.url, "-n", "1", "-f", "pretty"]) == 0
    out = capsys.readouterr().out
    assert out == 'message\n{\n  "role": "assistant",\n  "content": "' + "x" * 80 + '"\n}\n\n'


# --- filters and limits ----------------------------------------------------------------------


def test_type_filter(server: SSEServer, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([server.url, "--no-reconnect", "-f", "raw", "--type", "chunk"]) == 0
    assert [e.type for e in parse(capsys.readouterr().out)] == ["chunk", "chunk"]


def test_type_filter_repeated(server: SSEServer, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main([server.url, "--no-reconnect", "-f", "raw", "--type", "done", "--type", "message"])
        == 0
    )
    events = list(parse(capsys.readouterr().out))
    assert [(e.type, e.data) for e in events] == [
        ("message", "line 1\nline 2"),
        ("message", "no id"),
        ("done", ""),
    ]


def test_max_events_counts_the_events_shown(
    server: SSEServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([server.url, "-n", "1", "--type", "message", "-f", "raw"]) == 0
    assert capsys.readouterr().out == "id: 3\ndata: line 1\ndata: line 2\n\n"


def test_max_events_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    with SSEServer(EVENTS) as server:  # endless: no drop
        assert main([server.url, "-n", "2", "-f", "raw"]) == 0
        server.wait_until(lambda: server.connections[0].closed_by_client)
    assert capsys.readouterr().out == "".join(RAW.split("\n\n")[i] + "\n\n" for i in (0, 1))


# --- the request --------------------------------------------------------------------------


def test_headers_method_and_body_reach_the_server(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["-H", "Authorization: Bearer t0k", "-H", "X-Tag: 1", "-H", "X-Tag: 2"]
    argv += ["-X", "put", "-d", "hello body", "-n", "1"]
    with SSEServer(EVENTS) as server:
        assert main([server.url, *argv]) == 0
    request = server.requests[0]
    assert request.method == "PUT"
    assert request.headers["authorization"] == "Bearer t0k"
    assert request.headers.get_list("x-tag") == ["1", "2"]
    assert request.headers["accept"] == "text/event-stream"
    assert request.body == b"hello body"
    assert request.last_event_id is None


def test_data_from_a_file_is_sent_as_is_with_post(tmp_path: Path) -> None:
    body = b'{"prompt": "Hi"}\n\x00binary\xff'
    path = tmp_path / "body.bin"
    path.write_bytes(body)
    with SSEServer(EVENTS) as server:
        assert main([server.url, "-d", f"@{path}", "-n", "1"]) == 0
    assert server.requests[0].method == "POST"
    assert server.requests[0].body == body


def test_json_body(capsys: pytest.CaptureFixture[str]) -> None:
    with SSEServer(EVENTS) as server:
        assert main([server.url, "--json", '{"prompt": "Hi", "n": 1}', "-n", "1"]) == 0
    request = server.requests[0]
    assert request.method == "POST"
    assert request.headers["content-type"] == "application/json"
    assert request.body == b'{"prompt": "Hi", "n": 1}'


@pytest.mark.parametrize(
    ("resume", "expected"),
    [
        ([], [("POST", None), ("GET", "1")]),
        (["--resume", "resend"], [("POST", None), ("POST", "1")]),
    ],
)
def test_a_post_stream_is_resumed_as_resume_says(resume: list[str], expected: Any) -> None:
    """--json POSTs; the stream ends after its first event (an id): by
    default the rest comes by GET, without the body or its Content-Type."""
    with SSEServer([{"data": "a", "id": "1", "retry": 10}, {"data": "b", "id": "2"}]) as server:
        server.end_after(1)
        assert main([server.url, "--json", "{}", "-n", "2", "-f", "raw", *resume]) == 0
    assert [(r.method, r.last_event_id) for r in server.requests] == expected
    second = server.requests[1]
    assert ("content-type" in second.headers) is (second.method == "POST")


def test_resume_none_ends_a_post_stream_at_its_end() -> None:
    with SSEServer([{"data": "a", "id": "1"}, {"data": "b", "id": "2"}]) as server:
        server.end_after(1)
        assert main([server.url, "--json", "{}", "-f", "raw", "--resume", "none"]) == 0
    assert len(server.requests) == 1


def test_json_content_type_can_be_overridden() -> None:
    with SSEServer(EVENTS) as server:
        argv = [server.url, "--json", "[]", "-H", "Content-Type: application/x-ndjson", "-n", "1"]
        assert main(argv) == 0
    assert server.requests[0].headers.get_list("content-type") == ["application/x-ndjson"]


def test_last_event_id_is_sent_and_the_server_resumes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with SSEServer(EVENTS) as server:
        assert main([server.url, "--last-event-id", "3", "-n", "2", "-f", "raw"]) == 0
    assert server.requests[0].last_event_id == "3"
    # The stream resumes after id 3; the next event keeps that id, so raw writes none.
    assert capsys.readouterr().out == "data: no id\n\nevent: done\nid: 4\ndata:\n\n"


def _record_transports(monkeypatch: pytest.MonkeyPatch) -> list[tuple[ssl.SSLContext, bool]]:
    """The TLS context and the http2 flag of each client the CLI makes (on
    eventsource's transport)."""
    import eventsource._cli._session as session

    seen: list[tuple[ssl.SSLContext, bool]] = []
    original = session.client_kwargs

    def recording(context: ssl.SSLContext, **kwargs: Any) -> dict[str, Any]:
        seen.append((context, kwargs.get("http2", False)))
        return original(context, **kwargs)

    monkeypatch.setattr(session, "client_kwargs", recording)
    return seen


def test_insecure_makes_a_client_that_does_not_verify(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _record_transports(monkeypatch)
    with SSEServer(EVENTS) as server:
        assert main([server.url, "-n", "1", "-k"]) == 0
        assert main([server.url, "-n", "1"]) == 0
    assert [context.verify_mode for context, _ in seen] == [ssl.CERT_NONE, ssl.CERT_REQUIRED]


# --- ends and exit codes ----------------------------------------------------------------------


def test_204_ends_normally(capsys: pytest.CaptureFixture[str]) -> None:
    with SSEServer() as server:
        server.respond_with(204)
        assert main([server.url]) == 0
    assert capsys.readouterr() == ("", "")


def test_error_status_exits_1_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with SSEServer() as server:
        url = server.url
        server.respond_with(401)
        assert main([server.url]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"error: 401 Unauthorized from {url}: not retrying\n"


def test_wrong_content_type_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    with SSEServer() as server:
        url = server.url
        server.respond_with(200, {"Content-Type": "application/json"}, b"{}")
        assert main([server.url]) == 1
    err = capsys.readouterr().err
    assert err == (
        "error: expected Content-Type text/event-stream, got 'application/json'"
        f" for GET url '{url}'\n"
    )


def test_retries_exhausted_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    with SSEServer() as server:
        url = server.url
        server.respond_with(503, times=None)
        assert main([server.url, "--max-retries", "0"]) == 1
    err = capsys.readouterr().err
    assert err == (
        f"error: gave up on {url} after 1 attempt in a row failed;"
        " the last: 503 Service Unavailable\n"
    )


def test_event_too_large_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    with SSEServer([{"data": "x" * 100, "id": "1"}]) as server:
        url = server.url
        assert main([server.url, "--max-event-size", "10"]) == 1
    err = capsys.readouterr().err
    assert err == f"error: event or line larger than max_event_size (10 characters) from {url}\n"


def test_connection_refused_without_reconnect_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    url = refused_url()
    assert main([url, "--no-reconnect"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot connect to {url}: ") and err.count("\n") == 1


def test_drop_without_reconnect_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    with SSEServer(EVENTS[:1]) as server:  # one event, then silence
        url = server.url
        assert main([server.url, "--no-reconnect", "--read-timeout", "0.2"]) == 1
    out, err = capsys.readouterr()
    assert out.count("\n") == 1
    assert err == f"error: no data for 0.2 s ({url})\n"


def test_timeout_after_the_stream_opened_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    with SSEServer(EVENTS[:1]) as server:  # endless
        assert main([server.url, "--timeout", "1", "-f", "raw"]) == 0
        server.wait_until(lambda: server.connections[0].closed_by_client)
    assert capsys.readouterr() == ("event: chunk\nid: 1\ndata: a\n\n", "")


def test_timeout_before_any_stream_opened_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    with SSEServer() as server:
        url = server.url
        server.respond_with(503, times=None)
        assert main([server.url, "--timeout", "0.5"]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "retrying in 3.0 s: 503 Service Unavailable"  # the failed attempt
    assert lines[1].startswith(f"error: no stream opened from {url} within 0.5 s")
    assert len(lines) == 2


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--demo", "http://127.0.0.1:1/"],
        ["http://127.0.0.1:1/", "-H", "no colon"],
        ["http://127.0.0.1:1/", "--json", "{not json"],
        ["http://127.0.0.1:1/", "-d", "a", "--json", "{}"],
        ["http://127.0.0.1:1/", "-n", "0"],
        ["http://127.0.0.1:1/", "--timeout", "-1"],
        ["http://127.0.0.1:1/", "--last-event-id", "a\nb"],
        ["http://127.0.0.1:1/", "-d", "@/nonexistent/file"],
        ["http://127.0.0.1:1/", "--format", "xml"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert "usage: eventsource" in capsys.readouterr().err


# --- verbose -------------------------------------------------------------------------------------


def test_verbose_shows_the_connection_life(capsys: pytest.CaptureFixture[str]) -> None:
    events: list[dict[str, Any]] = [{"data": "a", "id": "1", "retry": 10}, {"data": "b", "id": "2"}]
    with SSEServer(events) as server:
        url = server.url
        server.end_after(1)  # the first stream ends after "a"
        assert main([server.url, "-v", "-n", "2", "-f", "raw"]) == 0
    out, err = capsys.readouterr()
    assert [e.data for e in parse(out)] == ["a", "b"]
    lines = err.splitlines()
    assert lines[:3] == [f"> GET {url}", "< HTTP/1.1 200 OK", "< content-type: text/event-stream"]
    assert f"* open: {url} (HTTP 200)" in lines
    drop = (
        "* connection lost (the server ended the stream);"
        " reconnecting in 0.1 s with Last-Event-ID '1'"  # retry: 10, from 100 ms
    )
    assert drop in lines
    assert lines[lines.index(drop) + 1 : lines.index(drop) + 3] == [
        f"> GET {url}",
        "> Last-Event-ID: 1",
    ]
    assert lines[-1] == f"* closed: {url}"
    assert ANSI not in err


def test_nothing_on_stderr_without_verbose(capsys: pytest.CaptureFixture[str]) -> None:
    with SSEServer([{"data": "a", "id": "1", "retry": 10}, {"data": "b", "id": "2"}]) as server:
        server.drop_after(1)
        assert main([server.url, "-n", "2"]) == 0
    assert capsys.readouterr().err == ""


# --- failed attempts, stop conditions, TLS and HTTP/2 options (issue 13) --------------------------


def test_a_refused_connection_is_one_line_per_attempt(capsys: pytest.CaptureFixture[str]) -> None:
    url = refused_url()
    assert main([url, "--timeout", "0.5"]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "retrying in 3.0 s: connection refused"
    assert lines[1].startswith(f"error: no stream opened from {url} within 0.5 s")
    assert len(lines) == 2


def test_verbose_keeps_its_own_lines_instead(capsys: pytest.CaptureFixture[str]) -> None:
    url = refused_url()
    assert main([url, "-v", "--timeout", "0.5"]) == 1
    err = capsys.readouterr().err
    assert "retrying in" not in err
    assert f"* cannot connect to {url} (" in err and "reconnecting in 3 s" in err


def test_a_stream_that_ends_before_any_event_is_a_failed_attempt(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with SSEServer([{"data": "a", "id": "1"}]) as server:
        server.respond_with(200, {"Content-Type": "text/event-stream"}, b"retry: 10\n\n")
        assert main([server.url, "-n", "1"]) == 0
    out, err = capsys.readouterr()
    assert err == "retrying in 0.1 s: the server ended the stream\n"  # retry: 10, from 100 ms
    assert json.loads(out)["data"] == "a"


def test_until_counts_events_hidden_by_type(capsys: pytest.CaptureFixture[str]) -> None:
    with SSEServer(EVENTS) as server:  # endless
        assert main([server.url, "--type", "message", "--until", "chunk"]) == 0
    assert capsys.readouterr() == ("", "")


def test_until_data(capsys: pytest.CaptureFixture[str]) -> None:
    with SSEServer(EVENTS) as server:  # endless
        assert main([server.url, "--until-data", "line 1\nline 2", "-f", "raw"]) == 0
    assert capsys.readouterr().out == RAW.split("data: no id")[0]


def test_json_data_leaves_other_formats_alone(
    server: SSEServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([server.url, "--no-reconnect", "-f", "raw", "--json-data"]) == 0
    assert capsys.readouterr().out == RAW


def test_cacert_and_http2_reach_the_client(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen = _record_transports(monkeypatch)
    ca = trustme.CA()
    pem = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(pem))
    with SSEServer(EVENTS) as server:
        assert main([server.url, "-n", "1", "--cacert", str(pem), "--http2"]) == 0
        assert main([server.url, "-n", "1"]) == 0
    (cacert, http2), (default, plain) = seen
    assert http2 is True and plain is False
    assert cacert.get_ca_certs() != default.get_ca_certs()  # --cacert's own bundle
    assert default.verify_mode is ssl.CERT_REQUIRED


def test_http2_without_h2_is_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "h2", None)  # as if the package were not installed
    assert main(["https://127.0.0.1:1/stream", "--http2"]) == 2
    assert capsys.readouterr() == (
        "",
        "error: --http2 needs the http2 extra: "
        "pip install -e '.[http2]' in a checkout of eventsource\n",
    )


def test_insecure_and_cacert_together_are_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["https://127.0.0.1:1/stream", "-k", "--cacert", "ca.pem"])
    assert info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


# --- the demo ------------------------------------------------------------------------------------


def test_demo_in_process() -> None:
    out = io.StringIO()
    assert run_demo(out) == 0
    text = out.getvalue()
    assert "14 events over 2 connections; ids 1..14, none lost or repeated: True" in text
    assert ANSI not in text


def test_chat_example_runs() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "chat_stream.py")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "Hello, how can I help?" in result.stdout
    assert "'role': 'assistant'" in result.stdout


# --- the package's imports -------------------------------------------------------------------

PACKAGE = ROOT / "eventsource"
CLI_MODULES = [
    "eventsource._cli",
    "eventsource._cli._args",
    "eventsource._cli._demo",
    "eventsource._cli._output",
    "eventsource._cli._session",
]


def import_graph() -> dict[str, set[str]]:
    """Which eventsource modules each eventsource module imports, anywhere in
    its source (function-level imports too). ``from X import name`` counts as
    importing X, and X.name when that is a module."""
    files = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        is_package = parts[-1] == "__init__"
        files[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    graph: dict[str, set[str]] = {}
    for name, (path, is_package) in files.items():
        here = name.split(".") if is_package else name.split(".")[:-1]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here[: len(here) - node.level + 1]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                targets.add(module)
                targets.update(f"{module}.{alias.name}" for alias in node.names)
        graph[name] = {t for t in targets if t in files and t != name}
    return graph


def circle_from(start: str, graph: dict[str, set[str]]) -> list[str] | None:
    """A chain of imports that leads from `start` back to it, if there is one."""
    seen: set[str] = set()

    def visit(chain: list[str]) -> list[str] | None:
        for module in sorted(graph[chain[-1]]):
            if module == start:
                return [*chain, module]
            if module not in seen:
                seen.add(module)
                found = visit([*chain, module])
                if found is not None:
                    return found
        return None

    return visit([start])


def test_the_cli_modules_import_each_other_in_no_circle() -> None:
    graph = import_graph()
    assert set(CLI_MODULES) == {m for m in graph if m.startswith("eventsource._cli")}
    assert {m: circle_from(m, graph) for m in CLI_MODULES} == dict.fromkeys(CLI_MODULES)
    # no part imports the package's __init__: only __main__ does
    assert [m for m in graph if "eventsource._cli" in graph[m]] == ["eventsource.__main__"]


@pytest.mark.parametrize("module", CLI_MODULES)
def test_each_cli_module_imports_alone(module: str) -> None:
    code = (
        f"import sys, {module}; "
        "print(' '.join(m for m in sys.modules if m.startswith('eventsource')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    loaded = result.stdout.split()
    if module != "eventsource._cli._demo":  # the demo's server loads only for --demo
        assert "eventsource._cli._demo" not in loaded
        assert "eventsource.testing" not in loaded
