"""Days never loaded, and the gap-only backfill that fetches exactly those.

``python -m smsc_hook.gaps [--account NAME] [--series main] [--dry-run]`` reads
``smsc.load_gaps``, groups the missing days into contiguous ranges and runs one
``airflow backfill create`` per range (Airflow allows one running backfill per DAG, so
each range waits for the previous one), so the pool and the call ledger apply as for
any run. Runs where the Airflow CLI runs.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Iterable
from datetime import date, timedelta

from airflow.sdk.exceptions import AirflowNotFoundException
from sqlalchemy import Engine, text

from smsc_hook.exceptions import SmscError, SmscFatalError

_GAPS_SQL = text(
    "SELECT day FROM smsc.load_gaps"
    " WHERE account = :account AND series = :series AND day < :before ORDER BY day"
)


class SmscGapsError(SmscFatalError):
    """Days older than the lookback window were never loaded; a human must backfill them."""


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


def check_no_old_gaps(
    engine: Engine, account: str, series: str, oldest_allowed: date, account_name: str = ""
) -> None:
    """Raise when days before ``oldest_allowed`` (outside the lookback) were never loaded."""
    ranges = group_ranges(find_gaps(engine, account, series, oldest_allowed))
    if ranges:
        days = sum((b - a).days + 1 for a, b in ranges)
        # The CLI looks at the main series of the only account unless told otherwise.
        command = "python -m smsc_hook.gaps"
        if account_name:
            command += f" --account {account_name}"
        if series != "main":
            command += f" --series {series}"
        raise SmscGapsError(
            f"{days} day(s) of {account}/{series} were never loaded: {describe(ranges)}. "
            f"Fill them with `{command}` (add --dry-run to preview)"
        )


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
        # A gap day may have a finished run whose load was lost (e.g. a restored database).
        "--reprocess-behavior",
        "completed",
    ]


def wait_for_backfills(dag_id: str, poll: float = 5.0) -> None:
    """Until no backfill of ``dag_id`` is running (the metadata database decides)."""
    from airflow.models.backfill import Backfill
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    while True:
        with create_session() as session:
            running = session.scalar(
                select(func.count())
                .select_from(Backfill)
                .where(Backfill.dag_id == dag_id, Backfill.completed_at.is_(None))
            )
        if not running:
            return
        time.sleep(poll)


def main(argv: list[str] | None = None) -> int:
    from smsc_hook.db import make_engine, warehouse_url
    from smsc_hook.hook import SmscHook
    from smsc_hook.settings import PipelineSettings

    parser = argparse.ArgumentParser(prog="python -m smsc_hook.gaps", description=__doc__)
    parser.add_argument(
        "--account", default="", help="name from SMSC_ACCOUNTS (default: the only one)"
    )
    parser.add_argument("--series", choices=("main", "balance2"), default="main")
    parser.add_argument("--dry-run", action="store_true", help="print the ranges and commands only")
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
    for first, last in ranges:
        command = backfill_command(account.dag_id, first, last)
        print(("would run: " if args.dry_run else "running: ") + " ".join(command), flush=True)
        if args.dry_run:
            continue
        wait_for_backfills(account.dag_id)
        # ``python -m airflow``: the CLI of this interpreter's environment, PATH or not.
        subprocess.run([sys.executable, "-m", *command], check=True, stdout=subprocess.DEVNULL)
    if not args.dry_run:
        print(f"gaps: {len(ranges)} backfill(s) created; they run under the scheduler")
    return 0


if __name__ == "__main__":
    sys.exit(main())
