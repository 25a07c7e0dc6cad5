"""Case 2: the warehouse fails under a real scheduler backfill, and every day still lands whole.

The warehouse is a private PostgreSQL cluster of the test's own (never the shared server),
so it can be killed and stopped. One backfill of six days meets, in turn:

1. a writer killed mid-load: ``smsc.raw_reply`` is locked so the first load blocks on its
   last statement, after its ``load_log`` insert and ``stat_day`` upserts; its backend is
   terminated with ``pg_terminate_backend``;
2. the server stopped with the next writer mid-load, kept down until task tries have
   started against it and failed, then started again (a restart during the backfill, and
   the warehouse unreachable at task start).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

import psycopg2
import pytest

from devtools.airflow_stack import AirflowStack
from devtools.reliability.harness import (
    ACCOUNT,
    DEMO_PASSWORD,
    CaseFigures,
    Evidence,
    backfill,
    connections,
    deployment,
    gather,
    parse_time,
    past_days,
    pipeline_env,
    postgres_metadata,
    query,
    task_instances,
    utc_now,
    wait_for_runs,
)
from devtools.reliability.pgcluster import PrivateCluster, private_cluster
from devtools.simulator_process import running_simulator

CASE = "2 database faults"
pytestmark = [pytest.mark.reliability, pytest.mark.timeout(900)]

RATE_WINDOW = 6.0
DAYS = past_days(6)
DATABASE = "smsc_reliability"

_BLOCKED_WRITER = """
    SELECT pid FROM pg_stat_activity
    WHERE datname = current_database() AND wait_event_type = 'Lock'
      AND query LIKE '%%INSERT INTO smsc.raw_reply%%' AND NOT (pid = ANY(%(seen)s))
"""
# The day whose window lock (see warehouse.window_lock_key) the backend holds.
_WRITERS_DAY = """
    SELECT d FROM unnest(%(days)s::date[]) AS d
    CROSS JOIN LATERAL (
        SELECT hashtextextended(
            'smsc.stat_day/' || %(account)s || '/main/' || to_char(d, 'YYYY-MM-DD'), 0) AS h
    ) AS k
    WHERE EXISTS (
        SELECT FROM pg_locks AS l
        WHERE l.pid = %(pid)s AND l.locktype = 'advisory' AND l.granted
          AND l.classid::text::bigint = (k.h >> 32) & 4294967295
          AND l.objid::text::bigint = k.h & 4294967295)
"""
_TABLES_WRITTEN = """
    SELECT coalesce(array_agg(DISTINCT l.relation::regclass::text), '{}')
    FROM pg_locks AS l JOIN pg_class AS c ON c.oid = l.relation
    WHERE l.pid = %(pid)s AND l.granted AND l.mode = 'RowExclusiveLock' AND c.relkind = 'r'
