"""Airflow hook for SMSC's ``get_stat`` method: the only module that speaks HTTP."""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cached_property
from typing import Any, ClassVar, Protocol

import requests
from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException

from smsc_hook.connection import SmscSettings, settings_from_connection
from smsc_hook.exceptions import (
    SmscApiError,
    SmscConfigError,
    SmscError,
    SmscReplyError,
    SmscTransportError,
)
from smsc_hook.models import StatRow
from smsc_hook.parsing import parse_stat_reply

API_PATH = "/sys/get.php"
USER_AGENT = "smsc-airflow-provider/0.1"
REDACTED = "***"


@dataclass(frozen=True)
class StatReply:
    """A parsed reply plus the exact bytes received (secrets redacted) for the archive."""

    rows: list[StatRow]
    raw: bytes
    fmt: int
    base_url: str
    start: date
    end: date
    elapsed: float

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()


class CallTicket(Protocol):
    """A reserved API call; told how it ended so the ledger can record it."""

    def finish(self, outcome: str, error_code: int | None = None) -> None: ...


class CallPacer(Protocol):
    """Grants permission for each HTTP attempt, so callers stay under the API's rate limit."""

    def reserve(self, start: date, end: date, base_url: str) -> CallTicket: ...


class _NoTicket:
    def finish(self, outcome: str, error_code: int | None = None) -> None:
        return None


class _Unpaced:
    def reserve(self, start: date, end: date, base_url: str) -> CallTicket:
        return _NoTicket()


def _outcome(exc: BaseException | None) -> tuple[str, int | None]:
    if exc is None:
        return "ok", None
    if isinstance(exc, SmscApiError):
        return "api_error", exc.code
    if isinstance(exc, SmscReplyError):
        return "bad_reply", None
    if isinstance(exc, SmscTransportError):
        return "transport_error", None
    return "client_error", None


