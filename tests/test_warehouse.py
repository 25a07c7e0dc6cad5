"""Warehouse.load_day against a real PostgreSQL: idempotent, atomic, serialized, read-only BI."""

from __future__ import annotations

import hashlib
import multiprocessing
import pickle
import re
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from datetime import date, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.exc import DBAPIError, IntegrityError, ProgrammingError

from smsc_hook.client.models import StatRow
from smsc_hook.warehouse.migrations import apply_migrations
from smsc_hook.warehouse.writer import (
    LoadResult,
    RemovalNeedsWitness,
    Warehouse,
    latest_begun_day,
    same_rows,
    window_lock_key,
)

DAY = date(2024, 3, 15)
ACCOUNT = "acme"


def row(login: str, cnt: int, credit: str = "1.50", debit: str = "0", cur: str = "RUB") -> StatRow:
    return StatRow(login=login, cnt=cnt, credit=Decimal(credit), debit=Decimal(debit), currency=cur)


REPLY_A = [row("acme", 10, "15.00"), row("acme-sub", 5, "7.50")]


def load(
    wh: Warehouse,
    rows: Sequence[Any],
    *,
    day: date = DAY,
    account: str = ACCOUNT,
    series: str = "main",
    raw_reply: bytes | None = None,
    reply_format: int = 3,
    removals_confirmed: bool = False,
) -> LoadResult:
    return wh.load_day(
        account=account,
        series=series,
        day=day,
        rows=rows,
        raw_reply=raw_reply if raw_reply is not None else repr(list(rows)).encode(),
        reply_format=reply_format,
        removals_confirmed=removals_confirmed,
    )


@pytest.fixture
def wh(warehouse_url: str) -> Iterator[Warehouse]:
    apply_migrations(warehouse_url)
    warehouse = Warehouse.from_url(warehouse_url)
    yield warehouse
    warehouse.dispose()


def query(wh: Warehouse, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    with wh.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql), params)]


