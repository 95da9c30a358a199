"""`python -m eventsource --demo`.

A chat answer streamed from an embedded loopback server, with one forced
disconnect that the client rides out.

The server is the testing toolkit's SSEServer on 127.0.0.1, so the demo needs
no network. A thread plays the answer into the server's history with small
pauses, so the stream is seen to flow; the first connection is cut in the
middle of event 6 (drop_mid_event), and the client, told by the first event's
``retry:`` to come back after 0.3 s, resumes with Last-Event-ID. The client
side is the command line's own (`eventsource -v URL`), in the pretty format.
"""

from __future__ import annotations

import json
import sys
import threading
from typing import Any, TextIO

from ..testing import SSEServer
from ._output import Printer
from ._session import Session

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
RETRY_MS = 300  # the reconnection time the stream asks for
PACE = 0.04  # seconds between events, so the stream is seen to flow
TIMEOUT = 20.0  # seconds: a demo that takes longer has failed


def _play(server: SSEServer, stop: threading.Event) -> None:
    """Send the script, one event every PACE seconds, once the client is there."""
    try:
        server.wait_for_connections(1, timeout=TIMEOUT)
    except TimeoutError:
        return
    for index, (event, data) in enumerate(SCRIPT):
        retry = RETRY_MS if index == 0 else None
        server.send(data, event=event, id=str(index + 1), retry=retry)
        if stop.wait(PACE):
            return


def run_demo(out: TextIO | None = None) -> int:
    """Run the demo.

    Return the process exit code (0: every event arrived once and in order, and
    the answer is whole).
    """
    out = sys.stdout if out is None else out
    stop = threading.Event()
    with SSEServer() as server:
        server.drop_mid_event(DROP_AFTER)
        url = f"http://127.0.0.1:{server.port}/chat"
        print(f"eventsource demo: a chat answer from {url}", file=out)
        print(
            "(the server hangs up once mid-answer; the client resumes it)\n", file=out, flush=True
        )
        player = threading.Thread(target=_play, args=(server, stop), daemon=True)
        player.start()
        session = Session(
            url,
            printer=Printer.for_stream(out, "pretty"),
            err=out,
            verbose=True,
            show_headers=False,
            max_events=len(SCRIPT),
            timeout=TIMEOUT,
        )
        try:
            code = session.run()
        finally:
            stop.set()
            player.join()
        connections = len(server.connections)
    events = session.events
    ids = [event.id for event in events]
    in_order = ids == [str(n) for n in range(1, len(SCRIPT) + 1)]
    answer = "".join(json.loads(e.data)["content"] for e in events if e.type == "chunk")
    print(f"\nanswer: {answer}", file=out)
    print(
        f"{len(events)} events over {connections} connections; "
        f"ids {ids[0] if ids else '-'}..{ids[-1] if ids else '-'}, "
        f"none lost or repeated: {in_order}",
        file=out,
        flush=True,
    )
    return 0 if code == 0 and in_order and answer == ANSWER else 1
