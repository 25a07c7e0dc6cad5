"""Monthly reconciliation: SMSC's own month total against the sum of the stored days.

One paced ``get_stat`` call for the whole closed month. Equal per login → recorded as
matched. Different → every day of the month is re-fetched (paced, one call each) and
compared again with the same month reply; a difference that persists raises
:class:`SmscReconciliationError` with the numbers.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy import Engine, text

from smsc_hook.exceptions import SmscConfigError, SmscFatalError
from smsc_hook.models import StatRow
from smsc_hook.warehouse import latest_begun_day

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


def record(
    engine: Engine,
    account: str,
    series: str,
    month: date,
    attempt: int,
    checks: Iterable[LoginCheck],
) -> None:
    with engine.begin() as conn:
        for check in checks:
            conn.execute(
                text(
                    "INSERT INTO smsc.reconciliation (account, series, month, login, attempt,"
                    " api_cnt, stored_cnt, api_credit, stored_credit, api_debit, stored_debit)"
                    " VALUES (:account, :series, :month, :login, :attempt, :api_cnt,"
                    " :stored_cnt, :api_credit, :stored_credit, :api_debit, :stored_debit)"
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
                },
            )


@dataclass(frozen=True)
class ReconciliationResult:
    month: date
    checks: list[LoginCheck]
    refetched_days: list[date]

    @property
    def matched(self) -> bool:
        return all(check.matched for check in self.checks)


def reconcile_month(
    *,
    engine: Engine,
    account: str,
    series: str,
    month: date,
    fetch_month: Callable[[date, date], Sequence[StatRow]],
    refetch_day: Callable[[date], object],
    today: date | None = None,
) -> ReconciliationResult:
    """Compare, record, re-fetch on a difference, compare again; raise if it persists.

    ``fetch_month`` makes the one month-long call; ``refetch_day`` fetches and stores one
    day (both paced by the caller's hook). The month must have ended by ``today`` (the
    account's local date; default: the date in the earliest time zone, UTC+14).
    """
    first, last = month_bounds(month)
    if last >= (today or latest_begun_day()):
        raise SmscConfigError(f"month {first:%Y-%m} has not ended yet: nothing to reconcile")
    api_rows = fetch_month(first, last)
    checks = compare(api_rows, stored_totals(engine, account, series, first))
    record(engine, account, series, first, 1, checks)
    if all(check.matched for check in checks):
        return ReconciliationResult(first, checks, [])
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    for day in days:
        refetch_day(day)
    checks = compare(api_rows, stored_totals(engine, account, series, first))
    record(engine, account, series, first, 2, checks)
    result = ReconciliationResult(first, checks, days)
    if not result.matched:
        differing = "; ".join(c.describe() for c in checks if not c.matched)
        raise SmscReconciliationError(
            f"{account}/{series} {first:%Y-%m}: the month total from SMSC still differs from "
            f"the stored days after re-fetching all {len(days)} of them: {differing}"
        )
    return result
