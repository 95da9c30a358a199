"""Nothing private of a dependency is used (issue 21): the names below, each
once the way into httpx's, httpcore's, anyio's or trio's insides, appear
nowhere in eventsource/, and no code writes httpx's ``is_stream_consumed``.
The one allowed exception is ``_httpx._reset_h2()`` (encode/httpcore#943,
listed in that module's docstring), whose fallback is tested here too.
ruff's SLF001 (pyproject.toml) catches any other private attribute."""

from __future__ import annotations

import ast
from pathlib import Path

import httpx
import pytest

import eventsource
from eventsource import _httpx

PACKAGE = Path(eventsource.__file__).parent
FORBIDDEN = {
    "_getframe",
    "notify_closing",
    "set_protocol",
    "read_queue",
    "_h11_state",
    "_httpcore_stream",
}
ALLOWED = {("_httpx.py", "_reset_h2")}  # (module, function): the guarded workaround


def _names(node: ast.AST) -> set[str]:
    """Attribute names, plain names and string constants in a subtree."""
    found: set[str] = set()
    for child in ast.walk(node):
        if isinstance(child, ast.Attribute):
            found.add(child.attr)
        elif isinstance(child, ast.Name):
            found.add(child.id)
        elif isinstance(child, ast.Constant) and isinstance(child.value, str):
            found.add(child.value)
    return found


def _violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    allowed = {
        id(node)
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and (path.name, node.name) in ALLOWED
    }
    problems: list[str] = []

    def visit(node: ast.AST) -> None:
        if id(node) in allowed:
            return
        if isinstance(node, ast.Attribute) and node.attr in FORBIDDEN:
            problems.append(f"{path.name}:{node.lineno}: .{node.attr}")
        if isinstance(node, ast.Name) and node.id in FORBIDDEN:
            problems.append(f"{path.name}:{node.lineno}: {node.id}")
        if isinstance(node, ast.Constant) and node.value in FORBIDDEN:
            problems.append(f"{path.name}:{node.lineno}: {node.value!r}")
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Attribute) and target.attr == "is_stream_consumed":
                    problems.append(f"{path.name}:{node.lineno}: writes is_stream_consumed")
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return problems


def test_no_private_name_of_a_dependency_is_used() -> None:
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 20, "the package was not found"
    problems = [problem for path in files for problem in _violations(path)]
    assert problems == []


def test_the_checker_finds_what_it_looks_for(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import sys\n"
        "f = sys._getframe(1)\n"
        "getattr(r, '_httpcore_stream')\n"
        "r.is_stream_consumed = True\n"
        "t.set_protocol(p)\n"
    )
    assert len(_violations(sample)) == 4


def test_the_one_allowed_workaround_is_the_only_one() -> None:
    source = (PACKAGE / "_httpx.py").read_text()
    tree = ast.parse(source)
    (reset,) = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef) and node.name == "_reset_h2"
    ]
    assert "_reset_h2" in (_httpx.__doc__ or ""), "listed in the module's docstring"
    noqa = [number for number, line in enumerate(source.splitlines(), 1) if "noqa: SLF001" in line]
    assert noqa and all(reset.lineno <= n <= (reset.end_lineno or 0) for n in noqa)


class _Unknown(httpx.AsyncByteStream):
    """An HTTP/2 response stream of a layout _reset_h2 does not know."""

    closed = False

    async def __aiter__(self):  # type: ignore[no-untyped-def,override]
        return
        yield b""

    async def aclose(self) -> None:
        self.closed = True


@pytest.mark.anyio
async def test_reset_h2_falls_back_to_httpcores_own_close() -> None:
    stream = _Unknown()
    response = httpx.Response(
        200,
        stream=stream,
        extensions={"http_version": b"HTTP/2"},
        request=httpx.Request("GET", "https://sse.test/"),
    )
    assert _httpx._reset_h2(response) is None  # nothing known to reset: left as httpcore leaves it
    await _httpx.aclose_response(response)
    assert stream.closed and response.is_closed


# Who may name a stack's module: the cores in _httpx (and _stack, which asks
# _httpx for httpcore2 by name), httpx2 in _stack alone.
NAMERS = {
    "httpcore": {"_httpx.py"},
    "httpcore2": {"_httpx.py", "_stack.py"},
    "httpx2": {"_stack.py"},
}


def test_only_core_and_stack_name_an_http_core_or_httpx2() -> None:
    """The backend is written once for both cores and takes their names from
    ``_httpx``; the transport layer takes httpx2's from ``_stack``."""
    found: dict[str, set[str]] = {name: set() for name in NAMERS}
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        # A stack's name as a value of the http= option (Literal["httpx2"]) is
        # no use of its module.
        literal = {
            id(constant)
            for node in ast.walk(tree)
            if isinstance(node, ast.Subscript)
            and isinstance(node.value, ast.Name)
            and node.value.id == "Literal"
            for constant in ast.walk(node.slice)
        }
        for node in ast.walk(tree):
            if id(node) in literal:
                continue
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                modules = [node.value]
            else:
                continue
            for module in modules:
                root = module.split(".")[0]
                if root in found:
                    found[root].add(str(path.relative_to(PACKAGE)))
    assert found["httpcore"], "the package was not found"
    assert {name: places - NAMERS[name] for name, places in found.items()} == {
        name: set() for name in NAMERS
    }
