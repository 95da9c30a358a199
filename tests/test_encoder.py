"""format_event: the wire-format writer."""

from __future__ import annotations

import pytest

from eventsource import ServerSentEvent, format_event, parse


def test_simple_event() -> None:
    assert format_event("hello") == b"data: hello\n\n"


def test_all_fields() -> None:
    body = format_event("a", event="chunk", id="7", retry=3000, comment="hi")
    assert body == b": hi\nevent: chunk\nid: 7\nretry: 3000\ndata: a\n\n"
    assert parse(body) == [ServerSentEvent(type="chunk", data="a", id="7", retry=3000)]


def test_multiline_data_becomes_several_data_lines() -> None:
    assert format_event("a\nb\r\nc\rd") == b"data: a\ndata: b\ndata: c\ndata: d\n\n"
    assert parse(format_event("a\n\nb\n")) == [ServerSentEvent(data="a\n\nb\n")]


def test_values_with_leading_spaces_and_empty_values_round_trip() -> None:
    body = format_event(" x", event=" e", id="")
    assert parse(body) == [ServerSentEvent(type=" e", data=" x", id="")]
    assert parse(format_event("")) == [ServerSentEvent(data="")]


def test_non_str_data_is_json() -> None:
    body = format_event({"content": "Hello, wörld"}, event="message")
    assert body == 'event: message\ndata: {"content":"Hello, wörld"}\n\n'.encode()
    assert parse(body)[0].json() == {"content": "Hello, wörld"}


def test_blocks_without_data() -> None:
    assert format_event(retry=10) == b"retry: 10\n\n"
    assert format_event(comment="ping") == b": ping\n\n"
    assert format_event(id="5") == b"id: 5\n\n"
    assert parse(format_event(id="5") + format_event("x")) == [ServerSentEvent(data="x", id="5")]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"data": "x", "event": "a\nb"},
        {"data": "x", "event": "a\rb"},
        {"data": "x", "id": "a\nb"},
        {"data": "x", "id": "a\x00b"},
        {"data": "x", "retry": -1},
        {"data": "x", "retry": 1.5},
        {"data": "x", "retry": True},
        {},
    ],
)
def test_invalid_input_raises_value_error(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        format_event(**kwargs)  # type: ignore[arg-type]


def test_an_id_a_client_cannot_send_back_as_it_is_raises_value_error() -> None:
    # A client sends the id back in Last-Event-ID, stripped of surrounding
    # whitespace; VT and FF h11 refuses to send at all. Writing such an id
    # is a server bug: refused.
    for evil in ["42 ", " 42", "\t42", "42\t", " ", "4\x0b2", "42\x0c"]:
        with pytest.raises(ValueError, match="id"):
            format_event("x", id=evil)
    for fine in ["4 2", "é", "4\x012", ""]:
        assert parse(format_event("x", id=fine)) == [ServerSentEvent(data="x", id=fine)]
