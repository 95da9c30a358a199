"""EventSource against mocked httpx (respx): the status table, headers,
bodies, reconnects, callbacks and state, in async (asyncio, trio) and sync mode."""

from __future__ import annotations

import gc
import gzip
import threading
from typing import Any

import anyio
import anyio.to_thread
import httpx
import pytest
import respx

from eventsource import (
    ConnectionLostError,
    EventSource,
    EventSourceError,
    EventTooLargeError,
    ReadyState,
    ResponseError,
    RetriesExhaustedError,
    ServerSentEvent,
)

from .conftest import Recorder, client_for, consume, sse

pytestmark = pytest.mark.anyio

URL = "http://sse.test/stream"
E = ServerSentEvent
FAST = {"retry": 0.001, "max_retry_delay": 0.005}


def source_for(mode: str, recorder: Recorder | None = None, **kwargs: Any) -> EventSource:
    options = {**FAST, **kwargs}
    if recorder is not None:
        options.update(recorder.kwargs())
    source = EventSource(URL, client=client_for(mode), **options)
    if recorder is not None:
        recorder.source = source
    return source


async def test_events_state_and_callbacks_over_a_reconnect(mode: str) -> None:
    recorder = Recorder()
    with respx.mock:
        route = respx.get(URL).mock(
            side_effect=[
                sse(b'id: 1\ndata: a\n\nid: 2\ndata: {"n": 2}\n\n', fail=True),
                sse(b"id: 3\ndata: c\n\n"),
            ]
        )
        source = source_for(mode, recorder, reconnect=False)
        # reconnect=False would end at the first end of stream; a network
        # error is not an end, so give the source its reconnect back:
        source._machine.policy.reconnect = True
        outcome = await consume(source, mode, limit=3)
    assert outcome.events == [E(data="a", id="1"), E(data='{"n": 2}', id="2"), E(data="c", id="3")]
    assert recorder.log == [
        ("open", "OPEN"),
        ("message", "a"),
        ("message", '{"n": 2}'),
        ("error", "ConnectionLostError"),
        ("open", "OPEN"),
        ("message", "c"),
        ("close", "CLOSED"),
    ]
    assert route.calls[1].request.headers["last-event-id"] == "2"
    assert source.ready_state is ReadyState.CLOSED and not source.is_connected
    assert source.last_event == E(data="c", id="3")
    assert source.data == "c"
    assert source.events_received == 3
    assert source.error is None  # cleared when the second connection opened


@pytest.mark.parametrize("coding", ["gzip", "identity"])
async def test_a_content_coded_body_is_decoded(mode: str, coding: str) -> None:
    body = b"id: 1\ndata: first\n\nid: 2\ndata: second\n\n"
    wire = gzip.compress(body) if coding == "gzip" else body
    half = len(wire) // 2
    with respx.mock:
        respx.get(URL).mock(
            return_value=sse(wire[:half], wire[half:], **{"content-encoding": coding})
        )
        outcome = await consume(source_for(mode, reconnect=False), mode)
    assert outcome.events == [E(data="first", id="1"), E(data="second", id="2")]


async def test_headers_sent(mode: str) -> None:
    with respx.mock:
        route = respx.get(URL).mock(return_value=sse(b"data: x\n\n"))
        source = source_for(mode, reconnect=False, headers={"Authorization": "Bearer t"})
        await consume(source, mode)
    headers = route.calls[0].request.headers
    assert headers["accept"] == "text/event-stream"
    assert headers["cache-control"] == "no-cache"
    assert headers["authorization"] == "Bearer t"
    assert "last-event-id" not in headers


async def test_callable_headers_and_params_are_evaluated_per_attempt(mode: str) -> None:
    tokens = iter(["t1", "t2"])
    pages = iter([1, 2])
    with respx.mock:
        route = respx.get(url__startswith=URL).mock(
            side_effect=[sse(b"data: a\n\n"), sse(b"data: b\n\n")]
        )
        source = source_for(
            mode,
            headers=lambda: {"Authorization": f"Bearer {next(tokens)}"},
            params=lambda: {"page": next(pages)},
        )
        await consume(source, mode, limit=2)
    assert [c.request.headers["authorization"] for c in route.calls] == ["Bearer t1", "Bearer t2"]
    assert [c.request.url.params["page"] for c in route.calls] == ["1", "2"]


