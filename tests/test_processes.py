"""devtools.processes.terminate (``make demo-stop``, AirflowStack.stop): what ignores SIGTERM
is killed, strays included, and nothing else."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from devtools import demo, processes
from devtools.airflow_stack import AirflowStack

# Each child says "ready" only once its signal handling is in place, so no SIGTERM races it.
SLEEP = "import time; print('ready', flush=True); time.sleep(300)"
STUBBORN = "import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN); " + SLEEP
# Like Airflow's task runner: a group of its own (in the same session), and a process title
# that wipes what /proc/PID/environ shows.
LIKE_A_TASK = (
    "import os, setproctitle; os.setpgid(0, 0); setproctitle.setproctitle('airflow worker --');"
)
TASK = LIKE_A_TASK + STUBBORN
POLITE_TASK = LIKE_A_TASK + SLEEP


def parent_of(child: str) -> str:
    """A polite group leader whose child (a stubborn one) it reports as ``ready PID``."""
    return (
        "import subprocess, sys, time\n"
        f"child = subprocess.Popen([sys.executable, '-c', {child!r}], stdout=subprocess.PIPE)\n"
        "child.stdout.readline()\n"
        "print('ready', child.pid, flush=True)\n"
        "time.sleep(300)\n"
    )


class Children:
    """Python child processes of the test; whatever happens, none outlives it.

    The test never reaps them before cleanup: a zombie keeps its pid (and its group id)
    reserved, so the cleanup cannot hit a process that reused the number.
    """

    def __init__(self) -> None:
        self.popens: list[tuple[subprocess.Popen[Any], bool]] = []
        self.grandchildren: list[int] = []

    def start(self, code: str, *, session: bool, env: dict[str, str] | None = None) -> int:
        return self.popen(code, session=session, env=env).pid

    def popen(
        self, code: str, *, session: bool, env: dict[str, str] | None = None
    ) -> subprocess.Popen[str]:
        popen = subprocess.Popen(
            [sys.executable, "-c", code],
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=session,
            env=env,
        )
        self.popens.append((popen, session))
        assert popen.stdout is not None
        ready, _, _ = select.select([popen.stdout], [], [], 15)
        assert ready, f"child {popen.pid} did not get ready in 15 s"
        words = popen.stdout.readline().split()
        assert words[:1] == ["ready"], words
        self.grandchildren += [int(word) for word in words[1:]]
        return popen

    def kill_all(self) -> None:
        # Grandchildren stay in their parent's session even when they leave its group.
        sessions = {popen.pid for popen, session in self.popens if session}
        for pid in in_sessions(sessions):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for popen, _ in self.popens:
            with contextlib.suppress(ProcessLookupError):
                popen.kill()
        for popen, _ in self.popens:
            popen.wait(timeout=10)
            if popen.stdout is not None:
                popen.stdout.close()


@pytest.fixture
def children() -> Iterator[Children]:
    started = Children()
    try:
        yield started
    finally:
        started.kill_all()


def in_sessions(sessions: set[int]) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text() if entry.name.isdigit() else ""
        except OSError:
            continue
        if stat and int(stat[stat.rindex(")") + 2 :].split()[3]) in sessions:
            found.append(int(entry.name))
    return found


def running(pid: int) -> bool:
    """Alive and not a zombie (exited, not yet reaped by its parent or by PID 1)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def test_terminate_kills_what_ignores_sigterm(children: Children, tmp_path: Path) -> None:
    home = tmp_path / "airflow"
    demo_env = {**os.environ, "AIRFLOW_HOME": str(home)}
    pids = {
        "polite": children.start(SLEEP, session=True, env=demo_env),
        "stubborn": children.start(STUBBORN, session=True, env=demo_env),
        "api-server": children.start(parent_of(STUBBORN), session=True, env=demo_env),
        "scheduler": children.start(parent_of(TASK), session=True, env=demo_env),
        # Like the simulator: no group of its own, so only its pid may be signalled.
        "single": children.start(SLEEP, session=False),
    }
    worker, task = children.grandchildren
    assert not any(e.startswith(b"AIRFLOW_HOME=") for e in processes._environ(task)), "premise"
    stray = children.start(STUBBORN, session=True, env=demo_env)
    bystander = children.start(
        STUBBORN, session=True, env={**os.environ, "AIRFLOW_HOME": str(tmp_path / "other")}
    )

    began = time.monotonic()
    outcome = processes.terminate(pids, grace=1.0, home=home, settle=5.0)
    took = time.monotonic() - began

    assert outcome.survivors == []
    assert took < 1.0 + 5.0 + 2.0
    for pid in [*pids.values(), worker, task, stray]:
        assert not running(pid), f"pid {pid} survived: {outcome.messages}"
    assert running(bystander), "a process of another AIRFLOW_HOME was signalled"
    expected = [
        f"stopped polite (pid {pids['polite']}) after SIGTERM in ",
        f"stopped single (pid {pids['single']}) after SIGTERM in ",
        f"stopped scheduler (pid {pids['scheduler']}) after SIGTERM in ",
        f"stubborn (pid {pids['stubborn']}) ignored SIGTERM for 1 s: killed",
        f"api-server (pid {pids['api-server']}) exited on SIGTERM, but pid(s) {worker} of its"
        " group ignored it for 1 s: killed",
        f"pid {task} (airflow worker --, in scheduler's session) ignored SIGTERM for 1 s: killed",
        f"pid {stray} (",
    ]
    for start in expected:
        assert any(m.startswith(start) for m in outcome.messages), (start, outcome.messages)
    stray_says = next(m for m in outcome.messages if m.startswith(f"pid {stray} ("))
    assert stray_says.endswith("with this demo's AIRFLOW_HOME) ignored SIGTERM for 1 s: killed")
    assert len(outcome.messages) == len(expected), outcome.messages


