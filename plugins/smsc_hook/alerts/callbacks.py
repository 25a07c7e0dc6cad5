"""The Airflow side of alerts: the task failure callback and the deadline's callback.

Airflow 3.3 runs ``on_failure_callback`` only when a try ends ``failed`` — the retry
policy said FAIL (errors 1 and 2, bad data, configuration) or the retries are used up; a
try that will be retried runs ``on_retry_callback`` instead, which we leave alone. So one
alert per failed try that will not be retried, and none while an error 9 is waited out.

The deadline (an Airflow Deadline Alert, 3.1+, experimental) is created for every run,
backfills included, and fires for a past day at once: its callback alerts only for
scheduled runs, and only when the day is really not in the warehouse.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from smsc_hook.alerts.channels import deliver
from smsc_hook.alerts.config import AlertSettings
from smsc_hook.alerts.message import Alert, deadline_alert_message, failure_alert

if TYPE_CHECKING:
    from airflow.sdk.definitions.deadline import DeadlineAlert

log = logging.getLogger(__name__)
SCHEDULED = "scheduled"


def _local_day(moment: datetime | str, timezone: str) -> date:
    from smsc_hook.airflow.windows import local_day, zone

    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    return local_day(moment, zone(timezone))


def _run_type(dag_run: Any) -> str:
    run_type = dag_run.get("run_type") if isinstance(dag_run, Mapping) else dag_run.run_type
    return str(getattr(run_type, "value", run_type))


def _secrets(conn_id: str, warehouse_conn_id: str) -> tuple[str | None, list[str]]:
    """The account key and every secret of both connections (to mask in the body)."""
    account, secrets = None, []
    try:
        from smsc_hook.client.hook import SmscHook

        settings = SmscHook(conn_id).settings
        account, secrets = settings.account, list(settings.secrets)
    except Exception:
        log.warning("SMSC alert: could not read connection %r to mask its secrets", conn_id)
    try:
        from airflow.sdk import Connection

        password = Connection.get(warehouse_conn_id).password
        if password:
            secrets.append(password)
    except Exception:
        log.warning("SMSC alert: could not read connection %r", warehouse_conn_id)
    return account, secrets


class FailureAlert:
    """``on_failure_callback`` of every task of an account's DAG: one alert per failed try.

    Holds only settings (built at parse time, no I/O); connections are read when it runs.
    """

    def __init__(
        self, *, settings: AlertSettings, conn_id: str, warehouse_conn_id: str, timezone: str
    ) -> None:
        self.settings = settings
        self.conn_id = conn_id
        self.warehouse_conn_id = warehouse_conn_id
        self.timezone = timezone

    def __repr__(self) -> str:
        return f"FailureAlert(conn_id={self.conn_id!r})"

    def build(self, context: Mapping[str, Any]) -> Alert:
        """The alert for the failed try in ``context``."""
        ti = context["ti"]
        task = context.get("task")
        days: list[str] = []
        for attribute in ("day", "month"):
            value = getattr(task, attribute, None)
            if value:
                days = [value.isoformat() if isinstance(value, date) else str(value)]
                break
        start = context.get("data_interval_start") or context.get("logical_date")
        if not days and start is not None:
            days = [_local_day(start, self.timezone).isoformat()]
        account, secrets = _secrets(self.conn_id, self.warehouse_conn_id)
        return failure_alert(
            dag_id=ti.dag_id,
            run_id=ti.run_id,
            run_type=_run_type(context["dag_run"]),
            task_id=ti.task_id,
            map_index=getattr(ti, "map_index", None),
            try_number=getattr(ti, "try_number", None),
            account=account,
            days=days,
            exception=context.get("exception"),
            secrets=secrets,
            log_url=getattr(ti, "log_url", None),
        )

    def __call__(self, context: Mapping[str, Any]) -> None:
        try:
            alert = self.build(context)
        except Exception:
            log.exception("SMSC alert: could not build the failure alert")
            return
        deliver(alert, self.settings, context)


def deadline_interval(deadline: time) -> timedelta:
    """From the run's logical date (D 00:00 local) to ``deadline`` on D+1.

    A fixed span: on a day the zone changes its UTC offset it lands an hour off.
    """
    return timedelta(days=1, hours=deadline.hour, minutes=deadline.minute)


def deadline_alert(
    *,
    deadline: time,
    account_name: str,
    conn_id: str,
    warehouse_conn_id: str,
    timezone: str,
    series: tuple[str, ...] = ("main",),
) -> DeadlineAlert:
    """The DAG's Deadline Alert: ``deadline_missed`` on the executor, at D+1 ``deadline``."""
    from airflow.sdk.definitions.callback import SyncCallback
    from airflow.sdk.definitions.deadline import DeadlineAlert, DeadlineReference

    return DeadlineAlert(
        reference=DeadlineReference.DAGRUN_LOGICAL_DATE,
        interval=deadline_interval(deadline),
        callback=SyncCallback(
            deadline_missed,
            kwargs={
                "account": account_name,
                "conn_id": conn_id,
                "warehouse_conn_id": warehouse_conn_id,
                "timezone": timezone,
                "deadline": deadline.strftime("%H:%M"),
                "series": list(series),
            },
        ),
        name="smsc_not_loaded_by",
    )


