"""Store fetched SMSC statistics windows in PostgreSQL: atomic, idempotent, with history.

The SQL is written out as ``text()`` statements rather than Core table objects: it is
PostgreSQL-specific anyway (advisory locks, ``ON CONFLICT``), reads the same as the schema
in ``sql/``, and can be pasted into psql when something needs investigating.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import URL

from smsc_hook.client.models import StatRow

#: main and balance2 from get.php?get_stat; subclients from users.php?get_stat (resellers).
SERIES_NAMES = ("main", "balance2", "subclients")
SERIES = frozenset(SERIES_NAMES)
REPLY_FORMATS = frozenset({0, 1, 2, 3})

# The earliest time zone on Earth (Etc/GMT-14, fixed UTC+14, no DST): a day that has not
# begun there has not begun anywhere, so no SMSC account can have statistics for it yet.
_EARLIEST_ZONE = timezone(timedelta(hours=14), "Etc/GMT-14")
_CURRENCY = re.compile(r"[A-Z]{3}")
_BIGINT_MAX = 2**63 - 1
# How many removed logins a RemovalNeedsWitness message names; the attribute has them all.
_NAMED_IN_MESSAGE = 10


@dataclass(frozen=True, slots=True)
class LoadResult:
    """What one ``load_day`` call did; the same counts are in its ``smsc.load_log`` row."""

    load_id: int
    inserted: int
    updated: int
    unchanged: int
    deleted: int
    revisions: int


class RemovalNeedsWitness(Exception):
    """A reply would remove stored logins of a day, and no second fetch has confirmed it.

    Raised by ``load_day(..., removals_confirmed=False)`` before anything is written. A
    single reply that drops logins may be SMSC's (or a proxy's) glitch; the caller should
    fetch the day again independently and retry with ``removals_confirmed=True`` only if the
    two replies agree (``same_rows``), else keep both with ``Warehouse.archive_disputed``.
    """

    def __init__(
        self,
        account: str,
        series: str,
        day: date,
        removed_logins: Sequence[str],
        stored_count: int,
        fetched_count: int,
    ) -> None:
        self.account = account
        self.series = series
        self.day = day
        self.removed_logins = sorted(removed_logins)
        self.stored_count = stored_count
        self.fetched_count = fetched_count
        named = ", ".join(repr(login) for login in self.removed_logins[:_NAMED_IN_MESSAGE])
        if len(self.removed_logins) > _NAMED_IN_MESSAGE:
            named += f" and {len(self.removed_logins) - _NAMED_IN_MESSAGE} more"
        what = "empty the stored day" if fetched_count == 0 else "remove stored logins"
        super().__init__(
            f"reply for {account}/{series}/{day.isoformat()} would {what}: "
            f"{len(self.removed_logins)} of {stored_count} stored login(s) absent ({named}), "
            f"{fetched_count} row(s) fetched; nothing was written. Load it with "
            "removals_confirmed=True only after a second, independent fetch agrees"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # Exception pickles as cls(*self.args), and args holds only the message.
        return (
            type(self),
            (
                self.account,
                self.series,
                self.day,
                self.removed_logins,
                self.stored_count,
                self.fetched_count,
            ),
        )


def same_rows(a: Sequence[StatRow], b: Sequence[StatRow]) -> bool:
    """Whether two replies report the same figures per login, in any order.

    Amounts compare by value, so ``15.0`` and ``15.00`` agree (as ``numeric`` does). A
    login listed twice in one reply counts twice, so ``[x, x]`` does not equal ``[x]``.
    """
    if len(a) != len(b):
        return False
    return sorted(map(_comparable, a)) == sorted(map(_comparable, b))


def latest_begun_day() -> date:
    """Today's date in the earliest time zone: the latest day that has begun anywhere."""
    return datetime.now(_EARLIEST_ZONE).date()


