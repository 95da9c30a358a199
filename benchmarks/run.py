"""The whole benchmark suite: parser, end to end, paced, latency, scale; one command.

``python -m benchmarks`` (or ``python benchmarks/run.py``) runs every part, prints the
tables and rewrites the results part of benchmarks/README.md (with date, machine and
Python). ``--quick`` for a smaller run, ``--only e2e,latency`` for some parts,
``--no-write`` to leave the README alone, ``--profile`` to profile the hot paths instead,
``--before TREE`` to also run eventsource's e2e and paced clients on another checkout (the
code before a change), interleaved with this tree's.
Needs ``pip install -e ".[bench]"``; never part of CI.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make "benchmarks" importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import e2e_bench, parser_bench
from benchmarks._report import ROOT, Table, environment, server_process

README = ROOT / "benchmarks" / "README.md"
MARKER = "<!-- results: everything below is written by `python -m benchmarks` -->"
DISTS = (
    "eventsource-client",
    "httpx",
    "httpcore",
    "h11",
    "anyio",
    "trio",
    "httpx-sse",
    "httpx-aiohttp",
    "aiohttp",
    "launchdarkly-eventsource",
    "sseclient-py",
    "requests-sse",
    "urllib3",
)


def _paced(quick: bool) -> list[Table]:
    from benchmarks import paced_bench

    return paced_bench.run(quick, before=BEFORE[0] if BEFORE else None)


def _latency(quick: bool) -> list[Table]:
    from benchmarks import latency_bench

    return latency_bench.run(quick)


def _scale(quick: bool) -> list[Table]:
    from benchmarks import scale_bench

    return scale_bench.run(quick)


# The checkout of the code before a change, for the e2e and paced parts (--before).
BEFORE: list[str] = []


PARTS: dict[str, Callable[[bool], list[Table]]] = {
    "parser": lambda quick: parser_bench.run(quick),
    "e2e": lambda quick: e2e_bench.run(quick, before=BEFORE[0] if BEFORE else None),
    "paced": _paced,
    "latency": _latency,
    "scale": _scale,
}


def write_readme(tables: list[Table], command: str, seconds: float) -> None:
    """Replace everything after MARKER in benchmarks/README.md with these results."""
    text = README.read_text(encoding="utf-8")
    head = text.split(MARKER)[0].rstrip() + "\n\n" if MARKER in text else text + "\n"
    lines = [MARKER, "", "## Results", ""]
    lines += [f"- {line}" for line in environment(DISTS)]
    lines += [f"- Run: `{command}`, {seconds / 60:.1f} min", ""]
    lines += [t.markdown() + "\n" for t in tables]
    README.write_text(head + "\n".join(lines), encoding="utf-8")


def profile() -> None:
    """cProfile the two hot paths: the parser on small chunks, and the async client
    reading one HTTP chunk per event over loopback. Prints the top functions."""
    from benchmarks._corpora import make_llm, random_chunks
    from eventsource import SSEParser

    chunks = random_chunks(make_llm(50_000).data)

    def parse() -> None:
        parser = SSEParser()
        for chunk in chunks:
            parser.feed(chunk)

    _show("parser: LLM corpus, 50,000 events in 1-100 byte chunks", parse)

    with server_process() as server:
        url = f"{server.base}/stream/llm/chunked?events=50000"
        client = {name: runner for name, runner, _ in e2e_bench.CLIENTS}[e2e_bench.SUBJECT_ASYNC]
        client(url)  # warm the server's body cache and the imports
        _show(
            f"client: {e2e_bench.SUBJECT_ASYNC}, one HTTP chunk per event, 50,000 events",
            lambda: client(url),
        )


def _show(title: str, work: Callable[[], object]) -> None:
    prof = cProfile.Profile()
    prof.runcall(work)
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(20)
    print(f"== {title}\n{out.getvalue()}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="smaller corpora and fewer streams")
    ap.add_argument("--only", default=",".join(PARTS), help="comma-separated: " + ",".join(PARTS))
    ap.add_argument("--no-write", action="store_true", help="do not rewrite benchmarks/README.md")
    ap.add_argument("--profile", action="store_true", help="profile the hot paths and exit")
    ap.add_argument(
        "--before",
        metavar="TREE",
        help="e2e, paced: also run eventsource's clients on this checkout (the code before)",
    )
    args = ap.parse_args(argv)
    if args.before:
        BEFORE.append(args.before)
    if args.profile:
        profile()
        return 0
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        ap.error(f"unknown part(s): {', '.join(unknown)}")
    started = time.perf_counter()
    tables: list[Table] = []
    for part in parts:
        print(f"== {part}", file=sys.stderr, flush=True)
        for table in PARTS[part](args.quick):
            print(table.text() + "\n", flush=True)
            tables.append(table)
    elapsed = time.perf_counter() - started
    if not args.no_write:
        argv_text = " ".join(argv if argv is not None else sys.argv[1:])
        write_readme(tables, f"python -m benchmarks {argv_text}".strip(), elapsed)
        print(f"wrote {README.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
