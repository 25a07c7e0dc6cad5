"""The SMSC page without a running Airflow: its arithmetic, its queries against a real
warehouse with real ledger rows, and its empty and error states (no bootstrap, warehouse
unreachable) through the real FastAPI app; only Airflow's auth and metadata are replaced
(the stack tests in test_ui_page.py cover those for real)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from devtools.airflow_stack import postgres_connection
from smsc_hook.airflow.settings import PipelineSettings
from smsc_hook.client.models import StatRow
from smsc_hook.ui import app as page_app
from smsc_hook.ui import snapshot, status
from smsc_hook.ui.metadata import AirflowMetadata, BackfillState, MetadataSnapshot, PoolState
from smsc_hook.warehouse.ledger import LedgerPacer, RateLimit
from smsc_hook.warehouse.writer import Warehouse

T0 = datetime(2026, 3, 5, 12, 0, tzinfo=UTC)
LIMIT = RateLimit(3, timedelta(seconds=60))  # span 61 s
SECRET = "Pa55-never-shown-7f3a"


def at(value: str) -> datetime:
    """A JSON timestamp (ISO 8601 with its offset) as an aware datetime."""
    return datetime.fromisoformat(value)


def s(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("starts", "expected"),
    [
        pytest.param([], s(0), id="empty-ledger"),
        pytest.param([s(-10), s(-5)], s(0), id="two-of-three"),
        pytest.param([s(-30), s(-20), s(-10)], s(31), id="full-window"),
        pytest.param([s(-70), s(-20), s(-10)], s(0), id="oldest-left"),
        pytest.param([s(-50), s(-40), s(-30), s(-20)], s(21), id="third-newest-decides"),
    ],
)
def test_next_free_slot_follows_the_pacer(starts, expected):
    assert status.next_free_slot(starts, LIMIT, T0) == expected


@pytest.mark.parametrize(
    ("calls_left", "starts", "blocked", "expected"),
    [
        pytest.param(0, [], None, s(0), id="nothing-left"),
        pytest.param(3, [], None, s(0), id="burst-fits-now"),
        pytest.param(4, [], None, s(61), id="fourth-waits-a-window"),
        pytest.param(7, [], None, s(122), id="seven-three-windows"),
        pytest.param(1, [s(-30), s(-20), s(-10)], None, s(31), id="behind-a-full-window"),
        pytest.param(2, [], s(600), s(600), id="cooldown-first"),
    ],
)
def test_eta_replays_the_rate_budget(calls_left, starts, blocked, expected):
    assert status.eta(calls_left, starts, LIMIT, T0, blocked) == expected


@pytest.mark.parametrize(
    ("left", "done", "expected"),
    [
        pytest.param(4, 2, s(200), id="two-days-in-100s"),
        pytest.param(4, 0, None, id="no-pace-yet"),
        pytest.param(0, 5, None, id="done"),
    ],
)
def test_eta_at_the_pace_so_far(left, done, expected):
    assert status.eta_at_pace(left, done, s(-100), T0) == expected


def test_cooldowns_end_when_the_ledger_would_call_again():
    found = status.cooldowns(
        now=T0,
        last_ip_block=s(-60),
        ip_block_pause=timedelta(minutes=31),
        auth_failures=[s(-600), s(-300), s(-100)],
    )
    assert [(c.kind, c.until) for c in found] == [
        ("ip_block", s(-60) + timedelta(minutes=31)),
        # Three failures; calls resume when only one is left in the 30 min window.
        ("auth_failures", s(-300) + timedelta(minutes=30)),
    ]
    assert (
        status.cooldowns(
            now=T0,
            last_ip_block=s(-1900),
            ip_block_pause=timedelta(minutes=31),
            auth_failures=[s(-100), s(-1900)],
        )
        == []
    )


@pytest.mark.parametrize(
    ("caller", "path"),
    [
        pytest.param(
            "smsc_daily_stats/backfill__2026-03-05T00:00:00+03:00/load_day[2]#1",
            "dags/smsc_daily_stats/runs/backfill__2026-03-05T00%3A00%3A00%2B03%3A00"
            "/tasks/load_day/mapped/2",
            id="mapped",
        ),
        pytest.param(
            "smsc_daily_stats_shop/manual__x/reconcile_month#3",
            "dags/smsc_daily_stats_shop/runs/manual__x/tasks/reconcile_month",
            id="unmapped",
        ),
        pytest.param("bootstrap", None, id="bootstrap"),
        pytest.param("test_connection", None, id="connection-test"),
    ],
)
def test_ledger_callers_link_to_their_task_instance(caller, path):
    parsed = status.parse_caller(caller)
    assert (parsed.ui_path() if parsed else None) == path


def test_minute_series_fills_quiet_minutes_with_zeros():
    end = datetime(2026, 3, 5, 12, 4, 30, tzinfo=UTC)
    series = status.minute_series([(end.replace(minute=2, second=0), 3, 1)], end, 4)
    assert [(m.minute, c, f) for m, c, f in series] == [(1, 0, 0), (2, 3, 1), (3, 0, 0), (4, 0, 0)]


class FixedMetadata(AirflowMetadata):
    """Airflow's side as a value: the stack tests read the real metadata database."""

    def __init__(self, snapshot: MetadataSnapshot) -> None:
        self.snapshot = snapshot

    def read(self, dag_ids, pools, timezone, bootstrap_key):
        return self.snapshot


