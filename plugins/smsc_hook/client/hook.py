"""Airflow hook for SMSC's statistics calls (``get.php?get_stat`` and, for resellers,
``users.php?get_stat``): the only module that speaks HTTP."""

from __future__ import annotations

import codecs
import functools
import hashlib
import http.client
import os
import re
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cached_property
from typing import Any, Protocol
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import requests
import urllib3
from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException

from smsc_hook import __version__
from smsc_hook.client.connection import SmscSettings, settings_from_connection
from smsc_hook.client.exceptions import (
    SmscApiError,
    SmscConfigError,
    SmscError,
    SmscReplyError,
    SmscTransportError,
)
from smsc_hook.client.models import StatRow
from smsc_hook.client.parsing import STAT, SUBCLIENTS, ParsedReply, parse_reply
from smsc_hook.client.transport import (
    ACCEPT_ENCODING,
    BadEncoding,
    Deadline,
    DeadlineAdapter,
    DeadlinePassed,
    ReplyTooLarge,
    read_body,
)

API_PATH = "/sys/get.php"
#: SMSC's subclient API; ``get_stat=1`` there answers one row per subclient of a reseller.
USERS_PATH = "/sys/users.php"
_PATHS = {STAT: API_PATH, SUBCLIENTS: USERS_PATH}
USER_AGENT = f"smsc-airflow-provider/{__version__}"
REDACTED = "***"
#: The charset the hook asks for, and the ones SMSC can answer in (its default is
#: windows-1251, so an error reply from a front end that ignores the request may use it).
REQUEST_CHARSET = "utf-8"
_REPLY_CHARSETS = ("utf-8", "cp1251", "koi8-r")
#: SMSC's day for a default account (see SMSC_API.md): what an open-ended window runs to.
SMSC_ZONE = ZoneInfo("Europe/Moscow")
#: A plain-http base URL (loopback, or opted in) never goes through a proxy: the password
#: would cross it in clear. None removes the environment's and the session's proxies.
_NO_PROXIES: dict[str, Any] = {"http": None, "https": None, "all": None}
#: What a socket, urllib3 or http.client raise when an exchange breaks (or the deadline
#: shuts the socket down mid-read).
_EXCHANGE_ERRORS = (
    requests.RequestException,
    urllib3.exceptions.HTTPError,
    http.client.HTTPException,
    OSError,
)


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
    #: ``get_stat`` (get.php) or ``subclients`` (users.php).
    source: str = STAT
    #: Field names the rows carried besides login, cnt, credit, debit and currency.
    extra_fields: tuple[str, ...] = ()

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
        # Only encodings read_body inflates in bounded steps.
        session.headers["Accept-Encoding"] = ACCEPT_ENCODING
        session.verify = self.settings.ca_bundle or True
        # Every socket obeys the attempt's deadline (mounted on a given session too).
        adapter = DeadlineAdapter()
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        return session

    def get_stat(self, start: date, end: date | None = None) -> list[StatRow]:
        """Rows per login for ``start``..``end`` inclusive (``end`` omitted: up to today)."""
        return self.fetch_stat(start, end).rows

    def fetch_stat(self, start: date, end: date | None = None) -> StatReply:
        """Like :meth:`get_stat`, also returning the raw reply for the archive.

        Without ``end`` no end is sent and SMSC answers up to its today; the window
        recorded (ledger, ``StatReply.end``) then runs to today in Moscow, SMSC's zone.
        """
        settings = self.settings
        params = self._request_params(settings, start, end)
        if settings.balance2:
            params["balance2"] = "1"
        return self._fetch(STAT, params, start, end)

    def get_subclients_stat(
        self,
        start: date,
        end: date | None = None,
        *,
        reseller: int = 0,
        hide_deleted: bool = False,
    ) -> list[StatRow]:
        """Rows per subclient of a reseller for ``start``..``end`` (``users.php?get_stat``)."""
        return self.fetch_subclients_stat(
            start, end, reseller=reseller, hide_deleted=hide_deleted
        ).rows

    def fetch_subclients_stat(
        self,
        start: date,
        end: date | None = None,
        *,
        reseller: int = 0,
        hide_deleted: bool = False,
    ) -> StatReply:
        """Like :meth:`get_subclients_stat`, also returning the raw reply for the archive.

        One call of the account's statistics budget, paced like :meth:`fetch_stat` (SMSC
        is assumed to count both methods together). ``reseller`` 0 asks for the subclients
        on the main account's balance, 1 for those with their own; ``hide_deleted`` leaves
        deleted subclients out. The main balance only: ``balance2`` is never sent. An
        account that is not a reseller gets :class:`SmscNotResellerError` (fatal).
        """
        if isinstance(reseller, bool) or reseller not in (0, 1):
            raise SmscConfigError(f"reseller must be 0 or 1, got {reseller!r}")
        if not isinstance(hide_deleted, bool):
            raise SmscConfigError(f"hide_deleted must be true or false, got {hide_deleted!r}")
        params = self._request_params(self.settings, start, end)
        params["reseller"] = str(reseller)
        if hide_deleted:
            params["hide_deleted"] = "1"
        return self._fetch(SUBCLIENTS, params, start, end)

    def _fetch(
        self, source: str, params: dict[str, str], start: date, end: date | None
    ) -> StatReply:
        """One paced attempt per host (reserves on transport faults only) for ``source``."""
        if end is not None and end < start:
            raise ValueError(f"end {end.isoformat()} is before start {start.isoformat()}")
        settings = self.settings
        asked_end = end if end is not None else max(start, datetime.now(SMSC_ZONE).date())
        last_fault: SmscTransportError | None = None
        for base in settings.base_urls:
            try:
                return self._attempt(base, source, params, settings, start, asked_end)
            except SmscTransportError as fault:
                last_fault = fault
                self.log.warning("SMSC host %s failed: %s", base, fault)
        assert last_fault is not None
        raise SmscTransportError(
            f"all SMSC hosts failed ({', '.join(settings.base_urls)}); last: {last_fault}"
        ) from last_fault

    def test_connection(self) -> tuple[bool, str]:
        """One real call for yesterday's statistics: proves host, credentials and IP.

        It spends a call from the account's budget, so it goes through the warehouse's
        call ledger (caller ``test_connection``) when the warehouse connection is
        reachable, and says in its answer when it is not.
        """
        yesterday = datetime.now(SMSC_ZONE).date() - timedelta(days=1)
        own_pacer = self.pacer
        engine: Any = None
        note = ""
        if isinstance(own_pacer, _Unpaced):
            try:
                self.settings  # noqa: B018 - a config error is the answer, before the ledger
            except SmscError as exc:
                return False, str(exc)
            engine, note = self._ledger_for_test()
        try:
            rows = self.get_stat(yesterday, yesterday)
        except SmscError as exc:
            return False, f"{exc}{note}"
        finally:
            self.pacer = own_pacer
            if engine is not None:
                engine.dispose()
        return True, f"SMSC answered with {len(rows)} row(s){note}"

    def _ledger_for_test(self) -> tuple[Any, str]:
        """Pace the test call with the ledger: (engine to dispose, note for the answer)."""
        # Imported here: the hook speaks HTTP; only this button borrows the warehouse.
        from sqlalchemy.exc import SQLAlchemyError

        from smsc_hook.airflow.settings import DEFAULT_WAREHOUSE_CONN_ID, PipelineSettings
        from smsc_hook.warehouse.engine import make_engine, warehouse_url
        from smsc_hook.warehouse.ledger import IP_BLOCK_PAUSE, LedgerPacer, RateLimit
        from smsc_hook.warehouse.migrations import pending_migrations

        conn_id = os.environ.get("SMSC_WAREHOUSE_CONN_ID", "").strip() or DEFAULT_WAREHOUSE_CONN_ID
        engine = None
        try:
            url = warehouse_url(conn_id)
            if "connect_timeout" not in url.query:  # the UI waits for this answer
                url = url.update_query_dict({"connect_timeout": "5"})
            engine = make_engine(url)
            pending = pending_migrations(engine)
            if pending:
                raise SmscConfigError(f"its schema is behind ({', '.join(pending)} not applied)")
        except (SmscError, SQLAlchemyError) as exc:
            if engine is not None:
                engine.dispose()
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:160]
            return None, (
                f" (not paced: warehouse connection {conn_id!r} is not reachable: {reason}; "
                "this call is not in the ledger, so wait a minute before the next one)"
            )
        try:
            pipeline = PipelineSettings.from_env()
            limit, pause = pipeline.rate, pipeline.ip_block_pause
        except SmscConfigError:
            limit, pause = RateLimit(), IP_BLOCK_PAUSE
        self.pacer = LedgerPacer(
            engine,
            self.settings.account,
            limit=limit,
            caller="test_connection",
            ip_block_pause=pause,
        )
        return engine, f" (paced: recorded in the ledger of warehouse connection {conn_id!r})"

    @staticmethod
    def _request_params(settings: SmscSettings, start: date, end: date | None) -> dict[str, str]:
        """What both statistics calls send: window, format, charset, currency, credentials."""
        params = {
            "get_stat": "1",
            "start": start.strftime("%d.%m.%Y"),
            "fmt": str(settings.fmt),
            "charset": REQUEST_CHARSET,
            **settings.auth_params(),
        }
        if end is not None:
            params["end"] = end.strftime("%d.%m.%Y")
        if settings.mycur:
            params["mycur"] = "1"
        return params

    def _attempt(
        self,
        base: str,
        source: str,
        params: dict[str, str],
        settings: SmscSettings,
        start: date,
        end: date,
    ) -> StatReply:
        # The ledger's host column tells the two methods apart: users.php calls are
        # recorded with their path, get.php calls with the bare base URL as before.
        ticket = self.pacer.reserve(start, end, base if source == STAT else base + USERS_PATH)
        failure: BaseException | None = None
        try:
            began = time.monotonic()
            body, charset = self._post(base + _PATHS[source], params, settings)
            elapsed = time.monotonic() - began
            parsed = self._parse(body, settings, charset, source)
        except SmscError as exc:
            failure = _masked(exc, settings)
        except BaseException as exc:
            failure = exc
            raise
        finally:
            ticket.finish(*_outcome(failure))
        if failure is not None:
            # Raised outside the except block, so no context rides along with it.
            raise failure
        self.log.info(
            "SMSC %s %s..%s from %s: %d row(s), %d bytes in %.2f s",
            _PATHS[source],
            start.isoformat(),
            end.isoformat(),
            base,
            len(parsed.rows),
            len(body),
            elapsed,
        )
        if parsed.extra_fields:
            self.log.info(
                "SMSC reply rows also carried field(s) %s, not stored",
                ", ".join(parsed.extra_fields),
            )
        return StatReply(
            rows=parsed.rows,
            raw=redact_bytes(body, settings.secrets),
            fmt=settings.fmt,
            base_url=base,
            start=start,
            end=end,
            elapsed=elapsed,
            source=source,
            extra_fields=parsed.extra_fields,
        )

    def _post(
        self, url: str, params: dict[str, str], settings: SmscSettings
    ) -> tuple[bytes, str | None]:
        """The body (at most ``max_reply_bytes`` decoded) and its declared charset.

        One POST, no redirect followed, the whole exchange within ``deadline`` seconds.
        """
        fault: str | None = None
        body = b""
        charset: str | None = None
        with Deadline(settings.deadline) as deadline:
            response: requests.Response | None = None
            try:
                # verify per request: requests lets REQUESTS_CA_BUNDLE override session.verify.
                response = self.session.post(
                    url,
                    data=params,
                    timeout=(
                        min(settings.connect_timeout, settings.deadline),
                        settings.read_timeout,
                    ),
                    verify=settings.ca_bundle or True,
                    allow_redirects=False,
                    stream=True,
                    proxies=_NO_PROXIES if url.startswith("http://") else None,
                )
                fault = _status_fault(response, url)
                if fault is None:
                    body = read_body(response.raw, settings.max_reply_bytes, deadline)
                    charset = _declared_charset(response.headers.get("Content-Type", ""))
            except ReplyTooLarge as big:
                fault = (
                    f"reply from {url} is larger than max_reply_bytes={big.cap}"
                    + (f" (Content-Length {big.declared})" if big.declared else "")
                    + "; nothing of it was kept"
                )
            except BadEncoding as bad:
                fault = f"reply from {url}: {bad}"
            except DeadlinePassed:
                fault = f"no complete reply from {url} within the {settings.deadline:g} s deadline"
            except requests.Timeout:
                fault = f"timed out talking to {url}"
            except _EXCHANGE_ERRORS as exc:
                fault = f"{type(exc).__name__} talking to {url}"
            finally:
                if response is not None:
                    response.close()
            if deadline.passed and fault is not None and "deadline" not in fault:
                fault = f"no complete reply from {url} within the {settings.deadline:g} s deadline"
        # Raised outside the except block: the requests exception (which holds the
        # prepared request, password included) must not ride along as __context__.
        if fault is not None:
            raise SmscTransportError(fault)
        return body, charset

    def _parse(
        self, body: bytes, settings: SmscSettings, declared: str | None, source: str = STAT
    ) -> ParsedReply:
        """Rows from the body, or its refusal quoting nothing secret.

        The parser clips what it quotes to a short excerpt; a secret cut by the clip would
        no longer match it, so a refusal of a body holding a secret is rebuilt from the
        body with every secret masked *before* the parser quotes it.
        """
        try:
            return _parse_in_charset(body, settings.fmt, declared, source)
        except SmscError as exc:
            error = exc
        masked = redact_bytes(body, settings.secrets)
        if masked != body:
            error = _requoted(error, masked, settings.fmt, declared, source)
        raise error


