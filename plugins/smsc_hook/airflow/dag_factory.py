"""Builds the SMSC DAGs, one per account, from the pipeline settings (no I/O)."""

from __future__ import annotations

from datetime import datetime, time
from typing import TYPE_CHECKING, Any

from airflow.sdk import DAG, Asset, AssetAlias

from smsc_hook.airflow.operators import (
    DEFAULT_RETRIES,
    LOAD_PRIORITY,
    RECONCILE_PRIORITY,
    RunPublication,
    SmscReconcileMonthOperator,
    SmscStatsToPostgresOperator,
)
from smsc_hook.airflow.planning import run_series
from smsc_hook.airflow.retry import SmscRetryPolicy
from smsc_hook.airflow.sensors import SmscPoolSensor
from smsc_hook.airflow.settings import AccountConfig, PipelineSettings
from smsc_hook.airflow.steps import (
    SmscGapCheckOperator,
    SmscPublishOperator,
    SmscRefetchPlanOperator,
    SmscVerifyReconciliationOperator,
)
from smsc_hook.airflow.timetable import SmscDailyTimetable
from smsc_hook.airflow.windows import zone
from smsc_hook.alerts.config import AlertSettings
from smsc_hook.client.exceptions import SmscConfigError
from smsc_hook.observability.lineage import FALLBACK_ASSET_URI, daily_stats_uri

if TYPE_CHECKING:
    from airflow.sdk import Context

#: BI refresh DAGs can schedule on this asset (by name: ``Asset.ref(name=...)``): it is
#: updated when a run's days have landed. Its URI names the real warehouse, see
#: :func:`daily_stats_asset`; this one is the fallback when the DAG file cannot know it.
DAILY_STATS = Asset(name="smsc.daily_stats", uri=FALLBACK_ASSET_URI)


def daily_stats_asset(settings: PipelineSettings) -> Asset:
    """``smsc.daily_stats`` with the URI of the warehouse connection (no lookup, no I/O)."""
    return Asset(name=DAILY_STATS.name, uri=daily_stats_uri(settings.warehouse_conn_id))


#: Outside scheduled runs the run's last load emits ``smsc.daily_stats`` through this
#: alias and skips ``publish`` (one process less per backfill day); see RunPublication.
LANDED = AssetAlias(name="smsc.daily_stats.landed")


#: Shown on the DAG's page in the UI.
DAG_DOC = """\
SMSC sending statistics into PostgreSQL, one calendar day per run, one DAG per account.

Each run's data interval is one day in the account's time zone (`SMSC_TIMEZONE`) and
starts at `SMSC_SCHEDULE_TIME` the next morning. `load_day` loads the run's day (one
task per series); `plan_days` fails the run with the fix when those loads can never get a
pool slot. Scheduled runs also re-fetch the `SMSC_LOOKBACK_DAYS` previous days
(`lookback_day`), fail when older days were never loaded (`check_gaps`), and
reconcile a month against SMSC's month total when it closes (and again once its last day
leaves the lookback window) — only if every day of it was loaded; a difference re-fetches
the month's days one paced task at a time, below the daily loads in priority. Backfills
and manual runs load exactly their day: `plan_days` and `load_day` run, and the run's
last load publishes the asset itself, so `publish` and the rest are skipped. Every
SMSC call runs in the account's pool and is paced by the warehouse's call ledger.

One account (default): DAG `smsc_daily_stats`, connection `smsc_default`, pool
`smsc_api`. `SMSC_ACCOUNTS` lists several: `smsc_daily_stats_<name>` each.
"""


