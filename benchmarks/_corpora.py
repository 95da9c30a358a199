"""Deterministic SSE corpora for the parser benchmark.

Every corpus is generated in memory from a seeded ``random.Random`` so that runs are
comparable across machines and library versions. Each corpus also records its ground
truth (number of events and total length of their ``data`` in characters).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass

CHUNK_FIXED = 64 * 1024
RANDOM_CHUNK_MIN = 1
RANDOM_CHUNK_MAX = 100

# Mostly ASCII tokens, with some multi-byte UTF-8 (2-, 3- and 4-byte sequences) mixed in
# so that incremental UTF-8 decoding across chunk boundaries is exercised.
# fmt: off
_TOKENS = (
    "the", " the", " a", " of", " and", " to", " in", " is", " it", " that", " for",
    " model", " token", " stream", " event", " server", " client", " data", " parse",
    " über", " naïve", " café", " 日本", " 東京", " façade", " Ω", " ß", " — ", " 🙂",
    ",", ".", "!", "?", "\n", " 42", " 3.14", ' "quoted"', " back\\slash", "\t",
)
# fmt: on


@dataclass(frozen=True)
class Corpus:
    """A generated SSE byte stream plus its ground truth."""

    name: str
    description: str
    data: bytes
    events: int
    data_chars: int


def _text(rng: random.Random, min_tokens: int, max_tokens: int) -> str:
    return "".join(rng.choice(_TOKENS) for _ in range(rng.randint(min_tokens, max_tokens)))


def make_llm(n_events: int = 200_000, seed: int = 1) -> Corpus:
    """LLM-style token stream: ``event: chunk`` / ``id: N`` / one JSON ``data:`` line."""
    rng = random.Random(seed)
    parts: list[str] = []
    data_chars = 0
    for i in range(n_events):
        payload = json.dumps({"content": _text(rng, 1, 4)}, ensure_ascii=False)
        data_chars += len(payload)
        parts.append(f"event: chunk\nid: {i}\ndata: {payload}\n\n")
    return Corpus(
        "llm",
        f"{n_events:,} LLM-style events (LF, event+id+one JSON data line, UTF-8)",
        "".join(parts).encode(),
        n_events,
        data_chars,
    )


def make_multiline(n_events: int = 20_000, seed: int = 2) -> Corpus:
    """CRLF stream: comment, ``event:``, ``id:`` and 3-6 ``data:`` lines per event."""
    rng = random.Random(seed)
    parts: list[str] = []
    data_chars = 0
    for i in range(n_events):
        # Data lines must not contain line breaks themselves.
        lines = [_text(rng, 3, 12).replace("\n", " ") for _ in range(rng.randint(3, 6))]
        data_chars += sum(map(len, lines)) + len(lines) - 1
        body = "".join(f"data: {line}\r\n" for line in lines)
        parts.append(f": keepalive\r\nevent: update\r\nid: {i}\r\n{body}\r\n")
    return Corpus(
        "multiline",
        f"{n_events:,} CRLF events (comment, event, id, 3-6 data lines)",
        "".join(parts).encode(),
        n_events,
        data_chars,
    )


def _blob(rng: random.Random, size: int) -> str:
    """JSON-ish text that is exactly ``size`` UTF-8 bytes long and has no line breaks."""
    pieces: list[str] = ['{"items": [']
    n = len(pieces[0])
    i = 0
    while n < size:
        word = _text(rng, 1, 3).replace("\n", " ").replace('"', "'").replace("\\", "/")
        piece = f'{{"i": {i}, "w": "{word}"}}, '
        pieces.append(piece)
        n += len(piece.encode())
        i += 1
    raw = "".join(pieces).encode()[:size]
    # Trimming may cut a multi-byte sequence; drop the partial one and pad with ASCII.
    text = raw.decode(errors="ignore")
    return text + " " * (size - len(text.encode()))


def make_large(n_events: int = 200, size: int = 64 * 1024, seed: int = 3) -> Corpus:
    """Few big events: one ``data:`` line of ``size`` bytes each."""
    rng = random.Random(seed)
    parts: list[str] = []
    data_chars = 0
    for i in range(n_events):
        blob = _blob(rng, size)
        data_chars += len(blob)
        parts.append(f"id: {i}\ndata: {blob}\n\n")
    return Corpus(
        "large",
        f"{n_events:,} events with one {size // 1024} KiB data line each (JSON-ish, LF)",
        "".join(parts).encode(),
        n_events,
        data_chars,
    )


def make_corpora(scale: int = 1) -> list[Corpus]:
    """All corpora; ``scale`` divides the event counts (``--quick`` uses 5)."""
    return [
        make_llm(200_000 // scale),
        make_multiline(20_000 // scale),
        make_large(200 // scale),
    ]


def fixed_chunks(data: bytes, size: int = CHUNK_FIXED) -> list[bytes]:
    """Split ``data`` into ``size``-byte chunks (the last may be shorter)."""
    return [data[i : i + size] for i in range(0, len(data), size)]


def random_chunks(
    data: bytes, seed: int = 4, lo: int = RANDOM_CHUNK_MIN, hi: int = RANDOM_CHUNK_MAX
) -> list[bytes]:
    """Split ``data`` into chunks of seeded random length in ``[lo, hi]`` bytes."""
    rng = random.Random(seed)
    chunks: list[bytes] = []
    i = 0
    while i < len(data):
        j = i + rng.randint(lo, hi)
        chunks.append(data[i:j])
        i = j
    return chunks
