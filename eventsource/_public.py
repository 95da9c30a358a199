"""``@public``: an exception that ``eventsource`` exports says so.

In its ``__module__``, so that tracebacks print
``eventsource.ResponseError``, as httpx's do. Only the exceptions:
``inspect.getsource()`` (IPython's ``??``, pdb) finds a class through its
module, and the classes a notebook user inspects keep theirs.
"""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")

__all__ = ["public"]


def public(obj: T) -> T:
    """Mark a class or function as ``eventsource``'s."""
    obj.__module__ = "eventsource"
    return obj