def window_lock_key(account: str, series: str, day: date) -> str:
    """Text whose ``hashtextextended(key, 0)`` is the advisory lock a window's writer holds.

    From psql: ``SELECT pg_advisory_lock(hashtextextended('<key>', 0))`` pauses the loads of
    that window. The one-bigint key space is separate from the migrations' two-int lock; a
    hash collision between windows only makes them wait for each other.
    """
    return f"smsc.stat_day/{account}/{series}/{day.isoformat()}"


class Warehouse:
    """The ``smsc`` schema's writer and its small read helpers. Expects migrations applied."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def from_url(cls, url: str | URL) -> Warehouse:
        return cls(create_engine(url, pool_pre_ping=True))

    def dispose(self) -> None:
        """Close the engine's pooled connections."""
        self.engine.dispose()

    def load_day(
        self,
        *,
        account: str,
        series: str,
        day: date,
        rows: Sequence[StatRow],
        raw_reply: bytes,
        reply_format: int,
        removals_confirmed: bool = False,
    ) -> LoadResult:
        """Make the stored ``(account, series, day)`` exactly ``rows``, all or nothing.

        Re-loading the same reply changes no figures and writes no revisions; every call adds
        one ``load_log`` row and archives ``raw_reply``. Concurrent calls for the same window
        queue on an advisory lock, so the outcome equals running them one after the other.

        A reply that lacks logins stored for the day (an empty reply for a non-empty day
        included) is applied only with ``removals_confirmed=True``; otherwise
        ``RemovalNeedsWitness`` is raised, decided on the locked rows, and nothing is written.
        Raises ``ValueError`` for bad input before touching the database.
        """
        _validate(account=account, series=series, day=day, rows=rows)
        _validate_reply(raw_reply=raw_reply, reply_format=reply_format)
        if not isinstance(removals_confirmed, bool):
            raise ValueError(
                f"removals_confirmed must be True or False, got {removals_confirmed!r}"
            )
        window = {"account": account, "series": series, "day": day}
        with self.engine.begin() as conn:
            loaded_at = _lock_window(conn, account, series, day)
            day_was_loaded = conn.execute(
                text(
                    "SELECT EXISTS (SELECT FROM smsc.load_log"
                    " WHERE account = :account AND series = :series"
                    " AND :day BETWEEN window_start AND window_end)"
                ),
                window,
            ).scalar_one()
            stored = {row.login: row for row in _select_rows(conn, window, for_update=True)}
            diff = _Diff.between(stored, rows)
            if diff.deleted and not removals_confirmed:
                # Raising inside the transaction rolls it back; nothing has been written yet.
                raise RemovalNeedsWitness(
                    account=account,
                    series=series,
                    day=day,
                    removed_logins=[row.login for row in diff.deleted],
                    stored_count=len(stored),
                    fetched_count=len(rows),
                )
            reply_sha256 = hashlib.sha256(raw_reply).hexdigest()

            load_id: int = conn.execute(
                text(
                    "INSERT INTO smsc.load_log (account, series, window_start, window_end,"
                    "   loaded_at, row_count, reply_sha256,"
                    "   inserted, updated, deleted, unchanged)"
                    " VALUES (:account, :series, :day, :day, :loaded_at, :row_count,"
                    "   :reply_sha256, :inserted, :updated, :deleted, :unchanged)"
                    " RETURNING id"
                ),
                {
                    **window,
                    "loaded_at": loaded_at,
                    "row_count": len(rows),
                    "reply_sha256": reply_sha256,
                    "inserted": len(diff.inserted),
                    "updated": len(diff.updated),
                    "deleted": len(diff.deleted),
                    "unchanged": len(diff.unchanged),
                },
            ).scalar_one()
            stamp = {**window, "loaded_at": loaded_at, "load_id": load_id}

            if diff.deleted:
                conn.execute(
                    text(
                        "DELETE FROM smsc.stat_day"
                        " WHERE account = :account AND series = :series AND stat_date = :day"
                        "   AND login = ANY(CAST(:logins AS text[]))"
                    ),
                    {**window, "logins": [row.login for row in diff.deleted]},
                )
            if rows:
                conn.execute(_UPSERT, [{**stamp, **_values(row)} for row in rows])
            # Rows re-fetched unchanged were left alone by the upsert; record that this
            # load confirmed them.
            conn.execute(
                text(
                    "UPDATE smsc.stat_day SET last_loaded_at = :loaded_at, last_load_id = :load_id"
                    " WHERE account = :account AND series = :series AND stat_date = :day"
                    "   AND last_load_id <> :load_id"
                ),
                stamp,
            )

            revisions = diff.revisions(stored) if day_was_loaded else []
            if revisions:
                conn.execute(_INSERT_REVISION, [{**stamp, **rev} for rev in revisions])

            conn.execute(
                text(
                    "INSERT INTO smsc.raw_reply (load_id, body, reply_format, sha256)"
                    " VALUES (:load_id, :body, :reply_format, :sha256)"
                ),
                {
                    "load_id": load_id,
                    "body": raw_reply,
                    "reply_format": reply_format,
                    "sha256": reply_sha256,
                },
            )
        return LoadResult(
            load_id=load_id,
            inserted=len(diff.inserted),
            updated=len(diff.updated),
            unchanged=len(diff.unchanged),
            deleted=len(diff.deleted),
            revisions=len(revisions),
        )

    def archive_disputed(
        self,
        *,
        account: str,
        series: str,
        day: date,
        replies: Sequence[tuple[bytes, int]],
        reason: str,
    ) -> list[int]:
        """Keep ``(raw_reply, reply_format)`` replies of a day in ``smsc.disputed_reply``.

        For replies that were not loaded because fetches disagreed about removing logins.
        All are stored in one transaction; the day's stored rows and its load history are
        left alone. Returns the new ids in the order of ``replies``. Raises ``ValueError``
        for bad input before touching the database.
        """
        _validate(account=account, series=series, day=day, rows=())
        if isinstance(replies, bytes | str) or not isinstance(replies, Sequence) or not replies:
            raise ValueError(
                # Only the type: a reply body may echo what the request carried.
                "replies must be a non-empty sequence of (raw_reply, reply_format) tuples,"
                f" got {'an empty ' if not replies else ''}{type(replies).__name__}"
            )
        for index, reply in enumerate(replies):
            if not isinstance(reply, tuple) or len(reply) != 2:
                raise ValueError(
                    f"replies[{index}] must be a (raw_reply, reply_format) tuple,"
                    f" got {type(reply).__name__}"
                )
            _validate_reply(raw_reply=reply[0], reply_format=reply[1], where=f"replies[{index}]: ")
        if not isinstance(reason, str) or not reason.strip():
            raise ValueError(f"reason must be a non-empty string, got {reason!r}")
        common = {"account": account, "series": series, "day": day, "reason": reason}
        with self.engine.begin() as conn:
            return [
                conn.execute(
                    text(
                        "INSERT INTO smsc.disputed_reply"
                        "   (account, series, stat_date, reply_format, body, sha256, reason)"
                        " VALUES (:account, :series, :day, :reply_format, :body, :sha256, :reason)"
                        " RETURNING id"
                    ),
                    {
                        **common,
                        "reply_format": reply_format,
                        "body": body,
                        "sha256": hashlib.sha256(body).hexdigest(),
                    },
                ).scalar_one()
                for body, reply_format in replies
            ]

    def stored_rows(self, account: str, series: str, day: date) -> list[StatRow]:
        """The rows stored for one window, ordered by login."""
        with self.engine.connect() as conn:
            return _select_rows(conn, {"account": account, "series": series, "day": day})

    def loaded_days(self, account: str, series: str, start: date, end: date) -> set[date]:
        """Days in ``[start, end]`` that some load covered (including empty replies)."""
        with self.engine.connect() as conn:
            found = conn.execute(
                text(
                    "SELECT DISTINCT d.day"
                    " FROM smsc.load_log AS l"
                    " CROSS JOIN LATERAL generate_series(0, l.window_end - l.window_start)"
                    "   AS g (n)"
                    " CROSS JOIN LATERAL (SELECT l.window_start + g.n AS day) AS d"
                    " WHERE l.account = :account AND l.series = :series"
                    "   AND l.window_end >= :start AND l.window_start <= :end"
                    "   AND d.day BETWEEN :start AND :end"
                ),
                {"account": account, "series": series, "start": start, "end": end},
            ).scalars()
            return set(found)


