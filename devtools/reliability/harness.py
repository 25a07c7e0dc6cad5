"""The reliability suite's machinery: real pipelines under faults, and the evidence to judge them.

Used by ``tests/reliability`` and by the soak script. A case brings up the simulator, a
warehouse and an Airflow stack, runs a backfill while something goes wrong, and then
gathers what happened from every witness — Airflow's runs and task instances, the
simulator's request log, the warehouse's call ledger, load log and rows — so that each
check compares two independent records instead of trusting one.
"""

from __future__ import annotations

import json
import re
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from devtools import postgres
from devtools.airflow_stack import AirflowStack, pipeline_connections, running_stack
from simulator.control import SimulatorControl
from smsc_hook.airflow.windows import zone

DAG_ID = "smsc_daily_stats"
ACCOUNT = "demo"
#: The simulator's built-in demo account, not a secret.
DEMO_PASSWORD = "demo-password"  # noqa: S105
TIMEZONE = "Europe/Moscow"
API_PATH = "/sys/get.php"
POOL = "smsc_api"
_TRY = re.compile(r"#(\d+)$")


# --- days and settings -----------------------------------------------------------------------


def local_today(tz: str = TIMEZONE) -> date:
    return datetime.now(zone(tz)).date()


def day_range(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def past_days(count: int, *, ending_days_ago: int = 2) -> list[date]:
    """``count`` consecutive days ending ``ending_days_ago`` days before today (Moscow)."""
    last = local_today() - timedelta(days=ending_days_ago)
    return day_range(last - timedelta(days=count - 1), last)


def pipeline_env(
    *,
    rate_window: float | None = None,
    rate_limit: int = 3,
    backoff: float = 2.0,
    ip_block_pause: float = 20.0,
    scheduled_run: bool = False,
) -> dict[str, str]:
    """``SMSC_*`` settings for a test deployment.

    ``rate_window`` None keeps SMSC's real 60 s. Without ``scheduled_run`` the start date is
    today, so unpausing creates no scheduled run and only the backfill calls the API.
    """
    env = {
        "SMSC_LOOKBACK_DAYS": "0",
        "SMSC_RATE_LIMIT": str(rate_limit),
        "SMSC_RETRY_BACKOFF_SECONDS": str(backoff),
        "SMSC_IP_BLOCK_PAUSE_SECONDS": str(ip_block_pause),
    }
    if rate_window is not None:
        env["SMSC_RATE_WINDOW_SECONDS"] = str(rate_window)
    if not scheduled_run:
        # The DAG refuses a start date after the host's date, which can trail Moscow's.
        env["SMSC_START_DATE"] = min(local_today(), date.today()).isoformat()  # noqa: DTZ011
    return env


def error9_wait(rate_window: float) -> float:
    """How long the pipeline waits after an error 9: the window + 1 s margin + 4 s."""
    return rate_window + 1 + 4


def write_accounts(path: Path, password: str) -> Path:
    """A simulator accounts file: the ``demo`` account (two subclients) with ``password``."""
    accounts = [
        {
            "login": ACCOUNT,
            "password": password,
            "subclients": ["demo-shop", "demo-news"],
            "currency": "RUB",
        }
    ]
    path.write_text(json.dumps(accounts), encoding="utf-8")
    return path


def connections(
    simulator_url: str, warehouse_url: str, *, password: str, **extra: Any
) -> dict[str, dict[str, Any]]:
    """``AIRFLOW_CONN_*`` payloads: the simulator as ``smsc_default``, the warehouse DB."""
    return pipeline_connections(
        simulator_url, warehouse_url, login=ACCOUNT, password=password, **extra
    )


# --- driving a deployment ------------------------------------------------------------------------


@contextmanager
def postgres_metadata(server_url: str) -> Iterator[dict[str, str]]:
    """``extra_env`` putting Airflow's metadata in a throwaway PostgreSQL database.

    With SQLite a busy scheduler locks the file: ``backfill create`` then fails half-way,
    Airflow deletes the runs it had committed, and the scheduler dies on the vanished rows
    (StaleDataError). Production uses PostgreSQL anyway.
    """
    with postgres.throwaway_database(server_url, prefix="smsc_airflow_meta") as url:
        yield {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": url}


def prepare(stack: AirflowStack) -> None:
    """Bootstrap (pool, migrations; no API call) and wait until the DAG is parsed."""
    stack.python("-m", "smsc_hook.bootstrap", "--no-api-call")
    stack.wait_for_dag(DAG_ID)


@contextmanager
def deployment(stack: AirflowStack, *, unpause: bool = True) -> Iterator[AirflowStack]:
    """A running, bootstrapped stack (DAG unpaused unless told otherwise)."""
    with running_stack(stack):
        prepare(stack)
        if unpause:
            stack.unpause(DAG_ID)
        yield stack


def backfill(
    stack: AirflowStack,
    first: date,
    last: date,
    max_active_runs: int = 3,
    *,
    backwards: bool = False,
) -> None:
    """``airflow backfill create`` for ``first``..``last`` (newest day first if ``backwards``)."""
    args: tuple[str, ...] = ("--dag-id", DAG_ID, "--from-date", first.isoformat())
    args += ("--to-date", last.isoformat(), "--max-active-runs", str(max_active_runs))
    if backwards:
        args += ("--run-backwards",)
    stack.airflow("backfill", "create", *args)


def dag_runs(stack: AirflowStack) -> list[dict[str, Any]]:
    """Every run of the DAG, all pages of the REST API (it returns at most 100 at once)."""
    runs: list[dict[str, Any]] = []
    while True:
        page = stack.api(
            "GET", f"/api/v2/dags/{DAG_ID}/dagRuns?limit=100&offset={len(runs)}&order_by=id"
        )
        runs += page["dag_runs"]
        if not page["dag_runs"] or len(runs) >= page["total_entries"]:
            return runs


def run_day(run: Mapping[str, Any], tz: str = TIMEZONE) -> date:
    return parse_time(str(run["logical_date"])).astimezone(zone(tz)).date()


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def wait_for_runs(
    stack: AirflowStack,
    expected: int,
    *,
    run_types: Sequence[str] = ("backfill",),
    timeout: float,
    during: Callable[[], None] | None = None,
    label: str = "",
    finished: bool = True,
) -> list[dict[str, Any]]:
    """Poll until ``expected`` runs of ``run_types`` exist and (unless ``finished`` is False)
    have finished; ``during`` is called on each poll."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        stack._check_alive()  # a dead scheduler would otherwise be waited on for the timeout
        runs = [r for r in dag_runs(stack) if r["run_type"] in run_types]
        done = [r for r in runs if r["state"] in ("success", "failed")]
        progress = f"{label}runs finished {len(done)}/{expected}"
        if progress != last:
            print(progress, flush=True)
            last = progress
        if len(runs) >= expected and (len(done) == len(runs) or not finished):
            return runs
        if during is not None:
            during()
        time.sleep(1)
    raise AssertionError(f"{label}runs did not finish within {timeout:.0f} s: {last}")


def task_instances(stack: AirflowStack, task_id: str | None = None) -> list[dict[str, Any]]:
    """Every task instance of the DAG (or of ``task_id``), all pages of the REST API."""
    instances: list[dict[str, Any]] = []
    query = "" if task_id is None else f"&task_id={task_id}"
    while True:
        page = stack.api(
            "GET",
            f"/api/v2/dags/{DAG_ID}/dagRuns/~/taskInstances"
            f"?limit=100&offset={len(instances)}{query}",
        )
        instances += page["task_instances"]
        if not page["task_instances"] or len(instances) >= page["total_entries"]:
            return instances


def task_tries(stack: AirflowStack, task_id: str = "load_day") -> list[dict[str, Any]]:
    """Every try of every instance of ``task_id`` (the REST API's try history)."""
    tries: list[dict[str, Any]] = []
    for ti in task_instances(stack, task_id):
        run_id = urllib.parse.quote(ti["dag_run_id"], safe="")
        path = f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}"
        if ti["map_index"] is not None and ti["map_index"] >= 0:
            path += f"/{ti['map_index']}"
        tries += stack.api("GET", f"{path}/tries")["task_instances"]
    return tries


# --- evidence ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LedgerCall:
    """One row of ``smsc.api_calls``."""

    id: int
    reserved_at: datetime
    finished_at: datetime | None
    window_start: date
    outcome: str
    error_code: int | None
    caller: str

    @property
    def try_number(self) -> int:
        match = _TRY.search(self.caller)
        return int(match.group(1)) if match else 0

    @property
    def task(self) -> str:
        """The caller without its try number: one task instance."""
        return _TRY.sub("", self.caller)


def query(url: str, sql: str, **params: Any) -> list[Any]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(sql), params).all())
    finally:
        engine.dispose()