async def test_initial_and_reset_last_event_id(mode: str) -> None:
    with respx.mock:
        route = respx.get(URL).mock(side_effect=[sse(b"id\ndata: a\n\n"), sse(b"data: b\n\n")])
        source = source_for(mode, last_event_id="41")
        await consume(source, mode, limit=2)
    assert route.calls[0].request.headers["last-event-id"] == "41"
    assert "last-event-id" not in route.calls[1].request.headers  # the stream reset it


async def test_non_ascii_last_event_id_goes_out_as_utf8(mode: str) -> None:
    with respx.mock:
        route = respx.get(URL).mock(
            side_effect=[sse("id: é✓\ndata: a\n\n".encode()), sse(b"data: b\n\n")]
        )
        await consume(source_for(mode), mode, limit=2)
    assert (b"Last-Event-ID", "é✓".encode()) in route.calls[1].request.headers.raw


@pytest.mark.parametrize("body", [{"json": {"q": "hi"}}, {"content": b"raw body"}])
async def test_post_body_is_sent_again_on_reconnect_when_asked(
    mode: str, body: dict[str, Any]
) -> None:
    with respx.mock:
        route = respx.post(URL).mock(side_effect=[sse(b"data: a\n\n"), sse(b"data: b\n\n")])
        source = source_for(mode, method="POST", resume="resend", **body)
        await consume(source, mode, limit=2)
    assert len(route.calls) == 2
    first, second = (call.request.content for call in route.calls)
    assert first == second and first
    if "json" in body:
        assert route.calls[1].request.headers["content-type"] == "application/json"


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410])
async def test_other_statuses_fail_without_retry(mode: str, status: int) -> None:
    recorder = Recorder()
    with respx.mock:
        route = respx.get(URL).mock(return_value=httpx.Response(status))
        outcome = await consume(source_for(mode, recorder), mode)
    assert isinstance(outcome.error, ResponseError)
    assert outcome.error.status_code == status
    assert len(route.calls) == 1
    assert recorder.kinds() == ["error", "close"]


async def test_wrong_content_type_fails(mode: str) -> None:
    with respx.mock:
        respx.get(URL).mock(return_value=httpx.Response(200, json={"a": 1}))
        outcome = await consume(source_for(mode), mode)
    assert isinstance(outcome.error, ResponseError)
    assert "application/json" in str(outcome.error)


async def test_204_closes_without_error(mode: str) -> None:
    recorder = Recorder()
    with respx.mock:
        route = respx.get(URL).mock(return_value=httpx.Response(204))
        outcome = await consume(source_for(mode, recorder), mode)
    assert outcome.error is None and outcome.events == []
    assert len(route.calls) == 1
    assert recorder.log == [("close", "CLOSED")]


@pytest.mark.parametrize("status", [500, 502, 503, 408, 429])
async def test_retryable_statuses_back_off_then_exhaust(mode: str, status: int) -> None:
    recorder = Recorder()
    with respx.mock:
        route = respx.get(URL).mock(
            return_value=httpx.Response(status, headers={"retry-after": "0"})
        )
        outcome = await consume(source_for(mode, recorder, max_retries=2), mode)
    assert len(route.calls) == 3  # the first attempt and two retries
    assert isinstance(outcome.error, RetriesExhaustedError)
    assert isinstance(outcome.error.__cause__, ResponseError)
    assert outcome.error.__cause__.status_code == status
    # Two retried errors, then one final report (issue 23: the last error is
    # RetriesExhaustedError's cause, not an on_error of its own).
    assert recorder.kinds() == ["error", "error", "error", "close"]
    assert recorder.log[-2] == ("error", "RetriesExhaustedError")


