"""Issue 18: a reseller's subclients from ``users.php?get_stat`` as the series ``subclients``.

Hook and parser against the simulator over real HTTP in every fmt and dialect, the shared
ledger budget, the non-reseller's fatal configuration error after one call, the settings,
the warehouse series (migration 009, views), gaps, reconciliation and the probe; last, the
Airflow backfill of both series (skipped until ``docs/_wiring_18.patch`` is applied).
"""

from __future__ import annotations

import inspect
import json
import time
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.definitions.retry_policy import RetryAction
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError

from devtools.simulator_process import RunningSimulator, running_simulator
from simulator import DIALECTS
from smsc_hook.airflow.retry import SmscRetryPolicy
from smsc_hook.airflow.settings import PipelineSettings
from smsc_hook.checks.gaps import SmscGapsError, check_no_old_gaps, find_gaps
from smsc_hook.checks.reconciliation import check_month
from smsc_hook.client.exceptions import (
    SmscAuthError,
    SmscConfigError,
    SmscFatalError,
    SmscIpBlockedError,
    SmscNotResellerError,
    SmscParametersError,
    SmscRateLimitedError,
    SmscReplyError,
    SmscReplyValueError,
    SmscUnknownApiError,
)
from smsc_hook.client.hook import SmscHook
from smsc_hook.client.models import StatRow
from smsc_hook.client.parsing import parse_reply, parse_stat_reply, parse_subclients_reply
from smsc_hook.probe import run_probe
from smsc_hook.warehouse.ledger import LedgerPacer, RateLimit
from smsc_hook.warehouse.writer import Warehouse
from tests.conftest import SIM_TODAY
from tests.support import most_starts_in_window

CONN_ID = "smsc_test"
DAY = date(2026, 10, 6)
OCTOBER = date(2026, 10, 1)
ACCOUNTS: list[dict[str, Any]] = [
    {
        "login": "demo",
        "password": "demo-password",
        "subclients": ["demo-shop", "demo-news"],
        "currency": "RUB",
    },
    {
        "login": "agency",
        "password": "agency-password",
        "subclients": ["ag-a", "ag-b", "ag-own", "ag-gone"],
        "independent": ["ag-own"],
        "deleted": ["ag-gone"],
        "currency": "KZT",
    },
    {"login": "plain", "password": "plain-password"},
    # A subclient named like the password: the reply itself carries the secret.
    {"login": "echo", "password": "echo-secret-pw", "subclients": ["echo-secret-pw", "e-two"]},
]
PASSWORDS = {a["login"]: str(a["password"]) for a in ACCOUNTS}


# --- fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSimulator]:
    accounts = tmp_path_factory.mktemp("users") / "accounts.json"
    accounts.write_text(json.dumps(ACCOUNTS), encoding="utf-8")
    args = ("--quiet", "--today", SIM_TODAY.isoformat(), "--rate-limit", "1000")
    with running_simulator(*args, "--accounts", str(accounts)) as sim:
        yield sim


@pytest.fixture
def sim(shared_simulator: RunningSimulator) -> Iterator[RunningSimulator]:
    shared_simulator.control.reset()
    yield shared_simulator
    shared_simulator.control.configure(dialect="arrays")


@pytest.fixture
def connect(monkeypatch: pytest.MonkeyPatch) -> Any:
    def connect(host: str, login: str = "agency", *, pacer: Any = None, **extra: Any) -> SmscHook:
        conn = {"conn_type": "smsc", "host": host, "login": login, "password": PASSWORDS[login]}
        monkeypatch.setenv("AIRFLOW_CONN_SMSC_TEST", json.dumps({**conn, "extra": extra}))
        return SmscHook(CONN_ID, pacer=pacer)

    return connect


def as_dicts(rows: list[StatRow]) -> list[dict[str, Any]]:
    return [
        {
            "login": r.login,
            "cnt": r.cnt,
            "credit": r.credit,
            "debit": r.debit,
            "currency": r.currency,
        }
        for r in rows
    ]


def api_requests(sim: RunningSimulator) -> list[dict[str, Any]]:
    return [r for r in sim.control.requests() if r["path"].startswith("/sys/")]


# --- the hook against the simulator ------------------------------------------------------


