"""The benchmark's command line: start-up costs, then our DAG's phase, then the naive ones.

Every phase backfills the same days with the same ``airflow backfill create`` command, one
after the other on the same machine, so the phases cannot slow each other down. The naive
DAG runs at Airflow's default backfill concurrency and again at ``--max-active-runs 3``,
because its outcome depends on it. The rate-limit numbers do not depend on the order: each
phase gets a fresh simulator, so its rate window starts empty.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
import time
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from devtools import postgres
from devtools.airflow_stack import REPO_ROOT, AirflowStack
from devtools.benchmark import metrics, report, startup
from devtools.benchmark.phase import PhaseSpec, run_phase

OUR_DAG = REPO_ROOT / "dags" / "smsc_daily_stats.py"
NAIVE_DAGS = Path(__file__).resolve().parent / "naive_dags"
DEFAULT_OUTPUT = REPO_ROOT / "docs" / "benchmarks.md"
DEFAULT_WORK_DIR = REPO_ROOT / ".state" / "benchmark"
WORK_DIR_MARKER = ".benchmark-work-dir"


def backfill_days(count: int, timezone: str) -> list[date]:
    """``count`` days ending 4 days ago: complete everywhere, clear of any scheduled run."""
    last = datetime.now(ZoneInfo(timezone)).date() - timedelta(days=4)
    return [last - timedelta(days=back) for back in range(count - 1, -1, -1)]


def phases(args: argparse.Namespace) -> list[PhaseSpec]:
    """Ours, the naive DAG with the same backfill, and the naive DAG at lower concurrency."""
    # Generous for ours: the limit's minimum plus start-up; the naive ones are capped.
    ours_timeout = metrics.fastest_span(args.days) * 1.5 + 600
    ours = PhaseSpec(
        "ours", "ours", "smsc_daily_stats", OUR_DAG.parent, OUR_DAG.name, None, ours_timeout
    )
    specs = [replace(ours, max_active_runs=args.max_active_runs)]
    for runs in dict.fromkeys([args.max_active_runs, *args.naive_also_at]):
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
        default=None,
        help="passed to `airflow backfill create` for ours and the first naive phase "
        "(default: Airflow's, 10)",
    )
    parser.add_argument(
        "--naive-also-at",
        type=int,
        nargs="*",
        default=[3],
        metavar="N",
        help="also backfill the naive DAG with --max-active-runs N (default 3, as the demo and "
        "the backfill test run ours; give no value to skip)",
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
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
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

    records = [
        run_phase(spec, days, timezone=args.timezone, server_url=server, work_dir=args.work_dir)
        for spec in phases(args)
    ]
    ours, *naives = (metrics.compute(record) for record in records)
    backfill = shlex.join(records[0].command[:9]).replace(records[0].spec.dag_id, "<dag_id>")
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
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print("\n" + text)
    print(f"benchmark: written to {args.output}")
    return 0
