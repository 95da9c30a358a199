"""The command line as a user runs it: `python -m eventsource` in a subprocess,
against a loopback SSEServer (formats, exit codes, the demo, Ctrl-C, a reader
that goes away)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

import pytest
import trustme

import eventsource
from eventsource.testing import SSEServer

from ._servers import HyperServer
from .test_cli import ANSI, EVENTS, JSONL, PRETTY, RAW

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 60  # seconds: a subprocess still running after this is hung
ISO = re.compile(r'"received_at": "\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00"')


def environ(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "PYTHONIOENCODING")}
    env["PYTHONIOENCODING"] = "utf-8"
    env.update(extra)
    return env


def run(
    *args: str, input: str | None = None, flags: tuple[str, ...] = (), **env: str
) -> subprocess.CompletedProcess[str]:
    """``python [flags] -m eventsource args``, with ``env`` added to the environment."""
    return subprocess.run(
        [sys.executable, *flags, "-m", "eventsource", *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=TIMEOUT,
        cwd=ROOT,
        input=input,
        env=environ(**env),
    )


def _default_sigint() -> None:
    # A shell's background job (`nohup ... &`, some CI runners) starts with
    # SIGINT ignored, and children inherit that: Python then installs no
    # KeyboardInterrupt handler, and a Ctrl-C test would hang. A terminal's
    # Ctrl-C is what the tests mean, so the child starts with the default.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "eventsource", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        cwd=ROOT,
        env=environ(),
        preexec_fn=None if sys.platform == "win32" else _default_sigint,  # noqa: PLW1509
    )


def first_line(stream: IO[str], timeout: float = TIMEOUT) -> str:
    """The stream's next line, waiting at most `timeout` seconds for it."""
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    if not lines:
        raise TimeoutError(f"no line within {timeout} s")
    return lines[0]


def stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.kill()
    process.wait(TIMEOUT)
    for pipe in (process.stdout, process.stderr):
        if pipe is not None:
            pipe.close()


@pytest.fixture
def server() -> Any:
    with SSEServer(EVENTS) as server:
        server.end_after(len(EVENTS))
        yield server


# --- formats -------------------------------------------------------------------------------------


def test_jsonl_when_piped(server: SSEServer) -> None:
    result = run(server.url, "--no-reconnect")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    fixed = '"received_at": "2024-05-01T12:00:00.123+00:00"'
    assert ISO.sub(fixed, result.stdout) == JSONL
    for line in result.stdout.splitlines():  # each line is a JSON object, for jq
        assert set(json.loads(line)) == {"type", "data", "id", "retry", "received_at"}


def test_raw(server: SSEServer) -> None:
    result = run(server.url, "--no-reconnect", "--format", "raw")
    assert (result.returncode, result.stdout, result.stderr) == (0, RAW, "")


def test_pretty_piped_has_no_colour(server: SSEServer) -> None:
    result = run(server.url, "--no-reconnect", "-f", "pretty")
    assert (result.returncode, result.stdout, result.stderr) == (0, PRETTY, "")
    assert ANSI not in result.stdout


def test_pretty_forced_colour_has_ansi_codes(server: SSEServer) -> None:
    result = run(server.url, "--no-reconnect", "-f", "pretty", "--color", "always")
    assert result.returncode == 0, result.stderr
    assert "\x1b[2mchunk  id: 1\x1b[0m\na\n\n" in result.stdout


# --- requests, filters, exit codes ---------------------------------------------------------------


def test_type_filter_and_max_events() -> None:
    with SSEServer(EVENTS) as server:  # endless: only -n ends it
        result = run(server.url, "--type", "chunk", "-n", "2", "-f", "raw")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == RAW.split("\n\nid: 3")[0] + "\n\n"


def test_body_from_stdin_headers_and_last_event_id() -> None:
    with SSEServer(EVENTS) as server:
        args = ["-d", "@-", "-H", "X-Trace: 42", "--last-event-id", "3", "-n", "1"]
        result = run(server.url, *args, input="question?")
    assert result.returncode == 0, result.stderr
    request = server.requests[0]
    assert (request.method, request.body) == ("POST", b"question?")
    assert request.headers["x-trace"] == "42"
    assert request.last_event_id == "3"
    assert json.loads(result.stdout)["data"] == "no id"


def test_error_exits_1_with_one_line() -> None:
    with SSEServer() as server:
        server.respond_with(401)
        result = run(server.url)
        url = server.url
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == f"error: 401 Unauthorized from {url}: not retrying\n"


def test_204_exits_0() -> None:
    with SSEServer() as server:
        server.respond_with(204)
        result = run(server.url, "-v")
    assert result.returncode == 0
    assert "HTTP 204" in result.stderr


def test_timeout_exits_0_once_the_stream_opened() -> None:
    with SSEServer(EVENTS[:1]) as server:  # endless
        result = run(server.url, "--timeout", "2")
    assert (result.returncode, result.stderr) == (0, "")
    assert json.loads(result.stdout)["data"] == "a"


def test_usage_error_exits_2() -> None:
    result = run()
    assert result.returncode == 2
    assert "give a URL, or --demo" in result.stderr


