"""Shared pieces of the benchmark scripts: result tables, the machine description,
and the loopback server process."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUBJECT = "eventsource"


@dataclass
class Table:
    """One result table: a title, column headers, rows of cells, and notes
    (printed under the table: what was measured, mismatches, errors)."""

    title: str
    headers: Sequence[str]
    rows: list[Sequence[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    numeric_from: int = 1  # columns from this index on are right-aligned

    def text(self) -> str:
        cols = range(len(self.headers))
        table = [list(self.headers), *[list(r) for r in self.rows]]
        widths = [max(len(r[i]) for r in table) for i in cols]

        def line(r: Sequence[str]) -> str:
            cells = [
                c.rjust(w) if i >= self.numeric_from else c.ljust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=False))
            ]
            return "  ".join(cells).rstrip()

        out = [self.title, "", line(self.headers), "  ".join("-" * w for w in widths)]
        out += [line(r) for r in self.rows]
        out += [f"  {n}" for n in self.notes]
        return "\n".join(out)

    def markdown(self, level: str = "###") -> str:
        align = [":---" if i < self.numeric_from else "---:" for i in range(len(self.headers))]
        out = [f"{level} {self.title}", ""]
        out += ["| " + " | ".join(self.headers) + " |", "| " + " | ".join(align) + " |"]
        for r in self.rows:
            first = f"**{r[0]}**" if r[0].startswith(SUBJECT) else r[0]
            out.append("| " + " | ".join((first, *r[1:])) + " |")
        if self.notes:
            out.append("")
            out += [f"- {n}" for n in self.notes]
        return "\n".join(out)


def ratio(value: float, reference: float | None) -> str:
    return f"{value / reference:.2f}x" if reference else "-"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except (AttributeError, OSError):  # not available on Windows
        return "n/a"


def nproc() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not available on macOS / Windows
        return os.cpu_count() or 1


def environment(dists: Sequence[str]) -> list[str]:
    """Date, machine, Python and library versions, one item a line."""
    now = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return [
        f"Date: {now}",
        f"Machine: nproc {nproc()}, {cpu_model()}, {platform.system()} {platform.machine()}",
        f"Python: {platform.python_implementation()} {platform.python_version()}"
        f"; load average: {loadavg()}",
        "Libraries: " + ", ".join(f"{d} {version(d)}" for d in dists),
    ]


def write_markdown(path: str, tables: Sequence[Table], dists: Sequence[str]) -> None:
    """Write the environment (as a list) and the tables as Markdown to ``path``."""
    lines = [f"- {line}" for line in environment(dists)]
    lines += ["", *(t.markdown() + "\n" for t in tables)]
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))


class ServerProcess:
    """``benchmarks._server`` in a child process: its port and its stdin commands.
    ``cafile`` is the CA a client must trust in the TLS mode (``None`` on plain TCP)."""

    def __init__(self, proc: subprocess.Popen[str], port: int, cafile: str | None = None) -> None:
        self.proc = proc
        self.port = port
        self.cafile = cafile
        self.base = f"{'https' if cafile else 'http'}://127.0.0.1:{port}"

    def command(self, line: str) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()


@contextmanager
def server_process(tls: bool = False) -> Iterator[ServerProcess]:
    """Start the loopback benchmark server in its own process; stop it after.
    With ``tls``, it serves HTTPS with a certificate for 127.0.0.1 from a throwaway
    trustme CA (the server's ``cafile`` names the CA's PEM file)."""
    with tempfile.TemporaryDirectory(prefix="eventsource-bench-") as tmp:
        args: list[str] = []
        cafile = None
        if tls:
            import trustme  # the test extra's; only the TLS mode needs it

            ca = trustme.CA()
            cert = ca.issue_cert("127.0.0.1", "localhost")
            cafile = os.path.join(tmp, "ca.pem")
            chain, key = os.path.join(tmp, "chain.pem"), os.path.join(tmp, "key.pem")
            ca.cert_pem.write_to_path(cafile)
            cert.private_key_pem.write_to_path(key)
            for i, blob in enumerate(cert.cert_chain_pems):
                blob.write_to_path(chain, append=i > 0)
            args = ["--tls", chain, key]
        with _started(args, cafile) as server:
            yield server


@contextmanager
def _started(args: list[str], cafile: str | None) -> Iterator[ServerProcess]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks._server", *args],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().split()
        if len(first) != 2 or first[0] != "PORT":
            raise RuntimeError(f"benchmark server did not start: {first!r}")
        yield ServerProcess(proc, int(first[1]), cafile)
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
