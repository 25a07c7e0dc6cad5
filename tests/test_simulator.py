"""The SMSC simulator behaves like the real server: formats, limits, faults, truth, logging."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests

from simulator import truth
from simulator.config import DEFAULT_ACCOUNTS, Account, SimulatorConfig
from simulator.control import SimulatorControl, SimulatorControlError
from simulator.faults import FaultQueue, FaultSpec

TODAY = date(2026, 11, 10)
CYRILLIC = "магазин"
ACCOUNTS = [
    {
        "login": "demo",
        "password": "demo-password",
        "apikey": "demo-apikey",
        "subclients": ["demo-shop", "demo-news"],
        "currency": "RUB",
    },
    {"login": "acme", "password": "acme-password", "subclients": ["acme-eu"], "currency": "KZT"},
    {"login": "ural", "password": "ural-password", "subclients": [CYRILLIC], "currency": "RUB"},
]
DEMO = {"login": "demo", "psw": "demo-password"}


@dataclass
class Sim:
    process: subprocess.Popen[str]
    url: str
    control: SimulatorControl
    stdout: list[str] = field(default_factory=list)

    @property
    def api(self) -> str:
        return f"{self.url}/sys/get.php"


def start_simulator(*args: str) -> tuple[subprocess.Popen[str], str]:
    """Run ``python -m simulator`` and read the URL from its first line."""
    cmd = [sys.executable, "-m", "simulator", "--port", "0", *args]
    proc = subprocess.Popen(
        cmd,
        cwd=Path(__file__).resolve().parents[1],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("SMSC simulator listening on http://"):
        proc.kill()
        _, err = proc.communicate(timeout=5)
        pytest.fail(f"simulator did not start: {line!r} {err}")
    return proc, line.rsplit(" ", 1)[1].strip()


def stop_simulator(proc: subprocess.Popen[str]) -> int:
    proc.terminate()
    try:
        return proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise


@pytest.fixture(scope="module")
def sim_process(tmp_path_factory: pytest.TempPathFactory):
    accounts = tmp_path_factory.mktemp("sim") / "accounts.json"
    accounts.write_text(json.dumps({"accounts": ACCOUNTS}, ensure_ascii=False), "utf-8")
    proc, url = start_simulator("--accounts", str(accounts), "--today", TODAY.isoformat())
    sim = Sim(proc, url, SimulatorControl(url))
    assert proc.stdout is not None
    stdout = proc.stdout

    def drain() -> None:  # a full pipe would block the server's log prints
        for line in stdout:
            sim.stdout.append(line)

    threading.Thread(target=drain, daemon=True).start()
    yield sim
    assert stop_simulator(proc) == 0


@pytest.fixture
def sim(sim_process: Sim) -> Sim:
    """The shared simulator, fresh state, and a rate limit high enough not to interfere."""
    sim_process.control.reset()
    sim_process.control.configure(time_scale=1.0, rate_limit=1000, rate_window=60, today=TODAY)
    return sim_process


def ddmm(day: date) -> str:
    return day.strftime("%d.%m.%Y")


def get_stat(
    sim: Sim, start: date, end: date | None = None, method: str = "POST", **params: Any
) -> requests.Response:
    data: dict[str, Any] = {"get_stat": 1, **DEMO, "start": ddmm(start), "fmt": 3, **params}
    if end is not None:
        data["end"] = ddmm(end)
    data = {k: v for k, v in data.items() if v is not None}
    if method == "GET":
        return requests.get(sim.api, params=data, timeout=10)
    return requests.post(sim.api, data=data, timeout=10)


def parse_rows(body: str, fmt: int) -> list[dict[str, Any]]:
    """Test-side parser of each success format, independent of the simulator's code."""
    if fmt == 3:
        items = json.loads(body)
    elif fmt == 2:
        root = ET.fromstring(body)  # noqa: S314 (XML from our own simulator)
        items = [{c.tag: c.text for c in stat} for stat in root.iter("stat")]
    elif fmt == 1:
        keys = ("login", "cnt", "credit", "debit", "currency")
        items = [dict(zip(keys, line.split(","), strict=True)) for line in body.splitlines()]
    else:
        items = [
            dict(pair.split(" = ", 1) for pair in line.split(", ")) for line in body.splitlines()
        ]
    return [
        {
            "login": it["login"],
            "cnt": int(it["cnt"]),
            "credit": Decimal(it["credit"]),
            "debit": Decimal(it["debit"]),
            "currency": it["currency"],
        }
        for it in items
    ]


