"""The baseline the benchmark compares against: the DAG most teams write first.

One task per day calls ``get_stat`` through a plain ``SmscHook`` (no pacer), in a pool of
one slot, with ``retries=10`` and a fixed ``retry_delay`` of 60 s. It writes with the same
``Warehouse.load_day`` as ``smsc_daily_stats``, so the comparison isolates the pacing and
retry strategy. Used only by ``python -m devtools.benchmark``; never deployed.
"""

from __future__ import annotations

import logging
import os
from datetime import date, datetime, time, timedelta

from airflow.sdk import DAG, task

from smsc_hook.airflow.timetable import SmscDailyTimetable
from smsc_hook.airflow.windows import local_day, zone

TIMEZONE = os.environ.get("SMSC_TIMEZONE", "Europe/Moscow")
START = date.fromisoformat(os.environ.get("SMSC_START_DATE", "2026-01-01"))
log = logging.getLogger(__name__)

with DAG(
    dag_id="smsc_naive_stats",
    description="Baseline: one unpaced SMSC call per day, fixed 60 s retries",
    schedule=SmscDailyTimetable(TIMEZONE, "03:00"),
    start_date=datetime.combine(START, time(), tzinfo=zone(TIMEZONE)),
    catchup=False,
    default_args={"pool": "smsc_naive", "retries": 10, "retry_delay": timedelta(seconds=60)},
    tags=["benchmark"],
):

    @task
    def load_day(data_interval_start: datetime | None = None) -> int:
        """Fetch the run's day and store it; SMSC's error 9 simply fails the try."""
        from smsc_hook.client.hook import SmscHook
        from smsc_hook.warehouse.engine import make_engine, warehouse_url
        from smsc_hook.warehouse.writer import Warehouse

        assert data_interval_start is not None
        day = local_day(data_interval_start, zone(TIMEZONE))
        hook = SmscHook("smsc_default")
        reply = hook.fetch_stat(day, day)
        engine = make_engine(warehouse_url("smsc_warehouse"))
        try:
            Warehouse(engine).load_day(
                account=hook.settings.account,
                series="main",
                day=day,
                rows=reply.rows,
                raw_reply=reply.raw,
                reply_format=reply.fmt,
                # What a first DAG does: a reply replaces the day, whatever it removes.
                removals_confirmed=True,
            )
        finally:
            engine.dispose()
        log.info("Loaded %s: %d row(s)", day.isoformat(), len(reply.rows))
        return len(reply.rows)

    load_day()