async def test_503_then_recovery(mode: str) -> None:
    with respx.mock:
        respx.get(URL).mock(
            side_effect=[httpx.Response(503), httpx.Response(503), sse(b"data: ok\n\n")]
        )
        outcome = await consume(source_for(mode, max_retries=2), mode, limit=1)
    assert outcome.events == [E(data="ok")]


async def test_accept_and_hang_up_still_backs_off_and_exhausts(mode: str) -> None:
    with respx.mock:
        route = respx.get(URL).mock(side_effect=lambda request: sse())
        outcome = await consume(source_for(mode, max_retries=3), mode)
    assert len(route.calls) == 4
    assert isinstance(outcome.error, RetriesExhaustedError)


async def test_failures_reset_after_a_connection_with_events(mode: str) -> None:
    with respx.mock:
        route = respx.get(URL).mock(side_effect=lambda request: sse(b"data: x\n\n"))
        outcome = await consume(source_for(mode, max_retries=1), mode, limit=6)
    assert len(outcome.events) == 6 and outcome.error is None
    assert len(route.calls) == 6


async def test_network_errors_are_retried(mode: str) -> None:
    with respx.mock:
        respx.get(URL).mock(side_effect=[httpx.ConnectError("refused"), sse(b"data: ok\n\n")])
        outcome = await consume(source_for(mode), mode, limit=1)
    assert outcome.events == [E(data="ok")]


async def test_stream_retry_field_sets_the_reconnection_time(mode: str) -> None:
    with respx.mock:
        respx.get(URL).mock(side_effect=[sse(b"retry: 2\ndata: a\n\n"), sse(b"data: b\n\n")])
        source = source_for(mode)
        outcome = await consume(source, mode, limit=2)
    assert outcome.events == [E(data="a", retry=2), E(data="b")]
    assert source.retry == 0.002


async def test_no_reconnect_ends_at_the_first_end_of_stream(mode: str) -> None:
    recorder = Recorder()
    with respx.mock:
        route = respx.get(URL).mock(return_value=sse(b"data: a\n\n"))
        outcome = await consume(source_for(mode, recorder, reconnect=False), mode)
    assert outcome.events == [E(data="a")] and outcome.error is None
    assert len(route.calls) == 1
    assert recorder.kinds() == ["open", "message", "close"]


async def test_no_reconnect_raises_a_network_error(mode: str) -> None:
    with respx.mock:
        respx.get(URL).mock(return_value=sse(b"data: a\n\n", fail=True))
        outcome = await consume(source_for(mode, reconnect=False), mode)
    assert outcome.events == [E(data="a")]
    assert isinstance(outcome.error, ConnectionLostError)


async def test_event_too_large_is_fatal_after_earlier_events(mode: str) -> None:
    with respx.mock:
        route = respx.get(URL).mock(return_value=sse(b"data: ok\n\ndata: " + b"x" * 500 + b"\n\n"))
        outcome = await consume(source_for(mode, max_event_size=100), mode)
    assert outcome.events == [E(data="ok")]
    assert isinstance(outcome.error, EventTooLargeError)
    assert len(route.calls) == 1


async def test_close_from_a_callback(mode: str) -> None:
    recorder = Recorder()
    source: EventSource

    def on_message(event: ServerSentEvent) -> None:
        recorder.on_message(event)
        if event.data == "b":
            source.close()

    with respx.mock:
        route = respx.get(URL).mock(return_value=sse(b"data: a\n\ndata: b\n\ndata: c\n\n"))
        source = source_for(mode, recorder)
        source._callbacks.on_message = on_message
        outcome = await consume(source, mode)
    assert [e.data for e in outcome.events] == ["a", "b"]
    assert recorder.kinds().count("close") == 1
    assert len(route.calls) == 1


