"""``@public``: a name that ``eventsource`` exports says so in its
``__module__`` (tracebacks print ``eventsource.ResponseError``, pickling and
the docs find it there), as httpx does for its public names."""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")

__all__ = ["public"]


def public(obj: T) -> T:
    """Mark a class or function as ``eventsource``'s."""
    obj.__module__ = "eventsource"
    return obj