def table_dump(wh: Warehouse) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every warehouse table, to compare a state before and after."""
    return {
        table: query(wh, f"SELECT * FROM smsc.{table} ORDER BY 1, 2")
        for table in ("stat_day", "load_log", "raw_reply", "stat_revision", "disputed_reply")
    }


def revisions(wh: Warehouse) -> list[tuple[Any, ...]]:
    return query(
        wh,
        "SELECT login, old_cnt, old_credit, old_currency, new_cnt, new_credit, new_currency"
        " FROM smsc.stat_revision ORDER BY id",
    )


# --- idempotency and revisions ------------------------------------------------------------


def test_same_reply_three_times_changes_nothing_after_the_first(wh: Warehouse) -> None:
    results = [load(wh, REPLY_A) for _ in range(3)]

    assert [(r.inserted, r.unchanged, r.updated, r.deleted) for r in results] == [
        (2, 0, 0, 0),
        (0, 2, 0, 0),
        (0, 2, 0, 0),
    ]
    assert wh.stored_rows(ACCOUNT, "main", DAY) == REPLY_A
    assert revisions(wh) == []
    assert len(query(wh, "SELECT id FROM smsc.load_log")) == 3
    assert len(query(wh, "SELECT load_id FROM smsc.raw_reply")) == 3


def test_unchanged_refetch_only_moves_last_loaded(wh: Warehouse) -> None:
    first = load(wh, REPLY_A)
    before = query(wh, "SELECT login, first_loaded_at, last_loaded_at FROM smsc.stat_day")
    second = load(wh, REPLY_A)
    after = query(
        wh, "SELECT login, first_loaded_at, last_loaded_at, last_load_id FROM smsc.stat_day"
    )

    assert {r[3] for r in after} == {second.load_id} != {first.load_id}
    assert [r[1] for r in after] == [r[1] for r in before]
    assert all(a[2] > b[2] for a, b in zip(after, before, strict=True))


def test_changed_values_write_a_revision_with_old_and_new(wh: Warehouse) -> None:
    load(wh, REPLY_A)
    result = load(wh, [row("acme", 12, "18.00"), REPLY_A[1]])

    assert (result.updated, result.unchanged, result.revisions) == (1, 1, 1)
    assert revisions(wh) == [("acme", 10, Decimal("15.00"), "RUB", 12, Decimal("18.00"), "RUB")]
    assert wh.stored_rows(ACCOUNT, "main", DAY)[0] == row("acme", 12, "18.00")


def test_vanished_login_is_deleted_and_recorded(wh: Warehouse) -> None:
    load(wh, REPLY_A)
    result = load(wh, [REPLY_A[0]], removals_confirmed=True)

    assert (result.deleted, result.revisions) == (1, 1)
    assert wh.stored_rows(ACCOUNT, "main", DAY) == [REPLY_A[0]]
    assert revisions(wh) == [("acme-sub", 5, Decimal("7.50"), "RUB", None, None, None)]


def test_login_appearing_on_a_loaded_day_is_recorded_with_empty_old(wh: Warehouse) -> None:
    load(wh, REPLY_A)
    result = load(wh, [*REPLY_A, row("newcomer", 1, "1.50")])

    assert (result.inserted, result.revisions) == (1, 1)
    assert revisions(wh) == [("newcomer", None, None, None, 1, Decimal("1.50"), "RUB")]


def test_load_log_row_counts_match_the_result(wh: Warehouse) -> None:
    load(wh, REPLY_A)
    result = load(wh, [row("acme", 11), row("third", 1)], removals_confirmed=True)

    logged = query(
        wh,
        "SELECT row_count, inserted, updated, deleted, unchanged FROM smsc.load_log WHERE id = :id",
        id=result.load_id,
    )
    assert logged == [(2, result.inserted, result.updated, result.deleted, result.unchanged)]
    assert (result.inserted, result.updated, result.deleted, result.unchanged) == (1, 1, 1, 0)


def test_scale_only_difference_is_not_a_change(wh: Warehouse) -> None:
    load(wh, [row("acme", 10, "15.00")])
    result = load(wh, [row("acme", 10, "15.0")])

    assert (result.unchanged, result.revisions) == (1, 0)
    assert query(wh, "SELECT credit::text FROM smsc.stat_day") == [("15.00",)]


def test_empty_reply_clears_the_day_and_is_logged(wh: Warehouse) -> None:
    load(wh, REPLY_A)
    result = load(wh, [], raw_reply=b"[]", removals_confirmed=True)

    assert (result.deleted, result.revisions) == (2, 2)
    assert wh.stored_rows(ACCOUNT, "main", DAY) == []
    assert query(wh, "SELECT row_count FROM smsc.load_log WHERE id = :id", id=result.load_id) == [
        (0,)
    ]
    assert DAY in wh.loaded_days(ACCOUNT, "main", DAY, DAY)
    assert query(wh, "SELECT day FROM smsc.load_gaps WHERE day = :day", day=DAY) == []


def test_empty_reply_on_a_new_day_counts_as_loaded(wh: Warehouse) -> None:
    load(wh, [], raw_reply=b"[]")

    assert wh.stored_rows(ACCOUNT, "main", DAY) == []
    assert wh.loaded_days(ACCOUNT, "main", DAY - timedelta(days=1), DAY + timedelta(days=1)) == {
        DAY
    }


def test_raw_reply_is_archived_byte_for_byte(wh: Warehouse) -> None:
    body = "login = acme, cnt = 10, валюта\r\n".encode("cp1251") + b"\x00\xff"
    result = load(wh, REPLY_A, raw_reply=body, reply_format=0)

    archived = query(
        wh,
        "SELECT r.body, r.reply_format, r.sha256 = l.reply_sha256"
        " FROM smsc.raw_reply r JOIN smsc.load_log l ON l.id = r.load_id WHERE r.load_id = :id",
        id=result.load_id,
    )
    assert [(bytes(b), fmt, same) for b, fmt, same in archived] == [(body, 0, True)]


def test_a_load_touches_only_its_own_window(wh: Warehouse) -> None:
    neighbours: list[dict[str, Any]] = [
        {"day": DAY, "series": "balance2"},
        {"day": DAY + timedelta(days=1), "series": "main"},
        {"day": DAY, "series": "main", "account": "other"},
    ]
    for where in neighbours:
        load(wh, REPLY_A, **where)
    before = query(wh, "SELECT * FROM smsc.stat_day ORDER BY 1, 2, 3, 4")

    load(wh, REPLY_A)
    load(wh, [], raw_reply=b"[]", removals_confirmed=True)

    assert query(wh, "SELECT * FROM smsc.stat_day ORDER BY 1, 2, 3, 4") == before


def test_loaded_days_reports_only_fetched_days_in_range(wh: Warehouse) -> None:
    for offset in (0, 1, 3, 10):
        load(wh, REPLY_A, day=DAY + timedelta(days=offset))
    load(wh, REPLY_A, day=DAY + timedelta(days=2), series="balance2")

    assert wh.loaded_days(ACCOUNT, "main", DAY + timedelta(days=1), DAY + timedelta(days=5)) == {
        DAY + timedelta(days=1),
        DAY + timedelta(days=3),
    }


def test_monthly_stats_sums_per_month_login_and_currency(wh: Warehouse) -> None:
    load(wh, [row("acme", 10, "15.00", "1"), row("sub", 1, "2", cur="USD")], day=date(2024, 3, 1))
    load(wh, [row("acme", 5, "7.25", "0.5")], day=date(2024, 3, 31))
    load(wh, [row("acme", 100, "150")], day=date(2024, 4, 1))

    assert query(
        wh,
        "SELECT month, login, currency, cnt, credit, debit, days FROM smsc.monthly_stats"
        " ORDER BY month, login",
    ) == [
        (date(2024, 3, 1), "acme", "RUB", 15, Decimal("22.25"), Decimal("1.5"), 2),
        (date(2024, 3, 1), "sub", "USD", 1, Decimal("2"), Decimal("0"), 1),
        (date(2024, 4, 1), "acme", "RUB", 100, Decimal("150"), Decimal("0"), 1),
    ]


# --- a destructive re-fetch needs a second witness ----------------------------------------

REMOVING_REPLIES = [
    pytest.param([], ["acme", "acme-sub"], id="empty-reply-for-a-two-row-day"),
    pytest.param([REPLY_A[0]], ["acme-sub"], id="one-of-two-logins-dropped"),
    pytest.param(
        [row("acme", 12, "18.00"), row("newcomer", 1)],
        ["acme-sub"],
        id="dropped-while-others-change",
    ),
]


@pytest.mark.parametrize(("reply", "removed"), REMOVING_REPLIES)
def test_removal_without_a_witness_is_refused_and_writes_nothing(
    wh: Warehouse, reply: list[StatRow], removed: list[str]
) -> None:
    load(wh, REPLY_A)
    load(wh, REPLY_A)  # a second load, so the day is a re-fetched one with a history
    before = table_dump(wh)

    with pytest.raises(RemovalNeedsWitness) as refused:
        load(wh, reply)

    assert table_dump(wh) == before
    assert wh.stored_rows(ACCOUNT, "main", DAY) == REPLY_A
    err = refused.value
    assert (err.account, err.series, err.day) == (ACCOUNT, "main", DAY)
    assert (err.removed_logins, err.stored_count, err.fetched_count) == (removed, 2, len(reply))
    for login in removed:
        assert repr(login) in str(err)
    assert f"{ACCOUNT}/main/{DAY.isoformat()}" in str(err)
    assert "removals_confirmed=True" in str(err)


@pytest.mark.parametrize(("reply", "removed"), REMOVING_REPLIES)
def test_confirmed_removal_is_applied_with_revisions(
    wh: Warehouse, reply: list[StatRow], removed: list[str]
) -> None:
    load(wh, REPLY_A)
    result = load(wh, reply, removals_confirmed=True)

    assert result.deleted == len(removed)
    assert wh.stored_rows(ACCOUNT, "main", DAY) == sorted(reply, key=lambda r: r.login)
    vanished = [rev[0] for rev in revisions(wh) if rev[4] is None]
    assert vanished == removed
    assert result.revisions == len(revisions(wh))


def test_empty_day_message_says_it_would_empty_the_day(wh: Warehouse) -> None:
    load(wh, REPLY_A)
    with pytest.raises(RemovalNeedsWitness, match="would empty the stored day"):
        load(wh, [], raw_reply=b"[]")
    with pytest.raises(RemovalNeedsWitness, match="would remove stored logins"):
        load(wh, [REPLY_A[1]])


def test_witness_message_names_at_most_ten_logins_but_keeps_them_all(wh: Warehouse) -> None:
    many = [row(f"sub-{n:02d}", 1) for n in range(12)]
    load(wh, many)

    with pytest.raises(RemovalNeedsWitness) as refused:
        load(wh, [], raw_reply=b"[]")

    assert refused.value.removed_logins == [r.login for r in many]
    assert "'sub-09'" in str(refused.value)
    assert "'sub-10'" not in str(refused.value)
    assert "and 2 more" in str(refused.value)


def test_removal_needs_witness_survives_pickling() -> None:
    err = RemovalNeedsWitness(
        account=ACCOUNT,
        series="balance2",
        day=DAY,
        removed_logins=["b", "a"],
        stored_count=3,
        fetched_count=1,
    )
    copy = pickle.loads(pickle.dumps(err))  # noqa: S301 - our own bytes

    assert type(copy) is RemovalNeedsWitness
    assert str(copy) == str(err)
    assert copy.removed_logins == ["a", "b"]
    assert (copy.account, copy.series, copy.day, copy.stored_count, copy.fetched_count) == (
        ACCOUNT,
        "balance2",
        DAY,
        3,
        1,
    )


@pytest.mark.parametrize(
    ("neighbour", "reply"),
    [
        pytest.param(None, [], id="first-load-empty"),
        pytest.param(None, REPLY_A, id="first-load-with-rows"),
        pytest.param({"series": "balance2"}, [], id="other-series-stored"),
        pytest.param({"day": DAY - timedelta(days=1)}, [], id="previous-day-stored"),
        pytest.param({"account": "other"}, [], id="other-account-stored"),
    ],
)
def test_first_load_of_a_day_needs_no_witness(
    wh: Warehouse, neighbour: dict[str, Any] | None, reply: list[StatRow]
) -> None:
    if neighbour is not None:
        load(wh, REPLY_A, **neighbour)

    result = load(wh, reply, raw_reply=repr(reply).encode())

    assert (result.inserted, result.deleted) == (len(reply), 0)
    assert wh.stored_rows(ACCOUNT, "main", DAY) == reply
    assert query(wh, "SELECT row_count FROM smsc.load_log WHERE id = :id", id=result.load_id) == [
        (len(reply),)
    ]
    assert DAY in wh.loaded_days(ACCOUNT, "main", DAY, DAY)


@pytest.mark.parametrize(
    ("reply", "counts"),
    [
        pytest.param(REPLY_A, (0, 0, 2), id="same-reply"),
        pytest.param([*REPLY_A, row("newcomer", 1)], (1, 0, 2), id="login-added"),
        pytest.param([row("acme", 12, "18.00"), REPLY_A[1]], (0, 1, 1), id="login-updated"),
        pytest.param(
            [row("acme-sub", 6, "9.00"), row("acme", 10, "15.0"), row("z", 1)],
            (1, 1, 1),
            id="added-updated-reordered",
        ),
    ],
)
def test_reply_that_only_adds_or_updates_needs_no_witness(
    wh: Warehouse, reply: list[StatRow], counts: tuple[int, int, int]
) -> None:
    load(wh, REPLY_A)
    result = load(wh, reply)

    assert (result.inserted, result.updated, result.unchanged, result.deleted) == (*counts, 0)
    assert [r.login for r in wh.stored_rows(ACCOUNT, "main", DAY)] == sorted(r.login for r in reply)


# --- comparing two replies ----------------------------------------------------------------

X, Y = row("acme", 10, "15.00"), row("acme-sub", 5, "7.50")


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        pytest.param([], [], True, id="both-empty"),
        pytest.param([X, Y], [X, Y], True, id="identical"),
        pytest.param([X, Y], [Y, X], True, id="reordered"),
        pytest.param([X], [row("acme", 10, "15.0", "0.00")], True, id="scale-only"),
        pytest.param([X, Y], [X], False, id="login-missing"),
        pytest.param([X], [X, Y], False, id="login-extra"),
        pytest.param([X], [], False, id="one-empty"),
        pytest.param([X], [row("acme", 11, "15.00")], False, id="cnt-differs"),
        pytest.param([X], [row("acme", 10, "15.01")], False, id="credit-differs"),
        pytest.param([X], [row("acme", 10, "15.00", "1")], False, id="debit-differs"),
        pytest.param([X], [row("acme", 10, "15.00", cur="RUR")], False, id="currency-differs"),
        pytest.param([X], [row("other", 10, "15.00")], False, id="login-renamed"),
        pytest.param([X, X, Y], [X, Y, Y], False, id="same-logins-different-multiplicity"),
    ],
)
def test_same_rows(a: list[StatRow], b: list[StatRow], same: bool) -> None:
    assert same_rows(a, b) is same
    assert same_rows(b, a) is same


# --- archiving disputed replies -----------------------------------------------------------


def disputed(wh: Warehouse) -> list[tuple[Any, ...]]:
    return [
        (i, acc, ser, d, fmt, bytes(body), sha, reason, at is not None)
        for i, acc, ser, d, fmt, body, sha, reason, at in query(
            wh,
            "SELECT id, account, series, stat_date, reply_format, body, sha256, reason,"
            " fetched_at FROM smsc.disputed_reply ORDER BY id",
        )
    ]


def test_archive_disputed_keeps_both_replies_and_leaves_the_day_alone(wh: Warehouse) -> None:
    load(wh, REPLY_A)
    before = table_dump(wh)
    first, second = b"[]", "login = acme, cnt = 10\r\n".encode("cp1251") + b"\xff"

    ids = wh.archive_disputed(
        account=ACCOUNT,
        series="main",
        day=DAY,
        replies=[(first, 3), (second, 0)],
        reason="first fetch empty, second fetch had 1 login; 2 stored",
    )

    assert len(ids) == 2
    assert ids == sorted(ids)
    reason = "first fetch empty, second fetch had 1 login; 2 stored"
    assert disputed(wh) == [
        (ids[0], ACCOUNT, "main", DAY, 3, first, hashlib.sha256(first).hexdigest(), reason, True),
        (ids[1], ACCOUNT, "main", DAY, 0, second, hashlib.sha256(second).hexdigest(), reason, True),
    ]
    after = table_dump(wh)
    assert len(after.pop("disputed_reply")) == 2
    before.pop("disputed_reply")
    assert after == before
    assert wh.stored_rows(ACCOUNT, "main", DAY) == REPLY_A


def test_archive_disputed_works_for_a_day_never_loaded(wh: Warehouse) -> None:
    (only,) = wh.archive_disputed(
        account=ACCOUNT, series="balance2", day=DAY, replies=[(b"", 1)], reason="r"
    )
    assert [row[:5] for row in disputed(wh)] == [(only, ACCOUNT, "balance2", DAY, 1)]
    assert wh.loaded_days(ACCOUNT, "balance2", DAY, DAY) == set()


GOOD_ARCHIVE: dict[str, Any] = {
    "account": ACCOUNT,
    "series": "main",
    "day": DAY,
    "replies": [(b"[]", 3), (b"[]", 3)],
    "reason": "disagreeing re-fetches",
}

BAD_ARCHIVE = [
    pytest.param({"account": ""}, "account must be a non-empty", id="empty-account"),
    pytest.param({"series": "balance3"}, "series must be one of", id="bad-series"),
    pytest.param(
        {"day": latest_begun_day() + timedelta(days=3)}, "is in the future", id="future-day"
    ),
    pytest.param({"day": datetime(2024, 3, 15, 12)}, "not a datetime", id="datetime-day"),
    pytest.param({"day": "2024-03-15"}, "day must be a date", id="str-day"),
    pytest.param({"replies": []}, "got an empty list", id="no-replies"),
    pytest.param({"replies": b"[]"}, "replies must be a non-empty sequence", id="bytes-replies"),
    pytest.param({"replies": None}, "replies must be a non-empty sequence", id="none-replies"),
    pytest.param({"replies": [b"[]"]}, re.escape("replies[0] must be a"), id="bare-bytes"),
    pytest.param({"replies": [(b"[]",)]}, re.escape("replies[0] must be a"), id="one-tuple"),
    pytest.param(
        {"replies": [(b"[]", 3), ("[]", 3)]},
        re.escape("replies[1]: raw_reply must be bytes"),
        id="second-reply-str",
    ),
    pytest.param(
        {"replies": [(b"[]", 4)]},
        re.escape("replies[0]: reply_format must be one of 0-3"),
        id="unknown-format",
    ),
    pytest.param(
        {"replies": [(b"[]", True)]},
        re.escape("replies[0]: reply_format"),
        id="bool-format",
    ),
    pytest.param(
        {"replies": [(b"[]", [3])]}, re.escape("replies[0]: reply_format"), id="list-format"
    ),
    pytest.param({"reason": ""}, "reason must be a non-empty", id="empty-reason"),
    pytest.param({"reason": "  "}, "reason must be a non-empty", id="blank-reason"),
    pytest.param({"reason": None}, "reason must be a non-empty", id="no-reason"),
]


@pytest.mark.parametrize(("overrides", "message"), BAD_ARCHIVE)
def test_archive_disputed_refuses_bad_input_before_writing(
    wh: Warehouse, overrides: dict[str, Any], message: str
) -> None:
    load(wh, REPLY_A)
    before = table_dump(wh)

    with pytest.raises(ValueError, match=message):
        wh.archive_disputed(**{**GOOD_ARCHIVE, **overrides})
    assert table_dump(wh) == before


@pytest.mark.parametrize(
    ("column", "value"),
    [
        pytest.param("sha256", "0" * 64, id="sha256-not-of-body"),
        pytest.param("reply_format", 4, id="unknown-reply-format"),
        pytest.param("series", "balance3", id="unknown-series"),
        pytest.param("account", "", id="empty-account"),
        pytest.param("reason", " ", id="blank-reason"),
    ],
)
def test_disputed_reply_checks_reject_bad_values(wh: Warehouse, column: str, value: Any) -> None:
    good: dict[str, Any] = {
        "account": ACCOUNT,
        "series": "main",
        "reply_format": 3,
        "body": b"[]",
        "sha256": hashlib.sha256(b"[]").hexdigest(),
        "reason": "r",
    }
    with wh.engine.connect() as conn, pytest.raises(IntegrityError, match="check constraint"):
        conn.execute(
            text(
                "INSERT INTO smsc.disputed_reply"
                " (account, series, stat_date, reply_format, body, sha256, reason)"
                " VALUES (:account, :series, '2024-03-15', :reply_format, :body, :sha256, :reason)"
            ),
            {**good, column: value},
        )


# --- the gap view -------------------------------------------------------------------------


def test_gap_view_lists_exactly_the_never_loaded_days(wh: Warehouse) -> None:
    (today,) = query(wh, "SELECT current_date")[0]

    def ago(n: int) -> date:
        return today - timedelta(days=n)

    for n in (6, 3, 1, 0):
        load(wh, REPLY_A, day=ago(n))
    load(wh, [], day=ago(4), raw_reply=b"[]")  # fetched and empty: not a gap
    load(wh, REPLY_A, day=ago(2), series="balance2")  # another series has its own start

    gaps = query(wh, "SELECT account, series, day FROM smsc.load_gaps ORDER BY series, day")
    assert gaps == [
        (ACCOUNT, "balance2", ago(1)),
        (ACCOUNT, "main", ago(5)),
        (ACCOUNT, "main", ago(2)),
    ]


# --- atomicity ----------------------------------------------------------------------------


def _wait_for(engine: Engine, sql: str, expected: int = 1, timeout: float = 10) -> list[int]:
    """Poll pg_stat_activity-style ``sql`` (returning pids) until ``expected`` rows appear."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            pids = list(conn.execute(text(sql)).scalars())
        if len(pids) >= expected:
            return pids
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {expected} backend(s): {sql}")