_UPSERT = text(
    """
    INSERT INTO smsc.stat_day AS s
        (account, series, stat_date, login, cnt, credit, debit, currency,
         first_loaded_at, last_loaded_at, last_load_id)
    VALUES (:account, :series, :day, :login, :cnt, :credit, :debit, :currency,
            :loaded_at, :loaded_at, :load_id)
    ON CONFLICT (account, series, stat_date, login) DO UPDATE
    SET cnt = EXCLUDED.cnt,
        credit = EXCLUDED.credit,
        debit = EXCLUDED.debit,
        currency = EXCLUDED.currency,
        last_loaded_at = EXCLUDED.last_loaded_at,
        last_load_id = EXCLUDED.last_load_id
    WHERE (s.cnt, s.credit, s.debit, s.currency)
          IS DISTINCT FROM (EXCLUDED.cnt, EXCLUDED.credit, EXCLUDED.debit, EXCLUDED.currency)
    """
)

_INSERT_REVISION = text(
    """
    INSERT INTO smsc.stat_revision
        (account, series, stat_date, login,
         old_cnt, old_credit, old_debit, old_currency,
         new_cnt, new_credit, new_debit, new_currency,
         changed_at, load_id)
    VALUES (:account, :series, :day, :login,
            :old_cnt, :old_credit, :old_debit, :old_currency,
            :new_cnt, :new_credit, :new_debit, :new_currency,
            :loaded_at, :load_id)
    """
)


