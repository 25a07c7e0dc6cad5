"""The first-contact probe: one call per format, masked shapes, redacted fixtures, pacing."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from devtools.airflow_stack import postgres_connection
from devtools.simulator_process import RunningSimulator, running_simulator
from simulator.config import DEFAULT_DIALECT, DIALECTS
from simulator.control import SimulatorControl
from smsc_hook import probe
from smsc_hook.client.exceptions import SmscConfigError
from smsc_hook.probe import (
    UNPACED_GAP,
    describe_shape,
    judge,
    read_fixture_name,
    redact_reply,
    run_probe,
)
from smsc_hook.warehouse.migrations import apply_migrations
from tests.conftest import SIM_TODAY
from tests.support import query
from tests.test_dialects import ACCOUNTS, PASSWORDS, write_accounts

pytestmark = pytest.mark.timeout(180)

FIXTURES = Path(__file__).parent / "fixtures" / "replies"
#: Simulator time runs 50x fast: its 3-per-60 s limit becomes 3 per 1.2 s.
TIME_SCALE = 0.02
REAL_LOGINS = ("demo", "demo-shop", "demo-news", "solo")
#: The account and day each dialect's seeded fixtures were probed with.
SEED_CASES = {
    "arrays": ("demo", date(2026, 10, 6)),
    "single-object": ("solo", date(2026, 10, 14)),
    "flat-xml": ("demo", date(2026, 10, 6)),
    "strings": ("demo", date(2026, 10, 6)),
    "numbers": ("demo", date(2026, 10, 6)),
    "omit-zero": ("solo", date(2026, 10, 10)),
}
assert set(SEED_CASES) == set(DIALECTS)


@pytest.fixture(scope="module")
def probe_simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSimulator]:
    accounts = write_accounts(tmp_path_factory.mktemp("probe"))
    args = ("--quiet", "--accounts", str(accounts), "--time-scale", str(TIME_SCALE))
    with running_simulator(*args, "--today", SIM_TODAY.isoformat()) as sim:
        yield sim


@pytest.fixture
def control(probe_simulator: RunningSimulator) -> Iterator[SimulatorControl]:
    control = probe_simulator.control
    control.reset()
    yield control
    control.configure(dialect=DEFAULT_DIALECT)


class Sleeps(list[float]):
    """Records the waits the probe asks for and waits them at the simulator's time scale."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)
        time.sleep(seconds * TIME_SCALE)


def use_account(
    monkeypatch: pytest.MonkeyPatch, sim: RunningSimulator, login: str, password: str = ""
) -> None:
    conn = {
        "conn_type": "smsc",
        "host": sim.url,
        "login": login,
        "password": password or PASSWORDS[login],
    }
    monkeypatch.setenv("AIRFLOW_CONN_SMSC_DEFAULT", json.dumps(conn))


def leaks(text: str | bytes) -> list[str]:
    """Secrets or real logins found in probe output or a fixture."""
    data = text if isinstance(text, str) else text.decode("utf-8", "replace")
    return [s for s in (*PASSWORDS.values(), *REAL_LOGINS) if s in data]


# --- against each dialect ----------------------------------------------------------------