def _requoted(
    error: SmscError, masked: bytes, fmt: int, declared: str | None, source: str
) -> SmscError:
    """The refusal of the masked body when it is the same refusal, else a withheld one."""
    try:
        _parse_in_charset(masked, fmt, declared, source)
    except SmscError as again:
        if type(again) is type(error) and getattr(again, "code", None) == getattr(
            error, "code", None
        ):
            return again
    withheld = "details withheld: they quoted a secret"
    if isinstance(error, SmscApiError):
        return type(error)(error.code, withheld)
    return type(error)(f"reply refused; {withheld}")


def _parse_in_charset(
    body: bytes, fmt: int, declared: str | None, source: str = STAT
) -> ParsedReply:
    """Rows from the body, in its declared charset (else the one asked for).

    A body that is not valid in that charset but reads as an API error in SMSC's
    default windows-1251 (or koi8-r) is that API error: error 2 must stay an auth
    error, never a retried "malformed reply".
    """
    charset = declared or REQUEST_CHARSET
    try:
        return parse_reply(body, fmt, charset, source=source)
    except SmscReplyError as malformed:
        if _decodes(body, charset):
            raise
        refusal = malformed
    for fallback in _REPLY_CHARSETS:
        if fallback == codecs.lookup(charset).name or not _decodes(body, fallback):
            continue
        try:
            parse_reply(body, fmt, fallback, source=source)
        except SmscApiError:
            raise  # the code is ASCII: right whichever of these charsets it was
        except SmscReplyError:
            continue
        break  # rows in a guessed charset would be mojibake: keep the refusal
    raise refusal


