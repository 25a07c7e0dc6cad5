"""Cases 1 and 6: API faults during a real scheduler backfill, and where the password went.

One stack, one backfill of ten days, and the simulator's fault queue loaded so that the
first API calls meet, in order: error 2, a timeout, a connection reset, HTTP 500 and 502,
an HTML error page, truncated JSON, two replies slowed to 80 % of the read timeout, a burst
of three error 9 and two error 4. The account's password is a recognisable canary, looked
for afterwards in everything the run left behind.

Time is scaled: 3 calls per 6 s, backoff from 5 s, error 4 pause 20 s.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from devtools import postgres
from devtools.airflow_stack import AirflowStack
from devtools.reliability.harness import (
    ACCOUNT,
    CaseFigures,
    Evidence,
    LedgerCall,
    SecretScan,
    backfill,
    check_days,
    check_ip_block_pauses,
    check_rate,
    connections,
    count_secret,
    deployment,
    error9_wait,
    gather,
    past_days,
    pipeline_env,
    postgres_metadata,
    scan_database,
    scan_files,
    scan_xcoms,
    task_instances,
    wait_for_runs,
    write_accounts,
)
from devtools.simulator_process import running_simulator
from simulator.config import SimulatorConfig, load_accounts
from simulator.truth import window_rows

CASE = "1 API faults"
pytestmark = [pytest.mark.reliability, pytest.mark.timeout(900)]

RATE_LIMIT = 3
RATE_WINDOW = 6.0
BACKOFF = 5.0  # long enough that other days take the slot before a faulted one retries
IP_BLOCK_PAUSE = 20.0
READ_TIMEOUT = 4.0
DAYS = past_days(10)
#: Faults in the order the API calls meet them; (label, simulator fault, ledger outcome).
PLAN: list[tuple[str, dict[str, Any], tuple[str, int | None]]] = [
    ("error 2", {"kind": "error", "code": 2, "count": 1}, ("api_error", 2)),
    ("timeout", {"kind": "timeout", "seconds": 8, "count": 1}, ("transport_error", None)),
    ("connection reset", {"kind": "reset", "count": 1}, ("transport_error", None)),
    ("HTTP 500", {"kind": "http", "status": 500, "count": 1}, ("transport_error", None)),
    ("HTTP 502", {"kind": "http", "status": 502, "count": 1}, ("transport_error", None)),
    ("HTML error page", {"kind": "html", "count": 1}, ("bad_reply", None)),
    ("truncated JSON", {"kind": "truncated", "count": 1}, ("bad_reply", None)),
    (
        "slow replies near the timeout",
        {"kind": "latency", "seconds": READ_TIMEOUT * 0.8, "count": 2},
        ("ok", None),
    ),
    ("error 9 burst", {"kind": "error", "code": 9, "count": 3}, ("api_error", 9)),
    ("error 4 for a while", {"kind": "error", "code": 4, "count": 2}, ("api_error", 4)),
]
LABELS = [label for label, _, _ in PLAN]


@dataclass
class FaultRun:
    evidence: Evidence
    #: Per plan label: the ledger rows of the API calls that met that fault.
    faulted: dict[str, list[LedgerCall]]
    stack: AirflowStack
    warehouse_url: str
    metadata_url: str
    sim_log: Path
    accounts: Path
    password: str
    sim_requests_raw: list[dict[str, Any]]
    task_instances: list[dict[str, Any]]


@pytest.fixture(scope="module")
def fault_run(tmp_path_factory: pytest.TempPathFactory, pg_server_url: str) -> Iterator[FaultRun]:
    home = tmp_path_factory.mktemp("faults")
    # Characters that URL/form encoding changes, so an encoded leak would show up too.
    password = f"Canary-{secrets.token_hex(6)}+/=&%"
    accounts = write_accounts(home / "accounts.json", password)
    sim_log = home / "simulator.log"
    args = ("--accounts", str(accounts), "--rate-limit", str(RATE_LIMIT))
    with (
        postgres.throwaway_database(pg_server_url) as warehouse_url,
        postgres_metadata(pg_server_url) as metadata,
        running_simulator(*args, "--rate-window", str(RATE_WINDOW), log_path=sim_log) as sim,
    ):
        stack = AirflowStack(
            home=home / "airflow",
            connections=connections(
                sim.url,
                warehouse_url,
                password=password,
                timeout=READ_TIMEOUT,
                connect_timeout=2,
            ),
            extra_env={
                **pipeline_env(
                    rate_window=RATE_WINDOW, backoff=BACKOFF, ip_block_pause=IP_BLOCK_PAUSE
                ),
                **metadata,
            },
        )
        with deployment(stack):
            sim.control.set_faults([fault for _, fault, _ in PLAN])
            # Every day active at once spreads the faults over many tasks, so no day comes
            # near its 9 tries.
            backfill(stack, DAYS[0], DAYS[-1], max_active_runs=len(DAYS))
            wait_for_runs(stack, len(DAYS), timeout=600, label="faults: ")
            evidence = gather(stack, sim.control, warehouse_url, DAYS, with_tries=True)
            faulted: dict[str, list[LedgerCall]] = {}
            position = 0
            for label, fault, _ in PLAN:
                faulted[label] = evidence.calls[position : position + fault["count"]]
                position += fault["count"]
            yield FaultRun(
                evidence=evidence,
                faulted=faulted,
                stack=stack,
                warehouse_url=warehouse_url,
                metadata_url=metadata["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"],
                sim_log=sim_log,
                accounts=accounts,
                password=password,
                sim_requests_raw=sim.control.requests(),
                task_instances=task_instances(stack),
            )


def model_rows(accounts: Path, day: date) -> list[tuple[Any, ...]]:
    """The day's rows as the simulator's model computes them in this process (same accounts,
    default seed, no revisions): an expectation that does not come from the running server,
    and always holds the main login's row, so an empty warehouse day cannot match it."""
    config = SimulatorConfig(accounts=load_accounts(accounts))
    return sorted(
        (r["login"], r["cnt"], r["credit"], r["debit"], r["currency"])
        for r in window_rows(config, ACCOUNT, day, day)
    )


