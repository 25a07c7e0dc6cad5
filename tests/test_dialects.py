"""Every simulator dialect (reply layout) through SmscHook over HTTP and `airflow dags test`.

No real get_stat reply is published; each dialect is one plausible layout, and the product
must load the same rows from every one of them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from devtools import postgres
from devtools.airflow_stack import AirflowStack, pipeline_connections
from devtools.simulator_process import RunningSimulator, running_simulator
from simulator.config import DEFAULT_DIALECT, DIALECTS
from simulator.control import SimulatorControl, SimulatorControlError
from smsc_hook.client.exceptions import SmscReplyError
from smsc_hook.client.hook import SmscHook
from smsc_hook.client.models import StatRow
from tests.conftest import SIM_TODAY
from tests.support import dags_test, query, stored_rows, truth_rows

CONN_ID = "smsc_dialect"
SOLO, SOLO_PASSWORD = "solo", "solo-password"
#: The default accounts plus one without subclients: its replies hold one row (or none).
ACCOUNTS: list[dict[str, Any]] = [
    {
        "login": "demo",
        "password": "demo-password",
        "subclients": ["demo-shop", "demo-news"],
        "currency": "RUB",
    },
    {"login": SOLO, "password": SOLO_PASSWORD, "currency": "RUB", "opened": "2026-10-01"},
]
PASSWORDS = {a["login"]: a["password"] for a in ACCOUNTS}
#: Days picked from the simulator's ground truth (seed 1).
CASES = {
    "demo-busy": ("demo", date(2026, 10, 6)),  # main login and both subclients
    "demo-main-idle": ("demo", date(2026, 10, 3)),  # main login without traffic
    "solo": (SOLO, date(2026, 10, 14)),  # one login: one row
    "solo-idle": (SOLO, date(2026, 10, 10)),  # one login, no traffic at all
}


def write_accounts(directory: Path) -> Path:
    path = directory / "accounts.json"
    path.write_text(json.dumps(ACCOUNTS), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def dialect_simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSimulator]:
    accounts = write_accounts(tmp_path_factory.mktemp("dialects"))
    args = ("--quiet", "--accounts", str(accounts), "--rate-limit", "1000")
    with running_simulator(*args, "--today", SIM_TODAY.isoformat()) as sim:
        yield sim


@pytest.fixture
def control(dialect_simulator: RunningSimulator) -> Iterator[SimulatorControl]:
    control = dialect_simulator.control
    control.reset()
    yield control
    control.configure(dialect=DEFAULT_DIALECT)


def hook_for(
    sim: RunningSimulator, monkeypatch: pytest.MonkeyPatch, login: str, fmt: int
) -> SmscHook:
    conn = {
        "conn_type": "smsc",
        "host": sim.url,
        "login": login,
        "password": PASSWORDS[login],
        "extra": {"fmt": fmt},
    }
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(conn))
    return SmscHook(CONN_ID)


def truth(control: SimulatorControl, login: str, day: date) -> list[StatRow]:
    return [
        StatRow(r["login"], r["cnt"], r["credit"], r["debit"], r["currency"])
        for r in control.truth(login, day, day)
    ]


def check_layout(dialect: str, fmt: int, raw: bytes, rows: int) -> None:
    """The body really is in the dialect's layout (else the test proves nothing)."""
    body = raw.strip()
    if fmt == 3 and rows:
        bare = dialect == "single-object" and rows == 1
        assert body.startswith(b"{" if bare else b"["), body[:80]
        assert (b'"cnt": "' in body) == (dialect == "strings"), body[:200]
        assert (b'"credit": "' not in body) == (dialect == "numbers"), body[:200]
    if fmt == 2 and rows:
        rooted = dialect == "single-object" and rows == 1
        assert (b"<stat>" in body) == (dialect != "flat-xml"), body[:200]
        assert (b"<result>" not in body) == rooted, body[:200]