def _status_fault(response: requests.Response, url: str) -> str | None:
    """Why a status is not an answer: a redirect is never followed (it would carry the
    password to wherever ``Location`` points), any other non-200 is a fault."""
    status = response.status_code
    if 300 <= status < 400:
        location = response.headers.get("Location", "")
        try:
            target = urlsplit(location).hostname or urlsplit(url).hostname or "?"
        except ValueError:
            target = "?"
        shown = "".join(ch for ch in target if ch.isprintable())[:80]
        return (
            f"HTTP {status} redirect from {url} to host {shown!r} not followed "
            "(nothing was sent there)"
        )
    if status != 200:
        return f"HTTP {status} from {url}"
    return None


def _declared_charset(content_type: str) -> str | None:
    """The ``charset=`` of a Content-Type when it is one SMSC speaks, else None."""
    for part in content_type.split(";")[1:]:
        name, _, value = part.partition("=")
        if name.strip().lower() == "charset":
            try:
                codec = codecs.lookup(value.strip().strip('"'))
            except LookupError:
                return None
            return codec.name if codec.name in _REPLY_CHARSETS else None
    return None


def _decodes(body: bytes, charset: str) -> bool:
    try:
        body.decode("utf-8-sig" if codecs.lookup(charset).name == "utf-8" else charset)
    except (UnicodeDecodeError, LookupError):
        return False
    return True


