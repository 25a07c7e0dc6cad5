"""One benchmark phase: a fresh simulator, warehouse and Airflow stack backfill one DAG
(or one DAG per account, all at once).

Each phase starts from nothing (the simulator's rate window, the call ledger and Airflow's
metadata are all new), runs ``airflow backfill create`` exactly as a user would, and
collects the raw evidence afterwards: the simulator's request log, the call ledger, every
task try from the metadata database, the task logs' timestamps, the process samples and
the CPU counters of every process of the stack (idle, then over the backfill). Turning
that into numbers is ``metrics``' job.
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

from sqlalchemy import bindparam, create_engine, text

from devtools.airflow_stack import REPO_ROOT, AirflowStack, pipeline_connections, running_stack
from devtools.benchmark.procs import (
    CpuSnapshot,
    CpuUse,
    ProcessSampler,
    ProcessSamples,
    cpu_snapshot,
    cpu_use,
    live_processes,
    postmaster_pids,
    ti_key,
)
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
    #: Named SMSC accounts (``SMSC_ACCOUNTS``), each its own simulator login, connection
    #: ``smsc_<name>``, pool and DAG ``<dag_id>_<name>``; empty: the default account.
    accounts: tuple[str, ...] = ()
    #: The checkout the stack runs (plugins, PYTHONPATH, bootstrap); see ``AirflowStack``.
    code_root: Path = REPO_ROOT
    #: Which code that is, for people ("HEAD", a short hash).
    code: str = "HEAD"

    @property
    def title(self) -> str:
        runs = "default" if self.max_active_runs is None else str(self.max_active_runs)
        return f"{self.kind} (`{self.dag_id}`), max active runs {runs}"

    @property
    def dag_ids(self) -> tuple[str, ...]:
        return tuple(f"{self.dag_id}_{name}" for name in self.accounts) or (self.dag_id,)

    @property
    def logins(self) -> tuple[str, ...]:
        """The simulator login of each DAG of :attr:`dag_ids`."""
        return self.accounts or (SMSC_LOGIN,)


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
    dag_id: str = ""

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


@dataclass(frozen=True)
class AccountRun:
    """One account's DAG in a phase: its login, backfill created and last run ended."""

    dag_id: str
    login: str
    started: float
    finished: float
    run_states: dict[str, int]
    windows_loaded: int


@dataclass
class PhaseRecord:
    """The raw evidence of one phase.

    With several accounts, ``command`` and ``started`` are the first DAG's, ``finished``
    the last run of any, and the rest covers every DAG; ``accounts`` has each one's own.
    """

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
    accounts: list[AccountRun]
    #: From just before the first ``backfill create`` to the poll that saw every run end.
    cpu: CpuUse
    #: The same groups over the idle baseline: DAGs parsed and unpaused, nothing running.
    idle: CpuUse


def password(login: str) -> str:
    """A bench account's simulator password (local fake, not a secret)."""
    return SMSC_PASSWORD if login == SMSC_LOGIN else f"{login}-password"


def connections(
    spec: PhaseSpec, simulator_url: str, warehouse_url: str
) -> dict[str, dict[str, Any]]:
    """``AIRFLOW_CONN_*`` payloads for the simulator account(s) and the phase's warehouse."""
    if not spec.accounts:
        return pipeline_connections(
            simulator_url, warehouse_url, login=SMSC_LOGIN, password=SMSC_PASSWORD
        )
    found: dict[str, dict[str, Any]] = {}
    for name in spec.accounts:
        pair = pipeline_connections(
            simulator_url, warehouse_url, login=name, password=password(name)
        )
        found[f"smsc_{name}"] = pair.pop("smsc_default")
        found.update(pair)
    return found


def simulator_args(spec: PhaseSpec, folder: Path) -> list[str]:
    """The real limit, no time scaling; the accounts' logins when the spec names some."""
    args = ["--quiet", "--rate-limit", "3", "--rate-window", "60", "--time-scale", "1"]
    if spec.accounts:
        folder.mkdir(parents=True, exist_ok=True)
        accounts = folder / "simulator-accounts.json"
        accounts.write_text(
            json.dumps([{"login": name, "password": password(name)} for name in spec.accounts])
        )
        args += ["--accounts", str(accounts)]
    return args