@dataclass(frozen=True, slots=True)
class _Diff:
    """How a reply differs from what is stored for its window (logins compared by value)."""

    inserted: list[StatRow]
    updated: list[StatRow]
    unchanged: list[StatRow]
    deleted: list[StatRow]

    @classmethod
    def between(cls, stored: dict[str, StatRow], rows: Sequence[StatRow]) -> _Diff:
        fetched = {row.login for row in rows}
        inserted: list[StatRow] = []
        updated: list[StatRow] = []
        unchanged: list[StatRow] = []
        for row in rows:
            old = stored.get(row.login)
            if old is None:
                inserted.append(row)
            elif _same_values(old, row):
                unchanged.append(row)
            else:
                updated.append(row)
        deleted = [row for login, row in sorted(stored.items()) if login not in fetched]
        return cls(inserted, updated, unchanged, deleted)

    def revisions(self, stored: dict[str, StatRow]) -> list[dict[str, Any]]:
        """Revision rows: old side NULL for new logins, new side NULL for vanished ones."""
        return [
            *(_revision(new.login, None, new) for new in self.inserted),
            *(_revision(new.login, stored[new.login], new) for new in self.updated),
            *(_revision(old.login, old, None) for old in self.deleted),
        ]


def _revision(login: str, old: StatRow | None, new: StatRow | None) -> dict[str, Any]:
    return {"login": login, **_prefixed("old_", old), **_prefixed("new_", new)}


def _same_values(a: StatRow, b: StatRow) -> bool:
    # Decimal equality ignores scale (15.0 == 15.00), as numeric's IS DISTINCT FROM does.
    return (a.cnt, a.credit, a.debit, a.currency) == (b.cnt, b.credit, b.debit, b.currency)


def _comparable(row: StatRow) -> tuple[str, int, Decimal, Decimal, str]:
    # Decimals order and compare by value, so sorting these is scale-insensitive too.
    return (row.login, row.cnt, row.credit, row.debit, row.currency)


def _values(row: StatRow) -> dict[str, Any]:
    return {
        "login": row.login,
        "cnt": row.cnt,
        "credit": row.credit,
        "debit": row.debit,
        "currency": row.currency,
    }