def ledger(url: str) -> list[LedgerCall]:
    rows = query(
        url,
        "SELECT id, reserved_at, finished_at, window_start, outcome, error_code, caller"
        " FROM smsc.api_calls ORDER BY reserved_at, id",
    )
    return [LedgerCall(*row) for row in rows]


def stored_rows(url: str, days: Sequence[date]) -> dict[date, list[tuple[Any, ...]]]:
    """``smsc.daily_stats`` per day as sorted lists (a duplicate would show as a repeat)."""
    rows = query(
        url,
        "SELECT stat_date, login, cnt, credit, debit, currency FROM smsc.daily_stats"
        " WHERE account = :account AND series = 'main' AND stat_date = ANY(:days)",
        account=ACCOUNT,
        days=list(days),
    )
    stored: dict[date, list[tuple[Any, ...]]] = {day: [] for day in days}
    for day, *values in rows:
        stored[day].append(tuple(values))
    return {day: sorted(values) for day, values in stored.items()}


def truth_rows(
    control: SimulatorControl, days: Sequence[date]
) -> dict[date, list[tuple[Any, ...]]]:
    return {
        day: sorted(
            (r["login"], r["cnt"], r["credit"], r["debit"], r["currency"])
            for r in control.truth(ACCOUNT, day, day)
        )
        for day in days
    }