async def test_restart_reconnects_at_once_with_last_event_id(mode: str) -> None:
    recorder = Recorder()
    source: EventSource
    restarted = []

    def on_message(event: ServerSentEvent) -> None:
        recorder.on_message(event)
        if event.data == "a" and not restarted:
            restarted.append(True)
            source.restart()

    with respx.mock:
        route = respx.get(URL).mock(
            side_effect=[sse(b"id: 1\ndata: a\n\n"), sse(b"id: 2\ndata: b\n\n")]
        )
        source = source_for(mode, recorder, retry=30.0)  # a real wait would time the test out
        source._callbacks.on_message = on_message
        outcome = await consume(source, mode, limit=2)
    assert [e.data for e in outcome.events] == ["a", "b"]
    assert route.calls[1].request.headers["last-event-id"] == "1"
    assert "error" not in recorder.kinds()


async def test_callback_exception_is_reported_and_the_stream_goes_on(mode: str) -> None:
    errors: list[EventSourceError] = []

    def on_message(event: ServerSentEvent) -> None:
        if event.data == "a":
            raise KeyError("boom")

    with respx.mock:
        respx.get(URL).mock(return_value=sse(b"data: a\n\ndata: b\n\n"))
        source = source_for(mode, reconnect=False, on_message=on_message, on_error=errors.append)
        outcome = await consume(source, mode)
    assert [e.data for e in outcome.events] == ["a", "b"]
    assert len(errors) == 1 and isinstance(errors[0].__cause__, KeyError)


async def test_listeners_by_type(mode: str) -> None:
    chunks: list[str] = []
    dones: list[str] = []
    with respx.mock:
        respx.get(URL).mock(
            return_value=sse(
                b"event: chunk\ndata: a\n\nevent: chunk\ndata: b\n\nevent: done\ndata: {}\n\n"
            )
        )
        source = source_for(mode, reconnect=False)
        source.add_listener("chunk", lambda e: chunks.append(e.data))
        source.add_listener("done", lambda e: dones.append(e.data))
        extra = []
        source.add_listener("done", extra.append)
        source.remove_listener("done", extra.append)
        source.remove_listener("never", extra.append)  # absent: no error
        await consume(source, mode)
    assert chunks == ["a", "b"] and dones == ["{}"] and extra == []


async def test_a_listener_hears_only_its_own_source(mode: str) -> None:
    heard: list[str] = []
    with respx.mock:
        respx.get(URL).mock(return_value=sse(b"event: chunk\ndata: a\n\n"))
        bare = source_for(mode, reconnect=False)
        bare.remove_listener("chunk", heard.append)  # none yet: no error
        listened = source_for(mode, reconnect=False)
        listened.add_listener("chunk", lambda e: heard.append("listened " + e.data))
        later = source_for(mode, reconnect=False)
        await consume(bare, mode)
        await consume(listened, mode)
        await consume(later, mode)
    assert heard == ["listened a"]


async def test_comments_are_delivered_in_stream_order(mode: str) -> None:
    order: list[str] = []
    with respx.mock:
        respx.get(URL).mock(
            return_value=sse(b": one\ndata: a\n\n: two\n\ndata: b\n\n", b": three\n")
        )
        source = source_for(
            mode,
            reconnect=False,
            on_comment=lambda text: order.append(f"comment {text}"),
            on_message=lambda e: order.append(f"event {e.data}"),
        )
        await consume(source, mode)
    assert order == ["comment one", "event a", "comment two", "event b", "comment three"]


async def test_redirects_are_followed_and_reconnects_use_the_original_url(mode: str) -> None:
    with respx.mock:
        original = respx.get(URL).mock(
            return_value=httpx.Response(307, headers={"location": "http://sse.test/other"})
        )
        other = respx.get("http://sse.test/other").mock(
            side_effect=[sse(b"data: a\n\n"), sse(b"data: b\n\n")]
        )
        outcome = await consume(source_for(mode), mode, limit=2)
    assert [e.data for e in outcome.events] == ["a", "b"]
    assert len(original.calls) == 2 and len(other.calls) == 2


async def test_redirect_without_location_fails_at_once(mode: str) -> None:
    with respx.mock:
        route = respx.get(URL).mock(return_value=httpx.Response(302))
        outcome = await consume(source_for(mode), mode)
    assert isinstance(outcome.error, ResponseError) and outcome.error.status_code == 302
    assert len(route.calls) == 1


