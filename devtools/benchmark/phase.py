"""One benchmark phase: a fresh simulator, warehouse and Airflow stack backfill one DAG.

Each phase starts from nothing (the simulator's rate window, the call ledger and Airflow's
metadata are all new), runs ``airflow backfill create`` exactly as a user would, and
collects the raw evidence afterwards: the simulator's request log, the call ledger, every
task try from the metadata database, the task logs' timestamps and the process samples.
Turning that into numbers is ``metrics``' job.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from devtools.airflow_stack import AirflowStack, pipeline_connections, running_stack
from devtools.benchmark.procs import ProcessSampler, ProcessSamples, ti_key
from devtools.postgres import throwaway_database
from devtools.simulator_process import running_simulator

API_PATH = "/sys/get.php"
#: The simulator's built-in account (well-known local credentials, not secrets).
SMSC_LOGIN, SMSC_PASSWORD = "demo", "demo-password"
TERMINAL = frozenset({"success", "failed"})
#: What the hook logs once a reply has arrived and parsed, and what both DAGs log after
#: the warehouse transaction committed.
REPLY_MARK, LOADED_MARK = "SMSC ", "Loaded "
WORKER_PARSE_MARK = "Worker startup parse complete"


@dataclass(frozen=True)
class PhaseSpec:
    """Which DAG a phase backfills, from which folder, in which extra pool."""

    #: "ours" or "naive", for people; ``label`` names the phase's folder.
    kind: str
    label: str
    dag_id: str
    dags_folder: Path
    dag_file: str
    #: Created with one slot through the CLI (our own pool comes from the bootstrap).
    pool: str | None
    timeout: float
    #: ``--max-active-runs`` of the backfill; None: Airflow's default (10).
    max_active_runs: int | None = None

    @property
    def title(self) -> str:
        runs = "default" if self.max_active_runs is None else str(self.max_active_runs)
        return f"{self.kind} (`{self.dag_id}`), max active runs {runs}"


@dataclass(frozen=True)
class TaskTry:
    """One try of one task instance, times as epoch seconds."""

    #: In :func:`~devtools.benchmark.procs.ti_key`'s spelling, as the process samples are.
    ti_id: str
    run_id: str
    task_id: str
    map_index: int
    try_number: int
    state: str | None
    start: float | None
    end: float | None

    @property
    def key(self) -> tuple[str, str, int, int]:
        return (self.run_id, self.task_id, self.map_index, self.try_number)


@dataclass(frozen=True)
class LogMarks:
    """From one try's log: reply parsed and transaction committed (times), DAG parse (s)."""

    reply: float | None = None
    loaded: float | None = None
    #: The task process's own parse of the DAG file (Airflow's ``dag_file_parse_ms``).
    parse: float | None = None


@dataclass
class PhaseRecord:
    """The raw evidence of one phase."""

    spec: PhaseSpec
    days: list[date]
    command: list[str]
    started: float
    finished: float
    timed_out: bool
    run_states: dict[str, int]
    requests: list[dict[str, Any]]
    ledger: list[tuple[str, float, float]]
    windows_loaded: int
    tries: list[TaskTry]
    marks: dict[tuple[str, str, int, int], LogMarks]
    processes: ProcessSamples
    dags_report_s: float | None
    processor_parse_s: list[float]
    airflow_home: Path


def connections(simulator_url: str, warehouse_url: str) -> dict[str, dict[str, Any]]:
    """``AIRFLOW_CONN_*`` payloads for the simulator and the phase's warehouse database."""
    return pipeline_connections(
        simulator_url, warehouse_url, login=SMSC_LOGIN, password=SMSC_PASSWORD
    )


def backfill_command(spec: PhaseSpec, days: list[date]) -> list[str]:
    """The user's command: ``airflow backfill create`` for the days, nothing else."""
    command = ["backfill", "create", "--dag-id", spec.dag_id]
    command += ["--from-date", days[0].isoformat(), "--to-date", days[-1].isoformat()]
    if spec.max_active_runs is not None:
        command += ["--max-active-runs", str(spec.max_active_runs)]
    return command


