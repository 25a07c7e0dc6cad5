"""Days never loaded, and the gap-only backfill that fetches exactly those.

``python -m smsc_hook.gaps [--account NAME] [--series main|balance2|subclients] [--dry-run]`` reads
``smsc.load_gaps``, groups the missing days into contiguous ranges and runs one
``airflow backfill create`` per range (Airflow allows one running backfill per DAG, so
each range waits, at most --wait-timeout seconds, for the previous one), so the pool and
the call ledger apply as for any run. Runs where the Airflow CLI runs: before creating
anything it checks in the metadata database that the DAG is parsed and not paused.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, NamedTuple

from airflow.sdk.exceptions import AirflowNotFoundException
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import SQLAlchemyError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

from smsc_hook.client.exceptions import SmscError, SmscFatalError
from smsc_hook.warehouse.writer import SERIES_NAMES

_GAPS_SQL = text(
    "SELECT day FROM smsc.load_gaps"
    " WHERE account = :account AND series = :series AND day < :before ORDER BY day"
)


class SmscGapsError(SmscFatalError):
    """Days older than the lookback window were never loaded; a human must backfill them."""


class SmscGapsWaitError(SmscGapsError):
    """The gap backfills would never finish: DAG unknown, stale or paused, or a wait timed out."""


#: The longest wait for the previous backfill of a DAG. A year of days is ~2 h at SMSC's
#: 3 calls per minute; twice that leaves room for retries, error-9 and IP-block pauses.
DEFAULT_WAIT_TIMEOUT = 4 * 3600.0
DEFAULT_POLL = 5.0
#: While waiting, say what for at most this often (seconds).
REPORT_EVERY = 60.0


def group_ranges(days: Iterable[date]) -> list[tuple[date, date]]:
    """Contiguous inclusive ranges covering ``days`` (any order, duplicates allowed)."""
    ranges: list[tuple[date, date]] = []
    for day in sorted(set(days)):
        if ranges and ranges[-1][1] + timedelta(days=1) == day:
            ranges[-1] = (ranges[-1][0], day)
        else:
            ranges.append((day, day))
    return ranges


def describe(ranges: list[tuple[date, date]]) -> str:
    """``2026-10-03..2026-10-05, 2026-10-09`` for messages."""
    return ", ".join(
        a.isoformat() if a == b else f"{a.isoformat()}..{b.isoformat()}" for a, b in ranges
    )


def find_gaps(engine: Engine, account: str, series: str, before: date) -> list[date]:
    """Days before ``before`` that no load covers, from the first loaded day on."""
    with engine.connect() as conn:
        return list(
            conn.execute(
                _GAPS_SQL, {"account": account, "series": series, "before": before}
            ).scalars()
        )


def backfill_in_progress(
    engine: Engine, account: str, within: timedelta = timedelta(hours=1)
) -> bool:
    """Whether a backfill run called the API for ``account`` recently (per the ledger).

    Gaps behind a running backfill are being filled; the Task SDK cannot see backfills,
    but every call a backfill run makes is in the ledger with its run id.
    """
    with engine.connect() as conn:
        return bool(
            conn.execute(
                text(
                    "SELECT EXISTS (SELECT FROM smsc.api_calls WHERE account = :account"
                    " AND caller LIKE '%/backfill\\_\\_%'"
                    " AND reserved_at > clock_timestamp() - :within)"
                ),
                {"account": account, "within": within},
            ).scalar_one()
        )


def old_gaps_error(
    account: str, series: str, days: Iterable[date], account_name: str = ""
) -> SmscGapsError | None:
    """The error naming ``days`` (never loaded, outside the lookback) and the command that
    fills them; None when there are none."""
    ranges = group_ranges(days)
    if not ranges:
        return None
    total = sum((b - a).days + 1 for a, b in ranges)
    # The CLI looks at the main series of the only account unless told otherwise.
    command = "python -m smsc_hook.gaps"
    if account_name:
        command += f" --account {account_name}"
    if series != "main":
        command += f" --series {series}"
    return SmscGapsError(
        f"{total} day(s) of {account}/{series} were never loaded: {describe(ranges)}. "
        f"Fill them with `{command}` (add --dry-run to preview)"
    )


def check_no_old_gaps(
    engine: Engine, account: str, series: str, oldest_allowed: date, account_name: str = ""
) -> None:
    """Raise when days before ``oldest_allowed`` (outside the lookback) were never loaded."""
    error = old_gaps_error(
        account, series, find_gaps(engine, account, series, oldest_allowed), account_name
    )
    if error is not None:
        raise error


#: ``--max-active-runs`` of the backfills we create and suggest. The account's pool lets
#: one call run at a time, so two active runs (one calling, the next one ready) keep the
#: limit's pace; Airflow's default of 10 only gives the scheduler ten runs to re-evaluate
#: every loop (measured: a quarter of a backfill's CPU per day, same pace).
BACKFILL_ACTIVE_RUNS = 2


def backfill_command(dag_id: str, first: date, last: date) -> list[str]:
    return [
        "airflow",
        "backfill",
        "create",
        "--dag-id",
        dag_id,
        "--from-date",
        first.isoformat(),
        "--to-date",
        last.isoformat(),
        "--max-active-runs",
        str(BACKFILL_ACTIVE_RUNS),
        # A gap day may have a finished run whose load was lost (e.g. a restored database).
        "--reprocess-behavior",
        "completed",
    ]


class RunningBackfill(NamedTuple):
    """A backfill not completed yet, its range in the default time zone as the CLI took it."""

    id: int
    first: date
    last: date
    is_paused: bool


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _dag_problem(session: Session, dag_id: str) -> str | None:
    """Why the scheduler would never run ``dag_id``'s runs, or None when it would."""
    from airflow.models.dag import DagModel

    state = session.execute(
        select(DagModel.is_paused, DagModel.is_stale).where(DagModel.dag_id == dag_id)
    ).one_or_none()
    if state is None:
        return (
            f"DAG {dag_id} is not in the Airflow metadata database: the dag-processor must"
            " have parsed it first (is it running, with the same SMSC_ACCOUNTS? is --account"
            " right?)"
        )
    is_paused, is_stale = state
    if is_stale:
        return (
            f"DAG {dag_id} is stale: the dag-processor no longer finds it in the DAG files"
            " (same SMSC_ACCOUNTS as here? is --account right?), and the scheduler runs"
            " nothing of a stale DAG"
        )
    if is_paused:
        return (
            f"DAG {dag_id} is paused: the runs of a backfill of a paused DAG stay queued"
            f" forever; unpause it with `airflow dags unpause {dag_id}`"
        )
    return None


