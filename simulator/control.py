"""A small stdlib client for the simulator's ``/_control/`` API, for tests and tooling."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from datetime import date
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode


class SimulatorControlError(RuntimeError):
    """The control API refused a call (bad input or unknown endpoint)."""


class SimulatorControl:
    """Drive a running simulator: faults, config, revisions, truth and the request log."""

    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def _call(self, method: str, name: str, payload: Any = None, query: str = "") -> Any:
        url = f"{self.base_url}/_control/{name}" + (f"?{query}" if query else "")
        data = None if payload is None else json.dumps(payload).encode("utf-8")
        request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 (checked)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise SimulatorControlError(f"{method} {name}: {exc.code} {exc.read()!r}") from exc

    def health(self) -> bool:
        """True when the simulator answers."""
        return bool(self._call("GET", "health").get("ok"))

    def requests(self) -> list[dict[str, Any]]:
        """The request log (secrets already masked), oldest first."""
        result: list[dict[str, Any]] = self._call("GET", "requests")
        return result

    def clear_requests(self) -> None:
        """Empty the request log."""
        self._call("DELETE", "requests")

    def faults(self) -> list[dict[str, Any]]:
        """The pending fault queue with remaining counts."""
        result: list[dict[str, Any]] = self._call("GET", "faults")["faults"]
        return result

    def set_faults(self, faults: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Replace the fault queue, e.g. ``[{"kind": "error", "code": 9, "count": 2}]``."""
        result: list[dict[str, Any]] = self._call(
            "POST", "faults", {"faults": [dict(f) for f in faults]}
        )["faults"]
        return result

    def clear_faults(self) -> None:
        """Drop every pending fault."""
        self._call("DELETE", "faults")

    def configure(self, **settings: Any) -> dict[str, Any]:
        """Change time_scale, rate_limit, rate_window, today (ISO string/date/None),
        range_bias_cnt (added to the main login's cnt in multi-day replies) or dialect (the
        reply layout, one of ``simulator.config.DIALECTS``) live."""
        if isinstance(settings.get("today"), date):
            settings["today"] = settings["today"].isoformat()
        result: dict[str, Any] = self._call("POST", "config", settings)
        return result

    def config(self) -> dict[str, Any]:
        """The live tunables and the simulator's current "today"."""
        result: dict[str, Any] = self._call("GET", "config")
        return result

    def reset(self) -> None:
        """Clear rate limits, auth blocks, faults, the request log and revisions."""
        self._call("POST", "reset")

    def revise(
        self,
        account: str,
        login: str,
        day: date,
        *,
        balance2: bool = False,
        cnt: int | None = None,
        credit: Decimal | str | None = None,
        debit: Decimal | str | None = None,
        absent: bool = False,
    ) -> None:
        """Rewrite one past day's figures (unset ones keep their value), or make it absent."""
        payload: dict[str, Any] = {
            "account": account,
            "login": login,
            "day": day.isoformat(),
            "balance2": balance2,
            "absent": absent,
        }
        for name, value in (("cnt", cnt), ("credit", credit), ("debit", debit)):
            if value is not None:
                payload[name] = value if name == "cnt" else str(value)
        self._call("POST", "revise", payload)

    def truth(
        self,
        account: str,
        start: date,
        end: date,
        balance2: bool = False,
        mycur: bool = True,
    ) -> list[dict[str, Any]]:
        """Rows get_stat would answer now, amounts as Decimal like ``truth.window_rows``."""
        query = urlencode(
            {
                "account": account,
                "start": start.isoformat(),
                "end": end.isoformat(),
                "balance2": int(balance2),
                "mycur": int(mycur),
            }
        )
        rows = self._call("GET", "truth", query=query)
        return [{**r, "credit": Decimal(r["credit"]), "debit": Decimal(r["debit"])} for r in rows]

    def subclients_truth(
        self,
        account: str,
        start: date,
        end: date,
        *,
        reseller: int = 0,
        hide_deleted: bool = False,
        mycur: bool = True,
    ) -> list[dict[str, Any]]:
        """Rows users.php?get_stat would answer now (one per subclient of that kind)."""
        query = urlencode(
            {
                "source": "subclients",
                "account": account,
                "start": start.isoformat(),
                "end": end.isoformat(),
                "reseller": int(reseller),
                "hide_deleted": int(hide_deleted),
                "mycur": int(mycur),
            }
        )
        rows = self._call("GET", "truth", query=query)
        return [{**r, "credit": Decimal(r["credit"]), "debit": Decimal(r["debit"])} for r in rows]
