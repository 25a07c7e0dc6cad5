"""Numbers from one phase's evidence: throughput, efficiency, rejections, overhead, memory.

Pure functions of a :class:`~devtools.benchmark.phase.PhaseRecord`, so the definitions
(written out in ``docs/benchmarks.md``) live in one place and can be read next to the code.
"""

from __future__ import annotations

import itertools
import math
import statistics
from dataclasses import dataclass

from devtools.benchmark.phase import PhaseRecord, TaskTry

LIMIT = 3
WINDOW_S = 60.0
LOAD_TASK = "load_day"


@dataclass(frozen=True)
class Distribution:
    """Count, median, 95th percentile and maximum of some seconds (None when empty)."""

    count: int
    p50: float | None
    p95: float | None
    max: float | None

    @classmethod
    def of(cls, values: list[float]) -> Distribution:
        if not values:
            return cls(0, None, None, None)
        ordered = sorted(values)
        return cls(len(ordered), statistics.median(ordered), percentile(ordered, 95), ordered[-1])


@dataclass(frozen=True)
class PhaseMetrics:
    """Everything the report prints for one DAG."""

    title: str
    dag_id: str
    days: int
    windows: int
    run_states: dict[str, int]
    timed_out: bool
    wall_s: float
    windows_per_min: float
    calls_ok: int
    rejected_9: int
    other_errors: int
    most_calls_in_window: int
    first_call_s: float | None
    calls_span_s: float | None
    fastest_span_s: float
    window_period_s: float | None
    tail_s: float | None
    steady_efficiency: float | None
    wall_efficiency: float
    retries: int
    start_to_call: Distribution
    call_to_commit: Distribution
    reply_to_commit: Distribution
    commit_to_end: Distribution
    scheduler_gap: Distribution
    peak_rss_load_mib: float | None
    peak_rss_any_mib: float | None
    load_mean: float | None
    load_max: float | None
    foreign_airflow: int
    dags_report_s: float | None
    processor_parse: Distribution
    worker_parse: Distribution


def percentile(ordered: list[float], q: float) -> float:
    """Linear-interpolated percentile of an ascending list."""
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def fastest_span(calls: int, limit: int = LIMIT, window: float = WINDOW_S) -> float:
    """The least time from the first to the last of ``calls`` the rolling limit allows.

    Bursts of ``limit`` calls one ``window`` apart are the fastest legal pattern.
    """
    return (math.ceil(calls / limit) - 1) * window


def window_period(times: list[float], limit: int = LIMIT) -> float | None:
    """Seconds per ``limit`` accepted calls, over whole periods (None under ``limit`` + 1).

    Call 0 to call ``k * limit``: the same position in the first and the last full burst,
    so neither bursts nor calls spread out inside a burst bias it.
    """
    periods = (len(times) - 1) // limit
    if periods < 1:
        return None
    ordered = sorted(times)
    return (ordered[periods * limit] - ordered[0]) / periods


def steady_efficiency(times: list[float], window: float = WINDOW_S) -> float | None:
    """The limit's window ÷ the measured time per ``LIMIT`` accepted calls (1.0 = at the limit)."""
    period = window_period(times)
    return window / period if period else None


def most_in_window(times: list[float], window: float = WINDOW_S) -> int:
    """The most of ``times`` inside any half-open rolling ``window``."""
    ordered = sorted(times)
    best = 0
    for i, first in enumerate(ordered):
        best = max(best, sum(1 for t in ordered[i:] if t - first < window))
    return best


def caller_of(dag_id: str, attempt: TaskTry) -> str:
    """The ledger's ``caller`` for a try (see ``smsc_hook.airflow.operators.caller_id``)."""
    index = f"[{attempt.map_index}]" if attempt.map_index >= 0 else ""
    return f"{dag_id}/{attempt.run_id}/{attempt.task_id}{index}#{attempt.try_number}"


def start_to_call(record: PhaseRecord, loads: list[TaskTry]) -> list[float]:
    """Per try that called SMSC: try start → request at the simulator, minus pacing waits."""
    waited = {caller: wait for caller, _, wait in record.ledger}
    arrivals = sorted(r["time"] for r in record.requests)
    found = []
    for attempt in loads:
        if attempt.start is None:
            continue
        end = attempt.end if attempt.end is not None else math.inf
        # The pool has one slot, so a request inside a try's interval is that try's.
        inside = [t for t in arrivals if attempt.start <= t <= end]
        if inside:
            wait = waited.get(caller_of(record.spec.dag_id, attempt), 0.0)
            found.append(inside[0] - attempt.start - wait)
    return found


@dataclass(frozen=True)
class AfterReply:
    """Per loaded window, seconds from the call (or the reply) to the commit, and after."""

    call_to_commit: list[float]
    reply_to_commit: list[float]
    commit_to_end: list[float]


