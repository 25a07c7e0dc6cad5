"""The production defaults under a real scheduler: scheduled runs with lookback and a month end.

Catch-up scheduled runs over a fixed past range (``SMSC_START_DATE`` .. ``SMSC_END_DATE``),
so the runs that exist do not depend on today's date; the default lookback (3 days) and
reconciliation; the simulator enforcing a scaled rate window. And the run-time pool watch:
a pool deleted after the bootstrap fails ``plan_days`` with the fix instead of hanging.
"""

from __future__ import annotations

import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from devtools.airflow_stack import AirflowStack, running_stack
from devtools.simulator_process import running_simulator
from tests.support import (
    ACCOUNT,
    DAG_ID,
    airflow_connections,
    most_starts_in_window,
    preload,
    query,
    stored_rows,
    truth_rows,
    wait_for_runs,
)

pytestmark = [pytest.mark.backfill, pytest.mark.timeout(900)]

RATE_WINDOW = 2.0  # seconds: SMSC's 60 s window, scaled down 30x on both sides
FEBRUARY = [date(2026, 2, 1) + timedelta(days=i) for i in range(28)]
#: Scheduled runs for these days: the month closes in the first, and its last day leaves
#: the 3-day lookback window in the last (the second reconciliation).
RUN_DAYS = [date(2026, 2, 28), date(2026, 3, 1), date(2026, 3, 2), date(2026, 3, 3)]
REVISED = date(2026, 2, 10)


def parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def test_scheduled_runs_with_defaults_reload_lookback_and_reconcile_the_month(
    tmp_path: Path, warehouse_url: str
) -> None:
    with running_simulator(
        "--quiet", "--rate-limit", "3", "--rate-window", str(RATE_WINDOW)
    ) as sim:
        stack = AirflowStack(
            home=tmp_path / "airflow",
            connections=airflow_connections(sim.url, warehouse_url),
            # Production defaults (lookback 3, reconciliation on), a fixed past range of
            # scheduled runs, and the ledger at the simulator's scaled window.
            extra_env={
                "SMSC_START_DATE": RUN_DAYS[0].isoformat(),
                "SMSC_END_DATE": RUN_DAYS[-1].isoformat(),
                "SMSC_CATCHUP": "true",
                "SMSC_RATE_WINDOW_SECONDS": str(RATE_WINDOW),
            },
        )
        with running_stack(stack):
            stack.python("-m", "smsc_hook.bootstrap", "--no-api-call")
            preload(warehouse_url, sim.control, FEBRUARY[:-1])
            # SMSC revises a day after it was loaded: only the month total can tell.
            (before,) = [
                r for r in sim.control.truth(ACCOUNT, REVISED, REVISED) if r["login"] == ACCOUNT
            ]
            sim.control.revise(ACCOUNT, ACCOUNT, REVISED, cnt=before["cnt"] + 7)
            assert stored_rows(warehouse_url, REVISED) != truth_rows(sim.control, REVISED)
            stack.wait_for_dag(DAG_ID)
            stack.unpause(DAG_ID)
            runs = wait_for_runs(stack, "scheduled", len(RUN_DAYS), timeout=720)
            tis = stack.task_instances(DAG_ID)
            sim_log = [r for r in sim.control.requests() if r["path"] == "/sys/get.php"]
            truth = {day: truth_rows(sim.control, day) for day in [*FEBRUARY, *RUN_DAYS[1:]]}

    assert {r["state"] for r in runs} == {"success"}, [(r["run_id"], r["state"]) for r in runs]

    # The revised day was detected at the month's close, every day re-fetched, kept as a
    # revision, and the second comparison (and the one after the lookback) matched.
    checks = query(
        warehouse_url,
        "SELECT attempt, status FROM smsc.reconciliation_check"
        " WHERE month = '2026-02-01' ORDER BY id",
    )
    # Runs overlap, so the check after the lookback may come before or after the first
    # check's verification: what holds is the set, and that every difference was verified.
    firsts = [status for attempt, status in checks if attempt == 1]
    seconds = [status for attempt, status in checks if attempt == 2]
    assert checks[0] == (1, "differs"), checks
    assert len(firsts) == 2, "at the month's close and when its last day left the lookback"
    differing = firsts.count("differs")
    assert len(seconds) == differing >= 1, checks
    assert set(seconds) == {"matched"}, checks
    status = query(
        warehouse_url,
        "SELECT DISTINCT status, matched FROM smsc.reconciliation_status"
        " WHERE month = '2026-02-01'",
    )
    assert status == [("matched", True)]
    revisions = query(
        warehouse_url,
        "SELECT login, old_cnt, new_cnt FROM smsc.stat_revision WHERE stat_date = :day",
        day=REVISED,
    )
    assert revisions == [(ACCOUNT, before["cnt"], before["cnt"] + 7)]

    # Lookback: each run loaded its day and the 3 before it (Feb 25 .. Mar 3).
    loads = dict(
        query(
            warehouse_url,
            "SELECT window_start, count(*) FROM smsc.load_log"
            " WHERE window_start = window_end GROUP BY 1",
        )
    )
    # Each check that differed re-fetched every day of February once more.
    assert loads[date(2026, 2, 10)] == 1 + differing
    assert loads[date(2026, 2, 25)] == 2 + differing, "preloaded, then the Feb 28 lookback"
    assert loads[date(2026, 3, 1)] == 3, "its own run and the next two runs' lookback"
    assert loads[date(2026, 3, 3)] == 1
    for day, expected in truth.items():
        assert stored_rows(warehouse_url, day) == expected, day

    # Calls: 4 per run, one month call per check with SMSC's totals, 28 re-fetches per
    # check that differed; all of them within the (scaled) limit, none refused.
    month_calls = [r for r in sim_log if r["start"] != r["end"]]
    first_checks = len(firsts)
    assert len(month_calls) == first_checks
    assert len(sim_log) == 4 * len(RUN_DAYS) + first_checks + 28 * differing
    assert [r for r in sim_log if r.get("error_code")] == []
    times = [r["time"] for r in sim_log]
    assert most_starts_in_window(times, timedelta(seconds=RATE_WINDOW)) <= 3

    # Reconciliation ran in Airflow as mapped tasks; a day's load never waited behind a
    # re-fetch for the pool's slot.
    by_task: dict[str, list[dict]] = {}
    for ti in tis:
        by_task.setdefault(ti["task_id"], []).append(ti)
    # Runs in which no month closes skip the reconciliation tasks.
    assert {ti["state"] for ti in by_task["reconcile_month"]} == {"success", "skipped"}
    assert sum(ti["state"] == "success" for ti in by_task["reconcile_month"]) == first_checks
    refetches = [ti for ti in by_task["refetch_day"] if ti["state"] == "success"]
    assert len(refetches) == 28 * differing
    assert {ti["state"] for ti in by_task["verify_reconciliation"]} >= {"success"}
    assert {ti["state"] for ti in by_task["plan_days"]} == {"success"}
    # The lookback re-fetches are tasks of their own, in scheduled runs only.
    assert len(by_task["lookback_day"]) == 3 * len(RUN_DAYS)
    for refetch in refetches:
        taken = parse_time(refetch["queued_when"])
        assert taken is not None
        waiting = [
            load["map_index"]
            for load in by_task["load_day"] + by_task["lookback_day"]
            if (scheduled := parse_time(load["scheduled_when"]))
            and (queued := parse_time(load["queued_when"]))
            and scheduled < taken - timedelta(seconds=1)
            and queued > taken
        ]
        assert waiting == [], f"refetch {refetch['rendered_map_index']} went before loads"
    print(
        f"\nproduction defaults: {len(RUN_DAYS)} scheduled runs, {len(sim_log)} API calls "
        f"({len(month_calls)} month checks, {28 * differing} re-fetches), checks {checks}"
    )


