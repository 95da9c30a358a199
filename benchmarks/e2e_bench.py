"""End-to-end throughput over loopback HTTP: eventsource vs. peers vs. the transport floor.

A server process (benchmarks/_server.py) streams the LLM corpus as fast as it can, in
two framings: one HTTP chunk per event (what a server that flushes every token sends)
and one close-delimited body. Every client runs in a fresh process of its own.
Run ``python -m benchmarks.e2e_bench [--quick] [--events N] [--repeat R]``.

A second server serves the same over TLS (a trustme certificate for 127.0.0.1): the
httpx floor and eventsource on asyncio, trio and sync also run there (`` + TLS``),
each measured right after its plain-TCP twin. ``--before TREE`` also runs
eventsource's clients on another checkout of the project (the code before a
change), on the same servers, each right after this tree's (the clients' code is
this file's, run as a script with the other checkout first on PYTHONPATH).
``--rounds R`` repeats the whole measurement, interleaved; ``--clients
eventsource`` keeps the clients whose name holds that text, ``--framings close``
the one framing.

On httpx2 (when it is installed): httpx2's own ``EventSource`` (``client.sse(url)``,
async and sync) is a peer, and eventsource's clients also run on httpx2 (`` on
httpx2``: a source's own client made with ``http="httpx2"``, and a user's
``httpx2.AsyncClient``), each measured right after its twin on httpx.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import ssl
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
TLS = " + TLS"
BEFORE = " (before)"
TRIO = "eventsource async (trio)"
SYNC = "eventsource sync"
USER = "eventsource async, user's client"
HTTPX2 = " on httpx2"
PEER2 = "httpx2.EventSource async"
PEER2_SYNC = "httpx2.EventSource sync"
CAFILE_ENV = "EVENTSOURCE_BENCH_CAFILE"
# What ``verify=`` the httpx floor passes: the TLS mode's CA context in a child that
# runs against the TLS server (see _trust_cafile), httpx's default otherwise.
_VERIFY: ssl.SSLContext | bool = True
# The HTTP stack eventsource's clients run on in this child: "httpx", or "httpx2" for
# a client named `` on httpx2`` (a source's own client with http="httpx2", a user's
# httpx2 client). Each run checks that its response came from that stack.
_HTTP = "httpx"


def _check_stack(source: object) -> None:
    stack = type(source.response).__module__.partition(".")[0]  # type: ignore[attr-defined]
    if stack != _HTTP:
        raise RuntimeError(f"the response came from {stack}, not {_HTTP}")


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
    async with httpx.AsyncClient(verify=_VERIFY) as client, client.stream("GET", url) as response:
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
    # http= only off the default: a --before tree may predate the option.
    options = {"http": _HTTP} if _HTTP != "httpx" else {}
    async with EventSource(url, reconnect=False, **options) as source:
        async for event in source:
            if not n:
                _check_stack(source)
            n += 1
            size += len(event.data)
    return n, size


async def _eventsource_user(url: str) -> tuple[int, int]:
    """A user's own client (httpx's or httpx2's AsyncClient): its public stream."""
    import importlib

    from eventsource import EventSource

    n = size = 0
    http = importlib.import_module(_HTTP)
    async with http.AsyncClient() as client:
        async with EventSource(url, client=client, reconnect=False) as source:
            async for event in source:
                if not n:
                    _check_stack(source)
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
    options = {"http": _HTTP} if _HTTP != "httpx" else {}
    with EventSource(url, reconnect=False, **options) as source:
        for event in source:
            if not n:
                _check_stack(source)
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


async def _httpx2_sse_async(url: str) -> tuple[int, int]:
    import httpx2

    n = size = 0
    async with httpx2.AsyncClient() as client, client.sse(url) as source:
        async for event in source:
            n += 1
            size += len(event.data)
    return n, size


def _httpx2_sse_sync(url: str) -> tuple[int, int]:
    import httpx2

    n = size = 0
    with httpx2.Client() as client, client.sse(url) as source:
        for event in source:
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
    (TRIO, _trio(_eventsource_async), False),
    (SYNC, _eventsource_sync, False),
    (FAST, _asyncio(_eventsource_aiohttp), False),
    (USER, _asyncio(_eventsource_user), False),
    (PEER, _asyncio(_httpx_sse_async), False),
    ("httpx-sse sync", _httpx_sse_sync, False),
    (PEER2, _asyncio(_httpx2_sse_async), False),
    (PEER2_SYNC, _httpx2_sse_sync, False),
    (LD, _launchdarkly, False),
]
# The clients that run only when httpx2 is installed (USER, on httpx, is the twin of
# its run on httpx2).
NEEDS_HTTPX2 = (USER, PEER2, PEER2_SYNC)


