# ruff: noqa
"""A host whose label is longer than 63 characters, through a client whose
transport hangs up (no real connection for the request): what escapes the
TLS check? (The check's own name lookup encodes the host with IDNA: no
traffic leaves, the encoding fails first.)"""

import sys

import anyio
import httpx

import eventsource
from eventsource import EventSource

URL = "http://" + "a" * 64 + ".invalid/"


def hang_up(request):
    raise httpx.RemoteProtocolError("Server disconnected", request=request)


# Sync only: the async check resolves the ASCII name as bytes (no IDNA step),
# which would hand it to the system resolver.
for mode in ("sync",):
    try:
        if mode == "sync":
            client = httpx.Client(transport=httpx.MockTransport(hang_up), trust_env=False)
            EventSource(URL, client=client, retry=0.05, max_retries=1).collect(timeout=3)
        else:

            async def main():
                async def ahang_up(request):
                    hang_up(request)

                client = httpx.AsyncClient(transport=httpx.MockTransport(ahang_up), trust_env=False)
                await EventSource(URL, client=client, retry=0.05, max_retries=1).acollect(timeout=3)

            anyio.run(main, backend=mode)
        print(mode, "no error")
    except eventsource.EventSourceError as e:
        print(mode, "library error", type(e).__name__, e)
    except BaseException as e:
        print(mode, "ESCAPED", type(e).__name__, e)