def build_dags(
    settings: PipelineSettings | None = None,
    alerts: AlertSettings | None = None,
    only: str | None = None,
) -> dict[str, DAG]:
    """Every account's DAG by its dag_id; ``settings`` and ``alerts`` default to the
    environment's. ``only``: just that DAG when it is one of them (a task process needs
    only its own; the whole configuration is still read and checked)."""
    settings = settings if settings is not None else PipelineSettings.from_env()
    alerts = alerts if alerts is not None else AlertSettings.from_env()
    accounts = settings.all_accounts()
    if any(account.dag_id == only for account in accounts):
        accounts = tuple(account for account in accounts if account.dag_id == only)
    return {account.dag_id: build_dag(settings, account, alerts) for account in accounts}


#: The mapped task's label after its day or month: which series it loads (none for main).
SERIES_LABEL = (
    "{{ ' balance2' if task.balance2 else '' }}{{ ' subclients' if task.subclients else '' }}"
)


def alert_arguments(
    settings: PipelineSettings, account: AccountConfig, alerts: AlertSettings
) -> dict[str, Any]:
    """The DAG's ``default_args`` callback and ``deadline``; empty when nothing is set up."""
    arguments: dict[str, Any] = {}
    if not alerts.enabled and alerts.deadline is None:
        return arguments
    from smsc_hook.alerts.callbacks import FailureAlert, deadline_alert

    if alerts.enabled:
        callback = FailureAlert(
            settings=alerts,
            conn_id=account.conn_id,
            warehouse_conn_id=settings.warehouse_conn_id,
            timezone=settings.timezone,
        )
        arguments["default_args"] = {"on_failure_callback": [callback]}
    if alerts.deadline is not None:
        if not alerts.enabled:
            raise SmscConfigError(
                "SMSC_DEADLINE is set but no alert channel is: set SMSC_ALERT_WEBHOOK_URL"
                " and/or SMSC_ALERT_EMAIL_TO, or unset SMSC_DEADLINE"
            )
        if alerts.deadline <= settings.run_at:
            raise SmscConfigError(
                f"SMSC_DEADLINE={alerts.deadline:%H:%M} is not after SMSC_SCHEDULE_TIME="
                f"{settings.run_at:%H:%M}: a day's run starts then, so the deadline would"
                " pass before every run; choose a later time"
            )
        arguments["deadline"] = deadline_alert(
            deadline=alerts.deadline,
            account_name=account.name or "",
            conn_id=account.conn_id,
            warehouse_conn_id=settings.warehouse_conn_id,
            timezone=settings.timezone,
            series=tuple(account.series),
        )
    return arguments


def api_task_arguments(settings: PipelineSettings, account: AccountConfig) -> dict[str, object]:
    """Pool, pacing and retry policy every SMSC-calling task of ``account`` shares."""
    return {
        "smsc_conn_id": account.conn_id,
        "postgres_conn_id": settings.warehouse_conn_id,
        "pool": account.pool,
        "rate_limit": settings.rate_limit,
        "rate_window": settings.rate.window,
        "ip_block_pause": settings.ip_block_pause,
        # users.php options of the subclients series (its tasks get subclients=True).
        "reseller": account.reseller,
        "hide_deleted": account.hide_deleted,
        "retries": DEFAULT_RETRIES,
        # Priorities are compared as given (see LOAD_PRIORITY), not summed downstream.
        "weight_rule": "absolute",
        "retry_policy": SmscRetryPolicy(
            settings.retry_backoff,
            rate_limit_wait=settings.rate_limit_wait,
            ip_block_wait=settings.ip_block_pause,
        ),
    }


