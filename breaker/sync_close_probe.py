# ruff: noqa
"""Sync: close() from another thread while the probe connects / waits.
mode 'stall': the probe is accepted, never answered.
mode 'backlog': the probe's connect cannot complete (the listener's accept queue is full)."""

import socket, threading, sys, time
import eventsource
from eventsource import EventSource

mode = sys.argv[1]
lst = socket.create_server(("127.0.0.1", 0), backlog=0)
port = lst.getsockname()[1]
probe_seen = threading.Event()
plain_done = threading.Event()
fillers = []


def serve():
    s, _ = lst.accept()  # the plain request
    s.recv(1000)
    if mode == "backlog":
        # fill the accept queue before hanging up, so the probe's SYN is dropped
        for _ in range(4):
            f = socket.socket()
            f.setblocking(False)
            try:
                f.connect(("127.0.0.1", port))
            except BlockingIOError:
                pass
            fillers.append(f)
        time.sleep(0.2)
    s.close()
    plain_done.set()
    if mode == "stall":
        p, _ = lst.accept()
        probe_seen.set()
        time.sleep(10)


threading.Thread(target=serve, daemon=True).start()

closed = []
src = EventSource(
    f"http://127.0.0.1:{port}/", retry=0.1, min_retry_delay=0.1, on_close=lambda: closed.append(1)
)


def closer():
    if mode == "stall":
        probe_seen.wait(5)
    else:
        plain_done.wait(5)
        time.sleep(0.3)
    global t0
    t0 = time.monotonic()
    src.close()


t0 = None
threading.Thread(target=closer, daemon=True).start()
start = time.monotonic()
try:
    for ev in src:
        print("event", ev)
except eventsource.EventSourceError as e:
    print("raised", type(e).__name__, e)
end = time.monotonic()
print(
    mode,
    "iteration ended %.2f s after close(); total %.2f s; on_close %d"
    % (end - t0, end - start, len(closed)),
)