@pytest.mark.parametrize("fmt", [0, 1, 2, 3])
@pytest.mark.parametrize(
    ("reseller", "hide_deleted"),
    [
        pytest.param(0, False, id="main-balance"),
        pytest.param(0, True, id="hide-deleted"),
        pytest.param(1, False, id="own-balance"),
    ],
)
def test_every_format_matches_truth_without_the_extra_column(
    sim: RunningSimulator, connect: Any, fmt: int, reseller: int, hide_deleted: bool
) -> None:
    hook = connect(sim.url, fmt=fmt)
    reply = hook.fetch_subclients_stat(DAY, DAY, reseller=reseller, hide_deleted=hide_deleted)
    truth = sim.control.subclients_truth(
        "agency", DAY, DAY, reseller=reseller, hide_deleted=hide_deleted
    )
    assert as_dicts(reply.rows) == truth
    assert truth, "the case has subclients"
    assert reply.source == "subclients"
    # fmt 1 has no names, so the simulator sends the five fields only there.
    assert reply.extra_fields == (() if fmt == 1 else ("user_id",))
    assert b"user_id" in reply.raw if fmt != 1 else True


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("fmt", [0, 2, 3])
def test_every_dialect_reads_alike(
    sim: RunningSimulator, connect: Any, dialect: str, fmt: int
) -> None:
    sim.control.configure(dialect=dialect)
    # One subclient (own balance) for the unwrapped single row; else the three others.
    reseller = 1 if dialect == "single-object" else 0
    rows = connect(sim.url, fmt=fmt).get_subclients_stat(DAY, DAY, reseller=reseller)
    truth = sim.control.subclients_truth("agency", DAY, DAY, reseller=reseller)
    if dialect == "omit-zero":
        truth = [r for r in truth if r["cnt"] or r["credit"] or r["debit"]]
    assert as_dicts(rows) == truth


def test_a_month_window_is_one_call(sim: RunningSimulator, connect: Any) -> None:
    last = date(2026, 10, 31)
    rows = connect(sim.url).get_subclients_stat(OCTOBER, last)
    assert as_dicts(rows) == sim.control.subclients_truth("agency", OCTOBER, last)
    assert len(api_requests(sim)) == 1


def test_credentials_travel_only_in_the_post_body(sim: RunningSimulator, connect: Any) -> None:
    connect(sim.url).get_subclients_stat(DAY, DAY, reseller=1, hide_deleted=True)
    (entry,) = api_requests(sim)
    assert (entry["method"], entry["path"], entry["url_params"]) == ("POST", "/sys/users.php", {})
    assert entry["secret_in_url"] is False
    body = entry["body_params"]
    assert body["psw"] == "***"
    assert body["login"] == "agency"
    assert (body["get_stat"], body["reseller"], body["hide_deleted"]) == ("1", "1", "1")
    assert (body["start"], body["end"], body["mycur"]) == ("06.10.2026", "06.10.2026", "1")
    assert "balance2" not in body, "the subclients series is the main balance's"


def test_get_stat_still_goes_to_get_php(sim: RunningSimulator, connect: Any) -> None:
    reply = connect(sim.url, "demo").fetch_stat(DAY, DAY)
    (entry,) = api_requests(sim)
    assert entry["path"] == "/sys/get.php"
    assert "reseller" not in entry["body_params"]
    assert (reply.source, reply.extra_fields) == ("get_stat", ())


@pytest.mark.parametrize("fmt", [0, 1, 2, 3])
def test_not_a_reseller_is_a_fatal_config_error_after_one_call(
    sim: RunningSimulator, connect: Any, engine: Engine, fmt: int
) -> None:
    """One call, no reserve host, no retry: the type says configuration."""
    pacer = LedgerPacer(engine, "plain", caller="test-18")
    hook = connect(sim.url, "plain", pacer=pacer, fmt=fmt, reserve_hosts=[sim.url])
    with pytest.raises(SmscNotResellerError) as caught:
        hook.fetch_subclients_stat(DAY, DAY)
    error = caught.value
    assert isinstance(error, SmscConfigError)
    assert isinstance(error, SmscFatalError)
    assert error.code == 6
    assert "reseller" in str(error)
    assert "SMSC_ACCOUNTS" in str(error)
    assert "plain-password" not in str(error)
    assert SmscRetryPolicy().evaluate(error, 1, 9).action == RetryAction.FAIL
    assert len(api_requests(sim)) == 1
    with engine.connect() as conn:
        ledger = conn.execute(
            text("SELECT host, outcome, error_code, caller FROM smsc.api_calls")
        ).all()
    assert ledger == [(f"{sim.url}/sys/users.php", "api_error", 6, "test-18")]


