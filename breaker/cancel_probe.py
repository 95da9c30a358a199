# ruff: noqa
"""Cancel the caller's wait while the probe is in progress; then iterate again."""

import socket, ssl, threading, sys, time, trustme, anyio
import eventsource
from eventsource import EventSource

ca = trustme.CA()
sctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ca.issue_cert("127.0.0.1").configure_cert(sctx)
conns = []
probe_in = threading.Event()
release = threading.Event()
lst = socket.create_server(("127.0.0.1", 0))
port = lst.getsockname()[1]


def handle(s, i):
    s.settimeout(5)
    try:
        first = s.recv(5)
    except OSError:
        s.close()
        return
    if first[:1] == b"\x16":
        probe_in.set()
        release.wait(5)
        try:
            s.sendall(b"\x15\x03\x03\x00\x02\x02\x28")  # a TLS alert
        except OSError:
            pass
    s.close()


def serve():
    i = 0
    while True:
        try:
            s, _ = lst.accept()
        except OSError:
            return
        conns.append(i)
        threading.Thread(target=handle, args=(s, i), daemon=True).start()
        i += 1


threading.Thread(target=serve, daemon=True).start()


async def main():
    errs = []
    src = EventSource(
        f"http://127.0.0.1:{port}/",
        retry=0.1,
        min_retry_delay=0.1,
        on_error=errs.append,
        on_close=lambda: print("on_close"),
    )
    async with anyio.create_task_group() as tg:
        with anyio.CancelScope() as cs:

            async def canceller():
                await anyio.to_thread.run_sync(probe_in.wait, 5)
                cs.cancel()

            tg.start_soon(canceller)
            await src.__anext__()
    release.set()
    print("cancelled during probe; state", src.ready_state, "conns", len(conns))
    try:
        with anyio.fail_after(3):
            ev = await src.__anext__()
            print("event?", ev)
    except eventsource.EventSourceError as e:
        print("raised", type(e).__name__, e)
    except TimeoutError:
        print(
            "TIMEOUT: still retrying after 3 s; conns",
            len(conns),
            "errors",
            [type(e).__name__ for e in errs],
        )
    await src.aclose()


anyio.run(main, backend=sys.argv[1] if len(sys.argv) > 1 else "asyncio")
