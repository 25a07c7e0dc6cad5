"""Case 3: two Airflow deployments share one warehouse and one SMSC account, at the real limit.

Deployment A (its own scheduler and metadata database) is unpaused, so its scheduler runs the
newest complete day L, and it backfills L-3..L-1. Deployment B, at the same moment,
backfills L-3..L newest first, one run at a time — so day L is loaded by A's scheduled run
and B's backfill at once (both runs active together, both calls in the first minute), and
every other day by two backfills at once. (Within one deployment Airflow itself refuses a
backfill run for a day whose run is in flight.) The simulator enforces SMSC's real
3 calls per 60 s; only the shared call ledger keeps the two deployments under it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as clock_time
from typing import Any

import pytest

from devtools import postgres
from devtools.airflow_stack import AirflowStack, running_stack
from devtools.reliability.harness import (
    ACCOUNT,
    DAG_ID,
    DEMO_PASSWORD,
    TIMEZONE,
    CaseFigures,
    Evidence,
    backfill,
    connections,
    gather,
    most_in_window,
    parse_time,
    pipeline_env,
    postgres_metadata,
    prepare,
    query,
    run_day,
    wait_for_runs,
)
from devtools.simulator_process import running_simulator
from simulator.config import SimulatorConfig
from simulator.truth import window_rows
from smsc_hook.airflow.windows import latest_complete_day, zone
from smsc_hook.checks.reconciliation import months_to_reconcile

CASE = "3 two deployments"
pytestmark = [pytest.mark.reliability, pytest.mark.timeout(900)]

LIMIT, WINDOW = 3, 60.0
DAYS_BEFORE = 3


def schedule_time() -> str:
    """03:00, unless that makes the scheduled day a month's last (its run would reconcile
    the month: 30 more calls at 3 per minute). 23:59 moves the newest complete day back."""
    newest = latest_complete_day(datetime.now(zone(TIMEZONE)), zone(TIMEZONE), clock_time(3, 0))
    return "23:59" if months_to_reconcile(newest, 0) else "03:00"


def _wait_for_calls(warehouse_url: str, day: date, count: int, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        calls = query(
            warehouse_url, "SELECT count(*) FROM smsc.api_calls WHERE window_start = :d", d=day
        )
        if calls[0][0] >= count:
            return
        time.sleep(0.5)
    raise AssertionError(f"{day} did not get {count} calls within {timeout:.0f} s")


def model_rows(day: date) -> list[tuple[Any, ...]]:
    """The day's rows as the simulator's model computes them in this process (default
    accounts and seed, no revisions): an expectation that does not come from the running
    server, and always holds the main login's row, so an empty warehouse day cannot match."""
    return sorted(
        (r["login"], r["cnt"], r["credit"], r["debit"], r["currency"])
        for r in window_rows(SimulatorConfig(), ACCOUNT, day, day)
    )


@dataclass
class SharedRun:
    evidence: Evidence
    scheduled_day: date
    runs_a: list[dict[str, Any]]
    runs_b: list[dict[str, Any]]
    loads: list[tuple[date, str]]
    revisions: int


@pytest.fixture(scope="module")
def shared_run(tmp_path_factory: pytest.TempPathFactory, pg_server_url: str) -> Iterator[SharedRun]:
    home = tmp_path_factory.mktemp("shared")
    with (
        postgres.throwaway_database(pg_server_url) as warehouse_url,
        postgres_metadata(pg_server_url) as metadata_a,
        postgres_metadata(pg_server_url) as metadata_b,
        running_simulator("--quiet", "--rate-limit", str(LIMIT), "--rate-window", "60") as sim,
    ):
        conns = connections(sim.url, warehouse_url, password=DEMO_PASSWORD)
        run_at = {"SMSC_SCHEDULE_TIME": schedule_time()}
        a = AirflowStack(
            home=home / "a",
            connections=conns,
            extra_env={**pipeline_env(scheduled_run=True), **run_at, **metadata_a},
        )
        b = AirflowStack(
            home=home / "b", connections=conns, extra_env={**pipeline_env(), **metadata_b}
        )
        with ExitStack() as running:
            for stack in (a, b):
                running.enter_context(running_stack(stack))
                prepare(stack)
            a.unpause(DAG_ID)
            b.unpause(DAG_ID)
            scheduled = wait_for_runs(
                a, 1, run_types=("scheduled",), timeout=60, label="A scheduled: ", finished=False
            )
            day = run_day(scheduled[0])
            # Newest first, one run at a time: B's run for day L starts alone while A's
            # scheduled run of L is going; A's backfill joins once both have called for L.
            backfill(b, day - timedelta(days=DAYS_BEFORE), day, max_active_runs=1, backwards=True)
            _wait_for_calls(warehouse_url, day, 2)
            backfill(a, day - timedelta(days=DAYS_BEFORE), day - timedelta(days=1))
            runs_a = wait_for_runs(
                a, DAYS_BEFORE + 1, run_types=("scheduled", "backfill"), timeout=600, label="A: "
            )
            runs_b = wait_for_runs(b, DAYS_BEFORE + 1, timeout=600, label="B: ")
            days = [day - timedelta(days=n) for n in range(DAYS_BEFORE, -1, -1)]
            evidence = gather(a, sim.control, warehouse_url, days, run_types=())
            loads = [
                (d, sha)
                for d, sha in query(
                    warehouse_url,
                    "SELECT window_start, reply_sha256 FROM smsc.load_log ORDER BY id",
                )
            ]
            revisions = query(warehouse_url, "SELECT count(*) FROM smsc.stat_revision")[0][0]
            yield SharedRun(evidence, day, runs_a, runs_b, loads, revisions)


