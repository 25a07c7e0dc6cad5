"""``make demo``: the whole pipeline for real, on embedded defaults, in a few minutes.

PostgreSQL (``SMSC_DATABASE_URL``, else 127.0.0.1:5432, else a private cluster under
``.state/pg``) → the SMSC simulator (or the real SMSC when ``SMSC_LOGIN`` and
``SMSC_PASSWORD``, or ``AIRFLOW_CONN_SMSC_DEFAULT``, are set) → Airflow under
``.state/airflow`` with its metadata in a database of its own on the same server
(``<warehouse database>_airflow``, recreated empty each run) → bootstrap → scheduler,
api-server, dag-processor → unpause → backfill of the last 7 days at the real 3-per-minute
limit, with progress (one line updating in place on a terminal) → the loaded
``smsc.daily_stats`` and the SMSC page's URL. Airflow and the simulator are left
running for the UI; ``make demo-stop`` stops them (SIGTERM, then SIGKILL after a bound) and
drops the metadata database.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any, TextIO

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import OperationalError

from devtools import postgres
from devtools.airflow_stack import REPO_ROOT, AirflowStack, postgres_connection
from devtools.processes import start_time, terminate
from devtools.simulator_process import start_simulator
from smsc_hook.airflow.plugin import PAGE_PREFIX
from smsc_hook.airflow.settings import PipelineSettings
from smsc_hook.airflow.windows import zone
from smsc_hook.ui import queries
from smsc_hook.ui import status as ui_status
from smsc_hook.warehouse.ledger import AUTH_FAILURE_WINDOW, IP_BLOCK_PAUSE

STATE = REPO_ROOT / ".state"
#: What ``--stop`` needs: the processes ``run`` started and the metadata database.
STATE_FILE = STATE / "demo-pids.json"
AIRFLOW_HOME = STATE / "airflow"
#: Seconds ``--stop`` gives the processes to exit on SIGTERM before it SIGKILLs them.
STOP_GRACE = 20.0
DAG_ID = "smsc_daily_stats"
DAYS = 7
TIMEZONE = os.environ.get("SMSC_TIMEZONE", "Europe/Moscow")
DEMO_DATABASE = "smsc_demo"


def say(message: str) -> None:
    print(f"demo: {message}", flush=True)


def warehouse_database() -> URL:
    """SMSC_DATABASE_URL as given, else a persistent ``smsc_demo`` database on a found server."""
    if os.environ.get("SMSC_DATABASE_URL"):
        url = make_url(os.environ["SMSC_DATABASE_URL"]).set(drivername="postgresql+psycopg2")
        say(f"warehouse: SMSC_DATABASE_URL ({url.render_as_string(hide_password=True)})")
        return url
    server = make_url(postgres.server_url())
    with _maintenance(server) as conn:
        exists = conn.execute(
            text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": DEMO_DATABASE}
        ).scalar()
        if not exists:
            conn.execute(text(f"CREATE DATABASE {_quoted(DEMO_DATABASE)}"))
    url = server.set(database=DEMO_DATABASE)
    say(f"warehouse: {url.render_as_string(hide_password=True)}")
    return url


def metadata_database(warehouse: URL) -> URL:
    """Airflow's metadata: ``<warehouse database>_airflow`` on the warehouse's server, dropped
    and created empty (like ``.state/airflow``: a backfill skips days that already have runs).

    Not the stack's own throwaway database: that one dies with the stack's process, and the
    demo's Airflow outlives ``run``; ``--stop`` drops this one.
    """
    name = f"{warehouse.database}_airflow"
    url = warehouse.set(drivername="postgresql+psycopg2", database=name)
    with _maintenance(url) as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {_quoted(name)} WITH (FORCE)"))
        conn.execute(text(f"CREATE DATABASE {_quoted(name)}"))
    say(f"Airflow metadata: {url.render_as_string(hide_password=True)} (created empty)")
    return url


def drop_metadata(recorded: str) -> None:
    """Drop the metadata database ``run`` recorded. The record has no password: it comes from
    SMSC_DATABASE_URL when that names the same server and user, else from libpq's
    PGPASSWORD or ~/.pgpass."""
    url = make_url(recorded)
    configured = os.environ.get("SMSC_DATABASE_URL")
    if configured:
        given = make_url(configured)
        if (given.host, given.port, given.username) == (url.host, url.port, url.username):
            url = url.set(password=given.password)
    try:
        with _maintenance(url) as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {_quoted(str(url.database))} WITH (FORCE)"))
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else "no connection"
        say(f"could not drop {recorded} ({reason}); the next make demo recreates it")
        return
    say(f"dropped Airflow's metadata database {recorded}")


@contextlib.contextmanager
def _maintenance(server: URL) -> Iterator[Connection]:
    """An autocommit connection to ``server``'s ``postgres`` database, for CREATE/DROP DATABASE."""
    engine = create_engine(
        server.set(drivername="postgresql+psycopg2", database="postgres"),
        isolation_level="AUTOCOMMIT",
        connect_args={"connect_timeout": 10},
    )
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def smsc_connection(pids: dict[str, int]) -> dict[str, Any]:
    """The real SMSC when credentials are in the environment, else a started simulator."""
    if os.environ.get("AIRFLOW_CONN_SMSC_DEFAULT"):
        say("SMSC: the real API, from AIRFLOW_CONN_SMSC_DEFAULT")
        conn: dict[str, Any] = json.loads(os.environ["AIRFLOW_CONN_SMSC_DEFAULT"])
        return conn
    if os.environ.get("SMSC_LOGIN") and os.environ.get("SMSC_PASSWORD"):
        say("SMSC: the real API at smsc.ru, as SMSC_LOGIN")
        return {
            "conn_type": "smsc",
            "host": os.environ.get("SMSC_HOST", "smsc.ru"),
            "login": os.environ["SMSC_LOGIN"],
            "password": os.environ["SMSC_PASSWORD"],
        }
    STATE.mkdir(exist_ok=True)
    sim = start_simulator("--quiet", log_path=STATE / "simulator.log")
    pids["simulator"] = sim.process.pid
    say(f"SMSC: simulator at {sim.url} (3 calls per 60 s, like the real API)")
    return {"conn_type": "smsc", "host": sim.url, "login": "demo", "password": "demo-password"}