def stack_env(spec: PhaseSpec) -> dict[str, str]:
    """The DAG settings every phase shares, plus ``SMSC_ACCOUNTS`` for named accounts."""
    env = {
        # A start date of today: the scheduler creates no scheduled run (its day is not
        # over), so every call in the phase is the backfill's.
        "SMSC_LOOKBACK_DAYS": "0",
        "SMSC_START_DATE": datetime.now(UTC).date().isoformat(),
    }
    if spec.accounts:
        env["SMSC_ACCOUNTS"] = json.dumps([{"name": name} for name in spec.accounts])
    # Sized as a deployment for that many accounts would be: each account's load may wait
    # for its rate window in a worker slot, beside its run's pool watch.
    env["AIRFLOW__CORE__PARALLELISM"] = str(parallelism(spec))
    return env


def parallelism(spec: PhaseSpec) -> int:
    """LocalExecutor slots of a phase's stack: 3 per account, at least the stack's 4."""
    return max(4, 3 * max(len(spec.accounts), 1))


def backfill_command(spec: PhaseSpec, days: list[date], dag_id: str | None = None) -> list[str]:
    """The user's command: ``airflow backfill create`` for the days, nothing else."""
    command = ["backfill", "create", "--dag-id", dag_id or spec.dag_id]
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
    idle_seconds: float = 60,
) -> PhaseRecord:
    """Backfill ``days`` with each of ``spec``'s DAGs on fresh infrastructure, every
    backfill created one right after the other; return the evidence."""
    accounts = f"{len(spec.accounts)} account(s), " if spec.accounts else ""
    say(
        spec,
        f"{accounts}code {spec.code}: fresh simulator (3 calls / 60 s per account, no time "
        "scaling), warehouse and Airflow home",
    )
    folder = work_dir / spec.label
    # The metadata database is the phase's, not the stack's: the tries are read from it
    # after the services stopped, and it is dropped with the warehouse however the phase ends.
    with (
        running_simulator(*simulator_args(spec, folder)) as sim,
        throwaway_database(server_url, prefix="smsc_bench") as warehouse,
        throwaway_database(server_url, prefix="smsc_bench_meta") as metadata,
    ):
        stack = AirflowStack(
            home=folder / "airflow",
            connections=connections(spec, sim.url, warehouse),
            timezone=timezone,
            extra_env=stack_env(spec),
            dags_folder=spec.dags_folder,
            code_root=spec.code_root,
            metadata_url=metadata,
        )
        with running_stack(stack):
            dags_report_s = prepare(stack, spec)
            meter = CpuMeter(stack, sim.process.pid)
            idle = meter.idle(spec, idle_seconds)
            with sampling(stack) as samples:
                before = meter.snapshot()
                created: dict[str, float] = {}
                for dag_id in spec.dag_ids:
                    created[dag_id] = time.time()
                    stack.airflow(*backfill_command(spec, days, dag_id))
                timed_out = wait_for_runs(stack, spec, len(days), created[spec.dag_ids[0]])
                cpu = cpu_use(before, meter.snapshot())
                stopped = time.time()
            runs = backfill_runs(stack, spec)
        requests = [r for r in sim.control.requests() if r["path"] == API_PATH]
        ledger, windows = read_warehouse(warehouse, days)
        tries = read_tries(metadata, spec.dag_ids)
    say(spec, f"CPU {cpu.total:.1f} s over {cpu.seconds:.0f} s: " + cpu_summary(cpu))
    # Kept with the Airflow home: the simulator and both databases are gone after the phase.
    evidence = {
        "requests": requests,
        "ledger": ledger,
        "windows_loaded": windows,
        "tries": [asdict(attempt) for attempt in tries],
        "cpu": asdict(cpu),
        "idle_cpu": asdict(idle),
    }
    (folder / "evidence.json").write_text(json.dumps(evidence, indent=1))
    started = created[spec.dag_ids[0]]
    per_account = [
        AccountRun(
            dag_id=dag_id,
            login=login,
            started=created[dag_id],
            finished=finished_at(runs[dag_id], len(days), created[dag_id], stopped),
            run_states=dict(Counter(run["state"] for run in runs[dag_id])),
            windows_loaded=windows.get(login, 0),
        )
        for dag_id, login in zip(spec.dag_ids, spec.logins, strict=True)
    ]
    every_run = [run for dag_runs in runs.values() for run in dag_runs]
    return PhaseRecord(
        spec=spec,
        days=days,
        command=["airflow", *backfill_command(spec, days, spec.dag_ids[0])],
        started=started,
        finished=max(account.finished for account in per_account),
        timed_out=timed_out,
        run_states=dict(Counter(run["state"] for run in every_run)),
        requests=requests,
        ledger=ledger,
        windows_loaded=sum(windows.values()),
        tries=tries,
        marks=read_log_marks(stack.home / "logs"),
        processes=samples,
        dags_report_s=dags_report_s,
        processor_parse_s=read_processor_parse(stack.home / "service-logs", spec.dag_file),
        airflow_home=stack.home,
        accounts=per_account,
        cpu=cpu,
        idle=idle,
    )


