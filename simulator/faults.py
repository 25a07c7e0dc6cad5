"""Transport and API faults the simulator can inject, and the FIFO queue that doles them out."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

KINDS = ("latency", "timeout", "reset", "http", "html", "truncated", "error")
#: Kinds whose first CLI argument is a parameter rather than the count.
_ARG_FIELD = {"latency": "seconds", "timeout": "seconds", "http": "status", "error": "code"}


@dataclass(frozen=True)
class FaultSpec:
    """One fault for the next ``count`` requests; ``count`` None/0 means until cleared."""

    kind: str
    count: int | None = None
    seconds: float | None = None
    status: int | None = None
    code: int | None = None

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
        unknown = set(obj) - {"kind", "count", "seconds", "status", "code"}
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
            )
        except TypeError as exc:
            raise ValueError(str(exc)) from exc

    @classmethod
    def parse(cls, spec: str) -> FaultSpec:
        """Parse a CLI spec ``KIND[:ARG][:COUNT]``: ``error:9:2``, ``latency:1.5``, ``reset:1``.

        ARG exists only for latency/timeout (seconds), http (status) and error (code);
        an empty ARG (``timeout::2``) keeps its default. No COUNT means until cleared.
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
