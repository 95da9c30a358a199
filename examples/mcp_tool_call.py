"""An MCP tool call with progress, over MCP's Streamable HTTP transport.

The client opens a session (initialize), then POSTs `tools/call` with a
progress token and reads the answer as an event stream: progress
notifications, then the call's result. A server may close that stream early
(spec 2025-11-25, "Resumability and Redelivery"): the source then resumes it
by GET to the same URL with `Last-Event-ID` (and the session's headers),
after the server's `retry:`. The POST is sent once: the tool runs once.

    node interop/mcp/server.mjs 3000          # the interop server (npm ci there first)
    python examples/mcp_tool_call.py          # http://127.0.0.1:3000/mcp, tool "ticker"
    python examples/mcp_tool_call.py URL [TOOL]
"""

from __future__ import annotations

import json
import sys
from typing import Any

import anyio
import httpx

from eventsource import EventSource, parse

ACCEPT = "application/json, text/event-stream"  # what MCP asks of a client
PROTOCOL_VERSION = "2025-11-25"


def rpc_answer(response: httpx.Response) -> dict[str, Any]:
    """The JSON-RPC answer of a POST: a JSON body, or the first message of an
    event stream (an answer that came as a short stream)."""
    response.raise_for_status()
    if response.headers["content-type"].startswith("application/json"):
        answer: dict[str, Any] = response.json()
        return answer
    for event in parse(response.content):
        if event.data:  # skip a priming event (an id, a retry, empty data)
            answer = event.json()
            return answer
    raise ValueError("no answer in the stream")


async def call_tool(url: str, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """Call the tool, print its progress, return its result."""
    async with httpx.AsyncClient() as client:
        # 1. The session: initialize, then notifications/initialized.
        initialize = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "eventsource-example", "version": "1.0"},
            },
        }
        response = await client.post(url, json=initialize, headers={"Accept": ACCEPT})
        version = rpc_answer(response)["result"]["protocolVersion"]
        headers = {"Accept": ACCEPT, "MCP-Protocol-Version": version}
        if "mcp-session-id" in response.headers:  # a stateful server
            headers["Mcp-Session-Id"] = response.headers["mcp-session-id"]
        initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        (await client.post(url, json=initialized, headers=headers)).raise_for_status()

        # 2. The call, POSTed once; its answer streams (and resumes by GET).
        call = {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {"name": tool, "arguments": arguments, "_meta": {"progressToken": 1}},
        }
        try:
            async with EventSource(url, method="POST", json=call, headers=headers) as source:
                async for event in source:
                    if not event.data:
                        continue  # a priming event: an id to resume from, no message
                    message = event.json()
                    if message.get("method") == "notifications/progress":
                        p = message["params"]
                        print(f"progress {p['progress']}/{p.get('total', '?')}: {p.get('message')}")
                    elif message.get("id") == call["id"]:
                        if "error" in message:
                            raise RuntimeError(f"tool error: {message['error']}")
                        result: dict[str, Any] = message["result"]
                        return result  # leaving the `async with` closes the stream
            raise RuntimeError("the stream ended without the call's result")
        finally:
            await client.delete(url, headers=headers)  # end the session


def main() -> None:
    url = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:3000/mcp"
    tool = sys.argv[2] if len(sys.argv) > 2 else "ticker"
    result = anyio.run(call_tool, url, tool, {})
    print(f"result: {json.dumps(result)}")


if __name__ == "__main__":
    main()
