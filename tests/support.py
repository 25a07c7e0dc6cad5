"""Helpers shared by the Airflow-level tests: connections, ground truth, ledger checks."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from devtools.airflow_stack import AirflowStack, pipeline_connections
from simulator.control import SimulatorControl
from smsc_hook.client.models import StatRow
from smsc_hook.warehouse.writer import Warehouse

DAG_ID = "smsc_daily_stats"
ACCOUNT = "demo"
PASSWORD = "demo-password"


def airflow_connections(
    simulator_url: str, warehouse_url: str, *, password: str = PASSWORD, **extra: Any
) -> dict[str, dict[str, Any]]:
    """``AIRFLOW_CONN_*`` payloads for the simulator and a throwaway warehouse database."""
    return pipeline_connections(
        simulator_url, warehouse_url, login=ACCOUNT, password=password, **extra
    )


def truth_rows(control: SimulatorControl, day: date, account: str = ACCOUNT) -> set[tuple]:
    """What the simulator says ``day`` holds, as comparable tuples."""
    return {
        (r["login"], r["cnt"], r["credit"], r["debit"], r["currency"])
        for r in control.truth(account, day, day)
    }


def stored_rows(warehouse_url: str, day: date, account: str = ACCOUNT) -> set[tuple]:
    """What ``smsc.daily_stats`` (the BI view) holds for ``day``."""
    engine = create_engine(warehouse_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT login, cnt, credit, debit, currency FROM smsc.daily_stats"
                    " WHERE account = :account AND series = 'main' AND stat_date = :day"
                ),
                {"account": account, "day": day},
            ).all()
    finally:
        engine.dispose()
    return {tuple(row) for row in rows}


def query(warehouse_url: str, sql: str, **params: Any) -> list[Any]:
    engine = create_engine(warehouse_url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(sql), params).all())
    finally:
        engine.dispose()


def most_starts_in_window(starts: Iterable[datetime | float], window: timedelta) -> int:
    """The largest number of ``starts`` inside any half-open rolling ``window``."""
    points = sorted(s.timestamp() if isinstance(s, datetime) else s for s in starts)
    width = window.total_seconds()
    best = 0
    for i, first in enumerate(points):
        inside = sum(1 for p in points[i:] if p - first < width)
        best = max(best, inside)
    return best


def overlapping(intervals: Sequence[tuple[datetime, datetime]]) -> list[tuple]:
    """Intervals ``(start, end)`` that begin before an earlier-started one has ended."""
    found = []
    latest_end: datetime | None = None
    for start, end in sorted(intervals):
        if latest_end is not None and start < latest_end:
            found.append((start, end))
        latest_end = end if latest_end is None else max(latest_end, end)
    return found


def dags_test(
    stack: AirflowStack, day: date, dag_id: str = DAG_ID
) -> subprocess.CompletedProcess[str]:
    """``airflow dags test DAG_ID DAY`` in the stack's environment (in-process tasks)."""
    return subprocess.run(
        [sys.executable, "-m", "airflow", "dags", "test", dag_id, day.isoformat()],
        env=stack.env,
        cwd=stack.home,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def preload(warehouse_url: str, control: SimulatorControl, days: Iterable[date]) -> None:
    """Store ``days`` as earlier loads would have (the simulator's truth, no API call)."""
    engine = create_engine(warehouse_url)
    try:
        for day in days:
            truth = control.truth(ACCOUNT, day, day)
            Warehouse(engine).load_day(
                account=ACCOUNT,
                series="main",
                day=day,
                rows=[StatRow(**row) for row in truth],
                raw_reply=json.dumps(truth, default=str).encode(),
                reply_format=3,
            )
    finally:
        engine.dispose()


def wait_for_runs(
    stack: AirflowStack, run_type: str, count: int, timeout: float, dag_id: str = DAG_ID
) -> list[dict[str, Any]]:
    """Poll until ``count`` runs of ``run_type`` have finished, printing progress."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        runs = [r for r in stack.dag_runs(dag_id) if r["run_type"] == run_type]
        done = [r for r in runs if r["state"] in ("success", "failed")]
        progress = f"{run_type}: {len(done)}/{count} runs done"
        if progress != last:
            print(progress, flush=True)
            last = progress
        if len(runs) == count and len(done) == count:
            return runs
        time.sleep(2)
    raise AssertionError(f"{run_type} runs did not finish in {timeout:.0f} s: {last}")


@contextmanager
def initialised_stack(home: Path) -> Iterator[AirflowStack]:
    """An Airflow home with its own metadata database and no services (for ``dags test``
    and CLI commands); the database is dropped afterwards."""
    stack = AirflowStack(home=home, connections={})
    try:
        stack.init()
        yield stack
    finally:
        stack.close()
