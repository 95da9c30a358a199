# ruff: noqa
"""eventsource.testing.SSEServer: a held first request dropped (no answer)
before the source ever opened. The TLS check then sends a ClientHello to the
test server: what do its records show?"""

import threading
import time

from eventsource import EventSource
from eventsource.testing import SSEServer

with SSEServer() as server:
    server.hold()
    server.send("a")
    src = EventSource(server.url, retry=0.05, min_retry_delay=0.05)
    got = []

    def run():
        got.extend(src.collect(n=1, timeout=5))

    t = threading.Thread(target=run)
    t.start()
    deadline = time.monotonic() + 3
    while not server.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    server.drop()
    t.join(6)
    print("events:", [e.data for e in got])
    print("requests:", [(r.method, r.path) for r in server.requests])
    print(
        "connections:",
        [
            (c.request.method if c.request else None, getattr(c, "status", None), c.tcp_index)
            for c in server.connections
        ],
    )