def reply_rows(resp: requests.Response, fmt: int = 3) -> list[dict[str, Any]]:
    assert resp.status_code == 200, resp.text
    return parse_rows(resp.text, fmt)


# -- formats ------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", [0, 1, 2, 3], ids=["text", "comma", "xml", "json"])
def test_success_reply_matches_truth_in_every_format(sim: Sim, fmt: int) -> None:
    start, end = date(2026, 10, 1), date(2026, 10, 31)
    resp = get_stat(sim, start, end, fmt=fmt, mycur=1)
    expected = sim.control.truth("demo", start, end, mycur=True)
    assert reply_rows(resp, fmt) == expected
    assert [r["login"] for r in expected] == ["demo", "demo-news", "demo-shop"]


def test_success_shapes_are_exact(sim: Sim) -> None:
    day = date(2026, 10, 5)
    rows = sim.control.truth("demo", day, day)
    first = rows[0]
    text = get_stat(sim, day, day, fmt=0, mycur=1).text
    comma = get_stat(sim, day, day, fmt=1, mycur=1).text
    xml = get_stat(sim, day, day, fmt=2, mycur=1).text
    js = get_stat(sim, day, day, fmt=3, mycur=1).text
    assert text.splitlines()[0] == (
        f"login = demo, cnt = {first['cnt']}, credit = {first['credit']}, "
        f"debit = {first['debit']}, currency = RUB"
    )
    assert comma.endswith("\n")
    assert comma.splitlines()[0] == f"demo,{first['cnt']},{first['credit']},{first['debit']},RUB"
    assert xml.startswith('<?xml version="1.0" encoding="windows-1251"?>\n<result>\n<stat>')
    assert "\n" in js
    assert '"cnt": ' + str(first["cnt"]) in js
    assert json.loads(js)[0]["credit"] == str(first["credit"])


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        (0, "ERROR = 1 (parameters error)"),
        (1, "0,-1"),
        (2, "<result><error>parameters error</error><error_code>1</error_code></result>"),
        (3, '{"error": "parameters error", "error_code": 1}'),
    ],
    ids=["text", "comma", "xml", "json"],
)
def test_error_shape_in_every_format(sim: Sim, fmt: int, expected: str) -> None:
    resp = requests.post(sim.api, data={"get_stat": 1, **DEMO, "fmt": fmt}, timeout=10)
    assert resp.status_code == 200
    assert resp.text == expected


@pytest.mark.parametrize(
    "params",
    [
        {"start": None},
        {"start": ""},
        {"start": "31.02.2026"},
        {"start": "2026-11-01"},
        {"start": "01.11.2026", "end": "31.10.2026"},
        {"start": "01.11.2026", "end": "1/11/2026"},
        {"start": "01.11.2026", "fmt": "7"},
        {"start": "01.11.2026", "mycur": "yes"},
        {"start": "01.11.2026", "get_stat": None, "send": "1"},
    ],
    ids=[
        "missing-start",
        "empty-start",
        "impossible-date",
        "iso-date",
        "end-before-start",
        "bad-end",
        "bad-fmt",
        "bad-mycur",
        "not-get-stat",
    ],
)
def test_parameter_errors_are_error_1(sim: Sim, params: dict[str, str | None]) -> None:
    data = {"get_stat": "1", **DEMO, "fmt": "0", **params}
    resp = requests.post(sim.api, data={k: v for k, v in data.items() if v is not None}, timeout=10)
    assert resp.status_code == 200
    assert resp.text == "ERROR = 1 (parameters error)"