def build_dag(
    settings: PipelineSettings, account: AccountConfig, alerts: AlertSettings | None = None
) -> DAG:
    """The DAG of one account: plan, load (paced), publish, gap check, reconciliation."""
    asset = daily_stats_asset(settings)
    with DAG(
        dag_id=account.dag_id,
        description="SMSC get_stat → smsc.daily_stats, one day per run, paced to the API limit",
        schedule=SmscDailyTimetable(settings.timezone, settings.run_at),
        start_date=datetime.combine(settings.start_date, time(), tzinfo=zone(settings.timezone)),
        end_date=(
            datetime.combine(settings.end_date, time(), tzinfo=zone(settings.timezone))
            if settings.end_date
            else None
        ),
        catchup=settings.catchup,
        max_active_runs=16,
        tags=["smsc", "warehouse", *([f"account:{account.name}"] if account.name else [])],
        doc_md=DAG_DOC,
        **alert_arguments(settings, account, alerts or AlertSettings()),
    ) as dag:
        # The run's own day, one load per series: known at parse time, so a backfill run
        # starts its load without waiting for a planning task (each task is a process).
        # Outside scheduled runs the last of them to land also publishes the asset.
        load = SmscStatsToPostgresOperator.partial(
            task_id="load_day",
            timezone=settings.timezone,
            map_index_template="{{ task.day }}" + SERIES_LABEL,
            priority_weight=LOAD_PRIORITY,
            outlets=[LANDED],
            publication=RunPublication(asset=asset, alias=LANDED, task_id="publish"),
            **api_task_arguments(settings, account),
        ).expand_kwargs(run_series(account))

        # Beside it, in the default pool: fails with the fix when the loads can never get
        # a slot, and plans the lookback re-fetches (scheduled runs only; none otherwise).
        def lookback_plan(context: Context) -> list[dict[str, Any]]:
            from smsc_hook.airflow.planning import plan_lookback

            return plan_lookback(context, settings, account)

        plan = SmscPoolSensor(
            task_id="plan_days",
            smsc_pool=account.pool,
            bound=settings.pool_wait,
            then=lookback_plan,
            # Outside scheduled runs: no lookback, no gap check, no reconciliation.
            scheduled_only=["lookback_day", "check_gaps"],
        )
        lookback = SmscStatsToPostgresOperator.partial(
            task_id="lookback_day",
            timezone=settings.timezone,
            map_index_template="{{ task.day }}" + SERIES_LABEL,
            priority_weight=LOAD_PRIORITY,
            **api_task_arguments(settings, account),
        ).expand_kwargs(plan.output)

        # Scheduled runs: after the run's day and its lookback re-fetches. Elsewhere the
        # last load skips it (it published); a failed load leaves it upstream_failed.
        publish = SmscPublishOperator(
            task_id="publish",
            outlets=[asset],
            trigger_rule="none_failed_min_one_success",
            doc_md="Emit the asset event once every day of the run has landed.",
        )
        checked = SmscGapCheckOperator(
            task_id="check_gaps",
            pipeline=settings,
            account_config=account,
            trigger_rule="none_failed_min_one_success",
        )
        reconcile = SmscReconcileMonthOperator.partial(
            task_id="reconcile_month",
            timezone=settings.timezone,
            map_index_template="{{ task.month }}" + SERIES_LABEL,
            priority_weight=RECONCILE_PRIORITY,
            **api_task_arguments(settings, account),
        ).expand_kwargs(checked.output)
        plan_refetch = SmscRefetchPlanOperator(task_id="plan_refetch", checks=reconcile.output)
        refetch = SmscStatsToPostgresOperator.partial(
            task_id="refetch_day",
            timezone=settings.timezone,
            map_index_template="{{ task.day }}" + SERIES_LABEL,
            priority_weight=RECONCILE_PRIORITY,
            **api_task_arguments(settings, account),
        ).expand_kwargs(plan_refetch.output)
        verify = SmscVerifyReconciliationOperator(
            task_id="verify_reconciliation", checks=reconcile.output, pipeline=settings
        )

        # ``publish`` stays a leaf, so a failed load fails the run (Airflow decides a run's
        # state by its leaves; a load skips it only once every load of the run landed).
        # The gap check follows the loads too; outside scheduled runs ``plan_days`` skips
        # it, and with it the reconciliation branch, at the run's start.
        [load, lookback] >> publish
        [plan, load, lookback] >> checked
        refetch >> verify
    return dag
