"""The command line and the demo, run for real."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from eventsource.__main__ import main
from eventsource.testing import SSEServer

ROOT = Path(__file__).resolve().parent.parent


def test_demo_runs_end_to_end_and_exits_0() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "eventsource", "--demo"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "14 events over 2 connections" in out
    assert "none lost or repeated: True" in out
    assert "reconnecting in 0.3 s with Last-Event-ID '5'" in out
    assert "answer: Server-Sent Events stream text from server to client over plain HTTP." in out


TWO = [{"data": "a", "event": "chunk", "id": "1"}, {"data": "b", "id": "2"}]


def test_url_prints_events(capsys: pytest.CaptureFixture[str]) -> None:
    with SSEServer(TWO) as server:
        server.drop_after(2)  # the stream ends after two events
        assert main([server.url, "--no-reconnect"]) == 0
    assert capsys.readouterr().out == "chunk\t1\ta\nmessage\t2\tb\n"


def test_max_events(capsys: pytest.CaptureFixture[str]) -> None:
    with SSEServer(TWO) as server:
        assert main([server.url, "-n", "1"]) == 0
    assert capsys.readouterr().out == "chunk\t1\ta\n"


def test_failure_exits_1_with_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    with SSEServer() as server:
        server.respond_with(404)
        assert main([server.url]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: HTTP 404") and err.count("\n") == 1


def test_no_url_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2


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