def _start(target: Any, results: list[Any], errors: list[BaseException]) -> threading.Thread:
    def run() -> None:
        try:
            results.append(target())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_killed_writer_leaves_the_window_untouched_and_retry_lands_whole(
    wh: Warehouse, warehouse_url: str
) -> None:
    load(wh, REPLY_A)
    before = table_dump(wh)
    reply_b = [row("acme", 99, "150.00"), row("newcomer", 1)]
    admin = create_engine(warehouse_url)
    try:
        with admin.connect() as locker:
            # The writer's last statement archives the reply: block it there, after its
            # load_log insert, delete and upserts are done but not committed.
            locker.execute(text("LOCK TABLE smsc.raw_reply IN ACCESS EXCLUSIVE MODE"))
            results: list[LoadResult] = []
            errors: list[BaseException] = []
            writer = _start(lambda: load(wh, reply_b, removals_confirmed=True), results, errors)
            (pid,) = _wait_for(
                admin,
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock' AND query LIKE '%INSERT INTO smsc.raw_reply%'",
            )
            with admin.connect() as killer:
                wrote = killer.execute(
                    text(
                        "SELECT array_agg(DISTINCT relation::regclass::text) FROM pg_locks"
                        " WHERE pid = :pid AND mode = 'RowExclusiveLock'"
                        " AND relation IS NOT NULL"
                    ),
                    {"pid": pid},
                ).scalar_one()
                assert {"smsc.stat_day", "smsc.load_log"} <= set(wrote)
                assert killer.execute(
                    text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}
                ).scalar_one()
            writer.join(timeout=10)
            locker.rollback()
    finally:
        admin.dispose()

    assert results == []
    assert len(errors) == 1
    assert isinstance(errors[0], DBAPIError)
    assert table_dump(wh) == before

    retry = load(wh, reply_b, removals_confirmed=True)
    assert wh.stored_rows(ACCOUNT, "main", DAY) == reply_b
    assert (retry.inserted, retry.updated, retry.deleted, retry.revisions) == (1, 1, 1, 3)
    assert len(query(wh, "SELECT load_id FROM smsc.raw_reply")) == 2


