"""What a DAG run does, decided inside the run (never at parse time).

Pure planning from the run's context and the settings; the only I/O is reading the
bootstrap's Variable and, for the gap check, the warehouse's gap view.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any

from smsc_hook.exceptions import SmscConfigError
from smsc_hook.reconciliation import months_to_reconcile
from smsc_hook.settings import BOOTSTRAP_VARIABLE, AccountConfig, PipelineSettings
from smsc_hook.windows import days_to_load, local_day, zone

SCHEDULED = "scheduled"
log = logging.getLogger(__name__)


def check_bootstrapped(pool: str) -> None:
    """Fail loudly, with the fix, when the bootstrap (which creates the pools) never ran.

    A task in a missing pool stays ``scheduled`` forever with only a scheduler warning,
    and the Task SDK cannot read pools; the bootstrap's Variable is our witness instead.
    """
    from airflow.sdk import Variable

    raw = Variable.get(BOOTSTRAP_VARIABLE, default=None)
    pools = json.loads(raw).get("pools", []) if raw else []
    if pool not in pools:
        raise SmscConfigError(
            f"pool {pool!r} is not set up (no bootstrap record for it): run "
            f"`python -m smsc_hook.bootstrap`, or `airflow pools set {pool} 1 'SMSC API'` "
            "and then the bootstrap; otherwise the API tasks stay queued forever"
        )


def run_day(context: Mapping[str, Any], settings: PipelineSettings) -> date:
    """The calendar day (in the account's zone) a run's data interval covers."""
    start = context.get("data_interval_start") or context["logical_date"]
    return local_day(start, zone(settings.timezone))


def is_scheduled(context: Mapping[str, Any]) -> bool:
    run_type = context["dag_run"].run_type
    return bool(getattr(run_type, "value", run_type) == SCHEDULED)


def plan_loads(
    context: Mapping[str, Any], settings: PipelineSettings, account: AccountConfig
) -> list[dict[str, Any]]:
    """Keyword sets for the mapped load tasks: each day and each series, oldest day first."""
    check_bootstrapped(account.pool)
    days = days_to_load(
        run_day(context, settings),
        scheduled=is_scheduled(context),
        lookback_days=settings.lookback_days,
    )
    return [
        {"day": day.isoformat(), "balance2": series == "balance2"}
        for day in days
        for series in account.series
    ]


def plan_reconciliations(
    context: Mapping[str, Any], settings: PipelineSettings, account: AccountConfig
) -> list[dict[str, Any]]:
    """Months to reconcile in this run: scheduled runs only (see ``months_to_reconcile``)."""
    if not is_scheduled(context):
        return []
    months = months_to_reconcile(run_day(context, settings), settings.lookback_days)
    return [
        {"month": f"{month:%Y-%m}", "balance2": series == "balance2"}
        for month in months
        for series in account.series
    ]


def check_gaps(
    context: Mapping[str, Any], settings: PipelineSettings, account: AccountConfig
) -> str:
    """Scheduled runs fail when days older than the lookback window were never loaded.

    Newer days are this run's or the lookback's job. Backfills and manual runs skip the
    check: they are usually the ones filling the gaps; and while a backfill for the account
    is calling the API (per the ledger) gaps only warn, since it is filling them.
    """
    if not is_scheduled(context):
        return "skipped: not a scheduled run"
    from smsc_hook.db import make_engine, warehouse_url
    from smsc_hook.gaps import SmscGapsError, backfill_in_progress, check_no_old_gaps
    from smsc_hook.hook import SmscHook

    key = SmscHook(account.conn_id).settings.account
    oldest_allowed = run_day(context, settings) - timedelta(days=settings.lookback_days)
    engine = make_engine(warehouse_url(settings.warehouse_conn_id))
    try:
        for series in account.series:
            try:
                check_no_old_gaps(engine, key, series, oldest_allowed, account.name)
            except SmscGapsError as gaps:
                if not backfill_in_progress(engine, key):
                    raise
                log.warning("%s; a backfill is filling them, so not failing", gaps)
                return f"gaps being backfilled: {gaps}"
    finally:
        engine.dispose()
    return f"no gaps before {oldest_allowed.isoformat()}"