def run_phase(
    spec: PhaseSpec,
    days: list[date],
    *,
    timezone: str,
    server_url: str,
    work_dir: Path,
) -> PhaseRecord:
    """Backfill ``days`` with ``spec``'s DAG on fresh infrastructure; return the evidence."""
    say(spec, "fresh simulator (3 calls / 60 s, no time scaling), warehouse and Airflow home")
    # The metadata database is the phase's, not the stack's: the tries are read from it
    # after the services stopped, and it is dropped with the warehouse however the phase ends.
    with (
        running_simulator(
            "--quiet", "--rate-limit", "3", "--rate-window", "60", "--time-scale", "1"
        ) as sim,
        throwaway_database(server_url, prefix="smsc_bench") as warehouse,
        throwaway_database(server_url, prefix="smsc_bench_meta") as metadata,
    ):
        home = work_dir / spec.label / "airflow"
        stack = AirflowStack(
            home=home,
            connections=connections(sim.url, warehouse),
            timezone=timezone,
            extra_env={
                # A start date of today: the scheduler creates no scheduled run (its day is
                # not over), so every call in the phase is the backfill's.
                "SMSC_LOOKBACK_DAYS": "0",
                "SMSC_START_DATE": datetime.now(UTC).date().isoformat(),
            },
            dags_folder=spec.dags_folder,
            metadata_url=metadata,
        )
        with running_stack(stack):
            dags_report_s = prepare(stack, spec)
            command = backfill_command(spec, days)
            with sampling(stack) as samples:
                started = time.time()
                stack.airflow(*command)
                runs, timed_out = wait_for_runs(stack, spec, len(days), started)
            finished = time.time() if timed_out else last_end(runs, started)
        requests = [r for r in sim.control.requests() if r["path"] == API_PATH]
        ledger, windows = read_warehouse(warehouse, days)
        tries = read_tries(metadata, spec.dag_id)
    # Kept with the Airflow home: the simulator and both databases are gone after the phase.
    evidence = {
        "requests": requests,
        "ledger": ledger,
        "windows_loaded": windows,
        "tries": [asdict(attempt) for attempt in tries],
    }
    (home.parent / "evidence.json").write_text(json.dumps(evidence, indent=1))
    return PhaseRecord(
        spec=spec,
        days=days,
        command=["airflow", *command],
        started=started,
        finished=finished,
        timed_out=timed_out,
        run_states=dict(Counter(run["state"] for run in runs)),
        requests=requests,
        ledger=ledger,
        windows_loaded=windows,
        tries=tries,
        marks=read_log_marks(stack.home / "logs"),
        processes=samples,
        dags_report_s=dags_report_s,
        processor_parse_s=read_processor_parse(stack.home / "service-logs", spec.dag_file),
        airflow_home=stack.home,
    )


def say(spec: PhaseSpec, message: str) -> None:
    print(f"benchmark [{spec.label}]: {message}", flush=True)


def prepare(stack: AirflowStack, spec: PhaseSpec) -> float | None:
    """Bootstrap (pool, migrations), the phase's pool, the DAG parsed and unpaused.

    Returns the parse duration ``airflow dags report`` measures for the DAG file.
    """
    stack.python("-m", "smsc_hook.bootstrap", "--no-api-call")
    if spec.pool:
        stack.airflow("pools", "set", spec.pool, "1", "benchmark baseline: one call at a time")
    stack.wait_for_dag(spec.dag_id)
    stack.unpause(spec.dag_id)
    return dags_report_duration(stack)


def dags_report_duration(stack: AirflowStack) -> float | None:
    """The DAG folder's parse time as Airflow's own DagBag reports it (seconds)."""
    out = stack.airflow("dags", "report", "--output", "json", check=False)
    rows: list[dict[str, Any]] = []
    for line in out.splitlines():
        if line.startswith("[{"):
            with contextlib.suppress(json.JSONDecodeError):
                rows = json.loads(line)
    durations = [_seconds(row.get("duration")) for row in rows]
    found = [d for d in durations if d is not None]
    return sum(found) if found else None


def _seconds(value: object) -> float | None:
    """``dags report`` prints a timedelta: ``0:00:00.123456``."""
    if not isinstance(value, str):
        return None
    hours, minutes, seconds = value.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


@contextmanager
def sampling(stack: AirflowStack) -> Iterator[ProcessSamples]:
    """Sample this stack's task processes (and the machine) while the block runs."""
    sessions = {os.getsid(0), *(p.pid for p in stack.processes.values())}
    sampler = ProcessSampler(sessions)
    sampler.start()
    try:
        yield sampler.samples
    finally:
        sampler.stop()


def wait_for_runs(
    stack: AirflowStack, spec: PhaseSpec, expected: int, started: float
) -> tuple[list[dict[str, Any]], bool]:
    """Poll the backfill's runs until all are terminal or the phase's time is up."""
    last = ""
    runs: list[dict[str, Any]] = []
    while time.time() - started < spec.timeout:
        runs = [r for r in stack.dag_runs(spec.dag_id) if r["run_type"] == "backfill"]
        done = [r for r in runs if r["state"] in TERMINAL]
        failed = sum(r["state"] == "failed" for r in runs)
        progress = f"{len(done)}/{expected} runs done" + (f", {failed} failed" if failed else "")
        if progress != last:
            say(spec, f"{time.time() - started:5.0f} s: {progress}")
            last = progress
        if len(runs) == expected and len(done) == expected:
            return runs, False
        time.sleep(1)
    say(spec, f"stopped after {spec.timeout:.0f} s: {last}")
    return runs, True