def after_reply(record: PhaseRecord, loads: list[TaskTry]) -> AfterReply:
    """Request at SMSC → committed, reply logged → committed, committed → try ended."""
    arrivals = sorted(r["time"] for r in record.requests if r.get("outcome") == "ok")
    result = AfterReply([], [], [])
    for attempt in loads:
        marks = record.marks.get(attempt.key)
        if marks is None or marks.loaded is None:
            continue
        loaded = marks.loaded
        called = [t for t in arrivals if (attempt.start or 0.0) <= t <= loaded]
        if called:
            result.call_to_commit.append(loaded - called[-1])
        if marks.reply is not None:
            result.reply_to_commit.append(loaded - marks.reply)
        if attempt.end is not None:
            result.commit_to_end.append(attempt.end - loaded)
    return result


def scheduler_gaps(loads: list[TaskTry]) -> list[float]:
    """Idle pool slot: one load try's end → the next load try's start (gaps > 0 only)."""
    timed = sorted((t.start, t.end) for t in loads if t.start is not None and t.end is not None)
    return [start - end for (_, end), (start, _) in itertools.pairwise(timed) if start > end]


def peak_rss_mib(record: PhaseRecord, ti_ids: set[str] | None) -> float | None:
    peaks = [
        kib
        for ti_id, kib in record.processes.peak_rss_kib.items()
        if ti_ids is None or ti_id in ti_ids
    ]
    return max(peaks) / 1024 if peaks else None


def compute(record: PhaseRecord) -> PhaseMetrics:
    """The report's numbers for one phase."""
    loads = [t for t in record.tries if t.task_id == LOAD_TASK]
    arrivals = sorted(r["time"] for r in record.requests)
    ok_times = sorted(r["time"] for r in record.requests if r.get("outcome") == "ok")
    codes = [r.get("error_code") for r in record.requests if r.get("outcome") != "ok"]
    wall = record.finished - record.started
    after = after_reply(record, loads)
    own_ids = {t.ti_id for t in record.tries}
    load = record.processes.load_1min
    return PhaseMetrics(
        title=record.spec.title,
        dag_id=record.spec.dag_id,
        days=len(record.days),
        windows=record.windows_loaded,
        run_states=record.run_states,
        timed_out=record.timed_out,
        wall_s=wall,
        windows_per_min=record.windows_loaded / wall * 60 if wall > 0 else 0.0,
        calls_ok=len(ok_times),
        rejected_9=sum(code == 9 for code in codes),
        other_errors=sum(code != 9 for code in codes),
        most_calls_in_window=most_in_window(arrivals),
        first_call_s=arrivals[0] - record.started if arrivals else None,
        calls_span_s=ok_times[-1] - ok_times[0] if ok_times else None,
        fastest_span_s=fastest_span(len(ok_times)) if ok_times else 0.0,
        window_period_s=window_period(ok_times),
        tail_s=record.finished - arrivals[-1] if arrivals else None,
        steady_efficiency=steady_efficiency(ok_times),
        wall_efficiency=fastest_span(record.windows_loaded) / wall if wall > 0 else 0.0,
        retries=sum(t.try_number > 1 and t.start is not None for t in loads),
        start_to_call=Distribution.of(start_to_call(record, loads)),
        call_to_commit=Distribution.of(after.call_to_commit),
        reply_to_commit=Distribution.of(after.reply_to_commit),
        commit_to_end=Distribution.of(after.commit_to_end),
        scheduler_gap=Distribution.of(scheduler_gaps(loads)),
        peak_rss_load_mib=peak_rss_mib(record, {t.ti_id for t in loads}),
        peak_rss_any_mib=peak_rss_mib(record, own_ids),
        load_mean=statistics.fmean(load) if load else None,
        load_max=max(load) if load else None,
        foreign_airflow=record.processes.foreign_airflow,
        dags_report_s=record.dags_report_s,
        processor_parse=Distribution.of(record.processor_parse_s),
        worker_parse=Distribution.of(
            [m.parse for m in record.marks.values() if m.parse is not None]
        ),
    )


#: Task instance states reached without a process (set by the scheduler or a skip).
NO_PROCESS = frozenset({"skipped", "upstream_failed", "removed"})

#: The cost groups, in the report's order; the CLI is the benchmark's ``airflow`` commands.
CPU_GROUPS = ("scheduler", "dag-processor", "api-server", "PostgreSQL", "CLI")


def _per(value: float, count: int) -> float | None:
    return value / count if count > 0 else None


