"""Two accounts through real Airflow: two DAGs, two pools, rows and budgets kept apart."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from devtools.airflow_stack import AirflowStack, postgres_connection
from devtools.simulator_process import RunningSimulator
from tests.support import dags_test, query, truth_rows

pytestmark = pytest.mark.airflow

DAY = date(2026, 11, 4)
ACCOUNTS = [
    {"name": "demo", "conn_id": "smsc_demo"},
    {"name": "acme", "conn_id": "smsc_acme", "balance2": True},
]


def connections(sim_url: str, warehouse_url: str) -> dict[str, dict[str, object]]:
    return {
        "smsc_demo": {
            "conn_type": "smsc",
            "host": sim_url,
            "login": "demo",
            "password": "demo-password",
        },
        "smsc_acme": {
            "conn_type": "smsc",
            "host": sim_url,
            "login": "acme",
            "password": "acme-password",
        },
        "smsc_warehouse": postgres_connection(warehouse_url),
    }


def test_each_account_has_its_dag_pool_and_rows(
    tmp_path: Path, simulator: RunningSimulator, warehouse_url: str
) -> None:
    stack = AirflowStack(
        home=tmp_path / "airflow",
        connections=connections(simulator.url, warehouse_url),
        extra_env={"SMSC_ACCOUNTS": json.dumps(ACCOUNTS)},
    )
    try:
        stack.init()
        check_each_account(stack, simulator, warehouse_url)
    finally:
        stack.close()


def check_each_account(
    stack: AirflowStack, simulator: RunningSimulator, warehouse_url: str
) -> None:
    bootstrap = stack.python("-m", "smsc_hook.bootstrap", "--no-api-call")
    assert "pool 'smsc_api_demo': created (1 slot)" in bootstrap
    assert "pool 'smsc_api_acme': created (1 slot)" in bootstrap
    pools = stack.airflow("pools", "list", "--output", "json")
    slots = {p["pool"]: int(p["slots"]) for p in json.loads(pools)}
    assert (slots.get("smsc_api_demo"), slots.get("smsc_api_acme")) == (1, 1)

    for dag_id in ("smsc_daily_stats_demo", "smsc_daily_stats_acme"):
        result = dags_test(stack, DAY, dag_id)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    stored = query(
        warehouse_url,
        "SELECT account, series, login, cnt, credit, debit, currency FROM smsc.daily_stats"
        " WHERE stat_date = :day ORDER BY 1, 2, 3",
        day=DAY,
    )
    by_account: dict[tuple[str, str], set[tuple]] = {}
    for account, series, *row in stored:
        by_account.setdefault((account, series), set()).add(tuple(row))
    assert by_account[("demo", "main")] == truth_rows(simulator.control, DAY, "demo")
    assert by_account[("acme", "main")] == truth_rows(simulator.control, DAY, "acme")
    acme_balance2 = {
        (r["login"], r["cnt"], r["credit"], r["debit"], r["currency"])
        for r in simulator.control.truth("acme", DAY, DAY, balance2=True)
    }
    assert by_account[("acme", "balance2")] == acme_balance2
    assert set(by_account) == {("demo", "main"), ("acme", "main"), ("acme", "balance2")}

    calls = query(
        warehouse_url, "SELECT account, count(*) FROM smsc.api_calls GROUP BY 1 ORDER BY 1"
    )
    assert calls == [("acme", 2), ("demo", 1)]

    # One asset event per run, from the run's last load (acme: whichever of its two series
    # landed second), which skipped publish: no process for it outside scheduled runs.
    events = query(
        stack.metadata,
        "SELECT e.source_dag_id, e.source_task_id, e.source_map_index, a.name"
        " FROM asset_event e JOIN asset a ON a.id = e.asset_id ORDER BY 1",
    )
    last_loads = query(
        stack.metadata,
        "SELECT DISTINCT ON (dag_id) dag_id, task_id, map_index, 'smsc.daily_stats'"
        " FROM task_instance WHERE task_id = 'load_day' ORDER BY dag_id, end_date DESC",
    )
    assert events == last_loads
    assert [dag_id for dag_id, *_ in events] == ["smsc_daily_stats_acme", "smsc_daily_stats_demo"]
    states = query(
        stack.metadata,
        "SELECT dag_id, task_id, map_index, state FROM task_instance"
        " WHERE task_id IN ('load_day', 'publish') ORDER BY 1, 2, 3",
    )
    assert states == [
        ("smsc_daily_stats_acme", "load_day", 0, "success"),
        ("smsc_daily_stats_acme", "load_day", 1, "success"),
        ("smsc_daily_stats_acme", "publish", -1, "skipped"),
        ("smsc_daily_stats_demo", "load_day", 0, "success"),
        ("smsc_daily_stats_demo", "publish", -1, "skipped"),
    ]
