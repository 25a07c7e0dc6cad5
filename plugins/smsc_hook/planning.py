"""What a DAG run loads, decided inside the run (never at parse time)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from smsc_hook.exceptions import SmscConfigError
from smsc_hook.settings import BOOTSTRAP_VARIABLE, PipelineSettings
from smsc_hook.windows import days_to_load, local_day, zone

SCHEDULED = "scheduled"


def check_bootstrapped(settings: PipelineSettings) -> None:
    """Fail loudly, with the fix, when the bootstrap (which creates the pool) never ran.

    A task in a missing pool stays ``scheduled`` forever with only a scheduler warning,
    and the Task SDK cannot read pools; the bootstrap's Variable is our witness instead.
    """
    from airflow.sdk import Variable

    raw = Variable.get(BOOTSTRAP_VARIABLE, default=None)
    pool = json.loads(raw).get("pool") if raw else None
    if pool != settings.pool:
        raise SmscConfigError(
            f"pool {settings.pool!r} is not set up (no bootstrap record for it): run "
            f"`python -m smsc_hook.bootstrap`, or `airflow pools set {settings.pool} 1 "
            f"'SMSC API'` and then the bootstrap; otherwise load_day stays queued forever"
        )


def plan_for_run(context: Mapping[str, Any], settings: PipelineSettings) -> list[str]:
    """ISO days for the mapped load tasks, oldest first."""
    check_bootstrapped(settings)
    start = context.get("data_interval_start") or context["logical_date"]
    day = local_day(start, zone(settings.timezone))
    run_type = context["dag_run"].run_type
    scheduled = getattr(run_type, "value", run_type) == SCHEDULED
    days = days_to_load(day, scheduled=scheduled, lookback_days=settings.lookback_days)
    return [d.isoformat() for d in days]