def cpu_summary(cpu: CpuUse) -> str:
    parts = [f"{name} {seconds:.1f}" for name, seconds in cpu.groups.items()]
    orphans = f", {cpu.orphans} orphan(s)" if cpu.orphans else ""
    return ", ".join(parts) + f"; simulator {cpu.simulator:.1f} (not counted){orphans}"


class CpuMeter:
    """Snapshots of the stack's CPU counters: each service's process tree, the PostgreSQL
    server's, this process's reaped ``airflow`` commands; the simulator apart."""

    def __init__(self, stack: AirflowStack, simulator_pid: int) -> None:
        self.groups = {name: {process.pid} for name, process in stack.processes.items()}
        self.sessions = {process.pid for process in stack.processes.values()}
        self.groups["PostgreSQL"] = postmaster_pids(live_processes())
        self.simulator_pid = simulator_pid

    def snapshot(self) -> CpuSnapshot:
        return cpu_snapshot(self.groups, self.sessions, self.simulator_pid)

    def idle(self, spec: PhaseSpec, seconds: float) -> CpuUse:
        """The same groups over ``seconds`` of nothing to do (DAGs parsed and unpaused)."""
        say(spec, f"idle baseline: {seconds:.0f} s with the DAGs unpaused and nothing to run")
        before = self.snapshot()
        time.sleep(seconds)
        idle = cpu_use(before, self.snapshot())
        say(spec, f"idle CPU {idle.total / idle.seconds * 60:.1f} s/min: " + cpu_summary(idle))
        return idle


def say(spec: PhaseSpec, message: str) -> None:
    print(f"benchmark [{spec.label}]: {message}", flush=True)


def prepare(stack: AirflowStack, spec: PhaseSpec) -> float | None:
    """Bootstrap (pool, migrations), the phase's pool, the DAG parsed and unpaused.

    Returns the parse duration ``airflow dags report`` measures for the DAG file.
    """
    if spec.code_root != REPO_ROOT:
        # The editable install points at this checkout; PYTHONPATH must win over it.
        found = stack.python("-c", "import smsc_hook; print(smsc_hook.__file__)").strip()
        if not Path(found).is_relative_to(spec.code_root):
            raise RuntimeError(
                f"{spec.label}: smsc_hook imports from {found}, not {spec.code_root}"
            )
        say(spec, f"smsc_hook imports from {found}")
    stack.python("-m", "smsc_hook.bootstrap", "--no-api-call")
    if spec.pool:
        stack.airflow("pools", "set", spec.pool, "1", "benchmark baseline: one call at a time")
    for dag_id in spec.dag_ids:
        stack.wait_for_dag(dag_id)
        stack.unpause(dag_id)
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
    """Sample this stack's task processes, its memory (and the machine) while the block runs."""
    services = {p.pid for p in stack.processes.values()}
    sampler = ProcessSampler({os.getsid(0), *services}, services)
    sampler.start()
    try:
        yield sampler.samples
    finally:
        sampler.stop()