# -- figures --------------------------------------------------------------------------


def test_one_day_has_main_login_and_active_subclients_only(sim: Sim) -> None:
    days = [date(2026, 10, 1) + timedelta(days=i) for i in range(20)]
    seen_without = False
    for day in days:
        rows = reply_rows(get_stat(sim, day, day, fmt=3, mycur=1))
        assert rows[0]["login"] == "demo"
        assert all(r["cnt"] > 0 for r in rows[1:])
        seen_without = seen_without or len(rows) < 3
    # ~2/3 activity: in 20 days some subclient must have been idle at least once
    assert seen_without


def test_window_after_today_has_only_a_zero_main_row(sim: Sim) -> None:
    rows = reply_rows(get_stat(sim, TODAY + timedelta(days=1), TODAY + timedelta(days=9)))
    assert rows == [
        {
            "login": "demo",
            "cnt": 0,
            "credit": Decimal("0.00"),
            "debit": Decimal("0.00"),
            "currency": "RUR",
        }
    ]


def test_range_equals_sum_of_its_days(sim: Sim) -> None:
    start, end = date(2026, 9, 1), date(2026, 9, 30)
    month = {r["login"]: r for r in sim.control.truth("acme", start, end, mycur=False)}
    sums: dict[str, list[Any]] = {}
    for i in range(30):
        day = start + timedelta(days=i)
        for r in sim.control.truth("acme", day, day, mycur=False):
            acc = sums.setdefault(r["login"], [0, Decimal("0.00"), Decimal("0.00")])
            acc[0] += r["cnt"]
            acc[1] += r["credit"]
            acc[2] += r["debit"]
    assert set(month) == set(sums) == {"acme", "acme-eu"}
    for login, (cnt, credit, debit) in sums.items():
        assert (month[login]["cnt"], month[login]["credit"], month[login]["debit"]) == (
            cnt,
            credit,
            debit,
        )
    assert reply_rows(get_stat(sim, start, end, login="acme", psw="acme-password")) == list(
        month.values()
    )


def test_range_bias_skews_only_multi_day_replies(sim: Sim) -> None:
    """``range_bias_cnt`` makes a month total disagree with its days (reconciliation tests)."""
    start, end = date(2026, 9, 1), date(2026, 9, 30)
    honest_month = reply_rows(get_stat(sim, start, end))
    honest_day = reply_rows(get_stat(sim, start, start))
    sim.control.configure(range_bias_cnt=7)
    try:
        skewed_month = reply_rows(get_stat(sim, start, end))
        skewed_day = reply_rows(get_stat(sim, start, start))
    finally:
        sim.control.configure(range_bias_cnt=0)
    assert skewed_month[0]["cnt"] == honest_month[0]["cnt"] + 7
    assert skewed_month[1:] == honest_month[1:]
    assert skewed_day == honest_day


def test_open_end_runs_to_today(sim: Sim) -> None:
    start, earlier = date(2026, 10, 20), date(2026, 10, 25)
    to_today = sim.control.truth("demo", start, TODAY)
    to_earlier = sim.control.truth("demo", start, earlier)
    assert to_today != to_earlier
    assert reply_rows(get_stat(sim, start, None, mycur=1)) == to_today
    sim.control.configure(today=earlier)
    # days after "today" have no traffic, so the same open window now stops earlier
    assert reply_rows(get_stat(sim, start, None, mycur=1)) == to_earlier
    assert sim.control.truth("demo", start, TODAY) == to_earlier


