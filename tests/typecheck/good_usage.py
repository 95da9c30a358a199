"""Right usages of the public API: mypy --strict must accept all of them
(tests/test_typing.py)."""

from __future__ import annotations

from eventsource import EventSource, EventSourceError, ServerSentEvent


def on_open() -> None: ...
def on_message(event: ServerSentEvent) -> None: ...
def on_error(error: EventSourceError) -> None: ...
def on_close() -> None: ...
def on_comment(text: str) -> None: ...
async def on_message_async(event: ServerSentEvent) -> None: ...
async def on_error_async(error: EventSourceError) -> None: ...


source = EventSource(
    "http://127.0.0.1:1/stream",
    on_open=on_open,
    on_message=on_message,
    on_error=on_error,
    on_close=on_close,
    on_comment=on_comment,
)
EventSource("http://127.0.0.1:1/", on_message=on_message_async, on_error=on_error_async)
EventSource("http://127.0.0.1:1/", on_message=lambda event: print(event.data))
EventSource("http://127.0.0.1:1/", on_error=lambda error: print(error.will_retry))
source.add_listener("chunk", on_message)
source.add_listener("chunk", lambda event: event.json())
events: list[ServerSentEvent] = source.collect(n=3, until=lambda event: event.type == "done")

# Either HTTP stack's client (issue 22), and its own response type.
import httpx  # noqa: E402
import httpx2  # noqa: E402

EventSource("http://127.0.0.1:1/", client=httpx.AsyncClient())
EventSource("http://127.0.0.1:1/", client=httpx2.Client(), timeout=httpx2.Timeout(5.0))
EventSource(httpx2.URL("http://127.0.0.1:1/"), http="httpx2", auth=httpx2.BasicAuth("u", "p"))
response = EventSource("http://127.0.0.1:1/").response
if isinstance(response, httpx2.Response):
    print(response.http_version)

from eventsource.testing import sse_response  # noqa: E402

on_httpx: httpx.Response = sse_response(["a"])
on_httpx2: httpx2.Response = sse_response(["a"], http="httpx2")