# --- concurrency --------------------------------------------------------------------------


def _load_together(
    wh: Warehouse, replies: Sequence[Sequence[StatRow]], *, removals_confirmed: bool = False
) -> tuple[list[LoadResult], list[BaseException]]:
    """Start one load per reply while the window's lock is held, then let them race."""
    key = window_lock_key(ACCOUNT, "main", DAY)
    results: list[LoadResult] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(replies))

    def loader(rows: Sequence[StatRow]) -> Any:
        def go() -> LoadResult:
            barrier.wait()
            return load(wh, rows, removals_confirmed=removals_confirmed)

        return go

    with wh.engine.connect() as gate:
        gate.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"), {"k": key})
        threads = [_start(loader(rows), results, errors) for rows in replies]
        _wait_for(
            wh.engine,
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event = 'advisory'",
            expected=len(replies),
        )
        gate.rollback()  # both writers are now queued on the same lock
    for t in threads:
        t.join(timeout=30)
    return results, errors


def test_two_threads_loading_the_same_reply_end_as_one_load(wh: Warehouse) -> None:
    results, errors = _load_together(wh, [REPLY_A, REPLY_A])

    assert errors == []
    assert sorted((r.inserted, r.unchanged) for r in results) == [(0, 2), (2, 0)]
    assert wh.stored_rows(ACCOUNT, "main", DAY) == REPLY_A
    assert revisions(wh) == []
    assert len(query(wh, "SELECT id FROM smsc.load_log")) == 2