@pytest.mark.parametrize(
    ("params", "currency"),
    [({"mycur": 1}, "KZT"), ({"mycur": 0}, "RUR"), ({}, "RUR")],
    ids=["mycur-own", "mycur-roubles", "mycur-default"],
)
def test_currency_follows_mycur(sim: Sim, params: dict[str, Any], currency: str) -> None:
    day = date(2026, 10, 1)
    resp = get_stat(sim, day, day + timedelta(days=6), login="acme", psw="acme-password", **params)
    assert {r["currency"] for r in reply_rows(resp)} == {currency}


def test_mycur_and_balance2_give_different_figures(sim: Sim) -> None:
    start, end = date(2026, 10, 1), date(2026, 10, 31)
    own = sim.control.truth("acme", start, end, mycur=True)
    rub = sim.control.truth("acme", start, end, mycur=False)
    b2 = sim.control.truth("acme", start, end, balance2=True, mycur=True)
    assert [r["cnt"] for r in own] == [r["cnt"] for r in rub]
    assert own[0]["credit"] != rub[0]["credit"]
    assert b2[0]["cnt"] < own[0]["cnt"]
    kw: dict[str, Any] = {"login": "acme", "psw": "acme-password", "mycur": 1}
    assert reply_rows(get_stat(sim, start, end, balance2=1, **kw)) == b2
    assert reply_rows(get_stat(sim, start, end, balance2=0, **kw)) == own


def test_server_truth_equals_pure_function() -> None:
    config = SimulatorConfig(accounts=tuple(Account.from_json(a) for a in ACCOUNTS))
    rows = truth.window_rows(config, "demo", date(2026, 1, 1), date(2026, 3, 31), today=TODAY)
    again = truth.window_rows(config, "demo", date(2026, 1, 1), date(2026, 3, 31), today=TODAY)
    other_seed = SimulatorConfig(seed=2)
    assert rows == again
    assert rows != truth.window_rows(
        other_seed, "demo", date(2026, 1, 1), date(2026, 3, 31), today=TODAY
    )
    assert all(r["credit"].as_tuple().exponent == -2 for r in rows)


def test_pure_truth_matches_running_server(sim: Sim) -> None:
    config = SimulatorConfig(accounts=tuple(Account.from_json(a) for a in ACCOUNTS))
    start, end = date(2026, 8, 1), date(2026, 8, 31)
    expected = truth.window_rows(config, "ural", start, end, mycur=False, today=TODAY)
    assert sim.control.truth("ural", start, end, mycur=False) == expected


# -- transport details ------------------------------------------------------------------


def test_get_and_post_agree_and_merge_query_with_body(sim: Sim) -> None:
    start, end = date(2026, 10, 1), date(2026, 10, 10)
    via_get = get_stat(sim, start, end, method="GET", fmt=1)
    via_post = get_stat(sim, start, end, method="POST", fmt=1)
    merged = requests.post(
        f"{sim.api}?get_stat=1&fmt=1",
        data={**DEMO, "start": ddmm(start), "end": ddmm(end)},
        timeout=10,
    )
    assert via_get.text == via_post.text == merged.text
    assert len(via_get.text.splitlines()) >= 1


def test_apikey_authenticates(sim: Sim) -> None:
    day = date(2026, 10, 1)
    resp = get_stat(sim, day, day, login=None, psw=None, apikey="demo-apikey")
    assert reply_rows(resp)[0]["login"] == "demo"


@pytest.mark.parametrize(
    ("charset", "header"),
    [
        ("utf-8", "utf-8"),
        ("koi8-r", "koi8-r"),
        ("windows-1251", "windows-1251"),
        (None, "windows-1251"),
    ],
    ids=["utf-8", "koi8-r", "windows-1251", "default"],
)
@pytest.mark.parametrize("fmt", [0, 1, 2, 3], ids=["text", "comma", "xml", "json"])
def test_charset_is_honoured(sim: Sim, charset: str | None, header: str, fmt: int) -> None:
    resp = get_stat(
        sim,
        date(2026, 7, 1),
        date(2026, 9, 30),
        login="ural",
        psw="ural-password",
        fmt=fmt,
        charset=charset,
    )
    assert resp.headers["Content-Type"].endswith(f"charset={header}")
    assert CYRILLIC.encode(header) in resp.content
    if header != "utf-8":
        assert CYRILLIC.encode("utf-8") not in resp.content
    assert [r["login"] for r in parse_rows(resp.content.decode(header), fmt)] == ["ural", CYRILLIC]