def loads_per_day(url: str, days: Sequence[date]) -> dict[date, int]:
    """``smsc.load_log`` rows covering each day (one per landed fetch)."""
    rows = query(
        url,
        "SELECT window_start, count(*) FROM smsc.load_log WHERE window_start = ANY(:days)"
        " AND window_start = window_end GROUP BY window_start",
        days=list(days),
    )
    counts = dict.fromkeys(days, 0)
    counts.update({day: n for day, n in rows})
    return counts


def api_requests(control: SimulatorControl) -> list[dict[str, Any]]:
    """The simulator's log of ``get.php`` requests (masked), oldest first."""
    return [r for r in control.requests() if r["path"] == API_PATH]


def request_day(entry: Mapping[str, Any]) -> date | None:
    start = entry.get("start")
    if not start:
        return None
    return datetime.strptime(str(start), "%d.%m.%Y").date()  # noqa: DTZ007 (a date)


@dataclass
class Evidence:
    """What every witness says about a finished backfill of ``days``."""

    days: list[date]
    runs: list[dict[str, Any]]
    requests: list[dict[str, Any]]
    calls: list[LedgerCall]
    stored: dict[date, list[tuple[Any, ...]]]
    truth: dict[date, list[tuple[Any, ...]]]
    loads: dict[date, int]
    tries: list[dict[str, Any]] = field(default_factory=list)

    @property
    def rows_checked(self) -> int:
        return sum(len(self.truth[day]) for day in self.days)

    def run_states(self) -> dict[date, str]:
        return {run_day(run): str(run["state"]) for run in self.runs}

    def wrong_days(self, skip: Iterable[date] = ()) -> dict[date, str]:
        """Days whose stored rows differ from the truth, or that landed other than once."""
        skipped = set(skip)
        wrong = {}
        for day in self.days:
            if day in skipped:
                continue
            if not self.truth[day]:
                wrong[day] = "the simulator has no rows for it (bad test day)"
            elif self.stored[day] != self.truth[day]:
                wrong[day] = f"stored {self.stored[day]} != truth {self.truth[day]}"
            elif self.loads[day] != 1:
                wrong[day] = f"landed {self.loads[day]} times"
        return wrong

    def calls_for(self, day: date) -> list[LedgerCall]:
        return [c for c in self.calls if c.window_start == day]

    def request_of(self, call: LedgerCall) -> dict[str, Any]:
        """The simulator's record of the request a ledger row reserved (one deployment)."""
        if len(self.calls) != len(self.requests):
            raise AssertionError(
                f"{len(self.calls)} ledger rows but {len(self.requests)} API requests"
            )
        request = self.requests[self.calls.index(call)]
        if request_day(request) != call.window_start:
            raise AssertionError(f"ledger row {call.id} and request {request} disagree")
        return request

    def requests_for(self, day: date) -> list[dict[str, Any]]:
        return [r for r in self.requests if request_day(r) == day]

    def tries_without_call(self) -> list[dict[str, Any]]:
        """Task tries that ended without reserving an API call (refused or failed before)."""
        called = {(c.task, c.try_number) for c in self.calls}
        missing = []
        for t in self.tries:
            map_index = t.get("map_index")
            index = f"[{map_index}]" if map_index is not None and map_index >= 0 else ""
            task = f"{DAG_ID}/{t['dag_run_id']}/{t['task_id']}{index}"
            if (task, t["try_number"]) not in called:
                missing.append(t)
        return missing


