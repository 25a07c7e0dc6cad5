"""Run the SMSC simulator as a child process (real HTTP on localhost) for tests, demo, bench."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from simulator.control import SimulatorControl

REPO_ROOT = Path(__file__).resolve().parents[1]
READY_PREFIX = "SMSC simulator listening on "


@dataclass(frozen=True)
class RunningSimulator:
    """A simulator child process, its base URL and its control client."""

    process: subprocess.Popen[bytes]
    url: str
    log_path: Path

    @property
    def control(self) -> SimulatorControl:
        return SimulatorControl(self.url)


def start_simulator(
    *args: str, log_path: Path | None = None, timeout: float = 15.0
) -> RunningSimulator:
    """Start ``python -m simulator --port 0 ARGS`` and wait for the URL line it prints.

    Output goes to a file, not a pipe, so a long request log can never block the child.
    """
    if log_path is None:
        log_path = Path(tempfile.mkstemp(prefix="smsc-simulator-", suffix=".log")[1])
    log = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "simulator", "--port", "0", *args],
        cwd=REPO_ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith(READY_PREFIX):
                return RunningSimulator(process, line[len(READY_PREFIX) :].strip(), log_path)
        if process.poll() is not None:
            break
        time.sleep(0.05)
    process.kill()
    process.wait()
    raise RuntimeError(f"simulator did not start: {log_path.read_text(errors='replace')[-2000:]}")


def stop_simulator(sim: RunningSimulator) -> None:
    """SIGTERM, then SIGKILL if it does not exit within 10 s."""
    sim.process.terminate()
    try:
        sim.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        sim.process.kill()
        sim.process.wait()


@contextmanager
def running_simulator(*args: str, log_path: Path | None = None) -> Iterator[RunningSimulator]:
    """A simulator for the duration of a ``with`` block."""
    sim = start_simulator(*args, log_path=log_path)
    try:
        yield sim
    finally:
        stop_simulator(sim)