def client_for(
    monkeypatch: pytest.MonkeyPatch, warehouse: dict, meta: MetadataSnapshot | None = None
) -> TestClient:
    monkeypatch.setenv("AIRFLOW_CONN_SMSC_WAREHOUSE", json.dumps(warehouse))
    monkeypatch.setenv(
        "AIRFLOW_CONN_SMSC_DEFAULT",
        json.dumps(
            {"conn_type": "smsc", "host": "http://127.0.0.1:9", "login": "demo", "password": "x"}
        ),
    )
    monkeypatch.setenv("SMSC_START_DATE", "2026-02-01")
    settings = PipelineSettings.from_env()
    access = page_app.Access(settings, list(settings.all_accounts()))
    app = page_app.create_app()
    app.dependency_overrides[page_app.api_access] = lambda: access
    app.dependency_overrides[page_app.page_access] = lambda: access
    meta = meta or MetadataSnapshot(True, [], {"smsc_api": PoolState("smsc_api", True, 1)})
    app.dependency_overrides[page_app.metadata_reader] = lambda: FixedMetadata(meta)
    return TestClient(app)


def test_ledger_rows_drive_now_calls_and_cooldowns(
    monkeypatch: pytest.MonkeyPatch, engine: Engine, warehouse_url: str
):
    pacer = LedgerPacer(engine, "demo", caller="smsc_daily_stats/manual__1/load_day[0]#1")
    day = date(2026, 3, 1)
    for outcome, code in [("ok", None), ("api_error", 2), ("api_error", 2)]:
        pacer.reserve(day, day, "http://sim").finish(outcome, code)
    client = client_for(monkeypatch, postgres_connection(warehouse_url))
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT id, reserved_at, error_code FROM smsc.api_calls ORDER BY id")
        ).all()

    now = client.get("/api/now").json()["accounts"][0]["now"]
    assert now["calls_in_window"] == 3
    # Three starts in the window: the next slot opens when the oldest leaves it.
    assert at(now["next_slot"]) >= rows[0].reserved_at + timedelta(seconds=61)
    (cooldown,) = now["cooldowns"]
    assert cooldown["kind"] == "auth_failures"
    assert at(cooldown["until"]) == rows[1].reserved_at + timedelta(minutes=30)

    calls = client.get("/api/calls").json()["accounts"][0]["calls"]
    assert calls["total"] == 3
    assert calls["failed"] == 2
    assert [r["id"] for r in calls["ledger"]] == [r.id for r in reversed(rows)]
    assert calls["ledger"][0]["ui_path"] == (
        "dags/smsc_daily_stats/runs/manual__1/tasks/load_day/mapped/0"
    )
    assert calls["limit_per_minute"] == round(3 * 60 / 61, 3)

    response = client.get("/")
    # No script may run in the page, and only Airflow's UI may frame it.
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "frame-ancestors 'self'" in policy
    html = response.text
    assert 'data-cooldown="auth_failures"' in html
    assert '<span data-figure="calls-in-window">3</span>' in html