# -- limits and auth -------------------------------------------------------------------------


def codes(responses: list[requests.Response]) -> list[int | None]:
    out: list[int | None] = []
    for resp in responses:
        body = resp.json()
        out.append(body["error_code"] if isinstance(body, dict) else None)
    return out


def test_rate_limit_rolls_and_counts_rejected_requests(sim: Sim) -> None:
    # 60 s window scaled to 4 s. Each sleep that must END INSIDE a window leaves about 2 s
    # to spare on a busy machine; the ones that must outlast a window only gain from delays.
    window = 4.0
    sim.control.configure(rate_limit=3, rate_window=60, time_scale=window / 60)
    day = date(2026, 10, 1)

    def call(**kw: Any) -> requests.Response:
        return get_stat(sim, day, day, fmt=3, **kw)

    assert codes([call(), call(), call()]) == [None, None, None]
    time.sleep(window / 2)  # the first three are still in the window
    assert codes([call(), call(), call()]) == [9, 9, 9]
    assert codes([call(login="acme", psw="acme-password")]) == [None]  # per account
    time.sleep(window / 2 + 0.2)  # the first three have left the window, the rejected ones have not
    assert codes([call()]) == [9]
    time.sleep(window / 2 + 0.2)  # the rejected three have left; the one just rejected is alone
    assert codes([call()]) == [None]


@pytest.mark.parametrize(
    "creds",
    [
        {"login": "demo", "psw": "wrong"},
        {"login": "nobody", "psw": "demo-password"},
        {"login": "demo-shop", "psw": "demo-password"},
        {"apikey": "wrong-key"},
        {},
    ],
    ids=["wrong-password", "unknown-login", "subclient-login", "wrong-apikey", "no-credentials"],
)
def test_bad_credentials_are_error_2(sim: Sim, creds: dict[str, str]) -> None:
    data = {"get_stat": 1, "start": "01.10.2026", "fmt": 1, **creds}
    resp = requests.post(sim.api, data=data, timeout=10)
    assert (resp.status_code, resp.text) == (200, "0,-2")


def test_five_auth_errors_block_the_ip_then_the_block_expires(sim: Sim) -> None:
    sim.control.configure(time_scale=2 / 1800)  # 30 min -> 2 s
    bad = {"get_stat": 1, "login": "demo", "psw": "wrong", "start": "01.10.2026", "fmt": 3}
    good = {**bad, "psw": "demo-password"}
    first = [requests.post(sim.api, data=bad, timeout=10) for _ in range(5)]
    assert codes(first) == [2, 2, 2, 2, 2]
    assert codes([requests.post(sim.api, data=good, timeout=10)]) == [4]
    time.sleep(2.3)
    assert codes([requests.post(sim.api, data=good, timeout=10)]) == [None]


# -- faults ----------------------------------------------------------------------------------


def _normal(sim: Sim, fmt: int = 3) -> requests.Response:
    return get_stat(sim, date(2026, 10, 1), date(2026, 10, 3), fmt=fmt)


def test_fault_latency_delays_a_normal_answer(sim: Sim) -> None:
    # Long enough that a normal answer on a busy machine stays well below it.
    latency = 2.5
    sim.control.set_faults([{"kind": "latency", "seconds": latency, "count": 1}])
    t0 = time.monotonic()
    slow = _normal(sim)
    slow_elapsed = time.monotonic() - t0
    t0 = time.monotonic()
    fast = _normal(sim)
    fast_elapsed = time.monotonic() - t0
    assert slow_elapsed >= latency
    assert fast_elapsed < latency, "the one-shot latency fault delayed the next answer too"
    assert slow.text == fast.text
    assert [r.get("fault") for r in sim.control.requests()] == ["latency", None]


