"""The SMSC page served by a real api-server, filled by a real backfill, seen in a browser.

One stack for the module (scheduler, api-server, dag-processor; simple auth manager with
real users): February preloaded and reconciled through a paced month call, a March day
revised at SMSC, then a backfill of ten March days under the scheduler. While it runs, the
JSON and a headless Chromium (Debian's, logged in through Airflow's login form) show its
progress; once it is done, every number is compared with the ledger and the load log.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import create_engine

from devtools import postgres
from devtools.airflow_stack import REPO_ROOT, AirflowStack, running_stack
from devtools.simulator_process import RunningSimulator, running_simulator
from smsc_hook.checks.gaps import group_ranges
from smsc_hook.checks.reconciliation import check_month
from smsc_hook.client.exceptions import SmscAuthError
from smsc_hook.client.hook import SmscHook
from smsc_hook.warehouse.ledger import LedgerPacer, RateLimit
from tests.conftest import SIM_TODAY
from tests.support import ACCOUNT, DAG_ID, airflow_connections, preload, query, wait_for_runs

pytestmark = [pytest.mark.backfill, pytest.mark.timeout(600)]

RATE_WINDOW = 2.0  # seconds: SMSC's 60 s, scaled down 30x for the simulator and the ledger
FEBRUARY = [date(2026, 2, 1) + timedelta(days=i) for i in range(28)]
BACKFILL = [date(2026, 3, 5) + timedelta(days=i) for i in range(10)]
#: Loaded before the backfill; 03-02 .. 03-04 stay a gap. BACKFILL[0] is revised at SMSC.
PRELOADED = [*FEBRUARY, date(2026, 3, 1), BACKFILL[0]]
USERS = {
    "admin": ("ADMIN", "admin-pw-1"),
    "op": ("OP", "op-pw-2"),
    "viewer": ("VIEWER", "viewer-pw-3"),
}
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
#: The README's picture is rewritten only on request (SMSC_UPDATE_SCREENSHOT=1), so a test
#: run leaves the tracked file alone; otherwise the same shot goes to a temporary file.
SCREENSHOT = (
    REPO_ROOT / "docs" / "smsc-page.png"
    if os.environ.get("SMSC_UPDATE_SCREENSHOT") == "1"
    else Path(tempfile.gettempdir()) / f"smsc-page-{os.getpid()}.png"
)
SCREENSHOT_MAX_BYTES = 150 * 1024


@dataclass
class Page:
    stack: AirflowStack
    sim: RunningSimulator
    warehouse_url: str
    #: The warehouse's clock just before the backfill was created.
    backfill_started: datetime

    def json(self, path: str, user: str = "admin") -> dict[str, Any]:
        reply: dict[str, Any] = self.stack.api("GET", path, token=self.stack.login(user))
        return reply

    def calls(self) -> int:
        return int(query(self.warehouse_url, "SELECT count(*) FROM smsc.api_calls")[0][0])

    def loaded(self) -> int:
        """Backfill days in the load log since the backfill began (main series)."""
        return query(
            self.warehouse_url,
            "SELECT count(DISTINCT window_start) FROM smsc.load_log WHERE account = :a"
            " AND series = 'main' AND window_start = ANY(:days) AND loaded_at >= :since",
            a=ACCOUNT,
            days=BACKFILL,
            since=self.backfill_started,
        )[0][0]


def request(
    stack: AirflowStack, path: str, *, token: str | None = None, cookie: str | None = None
) -> tuple[int, dict[str, str], str]:
    """GET without following redirects: status, headers, body."""
    where = urlsplit(stack.url)
    conn = http.client.HTTPConnection(where.hostname or "127.0.0.1", where.port, timeout=30)
    headers = {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if cookie:
        headers["Cookie"] = f"_token={cookie}"
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read().decode()
    finally:
        conn.close()


def paced_hook(engine: Any) -> SmscHook:
    """The stack's SMSC connection (the module's environment has it), paced by the
    warehouse's ledger at the stack's rate, as a task's hook is."""
    pacer = LedgerPacer(
        engine, ACCOUNT, limit=RateLimit(3, timedelta(seconds=RATE_WINDOW)), caller="ui-test"
    )
    return SmscHook("smsc_default", pacer=pacer)


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory, pg_server_url: str) -> Iterator[Page]:
    args = ("--quiet", "--rate-limit", "3", "--rate-window", str(RATE_WINDOW))
    with (
        postgres.throwaway_database(pg_server_url) as warehouse_url,
        running_simulator(*args, "--today", SIM_TODAY.isoformat()) as sim,
        pytest.MonkeyPatch.context() as patch,
    ):
        stack = AirflowStack(
            home=tmp_path_factory.mktemp("ui") / "airflow",
            connections=airflow_connections(sim.url, warehouse_url),
            users=USERS,
            # Scheduled runs end with the backfill's range, so unpausing creates none.
            extra_env={
                "SMSC_LOOKBACK_DAYS": "0",
                "SMSC_START_DATE": FEBRUARY[0].isoformat(),
                "SMSC_END_DATE": BACKFILL[-1].isoformat(),
                "SMSC_RATE_WINDOW_SECONDS": str(RATE_WINDOW),
            },
        )
        with running_stack(stack):
            patch.setenv("AIRFLOW_CONN_SMSC_DEFAULT", stack.env["AIRFLOW_CONN_SMSC_DEFAULT"])
            stack.login("admin", keep=True)
            stack.python("-m", "smsc_hook.bootstrap", "--no-api-call")
            preload(warehouse_url, sim.control, PRELOADED)
            (before,) = [
                r
                for r in sim.control.truth(ACCOUNT, BACKFILL[0], BACKFILL[0])
                if r["login"] == ACCOUNT
            ]
            sim.control.revise(ACCOUNT, ACCOUNT, BACKFILL[0], cnt=before["cnt"] + 7)
            engine = create_engine(warehouse_url)
            try:
                hook = paced_hook(engine)
                for month in (date(2026, 2, 1), date(2026, 3, 1)):
                    check_month(
                        engine=engine,
                        account=ACCOUNT,
                        series="main",
                        month=month,
                        fetch_month=lambda first, last: hook.fetch_stat(first, last).rows,
                    )
            finally:
                engine.dispose()
            stack.wait_for_dag(DAG_ID)
            stack.unpause(DAG_ID)
            # Slow replies keep the backfill running while the browser looks at it.
            sim.control.set_faults([{"kind": "latency", "seconds": 1.5, "count": 0}])
            started = query(warehouse_url, "SELECT clock_timestamp()")[0][0]
            stack.backfill(DAG_ID, BACKFILL[0], BACKFILL[-1], max_active_runs=3)
            yield Page(stack, sim, warehouse_url, started)


