"""Adapters that run a peer library's parser over a list of byte chunks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def requests_sse_events(chunks: list[bytes]) -> Iterator[Any]:
    """requests_sse.EventSource's events for a body read as these chunks.

    The library parses what requests' ``Response.iter_lines()`` yields; that reads
    ``iter_content()``, which here returns the chunks. At the end of the body the
    library would sleep and reconnect: its on_error hook stops it instead.
    """
    import requests
    import requests_sse

    class _End(Exception):
        pass

    def end() -> None:
        raise _End

    response = requests.Response()
    response.status_code = 200
    response.iter_content = lambda chunk_size=1, decode_unicode=False: iter(chunks)  # type: ignore[method-assign]
    source = requests_sse.EventSource("http://127.0.0.1/", on_error=end)
    source._response = response
    source._data_generator = response.iter_lines()
    try:
        yield from source
    except _End:
        return