def _metadata_error(exc: SQLAlchemyError) -> SmscGapsWaitError:
    # The first line only: the rest is the SQL statement and a link to SQLAlchemy's docs.
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return SmscGapsWaitError(
        f"cannot read the Airflow metadata database ({first}); run this where the Airflow"
        " CLI runs, with its configuration (AIRFLOW_HOME, AIRFLOW__DATABASE__SQL_ALCHEMY_CONN)"
    )


def check_dag_ready(dag_id: str) -> None:
    """Raise :class:`SmscGapsWaitError` unless ``dag_id`` is parsed, not stale and unpaused.

    A backfill of a paused DAG is created fine, and its runs then stay queued forever.
    """
    from airflow.utils.session import create_session

    try:
        with create_session() as session:
            problem = _dag_problem(session, dag_id)
    except SQLAlchemyError as exc:
        raise _metadata_error(exc) from exc
    if problem:
        raise SmscGapsWaitError(problem)


def _running_backfills(session: Session, dag_id: str) -> list[RunningBackfill]:
    from airflow.models.backfill import Backfill
    from airflow.settings import TIMEZONE

    def day(moment: datetime) -> date:
        # The CLI reads --from-date/--to-date in the default time zone; stored is UTC.
        return moment.astimezone(TIMEZONE).date()

    rows = session.execute(
        select(Backfill.id, Backfill.from_date, Backfill.to_date, Backfill.is_paused)
        .where(Backfill.dag_id == dag_id, Backfill.completed_at.is_(None))
        .order_by(Backfill.id)
    ).all()
    return [RunningBackfill(id_, day(a), day(b), bool(paused)) for id_, a, b, paused in rows]


def _describe_backfills(dag_id: str, running: Sequence[RunningBackfill]) -> str:
    """``backfill 3 (2026-10-03..2026-10-05) of DAG smsc_daily_stats`` for messages."""
    parts = ", ".join(
        f"{b.id} ({describe([(b.first, b.last)])}{', paused' if b.is_paused else ''})"
        for b in running
    )
    return f"backfill{'s' if len(running) > 1 else ''} {parts} of DAG {dag_id}"


