# ruff: noqa
"""Sync: a POST stream whose server hangs up; a signal handler's exception
(as KeyboardInterrupt) lands during the TLS check. Iterating again: is the
POST sent twice? (The same interrupt during the send: in_doubt(), 1 POST.)"""

import signal
import socket
import threading

import eventsource
from eventsource import EventSource


class Interrupt(BaseException):
    pass


def raise_interrupt(*_):
    raise Interrupt


signal.signal(signal.SIGUSR1, raise_interrupt)
main = threading.main_thread().ident
posts = []
lst = socket.create_server(("127.0.0.1", 0))
port = lst.getsockname()[1]


def handle(s):
    s.settimeout(5)
    try:
        first = s.recv(65536)
        if first[:1] == b"\x16":
            signal.pthread_kill(main, signal.SIGUSR1)
            s.recv(1)
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
src = EventSource(f"http://127.0.0.1:{port}/", method="POST", json={"q": 1}, retry=0.05)
try:
    next(src)
except Interrupt:
    print("interrupted during the check; POSTs so far", len(posts))
try:
    next(src)
except eventsource.EventSourceError as e:
    print("raised", type(e).__name__, e)
src.close()
print("POSTs:", posts)