def test_help_reads_well() -> None:
    result = run("--help")
    assert result.returncode == 0
    for text in ("usage: eventsource", "--last-event-id", "output formats:", "exit status:"):
        assert text in result.stdout


def imported_modules(importtime: str) -> set[str]:
    """The modules `python -X importtime` reported on stderr."""
    names = re.findall(r"^import time:\s+\d+ \|\s+\d+ \| +([\w.]+)$", importtime, re.M)
    assert "eventsource" in names  # the report was read
    return set(names)


@pytest.mark.parametrize("option", ["--version", "--help"])
def test_version_and_help_import_no_http_stack(option: str) -> None:
    # They answer before httpx, httpcore and anyio are imported: those take
    # a second and more on a loaded machine.
    result = run(option, flags=("-X", "importtime"))
    assert result.returncode == 0
    if option == "--version":
        assert result.stdout == f"eventsource {eventsource.__version__}\n"
    else:
        assert result.stdout.startswith("usage: eventsource")
    tops = {name.split(".")[0] for name in imported_modules(result.stderr)}
    assert tops & {"httpx", "httpcore", "anyio", "h11", "ssl"} == set()


def test_console_script() -> None:
    script = shutil.which("eventsource", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.skip("the package's console script is not installed in this environment")
    result = subprocess.run(
        [script, "--version"], capture_output=True, text=True, timeout=TIMEOUT, env=environ()
    )
    assert result.returncode == 0
    assert result.stdout.startswith("eventsource ")


# --- the demo ------------------------------------------------------------------------------------


def test_demo_runs_end_to_end_and_exits_0() -> None:
    result = run("--demo")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "14 events over 2 connections" in out
    assert "none lost or repeated: True" in out
    # The demo cuts event 6 mid-chunk: the client reports a broken body.
    assert "* connection lost (" in out
    assert "reconnecting in 0.3 s with Last-Event-ID '5'" in out
    assert "> Last-Event-ID: 5" in out
    assert "answer: Server-Sent Events stream text from server to client over plain HTTP." in out
    assert "chunk  id: 6\n" in out and "done  id: 14\n{}\n" in out
    assert out.count("* open: ") == 2 and "* closed: " in out
    assert ANSI not in out  # piped
    assert result.stderr == ""


# --- stopping from outside --------------------------------------------------------------------


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process is POSIX")
def test_ctrl_c_exits_130_with_a_clean_close() -> None:
    with SSEServer(EVENTS[:1]) as server:  # endless: the client waits for more
        process = start(server.url, "-v")
        try:
            assert json.loads(first_line(process.stdout))["data"] == "a"  # type: ignore[arg-type]
            connection = server.connections[0]
            assert not connection.closed
            process.send_signal(signal.SIGINT)
            code = process.wait(TIMEOUT)
            err = process.stderr.read()  # type: ignore[union-attr]
        finally:
            stop(process)
        server.wait_until(lambda: connection.closed_by_client)
        url = server.url
    assert code == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert err.splitlines()[-1] == f"* closed: {url}"  # the source's own close path ran


def test_a_reader_that_goes_away_ends_the_run_quietly() -> None:
    with SSEServer(EVENTS[:1]) as server:  # endless
        process = start(server.url)
        try:
            assert process.stdout is not None and process.stderr is not None
            assert json.loads(first_line(process.stdout))["data"] == "a"
            process.stdout.close()  # as `| head -1` does
            server.send("b", id="2")
            code = process.wait(TIMEOUT)
            err = process.stderr.read()
        finally:
            stop(process)
    assert (code, err) == (0, "")


# --- issue 13: URLs, failed attempts, stop conditions, TLS, HTTP/2, JSON data --------------------


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, Path]:
    """A server context with a trustme certificate for 127.0.0.1, and the
    test CA's certificate as a PEM file (for --cacert)."""
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    pem = tmp_path_factory.mktemp("tls") / "ca.pem"
    ca.cert_pem.write_to_path(str(pem))
    return server_context, pem


def test_a_url_without_a_scheme_is_one_line_and_exit_2() -> None:
    result = run("example.com/stream")
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        "error: 'example.com/stream' is not an absolute http:// or https:// URL"
        " (did you mean 'https://example.com/stream'?)\n"
    )


def test_an_unsupported_scheme_is_one_line_and_exit_2() -> None:
    result = run("ftp://127.0.0.1/stream")
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr


def test_a_retried_status_is_one_line_without_verbose() -> None:
    with SSEServer(EVENTS) as server:
        server.respond_with(503)  # once, then the stream
        result = run(server.url, "-n", "1")
    assert result.returncode == 0, result.stderr
    assert result.stderr == "retrying in 3.0 s: 503 Service Unavailable\n"
    assert json.loads(result.stdout)["data"] == "a"


def test_a_failing_certificate_fails_at_once_with_advice(tls_files: Any) -> None:
    """Issue 23: before a first open a certificate that fails verification is
    not retried (it was: "retrying in 3.0 s: certificate verify failed" until
    --timeout); the error line says what to do."""
    server_context, _ = tls_files
    with SSEServer(EVENTS, tls=server_context) as server:
        result = run(server.url, "--timeout", "30")
        url = server.url
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"error: cannot connect to {url}: certificate verify failed"), lines
    assert lines[0].endswith("use --cacert FILE, or -k to skip verification")


