"""The benchmark's command line: start-up costs, our DAG's phase, the same phase on the
code before the cost work (``--baseline``, from a git worktree), N accounts at once
(``--accounts``), then the naive DAG.

Every phase backfills the same days with the same ``airflow backfill create`` command, one
after the other on the same machine, so the phases cannot slow each other down. Ours runs
with the README's ``--max-active-runs``, the baseline and the naive DAG at Airflow's
default backfill concurrency (as their users would) and, with ``--naive-also-at``, the
naive DAG at lower ones too, because its outcome depends on it. The rate-limit numbers do
not depend on the order: each phase gets a fresh simulator, so its rate window starts
empty.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from devtools import postgres
from devtools.airflow_stack import REPO_ROOT, AirflowStack
from devtools.benchmark import metrics, report, startup
from devtools.benchmark.phase import PhaseRecord, PhaseSpec, run_phase
from smsc_hook.checks.gaps import BACKFILL_ACTIVE_RUNS

OUR_DAG = REPO_ROOT / "dags" / "smsc_daily_stats.py"
NAIVE_DAGS = Path(__file__).resolve().parent / "naive_dags"
DEFAULT_OUTPUT = REPO_ROOT / "docs" / "benchmarks.md"
DEFAULT_WORK_DIR = REPO_ROOT / ".state" / "benchmark"
WORK_DIR_MARKER = ".benchmark-work-dir"
#: The commit before the CPU-cost work (issue 19): the "before" of the cost table.
DEFAULT_BASELINE = "b8074b8"


def backfill_days(count: int, timezone: str) -> list[date]:
    """``count`` days ending 4 days ago: complete everywhere, clear of any scheduled run."""
    last = datetime.now(ZoneInfo(timezone)).date() - timedelta(days=4)
    return [last - timedelta(days=back) for back in range(count - 1, -1, -1)]


def ours_spec(args: argparse.Namespace) -> PhaseSpec:
    """Our DAG, the default account, the working tree's code."""
    # Generous: the limit's minimum plus start-up (the rate limit is per account, so N
    # accounts at once need no more); the naive ones are capped.
    ours_timeout = metrics.fastest_span(args.days) * 1.5 + 600
    ours = PhaseSpec(
        "ours", "ours", "smsc_daily_stats", OUR_DAG.parent, OUR_DAG.name, None, ours_timeout
    )
    return replace(ours, max_active_runs=args.max_active_runs)


def accounts_spec(args: argparse.Namespace, n: int, baseline: Baseline | None = None) -> PhaseSpec:
    """N accounts at once (``bench01`` ..), each its own DAG; N = 1 is the ours phase.

    With ``baseline``, the stack runs that worktree's DAGs folder and plugins.
    """
    spec = ours_spec(args)
    if n > 1:
        names = tuple(f"bench{i:02d}" for i in range(1, n + 1))
        spec = replace(spec, kind=f"ours, {n} accounts", label=f"accounts-{n}", accounts=names)
    if baseline is None:
        return spec
    return replace(
        spec,
        kind=f"before ({baseline.short})" + (f", {n} accounts" if n > 1 else ""),
        label=f"baseline-{n}",
        dags_folder=baseline.root / "dags",
        code_root=baseline.root,
        code=baseline.short,
        max_active_runs=args.baseline_max_active_runs,
    )


def naive_specs(args: argparse.Namespace) -> list[PhaseSpec]:
    """The naive DAG with the same backfill, and again at each ``--naive-also-at``."""
    specs = []
    for runs in dict.fromkeys([None, *args.naive_also_at]):
        specs.append(
            PhaseSpec(
                kind="naive",
                label="naive" if runs is None else f"naive-{runs}-runs",
                dag_id="smsc_naive_stats",
                dags_folder=NAIVE_DAGS,
                dag_file="smsc_naive_stats.py",
                pool="smsc_naive",
                timeout=args.naive_timeout,
                max_active_runs=runs,
            )
        )
    return specs


@dataclass(frozen=True)
class Baseline:
    """The "before" code: a detached worktree of ``rev``."""

    rev: str
    short: str
    subject: str
    root: Path


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()


@contextmanager
def baseline_worktree(rev: str, work_dir: Path) -> Iterator[Baseline]:
    """``git worktree add --detach`` of ``rev`` under the work dir, removed however the
    block ends (``--force``: a stale registration of a crashed run is overridden)."""
    short, subject = _git("show", "-s", "--format=%h%x00%s", rev).split("\0", 1)
    path = work_dir / "baseline-src"
    _git("worktree", "add", "--force", "--detach", str(path), rev)
    print(f"benchmark: before = {short} {subject!r}, worktree {path}", flush=True)
    try:
        yield Baseline(rev, short, subject, path)
    finally:
        subprocess.run(
            ["git", "worktree", "remove", "--force", str(path)],
            cwd=REPO_ROOT,
            capture_output=True,
            check=False,
        )