def test_a_pool_deleted_after_the_bootstrap_fails_plan_days_with_the_fix(
    tmp_path: Path, warehouse_url: str
) -> None:
    with running_simulator("--quiet") as sim:
        stack = AirflowStack(
            home=tmp_path / "airflow",
            connections=airflow_connections(sim.url, warehouse_url),
            extra_env={
                "SMSC_LOOKBACK_DAYS": "0",
                "SMSC_END_DATE": "2026-11-05",
                "SMSC_POOL_WAIT_SECONDS": "15",
            },
        )
        with running_stack(stack):
            stack.python("-m", "smsc_hook.bootstrap", "--no-api-call")
            stack.airflow("pools", "delete", "smsc_api")
            stack.wait_for_dag(DAG_ID)
            stack.unpause(DAG_ID)
            started = time.monotonic()
            stack.airflow("dags", "trigger", DAG_ID, "--logical-date", "2026-11-05T00:00:00+03:00")
            deadline = started + 240
            watch: dict[str, Any] = {}
            while time.monotonic() < deadline:
                tis = {ti["task_id"]: ti for ti in stack.task_instances(DAG_ID)}
                watch = tis.get("plan_days", {})
                if watch.get("state") == "failed":
                    break
                time.sleep(2)
            waited = time.monotonic() - started
            load_states = {
                ti["state"] for ti in stack.task_instances(DAG_ID) if ti["task_id"] == "load_day"
            }
            logs = "".join(
                p.read_text(errors="replace")
                for p in (stack.home / "logs").rglob("*")
                if p.is_file() and "plan_days" in str(p)
            )
            requests = sim.control.requests()

    assert watch.get("state") == "failed", watch
    assert load_states == {"scheduled"}, "the load never got a slot: the hang this catches"
    assert "the pool is missing, has 0 slots" in logs
    assert "airflow pools set smsc_api 1" in logs
    assert requests == []
    print(f"\nmissing pool: plan_days failed {waited:.0f} s after the trigger (bound 15 s)")
