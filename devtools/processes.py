"""Stop local process trees for good: SIGTERM, a bounded wait, SIGKILL, strays found in /proc."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Stopped:
    """What :func:`terminate` did: one message per process, and any pid alive after SIGKILL."""

    messages: list[str]
    survivors: list[int]


def terminate(pids: Mapping[str, int], *, grace: float, home: Path, settle: float = 5.0) -> Stopped:
    """Stop each named process with its process group, and every straggler of theirs:
    SIGTERM, up to ``grace`` seconds for all of them to exit, SIGKILL for what is left, then
    up to ``settle`` seconds for that to land.

    A service started with ``start_new_session=True`` has its pid as group and session id;
    the processes it forks share both. Airflow's task runner moves to a group of its own
    (and setproctitle wipes its ``/proc/PID/environ``) but stays in the session; anything
    else carrying ``AIRFLOW_HOME=home`` belongs to them too. A single process (the demo's
    simulator) leads no group, so only it is hit. Zombies count as gone. Linux only.
    """
    began = time.monotonic()
    procs = _live()
    mine = _ancestors(procs)
    own_groups = {procs[pid].pgrp for pid in mine}
    own_sessions = {procs[pid].sid for pid in mine}
    sessions = {pid: name for name, pid in pids.items() if pid not in own_sessions}
    messages: dict[str, str] = {}
    targets: list[_Target] = []
    for name, pid in pids.items():
        target = _Target(f"{name} (pid {pid})", pid, group=pid not in own_groups)
        if target.alive(procs, mine):
            targets.append(target)
        else:
            messages[target.label] = f"{target.label}: already gone"
    known = mine.union(*(target.alive(procs, mine) for target in targets))
    targets += _strays(procs, known, sessions, home, own_groups)
    for target in targets:
        target.send(signal.SIGTERM)

    pending = targets
    while pending:
        procs = _live()
        now = time.monotonic()
        for target in pending:
            if not target.alive(procs, mine):
                messages[target.label] = (
                    f"stopped {target.label} after SIGTERM in {now - began:.1f} s"
                )
        pending = [target for target in pending if target.label not in messages]
        if not pending or now - began >= grace:
            break
        time.sleep(0.1)

    killed: dict[int, str] = {}
    for target in pending:
        left = target.alive(procs, mine)
        target.send(signal.SIGKILL)
        killed.update(dict.fromkeys(left, target.label))
        if target.pid in left:
            others = ", ".join(map(str, sorted(left - {target.pid})))
            more = f" with pid(s) {others} of its group" if others else ""
            messages[target.label] = f"{target.label} ignored SIGTERM for {grace:g} s: killed{more}"
        else:
            others = ", ".join(map(str, sorted(left)))
            messages[target.label] = (
                f"{target.label} exited on SIGTERM, but pid(s) {others} of its group ignored it"
                f" for {grace:g} s: killed"
            )
    # Started while we waited, outside the groups we know: no second grace period.
    for target in _strays(procs, mine | set(killed), sessions, home, own_groups):
        target.send(signal.SIGKILL)
        killed.update(dict.fromkeys(target.alive(procs, mine), target.label))
        messages[target.label] = f"{target.label}, started while stopping: killed"

    deadline = time.monotonic() + settle
    while (alive := sorted(set(killed) & set(_live()))) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in alive:
        messages[f"survivor {pid}"] = f"{killed[pid]}: pid {pid} is still alive after SIGKILL"
    return Stopped(list(messages.values()), alive)


@dataclass(frozen=True)
class _Proc:
    pid: int
    ppid: int
    pgrp: int
    sid: int
    start: int  # clock ticks after boot: with the pid, identifies the process


@dataclass(frozen=True)
class _Target:
    """One thing to stop: a process, with its process group when it leads one."""

    label: str
    pid: int
    group: bool

    def alive(self, procs: Mapping[int, _Proc], exclude: set[int]) -> set[int]:
        return {
            pid
            for pid, proc in procs.items()
            if (pid == self.pid or (self.group and proc.pgrp == self.pid)) and pid not in exclude
        }

    def send(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(self.pid, sig)
        if self.group:  # ESRCH when self.pid leads no group (the simulator)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, sig)


def _strays(
    procs: Mapping[int, _Proc],
    known: set[int],
    sessions: Mapping[int, str],
    home: Path,
    own_groups: set[int],
) -> list[_Target]:
    """Processes not in ``known`` that are in one of ``sessions`` (session id → service) or
    have ``AIRFLOW_HOME=home`` in their environment; one target per group they lead."""
    wanted = {b"AIRFLOW_HOME=" + os.fsencode(path) for path in (home, home.resolve())}
    why: dict[int, str] = {}
    for pid in sorted(set(procs) - known):
        if procs[pid].sid in sessions:
            why[pid] = f"in {sessions[procs[pid].sid]}'s session"
        elif wanted.intersection(_environ(pid)):
            why[pid] = "with this demo's AIRFLOW_HOME"
    # A group stray processes lead is theirs to signal; never one this process is in.
    leaders = {pid for pid in why if procs[pid].pgrp == pid and pid not in own_groups}
    return [
        _Target(f"pid {pid} ({_cmdline(pid)}, {reason})", pid, group=pid in leaders)
        for pid, reason in why.items()
        if pid in leaders or procs[pid].pgrp not in leaders
    ]


def _stat(pid: int) -> _Proc | None:
    """``/proc/PID/stat`` of a running process; None if it is gone or a zombie."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 2, the command name, is in parentheses and may contain spaces and ")".
    fields = raw[raw.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return _Proc(
        pid, ppid=int(fields[1]), pgrp=int(fields[2]), sid=int(fields[3]), start=int(fields[19])
    )


def _live() -> dict[int, _Proc]:
    procs = (_stat(int(entry.name)) for entry in Path("/proc").iterdir() if entry.name.isdigit())
    return {proc.pid: proc for proc in procs if proc is not None}


def start_time(pid: int) -> int | None:
    """When a running process started (clock ticks after boot); with the pid, this tells it
    from a later process given the same number. None if it is gone or a zombie."""
    proc = _stat(pid)
    return None if proc is None else proc.start


def session(pid: int) -> int | None:
    """The session id of a running process; None if it is gone or a zombie."""
    proc = _stat(pid)
    return None if proc is None else proc.sid


def reserved(pid: int) -> bool:
    """Whether a running process has ``pid`` as its process group or session id. The kernel
    gives no new process that number meanwhile, so it is still safe to hand to
    :func:`terminate` after its own process was reaped."""
    return any(pid in (proc.pgrp, proc.sid) for proc in _live().values())


def _ancestors(procs: Mapping[int, _Proc]) -> set[int]:
    """This process and its parents (they may carry the AIRFLOW_HOME too)."""
    chain: set[int] = set()
    pid = os.getpid()
    while pid in procs and pid not in chain:
        chain.add(pid)
        pid = procs[pid].ppid
    return chain


def _environ(pid: int) -> list[bytes]:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:  # gone, a kernel thread, or another user's
        return []


def _cmdline(pid: int, width: int = 48) -> str:
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    line = " ".join(os.fsdecode(arg) for arg in args if arg)
    return line if len(line) <= width else line[: width - 1] + "…"
