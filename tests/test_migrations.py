"""The sql/ migrations: applied once, in order, safely, and producing the promised schema."""

from __future__ import annotations

import re
import shutil
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import IntegrityError

from smsc_hook.warehouse import migrations
from smsc_hook.warehouse.migrations import (
    MigrationChecksumError,
    MigrationError,
    apply_migrations,
    pending_migrations,
)

REPO_SQL = Path(__file__).resolve().parents[1] / "sql"


def _repo_migration_names() -> list[str]:
    return [p.name for p in sorted(REPO_SQL.glob("*.sql"), key=lambda p: int(p.name[:3]))]


@pytest.fixture
def engine(warehouse_url: str) -> Iterator[Engine]:
    eng = create_engine(warehouse_url)
    yield eng
    eng.dispose()


@pytest.fixture
def sql_copy(tmp_path: Path) -> Path:
    """A private copy of sql/ that a test may edit."""
    target = tmp_path / "sql"
    shutil.copytree(REPO_SQL, target)
    return target


def _applied(engine: Engine) -> list[tuple[int, str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT version, name, checksum FROM smsc.schema_migrations ORDER BY version")
        )
        return [tuple(r) for r in rows]


# --- applying -----------------------------------------------------------------------------


def test_fresh_database_gets_every_file_in_order(warehouse_url: str, engine: Engine) -> None:
    assert apply_migrations(warehouse_url) == _repo_migration_names()
    assert [name for _, name, _ in _applied(engine)] == _repo_migration_names()


def test_repo_has_the_four_warehouse_files() -> None:
    assert _repo_migration_names()[:4] == [
        "001_stat_tables.sql",
        "002_bi_views.sql",
        "003_reader_role.sql",
        "004_load_gaps.sql",
    ]


def test_reapplying_is_a_no_op(warehouse_url: str, engine: Engine) -> None:
    apply_migrations(engine)
    before = _applied(engine)
    assert apply_migrations(engine) == []
    assert _applied(engine) == before


def test_pending_lists_what_apply_would_do(warehouse_url: str, sql_copy: Path) -> None:
    assert pending_migrations(warehouse_url, sql_copy) == _repo_migration_names()
    apply_migrations(warehouse_url, sql_copy)
    assert pending_migrations(warehouse_url, sql_copy) == []
    (sql_copy / "099_extra.sql").write_text("CREATE TABLE smsc.extra (id int);\n")
    assert pending_migrations(warehouse_url, sql_copy) == ["099_extra.sql"]
    assert apply_migrations(warehouse_url, sql_copy) == ["099_extra.sql"]


def test_sql_dir_defaults_to_env_variable(
    warehouse_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "001_only.sql").write_text("CREATE SCHEMA IF NOT EXISTS smsc;\n")
    monkeypatch.setenv("SMSC_SQL_DIR", str(tmp_path))
    assert apply_migrations(warehouse_url) == ["001_only.sql"]


def test_sql_dir_defaults_to_repo_sql(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SMSC_SQL_DIR", raising=False)
    assert migrations.default_sql_dir() == REPO_SQL


def test_percent_sign_in_a_file_is_sent_as_written(warehouse_url: str, tmp_path: Path) -> None:
    (tmp_path / "001_percent.sql").write_text(
        "CREATE SCHEMA IF NOT EXISTS smsc;\n"
        "CREATE VIEW smsc.pct AS SELECT '100%' AS v; -- 100% literal\n"
    )
    apply_migrations(warehouse_url, tmp_path)
    eng = create_engine(warehouse_url)
    try:
        with eng.connect() as conn:
            assert conn.execute(text("SELECT v FROM smsc.pct")).scalar_one() == "100%"
    finally:
        eng.dispose()


# --- refusing -----------------------------------------------------------------------------


def test_edited_applied_file_is_refused(warehouse_url: str, sql_copy: Path) -> None:
    apply_migrations(warehouse_url, sql_copy)
    edited = sql_copy / "002_bi_views.sql"
    edited.write_text(edited.read_text() + "\n-- an innocent-looking edit\n")
    (sql_copy / "099_extra.sql").write_text("CREATE TABLE smsc.extra (id int);\n")

    with pytest.raises(MigrationChecksumError, match=re.escape("002_bi_views.sql was changed")):
        apply_migrations(warehouse_url, sql_copy)
    with pytest.raises(MigrationChecksumError, match=re.escape("002_bi_views.sql")):
        pending_migrations(warehouse_url, sql_copy)
    edited.write_text(edited.read_text().replace("\n-- an innocent-looking edit\n", ""))
    assert pending_migrations(warehouse_url, sql_copy) == ["099_extra.sql"]


@pytest.mark.parametrize(
    ("file_name", "message"),
    [
        pytest.param("5-bad-name.sql", "must be named", id="misnamed"),
        pytest.param("no_number.sql", "must be named", id="no-number"),
        pytest.param("0001_again.sql", "share version number 1", id="duplicate-version"),
    ],
)
def test_bad_file_names_are_refused(
    warehouse_url: str, sql_copy: Path, file_name: str, message: str
) -> None:
    (sql_copy / file_name).write_text("SELECT 1;\n")
    with pytest.raises(MigrationError, match=message):
        apply_migrations(warehouse_url, sql_copy)
    with pytest.raises(MigrationError, match=message):
        pending_migrations(warehouse_url, sql_copy)


def test_failing_file_is_rolled_back_alone(
    warehouse_url: str, engine: Engine, tmp_path: Path
) -> None:
    (tmp_path / "001_ok.sql").write_text("CREATE SCHEMA IF NOT EXISTS smsc;\n")
    (tmp_path / "002_broken.sql").write_text(
        "CREATE TABLE smsc.half_done (id int);\nSELECT no_such_function();\n"
    )
    with pytest.raises(Exception, match="no_such_function"):
        apply_migrations(warehouse_url, tmp_path)

    assert [name for _, name, _ in _applied(engine)] == ["001_ok.sql"]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT to_regclass('smsc.half_done')")).scalar() is None
    assert pending_migrations(warehouse_url, tmp_path) == ["002_broken.sql"]


def test_missing_directory_is_refused(warehouse_url: str, tmp_path: Path) -> None:
    with pytest.raises(MigrationError, match="does not exist"):
        apply_migrations(warehouse_url, tmp_path / "nope")


# --- concurrency --------------------------------------------------------------------------


def test_concurrent_apply_from_two_threads_applies_once(warehouse_url: str, engine: Engine) -> None:
    barrier = threading.Barrier(2)
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def run() -> None:
        barrier.wait()
        try:
            results.append(apply_migrations(warehouse_url))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)

    assert errors == []
    assert sorted(results, key=len) == [[], _repo_migration_names()]
    assert len(_applied(engine)) == len(_repo_migration_names())


# --- the schema the files produce ---------------------------------------------------------

STAT_KEY = {"account", "series", "stat_date", "login"}
FIGURES = {"cnt", "credit", "debit", "currency"}

EXPECTED_TABLES = {
    "stat_day": STAT_KEY | FIGURES | {"first_loaded_at", "last_loaded_at", "last_load_id"},
    "load_log": {
        "id",
        "account",
        "series",
        "window_start",
        "window_end",
        "loaded_at",
        "row_count",
        "reply_sha256",
        "inserted",
        "updated",
        "deleted",
        "unchanged",
    },
    "raw_reply": {"load_id", "body", "reply_format", "sha256"},
    "stat_revision": STAT_KEY
    | {f"old_{c}" for c in FIGURES}
    | {f"new_{c}" for c in FIGURES}
    | {"id", "changed_at", "load_id"},
    "schema_migrations": {"version", "name", "checksum", "applied_at"},
    "api_calls": {
        "id",
        "account",
        "reserved_at",
        "window_start",
        "window_end",
        "host",
        "caller",
        "waited_ms",
        "finished_at",
        "outcome",
        "error_code",
        "latency_ms",
    },
    "reconciliation": {
        "account",
        "series",
        "month",
        "login",
        "attempt",
        "api_cnt",
        "stored_cnt",
        "cnt_diff",
        "credit_diff",
        "debit_diff",
        "matched",
        "checked_at",
    },
}

# The BI contract: exact columns, in this order.
EXPECTED_VIEWS = {
    "daily_stats": [
        "stat_date",
        "account",
        "series",
        "login",
        "cnt",
        "credit",
        "debit",
        "currency",
        "last_loaded_at",
    ],
    "monthly_stats": [
        "month",
        "account",
        "series",
        "login",
        "currency",
        "cnt",
        "credit",
        "debit",
        "days",
    ],
    "load_gaps": ["account", "series", "day"],
    "reconciliation_status": [
        "account",
        "series",
        "month",
        "login",
        "attempt",
        "api_cnt",
        "stored_cnt",
        "cnt_diff",
        "api_credit",
        "stored_credit",
        "credit_diff",
        "api_debit",
        "stored_debit",
        "debit_diff",
        "matched",
        "checked_at",
        "status",
        "missing_day_count",
        "missing_days",
    ],
}


@pytest.fixture(scope="module")
def migrated_engine(pg_server_url: str) -> Iterator[Engine]:
    """One migrated database shared by the read-only schema checks below."""
    from devtools import postgres

    with postgres.throwaway_database(pg_server_url, prefix="smsc_test_schema") as url:
        eng = create_engine(url)
        apply_migrations(eng)
        yield eng
        eng.dispose()


def _columns(engine: Engine, relation: str) -> list[str]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                text(
                    "SELECT column_name FROM information_schema.columns"
                    " WHERE table_schema = 'smsc' AND table_name = :name"
                    " ORDER BY ordinal_position"
                ),
                {"name": relation},
            ).scalars()
        )


