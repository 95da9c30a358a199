"""Tests of examples/llm_stream.py against the testing toolkit's server
(`sse_server`, from eventsource's pytest plugin), async and sync."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from llm_stream import CutOff, chunks, complete, complete_sync, is_done

from eventsource import ConnectionLostError, EventSource
from eventsource.testing import SSEServer

WORDS = ["Hello", ", ", "world"]


@pytest.mark.anyio
async def test_async_stops_at_done_and_posts_once(sse_server: SSEServer) -> None:
    for event in chunks(WORDS) + [{"data": "after [DONE]: never read"}]:
        sse_server.send(**event)

    answer = await complete(sse_server.url, "Hi", echo=False)

    assert answer == "Hello, world"
    [request] = sse_server.requests  # the prompt was POSTed once
    assert request.method == "POST"
    assert json.loads(request.body)["messages"] == [{"role": "user", "content": "Hi"}]


def test_sync_stops_at_done() -> None:
    with SSEServer(chunks(WORDS)) as server:  # the server holds the connection open
        assert complete_sync(server.url, "Hi") == "Hello, world"
        assert len(server.requests) == 1


def test_a_stream_ended_before_done_is_not_re_posted() -> None:
    """No ids, so the stream cannot resume: the POST is not sent again (no
    second generation, billed twice); the cut answer is an error."""
    with SSEServer(chunks(WORDS)) as server:
        server.end_after(2)  # the server ends the stream in the middle of the answer
        with pytest.raises(CutOff) as info:
            complete_sync(server.url, "Hi")
        assert len(server.requests) == 1
    assert info.value.partial == "Hello"


def test_a_drop_before_done_is_raised_not_re_posted() -> None:
    with SSEServer(chunks(WORDS)) as server:
        server.drop_after(2)  # the connection breaks in the middle of the answer
        with pytest.raises(ConnectionLostError):
            complete_sync(server.url, "Hi")
        assert len(server.requests) == 1


def test_resume_resend_forces_the_post_again() -> None:
    with SSEServer(chunks(WORDS), replay=True) as server:
        server.drop_after(2)
        events = EventSource(
            server.url, method="POST", json={}, resume="resend", retry=0.01
        ).collect(timeout=30, until=is_done)
        assert len(server.requests) == 2  # the request was sent again: a second generation
    assert is_done(events[-1])


def test_the_example_runs() -> None:
    script = Path(__file__).with_name("llm_stream.py")
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "2 POSTs, one per completion; the answer: Server-Sent Events stream tokens." in (
        result.stdout
    )
