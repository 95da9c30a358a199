"""SSE delivery latency benchmark: eventsource vs. peer clients, over loopback HTTP.

The benchmark server (``benchmarks._server``, its own process on 127.0.0.1) writes one
small event every 5 ms, each carrying ``time.monotonic_ns()`` taken when it was written.
Each client reads the stream in a fresh subprocess of its own and stamps every event with
its own ``time.monotonic_ns()`` the moment the library hands it over; CLOCK_MONOTONIC is
shared by all processes on the machine, so the difference is the write-to-delivery latency.

Run from the project root (not part of CI)::

    python -m benchmarks.latency_bench [--quick] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from benchmarks._report import ROOT, Table, ratio, server_process, write_markdown

INTERVAL_MS = 5
EVENTS = 2_000
QUICK_EVENTS = 300
ROUNDS = 3
WARMUP = 20  # first events dropped: connection set-up, imports and caches still warming
CHILD_TIMEOUT = 120.0  # seconds; a child still running after this is killed

SUBJECT_ASYNC = ("eventsource async (asyncio)", "eventsource async (trio)")
REFERENCE = "httpx-sse async"
TARGET_P99_MS = 2.0
DISTS = [
    "eventsource-client",
    "httpx",
    "anyio",
    "trio",
    "httpx-aiohttp",
    "aiohttp",
    "httpx-sse",
    "launchdarkly-eventsource",
    "urllib3",
]

# What a client run collects: the delivery stamp of every event, and the events
# themselves (each has ``.id`` and ``.data``). Decoding waits until after the stream
# so that nothing but an append sits between delivery and the next read.
Collected = tuple[list[int], list[Any]]
Runner = Callable[[str, int], Collected]


# ------------------------------------------------------------------ clients (child side)


async def _eventsource_async(url: str, n: int, client: Any = None) -> Collected:
    from eventsource import EventSource

    now = time.monotonic_ns
    stamps: list[int] = []
    events: list[Any] = []
    async with EventSource(url, reconnect=False, client=client) as source:
        async for ev in source:
            stamps.append(now())
            events.append(ev)
            if len(events) >= n:
                break
    return stamps, events


def _load_eventsource_asyncio() -> Runner:
    import asyncio

    import eventsource  # noqa: F401  (fail here, as "n/a", if it cannot be imported)

    return lambda url, n: asyncio.run(_eventsource_async(url, n))


def _load_eventsource_trio() -> Runner:
    import trio

    import eventsource  # noqa: F401

    return lambda url, n: trio.run(_eventsource_async, url, n)


def _load_eventsource_sync() -> Runner:
    from eventsource import EventSource

    def run(url: str, n: int) -> Collected:
        now = time.monotonic_ns
        stamps: list[int] = []
        events: list[Any] = []
        with EventSource(url, reconnect=False) as source:
            for ev in source:
                stamps.append(now())
                events.append(ev)
                if len(events) >= n:
                    break
        return stamps, events

    return run


def _load_eventsource_aiohttp() -> Runner:
    import asyncio

    import httpx_aiohttp

    import eventsource  # noqa: F401

    async def main(url: str, n: int) -> Collected:
        # Our own client, so the source does not close it: close it here.
        client = httpx_aiohttp.HttpxAiohttpClient()
        try:
            return await _eventsource_async(url, n, client=client)
        finally:
            await client.aclose()

    return lambda url, n: asyncio.run(main(url, n))


def _load_httpx_sse_async() -> Runner:
    import asyncio

    import httpx
    import httpx_sse

    async def main(url: str, n: int) -> Collected:
        now = time.monotonic_ns
        stamps: list[int] = []
        events: list[Any] = []
        async with httpx.AsyncClient() as client:
            async with httpx_sse.aconnect_sse(client, "GET", url) as source:
                async for sse in source.aiter_sse():
                    stamps.append(now())
                    events.append(sse)
                    if len(events) >= n:
                        break
        return stamps, events

    return lambda url, n: asyncio.run(main(url, n))


def _load_httpx_sse_sync() -> Runner:
    import httpx
    import httpx_sse

    def run(url: str, n: int) -> Collected:
        now = time.monotonic_ns
        stamps: list[int] = []
        events: list[Any] = []
        with httpx.Client() as client:
            with httpx_sse.connect_sse(client, "GET", url) as source:
                for sse in source.iter_sse():
                    stamps.append(now())
                    events.append(sse)
                    if len(events) >= n:
                        break
        return stamps, events

    return run


def _load_launchdarkly() -> Runner:
    from ld_eventsource import SSEClient  # type: ignore[import-untyped]
    from ld_eventsource.actions import Event, Fault  # type: ignore[import-untyped]
    from ld_eventsource.config import ConnectStrategy  # type: ignore[import-untyped]

    def run(url: str, n: int) -> Collected:
        now = time.monotonic_ns
        stamps: list[int] = []
        events: list[Any] = []
        client = SSEClient(connect=ConnectStrategy.http(url), retry_delay_strategy=None)
        try:
            for item in client.all:
                stamp = now()  # taken before the type checks, like the others' first line
                if isinstance(item, Event):
                    stamps.append(stamp)
                    events.append(item)
                    if len(events) >= n:
                        break
                elif isinstance(item, Fault):
                    # Fault(None) is the normal end of the stream; anything else failed.
                    if item.error is not None:
                        raise item.error
                    break
        finally:
            client.close()
        return stamps, events

    return run


# (display name, loader); the loader imports the library, so an ImportError means "n/a".
CLIENTS: list[tuple[str, Callable[[], Runner]]] = [
    ("eventsource async (asyncio)", _load_eventsource_asyncio),
    ("eventsource async (trio)", _load_eventsource_trio),
    ("eventsource sync", _load_eventsource_sync),
    ("eventsource async + httpx-aiohttp", _load_eventsource_aiohttp),
    ("httpx-sse async", _load_httpx_sse_async),
    ("httpx-sse sync", _load_httpx_sse_sync),
    ("launchdarkly-eventsource", _load_launchdarkly),
]


def child(name: str, url: str, n: int) -> dict[str, Any]:
    """Run one client against ``url``; the result as a JSON-able dict."""
    loaders = dict(CLIENTS)
    if name not in loaders:
        return {"status": "error", "reason": f"unknown client {name!r}"}
    try:
        runner = loaders[name]()
    except ImportError as exc:
        return {"status": "n/a", "reason": f"{type(exc).__name__}: {exc}"}
    try:
        stamps, events = runner(url, n)
        latency = [stamp - int(ev.data) for stamp, ev in zip(stamps, events, strict=False)]
        ids = [ev.id for ev in events]
    except Exception as exc:
        return {"status": "error", "reason": f"{type(exc).__name__}: {exc}"}
    return {"status": "ok", "ids": ids, "latency_ns": latency}


# --------------------------------------------------------------------- parent side


@dataclass
class Result:
    """What one client's subprocess reported."""

    name: str
    status: str  # "ok", "n/a" or "error"
    reason: str = ""
    ids: list[str] = field(default_factory=list)
    latency_ns: list[int] = field(default_factory=list)
    warmup: int = WARMUP  # leading latencies to leave out

    def measured(self) -> list[int]:
        """Latencies after the warm-up, sorted."""
        return sorted(self.latency_ns[self.warmup :])

    def p99(self) -> float | None:
        values = self.measured()
        return percentile(values, 0.99) if values else None


