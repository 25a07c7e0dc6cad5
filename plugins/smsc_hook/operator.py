"""Fetch one day's statistics from SMSC and land it in the warehouse, paced and atomic."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from smsc_hook.db import make_engine, warehouse_url
from smsc_hook.exceptions import SmscConfigError
from smsc_hook.hook import SmscHook
from smsc_hook.migrations import pending_migrations
from smsc_hook.pacing import (
    DEFAULT_LIMIT,
    DEFAULT_WINDOW,
    IP_BLOCK_PAUSE,
    LedgerPacer,
    RateLimit,
)
from smsc_hook.retry import SmscRetryPolicy
from smsc_hook.warehouse import Warehouse, latest_begun_day
from smsc_hook.windows import local_day, zone

if TYPE_CHECKING:
    from airflow.sdk import Context

DEFAULT_RETRIES = 8


def parse_day(value: str | date) -> date:
    """``date`` or ``YYYY-MM-DD``; a day that has not begun anywhere is refused."""
    if isinstance(value, date):
        day = value
    else:
        try:
            day = date.fromisoformat(str(value).strip())
        except ValueError:
            raise SmscConfigError(f"day must be YYYY-MM-DD, got {value!r}") from None
    if day > latest_begun_day():
        raise SmscConfigError(f"day {day.isoformat()} is in the future: SMSC has no statistics yet")
    return day


def caller_id(context: Context) -> str:
    """Task instance identity for the ledger: dag/run/task[map]#try."""
    ti = context["ti"]
    index = f"[{ti.map_index}]" if ti.map_index is not None and ti.map_index >= 0 else ""
    return f"{ti.dag_id}/{ti.run_id}/{ti.task_id}{index}#{ti.try_number}"


class SmscStatsToPostgresOperator(BaseOperator):
    """Load one day of SMSC sending statistics into the ``smsc`` warehouse schema.

    The call waits for a slot in the warehouse's API call ledger (``rate_limit`` calls per
    ``rate_window`` per account, across every worker), then the day's rows replace the
    stored ones in one transaction. Retries follow :class:`~smsc_hook.retry.SmscRetryPolicy`.

    :param day: ``YYYY-MM-DD`` (templated); default: the local day of the run's data
        interval in ``timezone`` (default: the DAG's time zone).
    :param smsc_conn_id: Airflow connection of type ``smsc``.
    :param postgres_conn_id: Airflow connection of type ``postgres`` for the warehouse.
    :param account: warehouse key for the account; default from the SMSC connection.
    """

    template_fields: Sequence[str] = ("day", "smsc_conn_id", "postgres_conn_id", "account")
    ui_color = "#e8f4fd"

    def __init__(
        self,
        *,
        day: str | date | None = None,
        smsc_conn_id: str = "smsc_default",
        postgres_conn_id: str = "smsc_warehouse",
        account: str | None = None,
        timezone: str | None = None,
        rate_limit: int = DEFAULT_LIMIT,
        rate_window: timedelta = DEFAULT_WINDOW,
        ip_block_pause: timedelta = IP_BLOCK_PAUSE,
        pool: str = "smsc_api",
        retries: int = DEFAULT_RETRIES,
        retry_policy: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            pool=pool, retries=retries, retry_policy=retry_policy or SmscRetryPolicy(), **kwargs
        )
        self.day = day
        self.smsc_conn_id = smsc_conn_id
        self.postgres_conn_id = postgres_conn_id
        self.account = account
        self.timezone = timezone
        self.rate = RateLimit(rate_limit, rate_window)
        self.ip_block_pause = ip_block_pause

    def execute(self, context: Context) -> dict[str, Any]:
        day = self._resolve_day(context)
        hook = SmscHook(self.smsc_conn_id)
        settings = hook.settings  # configuration errors surface before any call
        account = self.account or settings.account
        series = "balance2" if settings.balance2 else "main"
        engine = make_engine(warehouse_url(self.postgres_conn_id))
        try:
            pending = pending_migrations(engine)
            if pending:
                raise SmscConfigError(
                    f"warehouse schema is behind ({', '.join(pending)} not applied): "
                    "run `python -m smsc_hook.bootstrap`"
                )
            hook.pacer = LedgerPacer(
                engine,
                account,
                limit=self.rate,
                caller=caller_id(context),
                ip_block_pause=self.ip_block_pause,
            )
            reply = hook.fetch_stat(day, day)
            result = Warehouse(engine).load_day(
                account=account,
                series=series,
                day=day,
                rows=reply.rows,
                raw_reply=reply.raw,
                reply_format=reply.fmt,
            )
        finally:
            engine.dispose()
        self.log.info(
            "Loaded %s %s %s: %d row(s) (%d new, %d changed, %d unchanged, %d removed)",
            account,
            series,
            day.isoformat(),
            len(reply.rows),
            result.inserted,
            result.updated,
            result.unchanged,
            result.deleted,
        )
        return {
            "account": account,
            "series": series,
            "day": day.isoformat(),
            "rows": len(reply.rows),
            "inserted": result.inserted,
            "updated": result.updated,
            "deleted": result.deleted,
            "load_id": result.load_id,
        }

    def _resolve_day(self, context: Context) -> date:
        if self.day is not None:
            return parse_day(self.day)
        tz_name = self.timezone or context["dag"].timezone.name
        start = context.get("data_interval_start") or context["logical_date"]
        if start is None:
            raise SmscConfigError("no day given and the run has no data interval")
        return parse_day(local_day(start, zone(tz_name)))
