"""SSEParser conformance: every WHATWG rule, under every chunking.

Each case runs with the input whole, byte by byte, and split at every index,
and in both of the parser's modes (whole blocks, and line by line when
on_comment is set): `check()` does that.
"""

from __future__ import annotations

import sys
import time
import tracemalloc
from collections.abc import Iterator

import pytest

from eventsource import EventTooLargeError, ServerSentEvent, SSEParser, parse

from .reference import reference_parse

E = ServerSentEvent


def chunkings(data: bytes) -> Iterator[list[bytes]]:
    yield [data]
    yield [data[i : i + 1] for i in range(len(data))]
    for i in range(1, len(data)):
        yield [data[:i], data[i:]]
    for i in range(1, len(data) - 1, 3):  # three pieces, so a CRLF meets a chunk edge twice
        yield [data[:i], data[i : i + 2], data[i + 2 :]]


def run(
    chunks: list[bytes], *, comments: bool = False, **kwargs: object
) -> tuple[list[ServerSentEvent], list[str], SSEParser]:
    seen: list[str] = []
    parser = SSEParser(on_comment=seen.append if comments else None, **kwargs)  # type: ignore[arg-type]
    events: list[ServerSentEvent] = []
    for chunk in chunks:
        events += parser.feed(chunk)
    events += parser.close()
    return events, seen, parser


def check(
    data: bytes,
    expected: list[ServerSentEvent],
    *,
    last_event_id: str | None = None,
    retry: int | None | str = "unchecked",
    comments: list[str] | None = None,
) -> None:
    """Assert the events (and state) for every chunking, in both modes."""
    for chunks in chunkings(data):
        for with_comments in (False, True):
            events, seen, parser = run(chunks, comments=with_comments)
            assert events == expected, chunks
            if last_event_id is not None:
                assert parser.last_event_id == last_event_id, chunks
            if retry != "unchecked":
                assert parser.retry == retry, chunks
            if comments is not None and with_comments:
                assert seen == comments, chunks


# --- line ends -----------------------------------------------------------------


@pytest.mark.parametrize("eol", ["\n", "\r", "\r\n"])
def test_each_line_end(eol: str) -> None:
    body = f"data: a{eol}data: b{eol}{eol}event: x{eol}data: c{eol}{eol}".encode()
    check(body, [E(data="a\nb"), E(type="x", data="c")])


def test_mixed_line_ends() -> None:
    check(b"data: a\r\ndata: b\rdata: c\n\r\ndata: d\r\r", [E(data="a\nb\nc"), E(data="d")])


def test_lf_then_cr_is_two_line_ends() -> None:
    check(b"data: a\n\rdata: b\n\n", [E(data="a"), E(data="b")])


def test_cr_cr_lf_is_two_line_ends() -> None:
    check(b"data: a\r\r\ndata: b\r\n\r\n", [E(data="a"), E(data="b")])


def test_cr_at_chunk_end_dispatches_at_once() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\r\r") == [E(data="a")]
    assert parser.feed(b"\ndata: b\r\n\r\n") == [E(data="b")]


