"""The pytest plugin: installed with the package, its fixtures work in a
user's fresh test session."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

from ._stacks import STACKS

#: With pytest-asyncio installed (the test extra), a project without its
#: loop-scope option gets a deprecation warning, an error under -W error.
QUIET_ASYNCIO = (
    "-W",
    'ignore:The configuration option "asyncio_default_fixture_loop_scope"'
    ":pytest.PytestDeprecationWarning",
)


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """Run the project in a fresh interpreter; a hang fails the test."""
    return pytester.runpytest_subprocess("-W", "error", *QUIET_ASYNCIO, *args, timeout=60)


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
    assert_events(events, [{"data": "a"}, "done"])


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
    result = run(pytester, "-p", "anyio")
    outcomes = result.parseoutcomes()
    assert result.ret == 0 and "failed" not in outcomes and "error" not in outcomes
    assert outcomes["passed"] >= 3  # the async test runs once per anyio backend


# The fixtures for each HTTP stack (issue 22): sse_mock takes httpx's and
# httpx2's requests alike, a source's own client's too; the server is any
# client's.
STACK_TESTS = """
import importlib

import pytest
from eventsource import EventSource

http = importlib.import_module({http!r})


@pytest.mark.anyio
async def test_mock_and_a_client_of_the_stack(sse_mock):
    sse_mock.respond(["x"])
    async with http.AsyncClient() as client:
        async with EventSource(sse_mock.url, client=client) as source:
            assert [e.data async for e in source] == ["x"]
    assert [type(r).__module__ for r in sse_mock.requests] == [{http!r}, {http!r}]


def test_mock_and_a_source_of_its_own(sse_mock):
    sse_mock.respond(["y"])
    assert [e.data for e in EventSource(sse_mock.url, http={http!r})] == ["y"]
    with pytest.raises(AssertionError, match="not mocked"):
        http.get("http://elsewhere.test/")


@pytest.mark.anyio
async def test_server_and_a_client_of_the_stack(sse_server):
    sse_server.send("a")
    async with http.AsyncClient() as client:
        async with EventSource(sse_server.url, client=client) as source:
            async for event in source:
                assert event.data == "a"
                break
    assert sse_server.requests


def test_sync_server_and_a_client_of_the_stack(sse_server_sync):
    sse_server_sync.send("s")
    with EventSource(sse_server_sync.url, client=http.Client()) as source:
        assert next(iter(source)).data == "s"
"""


@pytest.mark.parametrize("http", STACKS)
def test_fixtures_for_each_stack(pytester: pytest.Pytester, http: str) -> None:
    pytester.makepyfile(test_user=STACK_TESTS.format(http=http))
    result = run(pytester, "-p", "anyio")
    result.assert_outcomes(passed=6)  # the async tests run once per anyio backend


def test_a_failing_comparison_shows_the_diff(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_user="""
from eventsource import ServerSentEvent
from eventsource.testing import assert_events

def test_diff():
    assert_events([ServerSentEvent(data='{"n": 1}')], [{"data": {"n": 2}}])
"""
    )
    result = run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["""*[[]0[]] data[[]"n"[]]: got 1, expected 2*"""])


# The same user tests under pytest-asyncio: strict mode (the default, with
# @pytest.mark.asyncio) and auto mode (no mark). The fixtures must set up and
# tear down without errors in both, and next to sync tests.
ASYNCIO_TESTS = """
import pytest
from eventsource import EventSource

MARK = pytest.mark.asyncio if {strict} else (lambda f: f)


@MARK
async def test_server(sse_server):
    sse_server.send("a", id="1")
    sse_server.send("b", id="2", event="done")
    data = []
    async with EventSource(sse_server.url) as source:
        async for event in source:
            data.append(event.data)
            if event.type == "done":
                break
    assert data == ["a", "b"]
    await sse_server.await_until(lambda: not sse_server.open_connections)


@MARK
async def test_server_left_open(sse_server):
    sse_server.send("a")
    async with EventSource(sse_server.url) as source:
        async for event in source:
            assert event.data == "a"
            return  # the server is torn down right after the client hangs up