def _prefixed(prefix: str, row: StatRow | None) -> dict[str, Any]:
    fields = ("cnt", "credit", "debit", "currency")
    if row is None:
        return {prefix + name: None for name in fields}
    return {prefix + name: getattr(row, name) for name in fields}


def _lock_window(conn: Connection, account: str, series: str, day: date) -> datetime:
    """Serialize writers of one window for this transaction; return the load's timestamp."""
    conn.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
        {"key": window_lock_key(account, series, day)},
    )
    # Taken after the lock so that, of two queued loads, the later writer has the later time.
    loaded_at: datetime = conn.execute(text("SELECT clock_timestamp()")).scalar_one()
    return loaded_at


def _select_rows(
    conn: Connection, window: dict[str, Any], *, for_update: bool = False
) -> list[StatRow]:
    result = conn.execute(
        text(
            "SELECT login, cnt, credit, debit, currency FROM smsc.stat_day"
            " WHERE account = :account AND series = :series AND stat_date = :day"
            " ORDER BY login" + (" FOR UPDATE" if for_update else "")
        ),
        window,
    )
    return [
        StatRow(login=login, cnt=cnt, credit=credit, debit=debit, currency=currency)
        for login, cnt, credit, debit, currency in result
    ]


def _validate(*, account: str, series: str, day: date, rows: Sequence[StatRow]) -> None:
    if not isinstance(account, str) or not account.strip():
        raise ValueError(f"account must be a non-empty string, got {account!r}")
    if series not in SERIES:
        raise ValueError(f"series must be one of {sorted(SERIES)}, got {series!r}")
    if isinstance(day, datetime) or not isinstance(day, date):
        raise ValueError(f"day must be a date (not a datetime), got {day!r}")
    latest = latest_begun_day()
    if day > latest:
        raise ValueError(
            f"day {day.isoformat()} is in the future: it has not begun in any time zone "
            f"(latest begun day is {latest.isoformat()} in Etc/GMT-14)"
        )
    seen: set[str] = set()
    for index, row in enumerate(rows):
        _validate_row(index, row)
        if row.login in seen:
            raise ValueError(f"rows[{index}]: duplicate login {row.login!r} in one reply")
        seen.add(row.login)


def _validate_row(index: int, row: object) -> None:
    # StatRow validates on construction, but a frozen dataclass can still be altered with
    # object.__setattr__, and the database CHECKs would only fail after the lock is taken.
    where = f"rows[{index}]"
    if not isinstance(row, StatRow):
        raise ValueError(f"{where} must be a StatRow, got {type(row).__name__}")
    if not isinstance(row.login, str) or not row.login.strip():
        raise ValueError(f"{where}: login must be a non-empty string, got {row.login!r}")
    if isinstance(row.cnt, bool) or not isinstance(row.cnt, int) or row.cnt < 0:
        raise ValueError(f"{where}: cnt must be an integer >= 0, got {row.cnt!r}")
    if row.cnt > _BIGINT_MAX:
        raise ValueError(f"{where}: cnt {row.cnt} does not fit a bigint")
    for name in ("credit", "debit"):
        value = getattr(row, name)
        if not isinstance(value, Decimal) or not value.is_finite():
            raise ValueError(f"{where}: {name} must be a finite Decimal, got {value!r}")
    if not isinstance(row.currency, str) or not _CURRENCY.fullmatch(row.currency):
        raise ValueError(f"{where}: currency must be three capital letters, got {row.currency!r}")


def _validate_reply(*, raw_reply: object, reply_format: object, where: str = "") -> None:
    if not isinstance(raw_reply, bytes):
        raise ValueError(f"{where}raw_reply must be bytes, got {type(raw_reply).__name__}")
    if (
        isinstance(reply_format, bool)
        or not isinstance(reply_format, int)
        or reply_format not in REPLY_FORMATS
    ):
        raise ValueError(f"{where}reply_format must be one of 0-3 (SMSC fmt), got {reply_format!r}")
