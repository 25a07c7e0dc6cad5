"""Every warehouse query the SMSC page makes: read-only, one account at a time, bounded.

The page reads what the pipeline wrote (``smsc.api_calls``, ``load_log``, ``load_gaps``,
``reconciliation_status``, ``stat_revision``); it never writes and never calls SMSC. Each
function is one statement, so the page's query count is the number of calls below.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine, event, text

#: Rows in the ledger table of the page.
LEDGER_ROWS = 50
#: Revisions and reconciled months shown.
REVISION_ROWS = 20
RECONCILIATION_MONTHS = 24
#: Gap ranges listed (a long-neglected account could have hundreds).
GAP_RANGES = 50

_NOW_SQL = text(
    """
    SELECT clock_timestamp() AS now,
           ARRAY(SELECT reserved_at FROM smsc.api_calls
                 WHERE account = :account AND reserved_at > clock_timestamp() - :span
                 ORDER BY reserved_at DESC LIMIT :calls) AS recent_starts,
           (SELECT max(reserved_at) FROM smsc.api_calls
            WHERE account = :account AND error_code = 4
              AND reserved_at > clock_timestamp() - :ip_block_pause) AS last_ip_block,
           ARRAY(SELECT reserved_at FROM smsc.api_calls
                 WHERE account = :account AND error_code = 2
                   AND reserved_at > clock_timestamp() - :auth_window
                 ORDER BY reserved_at DESC) AS auth_failures,
           (SELECT max(reserved_at) FROM smsc.api_calls WHERE account = :account) AS last_call,
           (SELECT count(*) FROM smsc.api_calls
            WHERE account = :account AND outcome = 'pending'
              AND reserved_at > clock_timestamp() - interval '10 minutes') AS in_flight,
           (SELECT avg(latency_ms) FROM (
                SELECT latency_ms FROM smsc.api_calls
                WHERE account = :account AND outcome = 'ok'
                ORDER BY reserved_at DESC LIMIT 20) AS last20) AS mean_latency_ms
    """
)
_MINUTES_SQL = text(
    """
    SELECT date_trunc('minute', reserved_at) AS minute,
           count(*) AS calls,
           count(*) FILTER (WHERE outcome NOT IN ('ok', 'pending')) AS failed
    FROM smsc.api_calls
    WHERE account = :account AND reserved_at >= :since
    GROUP BY 1 ORDER BY 1
    """
)
_LEDGER_SQL = text(
    """
    SELECT id, reserved_at, window_start, window_end, outcome, error_code, latency_ms,
           waited_ms, caller, host
    FROM smsc.api_calls
    WHERE account = :account
    ORDER BY reserved_at DESC, id DESC
    LIMIT :limit
    """
)
_BACKFILL_LOADED_SQL = text(
    """
    SELECT count(DISTINCT window_start)
    FROM smsc.load_log
    WHERE account = :account AND series = 'main' AND window_start = window_end
      AND window_start = ANY(:days) AND loaded_at >= :since
    """
)
# Gaps and islands: consecutive days share day - row_number. The first :limit ranges of
# each series (so main's cannot crowd out the others), with each series' total days.
_GAPS_SQL = text(
    """
    SELECT series, first, last, days, series_days
    FROM (SELECT series, min(day) AS first, max(day) AS last, count(*) AS days,
                 (sum(count(*)) OVER (PARTITION BY series))::bigint AS series_days,
                 row_number() OVER (PARTITION BY series ORDER BY min(day)) AS n
          FROM (SELECT series, day,
                       day - (row_number() OVER (PARTITION BY series ORDER BY day))::integer
                           AS grp
                FROM smsc.load_gaps WHERE account = :account) AS g
          GROUP BY series, grp) AS r
    WHERE n <= :limit
    ORDER BY series, first
    """
)
# The latest :limit months, every series of each.
_RECONCILIATION_SQL = text(
    """
    SELECT series, month, status, attempt, checked_at, missing_day_count, logins,
           logins_differing, cnt_diff
    FROM (SELECT series, month, status, attempt, checked_at, missing_day_count,
                 count(login) AS logins,
                 count(*) FILTER (WHERE matched IS FALSE) AS logins_differing,
                 coalesce(sum(abs(cnt_diff)), 0) AS cnt_diff,
                 dense_rank() OVER (ORDER BY month DESC) AS n
          FROM smsc.reconciliation_status
          WHERE account = :account
          GROUP BY series, month, status, attempt, checked_at, missing_day_count) AS m
    WHERE n <= :limit
    ORDER BY month DESC, series
    """
)
_REVISIONS_SQL = text(
    """
    SELECT id, series, stat_date, login, old_cnt, new_cnt, old_credit, new_credit,
           old_debit, new_debit, old_currency, new_currency, changed_at
    FROM smsc.stat_revision
    WHERE account = :account
    ORDER BY id DESC
    LIMIT :limit
    """
)
_SCHEMA_SQL = text("SELECT to_regclass('smsc.api_calls') IS NOT NULL")

#: Statements the current request ran (see :func:`counting`).
_counter: ContextVar[list[str] | None] = ContextVar("smsc_ui_queries", default=None)


def count_queries(engine: Engine) -> None:
    """Let :func:`counting` count the statements ``engine`` runs (once per engine)."""
    if event.contains(engine, "before_cursor_execute", _count):
        return
    event.listen(engine, "before_cursor_execute", _count)


def _count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
    seen = _counter.get()
    if seen is not None:
        seen.append(statement)


@contextmanager
def counting() -> Iterator[list[str]]:
    """Collect the statements run in this context (this thread or task) by counted engines."""
    seen: list[str] = []
    token = _counter.set(seen)
    try:
        yield seen
    finally:
        _counter.reset(token)


@dataclass(frozen=True)
class LedgerState:
    now: datetime
    recent_starts: list[datetime]
    last_ip_block: datetime | None
    auth_failures: list[datetime]
    last_call: datetime | None
    mean_latency_ms: float | None
    #: Calls started in the last 10 minutes and not finished (older ones crashed).
    in_flight: int = 0


def database_now(conn: Connection) -> datetime:
    """The database's clock, the one every ledger row was stamped with."""
    now: datetime = conn.execute(text("SELECT clock_timestamp()")).scalar_one()
    return now