@pytest.mark.parametrize("fmt", [0, 1, 2, 3])
def test_a_secret_in_the_reply_never_reaches_the_archive_or_an_error(
    sim: RunningSimulator, connect: Any, fmt: int
) -> None:
    reply = connect(sim.url, "echo", fmt=fmt).fetch_subclients_stat(DAY, DAY)
    assert b"echo-secret-pw" not in reply.raw
    assert b"***" in reply.raw
    sim.control.configure(dialect="omit-zero")
    sim.control.set_faults([{"kind": "truncated", "count": 1}])
    with pytest.raises(SmscReplyError) as caught:
        connect(sim.url, "echo", fmt=fmt).fetch_subclients_stat(DAY, DAY)
    assert "echo-secret-pw" not in str(caught.value)


@pytest.mark.parametrize(
    ("code", "error_type"),
    [
        pytest.param(2, SmscAuthError, id="auth"),
        pytest.param(4, SmscIpBlockedError, id="ip-blocked"),
        pytest.param(9, SmscRateLimitedError, id="rate-limited"),
    ],
)
def test_shared_error_codes_keep_their_meaning(
    sim: RunningSimulator, connect: Any, code: int, error_type: type[Exception]
) -> None:
    sim.control.set_faults([{"kind": "error", "code": code, "count": 1}])
    with pytest.raises(error_type):
        connect(sim.url).get_subclients_stat(DAY, DAY)


def test_a_wrong_password_on_users_php_is_an_auth_error(
    sim: RunningSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = {"conn_type": "smsc", "host": sim.url, "login": "agency", "password": "wrong-pw-18"}
    monkeypatch.setenv("AIRFLOW_CONN_SMSC_TEST", json.dumps(conn))
    with pytest.raises(SmscAuthError) as caught:
        SmscHook(CONN_ID).get_subclients_stat(DAY, DAY)
    assert "wrong-pw-18" not in str(caught.value)


def test_malformed_users_php_reply_is_retryable(sim: RunningSimulator, connect: Any) -> None:
    sim.control.set_faults([{"kind": "truncated", "count": 1}])
    with pytest.raises(SmscReplyError) as caught:
        connect(sim.url).get_subclients_stat(DAY, DAY)
    assert not isinstance(caught.value, SmscFatalError)


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"reseller": 2}, id="reseller-2"),
        pytest.param({"reseller": True}, id="bool"),
        pytest.param({"hide_deleted": 1}, id="hide-deleted-int"),
    ],
)
def test_bad_options_fail_before_any_call(
    sim: RunningSimulator, connect: Any, options: dict[str, Any]
) -> None:
    with pytest.raises(SmscConfigError):
        connect(sim.url).get_subclients_stat(DAY, DAY, **options)
    assert api_requests(sim) == []


def test_both_methods_share_the_ledger_budget(
    sim: RunningSimulator, connect: Any, engine: Engine
) -> None:
    """3 calls per window across get.php and users.php: the fourth waits for the window."""
    window = timedelta(seconds=1.5)
    pacer = LedgerPacer(engine, "agency", limit=RateLimit(3, window), caller="test-18")
    hook = connect(sim.url, pacer=pacer)
    began = time.monotonic()
    hook.fetch_stat(DAY, DAY)
    hook.fetch_subclients_stat(DAY, DAY)
    hook.fetch_stat(DAY, DAY)
    hook.fetch_subclients_stat(DAY, DAY, reseller=1)
    assert time.monotonic() - began >= window.total_seconds()
    with engine.connect() as conn:
        ledger = conn.execute(
            text(
                "SELECT reserved_at, host, caller, window_start, window_end, outcome"
                " FROM smsc.api_calls ORDER BY id"
            )
        ).all()
    paths = [row.host.removeprefix(sim.url) for row in ledger]
    assert paths == ["", "/sys/users.php", "", "/sys/users.php"]
    assert {(r.caller, r.window_start, r.window_end, r.outcome) for r in ledger} == {
        ("test-18", DAY, DAY, "ok")
    }
    assert most_starts_in_window([r.reserved_at for r in ledger], window) <= 3


