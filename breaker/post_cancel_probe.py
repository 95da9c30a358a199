# ruff: noqa
"""A POST stream whose server hangs up (no answer): the caller cancels its
wait while the TLS check is in progress. Is the POST sent again?"""

import socket
import sys
import threading

import anyio
import anyio.to_thread

import eventsource
from eventsource import EventSource

posts = []
checking = threading.Event()
lst = socket.create_server(("127.0.0.1", 0))
port = lst.getsockname()[1]


def handle(s):
    s.settimeout(5)
    try:
        first = s.recv(65536)
        if first[:1] == b"\x16":
            checking.set()
            s.recv(1)  # stall until the client goes
        else:
            posts.append(first.split(b"\r\n", 1)[0])
    except OSError:
        pass
    s.close()


def serve():
    while True:
        try:
            s, _ = lst.accept()
        except OSError:
            return
        threading.Thread(target=handle, args=(s,), daemon=True).start()


threading.Thread(target=serve, daemon=True).start()


async def main():
    src = EventSource(f"http://127.0.0.1:{port}/", method="POST", json={"q": 1}, retry=0.05)
    async with anyio.create_task_group() as tg:
        with anyio.CancelScope() as cs:

            async def canceller():
                await anyio.to_thread.run_sync(checking.wait, 5)
                cs.cancel()

            tg.start_soon(canceller)
            await src.__anext__()
    print("cancelled during the check; POSTs so far:", posts)
    try:
        with anyio.fail_after(2):
            await src.__anext__()
    except eventsource.EventSourceError as e:
        print("raised", type(e).__name__, e)
    except TimeoutError:
        print("timeout")
    await src.aclose()
    print("POSTs:", posts)


anyio.run(main, backend=sys.argv[1] if len(sys.argv) > 1 else "asyncio")