def missing_series(
    warehouse_conn_id: str, account: str, day: date, series: Sequence[str]
) -> list[str]:
    """The series of ``account`` with no fetch of ``day`` in the warehouse."""
    from sqlalchemy import text

    from smsc_hook.warehouse.engine import make_engine, warehouse_url

    engine = make_engine(warehouse_url(warehouse_conn_id))
    try:
        with engine.connect() as conn:
            loaded = set(
                conn.execute(
                    text(
                        "SELECT DISTINCT series FROM smsc.load_log WHERE account = :account"
                        " AND window_start <= :day AND window_end >= :day"
                    ),
                    {"account": account, "day": day},
                ).scalars()
            )
    finally:
        engine.dispose()
    return [name for name in series if name not in loaded]


def deadline_missed(
    context: Mapping[str, Any],
    account: str,
    conn_id: str,
    warehouse_conn_id: str,
    timezone: str,
    deadline: str,
    series: Sequence[str] = ("main",),
    today: date | None = None,
) -> str:
    """The Deadline Alert's callback: alert once if a scheduled run's day is not loaded.

    Backfill and manual runs never alert (their deadline is usually long past when they
    are created), nor do catch-up runs of older days (created after their deadline, they
    would all fire at once): only yesterday's day, as the deadline means. Returns what it
    decided, which Airflow logs.
    """
    dag_run = context.get("dag_run") or {}
    run_type = _run_type(dag_run)
    run_id = dag_run.get("dag_run_id") or dag_run.get("run_id")
    if run_type != SCHEDULED:
        decision = f"skipped: {run_id} is a {run_type} run, not a scheduled one"
        log.info("SMSC deadline: %s", decision)
        return decision
    start = dag_run.get("data_interval_start") or dag_run.get("logical_date")
    if start is None:
        return f"skipped: {run_id} has no logical date"
    day = _local_day(start, timezone)
    from smsc_hook.airflow.windows import zone

    yesterday = (today or datetime.now(zone(timezone)).date()) - timedelta(days=1)
    if day != yesterday:
        decision = f"skipped: {day.isoformat()} is a catch-up day, not yesterday"
        log.info("SMSC deadline: %s", decision)
        return decision
    from smsc_hook.client.hook import SmscHook

    key = SmscHook(conn_id).settings.account
    missing = missing_series(warehouse_conn_id, key, day, series)
    if not missing:
        decision = f"{day.isoformat()} is loaded: no alert"
        log.info("SMSC deadline: %s", decision)
        return decision
    alert = deadline_alert_message(
        dag_run=dag_run, account=key or account, day=day.isoformat(), deadline=deadline
    )
    channels = deliver(alert, AlertSettings.from_env())
    decision = (
        f"{day.isoformat()} ({', '.join(missing)}) not loaded by {deadline}:"
        f" alerted ({', '.join(channels)})"
    )
    log.warning("SMSC deadline: %s", decision)
    return decision