# --- the parser --------------------------------------------------------------------------

ROW = {"login": "ag-a", "cnt": 3, "credit": "4.50", "debit": "0", "currency": "RUB"}


@pytest.mark.parametrize(
    ("fmt", "body"),
    [
        pytest.param(
            0,
            b"login = ag-a, cnt = 3, credit = 4.50, debit = 0, currency = RUB,"
            b" User_Id = 17, Tz = 0\n",
            id="text",
        ),
        pytest.param(
            2,
            b"<result><stat><login>ag-a</login><cnt>3</cnt><credit>4.50</credit>"
            b"<debit>0</debit><currency>RUB</currency><user_id>17</user_id>"
            b"<tz>0</tz></stat></result>",
            id="xml",
        ),
        pytest.param(
            2,
            b'<stat login="ag-a" cnt="3" credit="4.50" debit="0" currency="RUB"'
            b' user_id="17" tz="0"/>',
            id="xml-attributes",
        ),
        pytest.param(3, json.dumps([{**ROW, "user_id": 17, "TZ": 0}]).encode(), id="json"),
        pytest.param(
            3, json.dumps({**ROW, "user_id": "17", "tz": None}).encode(), id="json-object"
        ),
    ],
)
def test_extra_columns_stay_out_of_the_rows_but_are_named(fmt: int, body: bytes) -> None:
    parsed = parse_reply(body, fmt, source="subclients")
    assert parsed.rows == [StatRow("ag-a", 3, Decimal("4.50"), Decimal("0"), "RUB")]
    assert parsed.extra_fields == ("tz", "user_id")
    assert parse_stat_reply(body, fmt) == parsed.rows, "get_stat reads the same layouts"


@pytest.mark.parametrize(
    ("fmt", "template"),
    [
        pytest.param(0, "ERROR = {code} (no such thing), ID - 4", id="text"),
        pytest.param(1, "0,-{code}", id="comma"),
        pytest.param(
            2, "<result><error>x</error><error_code>{code}</error_code></result>", id="xml"
        ),
        pytest.param(3, '{{"error": "x", "error_code": {code}, "id": 3}}', id="json"),
    ],
)
@pytest.mark.parametrize(
    ("code", "error_type"),
    [
        pytest.param(1, SmscParametersError, id="1"),
        pytest.param(2, SmscAuthError, id="2"),
        pytest.param(3, SmscNotResellerError, id="3"),
        pytest.param(4, SmscIpBlockedError, id="4"),
        pytest.param(6, SmscNotResellerError, id="6"),
        pytest.param(9, SmscRateLimitedError, id="9"),
        pytest.param(10, SmscNotResellerError, id="10"),
    ],
)
def test_users_php_error_codes(
    fmt: int, template: str, code: int, error_type: type[Exception]
) -> None:
    body = template.format(code=code).encode()
    with pytest.raises(error_type) as caught:
        parse_subclients_reply(body, fmt)
    assert caught.value.code == code  # type: ignore[attr-defined]
    if code == 6:  # get.php keeps its own reading of the same reply
        with pytest.raises(SmscUnknownApiError):
            parse_stat_reply(body, fmt)


@pytest.mark.parametrize(
    ("fmt", "body", "error_type"),
    [
        pytest.param(
            3,
            json.dumps([{**ROW, "login": "x" * 101}]).encode(),
            SmscReplyValueError,
            id="login-too-long",
        ),
        pytest.param(
            3,
            json.dumps([{**ROW, "credit": "1e200000"}]).encode(),
            SmscReplyValueError,
            id="absurd-amount",
        ),
        pytest.param(3, json.dumps([ROW, ROW]).encode(), SmscReplyValueError, id="repeated"),
        pytest.param(1, b"ag-a,3,4.50,0,RUB,17\n", SmscReplyError, id="comma-sixth-column"),
        pytest.param(0, b"", SmscReplyError, id="empty"),
        pytest.param(3, b"<html><body>502</body></html>", SmscReplyError, id="html"),
        pytest.param(3, b'[{"login": "ag-a"', SmscReplyError, id="truncated"),
    ],
)
def test_users_php_replies_are_as_strict_as_get_stat(
    fmt: int, body: bytes, error_type: type[Exception]
) -> None:
    with pytest.raises(error_type):
        parse_subclients_reply(body, fmt)
    with pytest.raises(error_type):
        parse_stat_reply(body, fmt)


