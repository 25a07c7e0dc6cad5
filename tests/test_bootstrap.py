"""The bootstrap's live SMSC check, as ``airflow-init`` runs it (no ``--no-api-call``).

A real Airflow metadata database (pools, Variable), the simulator over HTTP and a
throwaway warehouse: one paced call recorded in the ledger as the bootstrap's; a wrong
password stops it after exactly that one call, naming the problem.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from devtools.airflow_stack import REPO_ROOT, AirflowStack
from devtools.simulator_process import RunningSimulator
from tests.support import PASSWORD, airflow_connections, initialised_stack, query

pytestmark = [pytest.mark.airflow, pytest.mark.timeout(300)]


@pytest.fixture
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowStack]:
    with initialised_stack(tmp_path_factory.mktemp("airflow")) as stack:
        yield stack


def bootstrap(stack: AirflowStack) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "smsc_hook.bootstrap"],
        env=stack.env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def ledger(warehouse_url: str) -> list[tuple]:
    return [
        tuple(row)
        for row in query(
            warehouse_url,
            "SELECT caller, outcome, error_code, window_start = window_end FROM smsc.api_calls",
        )
    ]


def test_live_check_makes_one_ledger_recorded_call(
    stack: AirflowStack, simulator: RunningSimulator, warehouse_url: str
) -> None:
    stack.connections = airflow_connections(simulator.url, warehouse_url)

    result = bootstrap(stack)

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{simulator.url}" in result.stdout
    assert " answered for " in result.stdout
    assert "variable 'smsc_bootstrap': recorded" in result.stdout
    assert ledger(warehouse_url) == [("bootstrap", "ok", None, True)]
    calls = [r for r in simulator.control.requests() if r["path"] == "/sys/get.php"]
    assert len(calls) == 1
    assert PASSWORD not in result.stdout + result.stderr


def test_wrong_password_exits_1_naming_the_problem_after_one_call(
    stack: AirflowStack, simulator: RunningSimulator, warehouse_url: str
) -> None:
    wrong = "not-the-password"
    stack.connections = airflow_connections(simulator.url, warehouse_url, password=wrong)

    result = bootstrap(stack)

    assert result.returncode == 1, result.stdout + result.stderr
    assert "bootstrap failed:" in result.stderr
    assert "SMSC error 2" in result.stderr, result.stderr
    assert ledger(warehouse_url) == [("bootstrap", "api_error", 2, True)]
    calls = [r for r in simulator.control.requests() if r["path"] == "/sys/get.php"]
    assert len(calls) == 1, "an auth failure is never retried: five block the IP"
    assert wrong not in result.stdout + result.stderr
    assert "variable 'smsc_bootstrap': recorded" not in result.stdout
