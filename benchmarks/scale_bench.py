"""Scale benchmark: many concurrent idle SSE streams in one process.

For each client setup and each N, a fresh process opens N streams to the
loopback server's ``/idle`` endpoint (``benchmarks._server``, its own process),
then measures the time to open them all, memory per stream, CPU while idle,
how long one broadcast event takes to reach every stream, and the close.
Not part of CI. Run ``python -m benchmarks.scale_bench [--quick] [--n 100,1000]
[--markdown FILE]`` from the project root.

``--breakdown SETUP N`` opens N streams of one setup under tracemalloc instead and
prints what they hold, per stream, grouped by the package that allocated it (the
allocating line), then the top lines: what a stream holds that it need not.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
from httpx_sse import aconnect_sse

from eventsource import EventSource

try:
    from benchmarks._report import ROOT, Table, ratio, server_process, write_markdown
    from benchmarks._server import raise_fd_limit
except ImportError:  # run as a script without the project root on sys.path
    from _report import ROOT, Table, ratio, server_process, write_markdown  # type: ignore
    from _server import raise_fd_limit  # type: ignore

TITLE = "Scale: N idle streams in one process"
HEADERS = (
    "client",
    "N",
    "open all s",
    "KiB/stream",
    "idle CPU %",
    "broadcast p50 ms",
    "broadcast all ms",
    "KiB/stream vs httpx-sse",
)
FULL_NS = (100, 1000, 10000)
QUICK_NS = (100, 1000)
TARGET_N = 10000
TARGET_SLACK = 1.10  # memory per stream may exceed httpx-sse's by 10% at most
# Issue 21: N=10,000 with the default setup (a client per source) opens within 1.1x of
# bare httpx's time in the same run, with at most 26 KiB a stream.
TARGET_OPEN_VS_BARE = 1.10
TARGET_KIB = 26.0  # memory per stream at N=10,000, at most
DEFAULT = "es-own"
REFERENCE = "httpx-sse"
SUBJECT = "es-shared"

CHILD_TIMEOUT = 600.0  # seconds a (setup, N) process may take before it is killed
OPEN_TIMEOUT = 300.0  # for all N to open; a hang becomes an error, not a kill
COUNT_TIMEOUT = 10.0  # for the server to register every stream it answered
IDLE_WINDOW = 3.0
BROADCAST_TIMEOUT = 60.0
CLOSE_TIMEOUT = 120.0


@dataclass(frozen=True)
class Setup:
    """One client setup: how each stream is opened, on which backend."""

    label: str
    backend: str  # anyio backend: "asyncio" or "trio"
    shared: bool  # one httpx.AsyncClient for all streams
    library: str  # "eventsource", "httpx-sse" or "httpx" (no SSE)
    description: str
    per_client: int = 0  # with shared: streams per shared client (0: all on one)


SETUPS: dict[str, Setup] = {
    "es-shared": Setup(
        "eventsource (shared client)",
        "asyncio",
        True,
        "eventsource",
        "one httpx.AsyncClient (no connection limits, no read timeout) shared by N "
        "EventSource(url, client=shared, reconnect=False, read_timeout=None), each "
        "iterated with `async for` in its own task",
    ),
    "es-own": Setup(
        "eventsource (own client each)",
        "asyncio",
        False,
        "eventsource",
        "EventSource(url, reconnect=False, read_timeout=None) with no client: each "
        "makes its own httpx.AsyncClient (the default usage)",
    ),
    "httpx-sse": Setup(
        "httpx-sse (shared client)",
        "asyncio",
        True,
        "httpx-sse",
        "the same shared client; httpx_sse.aconnect_sse(client, 'GET', url) and "
        "aiter_sse() in each task",
    ),
    "es-100": Setup(
        "eventsource (100 per shared client)",
        "asyncio",
        True,
        "eventsource",
        "as eventsource (shared client), with one shared client per 100 sources (N / 100 clients)",
        per_client=100,
    ),
    "httpx-own": Setup(
        "bare httpx (own client each)",
        "asyncio",
        False,
        "httpx",
        "no SSE at all: an httpx.AsyncClient per stream (the TLS context shared, as "
        "eventsource's own clients share one), `client.stream('GET', url)` and "
        "`aiter_raw()`; what opening a stream on httpx costs before any SSE client's own "
        "work (a reference, not a peer)",
    ),
    "es-trio": Setup(
        "eventsource trio (shared client)",
        "trio",
        True,
        "eventsource",
        "eventsource (shared client) under trio",
    ),
}
ORDER = ("es-shared", "es-own", "es-100", "httpx-sse", "httpx-own", "es-trio")

# Child JSON keys, in the order of the table's measured columns.
METRICS = ("open_s", "kib_per_stream", "idle_cpu_pct", "broadcast_p50_ms", "broadcast_all_ms")


# --------------------------------------------------------------------------- child side


def proc_status_kib(field: str) -> int:
    """A ``kB`` field of /proc/self/status (VmRSS, VmHWM), in KiB."""
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status (Linux only)")


def rss_kib() -> int:
    return proc_status_kib("VmRSS")


class Group:
    """N streams' shared state: counters, the events the main task waits on,
    each stream's delivery time, and how to ask each stream to end."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.opened = 0
        self.failed = 0
        self.errors: list[str] = []
        self.received = 0
        self.delivered_ns = [0] * n
        self.closers: list[Callable[[], object]] = []
        self.all_open = anyio.Event()  # every stream is open or has failed
        self.all_received = anyio.Event()
        self.ended = 0
        self.all_ended = anyio.Event()  # every stream task has returned

    def open(self) -> None:
        self.opened += 1
        self._check_open()

    def fail(self, exc: BaseException) -> None:
        self.failed += 1
        if len(self.errors) < 3:
            self.errors.append(f"{type(exc).__name__}: {exc}"[:200])
        self._check_open()
        if self.received + self.failed >= self.n:  # a failure must not stall the broadcast wait
            self.all_received.set()

    def deliver(self, i: int) -> None:
        # Stamped first: this is the moment the event reached user code.
        now = time.monotonic_ns()
        if self.delivered_ns[i]:
            return
        self.delivered_ns[i] = now
        self.received += 1
        if self.received + self.failed >= self.n:
            self.all_received.set()

    def end(self) -> None:
        self.ended += 1
        if self.ended >= self.n:
            self.all_ended.set()

    def close_all(self) -> None:
        for close in self.closers:
            close()

    def _check_open(self) -> None:
        if self.opened + self.failed >= self.n:
            self.all_open.set()