@pytest.mark.parametrize(("table", "columns"), EXPECTED_TABLES.items(), ids=EXPECTED_TABLES)
def test_table_has_expected_columns(migrated_engine: Engine, table: str, columns: set[str]) -> None:
    with migrated_engine.connect() as conn:
        kind = conn.execute(
            text(
                "SELECT table_type FROM information_schema.tables"
                " WHERE table_schema = 'smsc' AND table_name = :name"
            ),
            {"name": table},
        ).scalar()
    assert kind == "BASE TABLE"
    assert columns <= set(_columns(migrated_engine, table))


@pytest.mark.parametrize(("view", "columns"), EXPECTED_VIEWS.items(), ids=EXPECTED_VIEWS)
def test_view_has_exactly_the_bi_columns(
    migrated_engine: Engine, view: str, columns: list[str]
) -> None:
    with migrated_engine.connect() as conn:
        is_view = conn.execute(
            text(
                "SELECT EXISTS (SELECT FROM information_schema.views"
                " WHERE table_schema = 'smsc' AND table_name = :name)"
            ),
            {"name": view},
        ).scalar_one()
    assert is_view
    assert _columns(migrated_engine, view) == columns


def test_every_table_view_and_column_has_a_comment(migrated_engine: Engine) -> None:
    with migrated_engine.connect() as conn:
        missing = conn.execute(
            text(
                """
                SELECT c.relname || coalesce('.' || a.attname, '')
                FROM pg_class c
                JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'smsc'
                LEFT JOIN pg_attribute a
                    ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                WHERE c.relkind IN ('r', 'v')
                  AND (obj_description(c.oid, 'pg_class') IS NULL
                       OR (a.attname IS NOT NULL AND col_description(c.oid, a.attnum) IS NULL))
                ORDER BY 1
                """
            )
        ).scalars()
        assert list(missing) == []