def _auth_failed_day(run: FaultRun) -> date:
    return run.faulted["error 2"][0].window_start


def _next_call_for(run: FaultRun, call: LedgerCall) -> LedgerCall | None:
    later = [
        c
        for c in run.evidence.calls_for(call.window_start)
        if c.reserved_at > call.reserved_at and c.task == call.task
    ]
    return later[0] if later else None


def test_the_simulator_served_the_planned_faults_in_order(fault_run: FaultRun, case: CaseFigures):
    """The first API requests met exactly the planned faults, and each ledger row matches."""
    case.case = "1 fault plan served as queued"
    ev = fault_run.evidence
    expected_kinds = [fault["kind"] for _, fault, _ in PLAN for _ in range(fault["count"])]
    logged = [r.get("fault") for r in ev.requests[: len(expected_kinds)]]
    assert logged == expected_kinds
    assert len(ev.calls) == len(ev.requests), "every API request has exactly one ledger row"
    for label, fault, (outcome, code) in PLAN:
        assert len(fault_run.faulted[label]) == fault["count"], f"{label}: too few ledger rows"
        for call in fault_run.faulted[label]:
            assert (call.outcome, call.error_code) == (outcome, code), (label, call)
    tries = max(t["try_number"] for t in fault_run.task_instances if t["task_id"] == "load_day")
    case.calls = len(ev.requests)
    case.figures = (
        f"{len(expected_kinds)} faulted calls of {len(ev.requests)}; "
        f"most tries of one day: {tries} of 9 allowed"
    )


@pytest.mark.parametrize("label", [lbl for lbl in LABELS if lbl not in ("error 2",)])
def test_fault_is_survived_and_its_day_equals_ground_truth(
    fault_run: FaultRun, case: CaseFigures, label: str
):
    """The faulted day's run succeeded, its rows equal the truth, it landed exactly once,
    and the retry waited at least what the error class prescribes."""
    case.case = f"1 {label}"
    ev = fault_run.evidence
    calls = fault_run.faulted[label]
    days = sorted({c.window_start for c in calls})
    states = ev.run_states()
    waits = []
    assert calls, f"{label}: no API call met this fault, so nothing below would be checked"
    for call in calls:
        day = call.window_start
        assert states[day] == "success", (label, day, states[day])
        assert ev.stored[day] == model_rows(fault_run.accounts, day), (label, day)
        assert ev.stored[day] == ev.truth[day], (label, day)
        assert ev.loads[day] == 1, (label, day, ev.loads[day])
        if call.outcome == "ok":
            continue
        retry = _next_call_for(fault_run, call)
        assert retry is not None, f"{label}: no retry after call {call.id}"
        assert call.finished_at is not None
        waited = (retry.reserved_at - call.finished_at).total_seconds()
        waits.append(waited)
        if call.error_code == 9:
            least = error9_wait(RATE_WINDOW)
        elif call.error_code == 4:
            least = IP_BLOCK_PAUSE
        else:
            least = BACKOFF * 2 ** (call.try_number - 1)
        assert waited >= least - 0.5, f"{label}: retried after {waited:.1f} s < {least} s"
    if label == "slow replies near the timeout":
        latencies = [c.finished_at - c.reserved_at for c in calls if c.finished_at]
        assert len(latencies) == len(calls), "a slow call has no finished_at"
        assert all(lat >= timedelta(seconds=READ_TIMEOUT * 0.8) for lat in latencies)
        case.figures = "latency " + ", ".join(f"{lat.total_seconds():.1f}" for lat in latencies)
        case.figures += f" s of a {READ_TIMEOUT:.0f} s timeout: accepted"
    else:
        case.figures = "retry after " + ", ".join(f"{w:.1f}" for w in waits) + " s"
    case.calls = sum(len(ev.calls_for(day)) for day in days)
    case.rows = sum(len(ev.truth[day]) for day in days)


