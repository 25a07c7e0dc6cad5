"""LedgerPacer against a real PostgreSQL: one shared call budget per account, refusals first."""

from __future__ import annotations

import json
import socket
import threading
import time
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text

from smsc_hook.client.exceptions import SmscAuthError, SmscIpBlockedError, SmscTransportError
from smsc_hook.client.hook import SmscHook
from smsc_hook.warehouse.ledger import LedgerPacer, RateLimit

pytestmark = pytest.mark.timeout(60)

ACCOUNT = "acme"
BASE_URL = "https://smsc.ru"
CALLER = "smsc_daily_stats/scheduled__2026-11-09/load_day[0]#1"
DAY = date(2026, 11, 9)
SECRET = "s3cret-Passw0rd"
#: Slack in seconds for upper time bounds: two busy cores can stall a step this long.
SLOW_MACHINE = 2.0


class MustNotWait(Exception):
    """Raised by a ``sleep`` that a test expects never to be called."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"pacer wanted to sleep {seconds:.2f} s")
        self.seconds = seconds


def must_not_wait(seconds: float) -> None:
    raise MustNotWait(seconds)


def pacer(engine: Engine, account: str = ACCOUNT, **kwargs: Any) -> LedgerPacer:
    kwargs.setdefault("limit", RateLimit(3, timedelta(seconds=60)))
    kwargs.setdefault("caller", CALLER)
    return LedgerPacer(engine, account, **kwargs)


def ledger(engine: Engine, account: str | None = None) -> list[Any]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                text(
                    "SELECT * FROM smsc.api_calls"
                    " WHERE :account IS NULL OR account = :account ORDER BY reserved_at, id"
                ),
                {"account": account},
            )
        )


def db_now(engine: Engine) -> datetime:
    with engine.connect() as conn:
        return conn.execute(text("SELECT clock_timestamp()")).scalar_one()


def past_call(engine: Engine, ago: timedelta, error_code: int, account: str = ACCOUNT) -> None:
    """A finished API-error attempt that started ``ago`` before now."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO smsc.api_calls (account, reserved_at, window_start, window_end,"
                " host, caller, finished_at, outcome, error_code, latency_ms)"
                " VALUES (:account, clock_timestamp() - :ago, :day, :day, :host, 'earlier',"
                " clock_timestamp() - :ago, 'api_error', :code, 120)"
            ),
            {"account": account, "ago": ago, "day": DAY, "host": BASE_URL, "code": error_code},
        )


def most_starts_in_any_window(starts: list[datetime], window: timedelta) -> int:
    """The largest number of starts inside any half-open window ``[t, t + window)``.

    Only windows opening at a start need checking: sliding a window's left edge forward
    to the next start never loses one.
    """
    ordered = sorted(starts)
    return max(sum(1 for s in ordered if t <= s < t + window) for t in ordered)


# --- slots within the limit --------------------------------------------------------


def test_first_calls_are_immediate_and_recorded_as_pending(engine: Engine) -> None:
    # must_not_wait proves no call slept; the time bounds below only rule out a hang.
    slots = pacer(engine, sleep=must_not_wait)
    windows = [(DAY, DAY), (date(2026, 11, 6), DAY), (date(2026, 10, 1), date(2026, 10, 31))]
    tickets = [slots.reserve(start, end, BASE_URL) for start, end in windows]
    assert 0 <= slots.last_wait < SLOW_MACHINE

    rows = ledger(engine)
    assert rows[-1].reserved_at - rows[0].reserved_at < timedelta(seconds=SLOW_MACHINE)
    assert [row.id for row in rows] == [ticket.call_id for ticket in tickets]
    assert [(row.window_start, row.window_end) for row in rows] == windows
    for row in rows:
        assert row.account == ACCOUNT
        assert row.caller == CALLER
        assert row.host == BASE_URL
        assert row.outcome == "pending"
        assert row.finished_at is None
        assert row.error_code is None
        assert row.latency_ms is None
        assert 0 <= row.waited_ms < SLOW_MACHINE * 1000


@pytest.mark.parametrize(
    ("outcome", "error_code"),
    [
        pytest.param("ok", None, id="ok"),
        pytest.param("api_error", 9, id="api-error-9"),
        pytest.param("transport_error", None, id="transport-error"),
        pytest.param("bad_reply", None, id="bad-reply"),
    ],
)
def test_finish_records_outcome_error_code_and_latency(
    engine: Engine, outcome: str, error_code: int | None
) -> None:
    ticket = pacer(engine).reserve(DAY, DAY, BASE_URL)
    time.sleep(0.15)
    ticket.finish(outcome, error_code)

    (row,) = ledger(engine)
    assert row.outcome == outcome
    assert row.error_code == error_code
    assert 150 <= row.latency_ms < 150 + SLOW_MACHINE * 1000
    assert row.finished_at is not None
    assert (row.finished_at - row.reserved_at).total_seconds() >= 0.15


