"""The pytest plugin: installed with the package, its fixtures work in a
user's fresh test session."""

from __future__ import annotations

import pytest

USER_TESTS = """
import pytest
from eventsource import EventSource
from eventsource.testing import assert_events


@pytest.mark.anyio
async def test_async_server(sse_server):
    sse_server.send("a", id="1")
    sse_server.send("b", id="2", event="done")
    events = []
    async with EventSource(sse_server.url) as source:
        async for event in source:
            events.append(event)
            if event.type == "done":
                break
    assert_events(events, ["a", {"type": "done", "id": "2"}])


def test_sync_server(sse_server_sync):
    sse_server_sync.send({"n": 1})
    with EventSource(sse_server_sync.url) as source:
        assert next(iter(source)).json() == {"n": 1}


def test_mock(sse_mock):
    sse_mock.respond(["x"])
    assert [e.data for e in EventSource(sse_mock.url)] == ["x"]
"""


def test_fixtures_come_with_the_package(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest_subprocess("-p", "anyio", "-W", "error")
    outcomes = result.parseoutcomes()
    assert result.ret == 0 and "failed" not in outcomes and "error" not in outcomes
    assert outcomes["passed"] >= 3  # the async test runs once per anyio backend


def test_a_failing_comparison_shows_the_diff(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_user="""
from eventsource import ServerSentEvent
from eventsource.testing import assert_events

def test_diff():
    assert_events([ServerSentEvent(data='{"n": 1}')], [{"data": {"n": 2}}])
"""
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*[[]0[]] data: got {'n': 1}, expected {'n': 2}*"])