def _trust_cafile(cafile: str) -> None:
    """The TLS mode, in a client's process: trust the benchmark server's CA.

    A BENCHMARK-ONLY HACK. EventSource has no ``verify=`` option yet, and a client
    of the user's own would take httpx's public stream instead of eventsource's
    transport (a different code path), so the function that makes the TLS context
    of every client a source makes for itself is replaced in this process only.
    """
    import eventsource._request

    context = ssl.create_default_context(cafile=cafile)
    eventsource._request._default_ssl_context = lambda *_: context
    global _VERIFY
    _VERIFY = context


def child(name: str, url: str, repeat: int) -> dict[str, object]:
    """One client: a warm-up run, then ``repeat`` timed runs."""
    if url.startswith("https:"):
        _trust_cafile(os.environ[CAFILE_ENV])
    if name.endswith(TLS):
        name = name[: -len(TLS)]
    if name.endswith(HTTPX2):
        global _HTTP
        _HTTP = "httpx2"
        name = name[: -len(HTTPX2)]
    if name.endswith(MYPYC):
        # h11 compiled with mypyc, in place of h11 for this process only; httpcore
        # imports h11 when httpx is first imported, which has not happened yet.
        import h11_mypyc  # type: ignore[import-not-found]

        sys.modules["h11"] = h11_mypyc
        name = name[: -len(MYPYC)]
    runner, floor = {n: (r, f) for n, r, f in CLIENTS}[name]
    counts = runner(url)
    times, cpu = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        again = runner(url)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        # A floor's chunk count depends on how reads fall: compare bytes only.
        if again[floor:] != counts[floor:]:
            raise RuntimeError(f"non-deterministic output: {counts} then {again}")
    import eventsource

    return {
        "times": times,
        "cpu": cpu,
        "count": counts[0],
        "size": counts[1],
        "module": eventsource.__file__,
    }


# The clients that also run over TLS, and those that also run from the --before tree.
TLS_CLIENTS = (FLOOR, SUBJECT_ASYNC, TRIO, SYNC)
BEFORE_CLIENTS = (SUBJECT_ASYNC, TRIO, SYNC)
# The clients that also run on httpx2 (`` on httpx2``), each right after its twin.
HTTPX2_CLIENTS = (SUBJECT_ASYNC, TRIO, SYNC, USER)


def _variants(before: bool = False, only: tuple[str, ...] = ()) -> list[tuple[str, bool]]:
    """Every client, in the order of the table: the plain ones, the httpx-based ones
    that matter on h11-mypyc if installed, the TLS ones, the ones on httpx2 if
    installed, and the --before ones."""
    httpx2 = importlib.util.find_spec("httpx2") is not None
    base = [(name, floor) for name, _r, floor in CLIENTS if httpx2 or name not in NEEDS_HTTPX2]
    out = list(base)
    if importlib.util.find_spec("h11_mypyc") is not None:
        out += [(name + MYPYC, f) for name, f in base if name in (FLOOR, SUBJECT_ASYNC, PEER)]
    out += [(name + TLS, f) for name, f in base if name in TLS_CLIENTS]
    if httpx2:
        out += [(name + HTTPX2, f) for name, f in base if name in HTTPX2_CLIENTS]
    if before:
        out += [(name + BEFORE, f) for name, f in base if name in BEFORE_CLIENTS]
    return [(name, f) for name, f in out if not only or any(o in name for o in only)]


def _measure_order(variants: list[tuple[str, bool]]) -> list[str]:
    """The order of measurement: a client's TLS, --before and httpx2 twins right
    after it."""
    names = [name for name, _floor in variants]
    suffixes = (TLS, BEFORE, HTTPX2)
    twins = {
        name
        for name in names
        for suffix in suffixes
        if name.endswith(suffix) and name[: -len(suffix)] in names
    }
    order: list[str] = []
    for name in names:
        if name in twins:
            continue  # measured right after its plain twin
        order.append(name)
        order += [twin for twin in (name + suffix for suffix in suffixes) if twin in twins]
    return order