def test_two_threads_loading_different_replies_end_as_the_later_one(wh: Warehouse) -> None:
    reply_b = [row("acme", 11, "16.50")]
    results, errors = _load_together(wh, [REPLY_A, reply_b], removals_confirmed=True)

    assert errors == []
    earlier, later = sorted(results, key=lambda r: r.load_id)
    later_size = later.inserted + later.updated + later.unchanged
    expected_last = REPLY_A if later_size == len(REPLY_A) else reply_b
    assert wh.stored_rows(ACCOUNT, "main", DAY) == expected_last
    assert earlier.revisions == 0
    assert later.revisions == len(revisions(wh)) == 2


def test_witness_decision_is_made_on_the_locked_rows(wh: Warehouse) -> None:
    """Rows committed while a load waits for the window lock count against it."""
    key = window_lock_key(ACCOUNT, "main", DAY)
    results: list[LoadResult] = []
    errors: list[BaseException] = []
    with wh.engine.connect() as gate:
        gate.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"), {"k": key})
        # Nothing is stored yet, so a read before the lock would see a first load.
        waiter = _start(lambda: load(wh, [REPLY_A[0]]), results, errors)
        _wait_for(
            wh.engine,
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event = 'advisory'",
        )
        # Meanwhile the lock holder stores the day, as a concurrent load would.
        load_id = gate.execute(
            text(
                "INSERT INTO smsc.load_log (account, series, window_start, window_end, loaded_at,"
                " row_count, reply_sha256, inserted, updated, deleted, unchanged)"
                " VALUES (:account, 'main', :day, :day, clock_timestamp(), 2, repeat('0', 64),"
                " 2, 0, 0, 0) RETURNING id"
            ),
            {"account": ACCOUNT, "day": DAY},
        ).scalar_one()
        gate.execute(
            text(
                "INSERT INTO smsc.stat_day (account, series, stat_date, login, cnt, credit,"
                " debit, currency, first_loaded_at, last_loaded_at, last_load_id)"
                " VALUES (:account, 'main', :day, :login, :cnt, :credit, :debit, :currency,"
                " clock_timestamp(), clock_timestamp(), :load_id)"
            ),
            [{"account": ACCOUNT, "day": DAY, "load_id": load_id, **asdict(r)} for r in REPLY_A],
        )
        gate.commit()  # releases the lock: the waiter now reads the two stored rows
    waiter.join(timeout=30)

    assert results == []
    assert len(errors) == 1
    assert isinstance(errors[0], RemovalNeedsWitness)
    assert errors[0].removed_logins == ["acme-sub"]
    assert wh.stored_rows(ACCOUNT, "main", DAY) == REPLY_A
    assert len(query(wh, "SELECT id FROM smsc.load_log")) == 1


