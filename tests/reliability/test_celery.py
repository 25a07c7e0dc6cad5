"""Case 4: CeleryExecutor with two workers, the local Redis as broker, at the real rate limit.

PostgreSQL metadata and Celery result backend (throwaway databases), a Redis database of
its own as broker, two ``airflow celery worker`` processes with distinct names. A backfill
of six days must still make at most 3 calls in any 60 s (the simulator enforces the same),
never hold the 1-slot pool twice, and land every day equal to the ground truth.

Without a Redis to use as broker the case skips on a developer's machine, but fails under
``CI=true``: CI must not go green without having run it. ``SMSC_TEST_REDIS_URL`` (default
``redis://127.0.0.1:6379``) says where the Redis listens; the test picks a free database.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NoReturn
from urllib.parse import urlsplit

import pytest
from sqlalchemy.engine import make_url

from devtools import postgres
from devtools.airflow_stack import SERVICES, AirflowStack
from devtools.reliability.harness import (
    DEMO_PASSWORD,
    CaseFigures,
    Evidence,
    PoolWatcher,
    RedisUnavailable,
    backfill,
    connections,
    deployment,
    flush_redis_db,
    free_redis_db,
    gather,
    most_in_window,
    overlapping,
    past_days,
    pipeline_env,
    postgres_metadata,
    task_instances,
    task_intervals,
    wait_for_runs,
)
from devtools.simulator_process import running_simulator

CASE = "4 Celery x2"
pytestmark = [pytest.mark.reliability, pytest.mark.timeout(900)]

LIMIT, WINDOW = 3, 60.0
DAYS = past_days(6)
WORKERS = ("worker1", "worker2")
_RECEIVED = re.compile(r"Task \S+\[[0-9a-f-]+\] received")
#: The Redis server the broker uses (scheme, host and port; the database is picked here).
REDIS_URL = os.environ.get("SMSC_TEST_REDIS_URL", "redis://127.0.0.1:6379")
_REDIS = urlsplit(REDIS_URL)
REDIS_HOST, REDIS_PORT = _REDIS.hostname or "127.0.0.1", _REDIS.port or 6379


@dataclass
class CeleryRun:
    evidence: Evidence
    task_instances: list[dict[str, Any]]
    pool: PoolWatcher
    #: Celery tasks each worker received, from its own log.
    received: dict[str, int]


def in_ci() -> bool:
    """Whether this is a CI run (CI systems set ``CI=true``)."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def _no_broker(reason: str) -> NoReturn:
    """Skip on a developer's machine; under ``CI=true`` fail, so CI cannot pass without it."""
    message = (
        f"the Celery broker Redis at {REDIS_URL} is unreachable ({reason}). Start it with "
        f".ci/run, or by hand: redis-server --port {REDIS_PORT} --daemonize yes --save '' "
        "--appendonly no; or set SMSC_TEST_REDIS_URL to a Redis that runs"
    )
    if in_ci():
        pytest.fail(f"CI=true, so the Celery case must run, not skip: {message}", pytrace=False)
    pytest.skip(message)


def _broker_db() -> int:
    """A free database of the broker's Redis; skips or fails (CI) when there is no Redis."""
    try:
        return free_redis_db(REDIS_HOST, REDIS_PORT)
    except RedisUnavailable as exc:
        reason = str(exc).rstrip(".")
    _no_broker(reason)  # outside the except block: no chained traceback in the report


def _worker(name: str) -> tuple[str, ...]:
    # No log server per worker: two on one host would fight over its port.
    return ("celery", "worker", "--celery-hostname", f"{name}@%h", "--concurrency", "2", "-s")


def _check_celery_importable(stack: AirflowStack) -> None:
    """Fail with the cause when the installed Celery breaks the provider's executor module.

    Otherwise the workers die at start-up and the fixture reports only that they exited.
    """
    try:
        stack.python("-c", "import airflow.providers.celery.executors.celery_executor")
    except RuntimeError as exc:
        failure = str(exc)
    else:
        return
    pytest.fail(
        "the CeleryExecutor cannot be imported with the pinned packages (workers and the "
        f"scheduler would crash):\n{failure[-700:]}",
        pytrace=False,
    )


