"""The scheduler's preload of the task processes' modules (smsc_hook.airflow.warmup)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from devtools.airflow_stack import REPO_ROOT
from smsc_hook.airflow import warmup


@pytest.mark.parametrize(
    ("executor", "method", "forks"),
    [
        ("LocalExecutor", "fork", True),
        ("airflow.executors.local_executor.LocalExecutor", "fork", True),
        ("CeleryExecutor,LocalExecutor", "fork", True),
        ("team_a:LocalExecutor", "fork", True),
        ("LocalExecutor", "spawn", False),
        ("LocalExecutor", "forkserver", False),
        ("CeleryExecutor", "fork", False),
        ("KubernetesExecutor", "fork", False),
        ("", "fork", False),
    ],
)
def test_only_a_forking_local_executor_gets_the_preload(
    executor: str, method: str, forks: bool
) -> None:
    assert warmup.forks_tasks_from_scheduler(executor, method) is forks


def test_a_module_that_fails_to_import_is_named_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    failed = warmup.preload(("json", "smsc_hook.no_such_module"))
    assert failed == ["smsc_hook.no_such_module"]
    assert "could not preload smsc_hook.no_such_module" in caplog.text


def test_every_listed_module_exists() -> None:
    assert warmup.preload() == []


def _listener_run(home: Path, argv: list[str], executor: str, component: str = "Job()") -> str:
    """Which listed modules a fresh interpreter with command line ``argv`` has imported
    after creating ``component`` (an Airflow ``Job`` calls the plugins' ``on_starting``
    through Airflow's own listener manager; anything else is passed to ours directly)."""
    code = textwrap.dedent(
        f"""
        import sys
        sys.argv = {argv!r}
        from smsc_hook.airflow import warmup
        before = {{m for m in warmup.TASK_MODULES if m in sys.modules}}
        from airflow.jobs.job import Job
        component = {component}
        if not isinstance(component, Job):
            warmup.WARMUP.on_starting(component=component)
        print(sorted(m for m in warmup.TASK_MODULES if m in sys.modules and m not in before))
        """
    )
    env = {
        "PYTHONPATH": f"{REPO_ROOT / 'plugins'}:{REPO_ROOT}",
        "AIRFLOW__CORE__EXECUTOR": executor,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.strip().splitlines()[-1]


def test_the_scheduler_job_preloads_with_the_local_executor(tmp_path: Path) -> None:
    loaded = _listener_run(tmp_path, ["airflow", "scheduler"], "LocalExecutor")
    assert "smsc_hook.client.hook" in loaded
    assert "airflow.providers.postgres.hooks.postgres" in loaded


@pytest.mark.parametrize(
    ("argv", "executor", "component"),
    [
        (["airflow", "dag-processor"], "LocalExecutor", "Job()"),
        (["airflow", "triggerer"], "LocalExecutor", "Job()"),
        (["airflow", "scheduler"], "CeleryExecutor", "Job()"),
        # The scheduler's command line, but not its job (the task runner passes a marker).
        (["airflow", "scheduler"], "LocalExecutor", "object()"),
    ],
)
def test_nothing_else_preloads(tmp_path: Path, argv: list[str], executor: str, component: str):
    assert _listener_run(tmp_path, argv, executor, component) == "[]"


@pytest.mark.parametrize(
    ("job_type", "argv", "scheduler"),
    [
        (None, ["airflow", "scheduler"], True),
        (None, ["airflow", "scheduler", "--num-runs", "3"], True),
        (None, ["airflow", "triggerer"], False),
        ("SchedulerJob", ["python", "-c"], True),
        ("TriggererJob", ["airflow", "scheduler"], False),
    ],
)
def test_the_scheduler_job_is_told_by_its_type_or_else_its_command(
    job_type: str | None, argv: list[str], scheduler: bool
) -> None:
    from airflow.jobs.job import Job

    job = Job()
    job.job_type = job_type
    assert warmup.is_scheduler_job(job, argv) is scheduler


def test_the_plugin_registers_the_listener() -> None:
    from smsc_hook.airflow.plugin import SmscPlugin

    assert warmup.WARMUP in SmscPlugin.listeners
