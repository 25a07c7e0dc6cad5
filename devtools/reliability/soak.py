"""``python -m devtools.reliability.soak``: a long backfill under random API faults (case 7).

Not part of CI (``make soak``: about 6 minutes for 90 days at ``--rate-window 2``).
A real scheduler backfills ``--days`` days against the simulator, whose rate window is
scaled down; a seeded random schedule of
faults — timeouts, resets, HTTP 500/502/503, HTML pages, truncated JSON, slow replies near
the timeout, error 9 and error 4 — hits about ``--fault-rate`` of the calls. Afterwards the
same checks as the suite's case 1 run: every day equals the simulator's ground truth and
landed exactly once, the rate limit held, no call while an error 4 pause lasted. Prints the
summary table; exits 1 if a check failed.

    python -m devtools.reliability.soak --days 90 --rate-window 2 --fault-rate 0.2 --seed 7

For a long parser fuzz as well: ``SMSC_FUZZ_PROFILE=soak pytest -m reliability -k fuzz``.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from devtools import postgres
from devtools.airflow_stack import AirflowStack
from devtools.reliability.harness import (
    DEMO_PASSWORD,
    CaseFigures,
    backfill,
    check_days,
    check_ip_block_pauses,
    check_rate,
    connections,
    deployment,
    format_table,
    gather,
    past_days,
    pipeline_env,
    postgres_metadata,
    wait_for_runs,
)
from devtools.simulator_process import running_simulator

READ_TIMEOUT = 4.0


def fault_kinds(read_timeout: float) -> list[tuple[str, dict[str, Any]]]:
    """Every fault the soak draws from, with the simulator's spec for one occurrence."""
    return [
        ("timeout", {"kind": "timeout", "seconds": read_timeout + 2}),
        ("connection reset", {"kind": "reset"}),
        ("HTTP 500", {"kind": "http", "status": 500}),
        ("HTTP 502", {"kind": "http", "status": 502}),
        ("HTTP 503", {"kind": "http", "status": 503}),
        ("HTML error page", {"kind": "html"}),
        ("truncated JSON", {"kind": "truncated"}),
        ("slow reply", {"kind": "latency", "seconds": read_timeout * 0.8}),
        ("error 9", {"kind": "error", "code": 9}),
        ("error 4", {"kind": "error", "code": 4}),
    ]


def fault_schedule(
    rng: random.Random, calls: int, rate: float, read_timeout: float
) -> tuple[list[dict[str, Any]], Counter[str]]:
    """A fault queue for the first ``calls`` requests: each one faulty with probability
    ``rate``; runs of healthy requests are zero-second latency "faults"."""
    kinds = fault_kinds(read_timeout)
    queue: list[dict[str, Any]] = []
    planned: Counter[str] = Counter()
    healthy = 0
    for _ in range(calls):
        if rng.random() >= rate:
            healthy += 1
            continue
        if healthy:
            queue.append({"kind": "latency", "seconds": 0, "count": healthy})
            healthy = 0
        label, spec = rng.choice(kinds)
        queue.append({**spec, "count": 1})
        planned[label] += 1
    return queue, planned


def run(args: argparse.Namespace) -> list[CaseFigures]:
    days = past_days(args.days)
    rng = random.Random(args.seed)
    # Faulty calls are retried, so the queue must outlast more calls than there are days.
    queue, planned = fault_schedule(rng, int(args.days * 1.6), args.fault_rate, READ_TIMEOUT)
    home = Path(args.home or tempfile.mkdtemp(prefix="smsc-soak-"))
    print(
        f"soak: {args.days} days {days[0]}..{days[-1]}, {sum(planned.values())} faults "
        f"planned ({dict(planned)}), home {home}",
        flush=True,
    )
    started = time.monotonic()
    sim_args = (
        "--quiet",
        "--rate-limit",
        str(args.rate_limit),
        "--rate-window",
        str(args.rate_window),
    )
    server = postgres.server_url()
    with (
        postgres.throwaway_database(server, prefix="smsc_soak") as warehouse_url,
        postgres_metadata(server) as metadata,
        running_simulator(*sim_args) as sim,
    ):
        stack = AirflowStack(
            home=home / "airflow",
            connections=connections(
                sim.url, warehouse_url, password=DEMO_PASSWORD, timeout=READ_TIMEOUT
            ),
            extra_env={
                **pipeline_env(
                    rate_window=args.rate_window,
                    rate_limit=args.rate_limit,
                    backoff=args.backoff,
                    ip_block_pause=args.ip_block_pause,
                ),
                **metadata,
            },
        )
        with deployment(stack):
            sim.control.set_faults(queue)
            backfill(stack, days[0], days[-1], max_active_runs=args.max_active_runs)
            wait_for_runs(stack, len(days), timeout=args.timeout, label="soak: ")
            evidence = gather(stack, sim.control, warehouse_url, days, with_tries=True)
    wall = time.monotonic() - started
    states = Counter(evidence.run_states().values())
    served = Counter(r.get("fault") or "none" for r in evidence.requests)
    served.pop("none", None)
    results = [
        check_days(evidence, f"7 soak: {len(days)} days = ground truth"),
        check_rate(
            evidence,
            f"7 soak: <= {args.rate_limit} calls per {args.rate_window:g} s",
            args.rate_limit,
            args.rate_window,
        ),
        check_ip_block_pauses(
            evidence, "7 soak: no call during error 4 pauses", args.ip_block_pause
        ),
        CaseFigures(
            case="7 soak: runs",
            outcome="passed" if set(states) == {"success"} else "FAILED",
            calls=len(evidence.calls),
            rows=evidence.rows_checked,
            figures=f"{dict(states)} in {wall / 60:.1f} min; faults served: "
            + ", ".join(f"{k} {n}" for k, n in sorted(served.items()) if k != "latency"),
        ),
    ]
    for result in results:
        result.seconds = wall
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.reliability.soak",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--rate-limit", type=int, default=3)
    parser.add_argument("--rate-window", type=float, default=2.0, help="seconds (SMSC: 60)")
    parser.add_argument("--fault-rate", type=float, default=0.2, help="share of faulty calls")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--backoff", type=float, default=2.0, help="first retry wait, seconds")
    parser.add_argument("--ip-block-pause", type=float, default=10.0, help="seconds")
    parser.add_argument("--max-active-runs", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=3 * 3600, help="seconds for the backfill")
    parser.add_argument("--home", help="Airflow home to use (default: a new temporary folder)")
    args = parser.parse_args(argv)
    results = run(args)
    print(format_table(results))
    return 0 if all(r.outcome == "passed" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