def wait_for_runs(
    stack: AirflowStack, spec: PhaseSpec, expected: int, started: float, poll: float = 5
) -> bool:
    """Poll the backfills' runs (``expected`` per DAG) until all are terminal or the
    phase's time is up (then True).

    Every ``poll`` seconds, one small query on the metadata database: the REST API would
    cost the api-server (whose CPU is measured) a request per DAG and poll. The wall times
    come from the runs' ``end_date``, not from when a poll saw them.
    """
    last = ""
    expected_all = expected * len(spec.dag_ids)
    states = text(
        "SELECT state FROM dag_run WHERE run_type = 'backfill' AND dag_id IN :dag_ids"
    ).bindparams(bindparam("dag_ids", expanding=True))
    engine = create_engine(stack.metadata)
    timed_out = True
    try:
        while time.time() - started < spec.timeout:
            with engine.connect() as conn:
                every = list(conn.execute(states, {"dag_ids": list(spec.dag_ids)}).scalars())
            done = [state for state in every if state in TERMINAL]
            failed = every.count("failed")
            progress = f"{len(done)}/{expected_all} runs done" + (
                f", {failed} failed" if failed else ""
            )
            if progress != last:
                say(spec, f"{time.time() - started:5.0f} s: {progress}")
                last = progress
            if len(every) == expected_all and len(done) == expected_all:
                timed_out = False
                break
            time.sleep(poll)
    finally:
        engine.dispose()
    if timed_out:
        say(spec, f"stopped after {spec.timeout:.0f} s: {last}")
    return timed_out


def backfill_runs(stack: AirflowStack, spec: PhaseSpec) -> dict[str, list[dict[str, Any]]]:
    """Each DAG's backfill runs, through the REST API (after the CPU was measured)."""
    return {
        dag_id: [r for r in stack.dag_runs(dag_id) if r["run_type"] == "backfill"]
        for dag_id in spec.dag_ids
    }


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


def finished_at(runs: list[dict[str, Any]], expected: int, started: float, stopped: float) -> float:
    """The last run's ``end_date`` once all ``expected`` ended; else when the phase stopped."""
    done = len(runs) == expected and all(run["state"] in TERMINAL for run in runs)
    return last_end(runs, started) if done else stopped


def last_end(runs: list[dict[str, Any]], started: float) -> float:
    ends = [parse_time(r.get("end_date")) for r in runs]
    return max((e for e in ends if e is not None), default=started)


def read_warehouse(
    url: str, days: list[date]
) -> tuple[list[tuple[str, float, float]], dict[str, int]]:
    """The call ledger (caller, reserved_at, waited s) and how many of ``days`` landed,
    per account (the warehouse's ``account``: the SMSC login)."""
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
                    "SELECT account, count(DISTINCT window_start) FROM smsc.load_log"
                    " WHERE window_start BETWEEN :a AND :b GROUP BY account"
                ),
                {"a": days[0], "b": days[-1]},
            ).all()
    finally:
        engine.dispose()
    return ledger, {str(account): int(count) for account, count in windows}


_TRIES_SQL = text("""
SELECT dag_id, id, run_id, task_id, map_index, try_number, state, start_date, end_date
FROM task_instance WHERE dag_id IN :dags
UNION ALL
SELECT dag_id, task_instance_id, run_id, task_id, map_index, try_number, state, start_date,
       end_date
FROM task_instance_history WHERE dag_id IN :dags
""").bindparams(bindparam("dags", expanding=True))


def read_tries(metadata_url: str, dag_ids: tuple[str, ...]) -> list[TaskTry]:
    """Every try of every task of ``dag_ids`` (the current one and the history) from the
    Airflow metadata database at ``metadata_url``."""
    engine = create_engine(metadata_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(_TRIES_SQL, {"dags": list(dag_ids)}).all()
    finally:
        engine.dispose()
    tries: dict[tuple[str, str, str, int, int], TaskTry] = {}
    for dag_id, ti_id, run_id, task_id, map_index, try_number, state, start, end in rows:
        attempt = TaskTry(
            ti_key(ti_id),
            run_id,
            task_id,
            map_index,
            try_number,
            state,
            epoch(start),
            epoch(end),
            dag_id,
        )
        # A try can be both the current row and (once retried) a history row: keep one.
        key = (dag_id, *attempt.key)
        if key not in tries or attempt.end is not None:
            tries[key] = attempt
    return sorted(tries.values(), key=lambda t: (t.start or 0.0, t.dag_id, t.key))


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
