"""SMSC sending statistics into PostgreSQL, one calendar day per run.

Each run's data interval is one day in the account's time zone (``SMSC_TIMEZONE``) and
starts at ``SMSC_SCHEDULE_TIME`` the next morning. Scheduled runs also re-fetch the
``SMSC_LOOKBACK_DAYS`` previous days; backfills and manual runs load exactly their day.
Every SMSC call runs in the ``smsc_api`` pool and is paced by the warehouse's call ledger.

Parsing this file reads environment variables only: no database, no network.
"""

from __future__ import annotations

from datetime import datetime, time

from airflow.sdk import DAG, Asset, task

from smsc_hook.operator import DEFAULT_RETRIES, SmscStatsToPostgresOperator
from smsc_hook.retry import SmscRetryPolicy
from smsc_hook.settings import PipelineSettings
from smsc_hook.timetable import SmscDailyTimetable
from smsc_hook.windows import zone

SETTINGS = PipelineSettings.from_env()
#: BI refresh DAGs can schedule on this asset: it is updated when a run's days have landed.
DAILY_STATS = Asset(name="smsc.daily_stats", uri="postgres://smsc-warehouse/smsc/smsc/daily_stats")

with DAG(
    dag_id="smsc_daily_stats",
    description="SMSC get_stat → smsc.daily_stats, one day per run, paced to the API limit",
    schedule=SmscDailyTimetable(SETTINGS.timezone, SETTINGS.run_at),
    start_date=datetime.combine(SETTINGS.start_date, time(), tzinfo=zone(SETTINGS.timezone)),
    catchup=SETTINGS.catchup,
    max_active_runs=16,
    tags=["smsc", "warehouse"],
    doc_md=__doc__,
) as dag:

    @task
    def plan_days(**context: object) -> list[str]:
        """The run's day, plus the lookback days for scheduled runs; checks the bootstrap."""
        from smsc_hook.planning import plan_for_run

        return plan_for_run(context, SETTINGS)

    load = SmscStatsToPostgresOperator.partial(
        task_id="load_day",
        smsc_conn_id=SETTINGS.smsc_conn_id,
        postgres_conn_id=SETTINGS.warehouse_conn_id,
        pool=SETTINGS.pool,
        retries=DEFAULT_RETRIES,
        retry_policy=SmscRetryPolicy(
            SETTINGS.retry_backoff,
            rate_limit_wait=SETTINGS.rate_limit_wait,
            ip_block_wait=SETTINGS.ip_block_pause,
        ),
        ip_block_pause=SETTINGS.ip_block_pause,
        rate_limit=SETTINGS.rate_limit,
        rate_window=SETTINGS.rate.window,
        timezone=SETTINGS.timezone,
        map_index_template="{{ task.day }}",
    ).expand(day=plan_days())

    @task(outlets=[DAILY_STATS])
    def publish(loaded: list[dict[str, object]]) -> int:
        """Emit the asset event once every day of the run has landed."""
        # Indexing (not iterating) the lazy XCom sequence avoids a 404 probe past its end.
        return sum(int(str(loaded[i]["rows"])) for i in range(len(loaded)))

    publish(load.output)  # type: ignore[arg-type]  # an XComArg resolves to the list
