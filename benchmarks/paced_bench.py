"""Paced streams: CPU per event when events arrive a few at a time (a live LLM answer).

The benchmark server (``benchmarks._server``, its own process on 127.0.0.1) writes the
LLM corpus one HTTP chunk per event, 1-3 events per socket write (seeded), with a short
pause after each write, so every read a client makes wakes it for one to three events.
Throughput is not the question here (the server sets the pace); what each wake-up costs
is. Each client runs in a fresh process: a warm-up stream, then the measured stream; its
process CPU time (``time.process_time()``: every thread, user + system) from the first
event delivered to the last, divided by the events. Floors (no HTTP, no SSE parsing)
read the same bytes: a blocking ``recv()`` loop, an asyncio ``Protocol`` (alone, and
with a task awaiting its data), trio's ``wait_readable()`` with a read, and anyio's
``receive()`` under a timeout on asyncio.

Run ``python -m benchmarks.paced_bench [--quick] [--events N] [--markdown FILE]``;
``--before TREE`` also runs eventsource's clients on another checkout's eventsource/
(this file's client code, run as a script with that checkout first on PYTHONPATH),
each right after this tree's. When httpx2 is installed, httpx2's own ``EventSource``
(``client.sse(url)``, async and sync) is a peer, and eventsource's clients also run on
httpx2 (`` on httpx2``: a source's own client made with ``http="httpx2"``), each right
after its twin on httpx.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import Any

try:
    from benchmarks._floors import FLOORS, PARSED, Clock, Measured, Runner
    from benchmarks._report import ROOT, Table, ratio, server_process, write_markdown
except ImportError:  # run as a script (a --before child)
    from _floors import FLOORS, PARSED, Clock, Measured, Runner  # type: ignore
    from _report import ROOT, Table, ratio, server_process, write_markdown  # type: ignore

EVENTS = 3_000
QUICK_EVENTS = 1_000
WARMUP_EVENTS = 200
PAUSE_MS = 1.0
ROUNDS = 3
CHILD_TIMEOUT = 120.0
LD = "launchdarkly-eventsource"
BEFORE = " (before)"
HTTPX2 = " on httpx2"
PEER2 = "httpx2.EventSource async"
PEER2_SYNC = "httpx2.EventSource sync"
SYNC = "eventsource sync"
ASYNC = ("eventsource async (asyncio)", "eventsource async (trio)")
# Issue 21's targets: CPU per event at most this many times launchdarkly's.
LIMITS = {SYNC: 0.9, ASYNC[0]: 1.3, ASYNC[1]: 1.5}
DISTS = (
    "eventsource-client",
    "httpx",
    "httpcore",
    "anyio",
    "trio",
    "httpx2",
    "httpcore2",
    "httpx-sse",
    "launchdarkly-eventsource",
    "urllib3",
)
# The HTTP stack eventsource's clients run on in this child: "httpx", or "httpx2" for a
# client named `` on httpx2`` (a source's own client made with http="httpx2"). Each
# run checks, on its first event and before its clock starts, that its response came
# from that stack.
_HTTP = "httpx"


def _check_stack(source: Any) -> None:
    stack = type(source.response).__module__.partition(".")[0]
    if stack != _HTTP:
        raise RuntimeError(f"the response came from {stack}, not {_HTTP}")


def _options() -> dict[str, str]:
    """http= only off the default: a --before tree may predate the option."""
    return {"http": _HTTP} if _HTTP != "httpx" else {}


# ------------------------------------------------------------------ clients (child side)


async def _eventsource_async(url: str, n: int) -> Measured:
    from eventsource import EventSource

    clock, ids = Clock(), []
    async with EventSource(url, reconnect=False, **_options()) as source:
        async for event in source:
            if not clock.n:
                _check_stack(source)
            clock.tick()
            ids.append(event.id)
            if clock.n >= n:
                break
    return clock.n, clock.cpu(), ids


def _eventsource_sync(url: str, n: int) -> Measured:
    from eventsource import EventSource

    clock, ids = Clock(), []
    with EventSource(url, reconnect=False, **_options()) as source:
        for event in source:
            if not clock.n:
                _check_stack(source)
            clock.tick()
            ids.append(event.id)
            if clock.n >= n:
                break
    return clock.n, clock.cpu(), ids


async def _httpx_sse_async(url: str, n: int) -> Measured:
    import httpx
    import httpx_sse

    clock, ids = Clock(), []
    async with httpx.AsyncClient() as client:
        async with httpx_sse.aconnect_sse(client, "GET", url) as source:
            async for event in source.aiter_sse():
                clock.tick()
                ids.append(event.id)
                if clock.n >= n:
                    break
    return clock.n, clock.cpu(), ids


def _httpx_sse_sync(url: str, n: int) -> Measured:
    import httpx
    import httpx_sse

    clock, ids = Clock(), []
    with httpx.Client() as client, httpx_sse.connect_sse(client, "GET", url) as source:
        for event in source.iter_sse():
            clock.tick()
            ids.append(event.id)
            if clock.n >= n:
                break
    return clock.n, clock.cpu(), ids


async def _httpx2_sse_async(url: str, n: int) -> Measured:
    import httpx2

    clock, ids = Clock(), []
    async with httpx2.AsyncClient() as client, client.sse(url) as source:
        async for event in source:
            clock.tick()
            ids.append(event.id)
            if clock.n >= n:
                break
    return clock.n, clock.cpu(), ids


def _httpx2_sse_sync(url: str, n: int) -> Measured:
    import httpx2

    clock, ids = Clock(), []
    with httpx2.Client() as client, client.sse(url) as source:
        for event in source:
            clock.tick()
            ids.append(event.id)
            if clock.n >= n:
                break
    return clock.n, clock.cpu(), ids


def _launchdarkly(url: str, n: int) -> Measured:
    from ld_eventsource import SSEClient  # type: ignore[import-untyped]
    from ld_eventsource.actions import Event, Fault  # type: ignore[import-untyped]
    from ld_eventsource.config import ConnectStrategy  # type: ignore[import-untyped]

    clock, ids = Clock(), []
    client = SSEClient(connect=ConnectStrategy.http(url), retry_delay_strategy=None)
    try:
        for item in client.all:
            if isinstance(item, Event):
                clock.tick()
                ids.append(item.id)
                if clock.n >= n:
                    break
            elif isinstance(item, Fault):
                if item.error is not None:
                    raise item.error
                break
    finally:
        client.close()
    return clock.n, clock.cpu(), ids


def _asyncio(factory: Callable[[str, int], Any]) -> Runner:
    def run(url: str, n: int) -> Measured:
        import asyncio

        return asyncio.run(factory(url, n))  # type: ignore[no-any-return]

    return run


def _trio(factory: Callable[[str, int], Any]) -> Runner:
    def run(url: str, n: int) -> Measured:
        import trio

        return trio.run(factory, url, n)  # type: ignore[no-any-return]

    return run


# (name, runner, checks the ids: the events 0..n-1 in order)
CLIENTS: list[tuple[str, Runner, bool]] = [
    ("eventsource async (asyncio)", _asyncio(_eventsource_async), True),
    ("eventsource async (trio)", _trio(_eventsource_async), True),
    (SYNC, _eventsource_sync, True),
    ("httpx-sse async", _asyncio(_httpx_sse_async), True),
    ("httpx-sse sync", _httpx_sse_sync, True),
    (PEER2, _asyncio(_httpx2_sse_async), True),
    (PEER2_SYNC, _httpx2_sse_sync, True),
    (LD, _launchdarkly, True),
    *FLOORS,
]


def child(name: str, base: str, n: int) -> dict[str, Any]:
    """One client in this (fresh) process: a warm-up stream, then the measured one."""
    if name.endswith(HTTPX2):
        global _HTTP
        _HTTP = "httpx2"
        name = name[: -len(HTTPX2)]
    runner, checked = {c: (r, f) for c, r, f in CLIENTS}[name]
    import eventsource

    try:
        runner(f"{base}/paced?events={WARMUP_EVENTS}&pause_ms={PAUSE_MS:g}", WARMUP_EVENTS)
        count, cpu, ids = runner(f"{base}/paced?events={n}&pause_ms={PAUSE_MS:g}", n)
    except Exception as exc:
        return {"status": "error", "reason": f"{type(exc).__name__}: {exc}"[:200]}
    if checked and ids != [str(i) for i in range(n)]:
        return {"status": "error", "reason": f"got {count} events, ids not 0..{n - 1} in order"}
    return {"status": "ok", "events": count, "cpu_s": cpu, "module": eventsource.__file__}


# --------------------------------------------------------------------- parent side


def run_child(name: str, base: str, n: int, before: str | None = None) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "benchmarks.paced_bench"]
    tree, env = str(ROOT), dict(os.environ)
    if name.endswith(BEFORE):
        # This file's client code, run as a script, on the other checkout's eventsource/.
        assert before is not None
        name, tree = name[: -len(BEFORE)], before
        env["PYTHONPATH"] = before
        cmd = [sys.executable, str(ROOT / "benchmarks" / "paced_bench.py")]
    cmd += ["--child", name, base, str(n)]
    try:
        proc = subprocess.run(
            cmd,
            cwd=tree,
            env=env,
            capture_output=True,
            text=True,
            timeout=CHILD_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"status": "error", "reason": f"killed after {CHILD_TIMEOUT:.0f} s"}
    lines = proc.stdout.strip().splitlines()
    try:
        result: dict[str, Any] = json.loads(lines[-1])
    except (IndexError, ValueError):
        tail = proc.stderr.strip().splitlines()[-1:] or [f"exit status {proc.returncode}"]
        return {"status": "error", "reason": f"no result: {tail[0]}"}
    module = os.path.realpath(str(result.get("module")))
    if result["status"] == "ok" and not module.startswith(os.path.realpath(tree) + os.sep):
        return {"status": "error", "reason": f"eventsource imported from {module}, not {tree}"}
    return result


def _names(before: bool) -> list[str]:
    """The clients in order; eventsource's twins right after them: with --before,
    on the other checkout; with httpx2 installed, on httpx2."""
    httpx2 = importlib.util.find_spec("httpx2") is not None
    out = []
    for name, _runner, _checked in CLIENTS:
        if name in (PEER2, PEER2_SYNC) and not httpx2:
            continue
        out.append(name)
        if before and name in LIMITS:
            out.append(name + BEFORE)
        if httpx2 and name in LIMITS:
            out.append(name + HTTPX2)
    return out


def run(
    quick: bool = False,
    events: int | None = None,
    rounds: int = ROUNDS,
    before: str | None = None,
) -> list[Table]:
    n = events or (QUICK_EVENTS if quick else EVENTS)
    rounds = 1 if quick else rounds
    before = os.path.abspath(before) if before else None
    names = _names(bool(before))
    per_event: dict[str, list[float]] = {name: [] for name in names}
    errors: dict[str, str] = {}
    with server_process() as server:
        for round_ in range(1, rounds + 1):
            for name in names:
                print(f"  paced round {round_}/{rounds}: {name}", file=sys.stderr, flush=True)
                res = run_child(name, server.base, n, before)
                if res["status"] == "ok":
                    per_event[name].append(res["cpu_s"] / n * 1e6)
                else:
                    errors.setdefault(name, res["reason"])
    medians = {k: statistics.median(v) for k, v in per_event.items() if v and k not in errors}
    ld = medians.get(LD)
    table = Table(
        f"Paced: CPU per event, 1-3 events per socket write, {PAUSE_MS:g} ms pauses",
        ("client", "events", "CPU µs/event", "range µs", f"vs {LD}"),
    )
    for name in names:
        if name not in medians:
            table.rows.append((name, "error", "-", "-", "-"))
            continue
        values = per_event[name]
        table.rows.append(
            (
                name,
                f"{n:,}",
                f"{medians[name]:.1f}",
                f"{min(values):.1f}-{max(values):.1f}",
                ratio(medians[name], ld),
            )
        )
    table.notes += [
        f"Server: benchmarks._server, the first {n:,} events of the `llm` corpus, one HTTP "
        f"chunk per event, 1-3 events per socket write (seeded; TCP_NODELAY), "
        f"{PAUSE_MS:g} ms pause after each write.",
        "CPU µs/event: the client process's CPU time (time.process_time(): all threads, "
        f"user + system) from the first event delivered to user code to the {n:,}th, / "
        f"{n:,}; a floor's from its first read to the end of the stream. Each client runs "
        f"in a fresh process, after a warm-up stream of {WARMUP_EVENTS} events. Median of "
        f"{rounds} round(s), clients interleaved; range = min-max over the rounds. Lower is "
        "better.",
        "Floors parse nothing (no HTTP, no SSE): a blocking socket recv() loop; an asyncio "
        "Protocol counting data_received; the same Protocol with a task awaiting its data "
        "(a future per wait: what eventsource's asyncio read stands on); trio's "
        "wait_readable() and a non-blocking read (what its trio read stands on); anyio's "
        "SocketStream.receive() under fail_after(60) on asyncio (what httpcore's read "
        "with a timeout costs an async client). Floors + framing + parser: the blocking "
        "recv(), the Protocol with a task, trio's wait_readable() and read, each read "
        "through eventsource's chunk framing and SSEParser, ticking per event as the "
        "clients do (no HTTP client, no read timeout, no reconnect state): the least an "
        "eventsource client on that primitive costs with this parser.",
        *_verdicts(medians),
    ]
    if before:
        table.notes.append(
            f"`{BEFORE.strip()}`: this file's client code on the eventsource/ of {before}, "
            "each run right after this tree's in every round."
        )
        for name in LIMITS:
            now, old = per_event.get(name, []), per_event.get(name + BEFORE, [])
            if name in medians and name + BEFORE in medians:
                pairs = ", ".join(f"{a / b:.2f}" for a, b in zip(now, old, strict=False))
                table.notes.append(
                    f"{name}: now / before {medians[name] / medians[name + BEFORE]:.2f}x "
                    f"(per round {pairs})."
                )
    table.notes += _httpx2_notes(medians, per_event)
    table.notes += [f"{name}: {reason}" for name, reason in errors.items()]
    return [table]


def _httpx2_notes(medians: dict[str, float], per_event: dict[str, list[float]]) -> list[str]:
    """eventsource on httpx2: against launchdarkly-eventsource (with issue 21's limits,
    as on httpx), against httpx2's own EventSource (async against async, sync against
    sync), and against itself on httpx (run right before it in every round)."""
    if not any(name + HTTPX2 in medians for name in LIMITS):
        return []
    out = [
        f"`{HTTPX2.strip()}`: eventsource's client on httpx2 / httpcore2 (a source's own "
        'client made with http="httpx2"), each run right after its twin on httpx in every '
        f"round. {PEER2} / {PEER2_SYNC}: httpx2's own EventSource, `client.sse(url)`."
    ]
    ld = medians.get(LD)
    for name, limit in LIMITS.items():
        mine = medians.get(name + HTTPX2)
        if mine is None:
            continue
        line = f"{name}{HTTPX2}: {mine:.1f} µs/event"
        if ld:
            verdict = "met" if mine <= limit * ld else "NOT met"
            line += f"; {mine / ld:.2f}x {LD} (limit {limit:g}x, as on httpx: {verdict})"
        peer = medians.get(PEER2_SYNC if name == SYNC else PEER2)
        if peer:
            line += f"; {mine / peer:.2f}x {PEER2_SYNC if name == SYNC else PEER2}"
        if name in medians:
            pairs = ", ".join(
                f"{a / b:.2f}"
                for a, b in zip(per_event[name + HTTPX2], per_event[name], strict=False)
            )
            line += f"; on httpx2 / on httpx {mine / medians[name]:.2f}x (per round {pairs})"
        out.append(line + ".")
    return out


def _verdicts(medians: dict[str, float]) -> list[str]:
    ld = medians.get(LD)
    if not ld:
        return ["Targets: not judged (no launchdarkly-eventsource result)."]
    out = []
    for name, limit in LIMITS.items():
        mine = medians.get(name)
        if mine is None:
            out.append(f"Target ({name}): not measured.")
            continue
        verdict = "met" if mine <= limit * ld else "NOT met"
        line = (
            f"Target ({name}): {mine:.1f} µs/event = {mine / ld:.2f}x launchdarkly-eventsource "
            f"({ld:.1f}); target <= {limit:g}x: {verdict}"
        )
        floor = medians.get(PARSED[name])
        if floor is not None:
            line += (
                f"; its floor + framing + parser {floor / ld:.2f}x, leaving "
                f"{limit - floor / ld:.2f}x for the rest (used: {(mine - floor) / ld:.2f}x)"
            )
        out.append(line + ".")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help=f"{QUICK_EVENTS} events, one round")
    ap.add_argument("--events", type=int, help="events per measured stream")
    ap.add_argument("--rounds", type=int, default=ROUNDS, help="rounds (median over them)")
    ap.add_argument("--markdown", metavar="FILE", help="also write the table as Markdown")
    ap.add_argument(
        "--before", metavar="TREE", help="also run eventsource's clients on this checkout"
    )
    ap.add_argument("--child", nargs=3, metavar=("NAME", "BASE", "N"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        name, base, n = args.child
        print(json.dumps(child(name, base, int(n))), flush=True)
        return 0
    tables = run(args.quick, args.events, args.rounds, args.before)
    for table in tables:
        print(table.text())
    if args.markdown:
        write_markdown(args.markdown, tables, DISTS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
