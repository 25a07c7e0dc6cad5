"""A re-fetch that would remove stored logins needs a second fetch that agrees.

The operator's load path (hook → warehouse) against the simulator over real HTTP and a
throwaway warehouse: SMSC really dropping a login is applied after two agreeing replies;
SMSC answering one way and then the other changes nothing, archives both and fails loudly.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine

from devtools.simulator_process import RunningSimulator
from simulator.control import SimulatorControl
from smsc_hook.airflow.operators import _Session
from smsc_hook.client.exceptions import SmscDisputedReplyError, SmscFatalError
from smsc_hook.client.hook import SmscHook, StatReply
from smsc_hook.warehouse.ledger import LedgerPacer, RateLimit
from tests.conftest import SIM_TODAY
from tests.support import ACCOUNT, PASSWORD, query, stored_rows, truth_rows

pytestmark = pytest.mark.timeout(120)
CONN_ID = "smsc_witness"


@pytest.fixture
def control(fast_simulator: RunningSimulator) -> SimulatorControl:
    fast_simulator.control.reset()
    return fast_simulator.control


@pytest.fixture
def session(
    fast_simulator: RunningSimulator, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> _Session:
    conn = {"conn_type": "smsc", "host": fast_simulator.url, "login": ACCOUNT, "password": PASSWORD}
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(conn))
    pacer = LedgerPacer(engine, ACCOUNT, limit=RateLimit(1000, timedelta(seconds=60)))
    return _Session(SmscHook(CONN_ID, pacer=pacer), engine, ACCOUNT, "main")


def day_with_subclients(control: SimulatorControl) -> tuple[date, str]:
    """A past day on which the account has its own row and at least one subclient's."""
    for back in range(1, 60):
        day = SIM_TODAY - timedelta(days=back)
        logins = sorted(r["login"] for r in control.truth(ACCOUNT, day, day))
        others = [login for login in logins if login != ACCOUNT]
        if others:
            return day, others[0]
    raise AssertionError("the simulator has no day with a subclient in the last 60 days")


def counts(warehouse_url: str) -> dict[str, int]:
    tables = ("load_log", "raw_reply", "stat_revision", "disputed_reply", "api_calls")
    return {t: query(warehouse_url, f"SELECT count(*) FROM smsc.{t}")[0][0] for t in tables}


def test_a_login_removed_by_two_agreeing_fetches_is_removed(
    session: _Session, control: SimulatorControl, warehouse_url: str
) -> None:
    day, gone = day_with_subclients(control)
    session.load(day)
    control.revise(ACCOUNT, gone, day, absent=True)
    before = counts(warehouse_url)

    reply, result = session.load(day)

    assert gone not in {row.login for row in reply.rows}
    assert result.deleted == 1
    assert stored_rows(warehouse_url, day) == truth_rows(control, day)
    after = counts(warehouse_url)
    assert after["api_calls"] - before["api_calls"] == 2, "the removal cost a second call"
    assert after["load_log"] - before["load_log"] == 1, "only the agreeing reply is applied"
    assert after["disputed_reply"] == 0
    revisions = query(
        warehouse_url, "SELECT login, new_cnt FROM smsc.stat_revision WHERE stat_date = :d", d=day
    )
    assert revisions == [(gone, None)]


def test_fetches_that_disagree_change_nothing_and_archive_both(
    session: _Session,
    control: SimulatorControl,
    warehouse_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    day, gone = day_with_subclients(control)
    session.load(day)
    stored = stored_rows(warehouse_url, day)
    control.revise(ACCOUNT, gone, day, absent=True)
    fetch = session.hook.fetch_stat
    replies: list[StatReply] = []

    def flapping(start: date, end: date, **kwargs: Any) -> StatReply:
        """SMSC answers without the login once, then with it again (a real HTTP call each)."""
        replies.append(fetch(start, end, **kwargs))
        control.reset()  # the next answer has the login back
        return replies[-1]

    monkeypatch.setattr(session.hook, "fetch_stat", flapping)
    before = counts(warehouse_url)

    with pytest.raises(SmscDisputedReplyError) as caught:
        session.load(day)

    assert isinstance(caught.value, SmscFatalError), "not retried: each try costs two calls"
    assert gone in str(caught.value)
    assert "smsc.disputed_reply" in str(caught.value)
    assert len(replies) == 2
    assert stored_rows(warehouse_url, day) == stored, "the stored rows are untouched"
    after = counts(warehouse_url)
    assert after["load_log"] == before["load_log"]
    assert after["stat_revision"] == before["stat_revision"]
    assert after["api_calls"] - before["api_calls"] == 2
    archived = query(
        warehouse_url,
        "SELECT stat_date, body, reason FROM smsc.disputed_reply ORDER BY id",
    )
    assert [
        row.body.tobytes() if hasattr(row.body, "tobytes") else row.body for row in archived
    ] == [
        replies[0].raw,
        replies[1].raw,
    ]
    assert {row.stat_date for row in archived} == {day}
    assert gone in archived[0].reason