@pytest.mark.parametrize("column", ["stat_day.credit", "stat_day.debit", "daily_stats.credit"])
def test_credit_debit_comments_warn_about_the_reversed_english_gloss(
    migrated_engine: Engine, column: str
) -> None:
    relation, name = column.split(".")
    with migrated_engine.connect() as conn:
        comment = conn.execute(
            text(
                "SELECT col_description(to_regclass('smsc.' || :rel), a.attnum)"
                " FROM pg_attribute a"
                " WHERE a.attrelid = to_regclass('smsc.' || :rel) AND a.attname = :col"
            ),
            {"rel": relation, "col": name},
        ).scalar_one()
    assert "reversed" in comment
    assert "English" in comment


def test_reader_role_exists_and_cannot_log_in(migrated_engine: Engine) -> None:
    with migrated_engine.connect() as conn:
        can_login = conn.execute(
            text("SELECT rolcanlogin FROM pg_roles WHERE rolname = 'smsc_reader'")
        ).scalar_one()
    assert can_login is False


# The database refuses bad figures even if some writer skips the Python validation.
@pytest.mark.parametrize(
    ("column", "value"),
    [
        pytest.param("cnt", -1, id="negative-cnt"),
        pytest.param("currency", "rub", id="lowercase-currency"),
        pytest.param("currency", "RUBL", id="four-letter-currency"),
        pytest.param("credit", Decimal("NaN"), id="nan-credit"),
        pytest.param("debit", Decimal("Infinity"), id="infinite-debit"),
        pytest.param("series", "balance3", id="unknown-series"),
    ],
)
def test_stat_day_checks_reject_bad_values(
    migrated_engine: Engine, column: str, value: object
) -> None:
    good: dict[str, object] = {
        "account": "acme",
        "series": "main",
        "cnt": 1,
        "credit": Decimal("1.5"),
        "debit": Decimal(0),
        "currency": "RUB",
    }
    with migrated_engine.connect() as conn:
        load_id = conn.execute(
            text(
                "INSERT INTO smsc.load_log (account, series, window_start, window_end, loaded_at,"
                " row_count, reply_sha256, inserted, updated, deleted, unchanged)"
                " VALUES ('acme', 'main', '2024-01-01', '2024-01-01', now(), 0,"
                " repeat('0', 64), 0, 0, 0, 0) RETURNING id"
            )
        ).scalar_one()
        with pytest.raises(IntegrityError, match="check constraint"):
            conn.execute(
                text(
                    "INSERT INTO smsc.stat_day (account, series, stat_date, login, cnt, credit,"
                    " debit, currency, first_loaded_at, last_loaded_at, last_load_id)"
                    " VALUES (:account, :series, '2024-01-01', 'alice', :cnt, :credit, :debit,"
                    " :currency, now(), now(), :load_id)"
                ),
                {**good, column: value, "load_id": load_id},
            )
        conn.rollback()
