"""Rate pacing across every worker: a ledger of API calls in PostgreSQL.

An Airflow pool of size 1 runs one call at a time, but three quick tasks still start three
calls within seconds, and a pool does not span two deployments or a manual script. So
before each HTTP attempt the hook asks :class:`LedgerPacer` for a slot: under a per-account
advisory lock it counts the attempts that started in the last rate window (by the
database's clock, the one clock every worker shares) and either records a new one or
sleeps until the oldest leaves the window.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import Connection, Engine, text

from smsc_hook.client.exceptions import SmscAuthError, SmscConfigError, SmscIpBlockedError
from smsc_hook.observability import metrics

log = logging.getLogger(__name__)

#: SMSC allows 3 statistics requests per minute.
DEFAULT_LIMIT = 3
DEFAULT_WINDOW = timedelta(seconds=60)
#: Added to the window: covers the gap between our clock reading and the request reaching
#: SMSC, and clock skew between the database and SMSC. 3 calls per 61 s is 98.4 % of 3/min.
DEFAULT_MARGIN = timedelta(seconds=1)
#: After error 4 SMSC blocks the IP for a while (its FAQ: 30 min after 5 auth errors in
#: 30 min); calling earlier only extends it, so wait the block out plus a minute.
IP_BLOCK_PAUSE = timedelta(minutes=31)
#: Five failed logins in 30 minutes block the IP; we stop after two so a fixed password can
#: still be tried.
AUTH_FAILURE_WINDOW = timedelta(minutes=30)
AUTH_FAILURE_BUDGET = 2

_LOCK_SQL = text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))")
_NOW_SQL = text("SELECT clock_timestamp()")
_RECENT_STARTS_SQL = text(
    """
    SELECT reserved_at FROM smsc.api_calls
    WHERE account = :account AND reserved_at > :since
    ORDER BY reserved_at DESC
    LIMIT :limit
    """
)
_RECENT_ERRORS_SQL = text(
    """
    SELECT max(reserved_at) FILTER (WHERE error_code = 4) AS last_ip_block,
           count(*) FILTER (WHERE error_code = 2 AND reserved_at > :auth_since) AS auth_failures
    FROM smsc.api_calls
    WHERE account = :account AND error_code IN (2, 4) AND reserved_at > :since
    """
)
_INSERT_SQL = text(
    """
    INSERT INTO smsc.api_calls (account, window_start, window_end, host, caller, waited_ms)
    VALUES (:account, :window_start, :window_end, :host, :caller, :waited_ms)
    RETURNING id
    """
)
_FINISH_SQL = text(
    """
    UPDATE smsc.api_calls
    SET finished_at = clock_timestamp(), outcome = :outcome, error_code = :error_code,
        latency_ms = :latency_ms
    WHERE id = :id
    """
)


def pacing_lock_key(account: str) -> str:
    """Text whose ``hashtextextended(key, 0)`` is the advisory lock guarding an account's slots."""
    return f"smsc.api_calls/{account}"


@dataclass(frozen=True)
class RateLimit:
    """At most ``calls`` attempts may start in any rolling ``window`` (plus ``margin``)."""

    calls: int = DEFAULT_LIMIT
    window: timedelta = DEFAULT_WINDOW
    margin: timedelta = DEFAULT_MARGIN

    def __post_init__(self) -> None:
        if self.calls < 1:
            raise SmscConfigError(f"rate limit calls must be >= 1, got {self.calls}")
        if self.window <= timedelta(0) or self.margin < timedelta(0):
            raise SmscConfigError(
                f"rate window must be > 0 and margin >= 0, got {self.window} / {self.margin}"
            )

    @property
    def span(self) -> timedelta:
        return self.window + self.margin


class LedgerTicket:
    """One granted attempt: ``finish`` records its outcome and latency in the ledger.

    Each finished call is also counted in ``smsc.api_calls`` (and its latency timed), so
    the metrics equal the ledger's rows.
    """

    def __init__(self, engine: Engine, call_id: int, account: str = "") -> None:
        self.engine = engine
        self.call_id = call_id
        self.account = account
        self._started = time.monotonic()

    def finish(self, outcome: str, error_code: int | None = None) -> None:
        latency_ms = round((time.monotonic() - self._started) * 1000)
        with self.engine.begin() as conn:
            conn.execute(
                _FINISH_SQL,
                {
                    "id": self.call_id,
                    "outcome": outcome,
                    "error_code": error_code,
                    "latency_ms": latency_ms,
                },
            )
        metrics.api_call(self.account, outcome, error_code, latency_ms)


