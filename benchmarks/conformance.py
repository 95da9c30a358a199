"""WHATWG conformance of the Python SSE parsers on the spec's edge cases.

Run: `python benchmarks/conformance.py` (after `pip install -e ".[bench]"`);
`--markdown` prints the table as Markdown. Not part of CI: it measures the
peers, whose results are theirs; eventsource's own conformance is its tests.

Each case is a byte stream (some split into chunks at an awkward place) and
the events the spec says it dispatches, as (type, data, id).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable
from dataclasses import dataclass

try:
    from benchmarks._peers import requests_sse_events
except ImportError:  # run as a script
    from _peers import requests_sse_events  # type: ignore

Parsed = list[tuple[str, str, str]]
Parser = Callable[[list[bytes]], Parsed]


@dataclass(frozen=True)
class Case:
    name: str
    chunks: list[bytes]
    expected: Parsed


def msg(data: str, id: str = "", type: str = "message") -> tuple[str, str, str]:
    return (type, data, id)


CASES = [
    Case("LF line ends", [b"data: a\n\n"], [msg("a")]),
    Case("CR line ends", [b"data: a\r\rdata: b\r\r"], [msg("a"), msg("b")]),
    Case("CRLF split across reads", [b"data: a\r", b"\n\r\n"], [msg("a")]),
    Case("CRLF split inside an event", [b"data: a\r", b"\ndata: b\r\n\r\n"], [msg("a\nb")]),
    Case("only one leading space removed", [b"data:  a\n\n"], [msg(" a")]),
    Case("leading BOM stripped", [b"\xef\xbb\xbfdata: a\n\n"], [msg("a")]),
    Case("UTF-8 split across reads", [b"data: \xc3", b"\xa9\n\n"], [msg("\u00e9")]),
    Case("invalid UTF-8 replaced", [b"data: a\xffb\n\n"], [msg("a\ufffdb")]),
    Case("U+2028 is not a line end", ["data: a\u2028b\n\n".encode()], [msg("a\u2028b")]),
    Case("no event for a block without data", [b"event: x\n\nretry: 5\n\ndata: a\n\n"], [msg("a")]),
    Case("an id-only block sets the last event ID", [b"id: 1\n\ndata: a\n\n"], [msg("a", "1")]),
    Case("empty data line dispatches", [b"data\n\n"], [msg("")]),
    Case("one trailing LF removed", [b"data: a\ndata:\n\n"], [msg("a\n")]),
    Case(
        "id with NUL ignored",
        [b"id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n"],
        [msg("a", "1"), msg("b", "1")],
    ),
    Case("empty event type is message", [b"event:\ndata: a\n\n"], [msg("a")]),
    Case("field names case-sensitive", [b"Data: x\ndata: a\n\n"], [msg("a")]),
    Case("unfinished event discarded", [b"data: a\n\ndata: b\n"], [msg("a")]),
]


def _eventsource() -> Parser:
    from eventsource import SSEParser

    def parse(chunks: list[bytes]) -> Parsed:
        parser = SSEParser()
        events = [e for chunk in chunks for e in parser.feed(chunk)] + parser.close()
        return [(e.type, e.data, e.id) for e in events]

    return parse


def _launchdarkly() -> Parser:
    from ld_eventsource.actions import Event  # type: ignore[import-untyped]
    from ld_eventsource.reader import _BufferedLineReader, _SSEReader  # type: ignore[import-untyped]

    def parse(chunks: list[bytes]) -> Parsed:
        reader = _SSEReader(_BufferedLineReader.lines_from(chunks))
        return [
            (e.event, e.data, e.last_event_id or "")
            for e in reader.events_and_comments()
            if isinstance(e, Event)
        ]

    return parse


def _httpx_sse() -> Parser:
    # What httpx_sse.EventSource.iter_sse() does over httpx's Response.iter_text().
    from httpx._decoders import TextDecoder
    from httpx_sse._decoders import SSEDecoder, SSELineDecoder

    def lines(chunks: list[bytes]) -> Iterable[str]:
        text_decoder, line_decoder = TextDecoder(encoding="utf-8"), SSELineDecoder()
        for chunk in chunks:
            text = text_decoder.decode(chunk)
            if text:
                yield from line_decoder.decode(text)
        yield from line_decoder.decode(text_decoder.flush())
        yield from line_decoder.flush()

    def parse(chunks: list[bytes]) -> Parsed:
        decoder, out = SSEDecoder(), []
        for line in lines(chunks):
            sse = decoder.decode(line.rstrip("\n"))
            if sse is not None:
                out.append((sse.event, sse.data, sse.id))
        return out

    return parse


def _sseclient() -> Parser:
    import sseclient

    def parse(chunks: list[bytes]) -> Parsed:
        return [(e.event, e.data, e.id or "") for e in sseclient.SSEClient(iter(chunks)).events()]

    return parse


def _requests_sse() -> Parser:
    import requests_sse  # noqa: F401 (skipped when missing)

    def parse(chunks: list[bytes]) -> Parsed:
        return [(e.type, e.data or "", e.last_event_id) for e in requests_sse_events(chunks)]

    return parse


LIBRARIES = [
    ("eventsource", _eventsource),
    ("launchdarkly-eventsource", _launchdarkly),
    ("httpx-sse", _httpx_sse),
    ("sseclient-py", _sseclient),
    ("requests-sse", _requests_sse),
]


def run() -> tuple[list[str], dict[str, list[str]]]:
    """The library names, and for each case the mark per library."""
    names, parsers = [], []
    for name, load in LIBRARIES:
        try:
            parsers.append(load())
        except ImportError:
            continue
        names.append(name)
    results: dict[str, list[str]] = {}
    for case in CASES:
        marks = []
        for parse in parsers:
            try:
                got = parse(list(case.chunks))
            except Exception as exc:  # a peer may crash on an edge case
                marks.append(f"error ({type(exc).__name__})")
                continue
            marks.append("yes" if got == case.expected else "no")
        results[case.name] = marks
    return names, results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args(argv)
    names, results = run()
    totals = [sum(marks[i] == "yes" for marks in results.values()) for i in range(len(names))]
    if args.markdown:
        print("| case | " + " | ".join(names) + " |")
        print("|---|" + "---|" * len(names))
        for case, marks in results.items():
            print(f"| {case} | " + " | ".join(marks) + " |")
        print("| **passed** | " + " | ".join(f"**{t}/{len(CASES)}**" for t in totals) + " |")
    else:
        width = max(map(len, results))
        print(" " * width + "  " + "  ".join(names))
        for case, marks in results.items():
            print(
                case.ljust(width)
                + "  "
                + "  ".join(m.ljust(len(n)) for m, n in zip(marks, names, strict=False))
            )
        print(
            "passed".ljust(width)
            + "  "
            + "  ".join(
                f"{t}/{len(CASES)}".ljust(len(n)) for t, n in zip(totals, names, strict=False)
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
