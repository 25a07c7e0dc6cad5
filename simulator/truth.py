"""Deterministic ground truth: what get_stat (get.php, and users.php for a reseller's
subclients) reports for any account, login, day and window.

Pure functions of (config, overrides, today) so tests can compute the expected rows
without asking the server. Daily figures come from SHA-256 of the seed and the key,
never from ``hash()``, so they are the same in every process and on every run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from typing import TypedDict
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from simulator.config import RUR_RATES, Account, SimulatorConfig

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
#: What ``mycur=0`` reports roubles as; the real server says RUR there.
RUR = "RUR"

try:
    _MOSCOW: timezone | ZoneInfo = ZoneInfo("Europe/Moscow")
except ZoneInfoNotFoundError:  # no tz database: Moscow has had no DST since 2014
    _MOSCOW = timezone(timedelta(hours=3))


def moscow_today() -> date:
    """Today's date in Europe/Moscow, the simulator's default idea of "today"."""
    return datetime.now(UTC).astimezone(_MOSCOW).date()


class Row(TypedDict):
    """One row of a reply; amounts are Decimals with exactly two places."""

    login: str
    cnt: int
    credit: Decimal
    debit: Decimal
    currency: str


@dataclass(frozen=True)
class DayFigures:
    """One login's traffic on one day, in the account's own currency."""

    cnt: int
    credit: Decimal
    debit: Decimal


NO_TRAFFIC = DayFigures(0, ZERO, ZERO)


@dataclass(frozen=True)
class Override:
    """A revision of one past day: new figures (unset ones keep the generated value) or absent."""

    absent: bool = False
    cnt: int | None = None
    credit: Decimal | None = None
    debit: Decimal | None = None

    def __post_init__(self) -> None:
        if self.cnt is not None and self.cnt < 0:
            raise ValueError("cnt must be >= 0")
        for amount in (self.credit, self.debit):
            if amount is not None and (not amount.is_finite() or amount < 0):
                raise ValueError("amounts must be finite and >= 0")

    def apply(self, base: DayFigures) -> DayFigures:
        """The day's figures after this revision."""
        if self.absent:
            return NO_TRAFFIC
        return DayFigures(
            cnt=base.cnt if self.cnt is None else self.cnt,
            credit=base.credit if self.credit is None else self.credit.quantize(CENT),
            debit=base.debit if self.debit is None else self.debit.quantize(CENT),
        )


#: (account, login, day, balance2) -> revision.
OverrideKey = tuple[str, str, date, bool]
Overrides = Mapping[OverrideKey, Override]


def _digest(seed: int, *parts: object) -> bytes:
    text = "|".join([str(seed), *(str(p) for p in parts)])
    return hashlib.sha256(text.encode("utf-8")).digest()


def _draws(seed: int, *parts: object) -> tuple[int, int, int, int]:
    """Four independent 64-bit numbers from one hash."""
    d = _digest(seed, *parts)
    a, b, c, e = (int.from_bytes(d[i : i + 8], "big") for i in range(0, 32, 8))
    return a, b, c, e


def _salt(balance2: bool) -> str:
    return "balance2" if balance2 else "main"


def price(seed: int, account: str, login: str, balance2: bool) -> Decimal:
    """The login's fixed price per message, 1.50 to 3.50."""
    cents = 150 + _draws(seed, "price", _salt(balance2), account, login)[0] % 201
    return Decimal(cents) / 100


@lru_cache(maxsize=262_144)
def generated_day(
    seed: int, account: str, login: str, is_main: bool, day: date, balance2: bool
) -> DayFigures:
    """The unrevised figures of one login-day, ignoring "today" and the opening date."""
    active, cnt_draw, refund_draw, refund_n = _draws(
        seed, "day", _salt(balance2), account, login, day.isoformat()
    )
    if balance2:  # the electronic balance is used rarely and for little
        is_active = active % (2 if is_main else 4) == 0
        cnt = cnt_draw % 41
    else:
        is_active = active % (6 if is_main else 3) != 0
        cnt = cnt_draw % 401
    if not is_active or cnt == 0:
        return NO_TRAFFIC
    unit = price(seed, account, login, balance2)
    debit = ZERO
    if refund_draw % 8 == 0:  # a few undelivered messages refunded
        debit = (unit * (1 + refund_n % min(cnt, 5))).quantize(CENT)
    return DayFigures(cnt, (unit * cnt).quantize(CENT), debit)