@pytest.fixture(scope="module")
def finished(page: Page) -> Page:
    """The backfill done (and completed in Airflow's metadata), slow replies off."""
    wait_for_runs(page.stack, "backfill", len(BACKFILL), timeout=300)
    page.sim.control.clear_faults()
    deadline = time.monotonic() + 60
    while page.json("/smsc/api/now")["accounts"][0]["now"]["backfills"]:
        assert time.monotonic() < deadline, "the backfill never completed"
        time.sleep(1)
    return page


def test_anonymous_and_unauthorised_users_are_refused(page: Page) -> None:
    stack = page.stack
    for path in ("/smsc/api/now", "/smsc/api/calls", "/smsc/api/data"):
        code, _, body = request(stack, path)
        assert (code, json.loads(body)["detail"]) == (401, "Not authenticated"), path
    # A browser without a session is sent to Airflow's login, and back here afterwards.
    code, headers, body = request(stack, "/smsc/?hours=2")
    assert code == 303
    assert headers["location"].startswith("/auth/login?next=")
    assert "smsc%2F%3Fhours%3D2" in headers["location"]
    assert "ledger" not in body

    code, _, _ = request(stack, "/smsc/api/now", token="not-a-jwt")
    assert code == 403
    # VIEWER reads DAGs and pools but not connections: the page shows what the warehouse
    # connection reads, so it refuses them, by header and by the UI's cookie alike.
    viewer = stack.login("viewer")
    for path in ("/smsc/api/data", "/smsc/"):
        code, _, body = request(stack, path, token=viewer)
        assert code == 403, path
        assert "smsc_warehouse" in body
        assert ACCOUNT not in body.replace("smsc_warehouse", "")
    assert request(stack, "/smsc/", cookie=viewer)[0] == 403
    for user in ("op", "admin"):
        code, _, body = request(stack, "/smsc/api/data", token=stack.login(user))
        assert code == 200, user
        assert json.loads(body)["accounts"][0]["account"] == ACCOUNT
    assert request(stack, "/smsc/icon.svg")[0] == 200  # the nav icon: static

    (plugin,) = [p for p in stack.api("GET", "/api/v2/plugins")["plugins"] if p["name"] == "smsc"]
    (view,) = plugin["external_views"]
    assert (view["name"], view["href"], view["url_route"]) == ("SMSC", "/smsc/", "smsc")
    assert [app["url_prefix"] for app in plugin["fastapi_apps"]] == ["/smsc"]


