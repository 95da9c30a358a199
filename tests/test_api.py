"""The public surface: what is exported, typed, and mirrored sync/async."""

from __future__ import annotations

import inspect
from pathlib import Path

import eventsource
from eventsource import EventSource


def test_all_is_exactly_the_public_api() -> None:
    assert sorted(eventsource.__all__) == sorted(
        [
            "DEFAULT_RETRY_STATUSES",
            "ConnectError",
            "ConnectionLostError",
            "EventSource",
            "EventIdError",
            "EventSourceError",
            "EventTooLargeError",
            "ReadTimeoutError",
            "ReadyState",
            "ResponseError",
            "RetriesExhaustedError",
            "SSEParser",
            "ServerSentEvent",
            "__version__",
            "format_event",
            "parse",
        ]
    )
    public = {
        name
        for name in dir(eventsource)
        if not name.startswith("_") and not inspect.ismodule(getattr(eventsource, name))
    }
    assert public <= set(eventsource.__all__)  # subpackages such as eventsource.testing aside
    for name in eventsource.__all__:
        obj = getattr(eventsource, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert obj.__doc__, f"{name} has no docstring"


def test_errors_share_one_base() -> None:
    for name in eventsource.__all__:
        obj = getattr(eventsource, name)
        if inspect.isclass(obj) and issubclass(obj, Exception):
            assert issubclass(obj, eventsource.EventSourceError)


def test_sync_and_async_surfaces_match() -> None:
    pairs = {
        "__iter__": "__aiter__",
        "__next__": "__anext__",
        "__enter__": "__aenter__",
        "__exit__": "__aexit__",
        "run": "arun",
        "close": "aclose",
        "collect": "acollect",
    }
    for sync_name, async_name in pairs.items():
        sync = getattr(EventSource, sync_name)
        async_ = getattr(EventSource, async_name)
        assert not inspect.iscoroutinefunction(sync), sync_name
        if async_name not in ("__aiter__",):
            assert inspect.iscoroutinefunction(async_), async_name
        sync_params = list(inspect.signature(sync).parameters)
        async_params = list(inspect.signature(async_).parameters)
        assert sync_params == async_params, (sync_name, async_name)
    public = {name for name in dir(EventSource) if not name.startswith("_")}
    for name in public:
        if name.startswith("a") and name[1:] in public:
            assert name[1:] in pairs.keys() or name in pairs.values()


def test_py_typed_ships() -> None:
    assert (Path(eventsource.__file__).parent / "py.typed").exists()
