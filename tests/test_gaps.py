"""Gaps: ranges of never-loaded days, the view behind them, the old-gap check and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from smsc_hook.exceptions import SmscFatalError
from smsc_hook.gaps import (
    SmscGapsError,
    backfill_command,
    backfill_in_progress,
    check_no_old_gaps,
    describe,
    find_gaps,
    group_ranges,
)
from smsc_hook.migrations import apply_migrations
from smsc_hook.models import StatRow
from smsc_hook.warehouse import Warehouse
from tests.support import ACCOUNT, airflow_connections

REPO_ROOT = Path(__file__).resolve().parents[1]


def d(text_date: str) -> date:
    return date.fromisoformat(text_date)


# --- pure: group_ranges, describe, backfill_command ----------------------------------------


@pytest.mark.parametrize(
    ("days", "expected"),
    [
        pytest.param([], [], id="empty"),
        pytest.param(["2026-10-07"], [("2026-10-07", "2026-10-07")], id="single-day"),
        pytest.param(
            ["2026-10-03", "2026-10-04", "2026-10-05"],
            [("2026-10-03", "2026-10-05")],
            id="contiguous",
        ),
        pytest.param(
            ["2026-10-01", "2026-10-02", "2026-10-05", "2026-10-09", "2026-10-10"],
            [
                ("2026-10-01", "2026-10-02"),
                ("2026-10-05", "2026-10-05"),
                ("2026-10-09", "2026-10-10"),
            ],
            id="gaps-split-ranges",
        ),
        pytest.param(
            ["2026-10-10", "2026-10-01", "2026-10-09", "2026-10-02"],
            [("2026-10-01", "2026-10-02"), ("2026-10-09", "2026-10-10")],
            id="unsorted",
        ),
        pytest.param(
            ["2026-10-02", "2026-10-01", "2026-10-02", "2026-10-01", "2026-10-04"],
            [("2026-10-01", "2026-10-02"), ("2026-10-04", "2026-10-04")],
            id="duplicates",
        ),
        pytest.param(
            ["2026-10-30", "2026-10-31", "2026-11-01"],
            [("2026-10-30", "2026-11-01")],
            id="month-boundary",
        ),
        pytest.param(
            ["2026-12-31", "2027-01-01"], [("2026-12-31", "2027-01-01")], id="year-boundary"
        ),
        pytest.param(
            ["2028-02-28", "2028-02-29", "2028-03-01"],
            [("2028-02-28", "2028-03-01")],
            id="leap-february",
        ),
        pytest.param(
            ["2027-02-28", "2027-03-01"], [("2027-02-28", "2027-03-01")], id="common-february"
        ),
        pytest.param(
            ["2028-02-28", "2028-03-01"],
            [("2028-02-28", "2028-02-28"), ("2028-03-01", "2028-03-01")],
            id="leap-day-missing-is-a-gap",
        ),
    ],
)
def test_group_ranges(days: list[str], expected: list[tuple[str, str]]) -> None:
    assert group_ranges(d(day) for day in days) == [(d(a), d(b)) for a, b in expected]


@pytest.mark.parametrize(
    ("ranges", "expected"),
    [
        pytest.param([], "", id="none"),
        pytest.param([("2026-10-09", "2026-10-09")], "2026-10-09", id="single-day"),
        pytest.param([("2026-10-03", "2026-10-05")], "2026-10-03..2026-10-05", id="range"),
        pytest.param(
            [("2026-10-03", "2026-10-05"), ("2026-10-09", "2026-10-09")],
            "2026-10-03..2026-10-05, 2026-10-09",
            id="mixed",
        ),
    ],
)
def test_describe(ranges: list[tuple[str, str]], expected: str) -> None:
    assert describe([(d(a), d(b)) for a, b in ranges]) == expected


@pytest.mark.parametrize(
    ("first", "last"),
    [
        pytest.param("2026-10-03", "2026-10-05", id="range"),
        pytest.param("2026-10-09", "2026-10-09", id="single-day"),
    ],
)
def test_backfill_command_recreates_completed_runs_for_exactly_the_range(
    first: str, last: str
) -> None:
    assert backfill_command("smsc_daily_stats_shop", d(first), d(last)) == [
        "airflow",
        "backfill",
        "create",
        "--dag-id",
        "smsc_daily_stats_shop",
        "--from-date",
        first,
        "--to-date",
        last,
        "--reprocess-behavior",
        "completed",
    ]


# --- the load_gaps view through find_gaps and check_no_old_gaps -----------------------------


@pytest.fixture
def engine(warehouse_url: str) -> Iterator[Engine]:
    apply_migrations(warehouse_url)
    eng = create_engine(warehouse_url)
    yield eng
    eng.dispose()


def load(
    engine: Engine, day: date, *, empty: bool = False, series: str = "main", account: str = ACCOUNT
) -> None:
    """Store one fetched day, as the operator would after a reply (empty: SMSC had nothing)."""
    rows = [] if empty else [StatRow(account, 3, Decimal("4.50"), Decimal(0), "RUB")]
    Warehouse(engine).load_day(
        account=account,
        series=series,
        day=day,
        rows=rows,
        raw_reply=json.dumps([] if empty else [{"cnt": 3}]).encode(),
        reply_format=3,
    )


def db_yesterday(engine: Engine) -> date:
    """The view's last day: ``current_date - 1`` in the database session."""
    with engine.connect() as conn:
        day: date = conn.execute(text("SELECT current_date - 1")).scalar_one()
    return day