class LedgerPacer:
    """Grants API call slots from ``smsc.api_calls`` so every process shares one budget.

    :param engine: the warehouse database (migrations applied).
    :param account: the budget's key; SMSC counts requests per account.
    :param caller: recorded with each call, e.g. the task instance, for the audit trail.
    :param sleep: injectable for tests; waits are short (under one window).
    """

    def __init__(
        self,
        engine: Engine,
        account: str,
        *,
        limit: RateLimit | None = None,
        caller: str = "",
        ip_block_pause: timedelta = IP_BLOCK_PAUSE,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not account:
            raise SmscConfigError("pacing needs a non-empty account name")
        self.engine = engine
        self.account = account
        self.limit = limit or RateLimit()
        self.caller = caller
        self.ip_block_pause = ip_block_pause
        self._sleep = sleep
        #: Seconds waited for a slot by the last :meth:`reserve`.
        self.last_wait = 0.0

    def reserve(self, start: date, end: date, base_url: str) -> LedgerTicket:
        """Block until a slot is free, record the attempt as pending and return its ticket."""
        began = time.monotonic()
        while True:
            wait = self._try_reserve(start, end, base_url, began)
            if isinstance(wait, LedgerTicket):
                return wait
            log.info(
                "SMSC rate limit for %s: %d call(s) in the last %.0f s; waiting %.1f s for a slot",
                self.account,
                self.limit.calls,
                self.limit.span.total_seconds(),
                wait,
            )
            self._sleep(wait)

    def _try_reserve(
        self, start: date, end: date, base_url: str, began: float
    ) -> LedgerTicket | float:
        with self.engine.begin() as conn:
            conn.execute(_LOCK_SQL, {"key": pacing_lock_key(self.account)})
            now: datetime = conn.execute(_NOW_SQL).scalar_one()
            self._refuse_when_blocked(conn, now)
            starts = list(
                conn.execute(
                    _RECENT_STARTS_SQL,
                    {
                        "account": self.account,
                        "since": now - self.limit.span,
                        "limit": self.limit.calls,
                    },
                ).scalars()
            )
            if len(starts) >= self.limit.calls:
                # The oldest of the last `calls` starts must leave the window first.
                free_at = starts[-1] + self.limit.span
                return max((free_at - now).total_seconds(), 0.01)
            self.last_wait = time.monotonic() - began
            call_id = conn.execute(
                _INSERT_SQL,
                {
                    "account": self.account,
                    "window_start": start,
                    "window_end": end,
                    "host": base_url,
                    "caller": self.caller,
                    "waited_ms": round(self.last_wait * 1000),
                },
            ).scalar_one()
        if self.last_wait >= 0.05:
            log.info("SMSC call slot for %s granted after %.1f s", self.account, self.last_wait)
        metrics.pacer_wait(self.account, round(self.last_wait * 1000))
        return LedgerTicket(self.engine, call_id, self.account)

    def _refuse_when_blocked(self, conn: Connection, now: datetime) -> None:
        """Raise instead of calling while SMSC blocks the IP or the password keeps failing."""
        row = conn.execute(
            _RECENT_ERRORS_SQL,
            {
                "account": self.account,
                "since": now - max(self.ip_block_pause, AUTH_FAILURE_WINDOW),
                "auth_since": now - AUTH_FAILURE_WINDOW,
            },
        ).one()
        if row.last_ip_block is not None and now - row.last_ip_block < self.ip_block_pause:
            resume = row.last_ip_block + self.ip_block_pause
            raise SmscIpBlockedError(
                4,
                f"not calling: SMSC blocked this IP at {row.last_ip_block:%Y-%m-%d %H:%M:%S %Z} "
                f"(error 4); next call allowed after {resume:%H:%M:%S %Z}",
            )
        if row.auth_failures >= AUTH_FAILURE_BUDGET:
            raise SmscAuthError(
                2,
                f"not calling: SMSC rejected the credentials of {self.account!r} "
                f"{row.auth_failures} times in the last 30 minutes (5 block the IP); fix the "
                "connection's login/password, then wait for the 30-minute window to pass",
            )