# --- waiting for a slot ------------------------------------------------------------


@pytest.mark.parametrize(
    "earlier_outcome",
    [
        pytest.param(None, id="still-pending"),
        pytest.param("ok", id="finished-ok"),
        pytest.param("transport_error", id="failed-attempts-count-too"),
    ],
)
def test_a_full_window_asks_to_wait_until_the_oldest_start_leaves(
    engine: Engine, earlier_outcome: str | None
) -> None:
    limit = RateLimit(2, timedelta(seconds=30), timedelta(seconds=1))
    for _ in range(limit.calls):
        ticket = pacer(engine, limit=limit).reserve(DAY, DAY, BASE_URL)
        if earlier_outcome:
            ticket.finish(earlier_outcome)
    oldest = ledger(engine)[0].reserved_at
    before = db_now(engine)

    with pytest.raises(MustNotWait) as waited:
        pacer(engine, limit=limit, sleep=must_not_wait).reserve(DAY, DAY, BASE_URL)
    after = db_now(engine)

    # The pacer read the database clock between `before` and `after`, so the wait it asked
    # for lies between these two, however slow the machine: oldest start + span - its now.
    longest = (oldest + limit.span - before).total_seconds()
    shortest = (oldest + limit.span - after).total_seconds()
    assert 0 < longest <= limit.span.total_seconds()
    assert shortest <= waited.value.seconds <= longest
    assert len(ledger(engine)) == limit.calls, "no row for a call that did not start"


def test_next_reservation_really_waits_until_the_oldest_leaves_window_plus_margin(
    engine: Engine,
) -> None:
    limit = RateLimit(2, timedelta(seconds=2), timedelta(seconds=0.25))
    naps: list[float] = []

    def recorded_sleep(seconds: float) -> None:
        naps.append(seconds)
        time.sleep(seconds)

    slots = pacer(engine, limit=limit, sleep=recorded_sleep)
    slots.reserve(DAY, DAY, BASE_URL)
    time.sleep(1.0)  # so the two starts leave the window at different times
    slots.reserve(DAY, DAY, BASE_URL)
    assert naps == []

    expected = []
    for n in (0, 1):  # the 3rd call waits for the 1st start, the 4th for the 2nd
        oldest = ledger(engine)[n].reserved_at
        expected.append((oldest + limit.span - db_now(engine)).total_seconds())
        began = time.monotonic()
        slots.reserve(DAY, DAY, BASE_URL)
        measured = time.monotonic() - began
        # Lower bounds prove the call waited; an upper bound here would only measure load.
        assert measured >= expected[n] - 0.2
        assert expected[n] - 0.2 <= slots.last_wait <= measured

    rows = ledger(engine)
    assert len(rows) == 4
    assert naps, "no call had to wait: the test proved nothing"
    # By the database clock: each waiting call started once the start it waited for left
    # the window plus margin, and not much later (SLOW_MACHINE of slack, not a wasted span).
    for later, earlier in ((2, 0), (3, 1)):
        gap = rows[later].reserved_at - rows[earlier].reserved_at
        assert limit.span <= gap < limit.span + timedelta(seconds=SLOW_MACHINE), (later, gap)
    assert rows[2].waited_ms >= (expected[0] - 0.2) * 1000
    assert rows[3].waited_ms >= (expected[1] - 0.2) * 1000
    assert most_starts_in_any_window([r.reserved_at for r in rows], limit.span) == limit.calls


