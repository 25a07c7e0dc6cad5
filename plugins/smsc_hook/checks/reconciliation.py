"""Monthly reconciliation: SMSC's own month total against the sum of the stored days.

A closed month with a day never loaded is recorded as *incomplete*, with no call. A
complete one costs one paced ``get_stat`` call for the whole month: equal per login →
matched; different → the DAG re-fetches every day of the month (one mapped, paced task per
day, below the daily loads in priority) and :func:`verify_month` compares again with the
recorded month reply; a difference that persists raises :class:`SmscReconciliationError`
with the numbers.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy import Engine, text

from smsc_hook.client.exceptions import SmscConfigError, SmscFatalError
from smsc_hook.client.models import StatRow
from smsc_hook.observability import metrics
from smsc_hook.warehouse.writer import Warehouse, latest_begun_day

ZERO = Decimal(0)


class SmscReconciliationError(SmscFatalError):
    """The month total from SMSC still differs from the stored days after a re-fetch."""


@dataclass(frozen=True)
class Totals:
    cnt: int = 0
    credit: Decimal = ZERO
    debit: Decimal = ZERO


@dataclass(frozen=True)
class LoginCheck:
    """One login's month: what SMSC says and what the warehouse sums to."""

    login: str
    api: Totals
    stored: Totals

    @property
    def matched(self) -> bool:
        return self.api == self.stored

    def describe(self) -> str:
        return (
            f"{self.login}: cnt {self.api.cnt} vs stored {self.stored.cnt}, "
            f"credit {self.api.credit} vs {self.stored.credit}, "
            f"debit {self.api.debit} vs {self.stored.debit}"
        )


def month_bounds(month: date) -> tuple[date, date]:
    """First and last day of ``month``'s calendar month."""
    first = month.replace(day=1)
    return first, first.replace(day=calendar.monthrange(first.year, first.month)[1])


def months_to_reconcile(day: date, lookback_days: int) -> list[date]:
    """Months whose check falls on the scheduled run for ``day``.

    A month is checked when it closes (the run loading its last day) and again when its
    last day leaves the lookback window, after the late re-fetches (one check if 0).
    """
    months = []
    for delay in sorted({0, lookback_days}):
        closed = day - timedelta(days=delay)
        if closed == month_bounds(closed)[1]:
            months.append(closed.replace(day=1))
    return months


def compare(api_rows: Sequence[StatRow], stored: dict[str, Totals]) -> list[LoginCheck]:
    """Per-login comparison; a login missing on one side counts as zero there."""
    api = {row.login: Totals(row.cnt, row.credit, row.debit) for row in api_rows}
    return [
        LoginCheck(login, api.get(login, Totals()), stored.get(login, Totals()))
        for login in sorted(set(api) | set(stored))
    ]


def stored_totals(engine: Engine, account: str, series: str, month: date) -> dict[str, Totals]:
    first, last = month_bounds(month)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT login, sum(cnt), sum(credit), sum(debit) FROM smsc.stat_day"
                " WHERE account = :account AND series = :series"
                " AND stat_date BETWEEN :first AND :last GROUP BY login"
            ),
            {"account": account, "series": series, "first": first, "last": last},
        ).all()
    return {login: Totals(int(cnt), credit, debit) for login, cnt, credit, debit in rows}


def month_days(month: date) -> list[date]:
    first, last = month_bounds(month)
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def missing_days(engine: Engine, account: str, series: str, month: date) -> list[date]:
    """Days of ``month`` that no load covered (fetched-and-empty days count as loaded)."""
    first, last = month_bounds(month)
    loaded = Warehouse(engine).loaded_days(account, series, first, last)
    return [day for day in month_days(first) if day not in loaded]


def record(
    engine: Engine,
    account: str,
    series: str,
    month: date,
    attempt: int,
    checks: Iterable[LoginCheck],
    missing: Sequence[date] = (),
) -> int:
    """Store one check of ``month`` and its login rows; return the check's id."""
    checks = list(checks)
    if missing:
        status = "incomplete"
    else:
        status = "matched" if all(check.matched for check in checks) else "differs"
    with engine.begin() as conn:
        check_id: int = conn.execute(
            text(
                "INSERT INTO smsc.reconciliation_check"
                " (account, series, month, attempt, status, missing_days)"
                " VALUES (:account, :series, :month, :attempt, :status,"
                " CAST(:missing AS date[])) RETURNING id"
            ),
            {
                "account": account,
                "series": series,
                "month": month,
                "attempt": attempt,
                "status": status,
                "missing": list(missing),
            },
        ).scalar_one()
        for check in checks:
            conn.execute(
                text(
                    "INSERT INTO smsc.reconciliation (account, series, month, login, attempt,"
                    " api_cnt, stored_cnt, api_credit, stored_credit, api_debit, stored_debit,"
                    " check_id)"
                    " VALUES (:account, :series, :month, :login, :attempt, :api_cnt,"
                    " :stored_cnt, :api_credit, :stored_credit, :api_debit, :stored_debit,"
                    " :check_id)"
                ),
                {
                    "account": account,
                    "series": series,
                    "month": month,
                    "login": check.login,
                    "attempt": attempt,
                    "api_cnt": check.api.cnt,
                    "stored_cnt": check.stored.cnt,
                    "api_credit": check.api.credit,
                    "stored_credit": check.stored.credit,
                    "api_debit": check.api.debit,
                    "stored_debit": check.stored.debit,
                    "check_id": check_id,
                },
            )
    return check_id


