# ruff: noqa
"""Does the probe go around a user's client transport / proxy?
A TLS-speaking counter on loopback; the user's client never routes there."""

import socket, ssl, threading, sys, time, httpx, trustme
import eventsource
from eventsource import EventSource

ca = trustme.CA()
sctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ca.issue_cert("127.0.0.1").configure_cert(sctx)

hits = []
lst = socket.create_server(("127.0.0.1", 0))
port = lst.getsockname()[1]


def serve():
    while True:
        try:
            s, _ = lst.accept()
        except OSError:
            return
        hits.append(time.monotonic())
        try:
            s.settimeout(2)
            sctx.wrap_socket(s, server_side=True)
        except Exception:
            pass
        s.close()


threading.Thread(target=serve, daemon=True).start()


def case(name, client):
    hits.clear()
    errs = []
    try:
        EventSource(
            f"http://127.0.0.1:{port}/",
            client=client,
            retry=0.05,
            min_retry_delay=0.05,
            max_retries=2,
            on_error=errs.append,
        ).collect(timeout=3)
    except eventsource.EventSourceError as e:
        print(name, type(e).__name__, str(e)[:90], "| connections to the TLS port:", len(hits))


def hangup(request):
    raise httpx.RemoteProtocolError(
        "Server disconnected without sending a response.", request=request
    )


case("mock", httpx.Client(transport=httpx.MockTransport(hangup), trust_env=False))

# a loopback proxy that hangs up
pl = socket.create_server(("127.0.0.1", 0))
pport = pl.getsockname()[1]
proxy_hits = []


def pserve():
    while True:
        try:
            s, _ = pl.accept()
        except OSError:
            return
        proxy_hits.append(1)
        s.recv(1000)
        s.close()


threading.Thread(target=pserve, daemon=True).start()
case("proxy=", httpx.Client(proxy=f"http://127.0.0.1:{pport}", trust_env=False))
print("proxy saw", len(proxy_hits))

import tempfile, os

d = tempfile.mkdtemp()
path = os.path.join(d, "s.sock")
us = socket.socket(socket.AF_UNIX)
us.bind(path)
us.listen()


def userve():
    while True:
        try:
            s, _ = us.accept()
        except OSError:
            return
        s.recv(1000)
        s.close()


threading.Thread(target=userve, daemon=True).start()
case("uds", httpx.Client(transport=httpx.HTTPTransport(uds=path), trust_env=False))
