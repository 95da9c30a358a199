"""A small scripted HTTP/1.1 server on 127.0.0.1 for the client's socket-level
tests (drops, stalls, the server seeing a close). Each connection runs the
test's script in a thread. The testing toolkit's SSEServer will replace it.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Connection:
    sock: socket.socket
    request: Request
    closed_by_client: threading.Event = field(default_factory=threading.Event)

    def start(self, status: int = 200, headers: dict[str, str] | None = None) -> None:
        lines = [f"HTTP/1.1 {status} X"]
        merged = {
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "Connection": "close",
        }
        merged.update(headers or {})
        lines += [f"{k}: {v}" for k, v in merged.items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def wait_for_client_close(self, timeout: float = 5.0) -> bool:
        """Block until the client closes the connection (recv returns EOF)."""
        self.sock.settimeout(timeout)
        try:
            while self.sock.recv(1024):
                pass
        except OSError:
            return False
        self.closed_by_client.set()
        return True


Script = Callable[[Connection, int], None]  # (connection, index of this request)


class LoopbackServer:
    """`with LoopbackServer(script) as server:` then connect to server.url."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.requests: list[Request] = []
        self.connections: list[Connection] = []
        self.errors: list[BaseException] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}/stream"

    def __enter__(self) -> LoopbackServer:
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        except OSError:
            pass
        self._listener.close()
        for conn in list(self.connections):
            try:
                conn.sock.close()
            except OSError:
                pass
        for thread in self._threads:
            thread.join(5)
        if self.errors and exc_type is None:
            raise self.errors[0]

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(sock,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, sock: socket.socket) -> None:
        try:
            request = _read_request(sock)
            if request is None:
                return
            conn = Connection(sock, request)
            with self._lock:
                index = len(self.requests)
                self.requests.append(request)
                self.connections.append(conn)
            self.script(conn, index)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away: what several tests do on purpose
        except BaseException as exc:  # reported when the server stops
            self.errors.append(exc)
        finally:
            try:
                sock.close()
            except OSError:
                pass


def _read_request(sock: socket.socket) -> Request | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return Request(method, path, headers, body)