def account_key(conn: Mapping[str, Any]) -> str:
    """The warehouse's key for the demo's SMSC connection: extra ``account``, else the login."""
    extra = conn.get("extra") or {}
    if isinstance(extra, str):
        extra = json.loads(extra or "{}")
    return str(extra.get("account") or conn.get("login") or "")


class ProgressLine:
    """One line updated in place on a terminal; elsewhere (a CI log, a pipe) a line per
    change of what it reports, the countdowns left out so a wait is not a line a second."""

    def __init__(self, stream: TextIO = sys.stdout) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.last_key: tuple[Any, ...] | None = None
        self.shown = False

    def update(self, key: tuple[Any, ...], line: str) -> None:
        if self.tty:
            self.stream.write(f"\r\033[Kdemo: {line}")
            self.stream.flush()
            self.shown = True
        elif key != self.last_key:
            print(f"demo: {line}", file=self.stream, flush=True)
        self.last_key = key

    def close(self) -> None:
        """End the in-place line, so what follows starts on a line of its own."""
        if self.tty and self.shown:
            self.stream.write("\n")
            self.stream.flush()
            self.shown = False


def show_progress(
    stack: AirflowStack,
    warehouse: URL,
    days: list[date],
    started: float,
    timeout: float,
    account: str,
) -> None:
    """Days done / total, API calls, the next rate-limit slot and the ETA, until every day
    has landed: one line that updates in place on a terminal, a line per change otherwise.

    A day's run may be the backfill's or the scheduled one that unpausing created (the
    backfill skips a day that already has a run), so runs are matched by their day. The
    ETA is the rate budget's (one call per day left, 3 per 61 s), as on the SMSC page.
    """
    tz = zone(TIMEZONE)
    limit = PipelineSettings.from_env().rate
    engine = create_engine(warehouse)
    since = datetime.now(UTC) - timedelta(seconds=time.monotonic() - started)
    line = ProgressLine()
    try:
        while time.monotonic() - started < timeout:
            states: dict[date, str] = {}
            for run in stack.dag_runs(DAG_ID):
                day = datetime.fromisoformat(run["logical_date"]).astimezone(tz).date()
                if day in days:
                    states[day] = run["state"]
            done = sum(state == "success" for state in states.values())
            failed = sum(state == "failed" for state in states.values())
            with engine.connect() as conn:
                calls = conn.execute(_CALLS_SQL, {"since": since}).scalar_one()
                ledger = queries.ledger_state(
                    conn,
                    account,
                    span=limit.span,
                    calls=limit.calls,
                    ip_block_pause=IP_BLOCK_PAUSE,
                    auth_window=AUTH_FAILURE_WINDOW,
                )
            left = len(days) - done - failed
            status = f"{done}/{len(days)} days loaded, {calls} API calls"
            if failed:
                status += f", {failed} FAILED"
            if left:
                slot = ui_status.next_free_slot(ledger.recent_starts, limit, ledger.now)
                wait = (slot - ledger.now).total_seconds()
                status += f", next slot {'now' if wait < 1 else f'in {wait:.0f} s'}"
                # One call per day; a day whose call was made (or is in flight) needs none.
                calls_left = len(days) - max(calls, done + failed)
                if calls_left > 0:
                    eta = ui_status.eta(calls_left, ledger.recent_starts, limit, ledger.now)
                    status += f", ETA {max((eta - ledger.now).total_seconds(), 0):.0f} s"
            line.update(
                (done, failed, calls),
                f"[{time.monotonic() - started:4.0f} s] {status}",
            )
            if not left:
                line.close()
                if failed:
                    raise SystemExit(
                        f"demo: {failed} day(s) failed; see the UI at {stack.url}"
                        f" and the SMSC page at {page_url(stack)}"
                    )
                return
            time.sleep(1 if line.tty else 2)
    finally:
        line.close()
        engine.dispose()
    raise SystemExit(f"demo: backfill not finished after {timeout:.0f} s; see {page_url(stack)}")