def gather(
    stack: AirflowStack,
    control: SimulatorControl,
    warehouse_url: str,
    days: Sequence[date],
    *,
    run_types: Sequence[str] = ("backfill",),
    with_tries: bool = False,
) -> Evidence:
    runs = [r for r in dag_runs(stack) if r["run_type"] in run_types]
    return Evidence(
        days=list(days),
        runs=runs,
        requests=api_requests(control),
        calls=ledger(warehouse_url),
        stored=stored_rows(warehouse_url, days),
        truth=truth_rows(control, days),
        loads=loads_per_day(warehouse_url, days),
        tries=task_tries(stack) if with_tries else [],
    )


def most_in_window(moments: Iterable[datetime | float], width: float) -> int:
    """The largest number of ``moments`` inside any half-open window of ``width`` seconds."""
    points = sorted(m.timestamp() if isinstance(m, datetime) else float(m) for m in moments)
    best = 0
    start = 0
    for end, point in enumerate(points):
        while point - points[start] >= width:
            start += 1
        best = max(best, end - start + 1)
    return best


def calls_in_gap(
    moments: Iterable[datetime | float], after: datetime | float, seconds: float
) -> list[float]:
    """Moments strictly inside ``(after, after + seconds)``."""
    t0 = after.timestamp() if isinstance(after, datetime) else after
    return [
        t
        for t in (m.timestamp() if isinstance(m, datetime) else float(m) for m in moments)
        if t0 < t < t0 + seconds
    ]


def overlapping(intervals: Iterable[tuple[datetime, datetime]]) -> int:
    """How many intervals begin before an earlier-started one has ended."""
    found = 0
    latest_end: datetime | None = None
    for start, end in sorted(intervals):
        if latest_end is not None and start < latest_end:
            found += 1
        latest_end = end if latest_end is None else max(latest_end, end)
    return found


def task_intervals(
    task_instances: Iterable[Mapping[str, Any]], task_id: str = "load_day"
) -> list[tuple[datetime, datetime]]:
    return [
        (parse_time(ti["start_date"]), parse_time(ti["end_date"]))
        for ti in task_instances
        if ti["task_id"] == task_id and ti.get("start_date") and ti.get("end_date")
    ]


class PoolWatcher:
    """Samples the pool while a backfill runs: the most slots ever in use at once."""

    def __init__(self, stack: AirflowStack, pool: str = POOL) -> None:
        self.stack = stack
        self.pool = pool
        self.samples = 0
        self.most_running = 0
        self.most_occupied = 0
        self.slots = 0

    def __call__(self) -> None:
        info = self.stack.api("GET", f"/api/v2/pools/{self.pool}")
        self.samples += 1
        self.slots = int(info["slots"])
        self.most_running = max(self.most_running, int(info["running_slots"]))
        self.most_occupied = max(self.most_occupied, int(info["occupied_slots"]))


