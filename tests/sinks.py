"""Local sinks for what alerts and metrics send: a webhook, an SMTP server, a StatsD port."""

from __future__ import annotations

import email
import json
import socket
import threading
from dataclasses import dataclass
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller

from devtools.airflow_stack import free_port


def require_statsd() -> None:
    """Fail loudly, not silently: without the ``statsd`` package Airflow sends no StatsD."""
    try:
        import statsd  # noqa: F401
    except ImportError:
        raise AssertionError(
            "the statsd package (Airflow's StatsD client, in its official image) is not "
            "installed: it belongs in requirements-dev.txt as statsd==4.0.1"
        ) from None


class WebhookSink:
    """A local HTTP server that keeps every JSON body POSTed to it."""

    def __init__(self) -> None:
        bodies: list[dict[str, Any]] = []
        self.bodies = bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/smsc?token=t0ken"

    def __enter__(self) -> WebhookSink:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class SmtpSink:
    """aiosmtpd on a free port, keeping every message it is handed."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"

    def __enter__(self) -> SmtpSink:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()


class UdpSink:
    """Every StatsD datagram sent to a local UDP port."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.lines: list[str] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._receive, daemon=True)

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65535)
            except TimeoutError:
                continue
            self.lines += data.decode(errors="replace").splitlines()

    def __enter__(self) -> UdpSink:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.thread.join(timeout=2)
        self.sock.close()


@dataclass
class StatsdLine:
    name: str
    tags: dict[str, str]
    value: float
    kind: str


def parse_statsd(line: str) -> StatsdLine:
    """``airflow.smsc.api_calls,account=demo,outcome=ok:1|c`` (InfluxDB-style tags)."""
    head, _, rest = line.rpartition(":")
    value, kind = rest.split("|")[:2]
    name, *tags = head.split(",")
    return StatsdLine(name, dict(tag.split("=", 1) for tag in tags), float(value), kind)
