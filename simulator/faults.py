"""Transport and API faults the simulator can inject, and the FIFO queue that doles them out.

Besides a flaky network and API errors, the simulator can play a hostile server (``HOSTILE``):
redirects anywhere, a gzip bomb, an endless or a huge body, a drip of one byte at a time, and
values no real reply holds. :func:`serve_hostile` writes those replies.
"""

from __future__ import annotations

import functools
import hashlib
import json
import threading
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from http.server import BaseHTTPRequestHandler
from typing import Any
from xml.sax.saxutils import escape

HOSTILE = ("redirect", "bomb", "endless", "drip", "huge", "hostile")
KINDS = ("latency", "timeout", "reset", "http", "html", "truncated", "error", *HOSTILE)
#: Kinds whose first CLI argument is a parameter rather than the count.
_ARG_FIELD = {
    "latency": "seconds",
    "timeout": "seconds",
    "http": "status",
    "error": "code",
    "redirect": "location",
    "bomb": "size",
    "huge": "size",
    "drip": "seconds",
    "hostile": "value",
}
_FIELDS = ("kind", "count", "seconds", "status", "code", "location", "size", "value")
MIB = 1024 * 1024
#: Defaults as measured in issue 14: 400 MiB inflated from ~400 KiB; a 200 MiB body.
DEFAULT_SIZES = {"bomb": 400 * MIB, "huge": 200 * MIB}
_MAX_SIZE = 8 * 1024 * MIB
#: 3000 characters that do not compress (hex digests), so PostgreSQL cannot shrink them
#: under its index row limit the way it would "aaa...".
LONG_LOGIN = "".join(hashlib.sha256(str(i).encode()).hexdigest() for i in range(47))[:3000]
#: Hostile values: field -> (JSON token, text for the other formats).
HOSTILE_VALUES: dict[str, tuple[str, str, str]] = {
    "long-login": ("login", json.dumps(LONG_LOGIN), LONG_LOGIN),
    "huge-credit": ("credit", "1e200000", "1e200000"),
    "huge-cnt": ("cnt", "1" + "0" * 30, "1" + "0" * 30),
    "deep-scale": ("credit", "0." + "0" * 5000 + "1", "0." + "0" * 5000 + "1"),
    "control-chars": ("login", json.dumps("de\x00mo\x07\x1b[2J"), "de\x00mo\x07\x1b[2J"),
    "lone-surrogate": ("login", '"\\ud800demo"', "\ud800demo"),
}
#: What a drip fault drips: the status line and headers, or the body after them.
DRIP_PARTS = ("body", "headers")