def page_url(stack: AirflowStack) -> str:
    """The SMSC operations page the plugin mounts in the api-server."""
    return f"{stack.url}{PAGE_PREFIX}/"


# API calls since the demo started.
_CALLS_SQL = text("SELECT count(*) FROM smsc.api_calls WHERE reserved_at >= :since")


def print_results(warehouse: URL, first: str, last: str) -> None:
    engine = create_engine(warehouse)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT stat_date, account, login, cnt, credit, debit, currency"
                " FROM smsc.daily_stats WHERE stat_date BETWEEN :a AND :b"
                " ORDER BY stat_date, login"
            ),
            {"a": first, "b": last},
        ).all()
    engine.dispose()
    print(f"\nsmsc.daily_stats, {first} .. {last} ({len(rows)} rows):")
    line = "{!s:<11} {:<8} {:<12} {:>6} {!s:>10} {!s:>10} {}"
    print(line.format("stat_date", "account", "login", "cnt", "credit", "debit", "currency"))
    for row in rows:
        print(line.format(*row))


def run() -> None:
    began = time.monotonic()
    if STATE_FILE.exists():
        say("a previous demo is still running: stopping it first")
        stop()
    pids: dict[str, int] = {}
    # Fresh Airflow state each time (a backfill skips days that already have runs); the
    # warehouse and its call ledger persist, and reloading a day is idempotent.
    shutil.rmtree(AIRFLOW_HOME, ignore_errors=True)
    warehouse = warehouse_database()
    metadata = metadata_database(warehouse)
    smsc = smsc_connection(pids)
    stack = AirflowStack(
        home=AIRFLOW_HOME,
        connections={"smsc_default": smsc, "smsc_warehouse": postgres_connection(warehouse)},
        timezone=TIMEZONE,
        # Unpausing creates today's scheduled run; without lookback it adds one call.
        extra_env={"SMSC_LOOKBACK_DAYS": os.environ.get("SMSC_LOOKBACK_DAYS", "0")},
        metadata_url=metadata.render_as_string(hide_password=False),
    )
    save_state(pids, metadata)
    say(f"Airflow home: {stack.home}")
    stack.init()
    real_smsc = "simulator" not in pids
    bootstrap_args = ["-m", "smsc_hook.bootstrap"] + ([] if real_smsc else ["--no-api-call"])
    for line in stack.python(*bootstrap_args).splitlines():
        if line.startswith("bootstrap"):
            say(line)
    stack.start()
    pids.update({name: p.pid for name, p in stack.processes.items()})
    save_state(pids, metadata)
    say(f"Airflow api-server, scheduler and dag-processor running; UI {stack.url}")
    stack.wait_for_dag(DAG_ID)
    stack.unpause(DAG_ID)
    today = datetime.now(zone(TIMEZONE)).date()
    days = [today - timedelta(days=back) for back in range(DAYS, 0, -1)]
    first, last = days[0], days[-1]
    say(f"backfilling {first} .. {last} ({DAYS} days, one API call each, 3 per minute)")
    stack.airflow(
        "backfill", "create", "--dag-id", DAG_ID, "--from-date", first.isoformat(),
        "--to-date", last.isoformat(), "--max-active-runs", "3",
    )  # fmt: skip
    show_progress(stack, warehouse, days, began, timeout=540, account=account_key(smsc))
    print_results(warehouse, first.isoformat(), last.isoformat())
    psql = warehouse.set(drivername="postgresql").render_as_string(hide_password=True)
    print(
        f"\nDone in {time.monotonic() - began:.0f} s. Still running, for you to look around:\n"
        f"  Airflow UI   {stack.url}  (no login: local simple auth manager, everyone admin)\n"
        f"  SMSC page    {page_url(stack)}  (also in the UI's navigation bar: SMSC)\n"
        f"  SQL          psql '{psql}' -c 'SELECT * FROM smsc.daily_stats ORDER BY stat_date'\n"
        f"  Stop it all  make demo-stop\n"
    )


