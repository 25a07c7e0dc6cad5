"""Gaps: ranges of never-loaded days, the view behind them, the old-gap check, the CLI and
its bounded wait for backfills against a real Airflow metadata database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import IO

import pytest
from sqlalchemy import Engine, create_engine, text

from devtools.airflow_stack import AirflowStack, postgres_connection
from smsc_hook.checks.gaps import (
    SmscGapsError,
    SmscGapsWaitError,
    backfill_command,
    backfill_in_progress,
    check_no_old_gaps,
    describe,
    find_gaps,
    group_ranges,
    main,
)
from smsc_hook.client.exceptions import SmscFatalError
from smsc_hook.client.models import StatRow
from smsc_hook.warehouse.writer import Warehouse
from tests.support import ACCOUNT, DAG_ID, airflow_connections

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
        "--max-active-runs",
        "2",
        "--reprocess-behavior",
        "completed",
    ]


# --- the load_gaps view through find_gaps and check_no_old_gaps -----------------------------


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
        " --from-date 2026-10-02 --to-date 2026-10-02 --max-active-runs 2"
        " --reprocess-behavior completed",
        "would run: airflow backfill create --dag-id smsc_daily_stats"
        f" --from-date 2026-10-04 --to-date {second_last} --max-active-runs 2"
        " --reprocess-behavior completed",
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
        f" --to-date {gap} --max-active-runs 2 --reprocess-behavior completed",
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


# --- the DAG check and the bounded wait, against a real Airflow metadata database ----------

#: Run with the stack's environment (Airflow reads its settings at import): apply the JSON
#: ``ops`` (argv[2]) to DAG argv[1] through Airflow's ORM and print ``ops: [results]``; then,
#: if argv[3] is not null, ``wait_for_backfills(DAG, **argv[3])`` and ``result: {...}``.
_IN_AIRFLOW = """
import json, sys, time
from datetime import datetime
from sqlalchemy import delete, update
from airflow.models.backfill import Backfill, BackfillDagRun
from airflow.models.dag import DagModel
from airflow.models.dagrun import DagRun
from airflow.settings import TIMEZONE
from airflow.utils.session import create_session
from smsc_hook.checks.gaps import SmscGapsWaitError, wait_for_backfills

dag_id, ops, wait = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
results = []
for op, arg in ops:
    with create_session() as session:
        if op == "reset":  # no backfills; arg: the DAG's is_paused and is_stale
            session.execute(delete(BackfillDagRun))
            session.execute(delete(DagRun).where(DagRun.dag_id == dag_id))
            session.execute(delete(Backfill))
            session.execute(update(DagModel).where(DagModel.dag_id == dag_id).values(**arg))
            results.append(None)
        elif op == "backfill":  # 2026-01-01..02, never completed: no scheduler runs
            backfill = Backfill(
                dag_id=dag_id,
                from_date=datetime(2026, 1, 1, tzinfo=TIMEZONE),
                to_date=datetime(2026, 1, 2, tzinfo=TIMEZONE),
                dag_run_conf={},
                reprocess_behavior="completed",
                is_paused=arg,
            )
            session.add(backfill)
            session.flush()
            results.append(backfill.id)
print("ops: " + json.dumps(results), flush=True)
if wait is not None:
    started, error = time.monotonic(), None
    try:
        wait_for_backfills(dag_id, **wait)
    except SmscGapsWaitError as exc:
        error = str(exc)
    print("result: " + json.dumps({"elapsed": time.monotonic() - started, "error": error}))
