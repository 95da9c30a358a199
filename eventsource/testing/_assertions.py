"""assert_events: compare event sequences with a readable diff."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Union

from .._event import ServerSentEvent

__all__ = ["assert_events"]

_FIELDS = ("type", "data", "id", "retry")
#: What an expected event may be: a ServerSentEvent (all four fields compared),
#: a dict of some of type / data / id / retry (only those compared; a dict or
#: list as data is compared with the JSON-decoded data), or a str (the data).
Expected = Union[ServerSentEvent, Mapping[str, Any], str]


def _mismatches(actual: ServerSentEvent, expected: Expected) -> list[str]:
    if isinstance(expected, ServerSentEvent):
        wanted: Mapping[str, Any] = dict(zip(_FIELDS, expected))
    elif isinstance(expected, str):
        wanted = {"data": expected}
    else:
        unknown = set(expected) - set(_FIELDS)
        if unknown:
            raise TypeError(f"unknown event fields in the expected value: {sorted(unknown)}")
        wanted = expected
    problems = []
    for name, value in wanted.items():
        got: Any = getattr(actual, name)
        if name == "data" and not isinstance(value, str):
            try:
                got = json.loads(actual.data)
            except ValueError:
                problems.append(f"data is not JSON: {actual.data!r}, expected {value!r}")
                continue
        if got != value:
            problems.append(f"{name}: got {got!r}, expected {value!r}")
    return problems


def assert_events(actual: Iterable[ServerSentEvent], expected: Sequence[Expected]) -> None:
    """Assert that the events match, in order, on the fields given.

    >>> assert_events(events, [{"type": "chunk", "data": {"content": "Hi"}}, "done"])

    On failure the AssertionError lists every differing event and field.
    """
    actual = list(actual)
    lines = []
    for index in range(max(len(actual), len(expected))):
        if index >= len(actual):
            lines.append(f"  [{index}] missing: expected {expected[index]!r}")
        elif index >= len(expected):
            lines.append(f"  [{index}] unexpected: {actual[index]!r}")
        else:
            for problem in _mismatches(actual[index], expected[index]):
                lines.append(f"  [{index}] {problem}")
    if lines:
        summary = f"events differ ({len(actual)} received, {len(expected)} expected):"
        raise AssertionError("\n".join([summary, *lines]))