# --- secrets -----------------------------------------------------------------------------


_JSON_SHORT_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "/": "\\/",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
}
_XML_NAMED = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;"}


def _hex(value: int, width: int = 0) -> str:
    """``value`` in hex digits of either case, as a regex (``(?i:...)`` scoped)."""
    return f"(?i:{value:0{width}x})"


def _char_spellings(char: str) -> list[str]:
    """Regexes for every way a reply could spell ``char``: as is (in each charset SMSC
    uses), JSON-escaped (``\\/``, ``\\uXXXX``), URL-encoded (either hex case, ``+``
    for a space), or as an XML/HTML character reference."""
    spellings: list[str] = []
    raw_forms: set[bytes] = set()
    for charset in _REPLY_CHARSETS:
        try:
            raw_forms.add(char.encode(charset))
        except UnicodeEncodeError:
            continue
    for raw in sorted(raw_forms):
        spellings.append("".join(f"\\x{b:02x}" for b in raw))  # the bytes themselves
        spellings.append("".join(f"%{_hex(b, 2)}" for b in raw))
    if char in _JSON_SHORT_ESCAPES:
        spellings.append(re.escape(_JSON_SHORT_ESCAPES[char]))
    code = ord(char)
    units = [code] if code < 0x10000 else [
        0xD800 + ((code - 0x10000) >> 10), 0xDC00 + ((code - 0x10000) & 0x3FF)
    ]  # fmt: skip
    spellings.append("".join(f"\\\\u{_hex(u, 4)}" for u in units))
    spellings.append(f"&#0*{code};")
    spellings.append(f"&#[xX]0*{_hex(code)};")
    if char in _XML_NAMED:
        spellings.append(re.escape(_XML_NAMED[char]))
    if char == " ":
        spellings.append("\\+")
    return spellings


