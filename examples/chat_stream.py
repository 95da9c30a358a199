"""A chat client for a streaming LLM endpoint, in the seed's event vocabulary.

The server sends `typing`, then `chunk` events that build the answer, a final
`message`, and `done`; an `error` event carries a failure. This client shows
the answer as it grows and returns the final message.

    python examples/chat_stream.py            # against a tiny built-in server
    python examples/chat_stream.py URL        # against your own endpoint
"""

from __future__ import annotations

import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import anyio
import httpx

from eventsource import EventSource, format_event


class ChatError(Exception):
    """The server reported an error event."""


async def stream_answer(
    url: str, question: str, *, client: httpx.AsyncClient | None = None, echo: bool = True
) -> dict[str, Any]:
    """POST the question, stream the answer, return the final message."""
    answer: list[str] = []
    final: dict[str, Any] = {}
    source = EventSource(url, method="POST", json={"question": question}, client=client)
    async with source:
        async for event in source:
            if event.type == "typing" and echo:
                print("assistant is typing…", file=sys.stderr)
            elif event.type == "chunk":
                answer.append(event.json()["content"])
                if echo:
                    print(event.json()["content"], end="", flush=True)
            elif event.type == "message":
                final = event.json()
            elif event.type == "error":
                raise ChatError(event.json().get("message", "unknown error"))
            elif event.type == "done":
                break  # leaving the loop inside `async with` closes the connection
    if echo:
        print()
    final.setdefault("content", "".join(answer))
    return final


class _TinyChatServer(BaseHTTPRequestHandler):
    """Answers every POST with a canned streamed reply."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        reply = ["Hello, ", "how can ", "I help?"]
        blocks = [format_event({"isTyping": True}, event="typing")]
        blocks += [format_event({"content": part}, event="chunk") for part in reply]
        blocks.append(
            format_event({"role": "assistant", "content": "".join(reply)}, event="message")
        )
        blocks.append(format_event({}, event="done"))
        for block in blocks:
            self.wfile.write(block)
            self.wfile.flush()

    def log_message(self, *args: Any) -> None:
        pass


def main() -> None:
    if len(sys.argv) > 1:
        print(anyio.run(stream_answer, sys.argv[1], "Hi!"))
        return
    server = ThreadingHTTPServer(("127.0.0.1", 0), _TinyChatServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/chat"
        print(anyio.run(stream_answer, url, "Hi!"))
    finally:
        server.shutdown()
        server.server_close()


if __name__ == "__main__":
    main()
