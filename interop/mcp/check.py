"""eventsource against the official MCP TypeScript SDK's Streamable HTTP server.

Starts server.mjs (node, on 127.0.0.1, a free port), then in each mode (sync,
asyncio, trio) opens a session and calls the tool `ticker` by POST as an SSE
stream through `EventSource`. The server closes the call's stream after the
third of ten progress notifications (SEP-1699: the client resumes by GET with
Last-Event-ID, never by re-sending the POST). Asserted, per mode: the
tools/call POST was sent exactly once, progress 1..10 arrived once each and in
order, the call's result arrived once, and the stream was resumed by GET with
the id of the last event received. Then examples/mcp_tool_call.py runs against
the same server, with the same assertions on its output.

    python interop/mcp/check.py [--modes sync,asyncio,trio,example] [--interval-ms 30]

Run by interop/mcp/run (which installs the SDK with `npm ci` first). Exits 1
if any mode fails. Only loopback traffic: the environment's proxies are dropped.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

for _name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
    os.environ.pop(_name, None)  # 127.0.0.1 only, never through a proxy

import anyio  # noqa: E402
import httpx  # noqa: E402

import eventsource  # noqa: E402
from eventsource import EventSource, ServerSentEvent, parse  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
PROTOCOL_VERSION = "2025-11-25"  # the first with priming events and SEP-1699
TICKS = 10
CALL_ID = 2
TIMEOUT = 10.0
ACCEPT = "application/json, text/event-stream"


# --- the server ----------------------------------------------------------------------------


class NodeServer:
    """server.mjs in a subprocess; its first stdout line is the port."""

    def __init__(self, interval_ms: int) -> None:
        self.stderr_path = HERE / "server.stderr.log"
        self._stderr = open(self.stderr_path, "w")  # noqa: SIM115 (closed in stop())
        self.process = subprocess.Popen(
            ["node", str(HERE / "server.mjs"), "0"],
            cwd=HERE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env={**os.environ, "INTERVAL_MS": str(interval_ms)},
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        if not line.isdigit():
            self.stop()
            raise RuntimeError(f"server.mjs did not print its port: {line!r}\n{self.log()}")
        self.base = f"http://127.0.0.1:{line}"
        self.url = f"{self.base}/mcp"

    def stats(self) -> dict[str, list[dict[str, Any]]]:
        """The server's log: "requests" (every HTTP request to /mcp, in
        order) and "closes" (every SSE stream the tool closed)."""
        with httpx.Client(trust_env=False) as client:
            return client.get(f"{self.base}/stats").json()  # type: ignore[no-any-return]

    def log(self) -> str:
        return self.stderr_path.read_text() if self.stderr_path.exists() else ""

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._stderr.close()


# --- the MCP messages ----------------------------------------------------------------------

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": PROTOCOL_VERSION,
        "capabilities": {},
        "clientInfo": {"name": "eventsource-interop", "version": eventsource.__version__},
    },
}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}
CALL = {
    "jsonrpc": "2.0",
    "id": CALL_ID,
    "method": "tools/call",
    "params": {"name": "ticker", "arguments": {}, "_meta": {"progressToken": "ticker-1"}},
}


def message(event: ServerSentEvent) -> dict[str, Any] | None:
    """The JSON-RPC message an event carries; None for the priming event
    (`id:`, `retry:` and an empty `data:`, which dispatches an event with data "")."""
    if not event.data:
        return None
    value = json.loads(event.data)
    return value if isinstance(value, dict) else None


def is_result(event: ServerSentEvent) -> bool:
    msg = message(event)
    return msg is not None and msg.get("id") == CALL_ID and ("result" in msg or "error" in msg)


def initialize_result(response: httpx.Response) -> tuple[str, str]:
    """The session id and the negotiated protocol version of an initialize
    response (JSON, or an event stream holding the result)."""
    response.raise_for_status()
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        messages = [m for m in map(message, parse(response.content)) if m is not None]
        [result] = [m for m in messages if m.get("id") == INITIALIZE["id"]]
    else:
        result = response.json()
    return response.headers["mcp-session-id"], result["result"]["protocolVersion"]


def session_headers(session_id: str, version: str) -> dict[str, str]:
    return {"Accept": ACCEPT, "Mcp-Session-Id": session_id, "MCP-Protocol-Version": version}


# --- one tool call per mode -----------------------------------------------------------------


def call_sync(url: str) -> list[ServerSentEvent]:
    with httpx.Client(trust_env=False, timeout=TIMEOUT) as client:
        sid, version = initialize_result(
            client.post(url, json=INITIALIZE, headers={"Accept": ACCEPT})
        )
        headers = session_headers(sid, version)
        client.post(url, json=INITIALIZED, headers=headers).raise_for_status()
        source = EventSource(url, method="POST", json=CALL, headers=headers)
        try:
            return source.collect(timeout=TIMEOUT, until=is_result)
        finally:
            client.delete(url, headers=headers)


async def call_async(url: str) -> list[ServerSentEvent]:
    async with httpx.AsyncClient(trust_env=False, timeout=TIMEOUT) as client:
        sid, version = initialize_result(
            await client.post(url, json=INITIALIZE, headers={"Accept": ACCEPT})
        )
        headers = session_headers(sid, version)
        (await client.post(url, json=INITIALIZED, headers=headers)).raise_for_status()
        source = EventSource(url, method="POST", json=CALL, headers=headers)
        try:
            return await source.acollect(timeout=TIMEOUT, until=is_result)
        finally:
            await client.delete(url, headers=headers)


def run_example(url: str) -> list[ServerSentEvent]:
    """examples/mcp_tool_call.py in a subprocess; its output lines
    `progress N/10: ...` and `result: {...}` stand for the events."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "mcp_tool_call.py"), url],
        capture_output=True,
        text=True,
        timeout=TIMEOUT + 5,
    )
    print(f"  example exit {done.returncode}; its output:")
    for line in (done.stdout + done.stderr).splitlines():
        print(f"    | {line}")
    events = []
    for line in done.stdout.splitlines():
        if line.startswith("progress "):
            progress = int(line.split()[1].split("/")[0])
            note = {"method": "notifications/progress", "params": {"progress": progress}}
            events.append(ServerSentEvent(data=json.dumps(note)))
        elif line.startswith("result: "):
            result = {"jsonrpc": "2.0", "id": CALL_ID, "result": json.loads(line[8:])}
            events.append(ServerSentEvent(data=json.dumps(result)))
    if done.returncode != 0:
        events.append(ServerSentEvent(type="example-failed", data=""))
    return events


