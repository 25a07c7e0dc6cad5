"""Monthly reconciliation: which runs check which month, the comparison, and the real thing.

The real thing: days loaded through SmscHook from the simulator over HTTP, the month-long
call paced by the ledger, results in ``smsc.reconciliation`` of a throwaway warehouse.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, text

from devtools.simulator_process import RunningSimulator
from simulator.control import SimulatorControl
from smsc_hook.checks.reconciliation import (
    LoginCheck,
    MonthCheck,
    SmscReconciliationError,
    Totals,
    check_month,
    compare,
    month_bounds,
    month_days,
    months_to_reconcile,
    verify_month,
)
from smsc_hook.client.exceptions import SmscConfigError, SmscFatalError
from smsc_hook.client.hook import SmscHook
from smsc_hook.client.models import StatRow
from smsc_hook.warehouse.ledger import LedgerPacer, RateLimit
from smsc_hook.warehouse.writer import Warehouse, latest_begun_day
from tests.support import ACCOUNT, PASSWORD, query, stored_rows, truth_rows

pytestmark = pytest.mark.timeout(120)

MONTH = date(2026, 10, 1)
FIRST, LAST = date(2026, 10, 1), date(2026, 10, 31)
OCTOBER = [FIRST + timedelta(days=i) for i in range(31)]
CONN_ID = "smsc_recon"


def d(text_date: str) -> date:
    return date.fromisoformat(text_date)


# --- pure: month_bounds, months_to_reconcile, compare --------------------------------------


@pytest.mark.parametrize(
    ("day", "first", "last"),
    [
        pytest.param("2026-10-17", "2026-10-01", "2026-10-31", id="31-day-month"),
        pytest.param("2026-11-01", "2026-11-01", "2026-11-30", id="30-day-month"),
        pytest.param("2028-02-10", "2028-02-01", "2028-02-29", id="leap-february"),
        pytest.param("2027-02-28", "2027-02-01", "2027-02-28", id="common-february"),
        pytest.param("2026-12-31", "2026-12-01", "2026-12-31", id="december"),
    ],
)
def test_month_bounds(day: str, first: str, last: str) -> None:
    assert month_bounds(d(day)) == (d(first), d(last))


@pytest.mark.parametrize(
    ("day", "lookback", "months"),
    [
        pytest.param("2026-10-31", 3, ["2026-10-01"], id="month-end-closes-it"),
        pytest.param("2026-11-03", 3, ["2026-10-01"], id="month-end-plus-lookback-3"),
        pytest.param("2026-11-02", 3, [], id="month-end-plus-2-of-3"),
        pytest.param("2026-11-04", 3, [], id="month-end-plus-4-of-3"),
        pytest.param("2026-10-31", 0, ["2026-10-01"], id="lookback-0-one-check"),
        pytest.param("2026-11-01", 0, [], id="lookback-0-next-day-nothing"),
        pytest.param("2028-02-29", 3, ["2028-02-01"], id="leap-february-closes-on-29th"),
        pytest.param("2028-02-28", 3, [], id="leap-february-28th-is-not-the-end"),
        pytest.param("2028-03-03", 3, ["2028-02-01"], id="leap-february-plus-lookback"),
        pytest.param("2027-02-28", 3, ["2027-02-01"], id="common-february-closes-on-28th"),
        pytest.param("2027-03-03", 3, ["2027-02-01"], id="common-february-plus-lookback"),
        pytest.param("2026-12-31", 3, ["2026-12-01"], id="december-closes"),
        pytest.param("2027-01-03", 3, ["2026-12-01"], id="december-rechecked-in-january"),
        pytest.param("2026-10-15", 3, [], id="ordinary-day"),
        pytest.param(
            "2026-11-30", 30, ["2026-10-01", "2026-11-01"], id="lookback-30-two-months-at-once"
        ),
    ],
)
def test_months_to_reconcile(day: str, lookback: int, months: list[str]) -> None:
    assert sorted(months_to_reconcile(d(day), lookback)) == [d(m) for m in months]


def row(login: str, cnt: int, credit: str = "0", debit: str = "0") -> StatRow:
    return StatRow(login, cnt, Decimal(credit), Decimal(debit), "RUB")


@pytest.mark.parametrize(
    ("api", "stored", "expected"),
    [
        pytest.param([], {}, [], id="both-empty"),
        pytest.param(
            [row("demo", 5, "7.50", "1")],
            {"demo": Totals(5, Decimal("7.5"), Decimal("1.00"))},
            [("demo", (5, "7.50", "1"), (5, "7.5", "1.00"), True)],
            id="equal-despite-decimal-scale",
        ),
        pytest.param(
            [row("demo", 5, "7.50")],
            {"demo": Totals(4, Decimal("7.50"), Decimal(0))},
            [("demo", (5, "7.50", "0"), (4, "7.50", "0"), False)],
            id="cnt-differs",
        ),
        pytest.param(
            [row("demo", 5, "7.50"), row("demo-shop", 2, "3")],
            {"demo": Totals(5, Decimal("7.50"), Decimal(0))},
            [
                ("demo", (5, "7.50", "0"), (5, "7.50", "0"), True),
                ("demo-shop", (2, "3", "0"), (0, "0", "0"), False),
            ],
            id="login-missing-in-warehouse-is-zero",
        ),
        pytest.param(
            [],
            {"demo-news": Totals(1, Decimal("1.5"), Decimal(0))},
            [("demo-news", (0, "0", "0"), (1, "1.5", "0"), False)],
            id="login-missing-in-api-is-zero",
        ),
        pytest.param(
            [row("demo-news", 0)],
            {},
            [("demo-news", (0, "0", "0"), (0, "0", "0"), True)],
            id="zero-row-in-api-matches-nothing-stored",
        ),
        pytest.param(
            [row("zeta", 1), row("alpha", 1)],
            {"mid": Totals()},
            [
                ("alpha", (1, "0", "0"), (0, "0", "0"), False),
                ("mid", (0, "0", "0"), (0, "0", "0"), True),
                ("zeta", (1, "0", "0"), (0, "0", "0"), False),
            ],
            id="sorted-by-login",
        ),
    ],
)
def test_compare(
    api: list[StatRow],
    stored: dict[str, Totals],
    expected: list[tuple[str, tuple[int, str, str], tuple[int, str, str], bool]],
) -> None:
    def totals(figures: tuple[int, str, str]) -> Totals:
        return Totals(figures[0], Decimal(figures[1]), Decimal(figures[2]))

    checks = compare(api, stored)

    assert checks == [LoginCheck(login, totals(a), totals(s)) for login, a, s, _ in expected]
    assert [check.matched for check in checks] == [matched for *_, matched in expected]


def test_login_check_describes_every_figure() -> None:
    check = LoginCheck(
        "demo", Totals(17, Decimal("25.50"), Decimal("1")), Totals(12, Decimal("18"), Decimal(0))
    )
    assert check.describe() == "demo: cnt 17 vs stored 12, credit 25.50 vs 18, debit 1 vs 0"


# --- against the simulator -------------------------------------------------------------------


@pytest.fixture
def control(fast_simulator: RunningSimulator) -> SimulatorControl:
    """No revisions, bias or logged requests left over from another test."""
    control = fast_simulator.control
    control.reset()
    control.configure(range_bias_cnt=0)
    return control


@pytest.fixture
def hook(
    fast_simulator: RunningSimulator, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> SmscHook:
    conn = {"conn_type": "smsc", "host": fast_simulator.url, "login": ACCOUNT, "password": PASSWORD}
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(conn))
    pacer = LedgerPacer(engine, ACCOUNT, limit=RateLimit(1000, timedelta(seconds=60)))
    return SmscHook(CONN_ID, pacer=pacer)


def load(hook: SmscHook, engine: Engine, day: date) -> None:
    """Fetch one day (paced) and replace what is stored for it, as the load task does."""
    reply = hook.fetch_stat(day, day)
    Warehouse(engine).load_day(
        account=ACCOUNT,
        series="main",
        day=day,
        rows=reply.rows,
        raw_reply=reply.raw,
        reply_format=reply.fmt,
    )


@dataclass(frozen=True)
class Reconciled:
    first: MonthCheck
    second: MonthCheck | None
    refetched_days: list[date]

    @property
    def matched(self) -> bool:
        return (self.second or self.first).matched


def reconcile(hook: SmscHook, engine: Engine, month: date = MONTH) -> Reconciled:
    """What the DAG does: the first check, the re-fetch of every day, the verification."""
    first = check_month(
        engine=engine,
        account=ACCOUNT,
        series="main",
        month=month,
        fetch_month=lambda first, last: hook.fetch_stat(first, last).rows,
    )
    if first.status != "differs":
        return Reconciled(first, None, [])
    days = month_days(month)
    for day in days:
        load(hook, engine, day)
    return Reconciled(first, verify_month(engine, first.check_id, refetched=len(days)), days)


def load_october(hook: SmscHook, engine: Engine, control: SimulatorControl) -> None:
    for day in OCTOBER:
        load(hook, engine, day)
    control.clear_requests()


def get_stat_calls(control: SimulatorControl) -> list[dict[str, Any]]:
    """Successful get_stat requests since the log was last cleared, oldest first."""
    return [r for r in control.requests() if r["outcome"] == "ok"]


def is_month_call(request: dict[str, Any]) -> bool:
    return bool(request["start"] != request["end"])


def ledger_windows(engine: Engine) -> list[tuple[date, date]]:
    with engine.connect() as conn:
        return [
            (start, end)
            for start, end in conn.execute(
                text("SELECT window_start, window_end FROM smsc.api_calls ORDER BY id")
            )
        ]


def reconciliation_rows(warehouse_url: str) -> list[Any]:
    return query(
        warehouse_url,
        "SELECT attempt, login, matched, api_cnt, stored_cnt, cnt_diff, month, series"
        " FROM smsc.reconciliation ORDER BY attempt, login",
    )


def month_truth(control: SimulatorControl) -> dict[str, int]:
    return {r["login"]: r["cnt"] for r in control.truth(ACCOUNT, FIRST, LAST)}


def test_matching_month_makes_one_call_and_records_attempt_1(
    hook: SmscHook, engine: Engine, control: SimulatorControl, warehouse_url: str
) -> None:
    load_october(hook, engine, control)

    result = reconcile(hook, engine)

    assert result.matched
    assert result.first.month == MONTH
    assert result.refetched_days == []
    assert {c.login: c.api.cnt for c in result.first.checks} == month_truth(control)
    calls = get_stat_calls(control)
    assert len(calls) == 1, f"expected only the month call, got {calls}"
    assert is_month_call(calls[0])
    windows = ledger_windows(engine)
    assert len(windows) == 32
    assert windows[-1] == (FIRST, LAST), "the month call goes through the ledger"
    assert [w for w in windows if w[0] != w[1]] == [(FIRST, LAST)]
    rows = reconciliation_rows(warehouse_url)
    assert len(rows) == len(result.first.checks) >= 2
    assert {r.attempt for r in rows} == {1}
    assert all(r.matched and r.cnt_diff == 0 for r in rows)
    assert {(r.month, r.series) for r in rows} == {(MONTH, "main")}


def test_revised_day_is_found_refetched_and_then_matches(
    hook: SmscHook, engine: Engine, control: SimulatorControl, warehouse_url: str
) -> None:
    load_october(hook, engine, control)
    revised = date(2026, 10, 7)
    (before,) = [r for r in control.truth(ACCOUNT, revised, revised) if r["login"] == ACCOUNT]
    control.revise(ACCOUNT, ACCOUNT, revised, cnt=before["cnt"] + 7)
    assert stored_rows(warehouse_url, revised) != truth_rows(control, revised)

    result = reconcile(hook, engine)

    assert result.matched
    assert result.refetched_days == OCTOBER
    calls = get_stat_calls(control)
    assert is_month_call(calls[0])
    assert not any(is_month_call(c) for c in calls[1:]), "the month is fetched once"
    assert len(calls) == 1 + len(OCTOBER), "every day of the month is re-fetched once"
    rows = reconciliation_rows(warehouse_url)
    first = [r for r in rows if r.attempt == 1]
    second = [r for r in rows if r.attempt == 2]
    assert [(r.login, r.cnt_diff) for r in first if not r.matched] == [(ACCOUNT, 7)]
    assert len(second) == len(first)
    assert all(r.matched for r in second)
    assert stored_rows(warehouse_url, revised) == truth_rows(control, revised)
    assert (ACCOUNT, before["cnt"] + 7) in {row[:2] for row in stored_rows(warehouse_url, revised)}


def test_persistent_difference_raises_with_the_numbers_and_records_both_attempts(
    hook: SmscHook, engine: Engine, control: SimulatorControl, warehouse_url: str
) -> None:
    load_october(hook, engine, control)
    stored_cnt = month_truth(control)[ACCOUNT]
    control.configure(range_bias_cnt=5)

    with pytest.raises(SmscReconciliationError) as caught:
        reconcile(hook, engine)

    message = str(caught.value)
    assert f"{ACCOUNT}: cnt {stored_cnt + 5} vs stored {stored_cnt}" in message
    assert "demo/main 2026-10" in message
    assert "re-fetching 31 of them" in message
    assert isinstance(caught.value, SmscFatalError), "a retry would only repeat 32 calls"
    rows = reconciliation_rows(warehouse_url)
    unmatched = [(r.attempt, r.login, r.api_cnt, r.stored_cnt) for r in rows if not r.matched]
    assert unmatched == [
        (1, ACCOUNT, stored_cnt + 5, stored_cnt),
        (2, ACCOUNT, stored_cnt + 5, stored_cnt),
    ]
    assert {r.attempt for r in rows} == {1, 2}
    calls = get_stat_calls(control)
    assert len(calls) == 1 + len(OCTOBER)
    assert sum(is_month_call(c) for c in calls) == 1


@pytest.mark.parametrize(
    "months_ahead", [pytest.param(0, id="current-month"), pytest.param(1, id="next-month")]
)
def test_month_not_ended_is_refused_before_any_call(
    hook: SmscHook,
    engine: Engine,
    control: SimulatorControl,
    warehouse_url: str,
    months_ahead: int,
) -> None:
    # Computed when the test runs, not at collection: the month may turn in between.
    month = latest_begun_day().replace(day=1)
    for _ in range(months_ahead):
        month = (month + timedelta(days=40)).replace(day=1)
    with pytest.raises(SmscConfigError, match=rf"month {month:%Y-%m} has not ended yet"):
        reconcile(hook, engine, month)

    assert control.requests() == []
    assert ledger_windows(engine) == []
    assert reconciliation_rows(warehouse_url) == []


def reconciliation_checks(warehouse_url: str) -> list[Any]:
    return query(
        warehouse_url,
        "SELECT attempt, status, missing_days FROM smsc.reconciliation_check ORDER BY id",
    )


def test_incomplete_month_makes_no_call_and_is_recorded_as_incomplete(
    hook: SmscHook, engine: Engine, control: SimulatorControl, warehouse_url: str
) -> None:
    never_loaded = [date(2026, 10, 3), date(2026, 10, 30), date(2026, 10, 31)]
    for day in OCTOBER:
        if day not in never_loaded:
            load(hook, engine, day)
    control.clear_requests()

    result = reconcile(hook, engine)

    assert result.first.status == "incomplete"
    assert result.first.missing == never_loaded
    assert result.refetched_days == []
    assert control.requests() == [], "an incomplete month costs no API call"
    assert reconciliation_checks(warehouse_url) == [(1, "incomplete", never_loaded)]
    assert reconciliation_rows(warehouse_url) == []
    status = query(
        warehouse_url,
        "SELECT month, login, status, missing_day_count, missing_days, matched"
        " FROM smsc.reconciliation_status",
    )
    assert status == [(MONTH, None, "incomplete", 3, never_loaded, None)]


def test_status_view_shows_the_latest_check_of_each_month(
    hook: SmscHook, engine: Engine, control: SimulatorControl, warehouse_url: str
) -> None:
    """An incomplete check first, then (days filled) a matching one replaces it in the view."""
    for day in OCTOBER[:-1]:
        load(hook, engine, day)
    assert reconcile(hook, engine).first.status == "incomplete"
    load(hook, engine, OCTOBER[-1])

    assert reconcile(hook, engine).matched

    status = query(
        warehouse_url,
        "SELECT login, status, missing_day_count, matched FROM smsc.reconciliation_status"
        " ORDER BY login",
    )
    assert {row.login for row in status} == set(month_truth(control))
    assert {(row.status, row.missing_day_count, row.matched) for row in status} == {
        ("matched", 0, True)
    }
    assert [c.status for c in reconciliation_checks(warehouse_url)] == ["incomplete", "matched"]


def test_a_day_fetched_empty_counts_as_loaded(
    hook: SmscHook, engine: Engine, control: SimulatorControl, warehouse_url: str
) -> None:
    """Fetched-and-empty is not missing: only never-fetched days make a month incomplete."""
    quiet = date(2026, 10, 12)
    for day in OCTOBER:
        if day != quiet:
            load(hook, engine, day)
    Warehouse(engine).load_day(
        account=ACCOUNT, series="main", day=quiet, rows=[], raw_reply=b"[]", reply_format=3
    )
    control.clear_requests()

    first = check_month(
        engine=engine,
        account=ACCOUNT,
        series="main",
        month=MONTH,
        fetch_month=lambda a, b: hook.fetch_stat(a, b).rows,
    )

    # SMSC's month includes the 12th's messages, which the empty reply did not store.
    assert (first.status, first.missing) == ("differs", [])
    assert len(get_stat_calls(control)) == 1
    assert reconciliation_checks(warehouse_url) == [(1, "differs", [])]
