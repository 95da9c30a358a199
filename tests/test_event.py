"""ServerSentEvent: an immutable value object."""

from __future__ import annotations

import copy
import pickle

import pytest

from eventsource import ServerSentEvent


def test_defaults_and_keywords() -> None:
    event = ServerSentEvent()
    assert (event.type, event.data, event.id, event.retry) == ("message", "", "", None)
    event = ServerSentEvent(type="chunk", data='{"a": 1}', id="7", retry=500)
    assert (event.type, event.data, event.id, event.retry) == ("chunk", '{"a": 1}', "7", 500)


def test_no_attribute_can_be_set() -> None:
    event = ServerSentEvent(data="x")
    for name in ("type", "data", "id", "retry", "other"):
        with pytest.raises(AttributeError):
            setattr(event, name, "y")


def test_equality_and_hash() -> None:
    a = ServerSentEvent(type="t", data="d", id="1")
    assert a == ServerSentEvent(type="t", data="d", id="1")
    assert a != ServerSentEvent(type="t", data="d", id="2")
    assert hash(a) == hash(ServerSentEvent(type="t", data="d", id="1"))
    # Never equal to a plain tuple with the same fields.
    assert a != ("t", "d", "1", None)
    assert ("t", "d", "1", None) != a
    assert not (a == ("t", "d", "1", None))


def test_repr_is_readable() -> None:
    assert repr(ServerSentEvent(data="hi")) == "ServerSentEvent(type='message', data='hi')"
    assert (
        repr(ServerSentEvent(type="x", data="", id="3", retry=10))
        == "ServerSentEvent(type='x', data='', id='3', retry=10)"
    )


def test_json() -> None:
    assert ServerSentEvent(data='{"content": "Hi", "n": [1, 2]}').json() == {
        "content": "Hi",
        "n": [1, 2],
    }
    with pytest.raises(ValueError):
        ServerSentEvent(data="not json").json()


def test_copy_and_pickle() -> None:
    event = ServerSentEvent(type="t", data="d", id="i", retry=1)
    assert copy.copy(event) == event
    assert copy.deepcopy(event) == event
    assert pickle.loads(pickle.dumps(event)) == event


def test_match_args_allow_pattern_matching_by_position() -> None:
    assert ServerSentEvent.__match_args__ == ("type", "data", "id", "retry")