@pytest.mark.parametrize(
    ("fault", "exc_text"),
    [
        ({"kind": "timeout", "seconds": 0.3, "count": 1}, "RemoteDisconnected"),
        ({"kind": "reset", "count": 1}, "ConnectionResetError"),
    ],
    ids=["timeout-then-hangup", "reset"],
)
def test_connection_faults(sim: Sim, fault: dict[str, Any], exc_text: str) -> None:
    sim.control.set_faults([fault])
    with pytest.raises(requests.ConnectionError) as info:
        _normal(sim)
    assert exc_text in repr(info.value)
    assert _normal(sim).status_code == 200
    log = sim.control.requests()
    assert (log[0]["outcome"], log[0]["fault"]) == ("fault", fault["kind"])
    assert log[1]["outcome"] == "ok"


def test_timeout_fault_outlasts_a_short_client_timeout(sim: Sim) -> None:
    sim.control.set_faults([{"kind": "timeout", "seconds": 2, "count": 1}])
    with pytest.raises(requests.ReadTimeout):
        requests.post(sim.api, data={"get_stat": 1, **DEMO, "start": "01.10.2026"}, timeout=0.4)


@pytest.mark.parametrize(
    ("fault", "status", "check"),
    [
        ({"kind": "http", "status": 503}, 503, "503 Service Unavailable"),
        ({"kind": "http", "status": 500}, 500, "500 Internal Server Error"),
        ({"kind": "html"}, 200, "<center><h1>502 Bad Gateway</h1></center>"),
        ({"kind": "error", "code": 9}, 200, '{"error": "too many requests", "error_code": 9}'),
        ({"kind": "error", "code": 4}, 200, '{"error": "IP is blocked", "error_code": 4}'),
    ],
    ids=["http-503", "http-500", "html-page", "error-9", "error-4"],
)
def test_reply_faults(sim: Sim, fault: dict[str, Any], status: int, check: str) -> None:
    sim.control.set_faults([{**fault, "count": 1}])
    resp = _normal(sim)
    assert resp.status_code == status
    assert check in resp.text
    assert reply_rows(_normal(sim))[0]["login"] == "demo"


def test_truncated_fault_cuts_the_body_in_half(sim: Sim) -> None:
    sim.control.set_faults([{"kind": "truncated", "count": 1}])
    cut = _normal(sim)
    whole = _normal(sim)
    assert cut.status_code == 200
    assert cut.content == whole.content[: len(whole.content) // 2]
    with pytest.raises(ValueError, match=r"Expecting|Unterminated"):
        json.loads(cut.text)


def test_faults_are_fifo_with_counts_and_forever(sim: Sim) -> None:
    sim.control.set_faults(
        [{"kind": "error", "code": 9, "count": 2}, {"kind": "http", "status": 502, "count": 1}]
    )
    assert sim.control.faults()[0]["count"] == 2
    got = [(r.status_code, r.text[:30]) for r in (_normal(sim, 1) for _ in range(4))]
    assert [g[0] for g in got] == [200, 200, 502, 200]
    assert got[0][1] == got[1][1] == "0,-9"
    assert sim.control.faults() == []
    sim.control.set_faults([{"kind": "html", "count": 0}])
    assert all("nginx" in _normal(sim).text for _ in range(3))
    sim.control.clear_faults()
    assert "nginx" not in _normal(sim).text


def test_faulted_requests_do_not_count_toward_the_rate_limit(sim: Sim) -> None:
    sim.control.configure(rate_limit=1)
    sim.control.set_faults([{"kind": "http", "status": 503, "count": 2}])
    assert [_normal(sim).status_code for _ in range(2)] == [503, 503]
    assert codes([_normal(sim), _normal(sim)]) == [None, 9]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("error:9:2", FaultSpec("error", count=2, code=9)),
        ("latency:1.5", FaultSpec("latency", seconds=1.5)),
        ("timeout::3", FaultSpec("timeout", count=3)),
        ("reset:1", FaultSpec("reset", count=1)),
        ("http:503:0", FaultSpec("http", count=0, status=503)),
        ("truncated", FaultSpec("truncated")),
    ],
    ids=["error", "latency-forever", "timeout-default-seconds", "reset", "http", "bare"],
)
def test_fault_spec_parsing(spec: str, expected: FaultSpec) -> None:
    assert FaultSpec.parse(spec) == expected


