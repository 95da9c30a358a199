"""End-to-end throughput over loopback HTTP: eventsource vs. peers vs. the transport floor.

A server process (benchmarks/_server.py) streams the LLM corpus as fast as it can, in
two framings: one HTTP chunk per event (what a server that flushes every token sends)
and one close-delimited body. Every client runs in a fresh process of its own.
Run ``python -m benchmarks.e2e_bench [--quick] [--events N] [--repeat R]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

try:
    from benchmarks._corpora import make_llm
    from benchmarks._report import ROOT, Table, ratio, server_process, write_markdown
except ImportError:  # run as a script
    from _corpora import make_llm  # type: ignore
    from _report import ROOT, Table, ratio, server_process, write_markdown  # type: ignore

# A client streams the URL to its end and returns (events, total data length); a floor
# returns (chunks, bytes) instead: it does not parse.
Client = Callable[[str], "tuple[int, int]"]

FRAMINGS = ("chunked", "close")
FLOOR = "httpx aiter_bytes (floor, asyncio)"
PEER = "httpx-sse async"
SUBJECT_ASYNC = "eventsource async (asyncio)"
FAST = "eventsource async + httpx-aiohttp"
LD = "launchdarkly-eventsource"
MYPYC = " + h11-mypyc"


def _asyncio(factory: Callable[[str], object]) -> Client:
    def run(url: str) -> tuple[int, int]:
        import asyncio

        return asyncio.run(factory(url))  # type: ignore[arg-type]

    return run


def _trio(factory: Callable[[str], object]) -> Client:
    def run(url: str) -> tuple[int, int]:
        import trio

        return trio.run(factory, url)  # type: ignore[no-any-return]

    return run


async def _httpx_floor(url: str) -> tuple[int, int]:
    import httpx

    n = size = 0
    async with httpx.AsyncClient() as client, client.stream("GET", url) as response:
        async for chunk in response.aiter_bytes():
            n += 1
            size += len(chunk)
    return n, size


def _httpx_floor_sync(url: str) -> tuple[int, int]:
    import httpx

    n = size = 0
    with httpx.Client() as client, client.stream("GET", url) as response:
        for chunk in response.iter_bytes():
            n += 1
            size += len(chunk)
    return n, size


async def _aiohttp_floor(url: str) -> tuple[int, int]:
    import aiohttp

    n = size = 0
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        async for chunk in response.content.iter_any():
            n += 1
            size += len(chunk)
    return n, size


async def _eventsource_async(url: str) -> tuple[int, int]:
    from eventsource import EventSource

    n = size = 0
    async with EventSource(url, reconnect=False) as source:
        async for event in source:
            n += 1
            size += len(event.data)
    return n, size


async def _eventsource_aiohttp(url: str) -> tuple[int, int]:
    import httpx_aiohttp

    from eventsource import EventSource

    n = size = 0
    async with httpx_aiohttp.HttpxAiohttpClient() as client:
        async with EventSource(url, client=client, reconnect=False) as source:
            async for event in source:
                n += 1
                size += len(event.data)
    return n, size


def _eventsource_sync(url: str) -> tuple[int, int]:
    from eventsource import EventSource

    n = size = 0
    with EventSource(url, reconnect=False) as source:
        for event in source:
            n += 1
            size += len(event.data)
    return n, size


async def _httpx_sse_async(url: str) -> tuple[int, int]:
    import httpx
    import httpx_sse

    n = size = 0
    async with httpx.AsyncClient() as client:
        async with httpx_sse.aconnect_sse(client, "GET", url) as source:
            async for event in source.aiter_sse():
                n += 1
                size += len(event.data)
    return n, size


def _httpx_sse_sync(url: str) -> tuple[int, int]:
    import httpx
    import httpx_sse

    n = size = 0
    with httpx.Client() as client, httpx_sse.connect_sse(client, "GET", url) as source:
        for event in source.iter_sse():
            n += 1
            size += len(event.data)
    return n, size


def _launchdarkly(url: str) -> tuple[int, int]:
    from ld_eventsource import SSEClient  # type: ignore[import-untyped]
    from ld_eventsource.actions import Event, Fault  # type: ignore[import-untyped]
    from ld_eventsource.config import ConnectStrategy  # type: ignore[import-untyped]

    n = size = 0
    client = SSEClient(connect=ConnectStrategy.http(url), retry_delay_strategy=None)
    try:
        for item in client.all:
            if isinstance(item, Event):
                n += 1
                size += len(item.data)
            elif isinstance(item, Fault):
                break  # the end of the stream
    finally:
        client.close()
    return n, size


# (name, runner, is a floor: counts chunks, not events)
CLIENTS: list[tuple[str, Client, bool]] = [
    (FLOOR, _asyncio(_httpx_floor), True),
    ("httpx iter_bytes (floor, sync)", _httpx_floor_sync, True),
    ("aiohttp iter_any (floor, asyncio)", _asyncio(_aiohttp_floor), True),
    (SUBJECT_ASYNC, _asyncio(_eventsource_async), False),
    ("eventsource async (trio)", _trio(_eventsource_async), False),
    ("eventsource sync", _eventsource_sync, False),
    (FAST, _asyncio(_eventsource_aiohttp), False),
    (PEER, _asyncio(_httpx_sse_async), False),
    ("httpx-sse sync", _httpx_sse_sync, False),
    (LD, _launchdarkly, False),
]


def child(name: str, url: str, repeat: int) -> dict[str, object]:
    """One client: a warm-up run, then ``repeat`` timed runs."""
    if name.endswith(MYPYC):
        # h11 compiled with mypyc, in place of h11 for this process only; httpcore
        # imports h11 when httpx is first imported, which has not happened yet.
        import h11_mypyc  # type: ignore[import-not-found]

        sys.modules["h11"] = h11_mypyc
        name = name[: -len(MYPYC)]
    runner, floor = {n: (r, f) for n, r, f in CLIENTS}[name]
    counts = runner(url)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        again = runner(url)
        times.append(time.perf_counter() - t0)
        # A floor's chunk count depends on how reads fall: compare bytes only.
        if again[floor:] != counts[floor:]:
            raise RuntimeError(f"non-deterministic output: {counts} then {again}")
    return {"times": times, "count": counts[0], "size": counts[1]}


def _variants() -> list[tuple[str, bool]]:
    """Every client, plus the httpx-based ones that matter on h11-mypyc if installed."""
    out = [(name, floor) for name, _runner, floor in CLIENTS]
    if importlib.util.find_spec("h11_mypyc") is not None:
        out += [
            (name + MYPYC, floor) for name, floor in out if name in (FLOOR, SUBJECT_ASYNC, PEER)
        ]
    return out


def _measure(name: str, url: str, repeat: int) -> dict[str, object]:
    cmd = [sys.executable, "-m", "benchmarks.e2e_bench", "--child", name, url, str(repeat)]
    try:
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        return {"error": "timed out after 600 s"}
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        return {"error": last}
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def run(quick: bool = False, events: int | None = None, repeat: int = 3) -> list[Table]:
    n = events or (20_000 if quick else 100_000)
    corpus = make_llm(n)
    results: dict[tuple[str, str], dict[str, object]] = {}
    with server_process() as server:
        for framing in FRAMINGS:
            url = f"{server.base}/stream/llm/{framing}?events={n}"
            for name, _floor in _variants():
                print(f"  e2e {framing}: {name}", file=sys.stderr, flush=True)
                results[name, framing] = _measure(name, url, repeat)
    table = Table(
        f"End to end over loopback: LLM corpus, {n:,} events",
        (
            "client",
            "framing",
            "events",
            "median s",
            "events/s",
            "vs floor",
            "vs httpx-sse",
            "vs launchdarkly",
        ),
        numeric_from=2,
    )
    rates: dict[tuple[str, str], float] = {}
    for framing in FRAMINGS:
        for name, floor in _variants():
            res = results[name, framing]
            if "error" in res:
                table.rows.append((name, framing, "error", "-", "-", "-", "-", "-"))
                table.notes.append(f"{name} ({framing}): {res['error']}")
                continue
            median = statistics.median(res["times"])  # type: ignore[arg-type]
            rates[name, framing] = n / median
            if not floor and (res["count"], res["size"]) != (corpus.events, corpus.data_chars):
                table.notes.append(
                    f"{name} ({framing}): {res['count']:,} events / {res['size']:,} data chars, "
                    f"expected {corpus.events:,} / {corpus.data_chars:,}"
                )
        for name, floor in _variants():
            rate = rates.get((name, framing))
            if rate is None:
                continue
            count = results[name, framing]["count"]
            shown = f"{count:,} chunks" if floor else f"{count:,}"
            table.rows.append(
                (
                    name,
                    framing,
                    shown,
                    f"{n / rate:.3f}",
                    f"{rate:,.0f}",
                    ratio(rate, rates.get((FLOOR, framing))),
                    ratio(rate, rates.get((PEER, framing))),
                    ratio(rate, rates.get((LD, framing))),
                )
            )
    table.notes[:0] = [
        "events/s = corpus events / median wall time (a floor reads chunks and parses "
        "nothing; its `events` column shows chunks received); `vs floor` = against "
        f"{FLOOR} on the same framing; `vs httpx-sse` = against {PEER}; `vs launchdarkly` "
        f"= against {LD} (urllib3, sync).",
        "`chunked`: one HTTP chunk per event; `close`: one close-delimited body. The server "
        "is a separate process writing prebuilt bodies in 256 KiB slices.",
        *_verdicts(rates),
    ]
    return [table]


# The eventsource clients on plain httpx that the targets are about.
SUBJECTS = (SUBJECT_ASYNC, "eventsource async (trio)", "eventsource sync")
# One close-delimited body: the ratios to launchdarkly-eventsource measured before the
# fast body read (issue 12); the targets are "no slower than that".
CLOSE_BEFORE = {SUBJECT_ASYNC: 1.27, "eventsource sync": 1.74}


def _verdicts(rates: dict[tuple[str, str], float]) -> list[str]:
    out = []
    ld, peer = rates.get((LD, "chunked")), rates.get((PEER, "chunked"))
    for name in SUBJECTS:
        ours = rates.get((name, "chunked"))
        if not (ours and ld and peer):
            out.append(f"Target, chunked, {name}: not measured.")
            continue
        goal = "goal 2x met" if ours >= 2 * ld else "goal 2x not reached"
        out.append(
            f"Target, chunked, {name}: {ours / ld:.2f}x {LD} (target >= 1.5x: "
            f"{'met' if ours >= 1.5 * ld else 'NOT met'}; {goal}); {ours / peer:.2f}x {PEER} "
            f"(target >= 1.5x: {'met' if ours >= 1.5 * peer else 'NOT met'})."
        )
    ld = rates.get((LD, "close"))
    for name, before in CLOSE_BEFORE.items():
        ours = rates.get((name, "close"))
        if not (ours and ld):
            out.append(f"Target, close, {name}: not measured.")
            continue
        out.append(
            f"Target, close, {name}: {ours / ld:.2f}x {LD} (before: {before:.2f}x; no slower: "
            f"{'met' if ours / ld >= before else 'NOT met'})."
        )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="20,000 events instead of 100,000")
    ap.add_argument("--events", type=int, help="events per stream")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per client (median)")
    ap.add_argument("--markdown", metavar="FILE", help="also write the table as Markdown")
    ap.add_argument("--child", nargs=3, metavar=("CLIENT", "URL", "REPEAT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        name, url, repeat = args.child
        print(json.dumps(child(name, url, int(repeat))))
        return 0
    tables = run(args.quick, args.events, args.repeat)
    for table in tables:
        print(table.text())
    if args.markdown:
        dists = ("eventsource-client", "httpx", "h11", "httpx-sse", "httpx-aiohttp", "aiohttp")
        write_markdown(args.markdown, tables, (*dists, "launchdarkly-eventsource"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