def test_error_2_fails_the_run_fast_with_exactly_one_call(fault_run: FaultRun, case: CaseFigures):
    case.case = "1 error 2: fail fast, one call, no retry"
    ev = fault_run.evidence
    day = _auth_failed_day(fault_run)
    assert ev.run_states()[day] == "failed"
    assert [(c.outcome, c.error_code) for c in ev.calls_for(day)] == [("api_error", 2)]
    assert len(ev.requests_for(day)) == 1
    (ti,) = [
        t
        for t in fault_run.task_instances
        if t["task_id"] == "load_day"
        and t["dag_run_id"] in {r["dag_run_id"] for r in ev.runs}
        and t["rendered_map_index"] == day.isoformat()
    ]
    assert (ti["state"], ti["try_number"]) == ("failed", 1)
    assert ti["duration"] < 30, f"took {ti['duration']} s to fail"
    assert ev.stored[day] == []
    assert ev.loads[day] == 0
    case.calls = 1
    case.figures = f"{day}: failed on try 1 after {ti['duration']:.1f} s, nothing stored"


def test_error_4_means_no_call_until_the_pause_has_passed(fault_run: FaultRun, case: CaseFigures):
    ev = fault_run.evidence
    result = check_ip_block_pauses(ev, "1 error 4: no call during the pause", IP_BLOCK_PAUSE)
    case.update(result)
    assert result.outcome == "passed", result.figures
    assert len([c for c in ev.calls if c.error_code == 4]) == 2
    assert ev.tries_without_call(), "no task tried during the pauses: the refusal was not tested"


def test_every_day_equals_ground_truth_with_nothing_lost_or_duplicated(
    fault_run: FaultRun, case: CaseFigures
):
    result = check_days(
        fault_run.evidence, "1 all days = ground truth", skip=[_auth_failed_day(fault_run)]
    )
    case.update(result)
    case.figures += " (the error-2 day failed, as it must)"
    assert result.outcome == "passed", result.figures


def test_rate_limit_held_through_the_faults(fault_run: FaultRun, case: CaseFigures):
    result = check_rate(
        fault_run.evidence,
        f"1 rate: <= {RATE_LIMIT} calls per {RATE_WINDOW:g} s",
        RATE_LIMIT,
        RATE_WINDOW,
    )
    case.update(result)
    assert result.outcome == "passed", result.figures


# --- case 6: secrets ----------------------------------------------------------------------------


def test_password_appears_nowhere(fault_run: FaultRun, case: CaseFigures):
    """Task logs, service logs, metadata DB, XComs, warehouse (raw archive, ledger, ...), the
    simulator's request log and output, exception texts: 0 occurrences of the password."""
    case.case = "6 password in logs/XCom/archive/ledger/URLs"
    secret = fault_run.password
    home = fault_run.stack.home
    # The scanner must find the canary where it legitimately is, or a 0 below means nothing.
    assert count_secret(fault_run.accounts.read_bytes(), secret) == 1
    assert count_secret(fault_run.stack.env["AIRFLOW_CONN_SMSC_DEFAULT"], secret) >= 1

    scan = SecretScan()
    scan_files(scan, "task logs", home / "logs", secret)
    scan_files(scan, "service logs", home / "service-logs", secret)
    scan_database(scan, fault_run.metadata_url, "public", "Airflow metadata DB", secret)
    scan_xcoms(scan, fault_run.stack, secret)
    scan_database(scan, fault_run.warehouse_url, "smsc", "warehouse", secret)
    for entry in fault_run.sim_requests_raw:
        scan.add("simulator request log", json.dumps(entry), secret)
    scan.add("simulator output", fault_run.sim_log.read_bytes(), secret)
    logs = "".join(p.read_text(errors="replace") for p in (home / "logs").rglob("*") if p.is_file())
    # Task logs are JSON lines; each exception (and each one it chains) has an exc_value.
    exceptions = logs.count('"exc_value"')
    failed_calls = [c for c in fault_run.evidence.calls if c.outcome != "ok"]
    assert exceptions >= len(failed_calls), "the failed tries left no exception texts?"

    api = [r for r in fault_run.sim_requests_raw if r["path"] == "/sys/get.php"]
    assert [r for r in api if r["secret_in_url"] or "psw" in r["url_params"]] == []
    assert {r["body_params"].get("psw") for r in api} == {"***"}, "psw travels in the body"
    assert scan.found() == {}
    case.calls = len(api)
    case.rows = scan.scanned
    case.figures = (
        f"0 hits in {scan.scanned} items over {len(scan.places)} places; "
        f"{exceptions} exception texts in task logs; {len(api)} request URLs clean"
    )