@dataclass(frozen=True)
class CostMetrics:
    """What a phase cost the machine: CPU per loaded day, idle rate, memory, load."""

    label: str
    code: str
    #: The backfill's ``--max-active-runs``; None: Airflow's default (10).
    max_active_runs: int | None
    windows: int
    #: The CPU measurement's span: first ``backfill create`` → every run seen ended.
    span_s: float
    cpu_s: float
    groups_s: dict[str, float]
    per_day: float | None
    groups_per_day: dict[str, float | None]
    #: The stack's CPU per minute with nothing to run (same groups, CLI none).
    idle_per_min: float | None
    #: (CPU - idle rate x span) ÷ windows: what a day adds on top of the fixed cost.
    marginal_per_day: float | None
    simulator_s: float
    tries: int
    tries_per_day: float | None
    peak_pss_mib: float | None
    rss_fallbacks: int
    load_mean: float | None
    load_max: float | None
    orphans: int
    #: Airflow processes of other stacks seen at once: their database work is in PostgreSQL.
    foreign_airflow: int


def cost(record: PhaseRecord) -> CostMetrics:
    """CPU per loaded day (services + PostgreSQL ÷ windows loaded) and the rest."""
    cpu, idle = record.cpu, record.idle
    windows = record.windows_loaded
    idle_rate = idle.total / idle.seconds if idle.seconds > 0 else None
    marginal = None
    if idle_rate is not None and windows > 0:
        marginal = (cpu.total - idle_rate * cpu.seconds) / windows
    # A skipped task instance gets a start date too, but no process: count the tries
    # that ran (a supervisor and a task process each).
    started = sum(t.start is not None and t.state not in NO_PROCESS for t in record.tries)
    load = record.processes.load_1min
    pss = record.processes.peak_pss_kib
    return CostMetrics(
        label=record.spec.label,
        code=record.spec.code,
        max_active_runs=record.spec.max_active_runs,
        windows=windows,
        span_s=cpu.seconds,
        cpu_s=cpu.total,
        groups_s={name: cpu.groups.get(name, 0.0) for name in CPU_GROUPS},
        per_day=_per(cpu.total, windows),
        groups_per_day={name: _per(cpu.groups.get(name, 0.0), windows) for name in CPU_GROUPS},
        idle_per_min=None if idle_rate is None else idle_rate * 60,
        marginal_per_day=marginal,
        simulator_s=cpu.simulator,
        tries=started,
        tries_per_day=_per(started, windows),
        peak_pss_mib=pss / 1024 if pss else None,
        rss_fallbacks=record.processes.rss_fallbacks,
        load_mean=statistics.fmean(load) if load else None,
        load_max=max(load) if load else None,
        orphans=max(cpu.orphans, idle.orphans),
        foreign_airflow=record.processes.foreign_airflow,
    )


@dataclass(frozen=True)
class AccountMetrics:
    """One account's DAG in a phase of several at once."""

    login: str
    dag_id: str
    days: int
    windows: int
    run_states: dict[str, int]
    steady_efficiency: float | None
    rejected_9: int
    other_errors: int
    #: Its ``backfill create`` → its DAG's last run ended.
    wall_s: float


@dataclass(frozen=True)
class AccountsPhase:
    """N accounts backfilled at once: each account's numbers and the whole phase's cost."""

    n: int
    label: str
    #: True when the row is the single-account phase ("ours") rather than a run of its own.
    reused: bool
    timed_out: bool
    accounts: list[AccountMetrics]
    cost: CostMetrics

    @property
    def efficiencies(self) -> list[float]:
        return [a.steady_efficiency or 0.0 for a in self.accounts]

    @property
    def rejected_9(self) -> int:
        return sum(a.rejected_9 for a in self.accounts)

    def all_efficient(self, threshold: float) -> bool:
        """Every account at ``threshold`` or better, no error 9, every day loaded."""
        return not self.timed_out and all(
            (a.steady_efficiency or 0.0) >= threshold and a.rejected_9 == 0 and a.windows == a.days
            for a in self.accounts
        )


def accounts_phase(record: PhaseRecord, *, reused: bool = False) -> AccountsPhase:
    """Per account (its simulator login's requests, its DAG's runs) and the phase's cost."""
    rows = []
    for account in record.accounts:
        mine = [r for r in record.requests if r.get("account") == account.login]
        ok_times = sorted(r["time"] for r in mine if r.get("outcome") == "ok")
        codes = [r.get("error_code") for r in mine if r.get("outcome") != "ok"]
        rows.append(
            AccountMetrics(
                login=account.login,
                dag_id=account.dag_id,
                days=len(record.days),
                windows=account.windows_loaded,
                run_states=account.run_states,
                steady_efficiency=steady_efficiency(ok_times),
                rejected_9=sum(code == 9 for code in codes),
                other_errors=sum(code != 9 for code in codes),
                wall_s=account.finished - account.started,
            )
        )
    return AccountsPhase(
        n=len(record.accounts),
        label=record.spec.label,
        reused=reused,
        timed_out=record.timed_out,
        accounts=rows,
        cost=cost(record),
    )


def largest_efficient(phases: list[AccountsPhase], threshold: float) -> int | None:
    """The largest N whose accounts all met ``threshold`` with no error 9 (None: none)."""
    met = [phase.n for phase in phases if phase.all_efficient(threshold)]
    return max(met) if met else None