@dataclass(frozen=True)
class MonthCheck:
    """One recorded check of a month: what was found and what must happen next."""

    check_id: int
    month: date
    status: str  # incomplete | matched | differs
    checks: list[LoginCheck]
    missing: list[date]

    @property
    def matched(self) -> bool:
        return self.status == "matched"

    def differing(self) -> str:
        return "; ".join(check.describe() for check in self.checks if not check.matched)


def check_month(
    *,
    engine: Engine,
    account: str,
    series: str,
    month: date,
    fetch_month: Callable[[date, date], Sequence[StatRow]],
    today: date | None = None,
) -> MonthCheck:
    """First check of a closed month: incomplete (no call), matched or differs (one call).

    A month with days never loaded is recorded as ``incomplete`` without asking SMSC: its
    total cannot match, and filling the gaps is the gap check's job, not a hidden
    month-long re-fetch. ``fetch_month`` makes the one month-long call (paced by the
    caller's hook). The month must have ended by ``today`` (the account's local date;
    default: the date in the earliest time zone, UTC+14).
    """
    first, last = month_bounds(month)
    if last >= (today or latest_begun_day()):
        raise SmscConfigError(f"month {first:%Y-%m} has not ended yet: nothing to reconcile")
    missing = missing_days(engine, account, series, first)
    if missing:
        check_id = record(engine, account, series, first, 1, [], missing)
        metrics.reconciliation(account, series, "incomplete", 0)
        return MonthCheck(check_id, first, "incomplete", [], missing)
    api_rows = fetch_month(first, last)
    checks = compare(api_rows, stored_totals(engine, account, series, first))
    check_id = record(engine, account, series, first, 1, checks)
    status = "matched" if all(check.matched for check in checks) else "differs"
    metrics.reconciliation(account, series, status, sum(not c.matched for c in checks))
    return MonthCheck(check_id, first, status, checks, [])


def api_totals(engine: Engine, check_id: int) -> tuple[str, str, date, dict[str, Totals]]:
    """Account, series, month and SMSC's per-login totals as recorded by a first check."""
    with engine.connect() as conn:
        head = conn.execute(
            text(
                "SELECT account, series, month, attempt, status FROM smsc.reconciliation_check"
                " WHERE id = :id"
            ),
            {"id": check_id},
        ).one_or_none()
        if head is None:
            raise SmscConfigError(f"reconciliation check {check_id} does not exist")
        account, series, month, attempt, status = head
        if attempt != 1 or status == "incomplete":
            raise SmscConfigError(
                f"reconciliation check {check_id} is attempt {attempt} ({status}): only a "
                "first check with SMSC's totals can be verified"
            )
        rows = conn.execute(
            text(
                "SELECT login, api_cnt, api_credit, api_debit FROM smsc.reconciliation"
                " WHERE check_id = :id"
            ),
            {"id": check_id},
        ).all()
    return account, series, month, {login: Totals(int(c), cr, db) for login, c, cr, db in rows}


def verify_month(engine: Engine, check_id: int, refetched: int) -> MonthCheck:
    """Second check after the re-fetch: SMSC's recorded month total against the days now
    stored (no API call). Raises :class:`SmscReconciliationError` if it still differs."""
    account, series, month, api = api_totals(engine, check_id)
    stored = stored_totals(engine, account, series, month)
    checks = [
        LoginCheck(login, api.get(login, Totals()), stored.get(login, Totals()))
        for login in sorted(set(api) | set(stored))
    ]
    missing = missing_days(engine, account, series, month)
    second_id = record(engine, account, series, month, 2, checks, missing)
    status = "incomplete" if missing else "matched" if all(c.matched for c in checks) else "differs"
    result = MonthCheck(second_id, month, status, checks, missing)
    metrics.reconciliation(account, series, status, sum(not c.matched for c in checks))
    if not result.matched:
        raise SmscReconciliationError(
            f"{account}/{series} {month:%Y-%m}: the month total from SMSC still differs from "
            f"the stored days after re-fetching {refetched} of them: "
            f"{result.differing() or 'days missing: ' + ', '.join(map(str, missing))}"
        )
    return result
