"""Accounts and tunables of the simulator, with the defaults ``python -m simulator`` uses."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from simulator.faults import FaultSpec

#: Roubles-per-unit rates used for ``mycur=0``; fixed so replies stay reproducible.
RUR_RATES: dict[str, str] = {
    "RUB": "1",
    "RUR": "1",
    "KZT": "0.19",
    "UAH": "2.25",
    "USD": "92.50",
    "EUR": "100.40",
}

#: Reply layouts the simulator can speak. No real get_stat reply is published, so each is
#: one plausible reading of SMSC's sibling methods; ``arrays`` is the default and today's.
DIALECTS = ("arrays", "single-object", "flat-xml", "strings", "numbers", "omit-zero")
DEFAULT_DIALECT = "arrays"


def check_dialect(dialect: str) -> str:
    """``dialect`` if the simulator knows it; ``ValueError`` naming the known ones otherwise."""
    if dialect not in DIALECTS:
        raise ValueError(f"unknown dialect {dialect!r}; known: {', '.join(DIALECTS)}")
    return dialect


@dataclass(frozen=True)
class Account:
    """One SMSC account: its credentials, the subclients it sees and its own currency."""

    login: str
    password: str
    apikey: str | None = None
    subclients: tuple[str, ...] = ()
    currency: str = "RUB"
    #: No traffic before this day; it also bounds the work of open-ended windows.
    opened: date = date(2000, 1, 1)
    #: Whether ``users.php`` serves this account; None: when it has subclients.
    reseller: bool | None = None
    #: Subclients with their own balance (``users.php`` ``reseller=1``); the others use the
    #: main account's balance (``reseller=0``).
    independent: tuple[str, ...] = ()
    #: Deleted subclients: their past traffic stays, ``hide_deleted=1`` leaves them out.
    deleted: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.login or not self.password:
            raise ValueError("an account needs a login and a password")
        if self.currency not in RUR_RATES:
            raise ValueError(f"unknown currency {self.currency!r}; known: {sorted(RUR_RATES)}")
        if self.login in self.subclients or len(set(self.subclients)) != len(self.subclients):
            raise ValueError(f"subclients of {self.login!r} must be unique and not the account")
        for name in ("independent", "deleted"):
            stray = sorted(set(getattr(self, name)) - set(self.subclients))
            if stray:
                raise ValueError(f"{name} of {self.login!r} must be subclients, not {stray}")
        if self.reseller is False and self.subclients:
            raise ValueError(f"{self.login!r} has subclients, so it is a reseller")

    @property
    def is_reseller(self) -> bool:
        """Whether ``users.php?get_stat`` answers this account (else an error)."""
        return bool(self.subclients) if self.reseller is None else self.reseller

    @property
    def logins(self) -> tuple[str, ...]:
        """The main login first, then the subclients, as replies order them."""
        return (self.login, *sorted(self.subclients))

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Account:
        """Build an account from the JSON shape used by ``--accounts``."""
        known = {"login", "password", "apikey", "subclients", "currency", "opened"}
        known |= {"reseller", "independent", "deleted"}
        unknown = set(obj) - known
        if unknown:
            raise ValueError(f"unknown account keys: {sorted(unknown)}")
        opened = obj.get("opened")
        return cls(
            login=str(obj["login"]),
            password=str(obj["password"]),
            apikey=None if obj.get("apikey") is None else str(obj["apikey"]),
            subclients=tuple(str(s) for s in obj.get("subclients", ())),
            currency=str(obj.get("currency", "RUB")),
            opened=date.fromisoformat(opened) if opened else date(2000, 1, 1),
            reseller=None if obj.get("reseller") is None else bool(obj["reseller"]),
            independent=tuple(str(s) for s in obj.get("independent", ())),
            deleted=tuple(str(s) for s in obj.get("deleted", ())),
        )


# Well-known demo credentials of a local fake, not secrets.
DEFAULT_ACCOUNTS: tuple[Account, ...] = (
    Account(
        login="demo",
        password="demo-password",  # noqa: S106
        apikey="demo-apikey",
        subclients=("demo-shop", "demo-news"),
        currency="RUB",
    ),
    Account(
        login="acme",
        password="acme-password",  # noqa: S106
        subclients=("acme-eu",),
        currency="KZT",
    ),
)


@dataclass
class SimulatorConfig:
    """Everything a simulator instance is started with; some fields change live."""

    accounts: tuple[Account, ...] = DEFAULT_ACCOUNTS
    seed: int = 1
    host: str = "127.0.0.1"
    port: int = 8765
    rate_limit: int = 3
    rate_window: float = 60.0
    time_scale: float = 1.0
    #: ``None`` means the current date in Europe/Moscow.
    today: date | None = None
    faults: list[FaultSpec] = field(default_factory=list)
    quiet: bool = False
    #: Added to the main login's cnt in replies covering more than one day: models an API
    #: whose month total disagrees with the sum of its days (for reconciliation tests).
    range_bias_cnt: int = 0
    #: Reply layout, one of ``DIALECTS``; changeable live through the control API.
    dialect: str = DEFAULT_DIALECT

    def __post_init__(self) -> None:
        check_dialect(self.dialect)
        logins = [a.login for a in self.accounts]
        if len(set(logins)) != len(logins):
            raise ValueError("account logins must be unique")
        keys = [a.apikey for a in self.accounts if a.apikey]
        if len(set(keys)) != len(keys):
            raise ValueError("apikeys must be unique")

    def account(self, login: str) -> Account:
        """The account with this main login; ``KeyError`` if there is none."""
        for acc in self.accounts:
            if acc.login == login:
                return acc
        raise KeyError(login)


def load_accounts(path: str | Path) -> tuple[Account, ...]:
    """Read accounts from a JSON file: a list of accounts or ``{"accounts": [...]}``."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    items = data["accounts"] if isinstance(data, dict) else data
    if not isinstance(items, list) or not items:
        raise ValueError(f"{path}: expected a non-empty list of accounts")
    return tuple(Account.from_json(item) for item in items)