def test_backfill_progress_counts_the_load_log(
    monkeypatch: pytest.MonkeyPatch, engine: Engine, warehouse_url: str
):
    days = [date(2026, 3, 1) + timedelta(days=i) for i in range(5)]
    created = datetime.now(UTC) - timedelta(seconds=1)
    for day in days[:2]:
        Warehouse(engine).load_day(
            account="demo",
            series="main",
            day=day,
            rows=[StatRow("demo", 5, Decimal("1.5"), Decimal(0), "RUB")],
            raw_reply=b"[]",
            reply_format=3,
        )
    # One call in flight (reserved, no reply yet): its day needs no further slot.
    LedgerPacer(engine, "demo").reserve(days[2], days[2], "http://sim")
    meta = MetadataSnapshot(
        True,
        [BackfillState(7, "smsc_daily_stats", created, False, days, {"running": 3})],
        {"smsc_api": PoolState("smsc_api", True, 1, running=1, queued=2)},
    )
    client = client_for(monkeypatch, postgres_connection(warehouse_url), meta)
    (backfill,) = client.get("/api/now").json()["accounts"][0]["now"]["backfills"]
    assert (backfill["days_loaded"], backfill["days_expected"]) == (2, 5)
    assert backfill["calls_left"] == 2
    assert backfill["eta"] is not None
    html = client.get("/").text
    assert '<span data-figure="days-loaded">2</span>' in html
    assert '<span data-figure="pool-queued">2</span>' in html


def test_gaps_revisions_and_untrusted_text_are_rendered_safely(
    monkeypatch: pytest.MonkeyPatch, engine: Engine, warehouse_url: str
):
    warehouse = Warehouse(engine)

    def load(day: date, cnt: int) -> None:
        warehouse.load_day(
            account="demo",
            series="main",
            day=day,
            rows=[StatRow("<b>sub</b>", cnt, Decimal("2.5"), Decimal(0), "RUB")],
            raw_reply=b"[]",
            reply_format=3,
        )

    load(date(2026, 3, 1), 1)
    load(date(2026, 3, 4), 1)
    load(date(2026, 3, 4), 9)  # a re-fetch that changed the day: one revision
    LedgerPacer(engine, "demo", caller="<script>alert(1)</script>").reserve(
        date(2026, 3, 4), date(2026, 3, 4), "http://sim"
    ).finish("ok")
    client = client_for(monkeypatch, postgres_connection(warehouse_url))

    data = client.get("/api/data").json()["accounts"][0]["data"]
    first_gap = data["gaps"][0]
    assert (first_gap["first"], first_gap["last"], first_gap["days"]) == (
        "2026-03-02",
        "2026-03-03",
        2,
    )
    assert first_gap["backfill_command"] == (
        "airflow backfill create --dag-id smsc_daily_stats --from-date 2026-03-02"
        " --to-date 2026-03-03 --max-active-runs 2 --reprocess-behavior completed"
    )
    with engine.connect() as conn:
        view_days = conn.execute(
            text("SELECT count(*) FROM smsc.load_gaps WHERE account = 'demo'")
        ).scalar_one()
    assert data["gap_days"] == view_days
    (revision,) = data["revisions"]
    assert (revision["old_cnt"], revision["new_cnt"]) == (1, 9)

    html = client.get("/").text
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;sub&lt;/b&gt;" in html
    assert "1 → 9" in html


def test_no_bootstrap_yet_says_what_to_run(monkeypatch: pytest.MonkeyPatch, warehouse_url: str):
    client = client_for(
        monkeypatch,
        postgres_connection(warehouse_url),
        MetadataSnapshot(False, [], {"smsc_api": PoolState("smsc_api", False)}),
    )
    page = client.get("/api/data").json()
    assert page["warehouse"]["error"] == "NoBootstrap"
    assert page["accounts"] == []
    html = client.get("/").text
    assert "No bootstrap yet:" in html
    assert "airflow smsc bootstrap" in html
    assert 'id="bootstrap-missing"' in html


@pytest.mark.parametrize(
    "where",
    [
        pytest.param({"port": 9}, id="nothing-listens"),
        pytest.param({"schema": "smsc_no_such_database"}, id="no-such-database"),
    ],
)
def test_unreachable_warehouse_shows_the_error_class_never_the_password(
    monkeypatch: pytest.MonkeyPatch, warehouse_url: str, where: dict
):
    conn = {**postgres_connection(warehouse_url), "password": SECRET, **where}
    client = client_for(monkeypatch, conn)
    bodies = [client.get(path) for path in ("/", "/api/now", "/api/calls", "/api/data")]
    for response in bodies:
        assert response.status_code == 200
        assert SECRET not in response.text
        assert "Traceback" not in response.text
        assert "[SQL:" not in response.text
    warehouse = bodies[1].json()["warehouse"]
    assert warehouse["ok"] is False
    assert warehouse["error"] == "OperationalError"
    assert warehouse["message"]
    assert "The warehouse is unreachable" in bodies[0].text
    assert "<code>OperationalError</code>" in bodies[0].text


