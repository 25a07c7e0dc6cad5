"""A real, local Airflow 3 stack for the demo, the backfill tests and the benchmark.

Scheduler + api-server + dag-processor with LocalExecutor and SQLite metadata under a
folder of its own, the repo's ``dags/`` and ``plugins/``, connections from
``AIRFLOW_CONN_*`` variables. Everything the processes print goes to log files there.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL, make_url

REPO_ROOT = Path(__file__).resolve().parents[1]
SERVICES = ("scheduler", "dag-processor", "api-server")


def postgres_connection(url: str | URL) -> dict[str, Any]:
    """An ``AIRFLOW_CONN_*`` payload (conn_type postgres) for a SQLAlchemy database URL."""
    parsed = make_url(url) if isinstance(url, str) else url
    return {
        "conn_type": "postgres",
        "host": parsed.host,
        "port": parsed.port or 5432,
        "schema": parsed.database,
        "login": parsed.username,
        "password": parsed.password or "",
    }


def pipeline_connections(
    simulator_url: str, warehouse_url: str | URL, *, login: str, password: str, **extra: Any
) -> dict[str, dict[str, Any]]:
    """``AIRFLOW_CONN_*`` payloads: an SMSC (simulator) account as ``smsc_default`` and a
    warehouse database as ``smsc_warehouse``; ``extra`` goes to the SMSC connection."""
    smsc = {
        "conn_type": "smsc",
        "host": simulator_url,
        "login": login,
        "password": password,
        "extra": extra,
    }
    return {"smsc_default": smsc, "smsc_warehouse": postgres_connection(warehouse_url)}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def airflow_bin() -> str:
    """The ``airflow`` script of the running interpreter's environment."""
    return str(Path(sys.executable).with_name("airflow"))


@dataclass
class AirflowStack:
    """An Airflow home with its environment; :meth:`start` runs the three services."""

    home: Path
    connections: Mapping[str, Mapping[str, Any]]
    timezone: str = "Europe/Moscow"
    extra_env: Mapping[str, str] = field(default_factory=dict)
    dags_folder: Path = REPO_ROOT / "dags"
    #: Each entry is the airflow sub-command of one service, e.g. ("celery", "worker").
    services: tuple[tuple[str, ...], ...] = tuple((s,) for s in SERVICES)
    port: int = field(default_factory=free_port)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        """The environment every airflow command and service of this stack runs with."""
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_"))
        }
        secret_file = self.home / "jwt_secret"
        if not secret_file.exists():
            self.home.mkdir(parents=True, exist_ok=True)
            secret_file.write_text(secrets.token_urlsafe(32))
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": "4",
                "AIRFLOW__CORE__DEFAULT_TIMEZONE": self.timezone,
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
                # SQLite has one writer at a time; the 5 s default busy timeout is too short
                # when `airflow backfill create` writes while the scheduler holds the lock.
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": (
                    f"sqlite:///{self.home / 'airflow.db'}?timeout=60"
                ),
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__API_AUTH__JWT_SECRET": secret_file.read_text(),
                "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.home / "logs"),
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "30",
                "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "600",
                "PYTHONPATH": os.pathsep.join(
                    p for p in (str(REPO_ROOT / "plugins"), str(REPO_ROOT)) if p
                ),
                "SMSC_TIMEZONE": self.timezone,
            }
        )
        for conn_id, conn in self.connections.items():
            env[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(conn)
        env.update(self.extra_env)
        return env

    def airflow(self, *args: str, check: bool = True, timeout: float = 300) -> str:
        """Run an ``airflow`` CLI command in this stack's environment; return its stdout."""
        result = subprocess.run(
            [airflow_bin(), *args],
            env=self.env,
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise RuntimeError(
                f"airflow {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-3000:]}"
            )
        return result.stdout

    def python(self, *args: str, timeout: float = 300) -> str:
        """Run ``python ARGS`` (e.g. ``-m smsc_hook.bootstrap``) in this environment."""
        result = subprocess.run(
            [sys.executable, *args],
            env=self.env,
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"python {' '.join(args)} failed ({result.returncode}):\n"
                f"{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
            )
        return result.stdout

    def init(self) -> None:
        """Create the metadata database (idempotent)."""
        self.home.mkdir(parents=True, exist_ok=True)
        self.airflow("db", "migrate")

    def start(self, timeout: float = 120) -> None:
        """Start the services and wait until the API answers."""
        logs = self.home / "service-logs"
        logs.mkdir(parents=True, exist_ok=True)
        for command in self.services:
            service = "-".join(command)
            if service in self.processes:
                service = f"{service}-{len(self.processes)}"
            with (logs / f"{service}.log").open("ab") as log:
                self.processes[service] = subprocess.Popen(
                    [airflow_bin(), *command],
                    env=self.env,
                    cwd=self.home,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                health = self.api("GET", "/api/v2/monitor/health")
                if health.get("metadatabase", {}).get("status") == "healthy":
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.5)
        raise RuntimeError(f"Airflow API did not come up within {timeout:.0f} s: {self.url}")

    def stop(self) -> None:
        """SIGTERM every service (and its task subprocesses), SIGKILL stragglers."""
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for process in self.processes.values():
            try:
                process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.processes.clear()

    def _check_alive(self) -> None:
        for service, process in self.processes.items():
            if process.poll() is not None:
                log = (self.home / "service-logs" / f"{service}.log").read_text(errors="replace")
                raise RuntimeError(
                    f"airflow {service} exited ({process.returncode}):\n{log[-3000:]}"
                )

    def api(self, method: str, path: str, payload: Any = None) -> Any:
        """Call the public REST API (simple auth manager, everyone admin: no token needed)."""
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)  # noqa: S310
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return json.loads(response.read() or b"null")

    def wait_for_dag(self, dag_id: str, timeout: float = 120) -> None:
        """Until the dag-processor has parsed ``dag_id`` (import errors are raised)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                self.api("GET", f"/api/v2/dags/{dag_id}")
                return
            except urllib.error.HTTPError as exc:
                if exc.code != 404:
                    raise
            errors = self.api("GET", "/api/v2/importErrors").get("import_errors", [])
            if errors:
                raise RuntimeError(f"DAG import errors: {errors}")
            time.sleep(1)
        raise RuntimeError(f"DAG {dag_id} was not parsed within {timeout:.0f} s")

    def unpause(self, dag_id: str) -> None:
        self.api("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})

    def dag_runs(self, dag_id: str) -> list[dict[str, Any]]:
        runs: list[dict[str, Any]] = self.api(
            "GET", f"/api/v2/dags/{dag_id}/dagRuns?limit=1000&order_by=logical_date"
        )["dag_runs"]
        return runs

    def task_instances(self, dag_id: str) -> list[dict[str, Any]]:
        tis: list[dict[str, Any]] = self.api(
            "GET", f"/api/v2/dags/{dag_id}/dagRuns/~/taskInstances?limit=1000"
        )["task_instances"]
        return tis


@contextmanager
def running_stack(stack: AirflowStack) -> Iterator[AirflowStack]:
    """``init`` + ``start`` for a ``with`` block; always stops what it started."""
    stack.init()
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
