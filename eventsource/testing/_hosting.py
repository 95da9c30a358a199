"""SSEServer's hosting on asyncio: its serving in a task of its own."""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager

import anyio

from .._abackend import _on_trio

__all__ = ["Hosted", "on_asyncio"]


def on_asyncio() -> bool:
    """Whether asyncio runs this task.

    Trio in guest mode runs inside an asyncio loop: it is asked first.
    """
    return not _on_trio()


_STOP_TIMEOUT = 10.0  # seconds a hosted server may take to stop, at most


class Hosted:
    """A server's ``_serve()`` run in an asyncio task of its own.

    So that any task may stop it (asyncio only: trio's tasks live in
    nurseries).
    """

    def __init__(self, task: asyncio.Task[None], stop: asyncio.Event) -> None:
        self._task = task
        self._stop = stop

    @classmethod
    async def start(cls, serving: AbstractAsyncContextManager[None]) -> Hosted:
        started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        stop = asyncio.Event()

        async def host() -> None:
            async with serving:
                started.set_result(None)
                await stop.wait()

        task = asyncio.get_running_loop().create_task(host())
        try:
            await asyncio.wait({task, started}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            task.cancel()
            with anyio.CancelScope(shield=True), anyio.move_on_after(_STOP_TIMEOUT):
                await asyncio.wait({task})  # its listener closed before we go on
            raise
        if task.done():
            task.result()  # the server failed to start: its error
        return cls(task, stop)

    async def __aexit__(self, *exc_info: object) -> None:
        self._stop.set()
        with anyio.CancelScope(shield=True), anyio.move_on_after(_STOP_TIMEOUT):
            await asyncio.wait({self._task})
        if not self._task.done():  # a shutdown stuck past the deadline
            self._task.cancel()
            return
        self._task.result()  # an error of the server's shutdown