def _load_in_subprocess(url: str, barrier: Any, out: Any) -> None:
    wh = Warehouse.from_url(url)
    try:
        barrier.wait()
        result = load(wh, REPLY_A)
        out.put(("ok", result.inserted, result.unchanged))
    except BaseException as exc:
        out.put(("error", repr(exc), 0))
    finally:
        wh.dispose()


def test_two_processes_loading_the_same_reply_end_as_one_load(
    wh: Warehouse, warehouse_url: str
) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    out = ctx.Queue()
    procs = [
        ctx.Process(target=_load_in_subprocess, args=(warehouse_url, barrier, out))
        for _ in range(2)
    ]
    for p in procs:
        p.start()
    outcomes = sorted(out.get(timeout=60) for _ in procs)
    for p in procs:
        p.join(timeout=10)

    assert outcomes == [("ok", 0, 2), ("ok", 2, 0)]
    assert wh.stored_rows(ACCOUNT, "main", DAY) == REPLY_A
    assert revisions(wh) == []


# --- bad input ----------------------------------------------------------------------------


def _tampered(field: str, value: Any) -> StatRow:
    bad = row("acme", 1)
    object.__setattr__(bad, field, value)  # StatRow validates on construction only
    return bad


BAD_INPUT = [
    pytest.param(
        {"rows": [_tampered("cnt", -1)]}, "cnt must be an integer >= 0", id="negative-cnt"
    ),
    pytest.param({"rows": [_tampered("cnt", True)]}, "cnt must be an integer", id="bool-cnt"),
    pytest.param({"rows": [_tampered("currency", "RUBL")]}, "currency", id="currency-too-long"),
    pytest.param({"rows": [_tampered("currency", "RU")]}, "currency", id="currency-too-short"),
    pytest.param({"rows": [_tampered("currency", "rub")]}, "currency", id="currency-lowercase"),
    pytest.param({"rows": [_tampered("credit", Decimal("NaN"))]}, "credit", id="nan-credit"),
    pytest.param({"rows": [_tampered("debit", 1.5)]}, "debit", id="float-debit"),
    pytest.param({"rows": [_tampered("login", " ")]}, "login", id="blank-login"),
    pytest.param(
        {"rows": [SimpleNamespace(login="acme", cnt=1)]}, "must be a StatRow", id="not-a-statrow"
    ),
    pytest.param(
        {"rows": [row("acme", 1), row("acme", 2)]}, "duplicate login 'acme'", id="duplicate-login"
    ),
    pytest.param({"series": "balance3"}, "series must be one of", id="bad-series"),
    pytest.param({"account": ""}, "account must be a non-empty", id="empty-account"),
    pytest.param({"account": "  "}, "account must be a non-empty", id="blank-account"),
    pytest.param(
        {"day": latest_begun_day() + timedelta(days=3)}, "is in the future", id="future-day"
    ),
    pytest.param({"day": datetime(2024, 3, 15, 12)}, "not a datetime", id="datetime-day"),
    pytest.param({"reply_format": 7}, "reply_format", id="unknown-reply-format"),
    pytest.param({"raw_reply": "text"}, "raw_reply must be bytes", id="str-reply"),
    pytest.param(
        {"removals_confirmed": "yes"}, "removals_confirmed must be True or False", id="str-confirm"
    ),
    pytest.param(
        {"removals_confirmed": 1}, "removals_confirmed must be True or False", id="int-confirm"
    ),
]