@pytest.mark.parametrize("dialect", DIALECTS)
def test_probe_records_every_dialect(
    dialect: str,
    control: SimulatorControl,
    probe_simulator: RunningSimulator,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    login, day = SEED_CASES[dialect]
    control.configure(dialect=dialect)
    use_account(monkeypatch, probe_simulator, login)
    expected = len(control.truth(login, day, day))
    sleeps = Sleeps()

    results = list(run_probe("smsc_default", day, tmp_path, name=f"sim-{dialect}", sleep=sleeps))

    assert [r.fmt for r in results] == [0, 1, 2, 3]
    assert sleeps == [UNPACED_GAP] * 3, "unpaced calls are >= 21 s apart"
    assert len(control.requests()) == 4, "one call per format, no more"
    for result in results:
        assert result.verdict is not None, result.line()
        assert result.fixture is not None, result.line()
        if expected == 0 and result.fmt in (0, 1):
            assert result.verdict.outcome == "refused"  # an empty text body
        else:
            assert result.verdict.rows == expected, result.line()
        assert result.note == "", result.line()
        fixture = result.fixture.read_bytes()
        parts = read_fixture_name(result.fixture)
        assert parts is not None
        assert parts["outcome"] == result.verdict.outcome
        assert judge(fixture, result.fmt).outcome == result.verdict.outcome, "parses back alike"
        assert leaks(fixture) == []
        assert leaks(result.line()) == []
        seeded = FIXTURES / result.fixture.name
        if os.environ.get("SMSC_WRITE_FIXTURES") == "1":
            seeded.write_bytes(fixture)
        assert seeded.exists(), f"{seeded.name} missing; regenerate (README.md there)"
        assert seeded.read_bytes() == fixture, (
            f"{seeded.name} is not what the probe writes now; regenerate it"
            " (tests/fixtures/replies/README.md)"
        )


def test_probe_shape_line_for_a_one_login_account(
    control: SimulatorControl,
    probe_simulator: RunningSimulator,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    control.configure(dialect="single-object")
    use_account(monkeypatch, probe_simulator, "solo")
    results = run_probe("smsc_default", date(2026, 10, 14), tmp_path, sleep=Sleeps())
    lines = [r.line() for r in results]
    assert lines == [
        'fmt=0 text | text: 1 line(s), LF: "login = <text>, cnt = <int>, credit = <dec2>,'
        ' debit = <dec2>, currency = <AAA>" | accepted, 1 row(s) | fixture smsc.fmt0.rows1.txt',
        'fmt=1 comma | comma: 1 line(s), LF: "<text>,<int>,<dec2>,<dec2>,<AAA>"'
        " | accepted, 1 row(s) | fixture smsc.fmt1.rows1.txt",
        "fmt=2 xml | xml: <stat>[<login>,<cnt>,<credit>,<debit>,<currency>]"
        " | accepted, 1 row(s) | fixture smsc.fmt2.rows1.xml",
        "fmt=3 json | json: object{login:string<text>, cnt:number<int>, credit:string<dec2>,"
        " debit:string<dec2>, currency:string<AAA>} | accepted, 1 row(s)"
        " | fixture smsc.fmt3.rows1.json",
    ]


def test_probe_stops_after_an_auth_error(
    control: SimulatorControl,
    probe_simulator: RunningSimulator,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    wrong = "not-the-password-31337"
    use_account(monkeypatch, probe_simulator, "demo", wrong)
    results = list(run_probe("smsc_default", date(2026, 10, 6), tmp_path, sleep=Sleeps()))
    assert [str(r.verdict) for r in results[:1]] == ["API error 2"]
    assert [r.note for r in results[1:]] == ["stopped after error 2"] * 3
    assert len(control.requests()) == 1, "further calls only count toward SMSC's IP block"
    assert (tmp_path / "smsc.fmt0.error2.txt").read_bytes() == b"ERROR = 2 (masked error text)"
    assert all(wrong not in r.line() for r in results)


def test_unpaced_calls_cannot_be_closer_than_21_seconds(tmp_path: Path) -> None:
    with pytest.raises(SmscConfigError, match=">= 21 s apart"):
        list(run_probe("smsc_default", date(2026, 10, 6), tmp_path, gap=5))


# --- the command: through the ledger, or spaced without it -------------------------------


def test_main_paces_through_the_ledger(
    control: SimulatorControl,
    probe_simulator: RunningSimulator,
    warehouse_url: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    apply_migrations(warehouse_url)
    use_account(monkeypatch, probe_simulator, "demo")
    monkeypatch.setenv(
        "AIRFLOW_CONN_SMSC_WAREHOUSE", json.dumps(postgres_connection(warehouse_url))
    )
    # The ledger at the simulator's scaled limit: 3 calls per 1.2 s (+1 s margin).
    monkeypatch.setenv("SMSC_RATE_WINDOW_SECONDS", "1.2")
    sleeps = Sleeps()

    code = probe.main(["--day", "2026-10-06", "--out", str(tmp_path)], sleep=sleeps)

    out, err = capsys.readouterr()
    assert code == 0, err
    assert sleeps == [], "the ledger paces; no fixed sleeps"
    assert "through the call ledger (caller 'probe')" in out
    calls = query(warehouse_url, "SELECT caller, outcome FROM smsc.api_calls ORDER BY id")
    assert calls == [("probe", "ok")] * 4
    lines = [line for line in out.splitlines() if line.startswith("probe: ")]
    assert len(lines) == 6  # header, 4 formats, where the fixtures are
    assert leaks(out + err) == []
    print(out)  # the probe's own words, for the record (pytest -s)


def test_main_without_a_warehouse_sleeps_21_seconds_between_calls(
    control: SimulatorControl,
    probe_simulator: RunningSimulator,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_account(monkeypatch, probe_simulator, "demo")
    closed = {"conn_type": "postgres", "host": "127.0.0.1", "port": 9, "schema": "nowhere"}
    monkeypatch.setenv("AIRFLOW_CONN_SMSC_WAREHOUSE", json.dumps(closed))
    sleeps = Sleeps()

    code = probe.main(["--day", "2026-10-06", "--out", str(tmp_path)], sleep=sleeps)

    out, err = capsys.readouterr()
    assert code == 0, err
    assert "warehouse unreachable (OperationalError); calls 21 s apart" in out
    assert sleeps == [21.0] * 3
    assert len(control.requests()) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "smsc.fmt0.rows3.txt",
        "smsc.fmt1.rows3.txt",
        "smsc.fmt2.rows3.xml",
        "smsc.fmt3.rows3.json",
    ]


def test_main_with_an_unmigrated_warehouse_says_so_and_spaces_the_calls(
    control: SimulatorControl,
    probe_simulator: RunningSimulator,
    warehouse_url: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_account(monkeypatch, probe_simulator, "demo")
    monkeypatch.setenv(
        "AIRFLOW_CONN_SMSC_WAREHOUSE", json.dumps(postgres_connection(warehouse_url))
    )
    sleeps = Sleeps()

    assert probe.main(["--day", "2026-10-06", "--out", str(tmp_path)], sleep=sleeps) == 0

    assert "warehouse has no call ledger yet" in capsys.readouterr().out
    assert sleeps == [21.0] * 3


def test_main_refuses_a_day_that_has_not_ended(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conn = {"conn_type": "smsc", "host": "http://127.0.0.1:9", "login": "x", "password": "y"}
    monkeypatch.setenv("AIRFLOW_CONN_SMSC_DEFAULT", json.dumps(conn))
    assert probe.main(["--day", "2999-01-01", "--out", str(tmp_path)]) == 1
    assert "has not ended yet" in capsys.readouterr().err


def test_bootstrap_live_check_reports_the_shape(
    control: SimulatorControl,
    probe_simulator: RunningSimulator,
    warehouse_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from smsc_hook.airflow.bootstrap import check_smsc
    from smsc_hook.airflow.settings import PipelineSettings

    apply_migrations(warehouse_url)
    control.configure(dialect="single-object")
    use_account(monkeypatch, probe_simulator, "solo")
    monkeypatch.setenv(
        "AIRFLOW_CONN_SMSC_WAREHOUSE", json.dumps(postgres_connection(warehouse_url))
    )
    settings = PipelineSettings.from_env()

    line = check_smsc(settings, settings.all_accounts()[0], call_api=True)

    assert line.endswith(
        "; reply shape json: object{login:string<text>, cnt:number<int>, credit:string<dec2>,"
        " debit:string<dec2>, currency:string<AAA>}"
    ), line
    assert query(warehouse_url, "SELECT caller FROM smsc.api_calls") == [("bootstrap",)]


# --- shapes and redaction, without a server ---------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "body", "shape"),
    [
        pytest.param(0, b"ERROR = 3 (no money), ID - 275", 'text: 1 line(s), LF: "ERROR ='
                     ' <int> (<text>), ID - <int>"', id="text-error-with-id-trailer"),
        pytest.param(1, b"demo,1,2.5,0,RUB\r\nshop,2,3.25,0,RUB\r\n", 'comma: 2 line(s), CRLF:'
                     ' "<text>,<int>,<dec1>,<int>,<AAA>"; "<text>,<int>,<dec2>,<int>,<AAA>"',
                     id="comma-varying-decimals"),
        pytest.param(2, b'<result><login>a</login><cnt>1</cnt><login>b</login><cnt>2</cnt>'
                     b"</result>", "xml: <result>[(<login>,<cnt>)x2]", id="xml-flat"),
        pytest.param(2, b'<result><stat login="a" cnt="1"/><stat login="b" cnt="2"/></result>',
                     "xml: <result>[<stat @login @cnt>x2]", id="xml-attributes"),
        pytest.param(3, b'{"error": "authorise error", "error_code": 2, "id": 175}',
                     "json: object{error:string<text>, error_code:number<int>, id:number<int>}",
                     id="json-error-extra-key"),
        pytest.param(3, b'[{"login": "a", "cnt": "1"}, {"login": "b", "cnt": 2, "x": 1.5}]',
                     "json: array[2] of object{login:string<text>, cnt:number<int>|string<int>,"
                     " x?:number<dec1>}", id="json-mixed-rows"),
        pytest.param(3, b"<html>502</html>", "json: not JSON at char 0 (16 characters,"
                     " first '<')", id="json-html"),
        pytest.param(3, b"", "empty body", id="empty"),
        pytest.param(3, b"\xff\xfe", "2 bytes, not valid UTF-8 at byte 0", id="not-utf-8"),
    ],
)  # fmt: skip
def test_shape_masks_every_value(fmt: int, body: bytes, shape: str) -> None:
    assert describe_shape(body, fmt) == shape


@pytest.mark.parametrize(
    ("fmt", "body", "redacted"),
    [
        pytest.param(3, b'[{"login": "demo", "cnt": 12, "credit": "22.20", "debit": 0.5,'
                     b' "currency": "RUB"}, {"login": "demo", "cnt": 0}]',
                     b'[{"login": "login-1", "cnt": 7, "credit": "7.00", "debit": 7.0,'
                     b' "currency": "XXX"}, {"login": "login-1", "cnt": 0}]',
                     id="json-same-login-same-placeholder"),
        pytest.param(3, b'{"error": "invalid login demo", "error_code": 2}',
                     b'{"error": "masked error text", "error_code": 2}', id="json-error"),
        pytest.param(2, b'<?xml version="1.0" encoding="utf-8"?><r><s login="d&amp;o" cnt="3">'
                     b"<credit>-1.5</credit></s></r>",
                     b'<?xml version="1.0" encoding="utf-8"?><r><s login="login-1" cnt="7">'
                     b"<credit>-7.0</credit></s></r>", id="xml-attributes-and-text"),
        pytest.param(0, b"Login = demo, Cnt = 12, Credit = 3215.3097\n",
                     b"Login = login-1, Cnt = 7, Credit = 7.0000\n", id="text-names-kept"),
        pytest.param(1, b"demo,12,22.20,0.00,RUB\r\n0,-9\r\n",
                     b"login-1,7,7.00,0.00,XXX\r\n0,-9\r\n", id="comma-error-code-kept"),
        pytest.param(3, b'{"login": "x", "note": "s3cret"}', b'{"login": "login-1",'
                     b' "note": "text-1"}', id="secret-in-a-value"),
    ],
)  # fmt: skip
def test_redaction_keeps_types_and_layout(fmt: int, body: bytes, redacted: bytes) -> None:
    assert redact_reply(body, fmt, ["s3cret"]) == redacted


def test_redaction_never_lets_a_secret_through_a_key() -> None:
    assert b"s3cret" not in redact_reply(b'{"s3cret": 1}', 3, ["s3cret"])


def test_seeded_fixtures_cover_every_dialect_and_format() -> None:
    names = {p.name for p in FIXTURES.iterdir()}
    for dialect in DIALECTS:
        for fmt in range(4):
            assert any(n.startswith(f"sim-{dialect}.fmt{fmt}.") for n in names), (dialect, fmt)
    assert all(ACCOUNTS[0]["password"] not in p.read_text("utf-8") for p in FIXTURES.iterdir())


def test_a_reply_in_a_declared_charset_becomes_a_utf8_fixture() -> None:
    body = "login = Иван, cnt = 1, credit = 1, debit = 0, currency = RUB".encode("cp1251")
    fixture = redact_reply(probe.run._as_utf8(body, "windows-1251"), 0)
    assert fixture == b"login = login-1, cnt = 7, credit = 7, debit = 0, currency = XXX"
    assert judge(fixture, 0).outcome == "rows1"