def _measure(
    name: str, url: str, repeat: int, cafile: str | None = None, before: str | None = None
) -> dict[str, object]:
    tree = str(ROOT)
    env = dict(os.environ)
    if cafile:
        env[CAFILE_ENV] = cafile
    cmd = [sys.executable, "-m", "benchmarks.e2e_bench"]
    if name.endswith(BEFORE):
        # This file's client code, run as a script (so that `benchmarks` is not
        # imported from the other checkout), on the other checkout's eventsource/:
        # PYTHONPATH comes before an editable install of this tree.
        assert before is not None
        name, tree = name[: -len(BEFORE)], before
        env["PYTHONPATH"] = before
        cmd = [sys.executable, str(ROOT / "benchmarks" / "e2e_bench.py")]
    cmd += ["--child", name, url, str(repeat)]
    try:
        done = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        return {"error": "timed out after 600 s"}
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        return {"error": last}
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    module = os.path.realpath(str(result["module"]))
    if not module.startswith(os.path.realpath(tree) + os.sep):
        return {"error": f"eventsource imported from {module}, not from {tree}"}
    return result


def run(
    quick: bool = False,
    events: int | None = None,
    repeat: int = 3,
    before: str | None = None,
    rounds: int = 1,
    only: tuple[str, ...] = (),
    framings: tuple[str, ...] = FRAMINGS,
) -> list[Table]:
    n = events or (20_000 if quick else 100_000)
    corpus = make_llm(n)
    variants = _variants(bool(before), only)
    if before:
        before = os.path.abspath(before)
    # Each client's first result, and per round its median wall and CPU times.
    results: dict[tuple[str, str], dict[str, object]] = {}
    per_round: dict[tuple[str, str], list[float]] = {}
    cpu_round: dict[tuple[str, str], list[float]] = {}
    with server_process() as server, server_process(tls=True) as tls_server:
        for round_ in range(1, rounds + 1):
            for framing in framings:
                for name in _measure_order(variants):
                    where = tls_server if name.endswith(TLS) else server
                    url = f"{where.base}/stream/llm/{framing}?events={n}"
                    print(
                        f"  e2e round {round_}/{rounds} {framing}: {name}",
                        file=sys.stderr,
                        flush=True,
                    )
                    res = _measure(name, url, repeat, where.cafile, before)
                    if "error" in res:
                        results.setdefault((name, framing), res)
                        continue
                    if (name, framing) not in results or "error" in results[name, framing]:
                        results[name, framing] = res
                    per_round.setdefault((name, framing), []).append(
                        statistics.median(res["times"])  # type: ignore[arg-type]
                    )
                    cpu_round.setdefault((name, framing), []).append(
                        statistics.median(res["cpu"])  # type: ignore[arg-type]
                    )
    table = Table(
        f"End to end over loopback: LLM corpus, {n:,} events",
        (
            "client",
            "framing",
            "events",
            "median s",
            "CPU s",
            "events/s",
            "vs floor",
            "vs httpx-sse",
            "vs launchdarkly",
        ),
        numeric_from=2,
    )
    rates: dict[tuple[str, str], float] = {}
    for framing in framings:
        for name, floor in variants:
            res = results[name, framing]
            if (name, framing) not in per_round:
                table.rows.append((name, framing, "error", "-", "-", "-", "-", "-", "-"))
                table.notes.append(f"{name} ({framing}): {res['error']}")
                continue
            median = statistics.median(per_round[name, framing])
            rates[name, framing] = n / median
            if not floor and (res["count"], res["size"]) != (corpus.events, corpus.data_chars):
                table.notes.append(
                    f"{name} ({framing}): {res['count']:,} events / {res['size']:,} data chars, "
                    f"expected {corpus.events:,} / {corpus.data_chars:,}"
                )
        for name, floor in variants:
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
                    f"{statistics.median(cpu_round[name, framing]):.3f}",
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
        f"Median time of {repeat} timed runs after a warm-up, in one process per client"
        + (
            f"; {rounds} rounds, clients interleaved: the median of the rounds' medians"
            if rounds > 1
            else ""
        )
        + ".",
        f"`{TLS.strip(' +')}`: the same server over TLS (asyncio's ssl, TLS 1.3, a trustme "
        "certificate for 127.0.0.1), each client measured right after its plain twin; "
        "eventsource's own clients trust the CA through a benchmark-only replacement of "
        "`eventsource._request._default_ssl_context` (EventSource has no `verify=` yet).",
    ]
    if before:
        table.notes.append(
            f"`{BEFORE.strip()}`: the same clients (this file's code, run as a script) on the "
            f"eventsource/ of {before}, on the same servers, each measured right after this "
            "tree's."
        )
    table.notes.append(
        "CPU s: the client process's CPU time (time.process_time()), median like the wall "
        "time. Comparisons of two clients measured one right after the other (TLS / plain, "
        "now / before) are judged on it: jobs sharing the machine move wall time far more."
    )
    if any(name.endswith(HTTPX2) for name, _floor in variants):
        table.notes.append(
            f"`{HTTPX2.strip()}`: the same client on httpx2 / httpcore2, measured right after "
            f'its twin on httpx: a source\'s own client made with http="httpx2", or (`{USER}`) '
            "a user's httpx2.AsyncClient in place of an httpx.AsyncClient (httpx's / httpx2's "
            f"public stream). {PEER2} / {PEER2_SYNC}: httpx2's own EventSource, "
            "`client.sse(url)`, iterated."
        )
    table.notes += _verdicts(rates, per_round, cpu_round)
    table.notes += _httpx2_verdicts(rates, per_round, cpu_round)
    return [table]