def wait_for_backfills(
    dag_id: str,
    *,
    timeout: float = DEFAULT_WAIT_TIMEOUT,
    poll: float = DEFAULT_POLL,
    report_every: float = REPORT_EVERY,
) -> None:
    """Until no backfill of ``dag_id`` is running (the metadata database decides).

    Says what it waits for when it starts, then at most every ``report_every`` seconds.
    Raises :class:`SmscGapsWaitError` after ``timeout`` seconds, and at once when the
    scheduler would never finish the backfill: the DAG got paused (or stale, or deleted),
    or every running backfill is paused itself.
    """
    from airflow.utils.session import create_session

    started = time.monotonic()
    reported: float | None = None
    while True:
        try:
            with create_session() as session:
                running = _running_backfills(session, dag_id)
                problem = _dag_problem(session, dag_id) if running else None
        except SQLAlchemyError as exc:
            raise _metadata_error(exc) from exc
        now = time.monotonic()
        waited = now - started
        if not running:
            if reported is not None:
                print(f"gaps: the backfill of DAG {dag_id} finished after {_duration(waited)}")
            return
        what = _describe_backfills(dag_id, running)
        if problem:
            raise SmscGapsWaitError(f"while waiting for {what}: {problem}")
        if all(b.is_paused for b in running):
            calls = " or ".join(f"`PUT /api/v2/backfills/{b.id}/unpause`" for b in running)
            raise SmscGapsWaitError(
                f"{what}: the runs of a paused backfill stay queued; unpause it in the UI"
                f" (DAG {dag_id}, Backfills) or with {calls}"
            )
        if reported is None:
            print(
                f"gaps: waiting for {what} to finish (Airflow runs one backfill per DAG;"
                f" up to {_duration(timeout)}, --wait-timeout)",
                flush=True,
            )
            reported = now
        elif now - reported >= report_every:
            print(
                f"gaps: still waiting for {what}: {_duration(waited)} of {_duration(timeout)}",
                flush=True,
            )
            reported = now
        if waited >= timeout:
            raise SmscGapsWaitError(
                f"{what} still running after {_duration(waited)} (--wait-timeout"
                f" {timeout:g}); no further backfill was created. Check that the scheduler"
                " runs (`airflow jobs check --job-type SchedulerJob`) and the backfill's runs"
                f" (UI: DAG {dag_id}, Backfills; or `GET /api/v2/backfills?dag_id={dag_id}`),"
                " then run this again, with a larger --wait-timeout for long ranges"
            )
        time.sleep(min(poll, timeout - waited))


def _positive_seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = float("nan")
    if not seconds > 0 or seconds == float("inf"):
        raise argparse.ArgumentTypeError(f"not a positive number of seconds: {value!r}")
    return seconds


def main(argv: list[str] | None = None) -> int:
    from smsc_hook.airflow.settings import PipelineSettings
    from smsc_hook.client.hook import SmscHook
    from smsc_hook.warehouse.engine import make_engine, warehouse_url

    parser = argparse.ArgumentParser(prog="python -m smsc_hook.gaps", description=__doc__)
    parser.add_argument(
        "--account", default="", help="name from SMSC_ACCOUNTS (default: the only one)"
    )
    parser.add_argument(
        "--series",
        choices=SERIES_NAMES,
        default="main",
        help="main (default), balance2, or subclients (users.php, for resellers)",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the ranges and commands only (reads no Airflow metadata)",
    )
    parser.add_argument(
        "--wait-timeout",
        type=_positive_seconds,
        default=DEFAULT_WAIT_TIMEOUT,
        metavar="SECONDS",
        help="how long to wait for the previous backfill of the DAG to finish before"
        " creating the next one, then exit 1 (default 14400 = 4 h: a year of days takes"
        " about 2 h at SMSC's 3 calls per minute, twice that leaves room for retries)",
    )
    parser.add_argument(
        "--poll",
        type=_positive_seconds,
        default=DEFAULT_POLL,
        metavar="SECONDS",
        help="how often to look at the metadata database while waiting (default 5)",
    )
    args = parser.parse_args(argv)
    try:
        settings = PipelineSettings.from_env()
        accounts = settings.all_accounts()
        # As --help promises: with one account configured, --account may be left out.
        only = accounts[0] if len(accounts) == 1 and not args.account else None
        account = only or settings.account(args.account)
        key = SmscHook(account.conn_id).settings.account
        engine = make_engine(warehouse_url(settings.warehouse_conn_id))
        try:
            # The view already stops at yesterday: every gap is a complete day.
            ranges = group_ranges(find_gaps(engine, key, args.series, date.max))
        finally:
            engine.dispose()
    except (SmscError, AirflowNotFoundException) as exc:
        print(f"gaps: {exc}", file=sys.stderr)
        return 1
    if not ranges:
        print(f"gaps: none for {key}/{args.series}")
        return 0
    print(f"gaps: {key}/{args.series} never loaded: {describe(ranges)}")
    if args.dry_run:
        for first, last in ranges:
            print("would run: " + " ".join(backfill_command(account.dag_id, first, last)))
        return 0
    created = 0
    try:
        check_dag_ready(account.dag_id)
        for first, last in ranges:
            command = backfill_command(account.dag_id, first, last)
            wait_for_backfills(account.dag_id, timeout=args.wait_timeout, poll=args.poll)
            print("running: " + " ".join(command), flush=True)
            # ``python -m airflow``: the CLI of this interpreter's environment, PATH or not.
            done = subprocess.run([sys.executable, "-m", *command], stdout=subprocess.DEVNULL)
            if done.returncode:
                raise SmscGapsError(
                    f"`{' '.join(command)}` failed (exit {done.returncode}); its error is above"
                )
            created += 1
    except SmscGapsError as exc:
        so_far = f" ({created} of {len(ranges)} backfill(s) created before)" if created else ""
        print(f"gaps: {exc}{so_far}", file=sys.stderr)
        return 1
    print(f"gaps: {len(ranges)} backfill(s) created; they run under the scheduler")
    return 0


if __name__ == "__main__":
    sys.exit(main())
