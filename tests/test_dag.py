"""The DAG through real Airflow: integrity, `airflow dags test` per day, the error policy."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from devtools.airflow_stack import REPO_ROOT, AirflowStack
from devtools.simulator_process import RunningSimulator
from smsc_hook.client.exceptions import SmscConfigError
from tests.support import (
    PASSWORD,
    airflow_connections,
    dags_test,
    initialised_stack,
    query,
    stored_rows,
    truth_rows,
)

DAY = date(2026, 11, 5)
PARSE_SCRIPT = textwrap.dedent(
    """
    import runpy, sys, time, warnings
    warnings.simplefilter("error", DeprecationWarning)
    import airflow.sdk  # what the dag-processor has imported before it parses our file
    events = []
    watched = ("socket.connect", "socket.getaddrinfo", "subprocess.Popen", "sqlite3.connect")
    sys.addaudithook(lambda event, args: events.append(event) if event in watched else None)
    started = time.perf_counter()
    namespace = runpy.run_path(sys.argv[1])
    first = time.perf_counter() - started
    started = time.perf_counter()
    runpy.run_path(sys.argv[1])
    again = time.perf_counter() - started
    dag = namespace["smsc_daily_stats"]
    print("PARSE", round(first, 3), round(again, 3))
    print("IO", sorted(set(events)))
    print("TASKS", sorted(dag.task_dict))
    """
)


def parse_dag_file(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", PARSE_SCRIPT, str(REPO_ROOT / "dags" / "smsc_daily_stats.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def clean_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMSC_", "AIRFLOW"))}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT / "plugins"), str(REPO_ROOT)])
    env.update(overrides)
    return env


def test_dag_file_parses_without_io_or_deprecation_warnings(tmp_path: Path) -> None:
    """No network, database or subprocess at parse time; parse time is printed."""
    result = parse_dag_file(clean_env(AIRFLOW_HOME=str(tmp_path)))
    assert result.returncode == 0, result.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines() if " " in line)
    print(f"\nDAG file parse: first {lines['PARSE']} s (cold, second)")
    assert lines["IO"] == "[]", f"I/O at parse time: {lines['IO']}"
    assert lines["TASKS"] == str(
        [
            "check_gaps",
            "load_day",
            "lookback_day",
            "plan_days",
            "plan_refetch",
            "publish",
            "reconcile_month",
            "refetch_day",
            "verify_reconciliation",
        ]
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        pytest.param("SMSC_TIMEZONE", "Mars/Olympus_Mons", id="bad-time-zone"),
        pytest.param("SMSC_START_DATE", "2999-01-01", id="future-start-date"),
        pytest.param("SMSC_START_DATE", "01.01.2026", id="start-date-format"),
        pytest.param("SMSC_LOOKBACK_DAYS", "-1", id="negative-lookback"),
        pytest.param("SMSC_SCHEDULE_TIME", "25:00", id="bad-run-time"),
    ],
)
def test_bad_configuration_fails_the_parse_naming_the_setting(
    tmp_path: Path, variable: str, value: str
) -> None:
    result = parse_dag_file(clean_env(AIRFLOW_HOME=str(tmp_path), **{variable: value}))
    assert result.returncode != 0
    assert "SmscConfigError" in result.stderr
    assert variable in result.stderr.splitlines()[-1]


def test_dag_shape_pool_retry_policy_and_asset() -> None:
    """Loads run in the smsc_api pool under the SMSC retry policy; success emits the asset."""
    import runpy

    namespace = runpy.run_path(str(REPO_ROOT / "dags" / "smsc_daily_stats.py"))
    dag = namespace["smsc_daily_stats"]
    load = dag.task_dict["load_day"]
    assert load.partial_kwargs["pool"] == "smsc_api"
    assert type(load.partial_kwargs["retry_policy"]).__name__ == "SmscRetryPolicy"
    assert type(dag.timetable).__name__ == "SmscDailyTimetable"
    assert [a.name for a in dag.task_dict["publish"].outlets] == ["smsc.daily_stats"]
    # Outside scheduled runs the run's last load publishes that asset through its alias.
    publication = load.partial_kwargs["publication"]
    assert load.partial_kwargs["outlets"] == [publication.alias]
    assert publication.asset == dag.task_dict["publish"].outlets[0]
    assert publication.task_id == "publish"
    plan = dag.task_dict["plan_days"]
    assert plan.pool == "default_pool"
    # Its next look is never due before the scheduler has read the executor's report of
    # the last one (apache/airflow#71172: a stale success fails the sensor); if it still
    # is, the retry looks again, while its own fix messages fail at once.
    started = datetime(2026, 11, 2, tzinfo=UTC)
    for elapsed in (0.0, 5.0, 6.0, 30.0):
        interval = plan._get_next_poke_interval(started, lambda e=elapsed: e, 1)
        assert 10 <= interval <= 60, elapsed
    assert plan.retries == 2
    fix = SmscConfigError("pool 'smsc_api' is missing: run python -m smsc_hook.bootstrap")
    assert plan.retry_policy.evaluate(fix, 1, 3).action.value == "fail"
    lookback = dag.task_dict["lookback_day"]
    assert lookback.partial_kwargs["pool"] == "smsc_api"
    assert lookback.priority_weight == load.priority_weight
    for task_id in ("reconcile_month", "refetch_day"):
        mapped = dag.task_dict[task_id]
        assert mapped.partial_kwargs["pool"] == "smsc_api", task_id
        assert type(mapped.partial_kwargs["retry_policy"]).__name__ == "SmscRetryPolicy"
        # The day's own load outranks reconciliation work for the pool's only slot.
        assert mapped.priority_weight < load.priority_weight, task_id
        assert str(mapped.weight_rule) == str(load.weight_rule) == "absolute", task_id
    # The run's own load has no upstream (no planning task starts before it), the
    # lookback re-fetches follow the plan, and publishing waits for both.
    assert load.upstream_task_ids == set()
    assert lookback.upstream_task_ids == {"plan_days"}
    assert dag.task_dict["publish"].upstream_task_ids == {"load_day", "lookback_day"}
    # A leaf: Airflow decides a run's state by its leaves, so a failed load (publish then
    # upstream_failed) fails the run even though plan_days skipped the gap check branch.
    assert dag.task_dict["publish"].downstream_task_ids == set()
    checks = dag.task_dict["check_gaps"]
    assert checks.upstream_task_ids == {"plan_days", "load_day", "lookback_day"}


# --- airflow dags test against the simulator and a throwaway warehouse --------------------


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowStack]:
    """An initialised Airflow home (own metadata database); no services: dags test runs
    in-process."""
    with initialised_stack(tmp_path_factory.mktemp("airflow")) as stack:
        # One metadata database for the module but a new warehouse per test: the Asset URI
        # follows the warehouse connection, and without a dag-processor nothing retires the
        # previous test's Asset, so publish would find its outlet inactive. Pin it.
        stack.extra_env = {
            **stack.extra_env,
            "SMSC_ASSET_URI": "postgres://127.0.0.1:5432/smsc/smsc/daily_stats",
        }
        yield stack


@pytest.fixture
def stack(
    airflow_home: AirflowStack, simulator: RunningSimulator, warehouse_url: str
) -> AirflowStack:
    airflow_home.connections = airflow_connections(simulator.url, warehouse_url)
    airflow_home.python("-m", "smsc_hook.bootstrap", "--no-api-call")
    return airflow_home


def dags_test_run(stack: AirflowStack) -> str:
    """The run id of the latest ``airflow dags test`` run."""
    rows = query(
        stack.metadata,
        "SELECT run_id FROM dag_run WHERE dag_id = 'smsc_daily_stats' ORDER BY id DESC LIMIT 1",
    )
    return str(rows[0][0])


def task_state(stack: AirflowStack, run_id: str, task_id: str) -> str | None:
    rows = query(
        stack.metadata,
        "SELECT state FROM task_instance WHERE run_id = :r AND task_id = :t",
        r=run_id,
        t=task_id,
    )
    return rows[0][0] if rows else None


def api_calls(warehouse_url: str) -> list[tuple]:
    return query(
        warehouse_url,
        "SELECT window_start, outcome, error_code, caller FROM smsc.api_calls ORDER BY id",
    )


@pytest.mark.airflow
def test_dags_test_loads_exactly_its_day_and_rerun_is_idempotent(
    stack: AirflowStack, simulator: RunningSimulator, warehouse_url: str
) -> None:
    first = dags_test(stack, DAY)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    expected = truth_rows(simulator.control, DAY)
    assert expected, "the simulator should have rows for the day"
    assert stored_rows(warehouse_url, DAY) == expected

    # Its one load was the run's last: it published the asset and skipped publish.
    run = dags_test_run(stack)
    assert query(
        stack.metadata,
        "SELECT source_task_id FROM asset_event WHERE source_run_id = :r",
        r=run,
    ) == [("load_day",)]
    assert task_state(stack, run, "publish") == "skipped"

    second = dags_test(stack, DAY)
    assert second.returncode == 0, second.stderr[-3000:]
    assert stored_rows(warehouse_url, DAY) == expected
    loads = query(warehouse_url, "SELECT window_start, window_end FROM smsc.load_log")
    assert loads == [(DAY, DAY), (DAY, DAY)]
    assert query(warehouse_url, "SELECT count(*) FROM smsc.stat_revision") == [(0,)]
    assert [(c[0], c[1]) for c in api_calls(warehouse_url)] == [(DAY, "ok"), (DAY, "ok")]
    assert len(simulator.control.requests()) == 2
    for output in (first.stdout + first.stderr, second.stdout + second.stderr):
        assert PASSWORD not in output


@pytest.mark.airflow
def test_auth_error_fails_at_once_with_exactly_one_call(
    airflow_home: AirflowStack, simulator: RunningSimulator, warehouse_url: str
) -> None:
    wrong = "not-the-password-4711"
    airflow_home.connections = airflow_connections(simulator.url, warehouse_url, password=wrong)
    airflow_home.python("-m", "smsc_hook.bootstrap", "--no-api-call")
    result = dags_test(airflow_home, DAY)
    output = result.stdout + result.stderr
    assert "SmscAuthError" in output
    assert "action=fail" in output, "the retry policy must fail the task, not retry it"
    assert len(simulator.control.requests()) == 1
    assert [(c[1], c[2]) for c in api_calls(warehouse_url)] == [("api_error", 2)]
    assert stored_rows(warehouse_url, DAY) == set()
    assert wrong not in output
    # The failed load published nothing and left publish upstream_failed (a leaf: the
    # run fails).
    run = dags_test_run(airflow_home)
    assert query(
        airflow_home.metadata, "SELECT count(*) FROM asset_event WHERE source_run_id = :r", r=run
    ) == [(0,)]
    assert task_state(airflow_home, run, "publish") == "upstream_failed"


@pytest.mark.airflow
def test_rate_limited_call_is_retried_after_the_window_then_loaded(
    stack: AirflowStack, simulator: RunningSimulator, warehouse_url: str
) -> None:
    """Error 9 once: the task retries after >= 60 s (pool slot free meanwhile) and lands."""
    simulator.control.set_faults([{"kind": "error", "code": 9, "count": 1}])
    result = dags_test(stack, DAY)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    calls = query(
        warehouse_url,
        "SELECT outcome, error_code, reserved_at, caller FROM smsc.api_calls ORDER BY id",
    )
    assert [(c[0], c[1]) for c in calls] == [("api_error", 9), ("ok", None)]
    assert (calls[1][2] - calls[0][2]).total_seconds() >= 60
    assert calls[0][3].endswith("#1")
    assert calls[1][3].endswith("#2")
    assert stored_rows(warehouse_url, DAY) == truth_rows(simulator.control, DAY)
