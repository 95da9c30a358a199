"""Every public name is documented, Google style (issue 25).

Walks ``eventsource.__all__``, ``eventsource.testing.__all__`` and the pytest
plugin's fixtures: every class, function, public method and property has a
docstring, and every parameter of a public callable is described in the
``Args:`` section of its docstring (a class's constructor in the class's
docstring or in ``__init__``'s), with no entry for a parameter that does not
exist. The API reference (mkdocstrings, Google style) renders these.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import eventsource
import eventsource.testing
from eventsource.testing import _plugin

_SECTIONS = {
    "args",
    "arguments",
    "attributes",
    "example",
    "examples",
    "keyword args",
    "keyword arguments",
    "note",
    "notes",
    "raises",
    "references",
    "return",
    "returns",
    "see also",
    "todo",
    "warning",
    "warnings",
    "yield",
    "yields",
}
_ENTRY = re.compile(r"(\*{0,2}\w+)\s*(?:\([^)]*\))?\s*:(?:\s|$)")


def args_section(doc: str | None, heads: tuple[str, ...] = ("args",)) -> dict[str, str] | None:
    """The ``Args:`` entries of a Google-style docstring, name to text.

    Args:
        doc: The docstring (None: none).
        heads: The sections read, lowercase, without the colon.

    Returns:
        The entries (``*args`` keeps its stars), or None when the docstring
        has no such section.
    """
    if not doc:
        return None
    lines = inspect.cleandoc(doc).splitlines()
    entries: dict[str, str] | None = None
    inside = False
    indent = 0
    name = ""
    for line in lines:
        stripped = line.strip()
        if not line.startswith(" ") and stripped.rstrip(":").lower() in _SECTIONS:
            inside = stripped.rstrip(":").lower() in heads
            if inside:
                entries = {} if entries is None else entries
                indent = 0
            continue
        if not inside or not stripped:
            continue
        if not line.startswith(" "):  # text back at the left margin ends the section
            inside = False
            continue
        here = len(line) - len(line.lstrip())
        assert entries is not None
        if indent == 0 or here == indent:
            indent = here
            match = _ENTRY.match(stripped)
            assert match, f"not an Args entry: {stripped!r}"
            name = match.group(1)
            entries[name] = stripped[match.end() :].strip()
        else:  # a continuation line of the entry
            entries[name] = (entries[name] + " " + stripped).strip()
    return entries


def test_the_parser_reads_google_sections() -> None:
    doc = """Summary.

    More text: not an entry.

    Args:
        first: The first,
            over two lines.
        second (int): The second.
        *args: Extra values.
        **kwargs: Passed on.

    Returns:
        something: not an argument.
    """
    assert args_section(doc) == {
        "first": "The first, over two lines.",
        "second": "The second.",
        "*args": "Extra values.",
        "**kwargs": "Passed on.",
    }
    assert args_section(doc, ("returns",)) == {"something": "not an argument."}
    assert args_section("Summary only.") is None
    assert args_section(None) is None


def _public_names() -> Iterator[tuple[str, Any]]:
    for module in (eventsource, eventsource.testing):
        for name in module.__all__:
            yield f"{module.__name__}.{name}", getattr(module, name)


def _fixtures() -> Iterator[tuple[str, Callable[..., Any]]]:
    for name, value in vars(_plugin).items():
        # pytest >= 8.4 wraps a fixture in a FixtureFunctionDefinition; older
        # ones mark the function itself.
        function = getattr(value, "_get_wrapped_function", None)
        if function is not None:
            yield f"fixture {name}", function()
        elif hasattr(value, "_pytestfixturefunction") or hasattr(value, "_fixture_function"):
            yield f"fixture {name}", inspect.unwrap(value)


# Classes whose members are not ours to document.
_FOREIGN = (object, BaseException, enum.Enum, int, str, tuple, frozenset)


def _members(cls: type) -> Iterator[tuple[str, Any]]:
    """The public methods and properties a class of ours defines or inherits
    from another class of ours."""
    seen: set[str] = set()
    for klass in cls.__mro__:
        if klass in _FOREIGN or not klass.__module__.startswith("eventsource"):
            continue
        for name, value in vars(klass).items():
            if name.startswith("_") or name in seen:
                continue
            seen.add(name)
            if isinstance(value, (staticmethod, classmethod)):
                value = value.__func__
            if isinstance(value, property) or inspect.isfunction(value):
                yield name, value


def _callables() -> Iterator[tuple[str, Any, Callable[..., Any] | None, list[str | None]]]:
    """Each documented thing: its name, what holds its docstring, the callable
    whose parameters it describes (None: a property), and its docstrings."""
    for name, obj in [*_public_names(), *_fixtures()]:
        if inspect.isclass(obj):
            if issubclass(obj, enum.Enum):
                yield name, obj, None, [obj.__doc__]
                continue
            init = obj.__dict__.get("__init__")
            docs = [obj.__doc__, init.__doc__ if init is not None else None]
            yield name, obj, obj, docs
            for member, value in _members(obj):
                if isinstance(value, property):
                    yield f"{name}.{member}", value, None, [value.__doc__]
                else:
                    yield f"{name}.{member}()", value, value, [value.__doc__]
        elif inspect.isfunction(obj):
            yield name, obj, obj, [obj.__doc__]


def _parameters(function: Callable[..., Any]) -> list[str]:
    try:
        signature = inspect.signature(function)
    except ValueError:  # a builtin's
        return []
    names = []
    for parameter in signature.parameters.values():
        # A leading underscore: a private field a caller never passes.
        if parameter.name in ("self", "cls") or parameter.name.startswith("_"):
            continue
        if parameter.kind is parameter.VAR_POSITIONAL:
            names.append("*" + parameter.name)
        elif parameter.kind is parameter.VAR_KEYWORD:
            names.append("**" + parameter.name)
        else:
            names.append(parameter.name)
    return names


def _is_record(function: Callable[..., Any]) -> bool:
    """Whether this is a class whose constructor's parameters are its fields.

    A dataclass, or a class with a property for each parameter.
    """
    if not inspect.isclass(function):
        return False
    if dataclasses.is_dataclass(function):
        return True
    return all(
        isinstance(getattr(function, name, None), property) for name in _parameters(function)
    )


def audit() -> tuple[list[str], list[str], int, int]:
    """What is undocumented: names without a docstring, parameters not in an
    ``Args:`` section (or entries naming no parameter), and the counts of
    names and parameters checked."""
    missing_docs: list[str] = []
    missing_args: list[str] = []
    names = parameters = 0
    for name, _, function, docs in _callables():
        names += 1
        if not any(docs):
            missing_docs.append(name)
        if function is None:
            continue
        params = _parameters(function)
        if inspect.isclass(function) and not params:
            continue
        parameters += len(params)
        # A record's fields are its attributes too: a dataclass the library
        # fills (RecordedConnection), or ServerSentEvent, whose constructor is
        # its __new__ (griffe, mkdocstrings' parser, would look for its Args in
        # an __init__ that has none), describe them under "Attributes:".
        described: dict[str, str] = {}
        for doc in docs:
            described.update(args_section(doc) or {})
            if _is_record(function):
                described.update(args_section(doc, ("attributes",)) or {})
        for param in params:
            text = described.get(param, described.get(param.lstrip("*")))
            if not text:
                missing_args.append(f"{name}: {param}")
        bare = {param.lstrip("*") for param in params}
        for entry in described:
            if entry.lstrip("*") not in bare:
                missing_args.append(f"{name}: Args names {entry!r}, no such parameter")
    return missing_docs, missing_args, names, parameters


def test_every_public_name_has_a_docstring() -> None:
    missing_docs, _, names, _ = audit()
    assert names > 60, "the walk found the public names"
    assert missing_docs == []


def test_every_public_parameter_is_described() -> None:
    _, missing_args, _, parameters = audit()
    assert parameters > 100, "the walk found the parameters"
    assert missing_args == []


@pytest.mark.parametrize("name", ["sse_server", "sse_server_sync", "sse_mock"])
def test_the_fixtures_are_walked(name: str) -> None:
    assert f"fixture {name}" in {found for found, *_ in _callables()}


if __name__ == "__main__":  # the counts, for the issue
    docs, args, n_names, n_params = audit()
    print(f"{n_names} names, {n_params} parameters")
    print(f"{len(docs)} names without a docstring:", *docs, sep="\n  ")
    print(f"{len(args)} parameters undocumented:", *args, sep="\n  ")