# --- the hook against each dialect -------------------------------------------------------


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("fmt", [0, 1, 2, 3])
@pytest.mark.parametrize("dialect", DIALECTS)
def test_hook_reads_every_dialect(
    dialect: str,
    fmt: int,
    case: str,
    control: SimulatorControl,
    dialect_simulator: RunningSimulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    login, day = CASES[case]
    assert control.configure(dialect=dialect)["dialect"] == dialect
    expected = truth(control, login, day)
    hook = hook_for(dialect_simulator, monkeypatch, login, fmt)
    if not expected and fmt in (0, 1):
        # A text reply cannot say "no rows": an empty body is what a dropped reply looks
        # like too (the official PHP client fails over on it), so it stays refused.
        with pytest.raises(SmscReplyError, match="empty body"):
            hook.fetch_stat(day, day)
        return
    reply = hook.fetch_stat(day, day)
    assert reply.rows == expected
    check_layout(dialect, fmt, reply.raw, len(expected))
    if dialect == "omit-zero":
        assert all(row.cnt or row.credit or row.debit for row in reply.rows)
    elif case == "solo-idle":
        assert reply.rows == [StatRow(SOLO, 0, Decimal("0.00"), Decimal("0.00"), "RUB")]


def test_omit_zero_drops_exactly_the_idle_logins(control: SimulatorControl) -> None:
    login, day = CASES["demo-main-idle"]
    everyone = truth(control, login, day)
    control.configure(dialect="omit-zero")
    assert truth(control, login, day) == [row for row in everyone if row.login != "demo"]
    assert truth(control, *CASES["solo-idle"]) == []


def test_numbers_dialect_varies_the_decimals(
    control: SimulatorControl, dialect_simulator: RunningSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    control.configure(dialect="numbers")
    login, day = CASES["demo-busy"]
    reply = hook_for(dialect_simulator, monkeypatch, login, 3).fetch_stat(day, day)
    places = {-row.credit.as_tuple().exponent for row in reply.rows}  # type: ignore[operator]
    assert len(places) > 1, reply.raw[:300]
    assert reply.rows == truth(control, login, day)


def test_dialect_from_the_command_line_and_the_control_api(tmp_path: Path) -> None:
    accounts = write_accounts(tmp_path)
    args = ("--quiet", "--accounts", str(accounts), "--dialect", "flat-xml")
    with running_simulator(*args) as sim:
        assert sim.control.config()["dialect"] == "flat-xml"
        with pytest.raises(SimulatorControlError, match=r"unknown dialect .*nested"):
            sim.control.configure(dialect="nested")
        assert sim.control.config()["dialect"] == "flat-xml", "a refused change changes nothing"
        assert sim.control.configure(dialect="arrays")["dialect"] == "arrays"


# --- `airflow dags test` per dialect ------------------------------------------------------

#: One day per dialect, in date order so the warehouse never has a gap behind the newest
#: load; omit-zero gets the one-login account's idle day: "fetched and empty", end to end.
DAG_DAYS = {
    "arrays": date(2026, 10, 20),
    "single-object": date(2026, 10, 21),
    "flat-xml": date(2026, 10, 22),
    "omit-zero": date(2026, 10, 23),
    "strings": date(2026, 10, 24),
    "numbers": date(2026, 10, 25),
}
assert set(DAG_DAYS) == set(DIALECTS)


@pytest.fixture(scope="module")
def dag_warehouse(pg_server_url: str) -> Iterator[str]:
    with postgres.throwaway_database(pg_server_url) as url:
        yield url


@pytest.fixture(scope="module")
def dag_stack(
    tmp_path_factory: pytest.TempPathFactory,
    dialect_simulator: RunningSimulator,
    dag_warehouse: str,
) -> Iterator[AirflowStack]:
    """One Airflow home for every dialect, bootstrapped once, for the one-login account."""
    connections = pipeline_connections(
        dialect_simulator.url, dag_warehouse, login=SOLO, password=SOLO_PASSWORD
    )
    stack = AirflowStack(home=tmp_path_factory.mktemp("airflow"), connections=connections)
    try:
        stack.init()
        stack.python("-m", "smsc_hook.bootstrap", "--no-api-call")
        yield stack
    finally:
        stack.close()


@pytest.mark.airflow
@pytest.mark.parametrize("dialect", list(DAG_DAYS))
def test_dags_test_loads_the_day_in_every_dialect(
    dialect: str, dag_stack: AirflowStack, control: SimulatorControl, dag_warehouse: str
) -> None:
    day = DAG_DAYS[dialect]
    control.configure(dialect=dialect)
    expected = truth_rows(control, day, account=SOLO)
    assert bool(expected) == (dialect != "omit-zero"), expected

    result = dags_test(dag_stack, day)

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert stored_rows(dag_warehouse, day, account=SOLO) == expected
    loads = query(
        dag_warehouse,
        "SELECT row_count FROM smsc.load_log WHERE account = :account AND window_start = :day",
        account=SOLO,
        day=day,
    )
    assert loads == [(len(expected),)], "exactly one load of the day, with the reply's rows"
    assert SOLO_PASSWORD not in result.stdout + result.stderr