async def test_data_is_json_decoded_when_json(mode: str) -> None:
    with respx.mock:
        respx.get(URL).mock(return_value=sse(b'data: {"content": "Hi"}\n\n'))
        source = source_for(mode, reconnect=False)
        await consume(source, mode)
    assert source.data == {"content": "Hi"}


async def test_wrong_client_kind_is_a_clear_error(anyio_backend: str) -> None:
    source = EventSource(URL, client=httpx.Client())
    with pytest.raises(TypeError, match="AsyncClient"):
        async for _ in source:
            pass
    source = EventSource(URL, client=httpx.AsyncClient())
    with pytest.raises(TypeError, match="httpx.Client"):
        next(iter(source))


def test_one_mode_per_source() -> None:
    with respx.mock:
        respx.get(URL).mock(return_value=sse(b"data: a\n\n"))
        source = EventSource(URL, reconnect=False)
        assert [e.data for e in source] == ["a"]
        with pytest.raises(RuntimeError, match="sync mode"):
            source.__aiter__().__anext__().send(None)


def test_invalid_options() -> None:
    with pytest.raises(ValueError):
        EventSource(URL, json={}, content=b"")
    with pytest.raises(ValueError):
        EventSource(URL, last_event_id="a\nb")
    with pytest.raises(ValueError):
        EventSource(URL, client=httpx.Client(), cookies={"a": "b"})
    with pytest.raises(ValueError):
        EventSource(URL, read_timeout=0)


def test_close_before_use_closes_once() -> None:
    closed: list[bool] = []
    source = EventSource(URL, on_close=lambda: closed.append(True))
    source.close()
    source.close()
    assert closed == [True] and source.ready_state is ReadyState.CLOSED
    assert list(source) == []


def test_sync_run_with_callbacks() -> None:
    recorder = Recorder()
    with respx.mock:
        respx.get(URL).mock(return_value=sse(b"data: a\n\n"))
        source = EventSource(URL, reconnect=False, **recorder.kwargs())
        recorder.source = source
        source.run()
    assert recorder.kinds() == ["open", "message", "close"]


async def test_async_run_with_coroutine_callbacks(anyio_backend: str) -> None:
    seen: list[str] = []

    async def on_message(event: ServerSentEvent) -> None:
        seen.append(event.data)

    with respx.mock:
        respx.get(URL).mock(return_value=sse(b"data: a\n\ndata: b\n\n"))
        await EventSource(URL, reconnect=False, on_message=on_message).arun()
    assert seen == ["a", "b"]


def test_coroutine_callback_in_sync_mode_is_reported() -> None:
    errors: list[EventSourceError] = []

    async def on_message(event: ServerSentEvent) -> None:
        pass

    with respx.mock:
        respx.get(URL).mock(return_value=sse(b"data: a\n\n"))
        EventSource(URL, reconnect=False, on_message=on_message, on_error=errors.append).run()
    assert len(errors) == 1 and isinstance(errors[0].__cause__, TypeError)


def test_unclosed_source_warns_when_collected() -> None:
    with respx.mock:
        respx.get(URL).mock(return_value=sse(b"data: a\n\ndata: b\n\n"))
        source = EventSource(URL)
        next(iter(source))
        with pytest.warns(ResourceWarning, match="unclosed"):
            del source
            gc.collect()


def test_repr() -> None:
    source = EventSource(URL, last_event_id="5")
    assert repr(source) == f"<EventSource {URL!r} CONNECTING events=0 last_event_id='5'>"


def test_close_from_another_thread_during_reconnect_wait() -> None:
    closed = threading.Event()
    with respx.mock:
        respx.get(URL).mock(return_value=httpx.Response(503))
        source = EventSource(URL, retry=60.0, max_retry_delay=60.0, on_close=closed.set)
        source.add_listener("never", print)
        errors: list[Any] = []
        source._callbacks.on_error = lambda error: threading.Timer(0, source.close).start()
        thread = threading.Thread(target=lambda: errors.append(list(source)))
        thread.start()
        assert closed.wait(5), "close() did not interrupt the 60 s wait"
        thread.join(5)
    assert errors == [[]]