# --- secrets -----------------------------------------------------------------------------------


def secret_forms(secret: str) -> tuple[str, ...]:
    """The secret as written and as URL/form encoding would spell it."""
    return tuple(
        dict.fromkeys(
            (secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret))
        )
    )


def count_secret(data: str | bytes, secret: str) -> int:
    forms = secret_forms(secret)
    if isinstance(data, bytes):
        return sum(data.count(form.encode()) for form in forms)
    return sum(data.count(form) for form in forms)


@dataclass
class SecretScan:
    """Where a secret was looked for and how often it was found."""

    places: dict[str, int] = field(default_factory=dict)
    items: dict[str, int] = field(default_factory=dict)

    def add(self, place: str, data: str | bytes, secret: str) -> None:
        self.places[place] = self.places.get(place, 0) + count_secret(data, secret)
        self.items[place] = self.items.get(place, 0) + 1

    @property
    def hits(self) -> int:
        return sum(self.places.values())

    @property
    def scanned(self) -> int:
        return sum(self.items.values())

    def found(self) -> dict[str, int]:
        return {place: n for place, n in self.places.items() if n}


def scan_files(scan: SecretScan, place: str, root: Path, secret: str) -> None:
    for path in sorted(root.rglob("*")):
        if path.is_file():
            scan.add(place, path.read_bytes(), secret)


def scan_database(scan: SecretScan, url: str, schema: str, place: str, secret: str) -> None:
    """Every row of every table in ``schema``, bytea included."""
    tables = [
        name
        for (name,) in query(
            url,
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = :schema AND table_type = 'BASE TABLE' ORDER BY table_name",
            schema=schema,
        )
    ]
    for table in tables:
        for row in query(url, f'SELECT * FROM "{schema}"."{table}"'):
            for value in row:
                data = bytes(value) if isinstance(value, bytes | memoryview) else str(value)
                scan.add(f"{place} ({len(tables)} tables)", data, secret)


def scan_xcoms(scan: SecretScan, stack: AirflowStack, secret: str) -> None:
    entries = stack.api(
        "GET", f"/api/v2/dags/{DAG_ID}/dagRuns/~/taskInstances/~/xcomEntries?limit=1000"
    )["xcom_entries"]
    for entry in entries:
        path = (
            f"/api/v2/dags/{DAG_ID}/dagRuns/{urllib.parse.quote(entry['run_id'], safe='')}"
            f"/taskInstances/{entry['task_id']}/xcomEntries/{entry['key']}"
            f"?map_index={entry['map_index']}"
        )
        scan.add("XComs (REST)", json.dumps(stack.api("GET", path)), secret)


# --- checks shared by the suite and the soak ------------------------------------------------------


def check_days(ev: Evidence, case: str, skip: Iterable[date] = ()) -> CaseFigures:
    """Every day (but ``skip``) equals the ground truth and landed exactly once."""
    skipped = set(skip)
    wrong = ev.wrong_days(skip=skipped)
    checked = [d for d in ev.days if d not in skipped]
    stored = sum(len(ev.stored[d]) for d in checked)
    expected = sum(len(ev.truth[d]) for d in checked)
    return CaseFigures(
        case=case,
        outcome="passed" if not wrong and stored == expected else "FAILED",
        calls=len(ev.calls),
        rows=sum(len(ev.truth[d]) for d in ev.days),
        figures=(
            f"{len(checked) - len(wrong)}/{len(checked)} days equal, {stored} rows stored, "
            f"{stored - expected:+d} lost(-)/duplicated(+)"
            + (f"; wrong: {dict(list(wrong.items())[:3])}" if wrong else "")
        ),
    )