def test_find_gaps_lists_unfetched_days_but_not_empty_replies(engine: Engine) -> None:
    load(engine, d("2026-10-01"))
    load(engine, d("2026-10-02"), empty=True)
    load(engine, d("2026-10-05"))
    load(engine, d("2026-10-06"), empty=True)
    load(engine, d("2026-10-08"))

    gaps = find_gaps(engine, ACCOUNT, "main", d("2026-10-10"))

    assert gaps == [d("2026-10-03"), d("2026-10-04"), d("2026-10-07"), d("2026-10-09")]


def test_find_gaps_bound_is_exclusive_and_starts_at_the_first_load(engine: Engine) -> None:
    load(engine, d("2026-10-05"))
    load(engine, d("2026-10-08"))

    assert find_gaps(engine, ACCOUNT, "main", d("2026-10-07")) == [d("2026-10-06")]
    assert find_gaps(engine, ACCOUNT, "main", d("2026-10-06")) == []


def test_find_gaps_is_per_account_and_series(engine: Engine) -> None:
    load(engine, d("2026-10-01"))
    load(engine, d("2026-10-03"))
    load(engine, d("2026-10-02"), series="balance2")
    load(engine, d("2026-10-03"), series="balance2")
    load(engine, d("2026-10-01"), account="acme")
    load(engine, d("2026-10-02"), account="acme")
    load(engine, d("2026-10-04"), account="acme")

    before = d("2026-10-04")
    assert find_gaps(engine, ACCOUNT, "main", before) == [d("2026-10-02")]
    assert find_gaps(engine, ACCOUNT, "balance2", before) == []
    assert find_gaps(engine, "acme", "main", d("2026-10-05")) == [d("2026-10-03")]
    assert find_gaps(engine, "nobody", "main", before) == []


def test_find_gaps_reaches_up_to_yesterday_only(engine: Engine) -> None:
    yesterday = db_yesterday(engine)
    load(engine, yesterday - timedelta(days=3))
    load(engine, yesterday - timedelta(days=1))

    assert find_gaps(engine, ACCOUNT, "main", date.max) == [
        yesterday - timedelta(days=2),
        yesterday,
    ]


@pytest.mark.parametrize(
    ("oldest_allowed", "expected"),
    [
        pytest.param("2026-10-02", None, id="gaps-only-inside-lookback"),
        pytest.param(
            "2026-10-03", "1 day(s) of demo/main were never loaded: 2026-10-02.", id="one"
        ),
        pytest.param(
            "2026-10-07",
            "4 day(s) of demo/main were never loaded: 2026-10-02..2026-10-04, 2026-10-06.",
            id="range-and-day",
        ),
        pytest.param(
            "2026-10-12",
            "6 day(s) of demo/main were never loaded: "
            "2026-10-02..2026-10-04, 2026-10-06..2026-10-08.",
            id="all-old",
        ),
    ],
)
def test_check_no_old_gaps_raises_only_for_days_before_the_bound(
    engine: Engine, oldest_allowed: str, expected: str | None
) -> None:
    for day in ("2026-10-01", "2026-10-05", "2026-10-09", "2026-10-10", "2026-10-11"):
        load(engine, d(day))

    if expected is None:
        check_no_old_gaps(engine, ACCOUNT, "main", d(oldest_allowed))
        return
    with pytest.raises(SmscGapsError) as caught:
        check_no_old_gaps(engine, ACCOUNT, "main", d(oldest_allowed))
    message = str(caught.value)
    assert message.startswith(expected)
    assert "python -m smsc_hook.gaps" in message
    assert "--series" not in message
    assert isinstance(caught.value, SmscFatalError), "a retry cannot fill a gap"