@pytest.fixture(scope="module")
def celery_run(tmp_path_factory: pytest.TempPathFactory, pg_server_url: str) -> Iterator[CeleryRun]:
    home = tmp_path_factory.mktemp("celery")
    redis_db = _broker_db()
    with (
        postgres.throwaway_database(pg_server_url) as warehouse_url,
        postgres_metadata(pg_server_url) as metadata,
        running_simulator("--quiet", "--rate-limit", str(LIMIT), "--rate-window", "60") as sim,
    ):
        meta_url = metadata["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        meta = make_url(meta_url).set(drivername="postgresql")
        stack = AirflowStack(
            home=home / "airflow",
            connections=connections(sim.url, warehouse_url, password=DEMO_PASSWORD),
            extra_env={
                **pipeline_env(),
                "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                **metadata,
                "AIRFLOW__CELERY__BROKER_URL": f"redis://{REDIS_HOST}:{REDIS_PORT}/{redis_db}",
                "AIRFLOW__CELERY__RESULT_BACKEND": "db+"
                + meta.render_as_string(hide_password=False),
            },
            services=(*((s,) for s in SERVICES), *(_worker(w) for w in WORKERS)),
        )
        _check_celery_importable(stack)
        try:
            with deployment(stack):
                backfill(stack, DAYS[0], DAYS[-1], max_active_runs=len(DAYS))
                pool = PoolWatcher(stack)
                wait_for_runs(stack, len(DAYS), timeout=600, during=pool, label="celery: ")
                evidence = gather(stack, sim.control, warehouse_url, DAYS)
                tis = task_instances(stack)
        finally:
            flush_redis_db(redis_db, REDIS_HOST, REDIS_PORT)
        logs = stack.home / "service-logs"
        received = {
            name: len(_RECEIVED.findall((logs / f"{'-'.join(_worker(name))}.log").read_text()))
            for name in WORKERS
        }
        yield CeleryRun(evidence, tis, pool, received)


def test_every_day_equals_ground_truth(celery_run: CeleryRun, case: CaseFigures):
    case.case = "4 Celery x2: all days = ground truth"
    ev = celery_run.evidence
    assert set(ev.run_states().values()) == {"success"}
    assert ev.wrong_days() == {}
    case.calls = len(ev.calls)
    case.rows = ev.rows_checked
    case.figures = f"{len(ev.days)}/{len(ev.days)} days equal, each landed once"


def test_real_rate_limit_held(celery_run: CeleryRun, case: CaseFigures):
    case.case = f"4 Celery x2: <= {LIMIT} calls per {WINDOW:.0f} s"
    ev = celery_run.evidence
    assert [r for r in ev.requests if r.get("error_code") == 9] == []
    by_ledger = most_in_window([c.reserved_at for c in ev.calls], WINDOW)
    by_sim = most_in_window([r["time"] for r in ev.requests], WINDOW)
    assert by_ledger <= LIMIT
    assert by_sim <= LIMIT
    assert len(ev.calls) == len(ev.requests) == len(ev.days)
    case.calls = len(ev.calls)
    case.figures = f"most in any 60 s: {by_ledger} (ledger), {by_sim} (simulator); 0 error 9"


def test_pool_never_double_booked(celery_run: CeleryRun, case: CaseFigures):
    case.case = "4 Celery x2: pool never double-booked"
    pool = celery_run.pool
    loads = task_intervals(celery_run.task_instances)
    assert pool.slots == 1
    assert pool.most_running <= 1
    assert pool.most_occupied <= 1
    assert len(loads) == len(DAYS)
    assert overlapping(loads) == 0
    case.figures = (
        f"{pool.samples} pool samples: most running {pool.most_running}, most occupied "
        f"{pool.most_occupied} of {pool.slots}; {len(loads)} load_day runs, 0 overlapping"
    )


def test_both_workers_ran_tasks(celery_run: CeleryRun, case: CaseFigures):
    case.case = "4 Celery x2: both workers used"
    assert all(n > 0 for n in celery_run.received.values()), celery_run.received
    case.figures = ", ".join(f"{w}: {n} tasks" for w, n in celery_run.received.items())