def fresh_work_dir(path: Path) -> None:
    """Empty the work dir of the last run; refuse to empty a folder it did not create."""
    marker = path / WORK_DIR_MARKER
    if path.exists() and any(path.iterdir()) and not marker.exists():
        raise SystemExit(f"benchmark: {path} is not empty and not a benchmark work dir")
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    marker.touch()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m devtools.benchmark", description=__doc__)
    parser.add_argument("--days", type=int, default=15, help="days to backfill (default 15)")
    parser.add_argument(
        "--max-active-runs",
        type=int,
        default=BACKFILL_ACTIVE_RUNS,
        help="passed to `airflow backfill create` for our phases (default "
        f"{BACKFILL_ACTIVE_RUNS}, as the README's commands and `smsc_hook.gaps` run it); "
        "the naive DAG runs at Airflow's default, 10",
    )
    parser.add_argument(
        "--baseline-max-active-runs",
        type=int,
        default=None,
        help="the same for the --baseline phases (default: Airflow's, 10, as its README's "
        "command ran it)",
    )
    parser.add_argument(
        "--naive-also-at",
        type=int,
        nargs="*",
        default=[],
        metavar="N",
        help="also backfill the naive DAG with --max-active-runs N (e.g. 3, as the demo and "
        "the backfill test run ours; default none: it would take the benchmark past 45 min)",
    )
    parser.add_argument(
        "--accounts",
        type=int,
        nargs="+",
        default=[1, 4, 8],
        metavar="N",
        help="backfill the same days for N accounts at once, one phase per N (default 1 4 8; "
        "N = 1 is the ours phase)",
    )
    parser.add_argument(
        "--baseline",
        default=DEFAULT_BASELINE,
        metavar="REV",
        help=f"the code before the cost work, run from a git worktree (default {DEFAULT_BASELINE})",
    )
    parser.add_argument(
        "--baseline-accounts",
        type=int,
        nargs="*",
        default=[1],
        metavar="N",
        help="the N-accounts phases to run on --baseline's code too (default 1; none: skip it)",
    )
    parser.add_argument(
        "--idle-seconds",
        type=float,
        default=60,
        help="idle baseline of each phase: the stack's CPU with nothing to run (default 60)",
    )
    parser.add_argument(
        "--naive-timeout",
        type=float,
        default=900,
        help="stop a naive phase after this many seconds (default 900)",
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR)
    parser.add_argument("--timezone", default=os.environ.get("SMSC_TIMEZONE", "Europe/Moscow"))
    args = parser.parse_args(argv)
    if args.days < 4:
        parser.error("--days must be at least 4 (efficiency needs more than one burst)")
    if min(args.accounts + args.baseline_accounts, default=1) < 1:
        parser.error("--accounts and --baseline-accounts take numbers of 1 or more")
    if args.idle_seconds <= 0:
        parser.error("--idle-seconds must be more than 0")
    args.accounts = sorted(set(args.accounts))
    args.baseline_accounts = sorted(set(args.baseline_accounts))
    return args


def _stop(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    # SIGTERM (and SIGINT, which a background job ignores) unwind like an exception, so
    # every phase's stack, simulator, databases and the baseline worktree are cleaned up.
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    began = time.monotonic()
    fresh_work_dir(args.work_dir)
    server = postgres.server_url()
    machine = report.machine(server)
    days = backfill_days(args.days, args.timezone)
    print(f"benchmark: {len(days)} days, {days[0]} .. {days[-1]}; work dir {args.work_dir}")

    # Only its environment, so the parse runs as a stack's processes would; that creates
    # the stack's metadata database, which close() drops.
    env_stack = AirflowStack(home=args.work_dir / "startup", connections={}, timezone=args.timezone)
    try:
        costs = startup.measure(env_stack.env, OUR_DAG)
    finally:
        env_stack.close()
    print(f"benchmark: DAG parse {costs.parse_cold:.3f} s cold, {costs.parse_warm:.4f} s warm")

    def run(spec: PhaseSpec) -> PhaseRecord:
        return run_phase(
            spec,
            days,
            timezone=args.timezone,
            server_url=server,
            work_dir=args.work_dir,
            idle_seconds=args.idle_seconds,
        )

    ours_record = run(ours_spec(args))
    before: list[metrics.AccountsPhase] = []
    baseline = None
    if args.baseline_accounts:
        with baseline_worktree(args.baseline, args.work_dir) as baseline:
            for n in args.baseline_accounts:
                before.append(metrics.accounts_phase(run(accounts_spec(args, n, baseline))))
    after = [
        metrics.accounts_phase(ours_record, reused=True)
        if n == 1
        else metrics.accounts_phase(run(accounts_spec(args, n)))
        for n in args.accounts
    ]
    naive_records = [run(spec) for spec in naive_specs(args)]
    ours = metrics.compute(ours_record)
    naives = [metrics.compute(record) for record in naive_records]
    backfill = shlex.join(ours_record.command[:9]).replace(ours_record.spec.dag_id, "<dag_id>")
    command = shlex.join(["python", "-m", "devtools.benchmark", *argv])
    text = report.render(
        machine,
        command,
        ours,
        naives,
        costs,
        backfill=backfill,
        total_s=time.monotonic() - began,
        work_dir=args.work_dir,
        cost=report.CostSection(
            baseline=None if baseline is None else f"{baseline.short} {baseline.subject}",
            before=before,
            after=after,
            ours=metrics.cost(ours_record),
            naives=[metrics.cost(record) for record in naive_records],
        ),
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print("\n" + text)
    print(f"benchmark: written to {args.output}")
    return 0
