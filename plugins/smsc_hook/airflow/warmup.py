"""Import what our task processes need once, in the scheduler, before it forks its workers.

With the LocalExecutor the scheduler forks its worker processes when it starts, and each
worker forks one process per task. A task process therefore begins with the modules the
scheduler had imported, and imports the rest itself: Airflow's task runner, the DAG
file's imports, and at run time the HTTP client, SQLAlchemy, psycopg2 and the Postgres
provider. That is the same work in every task, twice per backfill run. Imported here,
before the fork, every task process inherits them (copy-on-write) instead.

This is a lifecycle listener (``on_starting``) of the plugin. Airflow calls it when a
component's job is created, which for the scheduler is before its executor starts. It
does nothing in any other component, or when tasks are not forked from the scheduler
(Celery, Kubernetes, or a ``spawn`` start method), where it would only cost memory.

So with the LocalExecutor, tasks run the package as the scheduler loaded it: after an
upgrade, restart the scheduler (the README's upgrade steps restart every component; the
DAG file itself is still parsed afresh by each task).
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing
import sys
from typing import Any

from airflow.listeners import hookimpl

log = logging.getLogger(__name__)

#: What a task process of our DAG imports after the fork (read off ``-X importtime`` in a
#: backfill's task logs), heaviest first: the Postgres provider's hook and the HTTP client
#: (most of a load's imports), the DAG file's modules and what the tasks use.
TASK_MODULES = (
    "airflow.providers.postgres.hooks.postgres",
    "smsc_hook.client.hook",
    "airflow.sdk.execution_time.task_runner",
    "smsc_hook.airflow.dag_factory",
    "smsc_hook.airflow.planning",
    "smsc_hook.warehouse.writer",
    "smsc_hook.warehouse.migrations",
    "smsc_hook.warehouse.engine",
    "smsc_hook.warehouse.ledger",
    "smsc_hook.observability.metrics",
    "smsc_hook.observability.lineage",
    "smsc_hook.alerts.config",
    "airflow.providers.common.compat.assets",
    "airflow.providers.standard.operators.empty",
    "airflow.sdk.execution_time.cache",
    "airflow.sdk.observability.stats",
    "jinja2.ext",
)


def forks_tasks_from_scheduler(executor: str, start_method: str) -> bool:
    """Whether the configured ``[core] executor`` runs tasks in processes forked from the
    scheduler: a LocalExecutor (alone or among several) with the ``fork`` start method."""
    names = {part.split(":")[-1].strip().rsplit(".", 1)[-1] for part in executor.split(",")}
    return "LocalExecutor" in names and start_method == "fork"


def is_scheduler_job(component: Any, argv: list[str]) -> bool:
    """Whether ``component`` is the scheduler's job. Airflow 3.3 creates it (and calls
    ``on_starting``) before it sets its ``job_type``, so the command line decides then."""
    if type(component).__name__ != "Job":
        return False
    job_type = getattr(component, "job_type", None)
    if job_type is not None:
        return bool(job_type == "SchedulerJob")
    return argv[1:2] == ["scheduler"]


def preload(modules: tuple[str, ...] = TASK_MODULES) -> list[str]:
    """Import ``modules``; the names that failed (logged, never raised: the scheduler must
    start whatever a task needs)."""
    failed = []
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:
            log.warning("smsc: could not preload %s for task processes", name, exc_info=True)
            failed.append(name)
    return failed


class TaskImportWarmup:
    """The plugin's listener: preloads :data:`TASK_MODULES` in the scheduler."""

    @hookimpl
    def on_starting(self, component: Any) -> None:
        if not is_scheduler_job(component, sys.argv):
            return
        from airflow.configuration import conf

        executor = conf.get("core", "executor", fallback="") or ""
        # Not fixed yet means the platform's default, the first one listed.
        method = (
            multiprocessing.get_start_method(allow_none=True)
            or multiprocessing.get_all_start_methods()[0]
        )
        if not forks_tasks_from_scheduler(executor, method):
            return
        failed = preload()
        log.info(
            "smsc: preloaded %d module(s) for the task processes the LocalExecutor forks",
            len(TASK_MODULES) - len(failed),
        )


WARMUP = TaskImportWarmup()