def check_rate(ev: Evidence, case: str, limit: int, window: float) -> CaseFigures:
    """At most ``limit`` calls in any ``window`` s, by the simulator and by the ledger."""
    refused = [r for r in ev.requests if r.get("outcome") == "error" and r.get("error_code") == 9]
    by_sim = most_in_window([r["time"] for r in ev.requests], window)
    by_ledger = most_in_window([c.reserved_at for c in ev.calls], window)
    ok = not refused and by_sim <= limit and by_ledger <= limit
    return CaseFigures(
        case=case,
        outcome="passed" if ok else "FAILED",
        calls=len(ev.requests),
        figures=f"most in any {window:g} s: {by_sim} (simulator), {by_ledger} (ledger); "
        f"{len(refused)} refused by the API's own limit",
    )


def check_ip_block_pauses(ev: Evidence, case: str, pause: float) -> CaseFigures:
    """After every error 4, no call (ledger) and no request (simulator) until ``pause`` s."""
    blocks = [c for c in ev.calls if c.error_code == 4]
    reserved = [c.reserved_at for c in ev.calls]
    arrived = [r["time"] for r in ev.requests]
    broken = []
    gaps = []
    for call in blocks:
        request = ev.request_of(call)
        if calls_in_gap(reserved, call.reserved_at, pause) or calls_in_gap(
            arrived, request["time"], pause - 0.5
        ):
            broken.append(call.id)
        later = [c for c in ev.calls if c.reserved_at > call.reserved_at]
        if later:
            gaps.append((later[0].reserved_at - call.reserved_at).total_seconds())
    refused = ev.tries_without_call()
    return CaseFigures(
        case=case,
        outcome="passed" if not broken else "FAILED",
        calls=len(blocks),
        figures=(
            f"{len(blocks)} error 4; next call after "
            + (", ".join(f"{g:.1f}" for g in gaps) or "-")
            + f" s (pause {pause:g} s); {len(refused)} task tries refused without calling"
            + (f"; calls inside the pause after ledger rows {broken}" if broken else "")
        ),
    )


# --- the summary table ---------------------------------------------------------------------------


@dataclass
class CaseFigures:
    """One row of the summary: what a case proved and how much it looked at."""

    case: str
    outcome: str = "not run"
    calls: int = 0
    rows: int = 0
    figures: str = ""
    seconds: float = 0.0

    def update(self, other: CaseFigures) -> None:
        """Take another row's name and figures (not its outcome or time)."""
        self.case, self.calls, self.rows, self.figures = (
            other.case,
            other.calls,
            other.rows,
            other.figures,
        )


def format_table(cases: Sequence[CaseFigures]) -> str:
    header = ("case", "outcome", "calls made", "rows checked", "seconds", "figures")
    body = [
        (c.case, c.outcome, str(c.calls), str(c.rows), f"{c.seconds:.0f}", c.figures) for c in cases
    ]
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header) - 1)]

    def line(values: Sequence[str]) -> str:
        cells = [
            v.ljust(w) if i == 0 or i == 1 else v.rjust(w)
            for i, (v, w) in enumerate(zip(values, widths, strict=False))
        ]
        return "  ".join([*cells, values[-1]]).rstrip()

    rule = "  ".join("-" * w for w in widths) + "  " + "-" * 7
    return "\n".join([line(header), rule, *(line(r) for r in body)])


def utc_now() -> datetime:
    return datetime.now(UTC)


class RedisUnavailable(RuntimeError):
    """No Redis server answers where the Celery broker should be."""


def free_redis_db(host: str = "127.0.0.1", port: int = 6379) -> int:
    """An empty Redis database number (15 down to 1), for a Celery broker of one's own."""
    import redis

    try:
        for number in range(15, 0, -1):
            if redis.Redis(host=host, port=port, db=number).dbsize() == 0:
                return number
    except redis.exceptions.ConnectionError as exc:
        raise RedisUnavailable(f"no Redis on {host}:{port}: {exc}") from None
    raise RuntimeError(f"no empty Redis database on {host}:{port}")


def flush_redis_db(number: int, host: str = "127.0.0.1", port: int = 6379) -> None:
    import redis

    redis.Redis(host=host, port=port, db=number).flushdb()