@functools.lru_cache(maxsize=32)
def _secret_pattern(secret: str) -> re.Pattern[bytes]:
    """Bytes regex matching ``secret`` however each of its characters is spelled."""
    parts = ["(?:" + "|".join(_char_spellings(char)) + ")" for char in secret]
    return re.compile("".join(parts).encode("ascii"))


def redact_bytes(body: bytes, secrets: tuple[str, ...]) -> bytes:
    """``body`` with every secret masked, however the reply spells it (plain in any of
    SMSC's charsets, JSON-escaped, URL-encoded, XML references, or a mix)."""
    for secret in sorted(secrets, key=len, reverse=True):
        body = _secret_pattern(secret).sub(REDACTED.encode(), body)
    return body


def redact_text(text: str, secrets: tuple[str, ...]) -> str:
    """``text`` with every secret masked, spelled as is or as :func:`redact_bytes` knows."""
    encoded = text.encode("utf-8", errors="surrogatepass")
    return redact_bytes(encoded, secrets).decode("utf-8", errors="replace")


def _masked(exc: SmscError, settings: SmscSettings) -> SmscError:
    """``exc`` with no secret in its message or attributes, and no context chained."""
    secrets = settings.secrets
    # A secret clipped by the parser's excerpt (say 6 of its 11 characters) no longer
    # matches it; SmscHook._parse masks the whole reply before the parser quotes it, and
    # this masks every text the error carries (message, description, any other).
    for name, value in list(vars(exc).items()):
        if isinstance(value, str):
            setattr(exc, name, redact_text(value, secrets))
    exc.args = tuple(redact_text(a, secrets) if isinstance(a, str) else a for a in exc.args)
    exc.__cause__ = None
    exc.__context__ = None
    exc.__suppress_context__ = True
    return exc