StreamFn = Callable[[int, str, Group, httpx.AsyncClient | None], Awaitable[None]]


async def eventsource_stream(
    i: int, url: str, group: Group, client: httpx.AsyncClient | None
) -> None:
    """One eventsource stream: on_open counts the open, `async for` delivers."""
    source = EventSource(url, client=client, reconnect=False, read_timeout=None, on_open=group.open)
    group.closers.append(source.close)
    try:
        async with source:
            async for _ in source:
                group.deliver(i)
    except Exception as exc:
        group.fail(exc)
    finally:
        group.end()


async def httpx_sse_stream(
    i: int, url: str, group: Group, client: httpx.AsyncClient | None
) -> None:
    """One httpx-sse stream; it has no close(), so it is ended by cancelling its scope."""
    assert client is not None
    with anyio.CancelScope() as scope:
        group.closers.append(scope.cancel)
        try:
            async with aconnect_sse(client, "GET", url) as source:
                source.response.raise_for_status()
                group.open()
                async for _ in source.aiter_sse():
                    group.deliver(i)
        except Exception as exc:
            group.fail(exc)
        finally:
            group.end()


async def httpx_stream(i: int, url: str, group: Group, client: httpx.AsyncClient | None) -> None:
    """One bare httpx stream, no SSE: a client of its own, the body's raw bytes;
    the broadcast is the first read that holds an event (the head's comment is not)."""
    if not _tls:
        _tls.append(httpx.create_ssl_context())
    with anyio.CancelScope() as scope:
        group.closers.append(scope.cancel)
        try:
            timeout = httpx.Timeout(10, read=None)
            async with httpx.AsyncClient(timeout=timeout, verify=_tls[0]) as own:
                async with own.stream("GET", url) as response:
                    response.raise_for_status()
                    group.open()
                    async for chunk in response.aiter_raw():
                        if b"data" in chunk:
                            group.deliver(i)
        except Exception as exc:
            group.fail(exc)
        finally:
            group.end()


