"""Content codings undone in bounded steps.

A body's gzip or deflate is decoded at most ``STEP`` bytes at a time, the
compressed bytes not yet decoded kept by zlib (``max_length``), so a small
compressed read that expands a thousandfold (a compression bomb) costs one
step's memory and one step's parsing between two reads, like any other read.

A source's own client asks only for the codings decoded here
(``ACCEPT_ENCODING``) and refuses a response in br or zstd (its transport).
On a client of the user's own, which may ask for them, those are left to
httpx's decoders: correct, and unbounded. A coding that neither knows is
skipped, as httpx skips it.
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._stack import Response

__all__ = [
    "ACCEPT_ENCODING",
    "BodyDecodingError",
    "MAX_CODINGS",
    "STEP",
    "Decoder",
    "Layers",
    "coding_of",
    "decoder_for",
    "foreign_coding",
]

ACCEPT_ENCODING = "gzip, deflate"
STEP = 64 * 1024  # decoded bytes handed on at most per step
MAX_CODINGS = 5  # content codings one body may name (httpx2 refuses more too)
_GZIP_MAGIC = b"\x1f\x8b"


class BodyDecodingError(Exception):
    """A body whose content coding cannot be undone.

    The connection is as good as lost: ``_httpx.classify`` says so.
    """


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
        """At most ``STEP`` decoded bytes of these compressed ones.

        The rest is kept for ``more()``. Raises ``BodyDecodingError``.
        """
        try:
            return self._decode(data)
        except zlib.error as exc:
            if self._gzip or self._started or self._raw:
                raise BodyDecodingError(f"cannot decode the body: {exc}") from exc
            self._raw = True  # deflate: try raw
            self._z = zlib.decompressobj(-zlib.MAX_WBITS)
            try:
                return self._decode(data)
            except zlib.error as again:
                raise BodyDecodingError(f"cannot decode the body: {again}") from again

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


class Layers:
    """Codings applied one after another (``gzip, gzip``), undone from the last.

    Every step is bounded: a layer's step is the next one's input. More than
    ``MAX_CODINGS`` layers is a body that cannot be decoded (a decoder's state
    costs tens of KiB: a long header must not cost more).
    """

    __slots__ = ("_layers",)

    def __init__(self, layers: list[Decoder]) -> None:
        self._layers = layers  # in the order they are undone

    @property
    def pending(self) -> bool:
        return any(layer.pending for layer in self._layers)

    def decode(self, data: bytes) -> bytes:
        layers = self._layers
        if len(layers) > MAX_CODINGS:
            raise BodyDecodingError(
                f"cannot decode the body: {len(layers)} content codings (at most {MAX_CODINGS})"
            )
        for layer in layers:
            data = layer.decode(data)
        return data

    def more(self) -> bytes:
        layers = self._layers
        # The innermost layer with output waiting goes first: what it hands
        # on passes through the layers after it.
        for i in range(len(layers) - 1, -1, -1):
            if layers[i].pending:
                data = layers[i].more()
                for layer in layers[i + 1 :]:
                    data = layer.decode(data)
                return data
        return b""


_OURS = {"gzip": True, "x-gzip": True, "deflate": False}
# Codings that httpx decodes when their library is installed; it skips any
# other one it does not know, and so does eventsource.
_HTTPX_ONLY = frozenset({"br", "zstd"})


def _codings(response: Response) -> list[str]:
    coding = response.headers.get("content-encoding", "")
    codings = (c.strip().lower() for c in coding.split(","))
    return [c for c in codings if c in _OURS or c in _HTTPX_ONLY]


def coding_of(response: Response) -> str:
    """What kind of content coding a response has.

    "identity", "ours" (gzip and deflate, one or several: decoded here) or
    "other" (br or zstd among them: httpx's own decoders, on a user's client; a
    source's own client refuses them, see ``foreign_coding()``).
    """
    codings = _codings(response)
    if not codings:
        return "identity"
    return "other" if any(c in _HTTPX_ONLY for c in codings) else "ours"


def foreign_coding(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The Content-Encoding of a head, if a source's own client did not ask for it.

    When it names a coding that such a client would leave to httpx (br, zstd);
    None otherwise.
    """
    for name, value in headers:
        if name.lower() == b"content-encoding":
            text = value.decode("latin-1")
            if any(c.strip().lower() in _HTTPX_ONLY for c in text.split(",")):
                return text
    return None


def decoder_for(response: Response) -> Decoder | Layers | None:
    """The decoder of a body whose codings are "ours"; None otherwise."""
    if coding_of(response) != "ours":
        return None
    codings = _codings(response)
    if len(codings) == 1:
        return Decoder(gzip=_OURS[codings[0]])
    # The coding applied last is undone first.
    return Layers([Decoder(gzip=_OURS[c]) for c in reversed(codings[: MAX_CODINGS + 1])])
