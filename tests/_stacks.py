"""The two HTTP stacks (issue 22) as a test parameter: a toolkit test that
runs for httpx2 runs for httpx too, so the two behave the same."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType
from typing import Any

import pytest

HAS_HTTPX2 = importlib.util.find_spec("httpx2") is not None

#: ``@pytest.mark.parametrize("http", STACKS)``: the stack's module name.
STACKS = [
    pytest.param("httpx", id="httpx"),
    pytest.param(
        "httpx2",
        id="httpx2",
        marks=pytest.mark.skipif(not HAS_HTTPX2, reason="httpx2 is not installed (the extra)"),
    ),
]


def module(http: str) -> ModuleType:
    """The stack's client module (httpx or httpx2)."""
    return importlib.import_module(http)


def client(http: str, mode: str, **kwargs: Any) -> Any:
    """A client of the stack: sync for the sync mode, else async."""
    stack = module(http)
    return stack.Client(**kwargs) if mode == "sync" else stack.AsyncClient(**kwargs)