@pytest.mark.parametrize("spec", ["boom", "http", "error:x", "latency", "reset:1:2"])
def test_bad_fault_specs_are_rejected(spec: str) -> None:
    with pytest.raises(ValueError, match="fault"):
        FaultSpec.parse(spec)


def test_fault_queue_counts_down() -> None:
    queue = FaultQueue([FaultSpec("reset", count=2), FaultSpec("html", count=None)])
    kinds = [f.kind if f else None for f in (queue.take() for _ in range(4))]
    assert kinds == ["reset", "reset", "html", "html"]


def test_startup_fault_flag_and_clean_sigterm() -> None:
    proc, url = start_simulator("--quiet", "--fault", "error:9:1", "--rate-limit", "50")
    try:
        data = {"get_stat": 1, **DEMO, "start": "01.10.2026", "end": "01.10.2026", "fmt": 1}
        first = requests.post(f"{url}/sys/get.php", data=data, timeout=10)
        second = requests.post(f"{url}/sys/get.php", data=data, timeout=10)
        assert first.text == "0,-9"
        assert second.text.startswith("demo,")
    finally:
        assert stop_simulator(proc) == 0
    assert proc.stdout is not None
    assert proc.stdout.read() == ""  # --quiet: nothing after the URL line


# -- request log ---------------------------------------------------------------------------------


def test_request_log_masks_secrets_and_flags_them_in_the_url(sim: Sim) -> None:
    day, end = date(2026, 10, 1), date(2026, 10, 10)
    get_stat(sim, day, end, method="GET")
    get_stat(sim, day, end, method="POST")
    get_stat(sim, day, end, login=None, psw=None, apikey="demo-apikey")
    requests.post(sim.api, data={"get_stat": 1, "login": "demo", "psw": "bad-secret"}, timeout=10)
    log = sim.control.requests()
    assert [e["method"] for e in log] == ["GET", "POST", "POST", "POST"]
    assert [e["secret_in_url"] for e in log] == [True, False, False, False]
    assert log[0]["url_params"]["psw"] == "***"
    assert log[1]["body_params"]["psw"] == "***"
    assert log[2]["body_params"]["apikey"] == "***"
    assert (log[0]["outcome"], log[0]["rows"], log[0]["account"]) == ("ok", 3, "demo")
    assert (log[3]["outcome"], log[3]["error_code"], log[3]["account"]) == ("error", 2, None)
    assert log[0]["start"] == "01.10.2026"
    assert log[0]["path"] == "/sys/get.php"
    assert log[0]["client_ip"] == "127.0.0.1"
    dumped = json.dumps(log)
    deadline = time.monotonic() + 2  # stdout is drained by another thread
    while len(sim.stdout) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    printed = "".join(sim.stdout)
    for secret in ("demo-password", "demo-apikey", "bad-secret"):
        assert secret not in dumped
        assert secret not in printed
    assert '"secret_in_url": true' in printed


def test_clearing_the_log(sim: Sim) -> None:
    _normal(sim)
    assert len(sim.control.requests()) == 1
    sim.control.clear_requests()
    assert sim.control.requests() == []


# -- revisions and reset -------------------------------------------------------------------------


