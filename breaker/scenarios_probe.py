# ruff: noqa
"""One-shot scenarios against the TLS check, loopback only (127.0.0.1, ::1):
- a server that drops the first N connections (the check among them) then
  serves: the source opens and streams, one check;
- a server that alternates hang-up / serve;
- [::1] with a TLS server that hangs up on plain HTTP (sync and async);
- http:// redirected (302) to another port that speaks TLS;
- 50 sources at once (a thread each) against a hang-up server: connections
  per second, checks per source.
"""

import collections
import socket
import ssl
import sys
import threading
import time

import anyio
import trustme

import eventsource
from eventsource import EventSource

EVENT = b"data: a\n\n"
OK = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: %d\r\n\r\n%s" % (
    len(EVENT),
    EVENT,
)
ca = trustme.CA()
SCTX = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ca.issue_cert("127.0.0.1", "::1", "localhost").configure_cert(SCTX)


class Server:
    def __init__(self, handle, family=socket.AF_INET, host="127.0.0.1"):
        self.lst = socket.create_server((host, 0), family=family, backlog=512)
        self.port = self.lst.getsockname()[1]
        self.log = []  # (time, index, first byte)
        self.handle = handle
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        i = 0
        while True:
            try:
                s, _ = self.lst.accept()
            except OSError:
                return
            threading.Thread(target=self.one, args=(s, i), daemon=True).start()
            i += 1

    def one(self, s, i):
        s.settimeout(3)
        try:
            first = s.recv(1, socket.MSG_PEEK)
            self.log.append((time.monotonic(), i, first))
            self.handle(s, i, first)
        except OSError:
            pass
        finally:
            s.close()

    def checks(self):
        return sum(1 for _, _, f in self.log if f == b"\x16")

    def close(self):
        self.lst.close()


def tls_hangup(s, i, first):
    try:
        SCTX.wrap_socket(s, server_side=True).close()
    except ssl.SSLError:
        pass


results = []


def report(name, ok, detail):
    results.append((name, ok))
    print(("OK  " if ok else "FAIL"), name, detail)


def drop_first(n):
    def handle(s, i, first):
        data = s.recv(65536)
        if i >= n and data[:1] != b"\x16":
            s.sendall(OK)

    return handle


def scenario_drop_first_n():
    for n in (1, 2, 3, 5):
        srv = Server(drop_first(n))
        try:
            ev = EventSource(
                f"http://127.0.0.1:{srv.port}/",
                retry=0.02,
                min_retry_delay=0.02,
                max_retry_delay=0.05,
            ).collect(n=1, timeout=8)
            report(
                f"drop first {n}",
                [e.data for e in ev] == ["a"] and srv.checks() == 1,
                f"events {[e.data for e in ev]}, checks {srv.checks()}, conns {len(srv.log)}",
            )
        except eventsource.EventSourceError as e:
            report(f"drop first {n}", False, repr(e))
        srv.close()


def scenario_alternate():
    def handle(s, i, first):
        data = s.recv(65536)
        if i % 2 == 1 and data[:1] != b"\x16":
            s.sendall(OK)
        elif data[:1] == b"\x16" and i % 2 == 1:
            s.sendall(OK)  # HTTP to the ClientHello

    srv = Server(handle)
    try:
        ev = EventSource(f"http://127.0.0.1:{srv.port}/", retry=0.02, min_retry_delay=0.02).collect(
            n=3, timeout=8
        )
        report(
            "alternating",
            len(ev) == 3 and srv.checks() == 1,
            f"{len(ev)} events, checks {srv.checks()}",
        )
    except eventsource.EventSourceError as e:
        report("alternating", False, repr(e))
    srv.close()


def scenario_ipv6():
    srv = Server(tls_hangup, family=socket.AF_INET6, host="::1")
    for mode in ("sync", "asyncio", "trio"):
        n0 = len(srv.log)
        t0 = time.monotonic()
        try:
            src = EventSource(f"http://[::1]:{srv.port}/", retry=0.1, max_retries=5)
            if mode == "sync":
                src.collect(timeout=5)
            else:
                anyio.run(lambda: src.acollect(timeout=5), backend=mode)
            report(f"[::1] {mode}", False, "no error")
        except eventsource.EventSourceError as e:
            report(
                f"[::1] {mode}",
                type(e) is eventsource.ConnectError and len(srv.log) - n0 == 2,
                f"{type(e).__name__} in {time.monotonic() - t0:.2f}s, conns {len(srv.log) - n0}",
            )
    srv.close()


def scenario_redirect_to_tls():
    tls = Server(tls_hangup)

    def redirect(s, i, first):
        s.recv(65536)
        s.sendall(
            b"HTTP/1.1 302 Found\r\nlocation: http://127.0.0.1:%d/\r\ncontent-length: 0\r\n\r\n"
            % tls.port
        )

    plain = Server(redirect)
    for mode in ("sync", "asyncio"):
        t0 = time.monotonic()
        n0, p0 = len(tls.log), len(plain.log)
        try:
            src = EventSource(f"http://127.0.0.1:{plain.port}/", retry=0.1, max_retries=5)
            if mode == "sync":
                src.collect(timeout=5)
            else:
                anyio.run(lambda: src.acollect(timeout=5), backend=mode)
            report(f"redirect to TLS {mode}", False, "no error")
        except eventsource.EventSourceError as e:
            report(
                f"redirect to TLS {mode}",
                type(e) is eventsource.ConnectError,
                f"{type(e).__name__}: {e} in {time.monotonic() - t0:.2f}s; TLS port conns "
                f"{len(tls.log) - n0} (checks {tls.checks()}), plain conns {len(plain.log) - p0}",
            )
    tls.close()
    plain.close()


def scenario_load():
    def hangup(s, i, first):
        s.recv(65536)

    srv = Server(hangup)
    n = 50
    sources = [EventSource(f"http://127.0.0.1:{srv.port}/", retry=0.5) for _ in range(n)]
    errors = collections.Counter()

    def run(src):
        try:
            src.collect(timeout=6)
        except eventsource.EventSourceError as e:
            errors[type(e).__name__] += 1

    t0 = time.monotonic()
    threads = [threading.Thread(target=run, args=(s,)) for s in sources]
    for t in threads:
        t.start()
    time.sleep(4)
    for s in sources:
        s.close()
    for t in threads:
        t.join(10)
    per_sec = collections.Counter(int(t - t0) for t, _, _ in srv.log)
    report(
        "50 sources",
        srv.checks() <= n and max(per_sec.values()) < 50 * 4,
        f"checks {srv.checks()}, conns {len(srv.log)}, per second {sorted(per_sec.items())}, errors {dict(errors)}, "
        f"threads alive {sum(t.is_alive() for t in threads)}",
    )
    srv.close()


for name in sys.argv[1:] or ["drop_first_n", "alternate", "ipv6", "redirect_to_tls", "load"]:
    globals()["scenario_" + name]()
print("failures:", [n for n, ok in results if not ok])