def test_check_no_old_gaps_command_names_the_balance2_series(engine: Engine) -> None:
    load(engine, d("2026-10-01"), series="balance2")
    load(engine, d("2026-10-03"), series="balance2")

    check_no_old_gaps(engine, ACCOUNT, "main", d("2026-10-04"))
    with pytest.raises(SmscGapsError, match=r"demo/balance2 .* 2026-10-02\.") as caught:
        check_no_old_gaps(engine, ACCOUNT, "balance2", d("2026-10-04"))
    assert "python -m smsc_hook.gaps --series balance2" in str(caught.value)


# --- the CLI, in a subprocess as an operator would run it ----------------------------------


@pytest.fixture
def run_cli(warehouse_url: str, tmp_path: Path):
    """Run ``python -m smsc_hook.gaps ARGS`` with connections from the environment only.

    An ``airflow`` executable first on PATH records any call, so a dry run that tried to
    create a backfill would show; AIRFLOW_HOME is empty, so it would also lack a database.
    """
    home = tmp_path / "airflow_home"
    home.mkdir()
    tripwire = tmp_path / "bin"
    tripwire.mkdir()
    called = tmp_path / "airflow-called"
    shim = tripwire / "airflow"
    shim.write_text(f'#!/bin/sh\necho "$@" >> {called}\nexit 1\n', encoding="utf-8")
    shim.chmod(0o755)
    # No HTTP is made: the SMSC connection only names the account ("demo", its login).
    connections = airflow_connections("http://127.0.0.1:9", warehouse_url)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMSC_", "AIRFLOW"))}
    env.update(
        PYTHONPATH=os.pathsep.join([str(REPO_ROOT / "plugins"), str(REPO_ROOT)]),
        PATH=os.pathsep.join([str(tripwire), env.get("PATH", "")]),
        AIRFLOW_HOME=str(home),
        AIRFLOW_CONN_SMSC_DEFAULT=json.dumps(connections["smsc_default"]),
        AIRFLOW_CONN_SMSC_WAREHOUSE=json.dumps(connections["smsc_warehouse"]),
    )

    def run(*args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "smsc_hook.gaps", *args],
            env={**env, **extra_env},
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert not called.exists(), f"airflow was run: {called.read_text()}"
        assert not list(home.rglob("*.db")), "the CLI created an Airflow metadata database"
        return result

    return run


def ledger_and_loads(engine: Engine) -> tuple[int, int]:
    with engine.connect() as conn:
        calls = conn.execute(text("SELECT count(*) FROM smsc.api_calls")).scalar_one()
        loads = conn.execute(text("SELECT count(*) FROM smsc.load_log")).scalar_one()
    return calls, loads


def test_cli_dry_run_prints_ranges_and_backfill_commands_and_creates_nothing(
    engine: Engine, run_cli
) -> None:
    yesterday = db_yesterday(engine)
    for day in (d("2026-10-01"), d("2026-10-03"), yesterday):
        load(engine, day)
    before = ledger_and_loads(engine)

    result = run_cli("--dry-run")

    assert result.returncode == 0, result.stderr[-3000:]
    second_last = yesterday - timedelta(days=1)
    assert result.stdout.splitlines() == [
        f"gaps: demo/main never loaded: 2026-10-02, 2026-10-04..{second_last.isoformat()}",
        "would run: airflow backfill create --dag-id smsc_daily_stats"
        " --from-date 2026-10-02 --to-date 2026-10-02 --reprocess-behavior completed",
        "would run: airflow backfill create --dag-id smsc_daily_stats"
        f" --from-date 2026-10-04 --to-date {second_last} --reprocess-behavior completed",
    ]
    assert ledger_and_loads(engine) == before, "a dry run must not call SMSC or load anything"


