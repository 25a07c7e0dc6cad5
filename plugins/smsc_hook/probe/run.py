"""``python -m smsc_hook.probe``: what SMSC really answers, one call per reply format.

No real ``get_stat`` reply is published, so the parser reads every layout the evidence
allows. This asks the account's own server once per ``fmt`` 0-3 for one closed day (at
most 4 calls, through the call ledger when the warehouse is reachable, else 21 s apart),
then prints per format the reply's shape with every value masked, whether our parser
accepted it and how many rows, and writes a redacted fixture: every value replaced by a
placeholder of the same type (logins by ``login-N``, amounts keep their decimal places,
error codes kept), no secret and no real login. Attach the fixtures to a bug report, or
drop them into ``tests/fixtures/replies/``: the parser tests read every file there.

With ``--subclients`` it asks ``users.php?get_stat`` instead (the reseller's per-subclient
statistics, with the account's ``reseller`` / ``hide_deleted`` options from SMSC_ACCOUNTS),
fixtures named ``NAME-users.…``; the verdict names every field the rows carry that we do
not store.

Fixture names say what the parser made of the reply: ``NAME.fmtF.OUTCOME.EXT`` with
OUTCOME ``rowsN``, ``errorN`` or ``refused``. A reply we refused but should read: rename
it to the rows you expect, and the parser tests fail until the parser reads it.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

from smsc_hook.client.exceptions import (
    SmscApiError,
    SmscAuthError,
    SmscConfigError,
    SmscError,
    SmscIpBlockedError,
    SmscReplyError,
)
from smsc_hook.client.parsing import STAT, SUBCLIENTS
from smsc_hook.probe.shapes import (
    FORMAT_NAMES,
    FORMATS,
    Verdict,
    describe_shape,
    fixture_name,
    judge,
    redact_reply,
)

#: Without the ledger: SMSC takes 3 statistics calls a minute, one per 20 s; 1 s of margin.
UNPACED_GAP = 21.0
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,59}")
_CHARSET_PARAM = re.compile(r";\s*charset\s*=\s*([^;\s]+)", re.IGNORECASE)


# --- the calls ---------------------------------------------------------------------------------


class _Tee:
    """Stands in for a response's ``raw`` stream and keeps a copy of what the hook reads.

    The hook reads the body itself (bounded in size and time); this only copies the chunks
    it pulls, so a refused reply can still be described and written as a fixture.
    """

    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self.chunks: list[bytes] = []

    def stream(self, *args: Any, **kwargs: Any) -> Iterator[bytes]:
        for chunk in self._raw.stream(*args, **kwargs):
            self.chunks.append(chunk)
            yield chunk

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


class _RecordingSession(requests.Session):
    """Asks for an unencoded reply and keeps what the hook read of the last one.

    ``SmscHook.fetch_stat`` returns the body only when the parser accepts it; the probe's
    point is the replies it refuses. (A hook API returning the redacted body of any reply
    would make this unnecessary.)
    """

    def __init__(self) -> None:
        super().__init__()
        self._tee: _Tee | None = None
        self._encoding = ""
        #: The charset the last reply declared in its Content-Type, if any.
        self.charset: str | None = None

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        # Compression is transport, not shape: unencoded, the chunks read are the body.
        request.headers["Accept-Encoding"] = "identity"
        self._tee = None
        response = super().send(request, **kwargs)
        self._encoding = response.headers.get("Content-Encoding", "").strip().lower()
        declared = _CHARSET_PARAM.search(response.headers.get("Content-Type", ""))
        self.charset = declared[1].strip("\"'") if declared else None
        self._tee = _Tee(response.raw)
        response.raw = self._tee
        return response

    def last_body(self) -> bytes | None:
        """What the hook read of the last reply; None if nothing, or it came compressed."""
        if self._tee is None or self._encoding not in ("", "identity"):
            return None
        return b"".join(self._tee.chunks)


@dataclass(frozen=True)
class ProbeResult:
    """One format's call: the masked shape, the parser's verdict, the fixture written."""

    fmt: int
    shape: str
    verdict: Verdict | None
    fixture: Path | None
    note: str = ""

    def line(self) -> str:
        verdict = "no reply" if self.verdict is None else str(self.verdict)
        parts = [f"fmt={self.fmt} {FORMAT_NAMES[self.fmt]}", self.shape, verdict]
        if self.fixture is not None:
            parts.append(f"fixture {self.fixture.name}")
        if self.note:
            parts.append(self.note)
        return " | ".join(parts)


Sleep = Callable[[float], None]


def run_probe(
    conn_id: str,
    day: date,
    out_dir: Path,
    *,
    name: str = "smsc",
    pacer: Any = None,
    formats: Sequence[int] = FORMATS,
    sleep: Sleep = time.sleep,
    gap: float = UNPACED_GAP,
    source: str = STAT,
    reseller: int = 0,
    hide_deleted: bool = False,
) -> Iterator[ProbeResult]:
    """Call once per format (primary host only: a reserve would be another call) and yield
    each result as it comes. Without ``pacer`` the calls are ``gap`` (>= 21) s apart.

    ``source="subclients"`` calls ``users.php?get_stat`` (with ``reseller`` and
    ``hide_deleted``) instead of ``get.php?get_stat``.
    """
    from smsc_hook.client.hook import SmscHook

    if pacer is None and gap < UNPACED_GAP:
        raise SmscConfigError(f"unpaced probe calls must be >= {UNPACED_GAP:g} s apart")
    if not _SAFE_NAME.fullmatch(name):
        raise SmscConfigError(f"fixture name {name!r} must match {_SAFE_NAME.pattern}")
    out_dir.mkdir(parents=True, exist_ok=True)
    base = SmscHook(conn_id).settings
    # Values are all replaced; a login can only survive as a key or tag name. Logins too
    # short to be told from structure (``a`` is in ``masked``) are left to that rule.
    hide = [*base.secrets, *(s for s in (base.login, base.account_name) if s and len(s) >= 4)]
    for index, fmt in enumerate(formats):
        if index and pacer is None:
            sleep(gap)
        session = _RecordingSession()
        hook = SmscHook(conn_id, pacer=pacer, session=session)
        hook.settings = replace(base, fmt=fmt, base_urls=base.base_urls[:1])
        failure: SmscError | None = None
        body: bytes | None = None
        rows: int | None = None
        extra: tuple[str, ...] = ()
        try:
            if source == SUBCLIENTS:
                reply = hook.fetch_subclients_stat(
                    day, day, reseller=reseller, hide_deleted=hide_deleted
                )
            else:
                reply = hook.fetch_stat(day, day)
            body, rows, extra = reply.raw, len(reply.rows), reply.extra_fields
        except SmscError as exc:
            failure = exc
            # A transport fault leaves at most part of a body: nothing to describe.
            if isinstance(exc, SmscApiError | SmscReplyError):
                body = session.last_body()
        if body is not None:
            body = _as_utf8(body, session.charset)
        if body is None:
            reason = type(failure).__name__ if failure else "no body kept"
            yield ProbeResult(
                fmt, "no reply body", None, None, f"{reason}: {_hidden(failure, hide)}"
            )
        else:
            yield _record(body, fmt, out_dir, name, hide, rows, source, extra)
        if isinstance(failure, SmscAuthError | SmscIpBlockedError):
            # More calls would only count toward SMSC's IP block (5 auth errors in 30 min).
            for rest in formats[index + 1 :]:
                yield ProbeResult(
                    rest, "not called", None, None, f"stopped after error {failure.code}"
                )
            return


def _as_utf8(body: bytes, charset: str | None) -> bytes:
    """The body in UTF-8 (fixtures and the parser tests read UTF-8), if it declared another."""
    if not charset:
        return body
    try:
        return body.decode(charset).encode("utf-8")
    except (LookupError, UnicodeError):
        return body  # kept as received; the verdict will say it does not decode


def _record(
    body: bytes,
    fmt: int,
    out_dir: Path,
    name: str,
    hide: Sequence[str],
    rows: int | None,
    source: str = STAT,
    extra: tuple[str, ...] = (),
) -> ProbeResult:
    # The hook's own verdict when it accepted the reply; else the parser's on the body.
    if rows is not None:
        verdict = Verdict(rows=rows, extra_fields=extra)
    else:
        verdict = judge(body, fmt, source)
    fixture = redact_reply(body, fmt, hide)
    path = out_dir / fixture_name(name, fmt, verdict)
    path.write_bytes(fixture)
    again = judge(fixture, fmt, source)
    note = ""
    if again.outcome != verdict.outcome:
        note = f"the redacted fixture parses as {again.outcome}, not {verdict.outcome}"
    # The refusal quoted from the fixture names placeholders, never a real login.
    shown = verdict if verdict.refusal is None else replace(verdict, refusal=again.refusal)
    # Shape from the body itself (it shows only types, tags and names), scrubbed anyway.
    shape = _scrubbed(describe_shape(body, fmt), hide)
    return ProbeResult(fmt, shape, shown, path, note)


def _hidden(error: SmscError | None, hide: Sequence[str]) -> str:
    return _scrubbed(str(error) if error is not None else "", hide)


def _scrubbed(text: str, hide: Sequence[str]) -> str:
    for value in hide:
        text = text.replace(value, "***")
    return text


# --- the command -------------------------------------------------------------------------------


def _ledger(warehouse_conn_id: str, account: str, settings: Any) -> tuple[Any, Any, str]:
    """The ledger pacer if the warehouse answers and has the ledger, else why not."""
    from sqlalchemy import text
    from sqlalchemy.exc import ProgrammingError, SQLAlchemyError

    from smsc_hook.warehouse.engine import make_engine, warehouse_url
    from smsc_hook.warehouse.ledger import LedgerPacer

    try:
        url = warehouse_url(warehouse_conn_id)
        if "connect_timeout" not in url.query:
            url = url.update_query_dict({"connect_timeout": "10"})
        engine = make_engine(url)
    except SmscConfigError as exc:
        return None, None, f"warehouse not configured ({exc})"
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1 FROM smsc.api_calls LIMIT 0"))
    except ProgrammingError:
        engine.dispose()
        return None, None, "warehouse has no call ledger yet (run python -m smsc_hook.bootstrap)"
    except SQLAlchemyError as exc:
        engine.dispose()
        return None, None, f"warehouse unreachable ({type(exc).__name__})"
    pacer = LedgerPacer(
        engine,
        account,
        limit=settings.rate,
        caller="probe",
        ip_block_pause=settings.ip_block_pause,
    )
    return pacer, engine, "through the call ledger (caller 'probe')"


def _closed_day(value: str | None, timezone: str) -> date:
    from smsc_hook.airflow.windows import zone

    today = datetime.now(zone(timezone)).date()
    if value is None:
        return today - timedelta(days=1)
    day = date.fromisoformat(value)
    if day >= today:
        raise SmscConfigError(
            f"--day {day.isoformat()} has not ended yet in {timezone}; pick one before {today}"
        )
    return day


def main(argv: list[str] | None = None, *, sleep: Sleep = time.sleep) -> int:
    from airflow.sdk.exceptions import AirflowNotFoundException

    from smsc_hook.airflow.settings import PipelineSettings
    from smsc_hook.client.hook import SmscHook

    parser = argparse.ArgumentParser(
        prog="python -m smsc_hook.probe",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--account", default="", help="name from SMSC_ACCOUNTS (default: the only one)"
    )
    parser.add_argument("--day", help="YYYY-MM-DD, a closed day (default: yesterday)")
    parser.add_argument("--out", type=Path, required=True, help="directory for the fixtures")
    parser.add_argument(
        "--name", help="fixture name prefix (default smsc, or smsc-users with --subclients)"
    )
    parser.add_argument(
        "--subclients",
        action="store_true",
        help="ask users.php?get_stat (a reseller's subclients) instead of get.php?get_stat",
    )
    args = parser.parse_args(argv)
    # The pacer's "waiting for a slot" lines name the account; this output is meant to be
    # pasted into a bug report, so only the probe's own (masked) lines are printed.
    for name in ("smsc_hook", "airflow.task.hooks.smsc_hook"):
        logging.getLogger(name).setLevel(logging.WARNING)
    engine = None
    try:
        settings = PipelineSettings.from_env()
        accounts = settings.all_accounts()
        only = accounts[0] if len(accounts) == 1 and not args.account else None
        account = only or settings.account(args.account)
        day = _closed_day(args.day, settings.timezone)
        smsc = SmscHook(account.conn_id).settings
        pacer, engine, pacing = _ledger(settings.warehouse_conn_id, smsc.account, settings)
        if pacer is None:
            pacing = f"{pacing}; calls {UNPACED_GAP:g} s apart"
        method = "users.php?get_stat" if args.subclients else "get.php?get_stat"
        print(
            f"probe: connection {account.conn_id!r} at {smsc.base_urls[0]}, {method}, day"
            f" {day.isoformat()}, fmt 0-3, {pacing}",
            flush=True,
        )
        results = run_probe(
            account.conn_id,
            day,
            args.out,
            name=args.name or ("smsc-users" if args.subclients else "smsc"),
            pacer=pacer,
            sleep=sleep,
            source=SUBCLIENTS if args.subclients else STAT,
            reseller=account.reseller,
            hide_deleted=account.hide_deleted,
        )
        for result in results:
            print(f"probe: {result.line()}", flush=True)
    except (SmscError, AirflowNotFoundException, ValueError) as exc:
        print(f"probe: {exc}", file=sys.stderr)
        return 1
    finally:
        if engine is not None:
            engine.dispose()
    print(f"probe: fixtures in {args.out} (values masked; no secret, no real login)")
    return 0
