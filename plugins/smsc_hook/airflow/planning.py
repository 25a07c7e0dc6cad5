"""What a DAG run does, decided inside the run (never at parse time).

Planning from the run's context and the settings. The I/O: the bootstrap's Variable, the
run's task states (through the Task SDK, for the pool watch) and, for the gap check and the
reconciliation's verification, the warehouse.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from smsc_hook.airflow.settings import BOOTSTRAP_VARIABLE, AccountConfig, PipelineSettings
from smsc_hook.airflow.windows import days_to_load, local_day, zone
from smsc_hook.client.exceptions import SmscConfigError

SCHEDULED = "scheduled"
log = logging.getLogger(__name__)

#: The DAG's tasks that run in the account's pool.
API_TASKS = ("load_day", "lookback_day", "reconcile_month", "refetch_day")
#: States a task instance can only reach after the scheduler found it a pool slot.
_STARTED = [
    *("queued", "running", "success", "failed"),
    *("up_for_retry", "up_for_reschedule", "deferred", "restarting"),
]


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


def series_flags(series: str) -> dict[str, bool]:
    """The operator flags that pick ``series``; ``subclients`` only where it is set."""
    return {
        "balance2": series == "balance2",
        **({"subclients": True} if series == "subclients" else {}),
    }


def run_series(account: AccountConfig) -> list[dict[str, Any]]:
    """Keyword sets of the run's own loads, one per series (known at parse time: the day
    is the run's, resolved by the operator), so they need no planning task."""
    return [series_flags(series) for series in account.series]


def plan_lookback(
    context: Mapping[str, Any], settings: PipelineSettings, account: AccountConfig
) -> list[dict[str, Any]]:
    """Keyword sets of the re-fetches of earlier days: scheduled runs only (each lookback
    day and each series, oldest first); backfills and manual runs load exactly their day,
    so for them this is empty and the mapped task costs nothing."""
    days = days_to_load(
        run_day(context, settings),
        scheduled=is_scheduled(context),
        lookback_days=settings.lookback_days,
    )[:-1]  # the run's own day is ``load_day``'s
    return [
        {"day": day.isoformat(), **series_flags(series)}
        for day in days
        for series in account.series
    ]


def last_load_of_run(context: Mapping[str, Any], task_id: str) -> bool:
    """Outside scheduled runs: whether every other ``task_id`` instance of this run (the
    run's other series) has already succeeded, so this one, about to succeed, lands last.

    Two loads finishing at the same moment (a pool of more than one slot) may each see
    the other running: then neither is last, and the run's publishing task does the job.
    """
    if is_scheduled(context):
        return False
    ti = context["ti"]
    others = ti.get_ti_count(dag_id=ti.dag_id, run_ids=[ti.run_id], task_ids=[task_id]) - 1
    if others <= 0:
        return True
    done = ti.get_ti_count(
        dag_id=ti.dag_id, run_ids=[ti.run_id], task_ids=[task_id], states=["success"]
    )
    return bool(done >= others)