def test_revise_changes_replies_and_truth(sim: Sim) -> None:
    day, month_start, month_end = date(2026, 10, 7), date(2026, 10, 1), date(2026, 10, 31)
    before = {r["login"]: r for r in sim.control.truth("demo", month_start, month_end)}
    old_day = {r["login"]: r for r in sim.control.truth("demo", day, day)}
    old_shop = old_day.get("demo-shop", {"cnt": 0, "credit": Decimal("0.00")})
    sim.control.revise("demo", "demo-shop", day, cnt=5, credit="9.25", debit="0.00")
    row = {r["login"]: r for r in reply_rows(get_stat(sim, day, day, mycur=1))}["demo-shop"]
    assert (row["cnt"], row["credit"], row["debit"]) == (5, Decimal("9.25"), Decimal("0.00"))
    after = {r["login"]: r for r in sim.control.truth("demo", month_start, month_end)}
    assert after["demo-shop"]["cnt"] == before["demo-shop"]["cnt"] - old_shop["cnt"] + 5
    assert after["demo-shop"]["credit"] == before["demo-shop"]["credit"] - old_shop[
        "credit"
    ] + Decimal("9.25")
    assert after["demo"] == before["demo"]
    assert reply_rows(get_stat(sim, month_start, month_end, mycur=1)) == list(after.values())


def test_revise_absent_drops_a_subclient_but_never_the_main_login(sim: Sim) -> None:
    day = date(2026, 10, 7)
    for login in ("demo", "demo-shop", "demo-news"):
        sim.control.revise("demo", login, day, absent=True)
    rows = reply_rows(get_stat(sim, day, day, mycur=1))
    assert rows == [
        {
            "login": "demo",
            "cnt": 0,
            "credit": Decimal("0.00"),
            "debit": Decimal("0.00"),
            "currency": "RUB",
        }
    ]


def test_revise_rejects_a_foreign_login(sim: Sim) -> None:
    with pytest.raises(SimulatorControlError, match="400"):
        sim.control.revise("demo", "acme-eu", date(2026, 10, 7), cnt=1)


def test_reset_clears_revisions_faults_log_and_blocks(sim: Sim) -> None:
    day = date(2026, 10, 7)
    original = sim.control.truth("demo", day, day)
    sim.control.revise("demo", "demo", day, cnt=99999)
    sim.control.set_faults([{"kind": "html", "count": 0}])
    bad = {"get_stat": 1, "login": "demo", "psw": "wrong", "start": "01.10.2026", "fmt": 3}
    for _ in range(5):
        requests.post(sim.api, data=bad, timeout=10)  # all answered by the html fault
    sim.control.clear_faults()
    for _ in range(5):
        requests.post(sim.api, data=bad, timeout=10)
    assert codes([get_stat(sim, day, day)]) == [4]
    sim.control.reset()
    assert sim.control.faults() == []
    assert sim.control.requests() == []
    assert sim.control.truth("demo", day, day) == original
    assert codes([get_stat(sim, day, day)]) == [None]


def test_control_health_and_config(sim: Sim) -> None:
    assert sim.control.health() is True
    cfg = sim.control.configure(rate_limit=7)
    assert (cfg["rate_limit"], cfg["today"]) == (7, TODAY.isoformat())
    with pytest.raises(SimulatorControlError, match="400"):
        sim.control.configure(bogus=1)


def test_default_accounts_are_the_documented_ones() -> None:
    demo, acme = DEFAULT_ACCOUNTS
    assert (demo.login, demo.password, demo.apikey, demo.currency) == (
        "demo",
        "demo-password",
        "demo-apikey",
        "RUB",
    )
    assert set(demo.subclients) == {"demo-shop", "demo-news"}
    assert (acme.login, acme.password, acme.subclients, acme.currency) == (
        "acme",
        "acme-password",
        ("acme-eu",),
        "KZT",
    )