_tls: list[Any] = []


def shared_client() -> httpx.AsyncClient:
    # No pool limit (one connection per stream) and no read timeout (idle is normal);
    # one TLS context for every client made here, as eventsource's own clients share one.
    if not _tls:
        _tls.append(httpx.create_ssl_context())
    return httpx.AsyncClient(
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=None),
        timeout=httpx.Timeout(10, read=None),
        verify=_tls[0],
    )


async def server_command(server: Any, line: str) -> str:
    # The server's answers come on a blocking pipe: read them in a thread, so the
    # event loop keeps serving the streams meanwhile (the broadcast in particular).
    return str(await anyio.to_thread.run_sync(server.command, line))


async def wait_server_count(server: Any, n: int) -> int:
    """The server's count of idle streams once it is n, or the last one after
    COUNT_TIMEOUT: it registers a stream just after writing its head, and drops
    a closed one when it sees the close, so it may lag the client."""
    deadline = time.monotonic() + COUNT_TIMEOUT
    while True:
        count = int((await server_command(server, "count")).split()[1])
        if count == n or time.monotonic() > deadline:
            return count
        await anyio.sleep(0.05)


async def measure(setup: Setup, n: int, server: Any, trace: bool = False) -> dict[str, Any]:
    """Open n streams, measure them, close them; the child's result."""
    stream: StreamFn = {"httpx-sse": httpx_sse_stream, "httpx": httpx_stream}.get(
        setup.library, eventsource_stream
    )
    url = f"{server.base}/idle"
    clients = [shared_client()] if setup.shared else [None]
    client = clients[0]
    per_client = setup.per_client or n
    result: dict[str, Any] = {"setup": setup.label, "n": n}

    # Warm-up: one stream opened and closed first, so one-time costs (lazy
    # imports, the TLS context, the shared client's CA bundle, backend state)
    # are in the baseline and not charged to the N streams.
    warm = Group(1)
    async with anyio.create_task_group() as tg:
        tg.start_soon(stream, 0, url, warm, client)
        with anyio.move_on_after(COUNT_TIMEOUT):
            await warm.all_open.wait()
        warm.close_all()
    if warm.opened != 1:
        result["error"] = f"warm-up stream did not open: {warm.errors[:1]}"
        if client is not None:
            await client.aclose()
        return result
    await wait_server_count(server, 0)
    del warm

    gc.collect()
    baseline = rss_kib()
    result["baseline_rss_kib"] = baseline
    print(f"  [{setup.label} N={n}] baseline RSS {baseline / 1024:.1f} MiB", file=sys.stderr)

    if setup.per_client:  # made after the baseline: the streams' cost, one TLS context
        clients += [shared_client() for _ in range(1, max(1, n // setup.per_client))]
    group = Group(n)
    if trace:
        tracemalloc.start(1)
        before = tracemalloc.take_snapshot()
    async with anyio.create_task_group() as tg:
        started = time.perf_counter()
        for i in range(n):
            tg.start_soon(stream, i, url, group, clients[min(i // per_client, len(clients) - 1)])
        try:
            if trace:
                await _traced(n, group, before, result)
            else:
                await _phases(setup, n, server, group, started, baseline, result)
        except Exception as exc:  # reported as this (setup, N)'s error; the close still runs
            result.setdefault("error", f"{type(exc).__name__}: {exc}"[:200])
        closing = time.perf_counter()
        group.close_all()
        # Bounded: a stream that ignores its close would hang the run till the kill.
        with anyio.move_on_after(CLOSE_TIMEOUT) as scope:
            await group.all_ended.wait()
        if scope.cancelled_caught:
            result.setdefault("error", f"close took over {CLOSE_TIMEOUT:.0f} s")
            tg.cancel_scope.cancel()
    for each in clients:
        if each is not None:
            await each.aclose()
    result["close_s"] = time.perf_counter() - closing
    result["peak_rss_kib"] = proc_status_kib("VmHWM")
    result["server_count_after_close"] = await wait_server_count(server, 0)
    print(f"  [{setup.label} N={n}] closed in {result['close_s']:.2f} s", file=sys.stderr)
    return result


async def _phases(
    setup: Setup,
    n: int,
    server: Any,
    group: Group,
    started: float,
    baseline: int,
    result: dict[str, Any],
) -> None:
    """Open, memory, idle CPU and broadcast, in order; raise on the first failure."""
    tag = f"  [{setup.label} N={n}]"
    with anyio.move_on_after(OPEN_TIMEOUT):
        await group.all_open.wait()
    open_s = time.perf_counter() - started
    if group.failed or group.opened < n:
        reason = group.errors[0] if group.errors else f"not open after {OPEN_TIMEOUT:.0f} s"
        raise RuntimeError(f"{group.opened}/{n} opened, {group.failed} failed: {reason}")
    result["open_s"] = open_s
    count = await wait_server_count(server, n)
    result["server_count"] = count
    if count != n:
        raise RuntimeError(f"server counts {count} idle streams, not {n}")
    print(f"{tag} all open in {open_s:.2f} s", file=sys.stderr)

    gc.collect()  # garbage from the opening is not memory the streams hold
    rss_open = rss_kib()
    result["open_rss_kib"] = rss_open
    result["open_hwm_kib"] = proc_status_kib("VmHWM")
    result["kib_per_stream"] = (rss_open - baseline) / n
    print(f"{tag} {result['kib_per_stream']:.1f} KiB/stream", file=sys.stderr)

    cpu0, wall0 = time.process_time(), time.perf_counter()
    await anyio.sleep(IDLE_WINDOW)  # the idle window itself, not a poll
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    result["idle_cpu_pct"] = 100 * cpu / wall
    print(f"{tag} idle CPU {result['idle_cpu_pct']:.2f} %", file=sys.stderr)

    answer = (await server_command(server, "broadcast")).split()
    sent, stamp = int(answer[1]), int(answer[2])
    if sent != n:
        raise RuntimeError(f"server broadcast to {sent} streams, not {n}")
    with anyio.move_on_after(BROADCAST_TIMEOUT):
        await group.all_received.wait()
    if group.received < n:
        raise RuntimeError(f"broadcast reached {group.received}/{n} streams")
    latencies = [(t - stamp) / 1e6 for t in group.delivered_ns]
    result["broadcast_p50_ms"] = statistics.median(latencies)
    result["broadcast_all_ms"] = max(latencies)
    print(
        f"{tag} broadcast p50 {result['broadcast_p50_ms']:.1f} ms, "
        f"all {result['broadcast_all_ms']:.1f} ms",
        file=sys.stderr,
    )


def _package(filename: str) -> str:
    """The package (or stdlib module) a source file belongs to."""
    path = filename.replace("\\", "/")
    if "/benchmarks/" in path:
        return "benchmark harness (counters, task list)"
    if "/eventsource/" in path:
        return "eventsource/" + path.rsplit("/", 1)[1]
    for marker in ("site-packages/", "dist-packages/"):
        if marker in path:
            return path.split(marker, 1)[1].split("/", 1)[0]
    return "stdlib " + path.rsplit("/", 1)[-1]


async def _traced(n: int, group: Group, before: Any, result: dict[str, Any]) -> None:
    """Once all n are open: the memory they hold, by package and by line, per stream."""
    with anyio.move_on_after(OPEN_TIMEOUT):
        await group.all_open.wait()
    if group.opened < n:
        raise RuntimeError(f"{group.opened}/{n} opened: {group.errors[:1]}")
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    diff = after.compare_to(before, "lineno")
    by_package: dict[str, float] = {}
    lines = []
    for stat in diff:
        frame = stat.traceback[0]
        by_package[_package(frame.filename)] = (
            by_package.get(_package(frame.filename), 0) + stat.size_diff
        )
        where = f"{_package(frame.filename)}:{frame.lineno}"
        lines.append((stat.size_diff, stat.count_diff, where, frame.filename, frame.lineno))
    lines.sort(reverse=True)
    result["traced_kib_per_stream"] = sum(by_package.values()) / n / 1024
    result["by_package"] = sorted(
        ((k, v / n / 1024) for k, v in by_package.items()), key=lambda kv: -kv[1]
    )
    import linecache

    result["top_lines"] = [
        (where, size / n / 1024, count / n, linecache.getline(fn, no).strip()[:90])
        for size, count, where, fn, no in lines[:25]
    ]
    result["own_lines"] = [
        (where, size / n / 1024, count / n, linecache.getline(fn, no).strip()[:90])
        for size, count, where, fn, no in lines
        if where.startswith("eventsource/") and size / n >= 16
    ]


def breakdown(key: str, n: int) -> int:
    """Print what n streams of one setup hold, per stream, from tracemalloc."""
    setup = SETUPS[key]
    raise_fd_limit()
    with server_process() as server:
        result = anyio.run(measure, setup, n, server, True, backend=setup.backend)
    if "by_package" not in result:
        print(f"no result: {result.get('error')}")
        return 1
    rss = ""
    print(
        f"{setup.label}, N={n}: {result['traced_kib_per_stream']:.1f} KiB/stream "
        f"traced by tracemalloc (Python allocations only){rss}"
    )
    print("\nby package (allocating line), KiB per stream:")
    for package, kib in result["by_package"]:
        if abs(kib) >= 0.05:
            print(f"  {kib:6.2f}  {package}")
    print("\ntop lines: KiB per stream, blocks per stream, line")
    for where, kib, count, text in result["top_lines"]:
        print(f"  {kib:6.2f}  {count:5.1f}  {where}  {text}")
    print("\neventsource's own lines (16 bytes a stream or more):")
    for where, kib, count, text in result["own_lines"]:
        print(f"  {kib:6.2f}  {count:5.1f}  {where}  {text}")
    return 0


def child(key: str, n: int) -> dict[str, Any]:
    """One (setup, N) measurement, in this process (a fresh one)."""
    setup = SETUPS[key]
    raise_fd_limit()  # N sockets, beyond the usual soft limit of 1024
    if setup.backend == "trio":
        import trio  # noqa: F401  (before the baseline, like every other library)

    with server_process() as server:
        try:
            return anyio.run(measure, setup, n, server, backend=setup.backend)
        except BaseException as exc:  # an ExceptionGroup from a task group, say
            return {"setup": setup.label, "n": n, "error": f"{type(exc).__name__}: {exc}"[:200]}


# --------------------------------------------------------------------------- parent side


def run_child(key: str, n: int) -> dict[str, Any]:
    """Run one (setup, N) in a fresh process; its stderr (progress) passes through."""
    label = SETUPS[key].label
    print(f"{label}, N={n}", file=sys.stderr, flush=True)
    cmd = [sys.executable, "-m", "benchmarks.scale_bench", "--child", key, str(n)]
    started = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True, timeout=CHILD_TIMEOUT
        )
    except subprocess.TimeoutExpired:
        # The server it started sees its stdin close and exits by itself.
        return {"setup": label, "n": n, "error": f"killed after {CHILD_TIMEOUT:.0f} s"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if not lines:
        return {"setup": label, "n": n, "error": f"child exited {proc.returncode}, no result"}
    result: dict[str, Any] = json.loads(lines[-1])
    result["child_s"] = time.perf_counter() - started
    return result


def _short(error: str) -> str:
    return "error: " + (error if len(error) <= 40 else error[:37] + "...")


def _row(key: str, result: dict[str, Any], reference: dict[str, Any] | None) -> list[str]:
    formats = ("{:.2f}", "{:.1f}", "{:.2f}", "{:.1f}", "{:.1f}")
    cells: list[str] = []
    error = result.get("error")
    for metric, fmt in zip(METRICS, formats, strict=False):
        if metric in result:
            cells.append(fmt.format(result[metric]))
        elif error and not any(c.startswith("error") for c in cells):
            cells.append(_short(error))  # where the run stopped
        else:
            cells.append("-")
    ref = reference.get("kib_per_stream") if reference else None
    mine = result.get("kib_per_stream")
    cells.append(ratio(mine, ref) if mine is not None and ref is not None else "-")
    return [SETUPS[key].label, str(result["n"]), *cells]


def _target_note(n: int, mine: dict[str, Any] | None, ref: dict[str, Any] | None) -> str:
    """Whether the target holds at this N for eventsource (shared client)."""
    if mine is None or ref is None:
        return f"N={n}: not measured"
    m, r = mine.get("kib_per_stream"), ref.get("kib_per_stream")
    if m is None:
        return f"N={n}: does not hold (eventsource: {mine.get('error', 'no result')})"
    if r is None:
        return f"N={n}: eventsource {m:.1f} KiB/stream; httpx-sse has no result to compare"
    holds = m <= r * TARGET_SLACK
    verdict = "holds" if holds else "does not hold"
    return (
        f"N={n}: {verdict} ({m:.1f} vs {r:.1f} KiB/stream, {m / r:.2f}x; limit {TARGET_SLACK:.2f}x)"
    )


def _targets_10k(results: dict[tuple[str, int], dict[str, Any]]) -> list[str]:
    """The targets at N=10,000: open time with the default setup against bare httpx's
    in the same run, and memory per stream (every eventsource setup on asyncio)."""
    out = []
    default = results.get((DEFAULT, TARGET_N), {})
    open_s = default.get("open_s")
    bare = results.get(("httpx-own", TARGET_N), {})
    if open_s is None or not bare.get("open_s"):
        missing = default if open_s is None else bare
        out.append(
            f"Target: {TARGET_N:,} streams open within {TARGET_OPEN_VS_BARE:g}x bare httpx's "
            f"time (default setup): no result ({missing.get('error', 'not run')})"
        )
    else:
        times = open_s / bare["open_s"]
        verdict = "met" if times <= TARGET_OPEN_VS_BARE else "NOT met"
        out.append(
            f"Target: {TARGET_N:,} streams open within {TARGET_OPEN_VS_BARE:g}x bare httpx's "
            f"time with the default setup ({SETUPS[DEFAULT].label}): {open_s:.2f} s against "
            f"{bare['open_s']:.2f} s (bare httpx with a client each, no SSE, "
            f"{bare.get('kib_per_stream', 0):.1f} KiB/stream): {times:.2f}x, {verdict}."
        )
    for key in ("es-own", "es-shared", "es-100"):
        kib = results.get((key, TARGET_N), {}).get("kib_per_stream")
        if kib is not None:
            verdict = "met" if kib <= TARGET_KIB else "NOT met"
            out.append(
                f"Target: memory per stream <= {TARGET_KIB:g} KiB at N={TARGET_N:,}, "
                f"{SETUPS[key].label}: {kib:.1f} KiB, {verdict}."
            )
    return out


def run(quick: bool = False, ns: tuple[int, ...] | None = None) -> list[Table]:
    """Measure every setup at every N (each in its own process); one table."""
    if ns is None:
        ns = QUICK_NS if quick else FULL_NS
    results: dict[tuple[str, int], dict[str, Any]] = {}
    for n in ns:
        for key in ORDER:
            results[key, n] = run_child(key, n)

    table = Table(TITLE, HEADERS, numeric_from=1)
    errors: list[str] = []
    closes: list[str] = []
    for n in ns:
        reference = results.get((REFERENCE, n))
        for key in ORDER:
            result = results[key, n]
            table.rows.append(_row(key, result, reference))
            if "error" in result:
                errors.append(f"{SETUPS[key].label}, N={n}: {result['error']}")
            if "close_s" in result:
                closes.append(
                    f"{key} N={n}: {result['close_s']:.2f} s / "
                    f"{result['peak_rss_kib'] / 1024:.0f} MiB"
                )

    table.notes += [f"{SETUPS[k].label}: {SETUPS[k].description}." for k in ORDER]
    table.notes += [
        "Each (client, N) runs in a fresh process that starts the loopback server in "
        "another process; one warm-up stream is opened and closed before the baseline.",
        "open all s: from starting N tasks until every stream has its response head "
        "(and the server counts N). KiB/stream: (VmRSS with all open - VmRSS before "
        "opening) / N, both after gc.collect(). idle CPU %: process CPU time over a "
        f"{IDLE_WINDOW:.0f} s idle window, % of one core.",
        "broadcast: one event written by the server to all N streams; from the server's "
        "CLOCK_MONOTONIC stamp (taken before the first write) to each delivery to user "
        "code (`async for` body): median and last.",
        "close time / peak RSS (VmHWM): " + ("; ".join(closes) if closes else "none"),
        "Target: 10,000 concurrent streams open in one process, memory per stream no "
        "more than httpx-sse's + 10% (eventsource, shared client):",
    ]
    table.notes += [
        "  " + _target_note(n, results.get((SUBJECT, n)), results.get((REFERENCE, n))) for n in ns
    ]
    big = results.get((SUBJECT, TARGET_N))
    if big is None:
        table.notes.append(f"  {TARGET_N:,} streams: not run (N={TARGET_N} not selected)")
    else:
        opened = "open_s" in big
        table.notes.append(f"  {TARGET_N:,} streams open: {'yes' if opened else 'no'}")
        table.notes += _targets_10k(results)
    table.notes += [f"Error: {e}" for e in errors]
    return [table]


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help=f"N in {QUICK_NS} only")
    ap.add_argument("--n", help="comma-separated stream counts, e.g. 100,1000")
    ap.add_argument("--markdown", metavar="FILE", help="also write the table as Markdown")
    ap.add_argument(
        "--child", nargs=2, metavar=("SETUP", "N"), help=f"internal: one run ({', '.join(ORDER)})"
    )
    ap.add_argument(
        "--breakdown",
        nargs=2,
        metavar=("SETUP", "N"),
        help="what N streams of SETUP hold, from tracemalloc, by package and line",
    )
    args = ap.parse_args(argv)

    if args.breakdown:
        return breakdown(args.breakdown[0], int(args.breakdown[1]))
    if args.child:
        key, n = args.child[0], int(args.child[1])
        if key not in SETUPS:
            ap.error(f"unknown setup {key!r}; one of {', '.join(ORDER)}")
        print(json.dumps(child(key, n)), flush=True)
        return 0

    ns = tuple(int(x) for x in args.n.split(",")) if args.n else None
    started = time.perf_counter()
    tables = run(quick=args.quick, ns=ns)
    print(f"total {time.perf_counter() - started:.0f} s", file=sys.stderr)
    for table in tables:
        print(table.text())
        print()
    if args.markdown:
        dists = ["eventsource-client", "httpx", "httpcore", "anyio", "trio", "httpx-sse"]
        write_markdown(args.markdown, tables, dists)
        print(f"wrote {args.markdown}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
