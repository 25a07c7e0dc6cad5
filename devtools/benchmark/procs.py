"""Watch /proc while a phase runs: peak RSS of task processes and CPU contention.

Airflow 3's task runner retitles each task process ``airflow worker -- <ti id>``, so its
peak resident set (``VmHWM``) can be read by id without hooking into Airflow. Load average
and Airflow processes outside our own sessions (another stack on the same machine) are
sampled too: the rate limit's timing is not CPU-bound, but the overhead numbers are.
"""

from __future__ import annotations

import os
import threading
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


def _vm_hwm_kib(pid: str) -> int | None:
    for line in _read(PROC / pid / "status").splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return None


class ProcessSampler(threading.Thread):
    """Samples every ``interval`` seconds until :meth:`stop`; results in :attr:`samples`."""

    def __init__(self, own_sessions: set[int], interval: float = 0.2) -> None:
        super().__init__(name="benchmark-process-sampler", daemon=True)
        self.own_sessions = own_sessions
        self.interval = interval
        self.samples = ProcessSamples()
        self._stopped = threading.Event()

    def run(self) -> None:
        ticks = 0
        while not self._stopped.wait(self.interval):
            self._sample_processes()
            ticks += 1
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
