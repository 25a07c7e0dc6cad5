"""Pipeline settings from the environment, checked before any API call.

The DAG file reads these at parse time: environment variables cost no I/O (an Airflow
Variable would be a metadata-database query on every parse). A bad value raises an
error naming the variable, which Airflow shows as the DAG's import error.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, time, timedelta
from typing import TypeVar

from smsc_hook.airflow.retry import BACKOFF_START
from smsc_hook.airflow.windows import DEFAULT_LOOKBACK_DAYS, check_lookback, parse_run_at, zone
from smsc_hook.client.exceptions import SmscConfigError
from smsc_hook.warehouse.ledger import DEFAULT_LIMIT, DEFAULT_WINDOW, IP_BLOCK_PAUSE, RateLimit

T = TypeVar("T")
R = TypeVar("R")

DEFAULT_TIMEZONE = "Europe/Moscow"
DEFAULT_RUN_AT = "03:00"
DEFAULT_START_DATE = date(2026, 1, 1)
DEFAULT_POOL = "smsc_api"
DEFAULT_SMSC_CONN_ID = "smsc_default"
DEFAULT_WAREHOUSE_CONN_ID = "smsc_warehouse"
#: Airflow Variable written by the bootstrap; the DAG checks it before queueing API tasks.
BOOTSTRAP_VARIABLE = "smsc_bootstrap"
DEFAULT_DAG_ID = "smsc_daily_stats"
_ACCOUNT_NAME = re.compile(r"[a-z0-9][a-z0-9_]{0,39}")


@dataclass(frozen=True)
class AccountConfig:
    """One SMSC account: its connection, its DAG, its pool (so its own pacing budget).

    The unnamed account is the single-account default: DAG ``smsc_daily_stats``, pool
    ``smsc_api``. A named one gets ``smsc_daily_stats_<name>`` and ``smsc_api_<name>``.
    """

    name: str = ""
    conn_id: str = DEFAULT_SMSC_CONN_ID
    balance2: bool = False
    pool: str = DEFAULT_POOL
    #: Resellers: also load ``users.php?get_stat`` (one row per subclient) as the series
    #: ``subclients``, one more paced call per day from the same budget.
    subclients: bool = False
    #: users.php ``reseller``: 0 = subclients on the main account's balance, 1 = with
    #: their own balance.
    reseller: int = 0
    #: users.php ``hide_deleted``: leave deleted subclients out of the series.
    hide_deleted: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.reseller, bool) or self.reseller not in (0, 1):
            raise SmscConfigError(f"reseller must be 0 or 1, got {self.reseller!r}")
        if not self.subclients and (self.reseller or self.hide_deleted):
            raise SmscConfigError("reseller and hide_deleted need subclients: true")

    @property
    def dag_id(self) -> str:
        return f"{DEFAULT_DAG_ID}_{self.name}" if self.name else DEFAULT_DAG_ID

    @property
    def series(self) -> tuple[str, ...]:
        """Series loaded per day: main always, balance2 and subclients when opted in."""
        return (
            "main",
            *(("balance2",) if self.balance2 else ()),
            *(("subclients",) if self.subclients else ()),
        )


#: Keys an ``SMSC_ACCOUNTS`` item may have.
ACCOUNT_KEYS = ("name", "conn_id", "balance2", "pool", "subclients", "reseller", "hide_deleted")


def parse_accounts(value: str, default_pool: str) -> tuple[AccountConfig, ...]:
    """``SMSC_ACCOUNTS``: a JSON list of ``{"name", "conn_id", "balance2"?, "pool"?,
    "subclients"?, "reseller"?, "hide_deleted"?}``."""
    try:
        items = json.loads(value)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg})") from None
    if not isinstance(items, list) or not items:
        raise ValueError(
            'expected a non-empty JSON list like [{"name": "shop", "conn_id": "smsc_shop"}]'
        )
    accounts = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise ValueError(f"item {index}: expected an object with {', '.join(ACCOUNT_KEYS)}")
        unknown = sorted(set(item) - set(ACCOUNT_KEYS))
        if unknown:
            raise ValueError(
                f"item {index}: expected an object with {', '.join(ACCOUNT_KEYS)}; "
                f"unknown key(s) {', '.join(map(repr, unknown))}"
            )
        name = item.get("name")
        if not isinstance(name, str) or not _ACCOUNT_NAME.fullmatch(name):
            raise ValueError(f"item {index}: name must match {_ACCOUNT_NAME.pattern}, got {name!r}")
        conn_id = item.get("conn_id", f"smsc_{name}")
        balance2 = item.get("balance2", False)
        if not isinstance(conn_id, str) or not conn_id or not isinstance(balance2, bool):
            raise ValueError(f"item {index}: conn_id must be a string and balance2 true/false")
        # Checked like SMSC_CONN_ID, so a bad id fails the parse, not the first task.
        conn_id = _identifier("conn_id", conn_id)
        pool = item.get("pool", f"{default_pool}_{name}")
        if not isinstance(pool, str):
            raise ValueError(f"item {index}: pool must be a string")
        subclients, reseller, hide_deleted = _subclients(item)
        accounts.append(
            AccountConfig(
                name,
                conn_id,
                balance2,
                _identifier("pool", pool),
                subclients=subclients,
                reseller=reseller,
                hide_deleted=hide_deleted,
            )
        )
    for field_name in ("name", "conn_id", "pool"):
        values = [getattr(a, field_name) for a in accounts]
        if len(set(values)) != len(values):
            raise ValueError(f"two accounts share a {field_name}")
    return tuple(accounts)


def _subclients(item: Mapping[str, object]) -> tuple[bool, int, bool]:
    """``subclients``, ``reseller`` and ``hide_deleted`` of an ``SMSC_ACCOUNTS`` item,
    checked (``ValueError`` naming the account and the fix else)."""
    name = item.get("name")
    subclients = item.get("subclients", False)
    if not isinstance(subclients, bool):
        raise ValueError(f"account {name!r}: subclients must be true or false, got {subclients!r}")
    reseller = item.get("reseller", 0)
    if isinstance(reseller, bool) or reseller not in (0, 1):
        raise ValueError(
            f"account {name!r}: reseller must be 0 (subclients on the main balance) or 1 "
            f"(subclients with their own balance), got {reseller!r}"
        )
    hide_deleted = item.get("hide_deleted", False)
    if not isinstance(hide_deleted, bool):
        raise ValueError(
            f"account {name!r}: hide_deleted must be true or false, got {hide_deleted!r}"
        )
    if not subclients and ("reseller" in item or "hide_deleted" in item):
        raise ValueError(
            f"account {name!r}: reseller and hide_deleted apply to the subclients series; "
            'add "subclients": true (or remove them)'
        )
    return subclients, 1 if reseller == 1 else 0, hide_deleted


@dataclass(frozen=True)
class PipelineSettings:
    """Everything a deployment may change without editing code."""

    timezone: str = DEFAULT_TIMEZONE
    run_at: time = time(3, 0)
    start_date: date = DEFAULT_START_DATE
    #: The last day scheduled runs load (None: no end). Backfills may still go past it.
    end_date: date | None = None
    lookback_days: int = DEFAULT_LOOKBACK_DAYS
    catchup: bool = False
    smsc_conn_id: str = DEFAULT_SMSC_CONN_ID
    warehouse_conn_id: str = DEFAULT_WAREHOUSE_CONN_ID
    pool: str = DEFAULT_POOL
    rate_limit: int = DEFAULT_LIMIT
    rate_window_seconds: float = DEFAULT_WINDOW.total_seconds()
    ip_block_pause_seconds: float = IP_BLOCK_PAUSE.total_seconds()
    retry_backoff_seconds: float = BACKOFF_START.total_seconds()
    #: How long a run's loads may wait in the pool with no API task of the DAG running
    #: before ``watch_pool`` fails (missing pool, 0 slots, or held by another DAG).
    pool_wait_seconds: float = 600.0
    #: Empty: one account from ``smsc_conn_id`` and ``pool`` (see :meth:`all_accounts`).
    accounts: tuple[AccountConfig, ...] = ()

    def all_accounts(self) -> tuple[AccountConfig, ...]:
        """The configured accounts, or the single default one."""
        return self.accounts or (AccountConfig(conn_id=self.smsc_conn_id, pool=self.pool),)

    def account(self, name: str) -> AccountConfig:
        for account in self.all_accounts():
            if account.name == name:
                return account
        names = ", ".join(repr(a.name) for a in self.all_accounts())
        raise SmscConfigError(f"no account named {name!r} in SMSC_ACCOUNTS (have {names})")

    @property
    def rate(self) -> RateLimit:
        return RateLimit(self.rate_limit, timedelta(seconds=self.rate_window_seconds))

    @property
    def rate_limit_wait(self) -> timedelta:
        """How long a task waits after error 9: the window clears, plus a little."""
        return self.rate.span + timedelta(seconds=4)

    @property
    def pool_wait(self) -> timedelta:
        return timedelta(seconds=self.pool_wait_seconds)

    @property
    def ip_block_pause(self) -> timedelta:
        return timedelta(seconds=self.ip_block_pause_seconds)

    @property
    def retry_backoff(self) -> timedelta:
        return timedelta(seconds=self.retry_backoff_seconds)

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, today: date | None = None
    ) -> PipelineSettings:
        """Read ``SMSC_*`` variables; unset ones keep their defaults."""
        env = os.environ if env is None else env
        tz_name = env.get("SMSC_TIMEZONE", DEFAULT_TIMEZONE).strip()
        _named("SMSC_TIMEZONE", zone, tz_name)
        start = _named(
            "SMSC_START_DATE",
            date.fromisoformat,
            env.get("SMSC_START_DATE", DEFAULT_START_DATE.isoformat()),
        )
        today = today or date.today()  # noqa: DTZ011 (a calendar date, compared loosely)
        if start > today:
            raise SmscConfigError(f"SMSC_START_DATE {start.isoformat()} is in the future")
        end_value = env.get("SMSC_END_DATE", "").strip()
        end = _named("SMSC_END_DATE", date.fromisoformat, end_value) if end_value else None
        if end is not None and end < start:
            raise SmscConfigError(
                f"SMSC_END_DATE {end.isoformat()} is before SMSC_START_DATE {start.isoformat()}"
            )
        lookback = _named(
            "SMSC_LOOKBACK_DAYS", int, env.get("SMSC_LOOKBACK_DAYS", str(DEFAULT_LOOKBACK_DAYS))
        )
        _named("SMSC_LOOKBACK_DAYS", check_lookback, lookback)
        pool = _identifier("SMSC_POOL", env.get("SMSC_POOL", DEFAULT_POOL))
        settings = cls(
            timezone=tz_name,
            run_at=_named(
                "SMSC_SCHEDULE_TIME", parse_run_at, env.get("SMSC_SCHEDULE_TIME", DEFAULT_RUN_AT)
            ),
            start_date=start,
            end_date=end,
            lookback_days=lookback,
            catchup=_named("SMSC_CATCHUP", _boolean, env.get("SMSC_CATCHUP", "false")),
            smsc_conn_id=_identifier("SMSC_CONN_ID", env.get("SMSC_CONN_ID", DEFAULT_SMSC_CONN_ID)),
            warehouse_conn_id=_identifier(
                "SMSC_WAREHOUSE_CONN_ID",
                env.get("SMSC_WAREHOUSE_CONN_ID", DEFAULT_WAREHOUSE_CONN_ID),
            ),
            pool=pool,
            rate_limit=_named(
                "SMSC_RATE_LIMIT", int, env.get("SMSC_RATE_LIMIT", str(DEFAULT_LIMIT))
            ),
            rate_window_seconds=_named(
                "SMSC_RATE_WINDOW_SECONDS",
                float,
                env.get("SMSC_RATE_WINDOW_SECONDS", str(DEFAULT_WINDOW.total_seconds())),
            ),
            ip_block_pause_seconds=_named(
                "SMSC_IP_BLOCK_PAUSE_SECONDS",
                _positive,
                env.get("SMSC_IP_BLOCK_PAUSE_SECONDS", str(IP_BLOCK_PAUSE.total_seconds())),
            ),
            retry_backoff_seconds=_named(
                "SMSC_RETRY_BACKOFF_SECONDS",
                _positive,
                env.get("SMSC_RETRY_BACKOFF_SECONDS", str(BACKOFF_START.total_seconds())),
            ),
            pool_wait_seconds=_named(
                "SMSC_POOL_WAIT_SECONDS", _positive, env.get("SMSC_POOL_WAIT_SECONDS", "600")
            ),
            accounts=_named(
                "SMSC_ACCOUNTS",
                lambda v: parse_accounts(v, pool) if v.strip() else (),
                env.get("SMSC_ACCOUNTS", ""),
            ),
        )
        _named("SMSC_RATE_LIMIT / SMSC_RATE_WINDOW_SECONDS", lambda s: s.rate, settings)
        return settings


def _named(variable: str, convert: Callable[[T], R], value: T) -> R:
    try:
        return convert(value)
    except (SmscConfigError, ValueError, OverflowError) as exc:
        # OverflowError: a float such as "inf" or "1e20" does not fit a timedelta.
        raise SmscConfigError(f"{variable}={value!r} is invalid: {exc}") from None


def _positive(value: str) -> float:
    number = float(value)
    if not 0 < number < 86400:
        raise ValueError("expected seconds, more than 0 and less than a day")
    return number


def _boolean(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError("expected true or false")


def _identifier(variable: str, value: str) -> str:
    value = value.strip()
    if not value or any(ch.isspace() for ch in value):
        raise SmscConfigError(f"{variable}={value!r} is invalid: expected a non-empty id")
    return value