@pytest.mark.parametrize(
    "char", ["\u2028", "\u2029", "\u0085", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x00"]
)
def test_nothing_else_ends_a_line(char: str) -> None:
    check(f"data: a{char}b\n\n".encode(), [E(data=f"a{char}b")])


# --- decoding ------------------------------------------------------------------


def test_utf8_split_anywhere() -> None:
    check("data: über 日本 🎉\n\n".encode(), [E(data="über 日本 🎉")])


def test_invalid_utf8_becomes_replacement_character() -> None:
    check(b"data: a\xffb\xe2\x82\n\n", [E(data="a\ufffdb\ufffd")])
    check(b"data: \xf0\x9f\x8e\n\n", [E(data="\ufffd")])


def test_truncated_sequence_before_line_end() -> None:
    check(b"data: \xe2\x82\ndata: x\n\n", [E(data="\ufffd\nx")])


def test_leading_bom_is_stripped_once() -> None:
    check(b"\xef\xbb\xbfdata: a\n\n", [E(data="a")])
    # A second BOM is part of the first line's field name: an unknown field.
    check(b"\xef\xbb\xbf\xef\xbb\xbfdata: a\n\ndata: b\n\n", [E(data="b")])


def test_bom_not_at_start_is_data() -> None:
    check("data: \ufeffa\n\n".encode(), [E(data="\ufeffa")])


def test_bom_handling_starts_afresh_after_close() -> None:
    parser = SSEParser()
    assert parser.feed(b"\xef\xbb\xbfdata: a\n\n") == [E(data="a")]
    parser.close()
    assert parser.feed(b"\xef\xbb\xbfdata: b\n\n") == [E(data="b")]


# --- fields --------------------------------------------------------------------


def test_one_leading_space_is_removed() -> None:
    check(
        b"data:a\n\ndata: a\n\ndata:  a\n\ndata:\ta\n\n",
        [E(data="a"), E(data="a"), E(data=" a"), E(data="\ta")],
    )


def test_colon_in_value_is_kept() -> None:
    check(b"data: a: b:c\n\nevent:x:y\ndata\n\n", [E(data="a: b:c"), E(type="x:y", data="")])


def test_line_without_colon_is_field_with_empty_value() -> None:
    check(b"data\n\ndata\ndata\n\n", [E(data=""), E(data="\n")])


def test_empty_data_field_dispatches_empty_event() -> None:
    check(b"data:\n\n", [E(data="")])


def test_field_names_are_case_sensitive_and_exact() -> None:
    check(b"Data: a\nDATA: b\ndata : c\n data: d\nevent: e\ndata: f\n\n", [E(type="e", data="f")])


def test_unknown_fields_are_ignored() -> None:
    check(b"foo: bar\ndata: a\nbaz\n\n", [E(data="a")])


def test_event_type_and_default() -> None:
    check(
        b"event: chunk\ndata: a\n\nevent:\ndata: b\n\nevent: x\nevent: y\ndata: c\n\n",
        [E(type="chunk", data="a"), E(data="b"), E(type="y", data="c")],
    )


def test_type_and_data_reset_after_each_block() -> None:
    check(b"event: x\ndata: a\n\ndata: b\n\n", [E(type="x", data="a"), E(data="b")])


def test_event_without_data_dispatches_nothing() -> None:
    check(b"event: x\n\ndata: a\n\n", [E(data="a")])


def test_one_trailing_lf_removed() -> None:
    check(b"data: a\ndata:\n\n", [E(data="a\n")])
    check(b"data:\ndata:\n\n", [E(data="\n")])


def test_comments() -> None:
    check(
        b": hello\n:world\n:  two spaces\n:\ndata: a\n\n",
        [E(data="a")],
        comments=["hello", "world", " two spaces", ""],
    )


def test_comment_between_data_lines() -> None:
    check(b"data: a\n: note\ndata: b\n\n", [E(data="a\nb")], comments=["note"])


# --- id --------------------------------------------------------------------------


def test_id_is_the_last_event_id_at_dispatch() -> None:
    check(
        b"id: 1\ndata: a\n\ndata: b\n\nid: 2\ndata: c\n\n",
        [E(data="a", id="1"), E(data="b", id="1"), E(data="c", id="2")],
        last_event_id="2",
    )


def test_id_is_updated_even_when_nothing_is_dispatched() -> None:
    check(b"id: 7\n\ndata: a\n\n", [E(data="a", id="7")], last_event_id="7")


def test_empty_id_resets() -> None:
    check(
        b"id: 1\ndata: a\n\nid\ndata: b\n\n", [E(data="a", id="1"), E(data="b")], last_event_id=""
    )


def test_id_with_nul_is_ignored() -> None:
    check(
        b"id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n",
        [E(data="a", id="1"), E(data="b", id="1")],
        last_event_id="1",
    )


def test_id_of_unfinished_block_is_not_kept() -> None:
    check(b"id: 1\ndata: a\n\nid: 2\ndata: b\n", [E(data="a", id="1")], last_event_id="1")


def test_initial_last_event_id() -> None:
    parser = SSEParser(last_event_id="41")
    assert parser.feed(b"data: a\n\n") == [E(data="a", id="41")]


# --- retry -----------------------------------------------------------------------


def test_retry_sets_reconnection_time_and_event_field() -> None:
    check(
        b"retry: 1500\ndata: a\n\ndata: b\n\n", [E(data="a", retry=1500), E(data="b")], retry=1500
    )


@pytest.mark.parametrize(
    "value", [b"", b" 10", b"10a", b"-5", b"1.5", b"1e3", "\u0661\u0662".encode(), b"\xc2\xb2"]
)
def test_retry_must_be_ascii_digits(value: bytes) -> None:
    check(b"retry:" + b" " + value + b"\ndata: a\n\n", [E(data="a")], retry=None)


def test_retry_without_data_still_counts() -> None:
    check(b"retry: 10\n\n", [], retry=10)


def test_retry_in_unfinished_block_counts() -> None:
    check(b"data: a\nretry: 25\n", [], retry=25)


MAX_RETRY = 2**63 - 1  # ms: the parser keeps a longer retry as this (292 million years)


def test_a_retry_of_any_length_is_clamped_never_raised() -> None:
    # The spec takes any run of ASCII digits. Past int()'s digit limit (4300)
    # the value is as valid as below it; leading zeros count for nothing.
    cases = [
        ("0", 0),
        (str(MAX_RETRY), MAX_RETRY),
        (str(MAX_RETRY + 1), MAX_RETRY),
        ("9" * 312, MAX_RETRY),  # too large for a float
        ("9" * 4300, MAX_RETRY),
        ("9" * 4301, MAX_RETRY),
        ("9" * 10_000, MAX_RETRY),
        ("0" * 10_000 + "1500", 1500),
    ]
    for digits, expected in cases:
        data = f"retry: {digits}\ndata: a\n\ndata: b\n\n".encode()
        cuts = [1, 7, 8, 9, len(data) // 2, len(data) - 12, len(data) - 1]
        chunkings = [
            [data],
            [data[i : i + 1] for i in range(len(data))],
            [data[i : i + 1000] for i in range(0, len(data), 1000)],
            *([data[:i], data[i:]] for i in cuts),
        ]
        for chunks in chunkings:
            for comments in (False, True):
                events, _, parser = run(chunks, comments=comments)
                assert events == [E(data="a", retry=expected), E(data="b")], digits[:8]
                assert parser.retry == expected
        # Kept back in an unfinished block, it counts at the end.
        assert run([data[: data.index(b"\n") + 1]])[2].retry == expected


def _seconds_to_parse_retry(digits: int) -> float:
    """CPU seconds to parse one retry line of that many digits (best of 2)."""
    data = b"retry: " + b"7" * digits + b"\ndata: a\n\n"
    best = float("inf")
    for _ in range(2):
        started = time.process_time()
        events = parse(data)
        best = min(best, time.process_time() - started)
        assert [event.data for event in events] == ["a"]
    return best


def test_a_long_retry_costs_linear_time_even_without_int_digit_limits() -> None:
    # int() of n digits takes time quadratic in n (hence CPython's 4300-digit
    # limit); an application may lift the limit (sys.set_int_max_str_digits(0)).
    # 64 times the digits: linear is ~64 times the time, quadratic ~4096.
    limit = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        small = _seconds_to_parse_retry(16 * 1024)
        large = _seconds_to_parse_retry(1024 * 1024)
    finally:
        sys.set_int_max_str_digits(limit)
    assert large < 640 * max(small, 1e-4), f"{large:.3f} s vs {small:.5f} s"


# --- end of stream -----------------------------------------------------------------


def test_unfinished_block_is_discarded() -> None:
    check(b"data: a\n\ndata: b\n", [E(data="a")])
    check(b"data: a\n\ndata: b", [E(data="a")])


def test_close_resets_for_a_new_connection() -> None:
    parser = SSEParser()
    assert parser.feed(b"id: 5\nretry: 9\ndata: a\n\nevent: x\ndata: partial") == [
        E(data="a", id="5", retry=9)
    ]
    assert parser.close() == []
    assert parser.last_event_id == "5"
    assert parser.retry == 9
    # Nothing of the unfinished block leaks into the next connection.
    assert parser.feed(b"\n\ndata: b\n\n") == [E(data="b", id="5")]


def test_close_drops_a_pending_cr_and_undecoded_bytes() -> None:
    parser = SSEParser()
    parser.feed(b"data: a\r")
    parser.close()
    assert parser.feed(b"\ndata: b\n\n") == [E(data="b")]  # the LF is a blank line of its own
    parser.feed(b"data: \xe2\x82")
    parser.close()
    assert parser.feed(b"\xacdata: c\n\n") == []  # the leftover bytes are not resumed


@pytest.mark.parametrize("comments", [False, True])
def test_a_parser_closed_with_input_kept_back_parses_on_as_a_fresh_one(comments: bool) -> None:
    # Each start leaves something unfinished in another of the parser's
    # buffers (chunks without a line end, a long unfinished block, text, an
    # unfinished event's data); after close() the parser parses the next
    # connection, in any chunking, as a new one would.
    starts = [
        [b"data: a\n\ndata: ", b"y" * 5000, b"\ndata:", b" q"],
        [b"data: a\n\ndata: " + b"y" * 5000, b"\n", b"x" * 5000],
        [b"\xef\xbb\xbfdata: x"],
        [b"data: 1\n", b"data: 2"],
        [b": c\nevent: e\ndata: 3\n"],
        [b"data: 4\r"],
    ]
    body = b"data: a\n\ndata: " + b"y" * 5000 + b"\ndata: z\n\n: note\nevent: t\ndata: c\n\n"
    expected, expected_comments, _ = run([body], comments=comments)
    assert len(expected) == 3
    seen: list[str] = []
    parser = SSEParser(on_comment=seen.append if comments else None)
    for start in starts:
        for size in (1, 7, 100, 4096, len(body)):
            for chunk in start:
                parser.feed(chunk)
            parser.close()
            seen.clear()
            events = []
            for i in range(0, len(body), size):
                events += parser.feed(body[i : i + size])
            events += parser.close()
            assert (events, seen) == (expected, expected_comments), (start, size)


# --- the fast path meets the general path ----------------------------------------


def test_runs_of_one_shape_then_another() -> None:
    blocks = [f'event: chunk\nid: {i}\ndata: {{"n": {i}}}\n\n' for i in range(200)]
    blocks += [f"data: plain {i}\n\n" for i in range(200)]
    blocks += [f"data: {i}\nevent: t\n\n" for i in range(50)]
    blocks.insert(100, ": ping\n\n")
    blocks.insert(300, "id: 9\x00\ndata: nul\n\n")
    body = "".join(blocks).encode()
    expected = reference_parse(body)
    for size in (1, 7, 64, 1000, 65536):
        chunks = [body[i : i + size] for i in range(0, len(body), size)]
        for comments in (False, True):
            events, _, parser = run(chunks, comments=comments)
            assert [tuple(e) for e in events] == [
                (r.type, r.data, r.id, r.retry) for r in expected.events
            ]
            assert parser.last_event_id == expected.last_event_id


def test_empty_event_type_on_fast_path_is_message() -> None:
    body = b"".join(b"event:\ndata: %d\n\n" % i for i in range(100))
    assert parse(body) == [E(data=str(i)) for i in range(100)]


# --- limits ----------------------------------------------------------------------


def test_line_over_limit_raises_and_carries_earlier_events() -> None:
    body = b"data: a\n\n" + b"data: " + b"x" * 100 + b"\n\n"
    for chunks in chunkings(body):
        parser = SSEParser(max_event_size=50)
        events: list[ServerSentEvent] = []
        with pytest.raises(EventTooLargeError) as info:
            for chunk in chunks:
                events += parser.feed(chunk)
        events += info.value.events
        assert events == [E(data="a")]
        assert info.value.limit == 50


def test_data_over_limit_raises_whatever_the_chunking() -> None:
    body = b"data: a\n\n" + b"data: 0123456789\n" * 10 + b"\n"
    for chunks in chunkings(body):
        parser = SSEParser(max_event_size=100)
        events: list[ServerSentEvent] = []
        with pytest.raises(EventTooLargeError) as info:
            for chunk in chunks:
                events += parser.feed(chunk)
        assert events + info.value.events == [E(data="a")]


def test_event_at_limit_is_accepted() -> None:
    data = "x" * 100
    check(
        f"data: {data[:50]}\ndata: {data[:49]}\n\n".encode(), [E(data=data[:50] + "\n" + data[:49])]
    )
    # A line counts whole, field name included.
    assert parse(b"data:" + b"x" * 95 + b"\n\n", max_event_size=100) == [E(data="x" * 95)]
    with pytest.raises(EventTooLargeError):
        parse(b"data:" + b"x" * 96 + b"\n\n", max_event_size=100)


def test_long_comment_line_is_bounded_too() -> None:
    with pytest.raises(EventTooLargeError):
        parse(b":" + b"x" * 200 + b"\n\n", max_event_size=100)


def test_parser_is_reset_after_the_error() -> None:
    parser = SSEParser(max_event_size=10)
    with pytest.raises(EventTooLargeError):
        parser.feed(b"data: " + b"x" * 50)
    assert parser.feed(b"data: ok\n\n") == [E(data="ok")]


def test_endless_line_raises_early_with_bounded_memory() -> None:
    """100 MB without a newline: the error comes within the limit, and the
    parser never holds more than about the limit."""
    limit = 1024 * 1024
    chunk = b"x" * 65536
    parser = SSEParser(max_event_size=limit)
    tracemalloc.start()
    fed = 0
    try:
        with pytest.raises(EventTooLargeError):
            while fed < 100 * 1024 * 1024:
                parser.feed(chunk)
                fed += len(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert fed <= limit + len(chunk)
    assert peak < 4 * limit


def test_endless_event_of_many_lines_is_bounded() -> None:
    limit = 64 * 1024
    parser = SSEParser(max_event_size=limit)
    fed = 0
    with pytest.raises(EventTooLargeError):
        while fed < 10 * 1024 * 1024:
            parser.feed(b"data: " + b"y" * 94 + b"\n")
            fed += 101
    assert fed <= limit * 1.1


def test_bad_limit() -> None:
    with pytest.raises(ValueError):
        SSEParser(max_event_size=0)


# --- parse() -----------------------------------------------------------------------


def test_parse_accepts_bytes_str_and_chunks() -> None:
    expected = [E(data="a"), E(type="x", data="b", id="1")]
    body = "data: a\n\nevent: x\nid: 1\ndata: b\n\n"
    assert parse(body) == expected
    assert parse(body.encode()) == expected
    assert parse([body[:5].encode(), body[5:].encode()]) == expected
    assert parse(iter([body[:9], body[9:]])) == expected
    assert parse(bytearray(body.encode())) == expected


def test_parse_discards_unfinished_event() -> None:
    assert parse(b"data: a\n\ndata: b") == [E(data="a")]