def test_cli_single_named_account_is_the_default(engine: Engine, run_cli) -> None:
    """``--account`` may be left out when SMSC_ACCOUNTS names one account: its DAG is used."""
    yesterday = db_yesterday(engine)
    load(engine, yesterday - timedelta(days=2))
    load(engine, yesterday)

    result = run_cli(
        "--dry-run",
        SMSC_ACCOUNTS='[{"name": "shop", "conn_id": "smsc_default"}]',
    )

    assert result.returncode == 0, result.stderr[-3000:]
    gap = (yesterday - timedelta(days=1)).isoformat()
    assert result.stdout.splitlines() == [
        f"gaps: demo/main never loaded: {gap}",
        f"would run: airflow backfill create --dag-id smsc_daily_stats_shop --from-date {gap}"
        f" --to-date {gap} --reprocess-behavior completed",
    ]


@pytest.mark.parametrize(
    ("loaded", "args", "expected"),
    [
        pytest.param("nothing", (), "gaps: none for demo/main", id="nothing-loaded"),
        pytest.param("up-to-yesterday", (), "gaps: none for demo/main", id="complete"),
        pytest.param(
            "up-to-yesterday",
            ("--series", "balance2"),
            "gaps: none for demo/balance2",
            id="other-series-never-loaded",
        ),
    ],
)
def test_cli_without_gaps_says_so(
    engine: Engine, run_cli, loaded: str, args: tuple[str, ...], expected: str
) -> None:
    if loaded == "up-to-yesterday":
        yesterday = db_yesterday(engine)
        load(engine, yesterday - timedelta(days=1))
        load(engine, yesterday, empty=True)

    # Without --dry-run: with no gaps there is nothing to run either way.
    result = run_cli(*args)

    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines() == [expected]


def test_cli_unknown_account_is_an_error_naming_it(run_cli) -> None:
    result = run_cli(
        "--account",
        "shpo",
        "--dry-run",
        SMSC_ACCOUNTS='[{"name": "shop", "conn_id": "smsc_default"}, {"name": "news"}]',
    )

    assert result.returncode == 1
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("gaps: no account named 'shpo'")
    assert "'shop', 'news'" in line


@pytest.mark.parametrize(
    ("caller", "age", "expected"),
    [
        pytest.param(
            "smsc_daily_stats/backfill__2026-11-02T03:00:00+03:00/load_day[0]#1",
            "5 minutes",
            True,
            id="recent-backfill-call",
        ),
        pytest.param(
            "smsc_daily_stats/backfill__2026-11-02T03:00:00+03:00/load_day[0]#1",
            "2 hours",
            False,
            id="old-backfill-call",
        ),
        pytest.param(
            "smsc_daily_stats/scheduled__2026-11-27T00:00:00+00:00/load_day[0]#1",
            "5 minutes",
            False,
            id="scheduled-call",
        ),
        pytest.param(
            "smsc_daily_stats/manual_backfillish/load_day[0]#1",
            "5 minutes",
            False,
            id="lookalike-run-id",
        ),
    ],
)
def test_backfill_in_progress_reads_the_ledger(
    engine: Engine, caller: str, age: str, expected: bool
) -> None:
    """A backfill that called the API in the last hour means the gaps are being filled."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO smsc.api_calls (account, reserved_at, window_start, window_end,"
                " host, caller) VALUES (:account, clock_timestamp() - CAST(:age AS interval),"
                " '2026-11-01', '2026-11-01', 'http://127.0.0.1', :caller)"
            ),
            {"account": ACCOUNT, "age": age, "caller": caller},
        )
    assert backfill_in_progress(engine, ACCOUNT) is expected
    assert backfill_in_progress(engine, "someone-else") is False


def test_gap_message_names_the_account_for_several_accounts(engine: Engine) -> None:
    first = date(2026, 10, 1)
    load(engine, first)
    load(engine, first + timedelta(days=3))
    with pytest.raises(SmscGapsError, match=r"python -m smsc_hook\.gaps --account shop`"):
        check_no_old_gaps(engine, ACCOUNT, "main", date(2026, 10, 30), account_name="shop")
