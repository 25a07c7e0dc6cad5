"""Records that flow from the SMSC reply to the warehouse."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

_CURRENCY = re.compile(r"[A-Z]{3}")


@dataclass(frozen=True, slots=True)
class StatRow:
    """One login's statistics for a window, exactly as SMSC reported them.

    ``credit`` and ``debit`` are kept as SMSC names them; the doc's glosses disagree
    between languages, so both are stored and neither is reinterpreted.
    """

    login: str
    cnt: int
    credit: Decimal
    debit: Decimal
    currency: str

    def __post_init__(self) -> None:
        if not isinstance(self.login, str) or not self.login.strip():
            raise ValueError(f"login must be a non-empty string, got {self.login!r}")
        if isinstance(self.cnt, bool) or not isinstance(self.cnt, int) or self.cnt < 0:
            raise ValueError(f"cnt must be an integer >= 0, got {self.cnt!r}")
        for name in ("credit", "debit"):
            value = getattr(self, name)
            if not isinstance(value, Decimal) or not value.is_finite():
                raise ValueError(f"{name} must be a finite Decimal, got {value!r}")
        if not isinstance(self.currency, str) or not _CURRENCY.fullmatch(self.currency):
            raise ValueError(f"currency must be three capital letters, got {self.currency!r}")
