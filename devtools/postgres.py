"""Find a PostgreSQL server to use, or start a private throwaway cluster."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg2
from sqlalchemy.engine import URL, make_url

REPO = Path(__file__).resolve().parent.parent
PRIVATE_DIR = REPO / ".state" / "pg"
PRIVATE_PORT = 54329
LOCAL_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"


def _answers(url: str) -> bool:
    dsn = make_url(url).set(drivername="postgresql")
    try:
        psycopg2.connect(dsn.render_as_string(hide_password=False), connect_timeout=3).close()
    except psycopg2.OperationalError:
        return False
    return True


def _pg_bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for bin_dir in versions:
        if (bin_dir / name).exists():
            return str(bin_dir / name)
    raise RuntimeError(f"PostgreSQL binary {name!r} not found; install the postgresql package")


def _as_postgres_user(args: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root.
    if os.geteuid() != 0:
        return args
    pwd.getpwnam("postgres")
    return ["runuser", "-u", "postgres", "--", *args]


def start_private_cluster() -> str:
    """Start (or reuse) a cluster under .state/pg on PRIVATE_PORT; return its URL."""
    url = f"postgresql+psycopg2://postgres@127.0.0.1:{PRIVATE_PORT}/postgres"
    if _answers(url):
        return url
    data = PRIVATE_DIR / "data"
    PRIVATE_DIR.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(PRIVATE_DIR, "postgres", "postgres")
    if not (data / "PG_VERSION").exists():
        subprocess.run(
            _as_postgres_user(
                [_pg_bin("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]
            ),
            check=True,
            capture_output=True,
        )
    subprocess.run(
        _as_postgres_user(
            [
                _pg_bin("pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(PRIVATE_DIR / "server.log"),
                "-o",
                f"-p {PRIVATE_PORT} -k /tmp -c listen_addresses=127.0.0.1",
                "-w",
                "start",
            ]
        ),
        check=True,
        capture_output=True,
    )
    for _ in range(50):
        if _answers(url):
            return url
        time.sleep(0.2)
    raise RuntimeError(f"private PostgreSQL did not start; see {PRIVATE_DIR / 'server.log'}")


def stop_private_cluster() -> None:
    data = PRIVATE_DIR / "data"
    if (data / "postmaster.pid").exists():
        subprocess.run(
            _as_postgres_user([_pg_bin("pg_ctl"), "-D", str(data), "-m", "fast", "stop"]),
            check=False,
            capture_output=True,
        )


def server_url() -> str:
    """SMSC_DATABASE_URL if set, else the local server if it answers, else a private one."""
    configured = os.environ.get("SMSC_DATABASE_URL")
    if configured:
        return configured
    if _answers(LOCAL_URL):
        return LOCAL_URL
    return start_private_cluster()


def with_database(url: str, database: str) -> URL:
    return make_url(url).set(database=database)


@contextlib.contextmanager
def throwaway_database(url: str, prefix: str = "smsc_test") -> Iterator[str]:
    """Create a fresh database on the server at ``url``; drop it (forcibly) afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = with_database(url, "postgres").set(drivername="postgresql")
    dsn = admin.render_as_string(hide_password=False)
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        yield (
            with_database(url, name)
            .set(drivername="postgresql+psycopg2")
            .render_as_string(hide_password=False)
        )
    finally:
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.close()
