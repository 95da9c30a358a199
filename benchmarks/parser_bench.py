"""SSE parser throughput benchmark: eventsource vs. peer libraries.

Every library parses the same pre-split chunk lists (no I/O, no HTTP); only parsing is
timed. Run ``python benchmarks/parser_bench.py [--quick] [--repeat N] [--markdown FILE]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

try:
    from benchmarks._corpora import Corpus, fixed_chunks, make_corpora, random_chunks
    from benchmarks._peers import requests_sse_events
    from benchmarks._report import SUBJECT, Table, environment, ratio, write_markdown
except ImportError:  # run as a script without the project root on sys.path
    from _corpora import Corpus, fixed_chunks, make_corpora, random_chunks  # type: ignore
    from _peers import requests_sse_events  # type: ignore
    from _report import SUBJECT, Table, environment, ratio, write_markdown  # type: ignore

# A runner parses a list of byte chunks and returns (event count, total data length).
Runner = Callable[[list[bytes]], tuple[int, int]]


# --------------------------------------------------------------------------- runners


def _load_eventsource() -> Runner:
    from eventsource import SSEParser

    def run(chunks: list[bytes]) -> tuple[int, int]:
        n = total = 0
        p = SSEParser()
        for c in chunks:
            for ev in p.feed(c):
                n += 1
                total += len(ev.data)
        # close() may flush a final event; tolerate it returning None.
        for ev in p.close() or ():
            n += 1
            total += len(ev.data)
        return n, total

    return run


def _load_launchdarkly() -> Runner:
    from ld_eventsource.actions import Event  # type: ignore[import-untyped]
    from ld_eventsource.reader import _BufferedLineReader, _SSEReader  # type: ignore[import-untyped]

    def run(chunks: list[bytes]) -> tuple[int, int]:
        n = total = 0
        reader = _SSEReader(_BufferedLineReader.lines_from(chunks))
        for item in reader.events_and_comments():
            if isinstance(item, Event):
                n += 1
                total += len(item.data)
        return n, total

    return run


def _load_httpx_sse() -> Runner:
    # Mirrors httpx_sse.EventSource.iter_sse() over httpx.Response.iter_text(): bytes are
    # decoded by httpx's incremental TextDecoder (utf-8, errors="replace"; the default for
    # text/event-stream without charset), empty text is dropped (TextChunker with
    # chunk_size=None), then SSELineDecoder splits lines and SSEDecoder builds events.
    from httpx._decoders import TextDecoder
    from httpx_sse._decoders import SSEDecoder, SSELineDecoder

    def lines(chunks: list[bytes]) -> Iterable[str]:
        text_decoder = TextDecoder(encoding="utf-8")
        line_decoder = SSELineDecoder()
        for c in chunks:
            text = text_decoder.decode(c)
            if text:
                yield from line_decoder.decode(text)
        text = text_decoder.flush()
        if text:
            yield from line_decoder.decode(text)
        yield from line_decoder.flush()

    def run(chunks: list[bytes]) -> tuple[int, int]:
        n = total = 0
        decoder = SSEDecoder()
        for line in lines(chunks):
            sse = decoder.decode(line.rstrip("\n"))
            if sse is not None:
                n += 1
                total += len(sse.data)
        return n, total

    return run


def _load_sseclient() -> Runner:
    import sseclient

    def run(chunks: list[bytes]) -> tuple[int, int]:
        n = total = 0
        for ev in sseclient.SSEClient(iter(chunks)).events():
            n += 1
            total += len(ev.data)
        return n, total

    return run


def _load_requests_sse() -> Runner:
    import requests_sse  # noqa: F401 (n/a when missing)

    def run(chunks: list[bytes]) -> tuple[int, int]:
        n = total = 0
        for event in requests_sse_events(chunks):
            n += 1
            total += len(event.data)
        return n, total

    return run


# (display name, distribution name, loader)
LIBRARIES: list[tuple[str, str, Callable[[], Runner]]] = [
    (SUBJECT, "eventsource-client", _load_eventsource),
    ("launchdarkly-eventsource", "launchdarkly-eventsource", _load_launchdarkly),
    ("httpx-sse", "httpx-sse", _load_httpx_sse),
    ("sseclient-py", "sseclient-py", _load_sseclient),
    ("requests-sse", "requests-sse", _load_requests_sse),
]


def load_runners() -> tuple[dict[str, Runner], dict[str, str]]:
    """Import every library; return runners and the reasons the missing ones are n/a."""
    runners: dict[str, Runner] = {}
    missing: dict[str, str] = {}
    for name, _dist, loader in LIBRARIES:
        try:
            runners[name] = loader()
        except Exception as exc:  # ImportError, or a half-written module
            missing[name] = f"{type(exc).__name__}: {exc}"
    return runners, missing


# ------------------------------------------------------------------------- measuring


@dataclass
class Result:
    """Timings and output of one library on one corpus x chunking."""

    times: list[float] = field(default_factory=list)
    counts: tuple[int, int] | None = None
    error: str | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.times)


@dataclass
class Case:
    """One corpus fed with one chunking strategy."""

    corpus: Corpus
    chunking: str
    chunks: list[bytes]
    results: dict[str, Result] = field(default_factory=dict)


def build_cases(scale: int) -> list[Case]:
    cases: list[Case] = []
    for corpus in make_corpora(scale):
        cases.append(Case(corpus, "64KiB", fixed_chunks(corpus.data)))
        cases.append(Case(corpus, "rand1-100", random_chunks(corpus.data)))
    return cases


def run_case(case: Case, runners: dict[str, Runner], repeat: int) -> None:
    """Time every runner ``repeat`` times, interleaving libraries to spread out noise."""
    results = {name: Result() for name in runners}
    for _ in range(repeat):
        for name, runner in runners.items():
            res = results[name]
            if res.error is not None:
                continue
            try:
                t0 = time.perf_counter()
                counts = runner(case.chunks)
                elapsed = time.perf_counter() - t0
            except Exception as exc:
                res.error = f"{type(exc).__name__}: {exc}"
                continue
            res.times.append(elapsed)
            if res.counts is None:
                res.counts = counts
            elif res.counts != counts:
                res.error = f"non-deterministic output: {res.counts} then {counts}"
    case.results = results


# ------------------------------------------------------------------------- reporting

HEADERS = ("library", "corpus", "chunks", "events", "median s", "events/s", "MB/s", "vs peer")


def _rows(cases: list[Case]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for case in cases:
        nbytes = len(case.corpus.data)
        ok = {n: r for n, r in case.results.items() if r.error is None and r.times}
        peer_times = [r.median for n, r in ok.items() if n != SUBJECT]
        best_peer = min(peer_times) if peer_times else None
        for name, _dist, _loader in LIBRARIES:
            label = (name, case.corpus.name, case.chunking)
            res = case.results.get(name)
            if res is None:
                rows.append((*label, "n/a", "n/a", "n/a", "n/a", "n/a"))
                continue
            if name not in ok:
                rows.append((*label, "error", "-", "-", "-", "-"))
                continue
            t = res.median
            events = res.counts[0] if res.counts else 0
            rows.append(
                (
                    *label,
                    f"{events:,}",
                    f"{t:.4f}",
                    f"{events / t:,.0f}",
                    f"{nbytes / t / 1e6:.2f}",
                    ratio(1 / t, 1 / best_peer if best_peer else None),
                )
            )
    return rows


def check_counts(cases: list[Case], runners: dict[str, Runner]) -> list[str]:
    """List libraries whose (events, data length) differ from the reference.

    The reference is eventsource's output; if eventsource is unavailable or itself
    disagrees with the corpus ground truth (which is then reported), the ground truth.
    """
    problems: list[str] = []
    for case in cases:
        where = f"{case.corpus.name}/{case.chunking}"
        ref = (case.corpus.events, case.corpus.data_chars)
        ref_name = "generator"
        subject = case.results.get(SUBJECT)
        if subject is not None and subject.counts is not None:
            if subject.counts == ref:
                ref_name = SUBJECT
            else:
                problems.append(
                    f"{where}: {SUBJECT}: {subject.counts[0]:,} events / "
                    f"{subject.counts[1]:,} data chars, expected {ref[0]:,} / {ref[1]:,} "
                    "(generator)"
                )
        for name in runners:
            res = case.results[name]
            if res.error is not None:
                problems.append(f"{where}: {name}: {res.error}")
            elif name != SUBJECT and res.counts is not None and res.counts != ref:
                problems.append(
                    f"{where}: {name}: {res.counts[0]:,} events / {res.counts[1]:,} data "
                    f"chars, expected {ref[0]:,} / {ref[1]:,} ({ref_name})"
                )
    return problems


DISTS = [dist for _name, dist, _loader in LIBRARIES]


def run(quick: bool = False, repeat: int = 5) -> list[Table]:
    """Run every library on every corpus and chunking; one table of the results."""
    runners, missing = load_runners()
    cases = build_cases(5 if quick else 1)
    for case in cases:
        t0 = time.perf_counter()
        run_case(case, runners, repeat)
        print(
            f"  parser {case.corpus.name}/{case.chunking}: {time.perf_counter() - t0:.1f} s",
            file=sys.stderr,
            flush=True,
        )
    corpora = {c.corpus.name: c.corpus for c in cases}
    problems = check_counts(cases, runners)
    notes = [f"`{c.name}`: {c.description}, {len(c.data) / 1e6:.2f} MB" for c in corpora.values()]
    notes += [
        f"Median of {repeat} runs. MB = 10^6 bytes of raw stream. `vs peer` = throughput "
        "relative to the fastest peer (eventsource excluded) on the same corpus and "
        "chunking; higher is faster.",
        *(f"n/a: {name}: {reason}" for name, reason in missing.items()),
        *(f"Mismatch: {p}" for p in problems),
    ]
    if not problems:
        notes.append("Every library's event count and data length match eventsource's.")
    return [Table("Parser throughput (in memory)", HEADERS, list(_rows(cases)), notes, 3)]


# ------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="5x smaller corpora")
    ap.add_argument("--repeat", type=int, default=5, help="runs per case (median reported)")
    ap.add_argument("--markdown", metavar="FILE", help="also write the table as Markdown")
    args = ap.parse_args(argv)
    if args.repeat < 1:
        ap.error("--repeat must be >= 1")
    tables = run(args.quick, args.repeat)
    env = environment([*DISTS, "httpx"])
    print("\n".join(env) + "\n")
    for table in tables:
        print(table.text())
    if args.markdown:
        write_markdown(args.markdown, tables, [*DISTS, "httpx"])
        print(f"\nwrote {args.markdown}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
