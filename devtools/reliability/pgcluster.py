"""A throwaway PostgreSQL cluster of one's own, which a test may stop, restart and kill.

The shared server (5432) and the demo's private cluster (.state/pg, 54329) serve other
people; a "database restarted during a backfill" case needs a server nobody else uses.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import psycopg2

from devtools.airflow_stack import free_port
from devtools.postgres import _as_postgres_user, _pg_bin


@dataclass
class PrivateCluster:
    """A cluster in ``directory`` listening on 127.0.0.1:``port`` (trust auth, user postgres)."""

    directory: Path
    port: int

    @property
    def data(self) -> Path:
        return self.directory / "data"

    @property
    def log(self) -> Path:
        return self.directory / "server.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{database}"

    def dsn(self, database: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={database}"

    def init(self) -> None:
        subprocess.run(
            _as_postgres_user(
                [
                    _pg_bin("initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ]
            ),
            check=True,
            capture_output=True,
        )

    def _pg_ctl(self, *args: str) -> None:
        result = subprocess.run(
            _as_postgres_user([_pg_bin("pg_ctl"), "-D", str(self.data), *args]),
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"pg_ctl {' '.join(args)} failed: {result.stderr}\n{log}")

    def start(self) -> None:
        """Start and wait until it accepts connections."""
        self._pg_ctl(
            "-l",
            str(self.log),
            "-o",
            f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off",
            "-w",
            "start",
        )
        self.wait_ready()

    def stop(self, mode: str = "fast") -> None:
        """``fast`` rolls back open transactions and closes every session."""
        self._pg_ctl("-m", mode, "-w", "stop")

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                psycopg2.connect(self.dsn(), connect_timeout=2).close()
                return
            except psycopg2.OperationalError:
                time.sleep(0.1)
        raise RuntimeError(f"private PostgreSQL on {self.port} did not come up; see {self.log}")

    def create_database(self, name: str) -> str:
        """A new database; returns its SQLAlchemy URL."""
        conn = psycopg2.connect(self.dsn())
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()
        return self.url(name)


@contextmanager
def private_cluster() -> Iterator[PrivateCluster]:
    """A fresh cluster on a free port in a new directory; stopped and removed afterwards."""
    directory = Path(tempfile.mkdtemp(prefix="smsc-reliability-pg-"))
    if os.geteuid() == 0:
        # initdb and postgres refuse to run as root; the directory must be theirs.
        shutil.chown(directory, "postgres", "postgres")
    cluster = PrivateCluster(directory, free_port())
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        if cluster.running():
            with suppress(RuntimeError):
                cluster.stop("immediate")
        shutil.rmtree(directory, ignore_errors=True)