class SmscHook(BaseHook):
    """Fetch sending statistics from SMSC.

    Credentials travel only in a POST body; reserve hosts are tried on transport
    faults only, never after an API error (a second host would count as another
    request against the same rate limit and auth-error budget).

    :param smsc_conn_id: Airflow connection of type ``smsc``.
    :param pacer: grants each HTTP attempt a slot under the rate limit (see ``pacing``).
    """

    conn_name_attr = "smsc_conn_id"
    default_conn_name = "smsc_default"
    conn_type = "smsc"
    hook_name = "SMSC"

    UI_FIELD_BEHAVIOUR: ClassVar[dict[str, Any]] = {
        "hidden_fields": ["schema", "port"],
        "relabeling": {"host": "Host or base URL", "login": "Login", "password": "Password"},
        "placeholders": {
            "host": "smsc.ru (or https://smscentre.com, http://127.0.0.1:8765 for the simulator)",
            "login": "SMSC account login",
            "password": "SMSC account password",
            "extra": '{"fmt": 3, "mycur": true, "balance2": false, "timeout": 60, '
            '"reserve_hosts": ["www2.smsc.ru"], "apikey": ""}',
        },
    }

    def __init__(
        self,
        smsc_conn_id: str = default_conn_name,
        *,
        pacer: CallPacer | None = None,
        session: requests.Session | None = None,
    ) -> None:
        super().__init__()
        self.smsc_conn_id = smsc_conn_id
        self.pacer: CallPacer = pacer or _Unpaced()
        self._session = session

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return cls.UI_FIELD_BEHAVIOUR

    @cached_property
    def settings(self) -> SmscSettings:
        try:
            conn = self.get_connection(self.smsc_conn_id)
        except AirflowNotFoundException:
            # A config error, so the retry policy fails the task at once instead of
            # retrying a connection that cannot appear by itself (8 tries, 5 min apart).
            raise SmscConfigError(
                f"SMSC connection {self.smsc_conn_id!r} is not defined: add it (type smsc) "
                f"or set AIRFLOW_CONN_{self.smsc_conn_id.upper()}"
            ) from None
        return settings_from_connection(conn.host, conn.login, conn.password, conn.extra)

    @cached_property
    def session(self) -> requests.Session:
        session = self._session or requests.Session()
        session.headers["User-Agent"] = USER_AGENT
        session.verify = self.settings.ca_bundle or True
        return session

    def get_stat(self, start: date, end: date | None = None) -> list[StatRow]:
        """Rows per login for ``start``..``end`` inclusive (``end`` omitted: up to today)."""
        return self.fetch_stat(start, end).rows

    def fetch_stat(self, start: date, end: date | None = None) -> StatReply:
        """Like :meth:`get_stat`, also returning the raw reply for the archive."""
        if end is not None and end < start:
            raise ValueError(f"end {end.isoformat()} is before start {start.isoformat()}")
        settings = self.settings
        params = self._request_params(settings, start, end)
        last_fault: SmscTransportError | None = None
        for base in settings.base_urls:
            try:
                return self._attempt(base, params, settings, start, end or start)
            except SmscTransportError as fault:
                last_fault = fault
                self.log.warning("SMSC host %s failed: %s", base, fault)
        assert last_fault is not None
        raise SmscTransportError(
            f"all SMSC hosts failed ({', '.join(settings.base_urls)}); last: {last_fault}"
        ) from last_fault

    def test_connection(self) -> tuple[bool, str]:
        """One real call for yesterday's statistics: proves host, credentials and IP."""
        yesterday = datetime.now(UTC).date() - timedelta(days=1)
        try:
            rows = self.get_stat(yesterday)
        except SmscError as exc:
            return False, str(exc)
        return True, f"SMSC answered with {len(rows)} row(s)"

    @staticmethod
    def _request_params(settings: SmscSettings, start: date, end: date | None) -> dict[str, str]:
        params = {
            "get_stat": "1",
            "start": start.strftime("%d.%m.%Y"),
            "fmt": str(settings.fmt),
            "charset": "utf-8",
            **settings.auth_params(),
        }
        if end is not None:
            params["end"] = end.strftime("%d.%m.%Y")
        if settings.mycur:
            params["mycur"] = "1"
        if settings.balance2:
            params["balance2"] = "1"
        return params

    def _attempt(
        self, base: str, params: dict[str, str], settings: SmscSettings, start: date, end: date
    ) -> StatReply:
        ticket = self.pacer.reserve(start, end, base)
        failure: BaseException | None = None
        try:
            with self._redacted_errors(settings):
                began = time.monotonic()
                body = self._post(base + API_PATH, params, settings)
                elapsed = time.monotonic() - began
                rows = parse_stat_reply(body, settings.fmt, "utf-8")
        except BaseException as exc:
            failure = exc
            raise
        finally:
            ticket.finish(*_outcome(failure))
        self.log.info(
            "SMSC %s..%s from %s: %d row(s), %d bytes in %.2f s",
            start.isoformat(),
            end.isoformat(),
            base,
            len(rows),
            len(body),
            elapsed,
        )
        return StatReply(
            rows=rows,
            raw=self._redact_bytes(body, settings),
            fmt=settings.fmt,
            base_url=base,
            start=start,
            end=end,
            elapsed=elapsed,
        )

    def _post(self, url: str, params: dict[str, str], settings: SmscSettings) -> bytes:
        fault: str | None = None
        try:
            # verify per request: requests lets REQUESTS_CA_BUNDLE override session.verify.
            response = self.session.post(
                url,
                data=params,
                timeout=(settings.connect_timeout, settings.read_timeout),
                verify=settings.ca_bundle or True,
            )
            body = response.content
        except requests.Timeout:
            fault = f"timed out talking to {url}"
        except requests.RequestException as exc:
            fault = f"{type(exc).__name__} talking to {url}"
        # Raised outside the except block: the requests exception (which holds the
        # prepared request, password included) must not ride along as __context__.
        if fault is not None:
            raise SmscTransportError(fault)
        if response.status_code != 200:
            raise SmscTransportError(f"HTTP {response.status_code} from {url}")
        return body

    @staticmethod
    def _redact_bytes(body: bytes, settings: SmscSettings) -> bytes:
        for secret in settings.secrets:
            body = body.replace(secret.encode(), REDACTED.encode())
        return body

    @staticmethod
    @contextlib.contextmanager
    def _redacted_errors(settings: SmscSettings) -> Iterator[None]:
        """Re-raise errors whose text would contain a secret with that secret masked."""
        try:
            yield
        except SmscError as exc:
            text = str(exc)
            if any(secret in text for secret in settings.secrets):
                for secret in settings.secrets:
                    text = text.replace(secret, REDACTED)
                exc.args = (text,)
            raise
