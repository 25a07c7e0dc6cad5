"""Gap-only backfill through a real scheduler: exactly the missing days are fetched."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from devtools.airflow_stack import AirflowStack, running_stack
from devtools.simulator_process import running_simulator
from tests.support import DAG_ID, airflow_connections, preload, query, stored_rows, truth_rows

pytestmark = [pytest.mark.backfill, pytest.mark.timeout(900)]


def test_gap_only_backfill_loads_exactly_the_missing_days(
    tmp_path: Path, warehouse_url: str
) -> None:
    with running_simulator("--quiet") as sim:
        # The gap view runs up to the database's yesterday: end the loaded span there.
        last = query(warehouse_url, "SELECT current_date - 1")[0][0]
        days = [last - timedelta(days=n) for n in range(7, -1, -1)]
        missing = [days[1], days[3], days[4]]
        stack = AirflowStack(
            home=tmp_path / "airflow",
            connections=airflow_connections(sim.url, warehouse_url),
            # Scheduled runs end before the newest days, so unpausing creates none (on a
            # month's first day it would otherwise reconcile the month before).
            extra_env={"SMSC_LOOKBACK_DAYS": "0", "SMSC_END_DATE": days[4].isoformat()},
        )
        with running_stack(stack):
            stack.python("-m", "smsc_hook.bootstrap", "--no-api-call")
            preload(warehouse_url, sim.control, [d for d in days if d not in missing])

            dry = stack.python("-m", "smsc_hook.gaps", "--dry-run")
            assert f"{missing[0]}, {missing[1]}..{missing[2]}" in dry
            assert dry.count("would run: airflow backfill create") == 2

            stack.wait_for_dag(DAG_ID)
            stack.unpause(DAG_ID)
            output = stack.python("-m", "smsc_hook.gaps")
            assert "2 backfill(s) created" in output
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                runs = [r for r in stack.dag_runs(DAG_ID) if r["run_type"] == "backfill"]
                if len(runs) == len(missing) and all(r["state"] == "success" for r in runs):
                    break
                assert not [r for r in runs if r["state"] == "failed"], runs
                time.sleep(2)
            else:
                pytest.fail(f"gap backfill did not finish: {stack.dag_runs(DAG_ID)}")
            truth = {day: truth_rows(sim.control, day) for day in days}
            run_types = {r["run_type"] for r in stack.dag_runs(DAG_ID)}

    assert run_types == {"backfill"}, "no scheduled run may compete for the pool"

    backfill_calls = query(
        warehouse_url,
        "SELECT window_start FROM smsc.api_calls WHERE caller LIKE '%/backfill\\_\\_%'"
        " ORDER BY window_start",
    )
    assert [row[0] for row in backfill_calls] == missing
    for day in days:
        assert stored_rows(warehouse_url, day) == truth[day], day
    engine = create_engine(warehouse_url)
    with engine.connect() as conn:
        gaps = conn.execute(
            text("SELECT day FROM smsc.load_gaps WHERE day <= :last"), {"last": last}
        ).all()
    engine.dispose()
    assert gaps == []