"""


@dataclass
class Intercepted:
    """A load caught mid-transaction."""

    pid: int
    day: date
    tables_written: list[str]
    #: Committed stat_day rows of the day seen by another session, while blocked and after.
    rows_while_blocked: int
    rows_after: int = -1


@dataclass
class DbFaultRun:
    evidence: Evidence
    killed: Intercepted
    stopped: Intercepted
    down_seconds: float
    #: Task tries that started while the server was down, and the errors they logged.
    tries_while_down: list[dict[str, Any]]
    errors_while_down: list[list[str]]
    raw_replies: int


def _one(cluster: PrivateCluster, sql: str, **params: Any) -> Any:
    conn = psycopg2.connect(cluster.dsn(DATABASE))
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            row = cur.fetchone()
            return None if row is None else row[0]
    finally:
        conn.close()


def _committed_rows(cluster: PrivateCluster, day: date) -> int:
    count: int = _one(
        cluster,
        "SELECT count(*) FROM smsc.stat_day WHERE account = %(a)s AND stat_date = %(d)s",
        a=ACCOUNT,
        d=day,
    )
    return count


def _lock_raw_reply(cluster: PrivateCluster) -> Any:
    """A session holding ``smsc.raw_reply`` exclusively: every load blocks on its last insert.

    Taking the lock waits (at most a minute) for a load that is writing it to commit.
    """
    locker = psycopg2.connect(cluster.dsn(DATABASE), options="-c lock_timeout=60s")
    with locker.cursor() as cur:
        cur.execute("LOCK TABLE smsc.raw_reply IN ACCESS EXCLUSIVE MODE")
    return locker


def _blocked_writer(
    cluster: PrivateCluster, locker: Any, seen: list[int], *, other_than: date | None = None
) -> tuple[Intercepted, Any]:
    """Wait for a load blocked on the raw_reply insert; what it has done so far, and the
    session now holding the lock.

    A load of ``other_than`` is let through (the lock released, then taken again once it
    committed): on a busy machine the killed load's retry can reach the pool's slot before
    the next day's load, and the second fault must hit another day.
    """
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        pid = _one(cluster, _BLOCKED_WRITER, seen=seen)
        if pid is None:
            time.sleep(0.2)
            continue
        day = _one(cluster, _WRITERS_DAY, pid=pid, days=DAYS, account=ACCOUNT)
        if day is not None and day == other_than:
            print(f"database faults: letting {day}'s retry through, waiting for another day")
            seen = [*seen, pid]
            locker.close()
            locker = _lock_raw_reply(cluster)
            continue
        written = _one(cluster, _TABLES_WRITTEN, pid=pid)
        return Intercepted(pid, day, sorted(written), _committed_rows(cluster, day)), locker
    raise AssertionError("no load reached the raw_reply insert within 180 s")


def _tries_started_after(stack: AirflowStack, moment: Any) -> list[dict[str, Any]]:
    return [
        ti
        for ti in task_instances(stack)
        if ti["task_id"] == "load_day"
        and ti["state"] in ("up_for_retry", "failed")
        and ti["start_date"]
        and parse_time(ti["start_date"]) > moment
    ]


def _try_errors(stack: AirflowStack, ti: dict[str, Any]) -> list[str]:
    """``exc_type: exc_value`` of every exception the try's log records."""
    log = (
        stack.home
        / "logs"
        / f"dag_id={ti['dag_id']}"
        / f"run_id={ti['dag_run_id']}"
        / f"task_id={ti['task_id']}"
        / f"map_index={ti['map_index']}"
        / f"attempt={ti['try_number']}.log"
    )
    errors = []
    for line in log.read_text(errors="replace").splitlines():
        event = json.loads(line) if line.startswith("{") else {}
        for detail in event.get("error_detail") or []:
            errors.append(f"{detail.get('exc_type')}: {detail.get('exc_value')}")
    return errors


@pytest.fixture(scope="module")
def db_fault_run(
    tmp_path_factory: pytest.TempPathFactory, pg_server_url: str
) -> Iterator[DbFaultRun]:
    home = tmp_path_factory.mktemp("dbfaults")
    with (
        # Airflow's own metadata stays on the shared server: only the warehouse fails.
        postgres_metadata(pg_server_url) as metadata,
        private_cluster() as cluster,
        running_simulator("--quiet", "--rate-window", str(RATE_WINDOW)) as sim,
    ):
        warehouse_url = cluster.create_database(DATABASE)
        stack = AirflowStack(
            home=home / "airflow",
            connections=connections(sim.url, warehouse_url, password=DEMO_PASSWORD),
            extra_env={**pipeline_env(rate_window=RATE_WINDOW, backoff=2), **metadata},
        )
        with deployment(stack):
            # 1. Kill the first writer after its upserts, before its commit.
            locker = _lock_raw_reply(cluster)
            backfill(stack, DAYS[0], DAYS[-1], max_active_runs=3)
            killed, locker = _blocked_writer(cluster, locker, seen=[])
            assert _one(cluster, "SELECT pg_terminate_backend(%(p)s)", p=killed.pid)
            locker.rollback()
            locker.close()
            killed.rows_after = _committed_rows(cluster, killed.day)

            # 2. Stop the server with another day's writer mid-load; keep it down until
            #    task tries have started against it, then start it again.
            locker = _lock_raw_reply(cluster)
            stopped, locker = _blocked_writer(
                cluster, locker, seen=[killed.pid], other_than=killed.day
            )
            down_at = utc_now()
            started = time.monotonic()
            cluster.stop("fast")
            locker.close()
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and (
                len(_tries_started_after(stack, down_at)) < 2 or time.monotonic() - started < 5
            ):
                time.sleep(0.5)
            tries_while_down = _tries_started_after(stack, down_at)
            errors_while_down = [_try_errors(stack, ti) for ti in tries_while_down]
            cluster.start()
            down_seconds = time.monotonic() - started
            stopped.rows_after = _committed_rows(cluster, stopped.day)

            wait_for_runs(stack, len(DAYS), timeout=600, label="database faults: ")
            evidence = gather(stack, sim.control, warehouse_url, DAYS, with_tries=True)
            raw = query(warehouse_url, "SELECT count(*) FROM smsc.raw_reply")[0][0]
            yield DbFaultRun(
                evidence, killed, stopped, down_seconds, tries_while_down, errors_while_down, raw
            )


