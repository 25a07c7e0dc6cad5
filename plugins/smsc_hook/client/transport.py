"""Bounded HTTP for the hook: a deadline on each whole exchange and a cap on decoded bytes.

``requests`` bounds each socket read (its ``timeout``), not the exchange: a server that
drips one byte a second keeps a call alive for ever, and ``response.content`` inflates a
gzip bomb whole. Here every socket an attempt opens (or reuses) is registered with the
attempt's :class:`Deadline`, which shuts it down when the time is up, so even a read
blocked inside the TLS layer or the header parser returns; and the body is read raw and
inflated in bounded steps, stopping at the cap.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import zlib
from collections.abc import Iterator
from types import TracebackType
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool, PoolManager, ProxyManager
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.response import BaseHTTPResponse

#: Bytes read from the socket, and inflated, per step.
CHUNK = 64 * 1024
#: What the hook asks for: both are inflated here in bounded steps. (``br``/``zstd`` could
#: not be, so they are never offered and refused if sent anyway.)
ACCEPT_ENCODING = "gzip, deflate"

_local = threading.local()


class ReplyTooLarge(Exception):
    """The reply passed the byte cap (``declared``: its Content-Length already said so)."""

    def __init__(self, cap: int, *, declared: int | None = None) -> None:
        self.cap = cap
        self.declared = declared
        super().__init__(cap)


class DeadlinePassed(Exception):
    """The attempt's deadline passed while the body was still arriving."""


class BadEncoding(Exception):
    """The body's ``Content-Encoding`` is unknown, stacked, or its stream is corrupt."""


class Deadline:
    """The end of one attempt: sockets registered while it is current are shut down then."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.ends = time.monotonic() + seconds
        self._fired = threading.Event()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True

    @property
    def passed(self) -> bool:
        return self._fired.is_set() or time.monotonic() >= self.ends

    def remaining(self) -> float:
        return max(self.ends - time.monotonic(), 0.001)

    def watch(self, sock: Any) -> None:
        if not isinstance(sock, socket.socket):
            return
        with self._lock:
            self._sockets.append(sock)
        if self._fired.is_set():
            _shut(sock)

    def _fire(self) -> None:
        self._fired.set()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            _shut(sock)

    def __enter__(self) -> Deadline:
        _local.deadline = self
        self._timer.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._timer.cancel()
        _local.deadline = None


def _shut(sock: socket.socket) -> None:
    # The plain socket's shutdown, also for an SSLSocket: a read blocked in another thread
    # returns at once, and the TLS object is left for its owner to close.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _watch(sock: Any) -> None:
    deadline: Deadline | None = getattr(_local, "deadline", None)
    if deadline is not None and sock is not None:
        deadline.watch(sock)


class _WatchedHTTPConnection(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _watch(sock)  # before the TLS handshake and the request: both are bounded too
        return sock

    def getresponse(self) -> Any:
        _watch(self.sock)  # a kept-alive connection opened under an earlier deadline
        return super().getresponse()


class _WatchedHTTPSConnection(HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _watch(sock)
        return sock

    def getresponse(self) -> Any:
        _watch(self.sock)
        return super().getresponse()


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


_POOLS = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


class DeadlineAdapter(HTTPAdapter):
    """An adapter whose connections (direct or through an HTTP(S) proxy) obey a Deadline."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> PoolManager:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if type(manager) is ProxyManager:  # SOCKS managers keep their own pool classes
            manager.pool_classes_by_scheme = _POOLS
        return manager


def read_body(response: BaseHTTPResponse, cap: int, deadline: Deadline) -> bytes:
    """The body, inflated, raw and decoded both at most ``cap`` bytes.

    Raises :class:`ReplyTooLarge`, :class:`BadEncoding`, :class:`DeadlinePassed`, or what
    the socket raises (shut down by the deadline, or broken).
    """
    inflate = _inflater(response.headers.get("Content-Encoding", ""))
    declared = response.headers.get("Content-Length", "").strip()
    if declared.isdigit() and int(declared) > cap:
        raise ReplyTooLarge(cap, declared=int(declared))
    body = bytearray()
    raw_seen = 0
    for chunk in response.stream(CHUNK, decode_content=False):
        raw_seen += len(chunk)
        if raw_seen > cap:
            raise ReplyTooLarge(cap)
        for piece in inflate.feed(chunk):
            body += piece
            if len(body) > cap:
                raise ReplyTooLarge(cap)
        if deadline.passed:
            raise DeadlinePassed
    inflate.finish()
    return bytes(body)


class _Identity:
    def feed(self, data: bytes) -> Iterator[bytes]:
        yield data

    def finish(self) -> None:
        return None


class _Inflate:
    """zlib inflation in steps of at most CHUNK output bytes (a bomb never inflates whole)."""

    def __init__(self, gzip: bool) -> None:
        self.gzip = gzip
        self._d: Any = None
        self._started = False

    def _new(self, first: bytes) -> Any:
        if self.gzip:
            return zlib.decompressobj(16 + zlib.MAX_WBITS)
        # "deflate" is zlib-wrapped by the RFC, raw deflate in practice too (as urllib3 reads).
        zlib_header = (
            len(first) >= 2 and first[0] & 0x0F == 8 and (first[0] << 8 | first[1]) % 31 == 0
        )
        return zlib.decompressobj(zlib.MAX_WBITS if zlib_header else -zlib.MAX_WBITS)

    def feed(self, data: bytes) -> Iterator[bytes]:
        if self._d is None:
            if not data:
                return
            self._d = self._new(data)
        try:
            while True:
                piece = self._d.decompress(data, CHUNK)
                if piece:
                    yield piece
                data = self._d.unconsumed_tail
                if self._d.eof:
                    rest = self._d.unused_data
                    if not rest:
                        return
                    if not self.gzip:
                        raise BadEncoding("data after the end of the deflate stream")
                    self._d = self._new(rest)  # another gzip member
                    data = rest
                    continue
                if not data and len(piece) < CHUNK:
                    return
        except zlib.error as exc:
            raise BadEncoding(
                f"corrupt {'gzip' if self.gzip else 'deflate'} stream: {exc}"
            ) from None

    def finish(self) -> None:
        if self._d is not None and not self._d.eof:
            raise BadEncoding("the body ended inside its compressed stream")


def _inflater(content_encoding: str) -> _Identity | _Inflate:
    codings = [c.strip().lower() for c in content_encoding.split(",") if c.strip()]
    codings = [c for c in codings if c != "identity"]
    if not codings:
        return _Identity()
    if len(codings) > 1:
        raise BadEncoding(f"stacked Content-Encoding {', '.join(codings)[:60]!r} is refused")
    if codings[0] in ("gzip", "x-gzip"):
        return _Inflate(gzip=True)
    if codings[0] == "deflate":
        return _Inflate(gzip=False)
    raise BadEncoding(f"Content-Encoding {codings[0][:40]!r} was not asked for")