def test_cacert_verifies_with_that_ca(tls_files: Any) -> None:
    server_context, pem = tls_files
    with SSEServer(EVENTS, tls=server_context) as server:
        result = run(server.url, "--cacert", str(pem), "-n", "1")
    assert (result.returncode, result.stderr) == (0, "")
    assert json.loads(result.stdout)["data"] == "a"


def test_insecure_accepts_an_untrusted_certificate(tls_files: Any) -> None:
    server_context, _ = tls_files
    with SSEServer(EVENTS, tls=server_context) as server:
        result = run(server.url, "-k", "-n", "1")
    assert (result.returncode, result.stderr) == (0, "")
    assert json.loads(result.stdout)["data"] == "a"


def test_a_missing_cacert_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    result = run("https://127.0.0.1:1/stream", "--cacert", str(missing))
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"error: --cacert {missing}: No such file or directory\n"


def test_a_cacert_file_without_certificates_is_one_line_and_exit_2(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    result = run("https://127.0.0.1:1/stream", "--cacert", str(junk))
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.startswith(f"error: --cacert {junk}: ")
    assert result.stderr.count("\n") == 1


def test_an_unreadable_ssl_cert_file_is_one_line_and_exit_1(tmp_path: Path) -> None:
    # The environment's CA bundle cannot be loaded: what the library raises
    # for a source of its own (a ConnectError, fatal, with advice), as one line.
    missing = tmp_path / "missing.pem"
    result = run("https://127.0.0.1:1/stream", SSL_CERT_FILE=str(missing))
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("error: cannot connect to https://127.0.0.1:1/stream: ")
    assert "SSL_CERT_FILE" in result.stderr
    assert "fix or unset SSL_CERT_FILE / SSL_CERT_DIR" in result.stderr


def test_until_type_stops_after_that_event_and_exits_0() -> None:
    with SSEServer(EVENTS) as server:  # endless: the server never hangs up
        result = run(server.url, "--until", "done", "-f", "raw")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == RAW  # the done event included


def test_until_type_with_a_type_filter() -> None:
    with SSEServer(EVENTS) as server:
        result = run(server.url, "--type", "chunk", "--until", "done")
    assert (result.returncode, result.stderr) == (0, "")
    assert [json.loads(line)["id"] for line in result.stdout.splitlines()] == ["1", "2"]


def test_until_data_stops_at_done_marker_and_exits_0() -> None:
    llm: list[dict[str, Any]] = [
        {"data": {"choices": [{"delta": {"content": "Hi"}}]}},
        {"data": "[DONE]"},
        {"data": "never shown"},
    ]
    with SSEServer(llm) as server:
        result = run(server.url, "--until-data", "[DONE]")
    assert (result.returncode, result.stderr) == (0, "")
    assert [json.loads(line)["data"] for line in result.stdout.splitlines()] == [
        '{"choices":[{"delta":{"content":"Hi"}}]}',
        "[DONE]",
    ]


def test_json_data_decodes_data_that_is_json(server: SSEServer) -> None:
    result = run(server.url, "--no-reconnect", "-f", "jsonl", "--json-data")
    assert (result.returncode, result.stderr) == (0, "")
    data = [json.loads(line)["data"] for line in result.stdout.splitlines()]
    assert data == ["a", {"content": "héllo"}, "line 1\nline 2", "no id", ""]


@pytest.mark.skipif(shutil.which("jq") is None, reason="jq is not installed")
def test_the_readme_jq_example_works() -> None:
    chunks = [{"data": {"content": "Hel"}, "event": "chunk"}, {"data": {"content": "lo"}}]
    with SSEServer(chunks) as server:
        command = (
            f"{sys.executable} -m eventsource -n 2 -f jsonl --json-data {server.url}"
            " | jq '.data.content'"
        )
        result = subprocess.run(
            command,
            shell=True,
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=TIMEOUT,
            cwd=ROOT,
            env=environ(),
        )
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == '"Hel"\n"lo"\n'


def test_http2_over_tls_with_cacert(tmp_path: Path) -> None:
    with HyperServer("h2") as server:
        assert server.ca is not None
        pem = tmp_path / "ca.pem"
        server.ca.cert_pem.write_to_path(str(pem))
        url = f"{server.url}/events?interval=0.01"
        result = run(url, "--http2", "--cacert", str(pem), "-v", "-n", "2")
    assert result.returncode == 0, result.stderr
    assert "< HTTP/2 200 OK" in result.stderr.splitlines()
    assert [json.loads(line)["id"] for line in result.stdout.splitlines()] == ["1", "2"]


def test_help_names_the_new_options() -> None:
    result = run("--help")
    for option in ("--until TYPE", "--until-data TEXT", "--cacert FILE", "--http2", "--json-data"):
        assert option in result.stdout
    assert "jq '.data.content'" in result.stdout