def test_writer_killed_mid_upsert_leaves_no_partial_window(
    db_fault_run: DbFaultRun, case: CaseFigures
):
    case.case = "2 backend killed mid-upsert"
    run, ev = db_fault_run, db_fault_run.evidence
    killed = run.killed
    assert {"smsc.load_log", "smsc.stat_day"} <= set(killed.tables_written)
    assert killed.rows_while_blocked == 0, "another session saw the uncommitted rows"
    assert killed.rows_after == 0, "the killed load left rows behind"
    assert ev.run_states()[killed.day] == "success"
    assert ev.stored[killed.day] == ev.truth[killed.day]
    assert ev.loads[killed.day] == 1
    calls = ev.calls_for(killed.day)
    assert [c.outcome for c in calls] == ["ok", "ok"], "fetched, killed, fetched again"
    case.calls = len(calls)
    case.rows = len(ev.truth[killed.day])
    case.figures = (
        f"{killed.day}: killed after writing {', '.join(killed.tables_written)}; "
        f"0 rows visible before/after; retry landed {len(ev.stored[killed.day])} rows once"
    )


def test_server_stopped_mid_load_and_restarted(db_fault_run: DbFaultRun, case: CaseFigures):
    case.case = "2 Postgres restarted during the backfill"
    run, ev = db_fault_run, db_fault_run.evidence
    stopped = run.stopped
    assert stopped.day != run.killed.day
    assert {"smsc.load_log", "smsc.stat_day"} <= set(stopped.tables_written)
    assert stopped.rows_after == 0, "the interrupted load left rows behind"
    assert ev.run_states()[stopped.day] == "success"
    assert ev.stored[stopped.day] == ev.truth[stopped.day]
    assert ev.loads[stopped.day] == 1
    case.calls = len(ev.calls_for(stopped.day))
    case.rows = len(ev.truth[stopped.day])
    case.figures = (
        f"{stopped.day}: server stopped mid-load, down {run.down_seconds:.0f} s; "
        f"0 rows after restart; retry landed it once"
    )


def test_warehouse_unreachable_at_task_start(db_fault_run: DbFaultRun, case: CaseFigures):
    case.case = "2 warehouse unreachable at task start"
    run, ev = db_fault_run, db_fault_run.evidence
    assert len(run.tries_while_down) >= 2
    for errors in run.errors_while_down:
        assert any("OperationalError" in e and "refused" in e for e in errors), errors
    # Every API request has a ledger row, so tries without one made no API call.
    assert len(ev.requests) == len(ev.calls)
    without_call = ev.tries_without_call()
    assert len(without_call) >= len(run.tries_while_down)
    case.calls = 0
    case.figures = (
        f"{len(run.tries_while_down)} tries started while down ({run.down_seconds:.0f} s), "
        "failed with 'connection refused' before any API call "
        f"({len(without_call)} tries without a call in all); retried and landed"
    )


def test_every_day_lands_once_and_equals_ground_truth(db_fault_run: DbFaultRun, case: CaseFigures):
    case.case = "2 all days = ground truth"
    ev = db_fault_run.evidence
    assert set(ev.run_states().values()) == {"success"}
    assert ev.wrong_days() == {}
    assert db_fault_run.raw_replies == len(ev.days), "one archived reply per landed load"
    case.calls = len(ev.calls)
    case.rows = ev.rows_checked
    extra = len(ev.calls) - len(ev.days)
    case.figures = (
        f"{len(ev.days)}/{len(ev.days)} days equal, each landed once; "
        f"{extra} re-fetches caused by the faults"
    )
