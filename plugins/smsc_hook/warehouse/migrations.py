"""Apply the numbered plain-SQL files in ``sql/`` to the warehouse, once each, in order."""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError

log = logging.getLogger(__name__)

#: Environment variable that overrides where the SQL files are read from.
SQL_DIR_ENV = "SMSC_SQL_DIR"

# Two-int advisory lock key ("SMSC", 1). The warehouse locks windows with the one-bigint
# form, and PostgreSQL keeps the two key spaces apart, so these can never collide.
_LOCK_CLASS = 0x534D5343
_LOCK_MIGRATIONS = 1

_FILE_NAME = re.compile(r"(?P<version>\d+)_[A-Za-z0-9_]+\.sql")

_BOOTSTRAP = """
CREATE SCHEMA IF NOT EXISTS smsc;
CREATE TABLE smsc.schema_migrations (
    version    integer     PRIMARY KEY CHECK (version > 0),
    name       text        NOT NULL UNIQUE,
    checksum   text        NOT NULL CHECK (checksum ~ '^[0-9a-f]{64}$'),
    applied_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE smsc.schema_migrations IS
    'SQL files from sql/ applied to this database by smsc_hook.warehouse.migrations, one row each.';
COMMENT ON COLUMN smsc.schema_migrations.version IS 'Number the file name starts with.';
COMMENT ON COLUMN smsc.schema_migrations.name IS 'File name, e.g. 001_stat_tables.sql.';
COMMENT ON COLUMN smsc.schema_migrations.checksum IS
    'SHA-256 (hex) of the file as applied; a later edit of the file is refused.';
COMMENT ON COLUMN smsc.schema_migrations.applied_at IS 'When the file was applied.';
"""


class MigrationError(RuntimeError):
    """The SQL directory or the database's migration history is not usable as it is."""


class MigrationChecksumError(MigrationError):
    """A file that was already applied has been edited since."""


@dataclass(frozen=True, slots=True)
class Migration:
    """One SQL file: ``version`` from its name, ``checksum`` = SHA-256 of its bytes."""

    version: int
    name: str
    path: Path
    checksum: str

    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")


def default_sql_dir() -> Path:
    """``$SMSC_SQL_DIR`` if set, else the package's ``sql/``, else ``sql/`` of a checkout.

    The package's ``sql/`` is in the wheel; in the repository it is a symlink to ``sql/`` at
    the root. The last fallback serves a checkout where git did not make the symlink.
    """
    configured = os.environ.get(SQL_DIR_ENV)
    if configured:
        return Path(configured)
    packaged = resources.files("smsc_hook.warehouse") / "sql"
    if isinstance(packaged, Path) and packaged.is_dir():
        return packaged.resolve()
    return Path(__file__).resolve().parents[3] / "sql"


def discover_migrations(sql_dir: Path | None = None) -> list[Migration]:
    """The migration files in ``sql_dir``, ordered by version.

    Every ``*.sql`` file must be named ``<number>_<words>.sql`` with a number no other file
    uses: a misnamed file would otherwise be skipped silently.
    """
    directory = sql_dir if sql_dir is not None else default_sql_dir()
    if not directory.is_dir():
        raise MigrationError(f"SQL directory {directory} does not exist")
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_NAME.fullmatch(path.name)
        if match is None:
            raise MigrationError(f"{path.name}: migration files must be named <number>_<words>.sql")
        version = int(match["version"])
        if version in found:
            raise MigrationError(
                f"{path.name} and {found[version].name} share version number {version}"
            )
        checksum = hashlib.sha256(path.read_bytes()).hexdigest()
        found[version] = Migration(version, path.name, path, checksum)
    return [found[v] for v in sorted(found)]


