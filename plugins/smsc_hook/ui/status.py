"""What the page says, from rows already read: next call slot, cooldowns, ETA, task links.

Pure functions, so the arithmetic the page shows is tested without a database. The rules
mirror :class:`smsc_hook.warehouse.ledger.LedgerPacer`: a slot is free while fewer than
``calls`` attempts started within ``window + margin``; after an error 4 no call for the
IP-block pause; after ``AUTH_FAILURE_BUDGET`` error-2 replies within 30 minutes no call
until the older of them leaves that window.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote

from smsc_hook.warehouse.ledger import AUTH_FAILURE_BUDGET, AUTH_FAILURE_WINDOW, RateLimit


@dataclass(frozen=True)
class Cooldown:
    """A period in which the ledger refuses every call of the account."""

    kind: str  # "ip_block" or "auth_failures"
    since: datetime
    until: datetime
    reason: str


def next_free_slot(recent_starts: Sequence[datetime], limit: RateLimit, now: datetime) -> datetime:
    """When the next attempt may start, given the starts of the last ``limit.span``."""
    inside = sorted((s for s in recent_starts if s > now - limit.span), reverse=True)
    if len(inside) < limit.calls:
        return now
    return inside[limit.calls - 1] + limit.span


def cooldowns(
    *,
    now: datetime,
    last_ip_block: datetime | None,
    ip_block_pause: timedelta,
    auth_failures: Sequence[datetime],
) -> list[Cooldown]:
    """The refusals the ledger applies right now (see the module docstring)."""
    found = []
    if last_ip_block is not None and now - last_ip_block < ip_block_pause:
        found.append(
            Cooldown(
                "ip_block",
                last_ip_block,
                last_ip_block + ip_block_pause,
                "SMSC answered error 4 (IP blocked): no call until the pause has passed",
            )
        )
    recent = sorted((t for t in auth_failures if now - t < AUTH_FAILURE_WINDOW), reverse=True)
    if len(recent) >= AUTH_FAILURE_BUDGET:
        # Calls resume when fewer than the budget remain in the window: when the
        # budget-th most recent failure leaves it.
        found.append(
            Cooldown(
                "auth_failures",
                recent[0],
                recent[AUTH_FAILURE_BUDGET - 1] + AUTH_FAILURE_WINDOW,
                f"SMSC rejected the credentials {len(recent)} times in 30 min (error 2): "
                "fix the connection's login/password; no call until the window passes",
            )
        )
    return found


def eta(
    calls_left: int,
    recent_starts: Sequence[datetime],
    limit: RateLimit,
    now: datetime,
    blocked_until: datetime | None = None,
) -> datetime:
    """When the last of ``calls_left`` calls can start at the earliest, by the rate budget.

    Replays the ledger's rule call by call from the starts already in the window, so a
    burst of free slots now and the full windows after it are both counted. A cooldown
    (``blocked_until``) delays the first call.
    """
    start_from = max(now, blocked_until) if blocked_until else now
    starts = sorted(s for s in recent_starts if s > now - limit.span)
    moment = start_from
    for _ in range(max(calls_left, 0)):
        window = starts[-limit.calls :]
        if len(window) >= limit.calls:
            moment = max(moment, window[0] + limit.span)
        starts.append(moment)
    return moment


def eta_at_pace(
    days_left: int, days_done: int, started: datetime, now: datetime
) -> datetime | None:
    """When ``days_left`` more days land at the pace of the ``days_done`` so far (None
    before the first day: no pace yet)."""
    if days_left <= 0 or days_done <= 0:
        return None
    return now + (now - started) / days_done * days_left


_CALLER = re.compile(
    r"^(?P<dag>[^/]+)/(?P<run>.+)/(?P<task>[^/\[#]+)(?:\[(?P<map>\d+)\])?#(?P<try>\d+)$"
)


@dataclass(frozen=True)
class Caller:
    """A ledger caller as recorded by the operators: ``dag/run/task[map]#try``."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int | None
    try_number: int

    @property
    def label(self) -> str:
        """``run · task[map] #try``: the DAG is the account's, shown once above."""
        index = f"[{self.map_index}]" if self.map_index is not None else ""
        return f"{self.run_id} · {self.task_id}{index} #{self.try_number}"

    def ui_path(self) -> str:
        """The task instance's page in Airflow's UI, relative to the UI's base URL."""
        path = (
            f"dags/{quote(self.dag_id, safe='')}/runs/{quote(self.run_id, safe='')}"
            f"/tasks/{quote(self.task_id, safe='')}"
        )
        if self.map_index is not None:
            path += f"/mapped/{self.map_index}"
        return path


def parse_caller(caller: str) -> Caller | None:
    """The task instance behind a ledger ``caller``, or None (bootstrap, probe, a script)."""
    match = _CALLER.match(caller)
    if not match:
        return None
    index = match["map"]
    return Caller(
        match["dag"],
        match["run"],
        match["task"],
        int(index) if index is not None else None,
        int(match["try"]),
    )


def calls_per_minute_limit(limit: RateLimit) -> float:
    """The budget expressed per minute, the chart's unit (3 at SMSC's 3 per 61 s ≈ 2.95)."""
    return limit.calls * 60.0 / limit.span.total_seconds()


def minute_series(
    counts: Sequence[tuple[datetime, int, int]], end: datetime, minutes: int
) -> list[tuple[datetime, int, int]]:
    """Every minute of the last ``minutes`` up to ``end`` (truncated), zeros filled in.

    ``counts`` holds (minute, calls, failed calls) for the minutes that had calls.
    """
    last = end.replace(second=0, microsecond=0)
    by_minute = {m: (c, f) for m, c, f in counts}
    series = []
    for back in range(minutes - 1, -1, -1):
        minute = last - timedelta(minutes=back)
        calls, failed = by_minute.get(minute, (0, 0))
        series.append((minute, calls, failed))
    return series
