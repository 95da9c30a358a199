"""Content codings undone in bounded steps: a body's gzip or deflate is
decoded at most ``STEP`` bytes at a time, the compressed bytes not yet
decoded kept by zlib (``max_length``), so a small compressed read that
expands a thousandfold (a compression bomb) costs one step's memory and one
step's parsing between two reads, like any other read.

A source's own client asks only for the codings decoded here
(``ACCEPT_ENCODING``). Another coding (a client of the user's own may ask
for br or zstd) is left to httpx's decoders: correct, and unbounded.
"""

from __future__ import annotations

import zlib

import httpx

__all__ = ["ACCEPT_ENCODING", "STEP", "Chain", "Decoder", "coding_of", "decoder_for"]

ACCEPT_ENCODING = "gzip, deflate"
STEP = 64 * 1024  # decoded bytes handed on at most per step
_GZIP_MAGIC = b"\x1f\x8b"


class Decoder:
    """One gzip (every member of it) or deflate (zlib-wrapped or raw) body."""

    __slots__ = ("_full", "_gzip", "_raw", "_started", "_z")

    def __init__(self, gzip: bool) -> None:
        self._gzip = gzip
        self._raw = False  # deflate without its zlib wrapping (some servers send it)
        self._started = False
        self._full = False  # the last step was a whole STEP: zlib may hold more output
        self._z = zlib.decompressobj(16 + zlib.MAX_WBITS if gzip else zlib.MAX_WBITS)

    @property
    def pending(self) -> bool:
        """Decoded bytes may wait (``more()`` hands them on)."""
        z = self._z
        if z.eof:
            # After the end: only another gzip member is more body.
            return self._gzip and z.unused_data[:2] == _GZIP_MAGIC
        return self._full or bool(z.unconsumed_tail)

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
            # The stream ended. Bytes after it are another gzip member, or
            # padding that httpx ignores too; a deflate stream has one end.
            data = z.unused_data + data
            if not self._gzip or not data or data[:2] != _GZIP_MAGIC[: len(data)]:
                self._full = False
                return b""
            z = self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        out = z.decompress(data, STEP)
        self._full = len(out) == STEP
        if out:
            self._started = True
        return out

    def more(self) -> bytes:
        """The next step of what ``decode()`` kept."""
        z = self._z
        return self.decode(b"" if z.eof else z.unconsumed_tail)


class Chain:
    """Codings applied one after another (``gzip, gzip``), undone from the
    last, every step bounded: the outer decoder's step is the inner's input."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, outer: Decoder | Chain, inner: Decoder) -> None:
        self._outer = outer  # undone first (the coding applied last)
        self._inner = inner

    @property
    def pending(self) -> bool:
        return self._inner.pending or self._outer.pending

    def decode(self, data: bytes) -> bytes:
        return self._inner.decode(self._outer.decode(data))

    def more(self) -> bytes:
        if self._inner.pending:
            return self._inner.more()
        return self._inner.decode(self._outer.more())


_OURS = {"gzip": True, "x-gzip": True, "deflate": False}


def _codings(response: httpx.Response) -> list[str]:
    coding = response.headers.get("content-encoding", "")
    return [c for c in (c.strip().lower() for c in coding.split(",")) if c not in ("", "identity")]


def coding_of(response: httpx.Response) -> str:
    """ "identity", "ours" (gzip and deflate, one or several: decoded here) or
    "other" (another coding among them: httpx's own decoders)."""
    codings = _codings(response)
    if not codings:
        return "identity"
    return "ours" if all(c in _OURS for c in codings) else "other"


def decoder_for(response: httpx.Response) -> Decoder | Chain | None:
    """The decoder of a body whose codings are "ours"; None otherwise."""
    if coding_of(response) != "ours":
        return None
    codings = _codings(response)
    decoder: Decoder | Chain = Decoder(gzip=_OURS[codings[-1]])  # applied last, undone first
    for coding in reversed(codings[:-1]):
        decoder = Chain(decoder, Decoder(gzip=_OURS[coding]))
    return decoder