@dataclass(frozen=True)
class FaultSpec:
    """One fault for the next ``count`` requests; ``count`` None/0 means until cleared."""

    kind: str
    count: int | None = None
    seconds: float | None = None
    status: int | None = None
    code: int | None = None
    #: redirect: where ``Location`` points (a URL, ``host:port`` or a port on 127.0.0.1);
    #: unset redirects to the simulator itself, a loop.
    location: str | None = None
    #: bomb: bytes once inflated; huge: bytes of body.
    size: int | None = None
    #: hostile: a key of HOSTILE_VALUES; drip: one of DRIP_PARTS.
    value: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; known: {', '.join(KINDS)}")
        if self.count is not None and self.count < 0:
            raise ValueError("fault count must be >= 0")
        if self.kind == "latency" and self.seconds is None:
            raise ValueError("a latency fault needs seconds")
        if self.seconds is not None and self.seconds < 0:
            raise ValueError("fault seconds must be >= 0")
        if self.kind == "http" and not (self.status and 100 <= self.status <= 599):
            raise ValueError("an http fault needs a status between 100 and 599")
        if self.kind == "error" and not (self.code and self.code > 0):
            raise ValueError("an error fault needs a positive code")
        if self.kind == "redirect" and self.status is not None and not 300 <= self.status <= 399:
            raise ValueError("a redirect fault's status must be 3xx")
        if self.size is not None and not 0 < self.size <= _MAX_SIZE:
            raise ValueError(f"fault size must be 1..{_MAX_SIZE} bytes")
        if self.kind == "hostile" and self.value not in HOSTILE_VALUES:
            raise ValueError(f"a hostile fault needs a value among {', '.join(HOSTILE_VALUES)}")
        if self.kind == "drip" and self.value is not None and self.value not in DRIP_PARTS:
            raise ValueError(f"a drip fault drips one of {', '.join(DRIP_PARTS)}")

    @property
    def forever(self) -> bool:
        """True when the fault stays until the queue is cleared."""
        return not self.count

    @property
    def wait(self) -> float:
        """Seconds to stall before answering (latency) or hanging up (timeout)."""
        if self.seconds is not None:
            return self.seconds
        return 30.0 if self.kind == "timeout" else 0.0

    def to_json(self) -> dict[str, Any]:
        """The JSON shape the control API speaks, without unset fields."""
        return {k: v for k, v in asdict(self).items() if v is not None or k == "count"}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> FaultSpec:
        """Validate a fault from the control API; raises ``ValueError`` on anything odd."""
        unknown = set(obj) - set(_FIELDS)
        if unknown:
            raise ValueError(f"unknown fault keys: {sorted(unknown)}")
        if "kind" not in obj:
            raise ValueError("a fault needs a kind")
        try:
            return cls(
                kind=str(obj["kind"]),
                count=None if obj.get("count") is None else int(obj["count"]),
                seconds=None if obj.get("seconds") is None else float(obj["seconds"]),
                status=None if obj.get("status") is None else int(obj["status"]),
                code=None if obj.get("code") is None else int(obj["code"]),
                location=None if obj.get("location") is None else str(obj["location"]),
                size=None if obj.get("size") is None else int(obj["size"]),
                value=None if obj.get("value") is None else str(obj["value"]),
            )
        except TypeError as exc:
            raise ValueError(str(exc)) from exc

    @classmethod
    def parse(cls, spec: str) -> FaultSpec:
        """Parse a CLI spec ``KIND[:ARG][:COUNT]``: ``error:9:2``, ``latency:1.5``, ``reset:1``.

        ARG exists only for latency/timeout/drip (seconds), http (status), error (code),
        redirect (location: ``redirect:9999`` is port 9999 on 127.0.0.1), bomb/huge (size
        in bytes) and hostile (value); an empty ARG (``timeout::2``) keeps its default. No
        COUNT means until cleared. A redirect's status (default 307) is set through JSON.
        """
        kind, *args = spec.split(":")
        if len(args) > (2 if kind in _ARG_FIELD else 1):
            raise ValueError(f"too many parts in fault spec {spec!r}")
        obj: dict[str, Any] = {"kind": kind}
        if kind in _ARG_FIELD and args:
            arg = args.pop(0)
            if arg:
                obj[_ARG_FIELD[kind]] = arg
        if args and args[0]:
            obj["count"] = args[0]
        try:
            return cls.from_json(obj)
        except ValueError as exc:
            raise ValueError(f"bad fault spec {spec!r}: {exc}") from exc


class FaultQueue:
    """Thread-safe FIFO of faults; each request takes the head and uses one of its count."""

    def __init__(self, faults: Iterable[FaultSpec] = ()) -> None:
        self._lock = threading.Lock()
        self._queue: list[FaultSpec] = list(faults)

    def replace(self, faults: Iterable[FaultSpec]) -> None:
        """Swap the whole queue, as ``POST /_control/faults`` does."""
        with self._lock:
            self._queue = list(faults)

    def clear(self) -> None:
        """Drop every pending fault."""
        self.replace(())

    def snapshot(self) -> list[FaultSpec]:
        """The pending faults, head first, with their remaining counts."""
        with self._lock:
            return list(self._queue)

    def take(self) -> FaultSpec | None:
        """The fault for this request, if any, consuming one use of it."""
        with self._lock:
            if not self._queue:
                return None
            head = self._queue[0]
            if head.forever:
                return head
            assert head.count is not None
            if head.count <= 1:
                self._queue.pop(0)
            else:
                self._queue[0] = replace(head, count=head.count - 1)
            return head


# --- hostile replies ----------------------------------------------------------------------------


def serve_hostile(
    handler: BaseHTTPRequestHandler,
    fault: FaultSpec,
    reply: tuple[bytes, str],
    stopping: threading.Event,
    *,
    fmt: int,
    login: str,
    api_path: str,
) -> None:
    """Answer as a hostile server would; ``reply`` is the honest (body, content type)."""
    handler.close_connection = True
    try:
        if fault.kind == "redirect":
            _redirect(handler, fault, api_path)
        elif fault.kind == "bomb":
            body = _gzip_zeros(fault.size or DEFAULT_SIZES["bomb"])
            _head(handler, 200, "application/json; charset=utf-8", len(body), gzip=True)
            handler.wfile.write(body)
        elif fault.kind == "huge":
            _huge(handler, fault.size or DEFAULT_SIZES["huge"], stopping)
        elif fault.kind == "endless":
            _endless(handler, stopping)
        elif fault.kind == "drip":
            _drip(handler, reply, fault.wait or 1.0, fault.value or "body", stopping)
        else:
            body = hostile_body(fault.value or "long-login", fmt, login)
            _head(handler, 200, reply[1], len(body))
            handler.wfile.write(body)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the client gave up: what a bounded client should do