def test_terminate_reports_what_is_already_gone(children: Children, tmp_path: Path) -> None:
    popen = subprocess.Popen([sys.executable, "-c", "pass"], start_new_session=True)
    children.popens.append((popen, True))
    while running(popen.pid):  # exited; left unreaped, so its pid cannot be reused meanwhile
        time.sleep(0.05)

    began = time.monotonic()
    outcome = processes.terminate({"scheduler": popen.pid}, grace=1.0, home=tmp_path / "airflow")

    assert outcome.messages == [f"scheduler (pid {popen.pid}): already gone"]
    assert outcome.survivors == []
    assert time.monotonic() - began < 1.0, "waited for nothing"


def test_state_file_url_has_no_password(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(demo, "STATE", tmp_path)
    monkeypatch.setattr(demo, "STATE_FILE", tmp_path / "demo.json")
    url = make_url("postgresql+psycopg2://smsc:s3cret-pw@db.example:6432/smsc_demo_airflow")

    demo.save_state({"scheduler": os.getpid()}, url)

    assert "s3cret-pw" not in (tmp_path / "demo.json").read_text()
    assert demo.load_state() == (
        {"scheduler": os.getpid()},
        "postgresql+psycopg2://smsc@db.example:6432/smsc_demo_airflow",
    )


def test_stack_stop_kills_task_processes_that_left_the_service_group(
    children: Children, tmp_path: Path
) -> None:
    """The services and their task runners, in a group of their own but the same session,
    go, even those of a service that died and was reaped before; each service is reaped."""
    stack = AirflowStack(home=tmp_path / "airflow", connections={})
    other_home = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "other")}  # found by session only
    stack.processes = {
        "api-server": children.popen(SLEEP, session=True, env=other_home),
        "scheduler": children.popen(parent_of(POLITE_TASK), session=True, env=other_home),
        "dag-processor": children.popen(parent_of(POLITE_TASK), session=True, env=other_home),
    }
    popens = dict(stack.processes)
    task, orphan = children.grandchildren
    popens["dag-processor"].kill()
    popens["dag-processor"].wait(timeout=10)  # reaped: only its session holds the pid now
    assert running(orphan), "premise"

    began = time.monotonic()
    outcome = stack.stop()

    assert time.monotonic() - began < 10, outcome.messages
    assert outcome.survivors == []
    assert stack.processes == {}
    for name, popen in popens.items():
        assert popen.returncode is not None, f"{name} not reaped"
    for pid in [task, orphan]:
        assert not running(pid), f"pid {pid} survived: {outcome.messages}"
    for pid, service in [(task, "scheduler"), (orphan, "dag-processor")]:
        assert any(
            m.startswith(f"stopped pid {pid} (airflow worker --, in {service}'s session)")
            for m in outcome.messages
        ), outcome.messages
    assert stack.stop() == processes.Stopped([], []), "a second stop has nothing to do"


def test_stack_stop_without_processes_does_nothing(tmp_path: Path) -> None:
    assert AirflowStack(home=tmp_path, connections={}).stop() == processes.Stopped([], [])


def test_stack_stop_raises_on_survivors(
    children: Children, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    stack = AirflowStack(home=tmp_path, connections={})
    stack.processes = {"scheduler": children.popen(SLEEP, session=True)}
    stuck = "pid 4242 (airflow worker --, in scheduler's session): still alive after SIGKILL"

    def terminate(pids: dict[str, int], **_: object) -> processes.Stopped:
        for pid in pids.values():
            os.kill(pid, signal.SIGKILL)
        return processes.Stopped([stuck], [4242])

    monkeypatch.setattr("devtools.airflow_stack.terminate", terminate)

    with pytest.raises(RuntimeError, match=r"pid\(s\) 4242 survived SIGKILL .*still alive"):
        stack.stop()
    assert stack.processes == {}, "the reaped scheduler is forgotten"
