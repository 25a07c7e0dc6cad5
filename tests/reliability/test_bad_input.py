"""Case 5: bad input — the parser fuzzed at volume, and malformed configuration through Airflow.

The fuzz draws from the parser tests' strategies (random bytes and token soup, valid replies
in all four formats and three charsets, truncated and mutated replies) and holds one
property per kind. 10 000 examples per run; ``SMSC_FUZZ_PROFILE=soak`` runs 200 000, and
``SMSC_RELIABILITY_FUZZ_EXAMPLES=N`` any number.

Each malformed setting runs ``airflow dags test`` for a day against the simulator and must
fail at once, with an error naming the setting, before any API call.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devtools import postgres
from devtools.airflow_stack import AirflowStack
from devtools.reliability.harness import (
    DAG_ID,
    DEMO_PASSWORD,
    CaseFigures,
    api_requests,
    connections,
    ledger,
    local_today,
)
from devtools.simulator_process import RunningSimulator, running_simulator
from smsc_hook.client.exceptions import SmscApiError, SmscReplyError
from smsc_hook.client.models import StatRow
from smsc_hook.client.parsing import parse_stat_reply
from tests.test_parsing import CHARSETS, FORMATS, JSON, XML, arbitrary_bodies, edits, replies

CASE = "5 bad input"
pytestmark = [pytest.mark.reliability, pytest.mark.timeout(900)]

_PROFILES = {"ci": 10_000, "soak": 200_000}
EXAMPLES = int(
    os.environ.get("SMSC_RELIABILITY_FUZZ_EXAMPLES")
    or _PROFILES.get(os.environ.get("SMSC_FUZZ_PROFILE", "ci"), 10_000)
)


# --- parser fuzz -----------------------------------------------------------------------------


@st.composite
def truncated(draw: st.DrawFn) -> tuple[str, bytes, int, str, list[StatRow]]:
    # Only XML and JSON documents can tell a cut from a shorter reply; fmt 0/1 cannot.
    reply = draw(replies(formats=(XML, JSON)))
    cut = draw(st.integers(min_value=0, max_value=max(len(reply.body) - 1, 0)))
    return ("truncated", reply.body[:cut], reply.fmt, reply.charset, reply.rows)


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, bytes, int, str, list[StatRow]]:
    reply = draw(replies())
    body = bytearray(reply.body)
    for kind, position, chunk in draw(edits):
        at = position % (len(body) + 1)
        if kind == "insert":
            body[at:at] = chunk
        elif kind == "delete":
            del body[at : at + len(chunk)]
        else:
            body[at : at + len(chunk)] = chunk
    return ("mutated", bytes(body), reply.fmt, reply.charset, reply.rows)


fuzz_inputs = st.one_of(
    st.tuples(
        st.just("arbitrary"),
        arbitrary_bodies,
        st.sampled_from(FORMATS),
        st.sampled_from(CHARSETS),
        st.just([]),
    ),
    replies().map(lambda r: ("valid", r.body, r.fmt, r.charset, r.rows)),
    truncated(),
    mutated(),
)


def test_parser_fuzz(case: CaseFigures):
    """Valid replies parse back exactly; truncated XML/JSON never yields other rows; anything
    else gives rows or a typed SMSC error, never another exception."""
    case.case = "5 parser fuzz"
    seen: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    rows_checked = 0

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(fuzz_inputs)
    def check(example: tuple[str, bytes, int, str, list[StatRow]]) -> None:
        nonlocal rows_checked
        kind, body, fmt, charset, expected = example
        seen[kind] += 1
        try:
            rows = parse_stat_reply(body, fmt, charset)
        except (SmscApiError, SmscReplyError) as exc:
            refused: Exception | None = exc
        else:
            refused = None
        if refused is not None:
            outcomes[type(refused).__name__] += 1
            assert kind != "valid", f"valid reply refused: {refused}"
            return
        outcomes["rows"] += 1
        assert all(isinstance(row, StatRow) for row in rows)
        assert len({row.login for row in rows}) == len(rows)
        if kind in ("valid", "truncated"):
            assert rows == expected
        rows_checked += len(rows)

    started = time.monotonic()
    check()
    total = sum(seen.values())
    assert total >= EXAMPLES
    case.rows = rows_checked
    case.figures = (
        f"{total} examples in {time.monotonic() - started:.0f} s ("
        + ", ".join(f"{k} {n}" for k, n in sorted(seen.items()))
        + "); outcomes: "
        + ", ".join(f"{k} {n}" for k, n in outcomes.most_common())
        + "; 0 other exceptions"
    )


# --- malformed configuration ---------------------------------------------------------------------


@dataclass
class ConfigRig:
    stack: AirflowStack
    sim: RunningSimulator
    warehouse_url: str
    good: dict[str, dict[str, Any]]


@pytest.fixture(scope="module")
def config_rig(tmp_path_factory: pytest.TempPathFactory, pg_server_url: str) -> Iterator[ConfigRig]:
    """One Airflow home (no services: ``dags test`` runs in-process), bootstrapped once."""
    with (
        postgres.throwaway_database(pg_server_url) as warehouse_url,
        running_simulator("--quiet") as sim,
    ):
        good = connections(sim.url, warehouse_url, password=DEMO_PASSWORD)
        stack = AirflowStack(home=tmp_path_factory.mktemp("config") / "airflow", connections=good)
        stack.init()
        stack.python("-m", "smsc_hook.bootstrap", "--no-api-call")
        yield ConfigRig(stack, sim, warehouse_url, good)


def _with_extra(conns: dict[str, dict[str, Any]], **extra: Any) -> dict[str, dict[str, Any]]:
    smsc = {**conns["smsc_default"], "extra": {**conns["smsc_default"]["extra"], **extra}}
    return {**conns, "smsc_default": smsc}


def _without(conns: dict[str, dict[str, Any]], conn_id: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in conns.items() if k != conn_id}


def dags_test(stack: AirflowStack, timeout: float = 120) -> tuple[str, str, float]:
    """``airflow dags test`` for the day before yesterday: (outcome, output, seconds).

    Outcome is ``failed`` / ``succeeded``, or ``retried`` — stopped as soon as a task went
    up for retry, which a bad setting must never cause (the retries would take hours).
    """
    day = local_today() - timedelta(days=2)
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "airflow", "dags", "test", DAG_ID, day.isoformat()],
        env=stack.env,
        cwd=stack.home,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    lines = []
    outcome = ""
    for line in process.stdout:
        lines.append(line)
        if "new_state=up_for_retry" in line:
            outcome = "retried"
            break
        if time.monotonic() - started > timeout:
            outcome = "timed out"
            break
    if outcome:
        process.kill()
    process.wait()
    outcome = outcome or ("succeeded" if process.returncode == 0 else "failed")
    return outcome, "".join(lines), time.monotonic() - started


BAD_CONFIG = [
    pytest.param({"SMSC_TIMEZONE": "Mars/Olympus_Mons"}, None, "SMSC_TIMEZONE", id="bad-time-zone"),
    pytest.param({"SMSC_START_DATE": "2999-01-01"}, None, "SMSC_START_DATE", id="future-start"),
    pytest.param({}, {"fmt": 7}, "'fmt'", id="unknown-fmt"),
    pytest.param({}, "smsc_default", "'smsc_default'", id="missing-smsc-connection"),
    pytest.param({}, "smsc_warehouse", "'smsc_warehouse'", id="missing-warehouse-connection"),
    pytest.param({}, {"verify": False}, "'verify'", id="tls-verify-off"),
]


@pytest.mark.parametrize(("env", "connection", "named"), BAD_CONFIG)
def test_malformed_configuration_fails_before_any_call(
    config_rig: ConfigRig, case: CaseFigures, env: dict[str, str], connection: Any, named: str
):
    case.case = f"5 config: {named.strip(chr(39))} bad"
    rig = config_rig
    if isinstance(connection, dict):
        conns = _with_extra(rig.good, **connection)
    elif isinstance(connection, str):
        conns = _without(rig.good, connection)
    else:
        conns = rig.good
    rig.stack.connections = conns
    rig.stack.extra_env = env
    rig.sim.control.clear_requests()
    calls_before = len(ledger(rig.warehouse_url))
    try:
        outcome, output, seconds = dags_test(rig.stack)
    finally:
        rig.stack.connections, rig.stack.extra_env = rig.good, {}
    calls = len(api_requests(rig.sim.control)) + len(ledger(rig.warehouse_url)) - calls_before
    errors = [
        line.split("SmscConfigError: ", 1)[1]
        for line in output.splitlines()
        if "SmscConfigError: " in line
    ]
    case.calls = calls
    case.figures = f"{outcome} in {seconds:.0f} s: " + (errors[0][:100] if errors else "?")
    assert outcome == "failed"
    assert calls == 0
    assert any(named in error for error in errors), output[-3000:]
    assert seconds < 90