def _head(
    handler: BaseHTTPRequestHandler,
    status: int,
    ctype: str,
    length: int | None,
    *,
    gzip: bool = False,
    extra: Mapping[str, str] | None = None,
) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", ctype)
    if gzip:
        handler.send_header("Content-Encoding", "gzip")
    if length is None:
        handler.send_header("Transfer-Encoding", "chunked")
    else:
        handler.send_header("Content-Length", str(length))
    for name, value in (extra or {}).items():
        handler.send_header(name, value)
    handler.end_headers()


def _redirect(handler: BaseHTTPRequestHandler, fault: FaultSpec, api_path: str) -> None:
    location = fault.location or api_path
    if location.isdigit():
        location = f"http://127.0.0.1:{location}{api_path}"
    elif "://" not in location and not location.startswith("/"):
        location = f"http://{location}{api_path}"
    status = fault.status or 307
    _head(handler, status, "text/html", 0, extra={"Location": location})


@functools.lru_cache(maxsize=4)
def _gzip_zeros(size: int) -> bytes:
    """``size`` zero bytes gzipped (about 1000:1), built in steps so the server stays small."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    parts = []
    block = bytes(MIB)
    left = size
    while left > 0:
        parts.append(packer.compress(block[: min(left, MIB)]))
        left -= MIB
    parts.append(packer.flush())
    return b"".join(parts)


def _huge(handler: BaseHTTPRequestHandler, size: int, stopping: threading.Event) -> None:
    """A JSON array of ``size`` bytes, mostly whitespace: valid, and far too big."""
    _head(handler, 200, "application/json; charset=utf-8", size)
    handler.wfile.write(b"[")
    left = size - 2
    block = b" " * (64 * 1024)
    while left > 0 and not stopping.is_set():
        piece = block[: min(left, len(block))]
        handler.wfile.write(piece)
        left -= len(piece)
    handler.wfile.write(b"]")


def _endless(handler: BaseHTTPRequestHandler, stopping: threading.Event) -> None:
    """Chunked transfer that never sends its last chunk."""
    _head(handler, 200, "application/json; charset=utf-8", None)
    chunk = b" " * (64 * 1024)
    frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    handler.wfile.write(b"1\r\n[\r\n")
    while not stopping.is_set():
        handler.wfile.write(frame)


def _drip(
    handler: BaseHTTPRequestHandler,
    reply: tuple[bytes, str],
    seconds: float,
    part: str,
    stopping: threading.Event,
) -> None:
    """One byte every ``seconds``: of the status line and headers, or of the body."""
    body, ctype = reply
    head = (
        f"HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode("latin-1")
    if part == "headers":
        dripped, rest = head, body
    else:
        handler.wfile.write(head)
        handler.wfile.flush()
        dripped, rest = body, b""
    for index in range(len(dripped)):
        if stopping.wait(seconds):
            return
        handler.wfile.write(dripped[index : index + 1])
        handler.wfile.flush()
    handler.wfile.write(rest)


def hostile_body(value: str, fmt: int, login: str) -> bytes:
    """A one-row reply whose ``value`` (a key of HOSTILE_VALUES) no real reply holds."""
    field, token, text = HOSTILE_VALUES[value]
    tokens = {"login": json.dumps(login), "cnt": "1", "credit": '"1.00"'}
    texts = {"login": login, "cnt": "1", "credit": "1.00"}
    tokens[field], texts[field] = token, text
    if fmt == 3:
        fields = ", ".join(f'"{name}": {tokens[name]}' for name in ("login", "cnt", "credit"))
        doc = f'[{{{fields}, "debit": "0.00", "currency": "RUB"}}]'
        return doc.encode("utf-8")
    row = (texts["login"], texts["cnt"], texts["credit"], "0.00", "RUB")
    if fmt == 1:
        line = ",".join(row) + "\n"
    elif fmt == 2:
        names = ("login", "cnt", "credit", "debit", "currency")
        cells = "".join(f"<{n}>{escape(v)}</{n}>" for n, v in zip(names, row, strict=True))
        line = f'<?xml version="1.0" encoding="utf-8"?>\n<result><stat>{cells}</stat></result>'
    else:
        names = ("login", "cnt", "credit", "debit", "currency")
        line = ", ".join(f"{n} = {v}" for n, v in zip(names, row, strict=True)) + "\n"
    return line.encode("utf-8", errors="surrogatepass")