# The eventsource clients on plain httpx that the targets are about.
SUBJECTS = (SUBJECT_ASYNC, TRIO, SYNC)
# Issue 21's targets: one chunk per event at least 2x launchdarkly-eventsource (and,
# from before, 1.5x httpx-sse async); TLS on asyncio within 1.25x of plain TCP; one
# close-delimited body no slower than the code before the change (--before).
CHUNKED_VS_LD = 2.0
CHUNKED_VS_PEER = 1.5
TLS_LIMIT = 1.25


class _Pair:
    """Two clients measured one right after the other in every round: the ratio
    of their times (``a`` over ``b``), wall and CPU, median over the rounds and
    per round."""

    def __init__(
        self,
        wall: dict[tuple[str, str], list[float]],
        cpu: dict[tuple[str, str], list[float]],
        a: str,
        b: str,
        framing: str,
    ) -> None:
        self.ok = all((x, framing) in d for x in (a, b) for d in (wall, cpu))
        if not self.ok:
            return
        self.wall = statistics.median(wall[a, framing]) / statistics.median(wall[b, framing])
        self.cpu = statistics.median(cpu[a, framing]) / statistics.median(cpu[b, framing])
        self.cpu_rounds = [x / y for x, y in zip(cpu[a, framing], cpu[b, framing], strict=False)]
        self.wall_rounds = [x / y for x, y in zip(wall[a, framing], wall[b, framing], strict=False)]

    def text(self) -> str:
        def spread(values: list[float]) -> str:
            return ", ".join(f"{v:.2f}" for v in values)

        return (
            f"CPU {self.cpu:.2f}x (per round {spread(self.cpu_rounds)}), wall {self.wall:.2f}x "
            f"(per round {spread(self.wall_rounds)})"
        )


def _verdicts(
    rates: dict[tuple[str, str], float],
    wall: dict[tuple[str, str], list[float]],
    cpu: dict[tuple[str, str], list[float]],
) -> list[str]:
    out = []
    ld, peer = rates.get((LD, "chunked")), rates.get((PEER, "chunked"))
    for name in SUBJECTS:
        ours = rates.get((name, "chunked"))
        if not (ours and ld):
            out.append(f"Target, chunked, {name}: not measured (needs it and {LD}).")
            continue
        vs_ld = _Pair(wall, cpu, LD, name, "chunked")
        line = (
            f"Target, chunked, {name}: {ours / ld:.2f}x {LD} (target >= {CHUNKED_VS_LD:g}x: "
            f"{'met' if ours >= CHUNKED_VS_LD * ld else 'NOT met'}; its CPU time is "
            f"{vs_ld.cpu:.2f}x ours)"
        )
        if peer:
            line += (
                f"; {ours / peer:.2f}x {PEER} (target >= {CHUNKED_VS_PEER:g}x: "
                f"{'met' if ours >= CHUNKED_VS_PEER * peer else 'NOT met'})"
            )
        out.append(line + ".")
    for framing in FRAMINGS:
        pair = _Pair(wall, cpu, SUBJECT_ASYNC + TLS, SUBJECT_ASYNC, framing)
        if not pair.ok:
            out.append(f"Target, TLS, {framing}, {SUBJECT_ASYNC}: not measured.")
            continue
        out.append(
            f"Target, TLS, {framing}, {SUBJECT_ASYNC}: TLS / plain TCP: {pair.text()}; "
            f"target <= {TLS_LIMIT:g}x, on CPU time: "
            f"{'met' if pair.cpu <= TLS_LIMIT else 'NOT met'}."
        )
    for framing in ("close", "chunked"):
        for name in SUBJECTS:
            pair = _Pair(wall, cpu, name, name + BEFORE, framing)
            if not pair.ok:
                if framing == "close":
                    out.append(
                        f"Target, close, {name}: not judged (run with --before TREE, the "
                        "code before the change)."
                    )
                continue
            judged = (
                f"; no slower, on CPU time: {'met' if pair.cpu <= 1 else 'NOT met'}"
                if framing == "close"
                else ""
            )
            label = "Target, close" if framing == "close" else "Chunked"
            out.append(f"{label}, {name}: now / before: {pair.text()}{judged}.")
    return out


