"""Property tests: the parser against the encoder and against a naive reference
implementation of the spec, under random chunkings, in both parser modes."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventsource import EventTooLargeError, ServerSentEvent, SSEParser, format_event

from .reference import reference_parse

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, start = [], 0
    for point in points:
        pieces.append(data[start:point])
        start = point
    pieces.append(data[start:])
    return pieces


def feed_all(
    chunks: list[bytes], *, comments: bool, limit: int = 1 << 24
) -> tuple[list[ServerSentEvent], list[str], SSEParser]:
    seen: list[str] = []
    parser = SSEParser(max_event_size=limit, on_comment=seen.append if comments else None)
    events: list[ServerSentEvent] = []
    for chunk in chunks:
        events += parser.feed(chunk)
    events += parser.close()
    return events, seen, parser


text = st.text(st.characters(blacklist_categories=["Cs"]), max_size=30)
line_text = st.text(
    st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\n"), max_size=20
)


def _writable_id(s: str) -> bool:
    """An id format_event writes: no NUL, and one a client can send back as
    it is (no space or tab at either end, no VT or FF)."""
    return not any(c in s for c in "\0\x0b\x0c") and s == s.strip(" \t")


event_spec = st.fixed_dictionaries(
    {"data": text},
    optional={
        "event": line_text,
        "id": line_text.filter(_writable_id),
        "retry": st.integers(min_value=0, max_value=10**12),
    },
)


@SETTINGS
@given(
    st.lists(event_spec, max_size=20),
    st.lists(st.integers(min_value=0), max_size=12),
    st.booleans(),
)
def test_format_then_any_chunking_round_trips(
    specs: list[dict[str, object]], cuts: list[int], comments: bool
) -> None:
    body = b"".join(format_event(**spec) for spec in specs)  # type: ignore[arg-type]
    events, _, _ = feed_all(split(body, cuts), comments=comments)
    expected = []
    last_id = ""
    for spec in specs:
        last_id = str(spec.get("id", last_id))
        data = str(spec["data"]).replace("\r\n", "\n").replace("\r", "\n")
        expected.append(
            ServerSentEvent(
                type=str(spec.get("event") or "message"),
                data=data,
                id=last_id,
                retry=spec.get("retry"),  # type: ignore[arg-type]
            )
        )
    assert events == expected


# A grammar of plausible and implausible lines, so that the interesting rules
# (fields, comments, BOMs, NUL, odd retry values, every line end) meet often.
field_line = st.one_of(
    st.builds(lambda v: f"data: {v}", line_text),
    st.builds(lambda v: f"data:{v}", line_text),
    st.just("data"),
    st.builds(lambda v: f"event: {v}", line_text),
    st.builds(lambda v: f"id: {v}", line_text),
    st.builds(lambda v: f"id: {v}\0", line_text),
    st.just("id"),
    st.builds(lambda v: f"retry: {v}", st.sampled_from(["0", "15", "3000", "x", " 5", "", "1٢"])),
    st.builds(lambda v: f":{v}", line_text),
    st.builds(lambda v: f"{v}: x", st.sampled_from(["Data", "foo", "data ", "\ufeffdata"])),
    st.just(""),
    st.just(""),
)
line_end = st.sampled_from(["\n", "\r", "\r\n"])


@st.composite
def streams(draw: st.DrawFn) -> bytes:
    lines = draw(st.lists(st.tuples(field_line, line_end), max_size=40))
    body = "".join(line + end for line, end in lines)
    if draw(st.booleans()):
        body += draw(line_text)  # an unfinished last line
    prefix = draw(st.sampled_from(["", "", "\ufeff"]))
    return (prefix + body).encode("utf-8", errors="surrogatepass")


def assert_matches_reference(body: bytes, chunks: list[bytes], comments: bool) -> None:
    events, seen, parser = feed_all(chunks, comments=comments)
    expected = reference_parse(body)
    assert [tuple(e) for e in events] == [(r.type, r.data, r.id, r.retry) for r in expected.events]
    assert parser.last_event_id == expected.last_event_id
    assert parser.retry == expected.retry
    if comments:
        assert seen == expected.comments


@SETTINGS
@given(streams(), st.lists(st.integers(min_value=0), max_size=12), st.booleans())
def test_structured_streams_match_the_reference(
    body: bytes, cuts: list[int], comments: bool
) -> None:
    assert_matches_reference(body, split(body, cuts), comments)


@SETTINGS
@given(st.lists(streams(), min_size=2, max_size=4), st.integers(1, 30), st.booleans())
def test_repeated_blocks_match_the_reference(
    parts: list[bytes], repeat: int, comments: bool
) -> None:
    # Long runs of identical block shapes are what the fast path takes.
    body = b"".join(part * repeat for part in parts)
    for size in (1, 13, 256, len(body) or 1):
        chunks = [body[i : i + size] for i in range(0, len(body), size)]
        assert_matches_reference(body, chunks, comments)


@SETTINGS
@given(st.binary(max_size=300), st.lists(st.integers(min_value=0), max_size=12), st.booleans())
def test_arbitrary_bytes_match_the_reference(body: bytes, cuts: list[int], comments: bool) -> None:
    assert_matches_reference(body, split(body, cuts), comments)


@SETTINGS
@given(
    st.binary(max_size=400),
    st.lists(st.integers(min_value=0), max_size=20),
    st.integers(min_value=1, max_value=64),
    st.booleans(),
)
def test_arbitrary_bytes_only_raise_too_large_and_stay_bounded(
    body: bytes, cuts: list[int], limit: int, comments: bool
) -> None:
    parser = SSEParser(max_event_size=limit, on_comment=(lambda _: None) if comments else None)
    for chunk in split(body, cuts):
        try:
            parser.feed(chunk)
        except EventTooLargeError:
            continue  # the parser is reset and takes more input
        # What the parser holds between calls stays within its limits.
        assert parser._pending_len <= limit + len(chunk)
        assert parser._pending_len + parser._data_len <= 2 * limit + len(chunk)
        assert len("\n".join(parser._data)) <= limit
    parser.close()