def apply_migrations(engine_or_url: Engine | URL | str, sql_dir: Path | None = None) -> list[str]:
    """Apply every migration not yet applied; return the names of those applied now.

    Runs under a session advisory lock, so concurrent callers (threads, processes, Airflow
    workers) queue up and the later ones find nothing left to do. Each file runs in its own
    transaction together with its ``schema_migrations`` row: a failing file leaves no trace
    and the files before it stay applied. Files must not contain transaction control.
    """
    migrations = discover_migrations(sql_dir)
    with _connection(engine_or_url) as conn, _migration_lock(conn):
        with conn.begin():
            if not _history_exists(conn):
                _run_script(conn, _BOOTSTRAP)
        with conn.begin():
            applied = _check_history(conn, migrations)
        newly_applied: list[str] = []
        for migration in migrations:
            if migration.version in applied:
                continue
            with conn.begin():
                _run_script(conn, migration.sql())
                conn.execute(
                    text(
                        "INSERT INTO smsc.schema_migrations (version, name, checksum)"
                        " VALUES (:version, :name, :checksum)"
                    ),
                    {
                        "version": migration.version,
                        "name": migration.name,
                        "checksum": migration.checksum,
                    },
                )
            log.info("Applied migration %s", migration.name)
            newly_applied.append(migration.name)
        return newly_applied


def pending_migrations(engine_or_url: Engine | URL | str, sql_dir: Path | None = None) -> list[str]:
    """Names of the migrations not yet applied, in order; raises as ``apply_migrations`` would."""
    migrations = discover_migrations(sql_dir)
    with _connection(engine_or_url) as conn:
        applied = _check_history(conn, migrations) if _history_exists(conn) else {}
    return [m.name for m in migrations if m.version not in applied]


@contextmanager
def _connection(engine_or_url: Engine | URL | str) -> Iterator[Connection]:
    if isinstance(engine_or_url, Engine):
        with engine_or_url.connect() as conn:
            yield conn
        return
    engine = create_engine(engine_or_url, pool_pre_ping=True)
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()


@contextmanager
def _migration_lock(conn: Connection) -> Iterator[None]:
    # A session-level lock outlives the per-file transactions below; it is released
    # explicitly, or by the server when the connection dies.
    lock_key = {"cls": _LOCK_CLASS, "obj": _LOCK_MIGRATIONS}
    conn.execute(text("SELECT pg_advisory_lock(:cls, :obj)"), lock_key)
    conn.commit()
    try:
        yield
    finally:
        try:
            if conn.in_transaction():
                conn.rollback()
            conn.execute(text("SELECT pg_advisory_unlock(:cls, :obj)"), lock_key)
            conn.commit()
        except DBAPIError:
            # The connection is gone, and the server released the lock with it; do not
            # hide the error that got us here.
            log.warning("Could not release the migration lock explicitly", exc_info=True)


def _history_exists(conn: Connection) -> bool:
    found = conn.execute(text("SELECT to_regclass('smsc.schema_migrations')")).scalar_one()
    return found is not None


def _check_history(conn: Connection, migrations: list[Migration]) -> dict[int, str]:
    """The applied versions and their checksums, after checking them against the files."""
    rows = conn.execute(
        text("SELECT version, name, checksum FROM smsc.schema_migrations ORDER BY version")
    ).all()
    on_disk = {m.version: m for m in migrations}
    applied: dict[int, str] = {}
    for version, name, checksum in rows:
        applied[version] = checksum
        migration = on_disk.get(version)
        if migration is None:
            # The database is ahead of this checkout; applying the older files is still safe.
            log.warning("Applied migration %s is not in the SQL directory", name)
            continue
        if migration.checksum != checksum:
            raise MigrationChecksumError(
                f"{migration.name} was changed after it was applied as {name} "
                f"(checksum {checksum[:12]}… applied, {migration.checksum[:12]}… on disk); "
                "add a new migration file instead of editing an applied one"
            )
    return applied


def _run_script(conn: Connection, sql: str) -> None:
    # no_parameters: the script goes to the server as written, so a '%' in it is not taken
    # for a bind-parameter marker by the driver.
    conn.exec_driver_sql(sql, execution_options={"no_parameters": True})
