"""Throwaway local HTTP servers for hostile-server tests: a canned answer, every byte recorded.

A :class:`RecordingServer` plays either side a test needs: the "third party" a redirect or a
proxy would send the client to (it counts what arrives there, so a test can show that no
password byte did), or a server with one fixed, hand-made reply (a windows-1251 error, a
JSON-escaped secret) that the simulator has no mode for.
"""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from urllib.parse import quote, quote_plus

#: The head a recording server reads before answering is bounded; so is the body.
_MAX_HEAD = 64 * 1024
_MAX_BODY = 1024 * 1024


def http_reply(
    body: bytes, content_type: str = "application/json; charset=utf-8", status: int = 200
) -> bytes:
    """A whole HTTP/1.1 response, closing the connection after it."""
    head = (
        f"HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body


BAD_GATEWAY = http_reply(b"", "text/plain", 502)


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.settimeout(5)
        received = bytearray()
        try:
            while b"\r\n\r\n" not in received and len(received) < _MAX_HEAD:
                data = sock.recv(65536)
                if not data:
                    break
                received += data
            head, _, body = bytes(received).partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length" and value.strip().isdigit():
                    length = min(int(value.strip()), _MAX_BODY)
            while len(body) < length:
                data = sock.recv(65536)
                if not data:
                    break
                body += data
                received += data
            with self.server.lock:
                self.server.received.append(bytes(received))
            sock.sendall(self.server.answer)
        except OSError:
            with self.server.lock:
                self.server.received.append(bytes(received))


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.lock = threading.Lock()
        self.received: list[bytes] = []
        super().__init__(("127.0.0.1", 0), _Handler)


class RecordingServer:
    """A local server answering every request with ``answer``; it keeps what it received."""

    def __init__(self, server: _Server) -> None:
        self._server = server

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def received(self) -> list[bytes]:
        """Each connection's bytes (request line, headers, body), oldest first."""
        with self._server.lock:
            return list(self._server.received)

    def set_answer(self, answer: bytes) -> None:
        self._server.answer = answer

    def clear(self) -> None:
        with self._server.lock:
            self._server.received.clear()

    def secret_bytes(self, secret: str) -> int:
        """How many bytes of ``secret`` arrived here, in any spelling a request could use."""
        return sum(secret_count(data, secret) * len(secret) for data in self.received)


def secret_count(data: bytes, secret: str) -> int:
    """Occurrences of ``secret`` in ``data``, as written or URL/form-encoded."""
    forms = {secret, quote(secret, safe=""), quote_plus(secret)}
    return sum(data.count(form.encode()) for form in forms if form)


@contextmanager
def recording_server(answer: bytes = BAD_GATEWAY) -> Iterator[RecordingServer]:
    """A :class:`RecordingServer` serving in a daemon thread until the block ends."""
    server = _Server(answer)
    thread = threading.Thread(target=server.serve_forever, name="recording-server", daemon=True)
    thread.start()
    try:
        yield RecordingServer(server)
    finally:
        server.shutdown()
        server.server_close()


def form_fields(request: bytes) -> Mapping[str, str]:
    """The urlencoded body of a recorded request, decoded (for checking what was sent)."""
    from urllib.parse import parse_qsl

    _, _, body = request.partition(b"\r\n\r\n")
    return dict(parse_qsl(body.decode("latin-1")))
