"""assert_events: a bare string is the event type, dict data matches as a
subset (exact=True: equality), ANY matches anything, every difference is
listed."""

from __future__ import annotations

import json

import pytest

from eventsource import ServerSentEvent
from eventsource.testing import ANY, assert_events

CHUNK = {
    "id": "chatcmpl-1",
    "object": "chat.completion.chunk",
    "created": 1700000000,
    "model": "gpt-x",
    "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hi"}}],
}
EVENTS = [
    ServerSentEvent(type="chunk", data=json.dumps(CHUNK), id="1"),
    ServerSentEvent(type="done", data="{}", id="2"),
]


def test_a_bare_string_is_the_event_type() -> None:
    # The README's example: "done" names the type of an event whose data is {}.
    assert_events(EVENTS, [{"type": "chunk"}, "done"])
    assert_events([ServerSentEvent(data="hello")], ["message"])
    with pytest.raises(AssertionError, match=r"\[0\] type: got 'message', expected 'done'"):
        assert_events([ServerSentEvent(data="done")], ["done"])


def test_dict_data_matches_the_expected_keys_only() -> None:
    assert_events(EVENTS, [{"data": {"object": "chat.completion.chunk"}}, {"data": {}}])
    # recursively: nested dicts too, inside lists matched item by item
    assert_events(EVENTS[:1], [{"data": {"choices": [{"delta": {"content": "Hi"}}]}}])
    with pytest.raises(AssertionError) as info:
        assert_events(EVENTS[:1], [{"data": {"choices": [{"delta": {"content": "Bye"}}]}}])
    assert """[0] data["choices"][0]["delta"]["content"]: got 'Hi', expected 'Bye'""" in str(
        info.value
    )
    with pytest.raises(AssertionError, match=r"\[0\] data\[\"usage\"\]: missing"):
        assert_events(EVENTS[:1], [{"data": {"usage": None}}])
    with pytest.raises(AssertionError, match=r"list of 1 items?, expected 2"):
        assert_events(EVENTS[:1], [{"data": {"choices": [{}, {}]}}])


def test_exact_demands_equal_data() -> None:
    assert_events(EVENTS, [{"data": CHUNK}, {"data": {}}], exact=True)
    with pytest.raises(AssertionError) as info:
        assert_events(EVENTS[:1], [{"data": {"object": "chat.completion.chunk"}}], exact=True)
    message = str(info.value)
    for key in ("id", "created", "model", "choices"):
        assert f'[0] data["{key}"]: unexpected' in message


def test_any_matches_anything() -> None:
    assert_events(EVENTS, [ANY, "done"])
    assert_events(EVENTS, [{"data": {"id": ANY, "created": ANY}, "id": ANY}, {"id": ANY}])
    assert_events(EVENTS, [{"data": {**CHUNK, "id": ANY, "created": ANY}}, ANY], exact=True)
    with pytest.raises(AssertionError, match=r"\[0\] data\[\"usage\"\]: missing, expected ANY"):
        assert_events(EVENTS[:1], [{"data": {"usage": ANY}}])  # present, with any value
    with pytest.raises(AssertionError, match=r"\[2\] missing: expected ANY"):
        assert_events(EVENTS, [ANY, ANY, ANY])
    assert repr(ANY) == "ANY"


def test_every_difference_is_listed() -> None:
    expected = [
        {"type": "delta", "data": {"object": "x", "choices": [{"delta": {"content": "Yo"}}]}},
        {"type": "done", "id": "3"},
        "end",
    ]
    with pytest.raises(AssertionError) as info:
        assert_events(EVENTS, expected)
    lines = str(info.value).splitlines()
    assert lines[0] == "events differ (2 received, 3 expected):"
    assert lines[1:] == [
        "  [0] type: got 'chunk', expected 'delta'",
        """  [0] data["object"]: got 'chat.completion.chunk', expected 'x'""",
        """  [0] data["choices"][0]["delta"]["content"]: got 'Hi', expected 'Yo'""",
        "  [1] id: got '2', expected '3'",
        "  [2] missing: expected 'end'",
    ]