def test_a_running_backfill_shows_days_loaded_and_an_eta(page: Page) -> None:
    before = page.loaded()
    now = page.json("/smsc/api/now")["accounts"][0]["now"]
    after = page.loaded()
    (backfill,) = now["backfills"]
    assert backfill["dag_id"] == DAG_ID
    assert (backfill["first_day"], backfill["last_day"]) == (
        BACKFILL[0].isoformat(),
        BACKFILL[-1].isoformat(),
    )
    assert backfill["days_expected"] == len(BACKFILL)
    assert before <= backfill["days_loaded"] <= after
    in_flight = now["in_flight"]
    assert backfill["calls_left"] == max(len(BACKFILL) - backfill["days_loaded"] - in_flight, 0)
    if backfill["calls_left"]:
        assert datetime.fromisoformat(backfill["eta"]) > datetime.fromisoformat(now["now"])
    assert now["pool"]["name"] == "smsc_api"
    assert now["pool"]["slots"] == 1
    assert now["limit"] == {"calls": 3, "window_s": RATE_WINDOW, "span_s": RATE_WINDOW + 1}


def test_the_page_in_a_real_browser(page: Page) -> None:
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), (
        f"no Chromium at {CHROMIUM}: apt-get install -y chromium chromium-driver (.ci/run does)"
    )
    stack = page.stack
    # Look while the backfill is half-way, for the progress bar.
    deadline = time.monotonic() + 120
    while page.loaded() < 3 and time.monotonic() < deadline:
        time.sleep(1)
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            tab = browser.new_page(viewport={"width": 1000, "height": 900})
            tab.on(
                "console",
                lambda m: errors.append(f"{tab.url}: {m.text}") if m.type == "error" else None,
            )
            tab.on("pageerror", lambda exc: errors.append(f"{tab.url}: {exc}"))
            tab.goto(f"{stack.url}/smsc/")
            # Airflow's own login form, then back to the page it was asked for.
            tab.wait_for_selector('input[name="username"]')
            tab.fill('input[name="username"]', "admin")
            tab.fill('input[name="password"]', USERS["admin"][1])
            tab.click('button[type="submit"]')
            tab.wait_for_url(f"{stack.url}/smsc/", timeout=30_000)
            errors.clear()  # the login page is Airflow's; from here on it is ours
            calls_before = page.calls()
            tab.goto(f"{stack.url}/smsc/?hours=1")  # the last hour: this test's calls
            tab.wait_for_selector("#calls-chart")
            loaded_before = page.loaded()
            loaded_dom = int(tab.inner_text('[data-figure="days-loaded"]'))
            ledger_dom = tab.locator('[data-table="ledger"] tr[data-call]').count()
            bars = tab.locator("#calls-chart g.bar")
            dom_calls = sum(
                int(bars.nth(i).get_attribute("data-calls") or 0) for i in range(bars.count())
            )
            total_dom = int(tab.inner_text('[data-figure="calls-total"]'))
            revision_text = tab.inner_text('[data-table="revisions"]')
            reconciliation_text = tab.inner_text('[data-table="reconciliation"]')
            gaps_text = tab.inner_text('[data-table="gaps"]')
            query_count = int(tab.inner_text("#query-count"))
            tab.screenshot(path=str(SCREENSHOT), full_page=False)
            page_errors = list(errors)

            # The nav entry: the page inside Airflow's UI, at /plugin/smsc.
            tab.goto(f"{stack.url}/plugin/smsc")
            frame = tab.frame_locator('iframe[src="/smsc/"]')
            frame.locator("h1").wait_for(timeout=60_000)
            assert frame.locator("h1").inner_text() == "SMSC"
        finally:
            browser.close()

    assert page_errors == []
    assert 3 <= loaded_dom <= max(loaded_before, page.loaded())
    assert min(calls_before, 50) <= ledger_dom <= min(page.calls(), 50)
    assert dom_calls == total_dom > 0
    assert BACKFILL[0].isoformat() in revision_text
    assert "matched" in reconciliation_text
    assert "incomplete" in reconciliation_text
    assert "--from-date 2026-03-02 --to-date 2026-03-04" in gaps_text
    assert 0 < query_count < 20
    assert 0 < SCREENSHOT.stat().st_size <= SCREENSHOT_MAX_BYTES


