"""A real, local Airflow 3 stack for the demo, the backfill tests and the benchmark.

Scheduler + api-server + dag-processor with LocalExecutor, the repo's ``dags/`` and
``plugins/``, connections from ``AIRFLOW_CONN_*`` variables. Airflow's metadata lives in a
PostgreSQL database of the stack's own (SQLite under a busy scheduler gives ``database is
locked``); everything the processes print goes to log files under the stack's home.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import psycopg2
from sqlalchemy.engine import URL, make_url

from devtools import postgres
from devtools.processes import Stopped, reserved, terminate

REPO_ROOT = Path(__file__).resolve().parents[1]
SERVICES = ("scheduler", "dag-processor", "api-server")
#: The services that sign or verify the tasks' Execution API tokens: the scheduler signs
#: each workload's token, the api-server verifies (and refreshes) it. Executors get the
#: token with the workload, and the dag-processor and triggerer use an in-process API, so
#: the others run without the secret, as in docker-compose.yaml.
TOKEN_SERVICES = ("scheduler", "api-server")
JWT_SECRET = "AIRFLOW__API_AUTH__JWT_SECRET"  # noqa: S105  (a variable name)


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
    #: The checkout whose ``plugins/`` (and root) the services, CLI and :meth:`python` use:
    #: its ``smsc_hook`` comes first on ``sys.path`` (the benchmark's "before" runs an old
    #: commit's worktree this way).
    code_root: Path = REPO_ROOT
    #: Each entry is the airflow sub-command of one service, e.g. ("celery", "worker").
    services: tuple[tuple[str, ...], ...] = tuple((s,) for s in SERVICES)
    port: int = field(default_factory=free_port)
    #: The scheduler's task-log server (Airflow's default 8793 would clash between stacks
    #: running side by side, as the test suite's two workers do).
    log_server_port: int = field(default_factory=free_port)
    #: Airflow's metadata database (SQLAlchemy URL). None: a throwaway database on the
    #: discovered PostgreSQL server, created on first use and dropped by :meth:`close`.
    metadata_url: str | None = None
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    #: Simple auth manager users, name -> (role, password). Empty: everyone is admin, no
    #: login (the default). Otherwise only these users exist and :meth:`api` needs
    #: :attr:`token` (see :meth:`login`).
    users: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    #: The JWT :meth:`api` sends, when set.
    token: str | None = None
    _owned_metadata: str | None = field(default=None, init=False, repr=False)

    @property
    def metadata(self) -> str:
        """The metadata database URL, creating the stack's own database on first use."""
        given = self.extra_env.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")
        if given:
            return given
        if self.metadata_url is None:
            name = f"airflow_meta_{secrets.token_hex(6)}"
            server = make_url(postgres.server_url()).set(drivername="postgresql")
            _admin(server, f'CREATE DATABASE "{name}"')
            self._owned_metadata = name
            self.metadata_url = server.set(
                drivername="postgresql+psycopg2", database=name
            ).render_as_string(hide_password=False)
        return self.metadata_url

    def close(self) -> None:
        """Stop the services and drop the metadata database if this stack created it."""
        self.stop()
        if self._owned_metadata is not None and self.metadata_url is not None:
            server = make_url(self.metadata_url).set(drivername="postgresql", database="postgres")
            _admin(server, f'DROP DATABASE IF EXISTS "{self._owned_metadata}" WITH (FORCE)')
            self._owned_metadata = None
            self.metadata_url = None

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
        # Cache bytecode as a deployment does (a wheel install compiles it): with this set,
        # every task process would compile the DAG file and smsc_hook from source again.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        secret_file = self.home / "jwt_secret"
        if not secret_file.exists():
            self.home.mkdir(parents=True, exist_ok=True)
            secret_file.write_text(secrets.token_urlsafe(32))
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(self.code_root / "plugins"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": "4",
                "AIRFLOW__CORE__DEFAULT_TIMEZONE": self.timezone,
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.metadata,
                # Several stacks and their tests share one server (100 connections).
                "AIRFLOW__DATABASE__SQL_ALCHEMY_POOL_SIZE": "2",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_MAX_OVERFLOW": "4",
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__WORKERS": "1",
                JWT_SECRET: secret_file.read_text(),
                "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.home / "logs"),
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(self.log_server_port),
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "30",
                "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "600",
                "PYTHONPATH": os.pathsep.join(
                    p for p in (str(self.code_root / "plugins"), str(self.code_root)) if p
                ),
                "SMSC_TIMEZONE": self.timezone,
            }
        )
        if self.users:
            # The auth manager adds only users missing from this file, so the passwords
            # are ours: no generated password to scrape from a log.
            passwords = self.home / "simple_auth_passwords.json"
            passwords.write_text(
                json.dumps({name: password for name, (_, password) in self.users.items()})
            )
            env.update(
                {
                    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
                    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(
                        f"{name}:{role}" for name, (role, _) in self.users.items()
                    ),
                    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
                }
            )
        for conn_id, conn in self.connections.items():
            env[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(conn)
        env.update(self.extra_env)
        return env

    def service_env(self, command: tuple[str, ...]) -> dict[str, str]:
        """The environment of the service running ``airflow COMMAND``."""
        env = self.env
        if command[0] not in TOKEN_SERVICES:
            env.pop(JWT_SECRET, None)
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
            cwd=self.code_root,
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
                    env=self.service_env(command),
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

    def stop(self) -> Stopped:
        """Stop the services and everything they started, quietly, and return what happened.

        :func:`~devtools.processes.terminate`: SIGTERM, up to 20 s, SIGKILL, for each
        service's process group and the rest of its session (Airflow's task runner leaves
        the group, not the session) and anything else with this ``AIRFLOW_HOME``; then the
        services are reaped. A service that exited and was reaped earlier is still named
        while its group or session lives on. Raises RuntimeError if a process outlives
        SIGKILL. With nothing started (or a second time), does nothing.
        """
        if not self.processes:
            return Stopped([], [])
        outcome = terminate(
            {
                service: process.pid
                for service, process in self.processes.items()
                # A reaped pid may belong to another process by now, unless it is held.
                if process.returncode is None or reserved(process.pid)
            },
            grace=20,
            home=self.home,
        )
        for service, process in list(self.processes.items()):
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=1)
                del self.processes[service]
        left = sorted({*outcome.survivors, *(p.pid for p in self.processes.values())})
        if left:
            raise RuntimeError(
                f"Airflow stack: pid(s) {', '.join(map(str, left))} survived SIGKILL"
                f" ({'; '.join(outcome.messages)})"
            )
        return outcome

    def _check_alive(self) -> None:
        for service, process in self.processes.items():
            if process.poll() is not None:
                log = (self.home / "service-logs" / f"{service}.log").read_text(errors="replace")
                raise RuntimeError(
                    f"airflow {service} exited ({process.returncode}):\n{log[-3000:]}"
                )

    def api(self, method: str, path: str, payload: Any = None, token: str | None = None) -> Any:
        """Call the REST API (or a plugin's JSON) with ``token`` or :attr:`token`, if any
        (with no :attr:`users`, everyone is admin: no token needed)."""
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)  # noqa: S310
        request.add_header("Content-Type", "application/json")
        bearer = token or self.token
        if bearer:
            request.add_header("Authorization", f"Bearer {bearer}")
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return json.loads(response.read() or b"null")

    def login(self, username: str, *, keep: bool = False) -> str:
        """A JWT for one of :attr:`users` from ``POST /auth/token``, as the UI's login form
        gets it; ``keep`` makes :meth:`api` use it from now on."""
        _, password = self.users[username]
        reply = self.api("POST", "/auth/token", {"username": username, "password": password})
        token: str = reply["access_token"]
        if keep:
            self.token = token
        return token

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

    def backfill(
        self, dag_id: str, first: date, last: date, max_active_runs: int | None = None
    ) -> str:
        """``airflow backfill create`` for the days ``first`` .. ``last`` of ``dag_id``."""
        extra = () if max_active_runs is None else ("--max-active-runs", str(max_active_runs))
        return self.airflow(
            "backfill", "create", "--dag-id", dag_id,
            "--from-date", first.isoformat(), "--to-date", last.isoformat(), *extra,
        )  # fmt: skip

    def dag_runs(self, dag_id: str) -> list[dict[str, Any]]:
        """Every run of ``dag_id``, oldest logical date first."""
        return self._all_pages(f"/api/v2/dags/{dag_id}/dagRuns?order_by=logical_date", "dag_runs")

    def task_instances(self, dag_id: str) -> list[dict[str, Any]]:
        """Every task instance of every run of ``dag_id``."""
        return self._all_pages(
            f"/api/v2/dags/{dag_id}/dagRuns/~/taskInstances?order_by=id", "task_instances"
        )

    def _all_pages(self, path: str, key: str, page: int = 100) -> list[dict[str, Any]]:
        # The API caps a page at 100 entries (maximum_page_limit), whatever limit asks.
        found: list[dict[str, Any]] = []
        while True:
            reply = self.api("GET", f"{path}&limit={page}&offset={len(found)}")
            found += reply[key]
            if not reply[key] or len(found) >= reply["total_entries"]:
                return found


@contextmanager
def running_stack(stack: AirflowStack) -> Iterator[AirflowStack]:
    """``init`` + ``start`` for a ``with`` block; always stops what it started and drops
    the metadata database it created."""
    try:
        stack.init()
        stack.start()
        yield stack
    finally:
        stack.close()


def _admin(server: URL, statement: str) -> None:
    """Run one CREATE/DROP DATABASE statement (outside a transaction) on ``server``."""
    conn = psycopg2.connect(server.render_as_string(hide_password=False), connect_timeout=10)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
    finally:
        conn.close()