def test_unknown_source_is_a_config_error() -> None:
    with pytest.raises(SmscConfigError, match="unknown reply source"):
        parse_reply(b"[]", 3, source="users")


# --- settings ----------------------------------------------------------------------------


def accounts(value: list[dict[str, Any]]) -> PipelineSettings:
    return PipelineSettings.from_env({"SMSC_ACCOUNTS": json.dumps(value)}, today=SIM_TODAY)


def test_subclients_add_a_series_with_their_options() -> None:
    settings = accounts(
        [
            {"name": "agency", "subclients": True, "reseller": 1, "hide_deleted": True},
            {"name": "both", "balance2": True, "subclients": True},
            {"name": "shop"},
        ]
    )
    agency, both, shop = settings.all_accounts()
    assert (agency.series, agency.reseller, agency.hide_deleted) == (
        ("main", "subclients"),
        1,
        True,
    )
    assert (both.series, both.reseller, both.hide_deleted) == (
        ("main", "balance2", "subclients"),
        0,
        False,
    )
    assert shop.series == ("main",)
    assert not shop.subclients


@pytest.mark.parametrize(
    ("item", "message"),
    [
        pytest.param({"subclients": "true"}, "subclients must be true or false", id="string"),
        pytest.param({"subclients": True, "reseller": 2}, "reseller must be 0", id="reseller-2"),
        pytest.param({"subclients": True, "reseller": "1"}, "reseller must be 0", id="str"),
        pytest.param({"subclients": True, "reseller": True}, "reseller must be 0", id="bool"),
        pytest.param({"subclients": True, "hide_deleted": 1}, "hide_deleted must be", id="int"),
        pytest.param({"reseller": 1}, 'add "subclients": true', id="reseller-alone"),
        pytest.param({"subclients": False, "hide_deleted": True}, 'add "subclients"', id="off"),
        pytest.param({"subclient": True}, "unknown key(s) 'subclient'", id="misspelt"),
    ],
)
def test_bad_subclient_options_name_the_variable_and_the_fix(
    item: dict[str, Any], message: str
) -> None:
    with pytest.raises(SmscConfigError) as caught:
        accounts([{"name": "agency", **item}])
    assert str(caught.value).startswith("SMSC_ACCOUNTS=")
    assert message in str(caught.value)
    assert "agency" in str(caught.value)


# --- the warehouse, gaps and reconciliation ------------------------------------------------


def load_truth(engine: Engine, sim: RunningSimulator, day: date, **options: Any) -> None:
    truth = sim.control.subclients_truth("agency", day, day, **options)
    Warehouse(engine).load_day(
        account="agency",
        series="subclients",
        day=day,
        rows=[StatRow(**row) for row in truth],
        raw_reply=json.dumps(truth, default=str).encode(),
        reply_format=3,
    )


def test_the_series_lands_in_the_views(sim: RunningSimulator, engine: Engine) -> None:
    load_truth(engine, sim, DAY)
    load_truth(engine, sim, DAY + timedelta(days=1))
    with engine.connect() as conn:
        daily = conn.execute(
            text("SELECT DISTINCT series, login FROM smsc.daily_stats ORDER BY login")
        ).all()
        monthly = conn.execute(
            text("SELECT series, login, days FROM smsc.monthly_stats ORDER BY login")
        ).all()
        comment = conn.execute(
            text("SELECT col_description('smsc.stat_day'::regclass, 2)")
        ).scalar_one()
    assert daily == [("subclients", login) for login in ("ag-a", "ag-b", "ag-gone")]
    assert monthly == [("subclients", login, 2) for login in ("ag-a", "ag-b", "ag-gone")]
    assert "users.php" in comment


