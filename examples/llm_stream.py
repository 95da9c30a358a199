"""An OpenAI-style streaming completion: POST the prompt, read the `data:`
chunks as they arrive, stop at `data: [DONE]`.

Each chunk is JSON (`{"choices": [{"delta": {"content": "Hel"}}]}`); the
stream ends with the plain text `[DONE]`, usually while the server still holds
the connection open. `until=` stops there and closes the source. The prompt
is POSTed once: a request other than GET is sent again only when it never
reached the server; a stream that gave event ids is resumed by GET with
`Last-Event-ID`, and `resume="resend"` would send the POST again.

    python examples/llm_stream.py          # against the testing toolkit's server
    python examples/llm_stream.py URL      # an OpenAI-compatible endpoint
                                           # (OPENAI_API_KEY in the environment)
"""

from __future__ import annotations

import os
import sys
from typing import Any

import anyio
import httpx

from eventsource import EventSource, ServerSentEvent
from eventsource.testing import SSEServer

ANSWER = ["Server-", "Sent ", "Events ", "stream ", "tokens."]


class CutOff(Exception):
    """The stream ended before [DONE]: `partial` is the answer so far."""

    def __init__(self, partial: str) -> None:
        super().__init__(f"the stream ended before [DONE], after {partial!r}")
        self.partial = partial


def answer(events: list[ServerSentEvent]) -> str:
    """The answer the chunks build; CutOff when [DONE] never came (the server
    ended the stream, and a POST without ids is not sent again; a broken
    connection is raised by collect() as ConnectionLostError)."""
    text = "".join(delta(event) for event in events)
    if not events or not is_done(events[-1]):
        raise CutOff(text)
    return text


def is_done(event: ServerSentEvent) -> bool:
    return event.data == "[DONE]"


def delta(event: ServerSentEvent) -> str:
    """The text an OpenAI-style chunk adds ("" for [DONE] and empty deltas)."""
    if is_done(event):
        return ""
    choices = event.json().get("choices") or [{}]
    return choices[0].get("delta", {}).get("content") or ""


def request(prompt: str) -> dict[str, Any]:
    """EventSource's arguments for a chat completion request."""
    key = os.environ.get("OPENAI_API_KEY", "")
    return {
        "method": "POST",
        "json": {
            "model": "gpt-4o-mini",
            "stream": True,
            "messages": [{"role": "user", "content": prompt}],
        },
        "headers": {"Authorization": f"Bearer {key}"} if key else None,
    }


async def complete(
    url: str, prompt: str, *, client: httpx.AsyncClient | None = None, echo: bool = True
) -> str:
    """Async: print the answer as it grows, return it whole."""

    def show(event: ServerSentEvent) -> None:
        if echo:
            print(delta(event), end="", flush=True)

    source = EventSource(url, client=client, on_message=show, **request(prompt))
    events = await source.acollect(timeout=60, until=is_done)
    if echo:
        print()
    return answer(events)


def complete_sync(url: str, prompt: str, *, client: httpx.Client | None = None) -> str:
    """Sync: the whole answer, once [DONE] arrived."""
    source = EventSource(url, client=client, **request(prompt))
    events = source.collect(timeout=60, until=is_done)
    return answer(events)


def chunks(words: list[str]) -> list[dict[str, Any]]:
    """An OpenAI-style stream of these words, then [DONE] (no ids)."""
    events: list[dict[str, Any]] = [{"data": {"choices": [{"delta": {"role": "assistant"}}]}}]
    events += [{"data": {"choices": [{"delta": {"content": word}}]}} for word in words]
    events.append({"data": "[DONE]"})
    return events


def main() -> None:
    if len(sys.argv) > 1:
        anyio.run(complete, sys.argv[1], "Hi!")
        return
    with SSEServer(chunks(ANSWER)) as server:  # holds the connection open after [DONE]
        text = anyio.run(complete, server.url, "Hi!")
        again = complete_sync(server.url, "Hi!")
        posts = len(server.requests)
    assert text == again == "".join(ANSWER), (text, again)
    print(f"{posts} POSTs, one per completion; the answer: {text}")


if __name__ == "__main__":
    main()