def test_json_numbers_equal_the_ledger_and_the_load_log(finished: Page) -> None:
    page = finished
    calls = page.json("/smsc/api/calls?hours=24")["accounts"][0]["calls"]
    ledger = query(
        page.warehouse_url,
        "SELECT id, outcome, error_code, latency_ms, waited_ms, caller FROM smsc.api_calls"
        " ORDER BY reserved_at DESC, id DESC",
    )
    assert calls["total"] == len(ledger)  # every call of this test is within the 24 h
    assert [
        (r["id"], r["outcome"], r["error_code"], r["latency_ms"], r["waited_ms"], r["caller"])
        for r in calls["ledger"]
    ] == [tuple(row) for row in ledger[:50]]
    per_minute = dict(
        query(
            page.warehouse_url,
            "SELECT to_char(date_trunc('minute', reserved_at) AT TIME ZONE 'UTC',"
            " 'YYYY-MM-DD\"T\"HH24:MI'), count(*) FROM smsc.api_calls GROUP BY 1",
        )
    )
    charted = {
        f"{datetime.fromisoformat(m['minute']).astimezone(UTC):%Y-%m-%dT%H:%M}": m["calls"]
        for m in calls["minutes"]
        if m["calls"]
    }
    assert charted == per_minute
    backfill_calls = [r for r in calls["ledger"] if r["caller"].startswith(f"{DAG_ID}/backfill__")]
    assert len(backfill_calls) == len(BACKFILL)
    assert all(
        r["ui_path"].startswith(f"dags/{DAG_ID}/runs/backfill__")
        and "/tasks/load_day/mapped/0" in r["ui_path"]
        for r in backfill_calls
    )

    data = page.json("/smsc/api/data")["accounts"][0]["data"]
    gap_days = [row[0] for row in query(page.warehouse_url, "SELECT day FROM smsc.load_gaps")]
    assert [(g["first"], g["last"]) for g in data["gaps"]] == [
        (a.isoformat(), b.isoformat()) for a, b in group_ranges(gap_days)
    ]
    assert data["gaps"][0]["first"] == "2026-03-02"
    assert data["gaps"][0]["days"] == 3
    status = dict(
        query(
            page.warehouse_url,
            "SELECT DISTINCT to_char(month, 'YYYY-MM-DD'), status FROM smsc.reconciliation_status",
        )
    )
    assert {r["month"]: r["status"] for r in data["reconciliation"]} == status
    assert status == {"2026-02-01": "matched", "2026-03-01": "incomplete"}
    revisions = query(
        page.warehouse_url, "SELECT stat_date, login, old_cnt, new_cnt FROM smsc.stat_revision"
    )
    assert [
        (r["stat_date"], r["login"], r["old_cnt"], r["new_cnt"]) for r in data["revisions"]
    ] == [(d.isoformat(), login, old, new) for d, login, old, new in revisions]
    (revision,) = data["revisions"]
    assert revision["new_cnt"] == revision["old_cnt"] + 7


def test_auth_failures_show_a_cooldown_until_the_ledger_calls_again(finished: Page) -> None:
    page = finished
    page.sim.control.set_faults([{"kind": "error", "code": 2, "count": 2}])
    engine = create_engine(page.warehouse_url)
    try:
        hook = paced_hook(engine)
        for _ in range(2):
            with pytest.raises(SmscAuthError):
                hook.fetch_stat(BACKFILL[0], BACKFILL[0])
    finally:
        engine.dispose()
    failures = [
        row[0]
        for row in query(
            page.warehouse_url,
            "SELECT reserved_at FROM smsc.api_calls WHERE error_code = 2 ORDER BY reserved_at",
        )
    ]
    now = page.json("/smsc/api/now")["accounts"][0]["now"]
    (cooldown,) = now["cooldowns"]
    assert cooldown["kind"] == "auth_failures"
    until = datetime.fromisoformat(cooldown["until"])
    assert until == failures[0] + timedelta(minutes=30)
    assert datetime.fromisoformat(now["next_slot"]) == until