MODES: dict[str, Callable[[str], list[ServerSentEvent]]] = {
    "sync": call_sync,
    "asyncio": lambda url: anyio.run(call_async, url, backend="asyncio"),
    "trio": lambda url: anyio.run(call_async, url, backend="trio"),
    "example": run_example,
}


# --- the assertions -------------------------------------------------------------------------


def check(name: str, server: NodeServer) -> bool:
    before = len(server.stats()["requests"])
    started = time.monotonic()
    error: BaseException | None = None
    try:
        events = MODES[name](server.url)
    except Exception as exc:  # reported as a failure of this mode
        events, error = [], exc
    elapsed = time.monotonic() - started
    time.sleep(0.1)  # the DELETE's log entry
    stats = server.stats()
    requests = stats["requests"][before:]
    sessions = {r["session"] for r in requests}
    closes = [c for c in stats["closes"] if c["session"] in sessions]

    messages = [m for m in map(message, events) if m is not None]
    progress = [
        m["params"]["progress"] for m in messages if m.get("method") == "notifications/progress"
    ]
    results = [m for m in messages if m.get("id") == CALL_ID]
    posts = [r for r in requests if r["method"] == "POST" and "tools/call" in r["rpc"]]
    resumes = [r for r in requests if r["method"] == "GET" and r["lastEventId"]]
    other_gets = [r for r in requests if r["method"] == "GET" and not r["lastEventId"]]
    # The last event received on the POST's stream is tick 3 (the server closes it then).
    tick3 = [e.id for e in events if (m := message(e)) and m.get("params", {}).get("progress") == 3]
    failures = []
    if error is not None:
        failures.append(f"raised {type(error).__name__}: {error}")
    if any(e.type == "example-failed" for e in events):
        failures.append("the example exited non-zero")
    if len(posts) != 1:
        failures.append(f"tools/call was POSTed {len(posts)} times, not once")
    if progress != list(range(1, TICKS + 1)):
        failures.append(f"progress arrived as {progress}, not 1..{TICKS} once each")
    if len(results) != 1:
        failures.append(f"{len(results)} results for the call, not 1")
    if not resumes:
        failures.append("no GET with Last-Event-ID: the stream was not resumed")
    # The resume waits the priming event's `retry: 200` (not the 3 s default).
    delay = resumes[0]["at"] - closes[0]["at"] if resumes and closes else None
    if not closes:
        failures.append("the server closed no stream (no closeSSEStream?)")
    elif delay is not None and not 180 <= delay < 2000:
        failures.append(f"the resume came {delay} ms after the close, not after retry: 200")
    if other_gets:
        failures.append(f"{len(other_gets)} GETs without Last-Event-ID")
    if name != "example" and resumes and tick3 and resumes[0]["lastEventId"] != tick3[0]:
        failures.append(
            f"the resume sent Last-Event-ID {resumes[0]['lastEventId']!r},"
            f" not tick 3's {tick3[0]!r}"
        )
    if any(r["status"] not in (200, 202, None) for r in requests):
        statuses = [(r["method"], r["rpc"], r["status"]) for r in requests]
        failures.append(f"a request was refused: {statuses}")

    counts: dict[str, int] = {}
    for r in requests:
        key = " ".join([r["method"], *r["rpc"], *(["+Last-Event-ID"] if r["lastEventId"] else [])])
        counts[key] = counts.get(key, 0) + 1
    print(f"[{name}] {'ok' if not failures else 'FAILED'} in {elapsed:.2f}s")
    print(f"  requests: {', '.join(f'{k} x{v}' for k, v in counts.items())}")
    print(f"  events: {len(events)} ({len(events) - len(messages)} without JSON: priming)")
    shown = progress if len(progress) <= 20 else progress[:20] + ["..."]
    print(f"  progress: {shown}; results: {len(results)}")
    if delay is not None:
        print(f"  resumed by GET {delay} ms after the server closed the stream (retry: 200)")
    if results:
        print(f"  result: {json.dumps(results[0].get('result', results[0].get('error')))}")
    for failure in failures:
        print(f"  FAIL: {failure}")
    return not failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated: %(default)s")
    parser.add_argument(
        "--interval-ms",
        type=int,
        default=30,
        help="between ticks (%(default)s); 5: the call ends before the resume, which replays",
    )
    args = parser.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    unknown = set(modes) - set(MODES)
    if unknown:
        parser.error(f"unknown modes: {sorted(unknown)}")
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    sdk = json.loads(
        (HERE / "node_modules" / "@modelcontextprotocol" / "sdk" / "package.json").read_text()
    )["version"]
    print(
        f"eventsource {eventsource.__version__} ({Path(eventsource.__file__).parent}), "
        f"Python {sys.version.split()[0]}, httpx {httpx.__version__}; "
        f"node {node}, @modelcontextprotocol/sdk {sdk}"
    )
    server = NodeServer(args.interval_ms)
    try:
        print(f"server: {server.url}, ticks {args.interval_ms} ms apart")
        ok = [check(name, server) for name in modes]
    finally:
        server.stop()
    print(f"{sum(ok)} passed, {len(ok) - sum(ok)} failed")
    return 0 if all(ok) else 1


if __name__ == "__main__":
    sys.exit(main())