async def test_a_callers_client_auth_and_timeouts_are_kept(mode: str) -> None:
    with respx.mock:
        route = respx.get(URL).mock(return_value=sse(b"data: a\n\n"))
        client = client_for(mode, auth=("user", "pw"), timeout=httpx.Timeout(7.0))
        source = EventSource(URL, client=client, reconnect=False, read_timeout=11.0)
        await consume(source, mode)
    request = route.calls[0].request
    assert request.headers["authorization"] == httpx.BasicAuth("user", "pw")._auth_header
    assert request.extensions["timeout"] == {
        "connect": 7.0,
        "read": 11.0,
        "write": 7.0,
        "pool": 7.0,
    }


async def test_auth_option_and_own_client_timeout(mode: str) -> None:
    with respx.mock:
        route = respx.get(URL).mock(return_value=sse(b"data: a\n\n"))
        source = EventSource(URL, auth=("u", "p"), timeout=3.0, read_timeout=None, reconnect=False)
        await consume(source, mode)
    request = route.calls[0].request
    assert request.headers["authorization"] == httpx.BasicAuth("u", "p")._auth_header
    assert request.extensions["timeout"] == {
        "connect": 3.0,
        "read": None,
        "write": 3.0,
        "pool": 3.0,
    }


async def test_ready_state_in_on_error_tells_whether_it_reconnects(mode: str) -> None:
    states: list[tuple[str, ReadyState]] = []
    source: EventSource

    def on_error(error: EventSourceError) -> None:
        states.append((type(error).__name__, source.ready_state))

    with respx.mock:
        respx.get(URL).mock(side_effect=[httpx.Response(503), httpx.Response(404)])
        source = source_for(mode, on_error=on_error)
        outcome = await consume(source, mode)
    assert isinstance(outcome.error, ResponseError) and outcome.error.status_code == 404
    assert states == [
        ("ResponseError", ReadyState.CONNECTING),  # 503: retried
        ("ResponseError", ReadyState.CLOSED),  # 404: the end
    ]


async def test_collect_n_events_then_closed(mode: str) -> None:
    with respx.mock:
        route = respx.get(URL).mock(return_value=sse(b"data: a\n\ndata: b\n\ndata: c\n\n"))
        source = source_for(mode)
        if mode == "sync":
            events = await anyio.to_thread.run_sync(source.collect, 2)
        else:
            events = await source.acollect(2)
    assert [e.data for e in events] == ["a", "b"]
    assert source.ready_state is ReadyState.CLOSED
    assert len(route.calls) == 1


async def test_collect_until_timeout_returns_what_arrived(mode: str) -> None:
    with respx.mock:
        # After the first stream, every reconnect is refused: only the timeout ends it.
        respx.get(URL).mock(side_effect=[sse(b"data: a\n\n"), *[httpx.ConnectError("no")] * 1000])
        source = source_for(mode, retry=0.05, max_retry_delay=0.05)
        if mode == "sync":
            events = await anyio.to_thread.run_sync(source.collect, None, 0.3)
        else:
            events = await source.acollect(timeout=0.3)
    assert [e.data for e in events] == ["a"]
    assert source.ready_state is ReadyState.CLOSED


async def test_collect_raises_a_fatal_error(mode: str) -> None:
    with respx.mock:
        respx.get(URL).mock(return_value=httpx.Response(401))
        source = source_for(mode)
        with pytest.raises(ResponseError):
            if mode == "sync":
                await anyio.to_thread.run_sync(source.collect)
            else:
                await source.acollect()


def test_repr_html_for_notebooks() -> None:
    with respx.mock:
        respx.get(URL).mock(return_value=sse(b"id: 7\nevent: chunk\ndata: <b>hi</b>\n\n"))
        source = EventSource(URL, reconnect=False)
        source.collect()
    page = source._repr_html_()
    assert "<table>" in page and "CLOSED" in page
    assert "&lt;b&gt;hi&lt;/b&gt;" in page and "<b>hi</b>" not in page  # escaped
    assert "&#x27;7&#x27;" in page and "chunk" in page
