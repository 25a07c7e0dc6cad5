"""Watch /proc while a phase runs: peak RSS of task processes, the stack's memory, its CPU.

Airflow 3's task runner retitles each task process ``airflow worker -- <ti id>``, so its
peak resident set (``VmHWM``) can be read by id without hooking into Airflow. Load average
and Airflow processes outside our own sessions (another stack on the same machine) are
sampled too: the rate limit's timing is not CPU-bound, but the overhead numbers are. The
stack's memory is the sum of ``Pss`` over every process of its services' sessions, and its
CPU comes from the kernel's counters (``/proc/PID/stat``) of whole process trees.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from devtools.processes import session

PROC = Path("/proc")
TASK_TITLE = "airflow worker -- "


@dataclass
class ProcessSamples:
    """What the sampler saw: peak RSS per task instance try, load, foreign Airflow."""

    #: task instance (try) id → highest VmHWM seen, in KiB.
    peak_rss_kib: dict[str, int] = field(default_factory=dict)
    load_1min: list[float] = field(default_factory=list)
    #: the most Airflow processes of other sessions (other stacks) seen at one time.
    foreign_airflow: int = 0
    #: the highest sum of ``Pss`` (KiB) over the stack's sessions seen at one time.
    peak_pss_kib: int = 0
    #: processes whose ``smaps_rollup`` was unreadable, counted at their ``VmRSS`` instead.
    rss_fallbacks: int = 0


def ti_key(value: object) -> str:
    """A task instance id in one spelling, whoever wrote it: the process title's dashed
    text, a ``uuid.UUID`` from PostgreSQL or 32 bare hex digits all give the dashed form."""
    text = str(value)
    try:
        return str(uuid.UUID(text))
    except ValueError:  # not a UUID at all: compare it as it is
        return text


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:  # the process exited between listing and reading
        return ""


def _status_kib(pid: str, key: str) -> int | None:
    for line in _read(PROC / pid / "status").splitlines():
        if line.startswith(key):
            return int(line.split()[1])
    return None


def _vm_hwm_kib(pid: str) -> int | None:
    return _status_kib(pid, "VmHWM:")


def _pss_kib(pid: str) -> int | None:
    """The proportional set size (shared pages split among their users), in KiB."""
    for line in _read(PROC / pid / "smaps_rollup").splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return None


class ProcessSampler(threading.Thread):
    """Samples every ``interval`` seconds until :meth:`stop`; results in :attr:`samples`."""

    def __init__(
        self, own_sessions: set[int], stack_sessions: set[int], interval: float = 0.2
    ) -> None:
        super().__init__(name="benchmark-process-sampler", daemon=True)
        self.own_sessions = own_sessions
        #: The services' sessions (each started its own): their memory is the stack's.
        self.stack_sessions = stack_sessions
        self.interval = interval
        self.samples = ProcessSamples()
        self._stopped = threading.Event()

    def run(self) -> None:
        ticks = 0
        while not self._stopped.wait(self.interval):
            self._sample_processes()
            ticks += 1
            if ticks % max(round(1 / self.interval), 1) == 0:
                self._sample_memory()
            if ticks % max(round(5 / self.interval), 1) == 0:
                self.samples.load_1min.append(os.getloadavg()[0])

    def stop(self) -> ProcessSamples:
        self._stopped.set()
        self.join(timeout=5)
        return self.samples

    def _sample_processes(self) -> None:
        foreign = 0
        for entry in PROC.iterdir():
            if not entry.name.isdigit():
                continue
            cmdline = _read(entry / "cmdline").replace("\0", " ").strip()
            if "airflow" not in cmdline:
                continue
            if session(int(entry.name)) not in self.own_sessions:
                foreign += 1
                continue
            if cmdline.startswith(TASK_TITLE):
                ti_id = ti_key(cmdline[len(TASK_TITLE) :].split()[0])
                hwm = _vm_hwm_kib(entry.name)
                if hwm is not None:
                    peaks = self.samples.peak_rss_kib
                    peaks[ti_id] = max(hwm, peaks.get(ti_id, 0))
        self.samples.foreign_airflow = max(self.samples.foreign_airflow, foreign)

    def _sample_memory(self) -> None:
        total = 0
        for proc in live_processes().values():
            if proc.sid not in self.stack_sessions or proc.zombie:
                continue
            pid = str(proc.pid)
            pss = _pss_kib(pid)
            if pss is None:
                pss = _status_kib(pid, "VmRSS:")
                if pss is None:  # gone meanwhile, or a kernel thread
                    continue
                self.samples.rss_fallbacks += 1
            total += pss
        self.samples.peak_pss_kib = max(self.samples.peak_pss_kib, total)


#: Clock ticks per second of ``/proc/PID/stat``'s CPU times.
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcCpu:
    """One process's CPU counters from ``/proc/PID/stat``, in seconds."""

    pid: int
    ppid: int
    sid: int
    #: user + system time of the process itself (``utime + stime``).
    own: float
    #: user + system time of its children that exited and were reaped (``cutime + cstime``):
    #: when a parent waits for a child, the kernel adds the child's own and reaped times.
    reaped: float
    comm: str
    #: Exited, not yet reaped: its times still count here until its parent waits for it.
    zombie: bool = False

    @property
    def total(self) -> float:
        return self.own + self.reaped