@MARK
async def test_mock(sse_mock):
    sse_mock.respond(["x"])
    async with EventSource(sse_mock.url) as source:
        assert [e.data async for e in source] == ["x"]


def test_sync(sse_server_sync, sse_server):
    sse_server_sync.send("s")
    with EventSource(sse_server_sync.url) as source:
        assert next(iter(source)).data == "s"
    sse_server.send("t")  # the async-style fixture works in a sync test too
    with EventSource(sse_server.url) as source:
        assert next(iter(source)).data == "t"
"""


@pytest.mark.parametrize("asyncio_mode", ["strict", "auto"])
def test_fixtures_under_pytest_asyncio(pytester: pytest.Pytester, asyncio_mode: str) -> None:
    pytester.makepyfile(test_user=ASYNCIO_TESTS.format(strict=asyncio_mode == "strict"))
    result = run(pytester, "-p", "asyncio", "-p", "no:anyio", "-o", f"asyncio_mode={asyncio_mode}")
    output = result.stdout.str() + result.stderr.str()
    assert "different task" not in output and "no plugin handled it" not in output, output
    result.assert_outcomes(passed=4)


def test_a_missing_extra_names_what_to_install(pytester: pytest.Pytester) -> None:
    # respx missing, as with only the package installed: sse_mock says which
    # extra brings it, not a bare ModuleNotFoundError.
    pytester.makeconftest(
        """
import builtins
import sys

import pytest

_real_import = builtins.__import__


def _no_respx(name, *args, **kwargs):
    if name == "respx" or name.startswith("respx."):
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    return _real_import(name, *args, **kwargs)


@pytest.fixture(autouse=True)
def without_respx(monkeypatch):
    for name in [m for m in sys.modules if m == "respx" or m.startswith("respx.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(builtins, "__import__", _no_respx)
"""
    )
    pytester.makepyfile(test_user="def test_mock(sse_mock):\n    pass\n")
    result = run(pytester)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ['*the sse_mock fixture needs respx: pip install -e ".[[]testing[]]" in a checkout*']
    )
    assert "Traceback" not in result.stdout.str()


def test_the_testing_extra_is_what_the_toolkit_imports() -> None:
    # Every third-party module eventsource.testing imports is a main
    # dependency, pytest (the plugin only loads under pytest), trio (imported
    # only when running on trio), or in the "testing" extra, and that extra
    # holds nothing else.
    # tomllib is Python 3.11+; pytest brings tomli, its original, on 3.10.
    tomllib = pytest.importorskip("tomllib" if sys.version_info >= (3, 11) else "tomli")
    root = Path(__file__).resolve().parent.parent
    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]

    def names(requirements: list[str]) -> set[str]:
        return {re.split(r"[<>=!~;\[ ]", r)[0].lower().replace("-", "_") for r in requirements}

    imported = set()
    for path in (root / "eventsource" / "testing").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - {"eventsource", "__future__"}
    testing = names(project["optional-dependencies"]["testing"])
    assert third_party - names(project["dependencies"]) - {"pytest", "trio"} == testing == {"respx"}


OWN_FIXTURE_TESTS = """
import pytest
import pytest_asyncio
from eventsource import EventSource
from eventsource.testing import SSEServer

MARK = pytest.mark.asyncio if {strict} else (lambda f: f)


@pytest_asyncio.fixture
async def server():
    async with SSEServer() as server:  # set up and torn down in different tasks
        yield server


@MARK
async def test_streams(server):
    server.send("a")
    async with EventSource(server.url) as source:
        async for event in source:
            assert event.data == "a"
            break
"""


@pytest.mark.parametrize("asyncio_mode", ["strict", "auto"])
def test_async_with_sse_server_in_a_pytest_asyncio_fixture(
    pytester: pytest.Pytester, asyncio_mode: str
) -> None:
    pytester.makepyfile(test_user=OWN_FIXTURE_TESTS.format(strict=asyncio_mode == "strict"))
    result = run(pytester, "-p", "asyncio", "-p", "no:anyio", "-o", f"asyncio_mode={asyncio_mode}")
    output = result.stdout.str() + result.stderr.str()
    assert "different task" not in output, output
    result.assert_outcomes(passed=1)