def day_figures(
    config: SimulatorConfig,
    account: Account,
    login: str,
    day: date,
    balance2: bool,
    today: date,
    overrides: Overrides,
) -> DayFigures:
    """One login-day as the server sees it now, in the account's own currency."""
    if day > today:
        return NO_TRAFFIC
    base = NO_TRAFFIC
    if day >= account.opened:
        base = generated_day(
            config.seed, account.login, login, login == account.login, day, balance2
        )
    revision = overrides.get((account.login, login, day, balance2))
    return revision.apply(base) if revision else base


def convert(amount: Decimal, currency: str, mycur: bool) -> Decimal:
    """An amount as the reply shows it: own currency, or roubles at the fixed rate."""
    if mycur:
        return amount
    return (amount * Decimal(RUR_RATES[currency])).quantize(CENT, rounding=ROUND_HALF_UP)


def window_rows(
    config: SimulatorConfig,
    account: str,
    start: date,
    end: date,
    balance2: bool = False,
    mycur: bool = True,
    *,
    today: date | None = None,
    overrides: Overrides | None = None,
    everyone: bool = False,
) -> list[Row]:
    """The rows get_stat answers for ``start..end`` (inclusive), main login first.

    Each day is converted and rounded on its own before summing, so a window's total is
    exactly the sum of its days' totals. Subclients without messages in the window are
    left out (``everyone``: kept); the main login is always there.
    """
    acc = config.account(account)
    today = today or config.today or moscow_today()
    overrides = overrides or {}
    currency = acc.currency if mycur else RUR
    last = min(end, today)
    rows: list[Row] = []
    for login in acc.logins:
        days = set(_days(max(start, acc.opened), last))
        days.update(
            d
            for (a, lg, d, b2) in overrides
            if a == acc.login and lg == login and b2 == balance2 and start <= d <= last
        )
        cnt, credit, debit = 0, ZERO, ZERO
        for day in days:
            fig = day_figures(config, acc, login, day, balance2, today, overrides)
            cnt += fig.cnt
            credit += convert(fig.credit, acc.currency, mycur)
            debit += convert(fig.debit, acc.currency, mycur)
        if everyone or login == acc.login or cnt > 0:
            rows.append(Row(login=login, cnt=cnt, credit=credit, debit=debit, currency=currency))
    return rows


def subclient_id(seed: int, account: str, login: str) -> int:
    """The subclient's fixed ``user_id`` (an extra column of users.php rows), 6 digits."""
    return 100_000 + _draws(seed, "user_id", account, login)[0] % 900_000


def subclients_of(acc: Account, reseller: int, hide_deleted: bool) -> tuple[str, ...]:
    """The subclients users.php lists: of the balance kind asked for, deleted ones unless hidden."""
    independent = set(acc.independent)
    return tuple(
        login
        for login in sorted(acc.subclients)
        if (login in independent) == bool(reseller) and not (hide_deleted and login in acc.deleted)
    )


def subclient_rows(
    config: SimulatorConfig,
    account: str,
    start: date,
    end: date,
    *,
    reseller: int = 0,
    hide_deleted: bool = False,
    balance2: bool = False,
    mycur: bool = True,
    user: str | None = None,
    today: date | None = None,
    overrides: Overrides | None = None,
) -> list[Row]:
    """The rows users.php?get_stat answers for ``start..end``: one per subclient, by login.

    Each subclient's figures are the ones get.php reports for it (the same truth, the
    same revisions); unlike get.php, every listed subclient has a row, traffic or not.
    """
    acc = config.account(account)
    logins = subclients_of(acc, reseller, hide_deleted)
    if user is not None:
        logins = tuple(login for login in logins if login == user)
    rows = window_rows(
        config,
        account,
        start,
        end,
        balance2,
        mycur,
        today=today,
        overrides=overrides,
        everyone=True,
    )
    by_login = {row["login"]: row for row in rows}
    return [by_login[login] for login in logins]


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]