def test_other_series_values_are_still_refused(engine: Engine) -> None:
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO smsc.load_log (account, series, window_start, window_end,"
                " loaded_at, row_count, reply_sha256, inserted, updated, deleted, unchanged)"
                " VALUES ('a', 'users', '2026-10-01', '2026-10-01', now(), 0, :sha, 0, 0, 0, 0)"
            ),
            {"sha": "0" * 64},
        )


def test_a_subclient_that_vanishes_needs_a_witness(sim: RunningSimulator, engine: Engine) -> None:
    """hide_deleted turned on later drops ag-gone: a removal, as for any series."""
    from smsc_hook.warehouse.writer import RemovalNeedsWitness

    load_truth(engine, sim, DAY)
    with pytest.raises(RemovalNeedsWitness) as caught:
        load_truth(engine, sim, DAY, hide_deleted=True)
    assert caught.value.removed_logins == ["ag-gone"]


def test_gaps_are_per_series(sim: RunningSimulator, engine: Engine) -> None:
    for offset in (0, 3):
        load_truth(engine, sim, DAY + timedelta(days=offset))
    gaps = [DAY + timedelta(days=1), DAY + timedelta(days=2)]
    assert find_gaps(engine, "agency", "subclients", DAY + timedelta(days=4)) == gaps
    assert find_gaps(engine, "agency", "main", DAY + timedelta(days=4)) == []
    with pytest.raises(SmscGapsError) as caught:
        check_no_old_gaps(engine, "agency", "subclients", DAY + timedelta(days=4), "agency")
    assert "agency/subclients" in str(caught.value)
    assert "python -m smsc_hook.gaps --account agency --series subclients" in str(caught.value)


def test_gaps_cli_takes_the_series() -> None:
    from smsc_hook.airflow.cli import COMMANDS

    (gaps,) = [c for c in COMMANDS if c.name == "gaps"]
    (series,) = [o for o in gaps.options if o.flag == "--series"]
    assert series.choices == ("main", "balance2", "subclients")


def test_reconciliation_checks_the_series_with_one_users_php_call(
    sim: RunningSimulator, connect: Any, engine: Engine
) -> None:
    last = date(2026, 10, 31)
    for offset in range(31):
        load_truth(engine, sim, OCTOBER + timedelta(days=offset))
    hook = connect(sim.url)

    def fetch_month(first: date, end: date) -> list[StatRow]:
        return hook.fetch_subclients_stat(first, end).rows

    sim.control.clear_requests()
    matched = check_month(
        engine=engine,
        account="agency",
        series="subclients",
        month=OCTOBER,
        fetch_month=fetch_month,
        today=SIM_TODAY,
    )
    assert matched.status == "matched"
    assert len(matched.checks) == 3
    (call,) = api_requests(sim)
    assert (call["path"], call["start"], call["end"]) == (
        "/sys/users.php",
        "01.10.2026",
        last.strftime("%d.%m.%Y"),
    )
    sim.control.revise("agency", "ag-b", date(2026, 10, 12), cnt=10_000)
    differs = check_month(
        engine=engine,
        account="agency",
        series="subclients",
        month=OCTOBER,
        fetch_month=fetch_month,
        today=SIM_TODAY,
    )
    assert differs.status == "differs"
    assert [c.login for c in differs.checks if not c.matched] == ["ag-b"]
    with engine.connect() as conn:
        statuses = conn.execute(
            text("SELECT series, status FROM smsc.reconciliation_check ORDER BY id")
        ).all()
    assert statuses == [("subclients", "matched"), ("subclients", "differs")]


# --- the probe ---------------------------------------------------------------------------