def _httpx2_verdicts(
    rates: dict[tuple[str, str], float],
    wall: dict[tuple[str, str], list[float]],
    cpu: dict[tuple[str, str], list[float]],
) -> list[str]:
    """eventsource on httpx2, one chunk per event: against launchdarkly-eventsource
    (issue 21's 2x, as on httpx), against httpx2's own EventSource (async against
    async, sync against sync), and against itself on httpx (measured right before)."""
    out = []
    ld = rates.get((LD, "chunked"))
    for name in (*SUBJECTS, USER):
        ours = rates.get((name + HTTPX2, "chunked"))
        if ours is None:
            continue
        line = f"httpx2, chunked, {name}{HTTPX2}:"
        if ld and name in SUBJECTS:
            vs_ld = _Pair(wall, cpu, LD, name + HTTPX2, "chunked")
            line += (
                f" {ours / ld:.2f}x {LD} (target >= {CHUNKED_VS_LD:g}x: "
                f"{'met' if ours >= CHUNKED_VS_LD * ld else 'NOT met'}; its CPU time is "
                f"{vs_ld.cpu:.2f}x ours);"
            )
        peer = PEER2_SYNC if name == SYNC else PEER2
        theirs = rates.get((peer, "chunked"))
        if theirs:
            line += f" {ours / theirs:.2f}x {peer};"
        pair = _Pair(wall, cpu, name + HTTPX2, name, "chunked")
        if pair.ok:
            line += f" time on httpx2 / on httpx: {pair.text()}"
        out.append(line.rstrip(";") + ".")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="20,000 events instead of 100,000")
    ap.add_argument("--events", type=int, help="events per stream")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per client (median)")
    ap.add_argument("--markdown", metavar="FILE", help="also write the table as Markdown")
    ap.add_argument(
        "--before", metavar="TREE", help="also run eventsource's clients from this checkout"
    )
    ap.add_argument("--rounds", type=int, default=1, help="whole measurements, interleaved")
    ap.add_argument("--framings", default=",".join(FRAMINGS), help="comma-separated: chunked,close")
    ap.add_argument(
        "--clients", default="", help="comma-separated: only clients whose name holds one"
    )
    ap.add_argument("--child", nargs=3, metavar=("CLIENT", "URL", "REPEAT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        name, url, repeat = args.child
        print(json.dumps(child(name, url, int(repeat))))
        return 0
    only = tuple(c.strip() for c in args.clients.split(",") if c.strip())
    framings = tuple(f.strip() for f in args.framings.split(",") if f.strip())
    unknown = set(framings) - set(FRAMINGS)
    if unknown:
        ap.error(f"unknown framing(s): {', '.join(sorted(unknown))}")
    tables = run(args.quick, args.events, args.repeat, args.before, args.rounds, only, framings)
    for table in tables:
        print(table.text())
    if args.markdown:
        dists = (
            "eventsource-client",
            "httpx",
            "httpx2",
            "httpcore2",
            "h11",
            "httpx-sse",
            "httpx-aiohttp",
            "aiohttp",
        )
        write_markdown(args.markdown, tables, (*dists, "launchdarkly-eventsource"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