def test_public_error_masks_secrets_and_drops_the_statement():
    from sqlalchemy.exc import OperationalError

    exc = OperationalError("SELECT 1", {}, Exception(f"auth failed for {SECRET}\nsecond line"))
    assert snapshot.public_error(exc, [SECRET]) == {
        "error": "Exception",
        "message": "auth failed for ***",
    }


def test_a_schema_behind_the_code_names_the_pending_migrations(
    monkeypatch: pytest.MonkeyPatch, warehouse_url: str, tmp_path
):
    import shutil

    from devtools.airflow_stack import REPO_ROOT
    from smsc_hook.warehouse.migrations import apply_migrations

    files = sorted((REPO_ROOT / "sql").glob("*.sql"))
    for path in files[:-1]:
        shutil.copy(path, tmp_path / path.name)
    apply_migrations(warehouse_url, tmp_path)
    client = client_for(monkeypatch, postgres_connection(warehouse_url))
    warehouse = client.get("/api/now").json()["warehouse"]
    assert warehouse["error"] == "SchemaBehind"
    assert files[-1].name in warehouse["message"]
    assert "The warehouse schema is behind:" in client.get("/").text


class Manager:
    """An auth manager's answers as a table: which connections and DAGs a user may read."""

    def __init__(self, connections: set[str], dags: set[str]) -> None:
        self.connections = connections
        self.dags = dags

    def is_authorized_connection(self, *, method, details, user):
        return method == "GET" and details.conn_id in self.connections

    def is_authorized_dag(self, *, method, access_entity, details, user):
        return method == "GET" and details.id in self.dags

    def is_authorized_pool(self, *, method, details, user):
        return method == "GET"


@pytest.mark.parametrize(
    ("connections", "dags", "shown"),
    [
        pytest.param({"smsc_warehouse"}, {"smsc_daily_stats_shop"}, ["shop"], id="one-dag"),
        pytest.param(
            {"smsc_warehouse"},
            {"smsc_daily_stats_shop", "smsc_daily_stats_news"},
            ["shop", "news"],
            id="both",
        ),
        pytest.param(set(), {"smsc_daily_stats_shop"}, 403, id="no-warehouse-connection"),
        pytest.param({"smsc_warehouse"}, set(), 403, id="no-dag"),
    ],
)
def test_access_needs_the_warehouse_connection_and_shows_readable_dags_only(
    monkeypatch: pytest.MonkeyPatch, connections, dags, shown
):
    import airflow.api_fastapi.app
    from fastapi import HTTPException

    monkeypatch.setattr(
        airflow.api_fastapi.app, "get_auth_manager", lambda: Manager(connections, dags)
    )
    settings = PipelineSettings.from_env(
        {
            "SMSC_ACCOUNTS": json.dumps([{"name": "shop"}, {"name": "news"}]),
            "SMSC_START_DATE": "2026-02-01",
        }
    )
    if shown == 403:
        with pytest.raises(HTTPException) as refused:
            page_app.allowed_accounts(object(), settings)
        assert refused.value.status_code == 403
    else:
        assert [a.name for a in page_app.allowed_accounts(object(), settings)] == shown


def test_each_series_keeps_its_own_gap_ranges_and_total(engine: Engine) -> None:
    """Ranges are cut per series, so main's many ranges cannot hide balance2's, and the
    total counts every gap day of each series even when its ranges were cut."""
    from smsc_hook.ui import queries

    warehouse = Warehouse(engine)
    loaded = {
        "main": [date(2026, 10, d) for d in (1, 3, 5, 7)],  # gaps: 2, 4, 6
        "balance2": [date(2026, 10, 1), date(2026, 10, 4)],  # gap: 2..3
    }
    for series, days in loaded.items():
        for day in days:
            warehouse.load_day(
                account="demo", series=series, day=day, rows=[], raw_reply=b"[]", reply_format=3
            )
    with engine.connect() as conn:
        ranges = queries.gap_ranges(conn, "demo", limit=2)
    by_series = {s: [r for r in ranges if r["series"] == s] for s in loaded}
    assert len(by_series["balance2"]) >= 1, "balance2's range must not be crowded out"
    assert len(by_series["main"]) == 2
    totals = {r["series"]: r["series_days"] for r in ranges}
    # main's third range (Oct 6) and the open one after Oct 7 are cut but still counted.
    assert totals["main"] > sum(r["days"] for r in by_series["main"])
