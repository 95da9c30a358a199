"""Connecting to a host's addresses on asyncio.

Happy Eyeballs (RFC 8305), as anyio's and trio's connects race them, so that an
address that never answers (a black-holed IPv6 route, say) costs
``HAPPY_EYEBALLS_DELAY``, not the whole connect timeout. ``_abackend`` makes
its asyncio streams on the socket this returns.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterable
from typing import Any

import anyio

from ._backend import configure

__all__ = ["HAPPY_EYEBALLS_DELAY", "first_connected", "interleaved"]

HAPPY_EYEBALLS_DELAY = 0.25  # seconds before the next address is tried (RFC 8305)


def interleaved(infos: list[Any]) -> list[Any]:
    """The resolver's addresses with the families alternating.

    Its first family first (RFC 8305, section 4).
    """
    first = [info for info in infos if info[0] == infos[0][0]]
    other = [info for info in infos if info[0] != infos[0][0]]
    mixed: list[Any] = []
    for i in range(max(len(first), len(other))):
        mixed.extend(pair[i] for pair in (first, other) if i < len(pair))
    return mixed


async def first_connected(
    loop: asyncio.AbstractEventLoop,
    infos: list[Any],
    local_address: str | None,
    options: Iterable[Any] | None,
) -> socket.socket:
    """A socket connected to one of the addresses.

    Happy Eyeballs (RFC 8305), as anyio and trio connect: an attempt starts
    when the one before failed or has waited ``HAPPY_EYEBALLS_DELAY``; the
    first to connect wins and the others are cancelled and closed.
    """
    options = list(options or ())

    async def connect(info: Any) -> socket.socket:
        family, kind, proto, _, address = info
        sock = socket.socket(family, kind, proto)
        try:
            sock.setblocking(False)
            configure(sock, options)
            if local_address is not None:
                sock.bind((local_address, 0))
            await loop.sock_connect(sock, address)
        except BaseException:
            sock.close()
            raise
        return sock

    if len(infos) == 1:  # (an address, say: no race to run)
        return await connect(infos[0])
    won: list[socket.socket] = []
    errors: list[OSError] = []
    broken: list[Exception] = []  # an attempt's own error (not the network's): raised as it is

    async def attempt(info: Any, failed: anyio.Event) -> None:
        try:
            sock = await connect(info)
        except OSError as exc:
            errors.append(exc)
            failed.set()
            return
        except Exception as exc:
            broken.append(exc)
            group.cancel_scope.cancel()
            return
        if won:  # another connected in the same turn
            sock.close()
            return
        won.append(sock)
        group.cancel_scope.cancel()

    try:
        async with anyio.create_task_group() as group:
            for info in infos:
                failed = anyio.Event()
                group.start_soon(attempt, info, failed)
                with anyio.move_on_after(HAPPY_EYEBALLS_DELAY):
                    await failed.wait()
    except BaseException:
        for sock in won:  # connected as the caller's scope ended the race
            sock.close()
        raise
    if broken:
        for sock in won:
            sock.close()
        raise broken[0]
    if won:
        return won[0]
    if len(errors) == 1:
        raise errors[0]
    raise OSError(f"all attempts to connect failed: {', '.join(map(str, errors))}")