def save_state(pids: Mapping[str, int], metadata: URL) -> None:
    """Record each started process with its start time (so ``--stop`` leaves alone a pid the
    system has since given to another process) and the metadata database, without password."""
    STATE.mkdir(exist_ok=True)
    processes = {name: {"pid": pid, "start": start_time(pid)} for name, pid in pids.items()}
    public = metadata._replace(password=None).render_as_string(hide_password=False)
    STATE_FILE.write_text(json.dumps({"processes": processes, "metadata": public}, indent=1))


def load_state() -> tuple[dict[str, int], str | None]:
    """The recorded processes that are still (or were) the ones ``run`` started, by name,
    and the metadata database's URL."""
    if not STATE_FILE.exists():
        return {}, None
    state = json.loads(STATE_FILE.read_text())
    if "processes" not in state:  # written by a demo before metadata moved to PostgreSQL
        state = {"processes": {name: {"pid": pid, "start": None} for name, pid in state.items()}}
    pids: dict[str, int] = {}
    for name, entry in state["processes"].items():
        now = start_time(entry["pid"])
        if None not in (now, entry["start"]) and now != entry["start"]:
            say(f"{name} (pid {entry['pid']}): already gone (the pid is another process now)")
            continue
        pids[name] = entry["pid"]
    return pids, state.get("metadata")


def stop() -> None:
    """Stop what ``run`` left running (the Airflow services, their task processes and the
    simulator), then drop the metadata database and stop the private cluster."""
    pids, metadata = load_state()
    outcome = terminate(pids, grace=STOP_GRACE, home=AIRFLOW_HOME)
    for message in outcome.messages or ["no demo processes were running"]:
        say(message)
    if outcome.survivors:
        raise SystemExit(
            f"demo: pid(s) {', '.join(map(str, outcome.survivors))} survived SIGKILL (stuck in"
            f" the kernel?); kept {STATE_FILE} and the metadata database: run make demo-stop"
            " again later"
        )
    if metadata:
        drop_metadata(metadata)
    STATE_FILE.unlink(missing_ok=True)
    if (postgres.PRIVATE_DIR / "data").exists():
        postgres.stop_private_cluster()
        say("stopped the private PostgreSQL cluster under .state/pg")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.demo", description=__doc__)
    parser.add_argument("--stop", action="store_true", help="stop a running demo")
    args = parser.parse_args(argv)
    stop() if args.stop else run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