def test_probe_shows_the_extra_columns_of_users_php(
    sim: RunningSimulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, engine: Engine
) -> None:
    conn = {"conn_type": "smsc", "host": sim.url, "login": "agency", "password": "agency-password"}
    monkeypatch.setenv("AIRFLOW_CONN_SMSC_DEFAULT", json.dumps(conn))
    pacer = LedgerPacer(engine, "agency", limit=RateLimit(100), caller="probe")
    results = list(
        run_probe(
            "smsc_default",
            DAY,
            tmp_path,
            name="sim-users",
            pacer=pacer,
            source="subclients",
            hide_deleted=True,
        )
    )
    lines = [r.line() for r in results]
    assert [r.verdict.rows if r.verdict else None for r in results] == [2, 2, 2, 2], lines
    for result in results:
        assert ("user_id" in result.shape) == (result.fmt != 1), result.line()
        extra = "extra field(s) not stored: user_id"
        assert (extra in result.line()) == (result.fmt != 1), result.line()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "sim-users.fmt0.rows2.txt",
        "sim-users.fmt1.rows2.txt",
        "sim-users.fmt2.rows2.xml",
        "sim-users.fmt3.rows2.json",
    ]
    for path in tmp_path.iterdir():
        data = path.read_text()
        assert not any(s in data for s in ("agency-password", "ag-a", "ag-b")), path.name
    assert {r["path"] for r in api_requests(sim)} == {"/sys/users.php"}


