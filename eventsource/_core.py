"""The HTTP cores eventsource's transport runs on: httpcore (httpx's) and
httpcore2 (httpx2's), which have the same public API (network backends,
connection pools, proxies, the exception tree) under another name.

This is the one module that imports a core. The network backend
(``_backend``, ``_abackend``, ``_tls``) is written once: a backend is made
for one ``Core`` and its streams raise that core's exceptions, which the
core's pool (and httpx's or httpx2's error mapping) expects.
"""

from __future__ import annotations

import importlib
import threading
from typing import Any

import httpcore

__all__ = ["HTTPCORE", "Core", "core_named", "loaded_cores"]


class Core:
    """The names of one HTTP core the transport raises and builds on."""

    __slots__ = (
        "connect_error",
        "connect_timeout",
        "io_errors",
        "module",
        "name",
        "protocol_error",
        "read_error",
        "read_timeout",
        "unsupported_protocol",
        "write_error",
        "write_timeout",
    )

    def __init__(self, module: Any) -> None:
        self.module = module
        self.name: str = module.__name__
        self.connect_error: type[Exception] = module.ConnectError
        self.connect_timeout: type[Exception] = module.ConnectTimeout
        self.read_error: type[Exception] = module.ReadError
        self.read_timeout: type[Exception] = module.ReadTimeout
        self.write_error: type[Exception] = module.WriteError
        self.write_timeout: type[Exception] = module.WriteTimeout
        self.unsupported_protocol: type[Exception] = module.UnsupportedProtocol
        self.protocol_error: type[Exception] = module.ProtocolError
        # What a read or write of a stream may raise (the backend's streams
        # raise nothing else on I/O).
        self.io_errors: tuple[type[Exception], ...] = (
            module.NetworkError,
            module.TimeoutException,
        )

    def __repr__(self) -> str:
        return f"Core({self.name})"


HTTPCORE = Core(httpcore)
_cores: dict[str, Core] = {"httpcore": HTTPCORE}
_lock = threading.Lock()  # one Core a module, whichever threads ask first


def core_named(name: str) -> Core:
    """The core of that module name ("httpcore", "httpcore2"), imported on
    first use. ImportError when it is not installed."""
    core = _cores.get(name)
    if core is not None:
        return core
    if name not in ("httpcore", "httpcore2"):
        raise ValueError(f"not an HTTP core eventsource knows: {name!r}")
    with _lock:
        core = _cores.get(name)
        if core is not None:
            return core
        module = importlib.import_module(name)
        # httpx2's alias_httpx() makes "httpcore" httpcore2 itself: one core.
        same = [known for known in _cores.values() if known.module is module]
        core = _cores[name] = same[0] if same else Core(module)
    return core


def loaded_cores() -> tuple[Core, ...]:
    """The cores in use so far (an error of any of them may reach the driver)."""
    return tuple(_cores.values())