"""

RUNNING_DAG = ("reset", {"is_paused": False, "is_stale": False})


@pytest.fixture(scope="module")
def metadata(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowStack]:
    """A migrated Airflow metadata database holding the parsed DAG, with no service running.

    ``dags reserialize`` writes what the dag-processor would (the DAG row, paused as at
    creation, and the serialized DAG), so ``airflow backfill create`` would work; with no
    scheduler running, no backfill ever completes.
    """
    stack = AirflowStack(
        home=tmp_path_factory.mktemp("gaps") / "airflow",
        connections=airflow_connections("http://127.0.0.1:9", "postgresql://127.0.0.1:9/none"),
    )
    try:
        stack.init()
        stack.airflow("dags", "reserialize")
        yield stack
    finally:
        # Drops the stack's own metadata database where it has one (PostgreSQL).
        getattr(stack, "close", stack.stop)()


def in_airflow(
    stack: AirflowStack, *ops: tuple[str, object], wait: dict | None = None
) -> tuple[subprocess.Popen[str], list]:
    """Start :data:`_IN_AIRFLOW`; return the process, once ``ops`` are done, and their results."""
    # stderr to a file: communicate() would read the pipes' file descriptors directly and
    # lose what next_line()'s buffered readline already took from stdout.
    errors = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed by drain())
    process = subprocess.Popen(
        [sys.executable, "-c", _IN_AIRFLOW, DAG_ID, json.dumps(ops), json.dumps(wait)],
        env=stack.env,
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=errors,
        text=True,
    )
    _ERRORS[process.pid] = errors
    return process, json.loads(next_line(process, "ops: ")[len("ops: ") :])


def next_line(process: subprocess.Popen[str], prefix: str) -> str:
    """Block until ``process`` prints its next line, which must start with ``prefix``."""
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith(prefix):
        process.kill()
        pytest.fail(f"expected {prefix!r}, got {line!r}: {drain(process)[1][-3000:]}")
    return line


def drain(process: subprocess.Popen[str], timeout: float = 60) -> tuple[str, str]:
    """Everything ``process`` printed (after what was already read), once it has exited."""
    assert process.stdout is not None
    out = process.stdout.read()  # to EOF, including what readline() buffered
    process.wait(timeout=timeout)
    with _ERRORS.pop(process.pid) as errors:
        errors.seek(0)
        return out, errors.read()


#: The stderr file of each process in_airflow() started, by pid.
_ERRORS: dict[int, IO[str]] = {}


def finish(process: subprocess.Popen[str]) -> tuple[list[str], dict]:
    """What ``wait_for_backfills`` printed, and its result (elapsed s, error or None)."""
    out, err = drain(process)
    assert process.returncode == 0, err[-3000:]
    *lines, result = out.splitlines()
    assert result.startswith("result: "), out
    return lines, json.loads(result[len("result: ") :])


def set_up(stack: AirflowStack, *ops: tuple[str, object]) -> list:
    process, results = in_airflow(stack, *ops)
    _, err = drain(process)
    assert process.returncode == 0, err[-3000:]
    return results


def metadata_sql(stack: AirflowStack, sql: str, **params: object) -> object:
    """One statement on the metadata database, SQLite or PostgreSQL, without Airflow."""
    engine = create_engine(stack.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    try:
        with engine.begin() as conn:
            result = conn.execute(text(sql), params)
            return result.scalar_one() if result.returns_rows else None
    finally:
        engine.dispose()


def backfills(stack: AirflowStack) -> int:
    """How many backfills the metadata database holds, of any DAG."""
    count = metadata_sql(stack, "SELECT count(*) FROM backfill")
    assert isinstance(count, int)
    return count


def run_gaps(
    stack: AirflowStack, warehouse_url: str, *args: str, **extra_env: str
) -> subprocess.CompletedProcess[str]:
    """``python -m smsc_hook.gaps ARGS`` where the Airflow CLI runs, on the test warehouse."""
    env = {
        **stack.env,
        "AIRFLOW_CONN_SMSC_WAREHOUSE": json.dumps(postgres_connection(warehouse_url)),
        **extra_env,
    }
    return subprocess.run(
        [sys.executable, "-m", "smsc_hook.gaps", *args],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def with_a_gap(engine: Engine) -> None:
    """Loaded days with one never-fetched range between them, whatever today is."""
    yesterday = db_yesterday(engine)
    load(engine, yesterday - timedelta(days=3))
    load(engine, yesterday)


@pytest.mark.airflow
@pytest.mark.parametrize(
    ("dag_state", "accounts", "expected"),
    [
        pytest.param(
            {"is_paused": True, "is_stale": False},
            "",
            [
                "gaps: DAG smsc_daily_stats is paused:",
                "stay queued forever",
                "`airflow dags unpause smsc_daily_stats`",
            ],
            id="paused",
        ),
        pytest.param(
            {"is_paused": False, "is_stale": False},
            '[{"name": "shop", "conn_id": "smsc_default"}]',
            [
                "gaps: DAG smsc_daily_stats_shop is not in the Airflow metadata database:",
                "the dag-processor must have parsed it",
                "--account",
            ],
            id="not-parsed",
        ),
        pytest.param(
            {"is_paused": False, "is_stale": True},
            "",
            ["gaps: DAG smsc_daily_stats is stale:", "the scheduler runs nothing"],
            id="stale",
        ),
    ],
)
def test_cli_creates_no_backfill_the_scheduler_would_never_run(
    metadata: AirflowStack,
    engine: Engine,
    warehouse_url: str,
    dag_state: dict,
    accounts: str,
    expected: list[str],
) -> None:
    metadata_sql(
        metadata,
        "UPDATE dag SET is_paused = :is_paused, is_stale = :is_stale WHERE dag_id = :d",
        d=DAG_ID,
        **dag_state,
    )
    before = backfills(metadata)
    with_a_gap(engine)

    result = run_gaps(metadata, warehouse_url, **({"SMSC_ACCOUNTS": accounts} if accounts else {}))

    assert result.returncode == 1, result.stdout + result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    (line,) = [s for s in result.stderr.splitlines() if s.startswith("gaps:")]
    for part in expected:
        assert part in line
    assert "running:" not in result.stdout
    assert backfills(metadata) == before, "a backfill was created"


@pytest.mark.airflow
def test_cli_without_a_metadata_database_says_where_to_run(
    metadata: AirflowStack, engine: Engine, warehouse_url: str, tmp_path: Path
) -> None:
    with_a_gap(engine)

    result = run_gaps(
        metadata,
        warehouse_url,
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{tmp_path / 'not-migrated.db'}",
    )

    assert result.returncode == 1, result.stdout + result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    (line,) = [s for s in result.stderr.splitlines() if s.startswith("gaps:")]
    assert line.startswith("gaps: cannot read the Airflow metadata database (")
    assert "run this where the Airflow CLI runs" in line


@pytest.mark.airflow
def test_cli_gives_up_on_a_backfill_that_never_finishes(
    metadata: AirflowStack, engine: Engine, warehouse_url: str
) -> None:
    _, backfill_id = set_up(metadata, RUNNING_DAG, ("backfill", False))
    with_a_gap(engine)

    result = run_gaps(metadata, warehouse_url, "--wait-timeout", "1", "--poll", "0.2")

    assert result.returncode == 1, result.stdout + result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    waiting = f"backfill {backfill_id} (2026-01-01..2026-01-02) of DAG smsc_daily_stats"
    assert f"gaps: waiting for {waiting} to finish" in result.stdout
    assert "running:" not in result.stdout
    (line,) = [s for s in result.stderr.splitlines() if s.startswith("gaps:")]
    assert line.startswith(f"gaps: {waiting} still running after 1 s (--wait-timeout 1);")
    assert "airflow jobs check --job-type SchedulerJob" in line
    assert backfills(metadata) == 1, "no further backfill is created"


@pytest.mark.airflow
def test_wait_for_backfills_gives_up_within_its_bound_and_reports_sparingly(
    metadata: AirflowStack,
) -> None:
    waiter, (_, backfill_id) = in_airflow(
        metadata,
        RUNNING_DAG,
        ("backfill", False),
        wait={"timeout": 1.5, "poll": 0.1, "report_every": 0.6},
    )

    lines, result = finish(waiter)

    assert 1.5 <= result["elapsed"] < 4.5, result
    assert result["error"].startswith(
        f"backfill {backfill_id} (2026-01-01..2026-01-02) of DAG smsc_daily_stats still running"
    )
    assert f"GET /api/v2/backfills?dag_id={DAG_ID}" in result["error"]
    # About 15 polls: one line at the start, then one per report_every.
    assert lines[0].startswith(f"gaps: waiting for backfill {backfill_id} "), lines
    assert 1 <= len(lines[1:]) <= 2, lines
    assert all(line.startswith("gaps: still waiting for backfill") for line in lines[1:])


@pytest.mark.airflow
def test_wait_for_backfills_stops_at_once_when_the_dag_gets_paused(
    metadata: AirflowStack,
) -> None:
    waiter, _ = in_airflow(
        metadata, RUNNING_DAG, ("backfill", False), wait={"timeout": 60, "poll": 0.2}
    )
    next_line(waiter, "gaps: waiting for backfill")

    # What `airflow dags pause` (or the UI's toggle) writes.
    metadata_sql(metadata, "UPDATE dag SET is_paused = :yes WHERE dag_id = :d", yes=True, d=DAG_ID)
    paused_at = time.monotonic()
    _, result = finish(waiter)

    assert time.monotonic() - paused_at < 10, "the waiter did not notice the pause"
    assert result["elapsed"] < 30, result
    assert result["error"].startswith("while waiting for backfill ")
    assert "DAG smsc_daily_stats is paused" in result["error"]
    assert "`airflow dags unpause smsc_daily_stats`" in result["error"]


@pytest.mark.airflow
def test_wait_for_backfills_stops_at_once_when_the_backfill_is_paused(
    metadata: AirflowStack,
) -> None:
    waiter, (_, backfill_id) = in_airflow(
        metadata, RUNNING_DAG, ("backfill", True), wait={"timeout": 60, "poll": 0.2}
    )

    lines, result = finish(waiter)

    assert result["elapsed"] < 5, result
    assert lines == []
    assert result["error"].startswith(
        f"backfill {backfill_id} (2026-01-01..2026-01-02, paused) of DAG smsc_daily_stats:"
        " the runs of a paused backfill stay queued"
    )
    assert f"`PUT /api/v2/backfills/{backfill_id}/unpause`" in result["error"]


@pytest.mark.airflow
def test_wait_for_backfills_returns_when_the_backfill_completes(
    metadata: AirflowStack,
) -> None:
    waiter, (_, backfill_id) = in_airflow(
        metadata, RUNNING_DAG, ("backfill", False), wait={"timeout": 60, "poll": 0.2}
    )
    next_line(waiter, "gaps: waiting for backfill")

    # What the scheduler writes when the backfill's last run has ended.
    metadata_sql(
        metadata,
        "UPDATE backfill SET completed_at = CURRENT_TIMESTAMP WHERE id = :i",
        i=backfill_id,
    )
    lines, result = finish(waiter)

    assert result["error"] is None
    assert result["elapsed"] < 30, result
    (line,) = lines  # the first line was read above
    assert line.startswith("gaps: the backfill of DAG smsc_daily_stats finished after")


@pytest.mark.parametrize("value", ["0", "-5", "soon", "inf", "nan"])
def test_cli_wait_timeout_must_be_a_positive_number_of_seconds(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--wait-timeout", value])
    assert exited.value.code == 2
    assert f"not a positive number of seconds: {value!r}" in capsys.readouterr().err


def test_gaps_wait_error_is_a_fatal_gaps_error() -> None:
    """main() reports it as ``gaps: …`` and exits 1; no retry can unpause a DAG."""
    assert issubclass(SmscGapsWaitError, SmscGapsError)
    assert issubclass(SmscGapsWaitError, SmscFatalError)


def test_the_scheduled_gap_check_names_every_series_with_gaps(
    engine: Engine, warehouse_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One series' gaps must not hide another's: check_gaps reads them all, then fails
    naming each, with each series' own command."""
    from types import SimpleNamespace

    from smsc_hook.airflow.planning import check_gaps
    from smsc_hook.airflow.settings import AccountConfig, PipelineSettings

    smsc = {"conn_type": "smsc", "host": "smsc.ru", "login": ACCOUNT, "password": "p"}
    monkeypatch.setenv("AIRFLOW_CONN_SMSC_DEFAULT", json.dumps(smsc))
    monkeypatch.setenv(
        "AIRFLOW_CONN_SMSC_WAREHOUSE", json.dumps(postgres_connection(warehouse_url))
    )
    for series in ("main", "balance2"):
        for day in (date(2026, 10, 1), date(2026, 10, 5)):
            Warehouse(engine).load_day(
                account=ACCOUNT, series=series, day=day, rows=[], raw_reply=b"[]", reply_format=3
            )
    settings = PipelineSettings.from_env({"SMSC_START_DATE": "2026-01-01"})
    account = AccountConfig(balance2=True)
    assert account.series == ("main", "balance2")
    context = {
        "dag_run": SimpleNamespace(run_type="scheduled"),
        "data_interval_start": datetime(2026, 10, 20, tzinfo=UTC),
    }
    with pytest.raises(SmscGapsError) as caught:
        check_gaps(context, settings, account)
    message = str(caught.value)
    # Oct 2-4 and Oct 6-16: the lookback (3 days) before the run's Oct 20 starts on Oct 17.
    for series in ("main", "balance2"):
        assert f"14 day(s) of {ACCOUNT}/{series} were never loaded" in message
    assert "python -m smsc_hook.gaps --series balance2" in message