def plan_reconciliations(
    context: Mapping[str, Any], settings: PipelineSettings, account: AccountConfig
) -> list[dict[str, Any]]:
    """Months to reconcile in this run: scheduled runs only (see ``months_to_reconcile``)."""
    if not is_scheduled(context):
        return []
    from smsc_hook.checks.reconciliation import months_to_reconcile

    months = months_to_reconcile(run_day(context, settings), settings.lookback_days)
    return [
        {"month": f"{month:%Y-%m}", **series_flags(series)}
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
    from smsc_hook.checks.gaps import (
        SmscGapsError,
        backfill_in_progress,
        find_gaps,
        old_gaps_error,
    )
    from smsc_hook.client.hook import SmscHook
    from smsc_hook.observability import metrics
    from smsc_hook.warehouse.engine import make_engine, warehouse_url

    key = SmscHook(account.conn_id).settings.account
    oldest_allowed = run_day(context, settings) - timedelta(days=settings.lookback_days)
    engine = make_engine(warehouse_url(settings.warehouse_conn_id))
    try:
        # Every series is looked at (and its gauge set) before deciding, so one series'
        # gaps do not hide another's.
        errors: list[SmscGapsError] = []
        for series in account.series:
            days = find_gaps(engine, key, series, oldest_allowed)
            metrics.gap_days(key, series, len(days))
            error = old_gaps_error(key, series, days, account.name)
            if error is not None:
                errors.append(error)
        if errors:
            gaps = errors[0] if len(errors) == 1 else SmscGapsError("; ".join(map(str, errors)))
            if not backfill_in_progress(engine, key):
                raise gaps
            log.warning("%s; a backfill is filling them, so not failing", gaps)
            return f"gaps being backfilled: {gaps}"
    finally:
        engine.dispose()
    return f"no gaps before {oldest_allowed.isoformat()}"


def pool_in_use(
    context: Mapping[str, Any], pool: str, bound: timedelta, settle: float = 5.0
) -> str | None:
    """Whether this run's loads got a slot in ``pool``; raise with the fix if they never will.

    A task in a missing pool (or one with no free slot) stays ``scheduled`` forever with
    only a scheduler warning, and the Task SDK cannot read pools. What it can read is task
    states: once one of this run's loads has been queued, or while any SMSC task of this
    DAG is queued or running, the pool exists and works (ours wait their turn). The loads
    start beside this check, so it looks again for up to ``settle`` seconds before
    giving the slot back (another look is another process). When neither is seen
    ``bound`` after the first look, this raises. Returns what it saw, or None to look
    again later.
    """
    ti = context["ti"]
    looked = time.monotonic()
    while True:
        ours = ti.get_ti_count(
            dag_id=ti.dag_id, run_ids=[ti.run_id], task_ids=["load_day"], states=_STARTED
        )
        if ours:
            return f"pool {pool!r}: this run's loads got a slot"
        busy = ti.get_ti_count(
            dag_id=ti.dag_id, task_ids=list(API_TASKS), states=["queued", "running"]
        )
        if busy:
            return f"pool {pool!r}: {busy} SMSC task(s) of this DAG hold or wait for its slot"
        if time.monotonic() - looked >= settle:
            break
        time.sleep(1.0)
    # The first poke's time (reschedule mode keeps it); not the run's start, which a
    # backfill or ``dags test`` may set to the logical date.
    started = (
        ti.get_first_reschedule_date(context) if context.get("task_reschedule_count") else None
    )
    waited = (datetime.now(UTC) - started).total_seconds() if started else 0.0
    if waited >= bound.total_seconds():
        raise SmscConfigError(
            f"this run's load_day tasks have waited {waited:.0f} s for pool {pool!r} while no "
            "SMSC task of this DAG was queued or running: the pool is missing, has 0 slots, or "
            "is held by another DAG. Check `airflow pools list`; fix with "
            f"`python -m smsc_hook.bootstrap` (or `airflow pools set {pool} 1 'SMSC API'`)"
        )
    log.info("load_day has not got a slot in pool %r yet (first looked %.0f s ago)", pool, waited)
    return None


def plan_refetches(checks: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One re-fetch per day of every month whose first check differed, oldest first."""
    return [
        {"day": day, **series_flags(str(check["series"]))}
        for check in checks
        if check["status"] == "differs"
        for day in check["refetch"]
    ]


def verify_reconciliations(
    checks: Sequence[Mapping[str, Any]], settings: PipelineSettings
) -> list[str]:
    """Second check of every month that differed, now its days were re-fetched."""
    from smsc_hook.checks.reconciliation import verify_month
    from smsc_hook.warehouse.engine import make_engine, warehouse_url

    results = []
    engine = make_engine(warehouse_url(settings.warehouse_conn_id))
    try:
        for check in checks:
            if check["status"] != "differs":
                continue
            verify_month(engine, int(check["check_id"]), refetched=len(check["refetch"]))
            results.append(f"{check['account']}/{check['series']} {check['month']}: matched")
            log.info("%s after re-fetching %d day(s)", results[-1], len(check["refetch"]))
    finally:
        engine.dispose()
    return results
