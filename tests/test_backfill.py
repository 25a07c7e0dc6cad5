"""A real scheduler backfill against the simulator enforcing the real 3-per-60-s limit.

Scheduler + api-server + dag-processor (LocalExecutor), the DAG unpaused, then
``airflow backfill create`` for five days, exactly as a user would run it.
"""

from __future__ import annotations

import math
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from devtools.airflow_stack import AirflowStack, running_stack
from devtools.simulator_process import running_simulator
from smsc_hook.airflow.windows import zone
from tests.support import (
    DAG_ID,
    PASSWORD,
    airflow_connections,
    most_starts_in_window,
    overlapping,
    query,
    stored_rows,
    truth_rows,
    wait_for_runs,
)

pytestmark = [pytest.mark.backfill, pytest.mark.timeout(900)]

DAYS = 5
WINDOW = timedelta(seconds=60)


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_backfill_loads_every_day_once_within_the_rate_limit(
    tmp_path: Path, warehouse_url: str
) -> None:
    tz = zone("Europe/Moscow")
    last_day = datetime.now(tz).date() - timedelta(days=4)
    first_day = last_day - timedelta(days=DAYS - 1)
    days = [first_day + timedelta(days=i) for i in range(DAYS)]

    with running_simulator("--quiet", "--rate-limit", "3", "--rate-window", "60") as sim:
        stack = AirflowStack(
            home=tmp_path / "airflow",
            connections=airflow_connections(sim.url, warehouse_url),
            # Scheduled runs end with the range, so unpausing creates none (on any date, a
            # month's first included): every call is the backfill's.
            extra_env={"SMSC_LOOKBACK_DAYS": "0", "SMSC_END_DATE": last_day.isoformat()},
        )
        with running_stack(stack):
            print("\n" + stack.python("-m", "smsc_hook.bootstrap", "--no-api-call"), end="")
            stack.wait_for_dag(DAG_ID)
            stack.unpause(DAG_ID)
            started = time.monotonic()
            stack.backfill(DAG_ID, first_day, last_day, max_active_runs=3)
            runs = wait_for_runs(stack, "backfill", DAYS, timeout=600)
            wall = time.monotonic() - started
            run_types = {r["run_type"] for r in stack.dag_runs(DAG_ID)}
            task_instances = stack.task_instances(DAG_ID)
            sim_log = sim.control.requests()
            events = query(stack.metadata, "SELECT source_run_id, source_task_id FROM asset_event")
            truth = {day: truth_rows(sim.control, day) for day in days}
            logs = "".join(
                p.read_text(errors="replace")
                for p in (stack.home / "logs").rglob("*")
                if p.is_file()
            )

    # Exactly the requested days, each in its own successful run; no other run exists.
    assert run_types == {"backfill"}
    run_days = sorted(parse_time(r["logical_date"]).astimezone(tz).date() for r in runs)
    assert run_days == days
    assert {r["state"] for r in runs} == {"success"}

    # Every day equals the simulator's ground truth, loaded exactly once by the backfill.
    assert sum(map(len, truth.values())) > len(days), "no subclient row in the range"
    for day in days:
        assert stored_rows(warehouse_url, day) == truth[day], day
    backfill_loads = query(
        warehouse_url,
        "SELECT window_start, count(*) FROM smsc.load_log"
        " WHERE window_start BETWEEN :a AND :b GROUP BY window_start ORDER BY window_start",
        a=first_day,
        b=last_day,
    )
    assert backfill_loads == [(day, 1) for day in days]

    # The API's limit held: no error 9, never more than 3 calls in any 60 s.
    api_requests = [r for r in sim_log if r["path"] == "/sys/get.php"]
    assert [r for r in api_requests if r.get("error_code") == 9] == []
    assert most_starts_in_window([r["time"] for r in api_requests], WINDOW) <= 3
    ledger = query(warehouse_url, "SELECT reserved_at, outcome FROM smsc.api_calls ORDER BY id")
    assert len(ledger) == len(api_requests) == DAYS
    assert {outcome for _, outcome in ledger} == {"ok"}
    assert most_starts_in_window([at for at, _ in ledger], WINDOW) <= 3

    # The pool of size 1 never ran two load tasks at once.
    loads = [
        (parse_time(ti["start_date"]), parse_time(ti["end_date"]))
        for ti in task_instances
        if ti["task_id"] == "load_day" and ti["start_date"] and ti["end_date"]
    ]
    assert len(loads) == len(api_requests)
    assert overlapping(loads) == []

    # Each run started two task processes (the pool watch and its load); the load, the
    # run's last, published the run's one asset event and skipped publish.
    ran = [ti for ti in task_instances if ti["state"] not in ("skipped", None)]
    assert sorted({ti["task_id"] for ti in ran}) == ["load_day", "plan_days"]
    assert len(ran) == 2 * DAYS, [(ti["task_id"], ti["state"]) for ti in ran]
    assert [ti["state"] for ti in task_instances if ti["task_id"] == "publish"] == [
        "skipped"
    ] * DAYS
    assert sorted(events) == sorted((r["dag_run_id"], "load_day") for r in runs)

    # The password is in no task log.
    assert PASSWORD not in logs

    times = sorted(r["time"] for r in api_requests)
    span = times[-1] - times[0]
    # With bursts of 3, n calls cannot span less than (ceil(n / 3) - 1) windows.
    fastest = (math.ceil(len(times) / 3) - 1) * WINDOW.total_seconds()
    print(
        f"backfill of {DAYS} days: {wall:.0f} s wall, {len(times)} API calls over {span:.1f} s "
        f"(the 3-per-60-s limit allows no less than {fastest:.0f} s: "
        f"{fastest / span if span else 1:.1%} of the limit's pace), 0 error-9 replies"
    )
