"""Tests that force each of the parser's paths (see the Strategy comment of
eventsource/_parser.py) and compare them with the naive reference.

- kept bytes: chunks without a line end are kept undecoded (``_raw``);
- the bytes path: whole blocks found on the bytes, the rest kept (``_tail``);
- the fast path's extended forms: leading comments, several data lines;
- the big-chunk search for the last blank line (``_rfind_blank``);
- the limit, when kept bytes pass it.

Every check runs under several chunkings, with on_comment set and unset.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventsource import EventTooLargeError, ServerSentEvent, SSEParser
from eventsource._parser import _FORMS

from .reference import reference_parse

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def chunkings(body: bytes, seed: int = 0) -> list[list[bytes]]:
    rng = random.Random(seed)
    out = [[body], [body[i : i + 1] for i in range(len(body))]]
    for size in (2, 3, 7, 64, 4096, 5000):
        out.append([body[i : i + size] for i in range(0, len(body), size)])
    pieces, i = [], 0
    while i < len(body):  # random small chunks, as in the benchmark
        j = i + rng.randint(1, 100)
        pieces.append(body[i:j])
        i = j
    out.append(pieces)
    return out


def feed_all(
    chunks: list[bytes], comments: bool
) -> tuple[list[ServerSentEvent], list[str], SSEParser]:
    seen: list[str] = []
    parser = SSEParser(on_comment=seen.append if comments else None)
    events: list[ServerSentEvent] = []
    for chunk in chunks:
        events += parser.feed(chunk)
    events += parser.close()
    return events, seen, parser


def assert_prompt(chunks: list[bytes], comments: bool) -> None:
    """Each feed() returns the events its chunk completes, none later."""
    parser = SSEParser(on_comment=(lambda _: None) if comments else None)
    done = 0
    fed = b""
    for chunk in chunks:
        fed += chunk
        expected = reference_parse(fed).events
        events = parser.feed(chunk)
        assert [tuple(e) for e in events] == [
            (r.type, r.data, r.id, r.retry) for r in expected[done:]
        ], [len(c) for c in chunks]
        done = len(expected)


def assert_reference(body: bytes, *, seed: int = 0) -> None:
    expected = reference_parse(body)
    for chunks in chunkings(body, seed):
        if len(chunks) <= 40:
            assert_prompt(chunks, False)
        for comments in (False, True):
            events, seen, parser = feed_all(chunks, comments)
            assert [tuple(e) for e in events] == [
                (r.type, r.data, r.id, r.retry) for r in expected.events
            ], (comments, [len(c) for c in chunks])
            assert parser.last_event_id == expected.last_event_id
            assert parser.retry == expected.retry
            if comments:
                assert seen == expected.comments


# --- kept bytes and the bytes path ---------------------------------------------------


@pytest.mark.parametrize("eol", ["\n", "\r\n", "\r"])
def test_long_lines_in_small_chunks(eol: str) -> None:
    # Most chunks hold no line end: they are kept as bytes, emoji split included.
    blocks = [f"id: {i}{eol}data: {'x🙂ü' * (50 * i)}{eol}{eol}" for i in range(1, 12)]
    assert_reference("".join(blocks).encode())


@pytest.mark.parametrize("eol", ["\n", "\r\n", "\r"])
def test_short_blocks_in_small_chunks(eol: str) -> None:
    blocks = [f"event: chunk{eol}id: {i}{eol}data: {{'t': 'é{i}'}}{eol}{eol}" for i in range(300)]
    assert_reference("".join(blocks).encode())


@pytest.mark.parametrize(
    "second",
    [
        "event: chunk\nid: 8\ndata: b\n\n",  # the same shape: two matches cover the read
        "event: chunk\nid: 8\ndata: b\n\nevent: chunk\nid: 9\ndata: c\n\n",  # three
        "event: chunk\nid: 8\ndata: b\nretry: 5\n\n",  # another shape second
        "event: chunk\nid: 8\x00\ndata: b\n\n",  # an id with NUL second
        ": ping\nevent: chunk\nid: 8\ndata: b\n\n",
        "event: chunk\ndata: b\n\n",  # no id: the first block's id stays
        "id: 8\n\n",  # a block that dispatches nothing
    ],
)
def test_two_blocks_in_one_small_read(second: str) -> None:
    # After a first block of the same shape (past the BOM check, its form
    # known), one read holding two or more whole blocks, with part of the next
    # one after them: each event keeps its own id, the last id is the last
    # block's.
    prime = "event: chunk\nid: 6\ndata: 0\n\n"
    first = "event: chunk\nid: 7\ndata: a\n\n"
    body = (prime + first + second + "event: chunk\nid: 10\nda").encode()
    start = len(prime)
    for comments in (False, True):
        parser = SSEParser(on_comment=(lambda _: None) if comments else None)
        done = []
        for chunk in (body[:start], body[start:]):
            done += parser.feed(chunk)
        expected = reference_parse(body)
        assert [tuple(e) for e in done] == [
            (r.type, r.data, r.id, r.retry) for r in expected.events
        ]
        assert parser.last_event_id == expected.last_event_id
        assert parser.retry == expected.retry


def test_kept_lines_then_blank_line_alone() -> None:
    # A chunk that is only the blank line, after lines kept as bytes or text.
    for eol in (b"\n", b"\r\n", b"\r"):
        body = b"data: a" + eol + b"data: b" + eol + eol + b"data: c" + eol + eol
        for cut in range(1, len(body)):
            for cut2 in range(cut, len(body)):
                chunks = [body[:cut], body[cut:cut2], body[cut2:]]
                for comments in (False, True):
                    events, _, _ = feed_all(chunks, comments)
                    assert events == [ServerSentEvent(data="a\nb"), ServerSentEvent(data="c")]


def test_cr_at_a_chunk_end_on_the_bytes_path() -> None:
    # Warmed up on the bytes path, then every cut that leaves a CR at a chunk's
    # end, with empty chunks or a chunk without line ends after it.
    warm = b"data: w\r\n\r\n"
    for body in (b"data: a\r\ndata: b\r\n\r\nid: 7\r\ndata: c\r\n\r\n", b"data: a\r\rdata: b\r\r"):
        expected = [(r.type, r.data, r.id, r.retry) for r in reference_parse(warm + body).events]
        for cut in (i + 1 for i, byte in enumerate(body) if byte == 13):
            head, rest = body[:cut], body[cut:]
            for between in ([], [b""], [b"", b""]):
                for chunks in (
                    [warm, head, *between, rest],
                    [warm, head, *between, rest[:1], rest[1:]],
                ):
                    for comments in (False, True):
                        events, _, _ = feed_all(chunks, comments)
                        assert [tuple(e) for e in events] == expected, chunks
                    assert_prompt(chunks, False)


def test_bom_and_cr_then_kept_bytes() -> None:
    body = "\ufeffdata: 1\r".encode() + b"\ndata: two\r\n\r\n" + "data: ü🙂\n\n".encode()
    assert_reference(body)
    assert_reference(body[3:])


def test_nul_id_in_kept_text_or_bytes() -> None:
    body = b"id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\nid: 4\ndata: c\n\n" * 3
    assert_reference(body)
    body = b"id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\nid: 4\ndata: c\n\n"  # one NUL only
    expected = [(r.type, r.data, r.id, r.retry) for r in reference_parse(body).events]
    for cut in range(len(body)):  # the NUL kept as text (after a BOM check) or as bytes
        for comments in (False, True):
            events, _, _ = feed_all([body[:cut], body[cut:]], comments)
            assert [tuple(e) for e in events] == expected, cut


def test_close_applies_a_retry_from_kept_bytes() -> None:
    for comments in (False, True):
        for split in range(1, 18):
            parser = SSEParser(on_comment=(lambda _: None) if comments else None)
            body = b"data: a\n\nretry: 7\ndata: x\n"
            assert parser.feed(body[: split + 9]) in ([], [ServerSentEvent(data="a")])
            parser.feed(body[split + 9 :])
            assert parser.close() == []
            assert parser.retry == 7
            assert parser.feed(b"data: b\n\n") == [ServerSentEvent(data="b")]


def test_close_drops_kept_bytes() -> None:
    parser = SSEParser()
    parser.feed(b"data: a\n\n")
    parser.feed(b"data: \xf0\x9f")  # kept: an unfinished line, half an emoji
    parser.feed(b"\x99\x82 b")
    parser.close()
    assert parser.feed(b"\ndata: c\n\n") == [ServerSentEvent(data="c")]


# --- the fast path's extended forms ---------------------------------------------------


def test_multiline_blocks_with_comments() -> None:
    rng = random.Random(2)
    blocks = []
    for i in range(400):
        lines = [f"data: {'w' * rng.randint(0, 5)}ï{i}" for _ in range(rng.randint(1, 6))]
        comments = [": keepalive"] * rng.randint(0, 2)
        blocks.append("\r\n".join([*comments, "event: update", f"id: {i}", *lines]) + "\r\n\r\n")
    assert_reference("".join(blocks).encode())


def test_multiline_blocks_take_the_fast_path() -> None:
    body = b"".join(
        b": ping\r\nevent: e\r\nid: %d\r\n" % i + b"data: x\r\n" * (i % 4 + 1) + b"\r\n"
        for i in range(50)
    )
    parser = SSEParser()
    parser.feed(b"data: 0\n\n")  # past the BOM check: the next chunk takes the bytes path
    events = parser.feed(body)
    assert [e.data for e in events] == ["\n".join(["x"] * (i % 4 + 1)) for i in range(50)]
    assert parser._form is _FORMS[(("event", "id", "data"), 1, True)]


@pytest.mark.parametrize(
    "block",
    [
        "data: a\ndata: b\n\n",
        "data:a\ndata: b\ndata:  c\n\n",
        "data: a\ndata:b\n\n",  # a continuation without the space: general path
        "data: a\ndata\n\n",
        "data: data: x\ndata: data: y\n\n",
        ": c\ndata: a\ndata: b\n\n",
        ":\n:x\nid: 1\ndata: a\ndata: \n\n",
        ": c\ndata: a\nid: 2\x00\n\n",
        "data: a\nevent: e\ndata: b\n\n",  # data lines not consecutive: general path
        ": c\nevent:\ndata: a\ndata: b\n\n",
        "data: a\ndata: b\nretry: 5\n\n",
        ": c\n: d\ndata: a\n\n",
        "data: a\n: c\ndata: b\n\n",  # a comment between: general path
    ],
)
def test_extended_shapes(block: str) -> None:
    other = "event: t\nid: 9\ndata: z\n\n"
    for body in (block * 40, other * 5 + block * 40 + other * 5, (block + other) * 20):
        assert_reference(body.encode())


# --- big chunks ------------------------------------------------------------------------


def test_last_blank_line_far_from_a_big_chunks_end() -> None:
    # More than eight lines after the last blank line of a big chunk.
    lines = "".join(f"data: {i}\n" for i in range(2000))
    body = f"data: {'y' * 5000}\n\n{lines}\n".encode()
    assert_reference(body)
    body = f"data: {'y' * 5000}\n\n{lines[:60]}\n{lines}\n".encode()
    assert_reference(body)
    for lead in (b"\n", b"data: 0\n\n"):  # past the BOM check: the bytes path
        for comments in (False, True):
            assert_prompt([lead, body[:-1], b"\n"], comments)


# --- the limit ------------------------------------------------------------------------


def until_first_error(chunks: list[bytes], limit: int, comments: bool) -> tuple[list[Any], bool]:
    parser = SSEParser(max_event_size=limit, on_comment=(lambda _: None) if comments else None)
    events: list[Any] = []
    for chunk in chunks:
        try:
            events += parser.feed(chunk)
        except EventTooLargeError as exc:
            return events + list(exc.events), True
        assert len(parser._tail) + sum(map(len, parser._raw)) <= limit
    return events + parser.close(), False


@pytest.mark.parametrize("limit", [1, 5, 8, 9, 10, 12, 20, 40])
def test_kept_bytes_never_change_the_limit_outcome(limit: int) -> None:
    # Multi-byte characters make the bytes outnumber the characters: kept bytes
    # past the limit must be decoded and checked, never be an error themselves.
    bodies = [
        "data: ééééé\n\n".encode(),
        "data: 🙂🙂🙂🙂🙂🙂\n\ndata: a\n\n".encode(),
        "data: ab\ndata: ü\ndata: c\n\nid: 🙂🙂\ndata: x\n\n".encode(),
        "retry: 5\n: éééééééé\ndata: 12345678\n\n".encode(),
        "data: 🙂🙂🙂\r\ndata: 🙂\r\n\r\n".encode(),
    ]
    for body in bodies:
        for comments in (False, True):
            outcomes = {
                repr(until_first_error(chunks, limit, comments)) for chunks in chunkings(body)
            }
            assert len(outcomes) == 1, (body, outcomes)


line = st.text(st.sampled_from("aé🙂: \0"), max_size=8)
field = st.one_of(
    st.builds(lambda v: f"data: {v}", line),
    st.builds(lambda v: f"data:{v}", line),
    st.builds(lambda v: f"id: {v}", line),
    st.builds(lambda v: f"event: {v}", line),
    st.builds(lambda v: f": {v}", line),
    st.just("retry: 12"),
    st.just(""),
)


@SETTINGS
@given(
    st.lists(st.tuples(field, st.sampled_from(["\n", "\r\n", "\r"])), max_size=30),
    st.integers(1, 30),
    st.integers(0, 2**32),
)
def test_random_streams_under_random_chunkings(
    lines: list[tuple[str, str]], repeat: int, seed: int
) -> None:
    body = ("".join(text + eol for text, eol in lines) * repeat).encode()
    assert_reference(body, seed=seed)