@pytest.mark.parametrize(("overrides", "message"), BAD_INPUT)
def test_bad_input_is_refused_before_writing(
    wh: Warehouse, overrides: dict[str, Any], message: str
) -> None:
    load(wh, REPLY_A)
    before = table_dump(wh)
    args: dict[str, Any] = {
        "account": ACCOUNT,
        "series": "main",
        "day": DAY,
        "rows": [row("acme", 3)],
        "raw_reply": b"[]",
        "reply_format": 3,
        **overrides,
    }

    with pytest.raises(ValueError, match=message):
        wh.load_day(**args)
    assert table_dump(wh) == before


def test_the_day_that_has_begun_somewhere_is_accepted(wh: Warehouse) -> None:
    day = latest_begun_day()
    load(wh, REPLY_A, day=day)
    assert wh.stored_rows(ACCOUNT, "main", day) == REPLY_A


# --- the BI reader role -------------------------------------------------------------------


@pytest.fixture(scope="module")
def reader_engine(pg_server_url: str) -> Iterator[Engine]:
    """One migrated, loaded database shared by the read-only role checks."""
    from devtools import postgres

    with postgres.throwaway_database(pg_server_url, prefix="smsc_test_reader") as url:
        apply_migrations(url)
        wh = Warehouse.from_url(url)
        load(wh, REPLY_A)
        yield wh.engine
        wh.dispose()