def test_both_deployments_end_with_identical_rows_equal_to_truth(
    shared_run: SharedRun, case: CaseFigures
):
    case.case = "3 two deployments: identical final rows"
    ev = shared_run.evidence
    assert {r["state"] for r in shared_run.runs_a + shared_run.runs_b} == {"success"}
    assert len(ev.days) == DAYS_BEFORE + 1
    for day in ev.days:
        assert ev.stored[day] == model_rows(day), day
        assert ev.stored[day] == ev.truth[day], day
        replies = {sha for d, sha in shared_run.loads if d == day}
        fetched = [d for d, _ in shared_run.loads if d == day]
        assert len(fetched) == 2, f"{day} was loaded {len(fetched)} times, once per deployment"
        assert len(replies) == 1, f"{day}: the two deployments stored different replies"
    assert shared_run.revisions == 0, "a second load of an identical reply changed nothing"
    case.calls = len(ev.calls)
    case.rows = ev.rows_checked
    case.figures = (
        f"{len(ev.days)} days x 2 deployments: each day 2 loads of one identical reply, "
        f"0 revisions, rows = truth"
    )


def test_scheduled_run_and_backfill_of_the_same_day(shared_run: SharedRun, case: CaseFigures):
    case.case = "3 scheduled run + backfill of one day at once"
    ev = shared_run.evidence
    day = shared_run.scheduled_day
    calls = ev.calls_for(day)
    callers = sorted(c.caller.split("/")[1].split("__")[0] for c in calls)
    assert callers == ["backfill", "scheduled"]
    assert [c.outcome for c in calls] == ["ok", "ok"]
    assert ev.stored[day] == ev.truth[day] == model_rows(day)
    apart = abs((calls[1].reserved_at - calls[0].reserved_at).total_seconds())
    assert apart < WINDOW, "both calls in the first rate window: the runs were concurrent"
    (a_run,) = [r for r in shared_run.runs_a if r["run_type"] == "scheduled"]
    (b_run,) = [r for r in shared_run.runs_b if run_day(r) == day]
    a_span = (parse_time(a_run["start_date"]), parse_time(a_run["end_date"]))
    b_span = (parse_time(b_run["start_date"]), parse_time(b_run["end_date"]))
    together = (min(a_span[1], b_span[1]) - max(a_span[0], b_span[0])).total_seconds()
    assert together > 0, "the scheduled run and the backfill run did not overlap"
    case.calls = len(calls)
    case.rows = len(ev.truth[day])
    case.figures = (
        f"{day}: A scheduled + B backfill runs overlapped {together:.0f} s, "
        f"calls {apart:.1f} s apart, rows = truth"
    )


def test_shared_ledger_keeps_both_under_the_real_limit(shared_run: SharedRun, case: CaseFigures):
    case.case = f"3 two deployments: <= {LIMIT} calls per {WINDOW:.0f} s"
    ev = shared_run.evidence
    assert [r for r in ev.requests if r.get("error_code") == 9] == []
    by_ledger = most_in_window([c.reserved_at for c in ev.calls], WINDOW)
    by_sim = most_in_window([r["time"] for r in ev.requests], WINDOW)
    assert by_ledger <= LIMIT
    assert by_sim <= LIMIT
    assert len(ev.calls) == len(ev.requests) == 2 * len(ev.days)
    times = sorted(c.reserved_at for c in ev.calls)
    span = (times[-1] - times[0]).total_seconds()
    case.calls = len(ev.calls)
    case.figures = (
        f"most in any 60 s: {by_ledger} (ledger), {by_sim} (simulator); 0 error 9; "
        f"{len(times)} calls over {span:.0f} s"
    )