def schema_present(conn: Connection) -> bool:
    """Whether the bootstrap's migrations created the ledger (the page's first question)."""
    return bool(conn.execute(_SCHEMA_SQL).scalar_one())


def ledger_state(
    conn: Connection,
    account: str,
    *,
    span: timedelta,
    calls: int,
    ip_block_pause: timedelta,
    auth_window: timedelta,
) -> LedgerState:
    row = conn.execute(
        _NOW_SQL,
        {
            "account": account,
            "span": span,
            "calls": calls,
            "ip_block_pause": ip_block_pause,
            "auth_window": auth_window,
        },
    ).one()
    return LedgerState(
        now=row.now,
        recent_starts=list(row.recent_starts or []),
        last_ip_block=row.last_ip_block,
        auth_failures=list(row.auth_failures or []),
        last_call=row.last_call,
        mean_latency_ms=float(row.mean_latency_ms) if row.mean_latency_ms is not None else None,
        in_flight=int(row.in_flight),
    )


def calls_per_minute(
    conn: Connection, account: str, since: datetime
) -> list[tuple[datetime, int, int]]:
    """(minute, calls, failed calls) for each minute since ``since`` that had calls."""
    return [
        (row.minute, row.calls, row.failed)
        for row in conn.execute(_MINUTES_SQL, {"account": account, "since": since})
    ]


def last_calls(conn: Connection, account: str, limit: int = LEDGER_ROWS) -> list[dict[str, Any]]:
    """The newest ledger rows, newest first."""
    rows = conn.execute(_LEDGER_SQL, {"account": account, "limit": limit}).mappings()
    return [dict(row) for row in rows]


def days_loaded_since(conn: Connection, account: str, days: Sequence[date], since: datetime) -> int:
    """How many of ``days`` (main series) were loaded at or after ``since``."""
    if not days:
        return 0
    return int(
        conn.execute(
            _BACKFILL_LOADED_SQL, {"account": account, "days": list(days), "since": since}
        ).scalar_one()
    )


def gap_ranges(conn: Connection, account: str, limit: int = GAP_RANGES) -> list[dict[str, Any]]:
    """Contiguous ranges of never-loaded days (``smsc.load_gaps``): the first ``limit`` of
    each series, each row with its series' total (``series_days``)."""
    rows = conn.execute(_GAPS_SQL, {"account": account, "limit": limit}).mappings()
    return [dict(row) for row in rows]


def reconciliation(
    conn: Connection, account: str, limit: int = RECONCILIATION_MONTHS
) -> list[dict[str, Any]]:
    """The latest check of each month and series (``smsc.reconciliation_status``), for the
    newest ``limit`` months."""
    rows = conn.execute(_RECONCILIATION_SQL, {"account": account, "limit": limit}).mappings()
    return [dict(row) for row in rows]


def revisions(conn: Connection, account: str, limit: int = REVISION_ROWS) -> list[dict[str, Any]]:
    """The latest changes a re-fetch made to stored days, newest first."""
    rows = conn.execute(_REVISIONS_SQL, {"account": account, "limit": limit}).mappings()
    return [dict(row) for row in rows]


def as_json(value: Any) -> Any:
    """Dates as ISO strings, amounts as strings (exact), for the JSON endpoints."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, dict):
        return {k: as_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [as_json(v) for v in value]
    return value
