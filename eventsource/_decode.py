"""Content codings undone in bounded steps: a body's gzip or deflate is
decoded at most ``STEP`` bytes at a time, the compressed bytes not yet
decoded kept by zlib (``max_length``), so a small compressed read that
expands a thousandfold (a compression bomb) costs one step's memory and one
step's parsing between two reads, like any other read.

A source asks only for the codings decoded here (``ACCEPT_ENCODING``); a
coding it does not know passes through as it is, as httpx passes it.
"""

from __future__ import annotations

import zlib

import httpx

__all__ = ["ACCEPT_ENCODING", "STEP", "Decoder", "decoder_for"]

ACCEPT_ENCODING = "gzip, deflate"
STEP = 64 * 1024  # decoded bytes handed on at most per step


class Decoder:
    """One gzip (every member of it) or deflate (zlib-wrapped or raw) body."""

    __slots__ = ("_gzip", "_raw", "_started", "_z")

    def __init__(self, gzip: bool) -> None:
        self._gzip = gzip
        self._raw = False  # deflate without its zlib wrapping (some servers send it)
        self._started = False
        self._z = zlib.decompressobj(16 + zlib.MAX_WBITS if gzip else zlib.MAX_WBITS)

    @property
    def pending(self) -> bool:
        """Compressed bytes wait to be decoded (``more()`` decodes them)."""
        return bool(self._z.unconsumed_tail) or (self._z.eof and bool(self._z.unused_data))

    def decode(self, data: bytes) -> bytes:
        """At most ``STEP`` decoded bytes of these compressed ones; the rest
        is kept for ``more()``. Raises ``httpx.DecodingError``."""
        try:
            return self._decode(data)
        except zlib.error as exc:
            if self._gzip or self._started or self._raw:
                raise httpx.DecodingError(f"cannot decode the body: {exc}") from exc
            self._raw = True  # deflate: try raw
            self._z = zlib.decompressobj(-zlib.MAX_WBITS)
            try:
                return self._decode(data)
            except zlib.error as again:
                raise httpx.DecodingError(f"cannot decode the body: {again}") from again

    def _decode(self, data: bytes) -> bytes:
        z = self._z
        if z.eof:
            # One gzip member ended and bytes follow: the next member.
            data = z.unused_data + data
            if not data:
                return b""
            if not self._gzip:
                return b""  # a deflate stream has one end; what follows is not body
            z = self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        out = z.decompress(data, STEP)
        if out:
            self._started = True
        return out

    def more(self) -> bytes:
        """The next step of what ``decode()`` kept."""
        z = self._z
        return self.decode(z.unconsumed_tail if not z.eof else b"")


def decoder_for(response: httpx.Response) -> Decoder | None:
    """The decoder of the response's body; None when it is not coded (or in
    a coding passed through as it is)."""
    coding = response.headers.get("content-encoding")
    if coding is None:
        return None
    codings = [c.strip().lower() for c in coding.split(",") if c.strip().lower() != "identity"]
    if not codings:
        return None
    if len(codings) > 1:
        raise httpx.DecodingError(f"more than one content coding: {coding}")
    if codings[0] in ("gzip", "x-gzip"):
        return Decoder(gzip=True)
    if codings[0] == "deflate":
        return Decoder(gzip=False)
    return None
