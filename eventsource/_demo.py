"""`python -m eventsource --demo`: a chat answer streamed from an embedded
loopback server, with one forced disconnect that the client rides out.

Everything runs on 127.0.0.1 with the standard library's HTTP server, so the
demo needs no network and nothing beyond the package's own dependencies.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TextIO

from ._encoder import format_event
from ._event import ServerSentEvent
from ._source import EventSource

ANSWER = "Server-Sent Events stream text from server to client over plain HTTP."
# Each reply event, as the seed's chat endpoint sends them.
SCRIPT: list[tuple[str, Any]] = [("typing", {"isTyping": True})]
SCRIPT += [("chunk", {"content": word + " "}) for word in ANSWER.split(" ")[:-1]]
SCRIPT += [("chunk", {"content": ANSWER.split(" ")[-1]})]
SCRIPT += [
    ("message", {"id": "msg-1", "role": "assistant", "content": ANSWER}),
    ("done", {}),
]
DROP_AFTER = 5  # the first connection hangs up in the middle of event 6
PACE = 0.04  # seconds between events, so the stream is seen to flow


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _DemoServer

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        start = int(self.headers.get("Last-Event-ID") or 0)
        self.server.connections += 1
        first = self.server.connections == 1
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("X-Accel-Buffering", "no")
        self.send_header("Connection", "close")
        self.end_headers()
        try:
            if start == 0:
                self._write(format_event(retry=300))  # reconnect after 0.3 s
            for index in range(start, len(SCRIPT)):
                event, data = SCRIPT[index]
                block = format_event(data, event=event, id=str(index + 1))
                if first and index == DROP_AFTER:
                    self._write(block[: len(block) // 2])  # half an event, then gone
                    return
                self._write(block)
                if self.server.stopping.wait(PACE):
                    return
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _write(self, data: bytes) -> None:
        self.wfile.write(data)
        self.wfile.flush()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the demo prints the client's side only


class _DemoServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.connections = 0
        self.stopping = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/chat"


class _ConnectionLines(logging.Handler):
    """Shows the client's connection life (the eventsource logger) inline."""

    def __init__(self, out: TextIO) -> None:
        super().__init__(logging.INFO)
        self.out = out

    def emit(self, record: logging.LogRecord) -> None:
        print(f"  · {record.getMessage()}", file=self.out, flush=True)


def run_demo(out: TextIO = sys.stdout) -> int:
    """Run the demo; return the process exit code (0: all events, in order)."""
    server = _DemoServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    logger = logging.getLogger("eventsource")
    handler = _ConnectionLines(out)
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    events: list[ServerSentEvent] = []
    answer: list[str] = []
    try:
        print(f"eventsource demo: a chat answer from {server.url}", file=out)
        print("(the server hangs up once mid-answer; the client resumes it)\n", file=out)

        def on_message(event: ServerSentEvent) -> None:
            events.append(event)
            print(f"  {event.type:<8} id={event.id:<3} {event.data}", file=out, flush=True)
            if event.type == "chunk":
                answer.append(json.loads(event.data)["content"])
            elif event.type == "done":
                source.close()

        source = EventSource(server.url, on_message=on_message, read_timeout=10)
        source.run()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        server.stopping.set()
        server.shutdown()
        server.server_close()
    ids = [int(event.id) for event in events]
    text = "".join(answer)
    print(f"\nanswer: {text}", file=out)
    print(
        f"{len(events)} events over {server.connections} connections; "
        f"ids {ids[0]}..{ids[-1]}, none lost or repeated: {ids == list(range(1, len(SCRIPT) + 1))}",
        file=out,
    )
    return 0 if ids == list(range(1, len(SCRIPT) + 1)) and text == ANSWER else 1
