"""Chunked decoding throughput: eventsource's ChunkedDecoder vs. h11's reader.

Both decode the same pre-split socket reads of a chunked body (no I/O); only the
decoding is timed, median of --repeat runs. MB/s counts body bytes. Not part of
CI. Run ``python -m benchmarks.chunked_bench [--quick] [--repeat N]``.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable

import h11

from eventsource._chunked import ChunkedDecoder

HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"


def body(sizes: list[int]) -> tuple[bytes, list[bytes]]:
    """A chunked body of one SSE-like event per chunk, and its chunks' wire form."""
    chunks = []
    for i, size in enumerate(sizes):
        event = (b"data: %d " % i + b"x" * size)[: size - 2] + b"\n\n"
        chunks.append(b"%x\r\n%s\r\n" % (len(event), event))
    return b"".join(chunks) + b"0\r\n\r\n", chunks


def in_reads(wire: bytes, size: int) -> list[bytes]:
    return [wire[i : i + size] for i in range(0, len(wire), size)]


def run_ours(reads: list[bytes]) -> int:
    decoder = ChunkedDecoder()
    feed = decoder.feed
    total = 0
    for read in reads:
        total += len(feed(read))
    decoder.close()
    return total


def run_h11(reads: list[bytes]) -> int:
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method="GET", target="/", headers=[("Host", "example")]))
    conn.send(h11.EndOfMessage())
    conn.receive_data(HEAD)
    conn.next_event()
    total = 0
    for read in reads:
        conn.receive_data(read)
        while True:
            event = conn.next_event()
            if type(event) is h11.Data:
                total += len(event.data)
            elif event is h11.NEED_DATA or type(event) is h11.EndOfMessage:
                break
    return total


def timed(run: Callable[[list[bytes]], int], reads: list[bytes], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run(reads)
        times.append(time.perf_counter() - start)
    return min(times)  # the best run: the least disturbed by other processes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smaller body")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    count = 20_000 if args.quick else 200_000
    rng = random.Random(1)
    cases = []
    wire, _ = body([100] * count)
    cases.append(("100-byte chunks, 64 KiB reads", in_reads(wire, 65536), count))
    wire, _ = body([rng.randint(20, 200) for _ in range(count)])
    cases.append(("20-200 byte chunks, 64 KiB reads", in_reads(wire, 65536), count))
    wire, chunks = body([100] * (count // 4))
    cases.append(("100-byte chunks, one per read", [*chunks, b"0\r\n\r\n"], count // 4))
    cuts, at = [], 0
    while at < len(wire):
        step = rng.randint(1, 100)
        cuts.append(wire[at : at + step])
        at += step
    cases.append(("100-byte chunks, 1-100 byte reads", cuts, count // 4))

    print(f"{'case':36} {'decoder':16} {'MB/s':>8} {'chunks/s':>12} {'vs h11':>7}")
    for name, reads, n_chunks in cases:
        size = run_ours(reads)
        assert size == run_h11(reads)
        ours = timed(run_ours, reads, args.repeat)
        theirs = timed(run_h11, reads, args.repeat)
        for label, seconds in (("ChunkedDecoder", ours), ("h11", theirs)):
            speed = f"{theirs / seconds:6.1f}x"
            print(
                f"{name:36} {label:16} {size / seconds / 1e6:8.1f}"
                f" {n_chunks / seconds:12,.0f} {speed:>7}"
            )


if __name__ == "__main__":
    main()