def _as_reader(engine: Engine, sql: str) -> list[tuple[Any, ...]]:
    conn: Connection
    with engine.connect() as conn:
        conn.execute(text("SET LOCAL ROLE smsc_reader"))
        try:
            return [tuple(r) for r in conn.execute(text(sql))]
        finally:
            conn.rollback()


@pytest.mark.parametrize("view", ["daily_stats", "monthly_stats", "load_gaps"])
def test_reader_can_select_view(reader_engine: Engine, view: str) -> None:
    rows = _as_reader(reader_engine, f"SELECT * FROM smsc.{view} WHERE account = 'acme'")
    assert rows  # the one loaded day lies in the past, so load_gaps has rows too


DENIED = [
    *(
        pytest.param(f"SELECT * FROM smsc.{t}", id=f"select-{t}")
        for t in (
            "stat_day",
            "load_log",
            "raw_reply",
            "stat_revision",
            "disputed_reply",
            "schema_migrations",
        )
    ),
    pytest.param(
        "INSERT INTO smsc.daily_stats (stat_date, account, series, login, cnt, credit, debit,"
        " currency, last_loaded_at) VALUES ('2024-01-01', 'x', 'main', 'x', 1, 1, 1, 'RUB', now())",
        id="insert-view",
    ),
    pytest.param("UPDATE smsc.daily_stats SET cnt = 0", id="update-view"),
    pytest.param("DELETE FROM smsc.daily_stats", id="delete-view"),
    pytest.param("DELETE FROM smsc.stat_day", id="delete-table"),
    pytest.param("UPDATE smsc.load_log SET row_count = 0", id="update-table"),
    pytest.param(
        "INSERT INTO smsc.raw_reply (load_id, body, reply_format, sha256) VALUES (1, 'x', 0, 'x')",
        id="insert-table",
    ),
    pytest.param("CREATE TABLE smsc.mine (id int)", id="create-in-schema"),
]


@pytest.mark.parametrize("sql", DENIED)
def test_reader_is_denied(reader_engine: Engine, sql: str) -> None:
    with pytest.raises(ProgrammingError) as denied:
        _as_reader(reader_engine, sql)
    assert getattr(denied.value.orig, "pgcode", None) == "42501"  # insufficient_privilege
