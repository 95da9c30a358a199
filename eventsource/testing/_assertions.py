"""assert_events: compare event sequences with a readable diff."""

from __future__ import annotations

import json
import unittest.mock
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .._event import ServerSentEvent

__all__ = ["ANY", "assert_events"]

_FIELDS = ("type", "data", "id", "retry")


class _Any:
    """Equal to everything.

    A wildcard for a whole event, a field, or a value anywhere in the expected
    data.
    """

    def __eq__(self, other: object) -> bool:
        return True

    def __ne__(self, other: object) -> bool:
        return False

    def __hash__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "ANY"


ANY: Any = _Any()
"""Matches any event (in the expected list), any field value, or any value.

Any value in expected data too:
``{"data": {"id": ANY, "object": "chat.completion.chunk"}}``. A key given with
ANY must still be present. ``unittest.mock.ANY`` works too.
"""

#: What an expected event may be: ANY (any event); a str (the event type); a
#: dict of some of type / data / id / retry (only those compared; dict or list
#: data is compared with the JSON-decoded data, dicts as subsets unless
#: ``exact``); a ServerSentEvent (all four fields compared as they are).
Expected = ServerSentEvent | Mapping[str, Any] | str


def _is_any(value: object) -> bool:
    return value is ANY or value is unittest.mock.ANY


def _key(key: object) -> str:
    return f"[{json.dumps(key)}]" if isinstance(key, str) else f"[{key!r}]"


def _diff(path: str, got: Any, want: Any, exact: bool) -> list[str]:
    """Every difference between JSON values.

    Dicts match on the expected keys (all keys when ``exact``), lists item by
    item.
    """
    if _is_any(want):
        return []
    if isinstance(want, Mapping) and isinstance(got, Mapping):
        problems = []
        for key, value in want.items():
            if key not in got:
                problems.append(f"{path}{_key(key)}: missing, expected {value!r}")
            else:
                problems.extend(_diff(f"{path}{_key(key)}", got[key], value, exact))
        if exact:
            for key in got:
                if key not in want:
                    problems.append(f"{path}{_key(key)}: unexpected {got[key]!r}")
        return problems
    if isinstance(want, list) and isinstance(got, list):
        problems = []
        if len(got) != len(want):
            problems.append(f"{path}: a list of {len(got)} items, expected {len(want)}")
        for index, (item, value) in enumerate(zip(got, want, strict=False)):
            problems.extend(_diff(f"{path}[{index}]", item, value, exact))
        return problems
    if got != want:
        return [f"{path}: got {got!r}, expected {want!r}"]
    return []


def _mismatches(actual: ServerSentEvent, expected: Expected, exact: bool) -> list[str]:
    if _is_any(expected):
        return []
    if isinstance(expected, ServerSentEvent):
        wanted: Mapping[str, Any] = dict(zip(_FIELDS, expected, strict=False))
    elif isinstance(expected, str):
        wanted = {"type": expected}
    elif isinstance(expected, Mapping):
        unknown = set(expected) - set(_FIELDS)
        if unknown:
            raise TypeError(f"unknown event fields in the expected value: {sorted(unknown)}")
        wanted = expected
    else:
        raise TypeError(
            f"an expected event is a str (the type), a dict of fields, a ServerSentEvent"
            f" or ANY, not {expected!r}"
        )
    problems = []
    for name, value in wanted.items():
        got: Any = getattr(actual, name)
        if name == "data" and not isinstance(value, str) and not _is_any(value):
            try:
                got = json.loads(actual.data)
            except ValueError:
                problems.append(f"data is not JSON: {actual.data!r}, expected {value!r}")
                continue
            problems.extend(_diff("data", got, value, exact))
        elif not _is_any(value) and got != value:
            problems.append(f"{name}: got {got!r}, expected {value!r}")
    return problems


def assert_events(
    actual: Iterable[ServerSentEvent],
    expected: Sequence[Expected],
    *,
    exact: bool = False,
) -> None:
    """Assert that the events match, in order, on the fields given.

    Each expected event is a str (the event **type**: ``"done"``), a dict of
    some of ``type`` / ``data`` / ``id`` / ``retry`` (only those are
    compared), a ServerSentEvent (all four compared), or ``ANY``. Data given
    as a str is compared with the data as received; data given as a dict,
    list, number... with the JSON-decoded data, where a dict matches on the
    keys it gives (recursively: nested dicts too) and a list item by item.
    ``exact=True`` demands equal dicts (no key left out). ``ANY`` stands for
    any value::

        assert_events(events, [
            {"type": "chunk", "data": {"choices": [{"delta": {"content": "Hi"}}]}},
            {"type": "chunk", "id": ANY},
            "done",
        ])

    So ``{"data": {}}`` matches any event whose data is a JSON object.

    On failure the AssertionError lists every difference: each event and
    field, and each key path inside the data. pytest leaves this function's
    frame out of the traceback: it points at your test's line.

    Args:
        actual: The events received (a list, or any iterable of them).
        expected: What each must match, in order (see above).
        exact: Demand equal dicts in data, every key given.

    Raises:
        AssertionError: The events differ; the message lists how.
    """
    __tracebackhide__ = True  # pytest: report the caller's line
    actual = list(actual)
    lines = []
    for index in range(max(len(actual), len(expected))):
        if index >= len(actual):
            lines.append(f"  [{index}] missing: expected {expected[index]!r}")
        elif index >= len(expected):
            lines.append(f"  [{index}] unexpected: {actual[index]!r}")
        else:
            for problem in _mismatches(actual[index], expected[index], exact):
                lines.append(f"  [{index}] {problem}")
    if lines:
        summary = f"events differ ({len(actual)} received, {len(expected)} expected):"
        raise AssertionError("\n".join([summary, *lines]))