def parse_time(value: str | None) -> float | None:
    """An ISO timestamp (the API's or a task log's, naive means UTC) as epoch seconds."""
    if not value:
        return None
    return epoch(datetime.fromisoformat(value.replace("Z", "+00:00")))


def epoch(moment: datetime | None) -> float | None:
    """A datetime (PostgreSQL's are aware; naive means UTC) as epoch seconds."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def last_end(runs: list[dict[str, Any]], started: float) -> float:
    ends = [parse_time(r.get("end_date")) for r in runs]
    return max((e for e in ends if e is not None), default=started)


def read_warehouse(url: str, days: list[date]) -> tuple[list[tuple[str, float, float]], int]:
    """The call ledger (caller, reserved_at, waited s) and how many of ``days`` landed."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            ledger = [
                (caller, reserved_at.timestamp(), waited_ms / 1000)
                for caller, reserved_at, waited_ms in conn.execute(
                    text("SELECT caller, reserved_at, waited_ms FROM smsc.api_calls ORDER BY id")
                )
            ]
            windows = conn.execute(
                text(
                    "SELECT count(DISTINCT window_start) FROM smsc.load_log"
                    " WHERE window_start BETWEEN :a AND :b"
                ),
                {"a": days[0], "b": days[-1]},
            ).scalar_one()
    finally:
        engine.dispose()
    return ledger, int(windows)


_TRIES_SQL = """
SELECT id, run_id, task_id, map_index, try_number, state, start_date, end_date
FROM task_instance WHERE dag_id = :dag
UNION ALL
SELECT task_instance_id, run_id, task_id, map_index, try_number, state, start_date, end_date
FROM task_instance_history WHERE dag_id = :dag
"""


def read_tries(metadata_url: str, dag_id: str) -> list[TaskTry]:
    """Every try of every task of ``dag_id`` (the current one and the history) from the
    Airflow metadata database at ``metadata_url``."""
    engine = create_engine(metadata_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text(_TRIES_SQL), {"dag": dag_id}).all()
    finally:
        engine.dispose()
    tries: dict[tuple[str, str, int, int], TaskTry] = {}
    for ti_id, run_id, task_id, map_index, try_number, state, start, end in rows:
        attempt = TaskTry(
            ti_key(ti_id), run_id, task_id, map_index, try_number, state, epoch(start), epoch(end)
        )
        # A try can be both the current row and (once retried) a history row: keep one.
        if attempt.key not in tries or attempt.end is not None:
            tries[attempt.key] = attempt
    return sorted(tries.values(), key=lambda t: (t.start or 0.0, t.key))


def read_log_marks(logs: Path) -> dict[tuple[str, str, int, int], LogMarks]:
    """Timestamps and parse times from every task log, keyed like :attr:`TaskTry.key`."""
    marks: dict[tuple[str, str, int, int], LogMarks] = {}
    for path in logs.glob("dag_id=*/**/attempt=*.log"):
        parts = dict(p.split("=", 1) for p in path.relative_to(logs).parts if "=" in p)
        key = (
            parts.get("run_id", ""),
            parts.get("task_id", ""),
            int(parts.get("map_index", "-1")),
            int(parts["attempt"].removesuffix(".log")),
        )
        marks[key] = _marks(_events(path))
    return marks


def _events(path: Path) -> Iterator[tuple[float, dict[str, Any]]]:
    for line in path.read_text(errors="replace").splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        moment = parse_time(event.get("timestamp")) if isinstance(event, dict) else None
        if moment is not None:
            yield moment, event


def _marks(events: Iterator[tuple[float, dict[str, Any]]]) -> LogMarks:
    reply = loaded = parse = None
    for moment, event in events:
        message = str(event.get("event", ""))
        if reply is None and message.startswith(REPLY_MARK) and " row(s), " in message:
            reply = moment
        elif loaded is None and message.startswith(LOADED_MARK):
            loaded = moment
        elif parse is None and message == WORKER_PARSE_MARK:
            parse = float(event.get("dag_file_parse_ms", 0)) / 1000
    return LogMarks(reply, loaded, parse)


# A row of the dag-processor's periodic stats table: bundle, file, ..., "0.14s", last run at.
_PROCESSOR_ROW = re.compile(
    r"^\S+\s+(?P<file>\S+\.py)\s.*?\s(?P<seconds>\d+\.\d+)s\s+\d{4}-\d\d-\d\dT"
)


def read_processor_parse(service_logs: Path, dag_file: str) -> list[float]:
    """The dag-processor's "Last Duration" of ``dag_file``, one per distinct parse."""
    log = service_logs / "dag-processor.log"
    seen: dict[str, float] = {}
    for line in _read_lines(log):
        found = _PROCESSOR_ROW.match(line)
        if found and found["file"] == dag_file:
            seen[line.rsplit(maxsplit=1)[-1]] = float(found["seconds"])  # keyed by run time
    return list(seen.values())


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()
    except OSError:
        return []