def test_concurrent_workers_never_exceed_the_limit_and_waste_no_slots(
    warehouse_url: str, engine: Engine
) -> None:
    # A span longer than SLOW_MACHINE: one wasted slot would cost more than the slack below.
    limit = RateLimit(2, timedelta(seconds=3), timedelta(seconds=0.1))
    workers = 6
    engines = [create_engine(warehouse_url) for _ in range(workers)]
    for eng in engines:  # connect up front, so the barrier releases ready workers
        with eng.connect() as conn:
            conn.execute(text("SELECT 1"))
    barrier = threading.Barrier(workers)
    errors: list[BaseException] = []

    def work(index: int) -> None:
        slots = LedgerPacer(engines[index], ACCOUNT, limit=limit, caller=f"worker-{index}")
        barrier.wait()
        try:
            slots.reserve(DAY, DAY, BASE_URL).finish("ok")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=20)
    finally:
        for eng in engines:
            eng.dispose()

    assert errors == []
    rows = ledger(engine)
    assert sorted(row.caller for row in rows) == [f"worker-{i}" for i in range(workers)]
    assert all(row.outcome == "ok" for row in rows)
    starts = [row.reserved_at for row in rows]
    assert most_starts_in_any_window(starts, limit.window) <= limit.calls
    assert most_starts_in_any_window(starts, limit.span) <= limit.calls
    # Optimal: 2 start at once, 2 more one span later, the last 2 two spans later.
    optimal = (workers // limit.calls - 1) * limit.span
    spread = max(starts) - min(starts)
    assert timedelta(seconds=SLOW_MACHINE) < limit.span
    assert optimal <= spread < optimal + timedelta(seconds=SLOW_MACHINE), spread


def test_accounts_are_paced_independently(engine: Engine) -> None:
    limit = RateLimit(1, timedelta(seconds=30))
    pacer(engine, "acme", limit=limit, sleep=must_not_wait).reserve(DAY, DAY, BASE_URL)
    pacer(engine, "globex", limit=limit, sleep=must_not_wait).reserve(DAY, DAY, BASE_URL)

    with pytest.raises(MustNotWait):
        pacer(engine, "acme", limit=limit, sleep=must_not_wait).reserve(DAY, DAY, BASE_URL)
    with pytest.raises(MustNotWait):
        pacer(engine, "globex", limit=limit, sleep=must_not_wait).reserve(DAY, DAY, BASE_URL)
    assert [row.account for row in ledger(engine)] == ["acme", "globex"]


# --- refusing to call --------------------------------------------------------------


@pytest.mark.parametrize(
    ("minutes_ago", "refused"),
    [
        pytest.param(1, True, id="1-min-ago-refused"),
        pytest.param(14, True, id="14-min-ago-refused"),
        pytest.param(30, True, id="30-min-ago-refused-smsc-blocks-for-30"),
        pytest.param(32, False, id="32-min-ago-allowed"),
        pytest.param(45, False, id="45-min-ago-allowed"),
    ],
)
def test_recent_ip_block_refuses_without_recording_a_call(
    engine: Engine, minutes_ago: int, refused: bool
) -> None:
    past_call(engine, timedelta(minutes=minutes_ago), error_code=4)
    slots = pacer(engine, sleep=must_not_wait)
    if refused:
        with pytest.raises(SmscIpBlockedError) as raised:
            slots.reserve(DAY, DAY, BASE_URL)
        assert raised.value.code == 4
        assert "error 4" in str(raised.value)
        assert len(ledger(engine)) == 1
    else:
        slots.reserve(DAY, DAY, BASE_URL)
        assert [row.outcome for row in ledger(engine)] == ["api_error", "pending"]


@pytest.mark.parametrize(
    ("minutes_ago", "refused"),
    [
        pytest.param([5], False, id="one-failure-allowed"),
        pytest.param([5, 29], True, id="two-in-30-min-refused"),
        pytest.param([1, 2, 3], True, id="three-in-30-min-refused"),
        pytest.param([5, 31], False, id="one-in-30-min-allowed"),
        pytest.param([31, 45], False, id="two-older-than-30-min-allowed"),
    ],
)
def test_repeated_auth_failures_refuse_without_recording_a_call(
    engine: Engine, minutes_ago: list[int], refused: bool
) -> None:
    for minutes in minutes_ago:
        past_call(engine, timedelta(minutes=minutes), error_code=2)
    slots = pacer(engine, sleep=must_not_wait)
    if refused:
        with pytest.raises(SmscAuthError) as raised:
            slots.reserve(DAY, DAY, BASE_URL)
        assert raised.value.code == 2
        assert "fix the connection's login/password" in str(raised.value)
        assert len(ledger(engine)) == len(minutes_ago)
    else:
        slots.reserve(DAY, DAY, BASE_URL)
        assert len(ledger(engine)) == len(minutes_ago) + 1


def test_errors_of_another_account_do_not_count(engine: Engine) -> None:
    past_call(engine, timedelta(minutes=1), error_code=2, account="globex")
    past_call(engine, timedelta(minutes=2), error_code=2, account="globex")
    pacer(engine, "acme", sleep=must_not_wait).reserve(DAY, DAY, BASE_URL)
    with pytest.raises(SmscAuthError):
        pacer(engine, "globex", sleep=must_not_wait).reserve(DAY, DAY, BASE_URL)
    assert len(ledger(engine, "acme")) == 1


# --- no secrets in the ledger ------------------------------------------------------


def closed_local_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_ledger_holds_the_base_url_and_caller_but_never_the_password(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the hook, as in production: the attempt fails, its row carries no secret."""
    base_url = f"http://127.0.0.1:{closed_local_port()}"
    conn = {"conn_type": "smsc", "host": base_url, "login": ACCOUNT, "password": SECRET}
    monkeypatch.setenv("AIRFLOW_CONN_SMSC_PACING_TEST", json.dumps(conn))
    hook = SmscHook("smsc_pacing_test", pacer=pacer(engine, sleep=must_not_wait))

    with pytest.raises(SmscTransportError):
        hook.get_stat(DAY, DAY)

    (row,) = ledger(engine)
    assert row.host == base_url
    assert row.caller == CALLER
    assert row.outcome == "transport_error"
    assert row.finished_at is not None
    for column, value in row._mapping.items():
        assert SECRET not in str(value), f"password leaked into api_calls.{column}"