def _proc_cpu(pid: str) -> ProcCpu | None:
    raw = _read(PROC / pid / "stat")
    if not raw:
        return None
    comm = raw[raw.find("(") + 1 : raw.rindex(")")]
    # After "comm)": field 3 (state) is index 0, so field k of proc(5) is index k - 3:
    # ppid 4 → 1, session 6 → 3, utime stime cutime cstime 14..17 → 11..14.
    fields = raw[raw.rindex(")") + 2 :].split()
    if fields[0] == "X":  # dead: about to vanish, counted by its parent already
        return None
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
    return ProcCpu(
        int(pid),
        ppid=int(fields[1]),
        sid=int(fields[3]),
        own=(utime + stime) / CLOCK_TICKS,
        reaped=(cutime + cstime) / CLOCK_TICKS,
        comm=comm,
        zombie=fields[0] == "Z",
    )


def live_processes() -> dict[int, ProcCpu]:
    found = (_proc_cpu(entry.name) for entry in PROC.iterdir() if entry.name.isdigit())
    return {proc.pid: proc for proc in found if proc is not None}


def _children(procs: dict[int, ProcCpu]) -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for proc in procs.values():
        children.setdefault(proc.ppid, []).append(proc.pid)
    return children


def tree(procs: dict[int, ProcCpu], roots: set[int]) -> set[int]:
    """``roots`` and every live descendant of theirs."""
    children = _children(procs)
    seen: set[int] = set()
    todo = list(roots)
    while todo:
        pid = todo.pop()
        if pid in seen or pid not in procs:
            continue
        seen.add(pid)
        todo.extend(children.get(pid, ()))
    return seen


def postmaster_pids(procs: dict[int, ProcCpu]) -> set[int]:
    """Every PostgreSQL server's main process: a ``postgres`` whose parent is not one."""

    def parent_is_postgres(proc: ProcCpu) -> bool:
        parent = procs.get(proc.ppid)
        return parent is not None and parent.comm == "postgres"

    return {
        proc.pid
        for proc in procs.values()
        if proc.comm == "postgres" and not parent_is_postgres(proc)
    }


@dataclass(frozen=True)
class CpuSnapshot:
    """CPU seconds so far of each group, of the reaped children of this process, and of
    the simulator; ``orphans`` counts processes of a group's sessions outside its trees."""

    at: float
    groups: dict[str, float]
    cli: float
    simulator: float
    orphans: int


@dataclass(frozen=True)
class CpuUse:
    """What each group used between two snapshots, in CPU seconds over ``seconds``."""

    seconds: float
    #: scheduler, dag-processor, api-server, PostgreSQL: the stack, the cost; CLI: the
    #: user's ``airflow`` commands the benchmark ran, shown beside it.
    groups: dict[str, float]
    #: The simulator stands in for SMSC: reported, not part of the cost.
    simulator: float
    #: The most processes seen in a service's session but outside its tree (reparented).
    orphans: int

    @property
    def total(self) -> float:
        """The stack's CPU: every group but the CLI commands (a user's, not the stack's)."""
        return sum(value for name, value in self.groups.items() if name != "CLI")


def cpu_snapshot(
    groups: dict[str, set[int]], sessions: set[int], simulator: int | None
) -> CpuSnapshot:
    """CPU seconds so far of each group of process trees (group name → root pids).

    The sum of own + reaped time over every live process of a tree counts each process of
    it exactly once, alive or exited, as long as exited ones were reaped inside the tree
    (Airflow's supervisors and executors wait for their children; the postmaster waits for
    its backends). Two snapshots' difference is the CPU the group used between them, from
    the kernel's counters. A process of a group's session whose parent died is counted
    while it lives (it was reparented out of the tree), and ``orphans`` says how many.

    ``cli`` is this process's reaped children (``os.times``): the ``airflow`` commands it
    ran; the simulator, a live child, is not among them until it is stopped.
    """
    procs = live_processes()
    totals: dict[str, float] = {}
    orphans = 0
    for name, roots in groups.items():
        members = tree(procs, roots)
        roots_sessions = {procs[pid].sid for pid in roots if pid in procs} & sessions
        strays = {
            pid for pid, proc in procs.items() if proc.sid in roots_sessions and pid not in members
        }
        orphans += len(strays)
        totals[name] = sum(procs[pid].total for pid in members | strays)
    times = os.times()
    sim = sum(procs[pid].total for pid in tree(procs, {simulator})) if simulator else 0.0
    return CpuSnapshot(
        time.time(), totals, times.children_user + times.children_system, sim, orphans
    )


def cpu_use(before: CpuSnapshot, after: CpuSnapshot) -> CpuUse:
    groups = {name: after.groups[name] - before.groups.get(name, 0.0) for name in after.groups}
    groups["CLI"] = after.cli - before.cli
    return CpuUse(
        seconds=after.at - before.at,
        groups=groups,
        simulator=after.simulator - before.simulator,
        orphans=max(before.orphans, after.orphans),
    )