def pooled(rounds: list[Result]) -> Result:
    """One client's rounds as one result: every round's latencies after its warm-up;
    the first failure, or the first round whose ids are not all of them, if any."""
    bad = next((r for r in rounds if r.status != "ok"), None)
    if bad is not None:
        return bad
    ids = max(rounds, key=lambda r: r.ids != rounds[0].ids).ids
    latencies = [ns for r in rounds for ns in r.latency_ns[r.warmup :]]
    return Result(rounds[0].name, "ok", "", ids, latencies, warmup=0)


def percentile(ordered: Sequence[int], q: float) -> float:
    """Nearest-rank percentile of sorted values: always a latency that was observed."""
    return float(ordered[max(0, math.ceil(q * len(ordered)) - 1)])


def run_child(name: str, url: str, n: int) -> Result:
    """Run one client in a fresh interpreter, so that no import, cache, event loop or
    garbage left by another client runs alongside it."""
    cmd = [sys.executable, "-m", "benchmarks.latency_bench", "--child", name, url, str(n)]
    try:
        # run() kills the child on timeout (and on any other exception, e.g. Ctrl-C).
        proc = subprocess.run(
            cmd, cwd=ROOT, capture_output=True, text=True, timeout=CHILD_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        return Result(name, "error", f"killed after {CHILD_TIMEOUT:.0f} s")
    lines = proc.stdout.strip().splitlines()
    try:
        data = json.loads(lines[-1])
    except (IndexError, ValueError):
        tail = proc.stderr.strip().splitlines()[-1:] or [f"exit status {proc.returncode}"]
        return Result(name, "error", f"no result from the child: {tail[0]}")
    return Result(
        name,
        data["status"],
        data.get("reason", ""),
        [str(i) for i in data.get("ids", [])],
        data.get("latency_ns", []),
    )


def _ms(ns: float) -> str:
    return f"{ns / 1e6:.3f}"


def build_table(results: list[Result], n: int) -> Table:
    """The latency table, with notes on completeness, errors and the targets."""
    table = Table(
        title=f"Latency: one event every {INTERVAL_MS} ms, write to delivery",
        headers=["client", "events", "p50 ms", "p99 ms", "max ms", f"p99 vs {REFERENCE}"],
    )
    by_name = {r.name: r for r in results}
    reference = by_name.get(REFERENCE)
    ref_p99 = reference.p99() if reference and reference.status == "ok" else None
    expected = [str(i) for i in range(n)]
    problems: list[str] = []
    for r in results:
        if r.status != "ok":
            table.rows.append([r.name, r.status, "-", "-", "-", "-"])
            problems.append(f"{r.name}: {r.status}: {r.reason}")
            continue
        if r.ids != expected:
            first_bad = next(
                (i for i, (a, b) in enumerate(zip(r.ids, expected, strict=False)) if a != b),
                len(r.ids),
            )
            problems.append(
                f"{r.name}: got {len(r.ids):,} of {n:,} events; ids diverge from 0..{n - 1}"
                f" at position {first_bad}"
            )
        values = r.measured()
        if not values:
            table.rows.append([r.name, f"{len(r.ids):,}", "-", "-", "-", "-"])
            continue
        p99 = percentile(values, 0.99)
        table.rows.append(
            [
                r.name,
                f"{len(r.ids):,}",
                _ms(percentile(values, 0.50)),
                _ms(p99),
                _ms(values[-1]),
                ratio(p99, ref_p99),
            ]
        )

    table.notes.append(
        f"Server: benchmarks._server in a separate process on 127.0.0.1, one event "
        f"(one HTTP chunk, TCP_NODELAY) every {INTERVAL_MS} ms, {n:,} events per client; "
        f"the first {WARMUP} of each run are discarded as warm-up."
    )
    table.notes.append(
        "Latency: client time.monotonic_ns() when the library yields the event to user code "
        "minus server time.monotonic_ns() when it was written (same clock, no skew). "
        "Each client runs alone in a fresh subprocess. Percentiles are nearest-rank."
    )
    table.notes.append(
        f"p99 vs {REFERENCE}: the client's p99 divided by {REFERENCE}'s; lower is better."
    )
    table.notes.extend(_target_notes(by_name, ref_p99))
    if problems:
        table.notes.extend(problems)
    else:
        table.notes.append(f"Every client received all {n:,} events, ids 0..{n - 1} in order.")
    return table


def _target_notes(by_name: dict[str, Result], ref_p99: float | None) -> list[str]:
    """Whether each eventsource async row meets p99 < 2 ms and p99 <= httpx-sse async's."""
    notes = []
    for name in SUBJECT_ASYNC:
        r = by_name.get(name)
        p99 = r.p99() if r and r.status == "ok" else None
        if p99 is None:
            notes.append(f"Target ({name}): not measured.")
            continue
        under = p99 / 1e6 < TARGET_P99_MS
        vs_ref = "n/a" if ref_p99 is None else ("met" if p99 <= ref_p99 else "NOT met")
        ref_text = "-" if ref_p99 is None else _ms(ref_p99)
        notes.append(
            f"Target ({name}): p99 {_ms(p99)} ms < {TARGET_P99_MS:g} ms "
            f"{'met' if under else 'NOT met'}; <= {REFERENCE} p99 ({ref_text} ms) {vs_ref}."
        )
    return notes


def run(quick: bool = False, rounds: int = ROUNDS) -> list[Table]:
    """Start the server once, run every client in turn, ``rounds`` times over (the
    clients interleaved, so a burst of load elsewhere hits them alike), and return
    the table of the pooled latencies."""
    n = QUICK_EVENTS if quick else EVENTS
    runs: dict[str, list[Result]] = {name: [] for name, _loader in CLIENTS}
    with server_process() as server:
        url = f"{server.base}/tick?interval_ms={INTERVAL_MS}&count={n}"
        for round_ in range(1, rounds + 1):
            for name, _loader in CLIENTS:
                print(f"  latency round {round_}/{rounds}: {name}", file=sys.stderr, flush=True)
                runs[name].append(run_child(name, url, n))
    table = build_table([pooled(results) for results in runs.values()], n)
    table.notes.insert(
        1, f"{rounds} rounds, clients interleaved; percentiles over the rounds pooled."
    )
    return [table]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_EVENTS} events, not {EVENTS}")
    parser.add_argument("--markdown", metavar="FILE", help="also write the table as Markdown")
    parser.add_argument(
        "--child", nargs=3, metavar=("NAME", "URL", "N"), help=argparse.SUPPRESS
    )  # internal: run one client, print one JSON line
    args = parser.parse_args(argv)

    if args.child:
        name, url, n = args.child
        print(json.dumps(child(name, url, int(n))), flush=True)
        return 0

    started = time.monotonic()
    tables = run(quick=args.quick)
    print("\n\n".join(t.text() for t in tables))
    print(f"\n(total {time.monotonic() - started:.1f} s)", file=sys.stderr)
    if args.markdown:
        write_markdown(args.markdown, tables, DISTS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
