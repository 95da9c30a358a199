"""Wrong usages of the public API: mypy --strict must report an error on
every line marked "error" (tests/test_typing.py)."""

from __future__ import annotations

from eventsource import EventSource, ServerSentEvent


def two(a: object, b: object) -> None: ...
def takes_int(n: int) -> None: ...


URL = "http://127.0.0.1:1/"
EventSource(URL, on_error=lambda: None)  # error
EventSource(URL, on_close=lambda x, y: None)  # error
EventSource(URL, on_open=lambda event: None)  # error
EventSource(URL, on_message=two)  # error
EventSource(URL, on_message=takes_int)  # error
EventSource(URL, on_comment=takes_int)  # error
EventSource(URL).add_listener("chunk", lambda: None)  # error
EventSource(URL).collect(until=lambda: True)  # error
events: list[int] = EventSource(URL).collect()  # error
first: ServerSentEvent = EventSource(URL).collect()  # error
EventSource(URL, http="requests")  # error
EventSource(URL, client=object())  # error
