# ruff: noqa
"""Races against the TLS check (_probe), on loopback only.

One hostile server: every plain request is hung up on; each ClientHello (the
check) gets, by the server's mode: a TLS alert (after a random delay), a stall,
one byte "\\x16" then a stall, garbage, "\\x16\\x03" then a hang-up, an HTTP
400, or a hang-up. Sources run one at a time so that the server's count of
checks (connections whose first byte is 0x16) is that source's.

sync:  a thread calls close() or restart() at a random moment (0..40 ms).
async: asyncio / trio: move_on_after(random) around __anext__, then go on
       iterating (with a bound); or close() from another thread.
Checked per source: the iteration ends within the bound, on_close exactly once
(after the end), only eventsource's errors escape, at most one check per
source, no unraisable exception / ResourceWarning.

Usage: python breaker/stress_probe.py sync|asyncio|trio N
"""

import gc
import random
import socket
import sys
import threading
import time
import warnings

import anyio

import eventsource
from eventsource import EventSource

MODES = ["alert", "stall", "dribble", "garbage", "tls-then-hangup", "http400", "hangup"]
mode = "alert"
probes = 0
plain = 0
lock = threading.Lock()
unraisable: list = []
sys.unraisablehook = lambda u: unraisable.append((u.exc_type, str(u.exc_value)[:100], u.object))
warnings.simplefilter("always")
caught_warnings: list = []
warnings.showwarning = lambda *a, **k: caught_warnings.append(str(a[0])[:120])


def handle(s: socket.socket) -> bool:
    global probes, plain
    checked = False
    s.settimeout(3)
    try:
        first = s.recv(1, socket.MSG_PEEK)
        if first != b"\x16":
            with lock:
                plain += 1
            s.recv(65536)
            return
        with lock:
            probes += 1
        checked = True
        s.recv(65536)
        m = mode
        if m == "alert":
            time.sleep(random.random() * 0.03)
            s.sendall(b"\x15\x03\x03\x00\x02\x02\x28")
        elif m == "stall":
            s.recv(1)  # until the client goes (or 3 s)
        elif m == "dribble":
            s.sendall(b"\x16")
            s.recv(1)  # until the client goes (or 3 s)
        elif m == "garbage":
            s.sendall(b"\x00\xff garbage")
        elif m == "tls-then-hangup":
            s.sendall(b"\x16\x03")
        elif m == "http400":
            s.sendall(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
    except OSError:
        pass
    finally:
        s.close()
    return checked


class Listener:
    """A fresh port per source, so that a late-handled connection of the last
    source is never counted for this one."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=256)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/"
        self.threads: list = []
        self.checks = 0
        self.acceptor = threading.Thread(target=self.accept, daemon=True)
        self.acceptor.start()

    def accept(self) -> None:
        while True:
            try:
                s, _ = self.sock.accept()
            except OSError:
                return
            t = threading.Thread(target=self.one, args=(s,), daemon=True)
            self.threads.append(t)
            t.start()

    def one(self, s) -> None:
        if handle(s):
            with lock:
                self.checks += 1

    def close(self) -> int:
        """The checks this port saw (its handlers joined)."""
        time.sleep(0.02)  # connections the kernel accepted, not yet handed over
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.acceptor.join(5)
        for t in self.threads:
            t.join(5)
        return self.checks


BOUND = 6.0  # the check's 2 s, a retry's delay, close at 40 ms: far under this

problems: list = []
outcomes: dict = {}


def check(i, took, closes, escaped, port):
    checks = port.close()
    if took > BOUND:
        problems.append((i, mode, "took", took))
    if closes != 1:
        problems.append((i, mode, "on_close", closes))
    if escaped is not None and not isinstance(escaped, eventsource.EventSourceError):
        problems.append((i, mode, "escaped", repr(escaped)))
    if checks > 1:
        problems.append((i, mode, "checks", checks))
    key = (mode, type(escaped).__name__ if escaped is not None else "end")
    outcomes[key] = outcomes.get(key, 0) + 1


def run_sync(i: int) -> None:
    closes = []
    port = Listener()
    src = EventSource(
        port.url,
        retry=0.01,
        min_retry_delay=0.01,
        max_retries=3,
        on_close=lambda: closes.append(1),
    )
    action = random.choice(["close", "restart", "restart-close", "none"])
    at = random.random() * 0.04

    def other():
        time.sleep(at)
        if action in ("restart", "restart-close"):
            src.restart()
        if action in ("close", "restart-close"):
            time.sleep(at / 2)
            src.close()

    t = threading.Thread(target=other)
    start = time.monotonic()
    t.start()
    escaped = None
    try:
        for _ in src:
            pass
    except BaseException as exc:
        escaped = exc
    t.join()
    took = time.monotonic() - start
    time.sleep(0.001)
    check(i, took, len(closes), escaped, port)


async def run_async(i: int) -> None:
    closes = []
    port = Listener()
    src = EventSource(
        port.url,
        retry=0.01,
        min_retry_delay=0.01,
        max_retries=3,
        on_close=lambda: closes.append(1),
    )
    action = random.choice(["cancel", "thread-close", "none"])
    start = time.monotonic()
    escaped = None
    try:
        with anyio.fail_after(BOUND):
            if action == "thread-close":
                at = random.random() * 0.04
                threading.Timer(at, src.close).start()
            while True:
                if action == "cancel" and random.random() < 0.7:
                    with anyio.move_on_after(random.random() * 0.03):
                        await src.__anext__()
                else:
                    await src.__anext__()
    except StopAsyncIteration:
        pass
    except BaseException as exc:
        escaped = exc
    finally:
        await src.aclose()
    took = time.monotonic() - start
    check(i, took, len(closes), escaped, port)


def main() -> None:
    global mode
    kind, n = sys.argv[1], int(sys.argv[2])
    sys.setswitchinterval(1e-6)
    t0 = time.monotonic()
    if kind == "sync":
        for i in range(n):
            mode = random.choice(MODES)
            run_sync(i)
    else:

        async def all_():
            global mode
            for i in range(n):
                mode = random.choice(MODES)
                await run_async(i)

        anyio.run(all_, backend=kind)
    gc.collect()
    time.sleep(0.1)
    gc.collect()
    print(
        kind,
        n,
        "iterations in %.1f s; checks %d, plain %d" % (time.monotonic() - t0, probes, plain),
    )
    print("outcomes:", sorted(outcomes.items()))
    print("problems:", problems[:20], len(problems))
    print("unraisable:", unraisable[:5], len(unraisable))
    print("warnings:", caught_warnings[:5], len(caught_warnings))


main()