def test_probe_of_a_non_reseller_records_the_error(
    sim: RunningSimulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    conn = {"conn_type": "smsc", "host": sim.url, "login": "plain", "password": "plain-password"}
    monkeypatch.setenv("AIRFLOW_CONN_SMSC_DEFAULT", json.dumps(conn))
    sleeps: list[float] = []
    results = list(
        run_probe(
            "smsc_default", DAY, tmp_path, formats=[3], source="subclients", sleep=sleeps.append
        )
    )
    assert [str(r.verdict) for r in results] == ["API error 6"]
    assert (tmp_path / "smsc.fmt3.error6.json").exists()


# --- the Airflow backfill of both series (after docs/_wiring_18.patch) ---------------------


def _wiring_applied() -> bool:
    from smsc_hook.airflow import operators

    return "subclients" in inspect.signature(operators._SmscWarehouseOperator).parameters


wired = pytest.mark.skipif(not _wiring_applied(), reason="apply docs/_wiring_18.patch first")


@pytest.mark.airflow
@pytest.mark.timeout(300)
@wired
def test_a_non_reseller_task_fails_once_with_the_fix(tmp_path: Path, warehouse_url: str) -> None:
    """``dags test``: main loads; the subclients load fails after one call, not retried."""
    from devtools.airflow_stack import pipeline_connections
    from tests.support import dags_test, initialised_stack, query

    accounts_file = tmp_path / "accounts.json"
    accounts_file.write_text(json.dumps(ACCOUNTS), encoding="utf-8")
    sim_args = ("--quiet", "--today", SIM_TODAY.isoformat(), "--accounts", str(accounts_file))
    with running_simulator(*sim_args) as sim, initialised_stack(tmp_path / "airflow") as stack:
        connections = pipeline_connections(
            sim.url, warehouse_url, login="plain", password="plain-password"
        )
        stack.connections = {
            "smsc_plain": connections["smsc_default"],
            "smsc_warehouse": connections["smsc_warehouse"],
        }
        stack.extra_env = {
            "SMSC_ACCOUNTS": json.dumps([{"name": "plain", "subclients": True}]),
            "SMSC_LOOKBACK_DAYS": "0",
        }
        stack.python("-m", "smsc_hook.bootstrap", "--no-api-call")
        result = dags_test(stack, DAY, dag_id="smsc_daily_stats_plain")
        paths = [r["path"] for r in api_requests(sim)]
    output = result.stdout + result.stderr
    assert "SmscNotResellerError" in output
    assert "action=fail" in output, "the retry policy must fail the task, not retry it"
    assert "SMSC_ACCOUNTS" in output
    assert sorted(paths) == ["/sys/get.php", "/sys/users.php"], "one call each, no retry"
    ledger = query(
        warehouse_url, "SELECT host, outcome, error_code FROM smsc.api_calls ORDER BY host"
    )
    assert [(host.removeprefix(sim.url), o, c) for host, o, c in ledger] == [
        ("", "ok", None),
        ("/sys/users.php", "api_error", 6),
    ]
    assert query(warehouse_url, "SELECT DISTINCT series FROM smsc.load_log") == [("main",)]
    assert "plain-password" not in output


BACKFILL_DAYS = [date(2026, 10, 5) + timedelta(days=i) for i in range(3)]
RATE_WINDOW = 2.0  # seconds: SMSC's 60 s window scaled down 30x, in the simulator and ledger


@pytest.mark.backfill
@pytest.mark.timeout(600)
@wired
def test_backfill_with_subclients_loads_both_series_within_the_limit(
    tmp_path: Path, warehouse_url: str
) -> None:
    from devtools.airflow_stack import AirflowStack, pipeline_connections, running_stack
    from tests.support import query, wait_for_runs

    dag_id = "smsc_daily_stats_agency"
    sim_args = (
        "--quiet",
        "--today",
        SIM_TODAY.isoformat(),
        "--rate-limit",
        "3",
        "--rate-window",
        str(RATE_WINDOW),
    )
    accounts_file = tmp_path / "accounts.json"
    accounts_file.write_text(json.dumps(ACCOUNTS), encoding="utf-8")
    with running_simulator(*sim_args, "--accounts", str(accounts_file)) as sim:
        connections = pipeline_connections(
            sim.url, warehouse_url, login="agency", password="agency-password"
        )
        stack = AirflowStack(
            home=tmp_path / "airflow",
            connections={
                "smsc_agency": connections["smsc_default"],
                "smsc_warehouse": connections["smsc_warehouse"],
            },
            extra_env={
                "SMSC_ACCOUNTS": json.dumps([{"name": "agency", "subclients": True}]),
                "SMSC_LOOKBACK_DAYS": "0",
                "SMSC_END_DATE": BACKFILL_DAYS[-1].isoformat(),
                "SMSC_RATE_WINDOW_SECONDS": str(RATE_WINDOW),
            },
        )
        with running_stack(stack):
            stack.python("-m", "smsc_hook.bootstrap", "--no-api-call")
            stack.wait_for_dag(dag_id)
            stack.unpause(dag_id)
            stack.backfill(dag_id, BACKFILL_DAYS[0], BACKFILL_DAYS[-1])
            runs = wait_for_runs(stack, "backfill", len(BACKFILL_DAYS), 420, dag_id=dag_id)
            sim_log = api_requests(sim)
            truth = {
                (day, series): sorted(
                    (r["login"], r["cnt"], r["credit"])
                    for r in (
                        sim.control.truth("agency", day, day)
                        if series == "main"
                        else sim.control.subclients_truth("agency", day, day)
                    )
                )
                for day in BACKFILL_DAYS
                for series in ("main", "subclients")
            }

    assert {r["state"] for r in runs} == {"success"}
    for (day, series), expected in truth.items():
        stored = query(
            warehouse_url,
            "SELECT login, cnt, credit FROM smsc.daily_stats WHERE account = 'agency'"
            " AND series = :series AND stat_date = :day ORDER BY login",
            series=series,
            day=day,
        )
        assert sorted(tuple(r) for r in stored) == expected, (day, series)
    loads = query(
        warehouse_url,
        "SELECT series, count(*) FROM smsc.load_log GROUP BY series ORDER BY series",
    )
    assert loads == [("main", len(BACKFILL_DAYS)), ("subclients", len(BACKFILL_DAYS))]
    paths = sorted(r["path"] for r in sim_log)
    assert paths == ["/sys/get.php"] * 3 + ["/sys/users.php"] * 3
    assert [r for r in sim_log if r.get("error_code") == 9] == []
    window = timedelta(seconds=RATE_WINDOW)
    assert most_starts_in_window([r["time"] for r in sim_log], window) <= 3
    ledger = query(warehouse_url, "SELECT reserved_at, host, caller FROM smsc.api_calls")
    assert len(ledger) == 6
    assert most_starts_in_window([at for at, _, _ in ledger], window) <= 3
    assert sum(host.endswith("/sys/users.php") for _, host, _ in ledger) == 3
    assert all("/backfill__" in caller for _, _, caller in ledger)


def test_an_operator_asked_for_subclients_and_balance2_is_refused() -> None:
    from smsc_hook.airflow.operators import SmscStatsToPostgresOperator

    with pytest.raises(SmscConfigError, match="subclients=True and balance2=True"):
        SmscStatsToPostgresOperator(task_id="both", subclients=True, balance2=True)
