"""The simulator's ``users.php?get_stat``: per-subclient truth, its options, shared limits."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
import requests

from simulator import Account, SimulatorConfig, start_in_thread, window_rows
from simulator.server import SimulatorServer
from simulator.truth import subclient_id, subclient_rows, subclients_of

TODAY = date(2026, 11, 10)
DAY = date(2026, 10, 6)
RESELLER = Account(
    login="agency",
    password="agency-password",
    subclients=("ag-a", "ag-b", "ag-own", "ag-gone"),
    independent=("ag-own",),
    deleted=("ag-gone",),
)
PLAIN = Account(login="plain", password="plain-password")


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[SimulatorServer, str]]:
    config = SimulatorConfig(
        accounts=(RESELLER, PLAIN), port=0, today=TODAY, quiet=True, rate_limit=3
    )
    srv, url = start_in_thread(config)
    yield srv, url
    srv.stop()


@pytest.fixture
def url(server: tuple[SimulatorServer, str]) -> str:
    server[0].state.reset()
    server[0].state.config.dialect = "arrays"
    return server[1]


def users(url: str, login: str = "agency", **params: Any) -> requests.Response:
    """POST users.php?get_stat for DAY, credentials in the body, JSON unless told."""
    body = {
        "get_stat": "1",
        "login": login,
        "psw": f"{login}-password",
        "start": DAY.strftime("%d.%m.%Y"),
        "end": DAY.strftime("%d.%m.%Y"),
        "fmt": "3",
        "charset": "utf-8",
        "mycur": "1",
        **{k: str(v) for k, v in params.items()},
    }
    return requests.post(f"{url}/sys/users.php", data=body, timeout=10)


def config() -> SimulatorConfig:
    return SimulatorConfig(accounts=(RESELLER, PLAIN), today=TODAY)


def test_truth_is_get_stats_figures_for_every_listed_subclient() -> None:
    """The same figures get.php reports for each subclient, and a row even without traffic."""
    cfg = config()
    get_stat = {r["login"]: r for r in window_rows(cfg, "agency", DAY, DAY, everyone=True)}
    rows = subclient_rows(cfg, "agency", DAY, DAY, today=TODAY)
    assert [r["login"] for r in rows] == ["ag-a", "ag-b", "ag-gone"]
    assert rows == [get_stat[r["login"]] for r in rows]
    assert rows == subclient_rows(cfg, "agency", DAY, DAY, today=TODAY), "deterministic"


@pytest.mark.parametrize(
    ("reseller", "hide_deleted", "logins"),
    [
        pytest.param(0, False, ("ag-a", "ag-b", "ag-gone"), id="main-balance"),
        pytest.param(0, True, ("ag-a", "ag-b"), id="main-balance-hide-deleted"),
        pytest.param(1, False, ("ag-own",), id="own-balance"),
        pytest.param(1, True, ("ag-own",), id="own-balance-hide-deleted"),
    ],
)
def test_reseller_and_hide_deleted_choose_the_subclients(
    url: str, reseller: int, hide_deleted: bool, logins: tuple[str, ...]
) -> None:
    assert subclients_of(RESELLER, reseller, hide_deleted) == logins
    params: dict[str, Any] = {"reseller": reseller}
    if hide_deleted:
        params["hide_deleted"] = 1
    reply = users(url, **params)
    assert reply.status_code == 200
    assert [row["login"] for row in reply.json()] == list(logins)


def test_a_week_sums_its_days() -> None:
    cfg = config()
    week = subclient_rows(cfg, "agency", DAY, DAY + timedelta(days=6), today=TODAY)
    days = [
        subclient_rows(cfg, "agency", DAY + timedelta(days=i), DAY + timedelta(days=i), today=TODAY)
        for i in range(7)
    ]
    for position, row in enumerate(week):
        assert row["cnt"] == sum(day[position]["cnt"] for day in days)
        assert row["credit"] == sum((day[position]["credit"] for day in days), Decimal(0))


def test_rows_carry_an_extra_user_id_column(url: str) -> None:
    rows = users(url).json()
    assert {tuple(sorted(row)) for row in rows} == {
        ("cnt", "credit", "currency", "debit", "login", "user_id")
    }
    assert [row["user_id"] for row in rows] == [
        str(subclient_id(1, "agency", row["login"])) for row in rows
    ]


@pytest.mark.parametrize(
    ("fmt", "body"),
    [
        pytest.param(0, b"ERROR = 6 (access denied)", id="text"),
        pytest.param(1, b"0,-6", id="comma"),
        pytest.param(
            2, b"<result><error>access denied</error><error_code>6</error_code></result>", id="xml"
        ),
        pytest.param(3, b'{"error": "access denied", "error_code": 6}', id="json"),
    ],
)
def test_an_account_that_is_not_a_reseller_gets_an_error(url: str, fmt: int, body: bytes) -> None:
    reply = users(url, login="plain", fmt=fmt)
    assert (reply.status_code, reply.content) == (200, body)


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"get_stat": "0", "add": "1"}, id="other-command"),
        pytest.param({"reseller": "2"}, id="bad-reseller"),
        pytest.param({"hide_deleted": "yes"}, id="bad-hide-deleted"),
        pytest.param({"user": "someone-else"}, id="unknown-user"),
    ],
)
def test_bad_parameters_are_error_1(url: str, params: dict[str, str]) -> None:
    assert users(url, **params).json() == {"error": "parameters error", "error_code": 1}


def test_user_picks_one_subclient(url: str) -> None:
    assert [row["login"] for row in users(url, user="ag-b").json()] == ["ag-b"]


def test_wrong_password_is_error_2(url: str) -> None:
    reply = requests.post(
        f"{url}/sys/users.php",
        data={"get_stat": "1", "login": "agency", "psw": "nope", "start": "06.10.2026", "fmt": "3"},
        timeout=10,
    )
    assert reply.json()["error_code"] == 2


def test_get_php_and_users_php_share_one_rate_budget(url: str) -> None:
    """3 per window across both methods: the fourth statistics call is error 9 on either."""
    get_stat = {
        "get_stat": "1",
        "login": "agency",
        "psw": "agency-password",
        "fmt": "3",
        "start": "06.10.2026",
        "end": "06.10.2026",
    }
    assert isinstance(requests.post(f"{url}/sys/get.php", data=get_stat, timeout=10).json(), list)
    assert isinstance(users(url).json(), list)
    assert isinstance(users(url, reseller=1).json(), list)
    assert users(url).json()["error_code"] == 9
    assert requests.post(f"{url}/sys/get.php", data=get_stat, timeout=10).json()["error_code"] == 9


@pytest.mark.parametrize("dialect", ["single-object", "omit-zero", "numbers", "flat-xml"])
def test_dialects_apply_to_users_php(
    server: tuple[SimulatorServer, str], url: str, dialect: str
) -> None:
    server[0].state.config.dialect = dialect
    xml = users(url, fmt=2, reseller=1).text
    document = json.loads(users(url, reseller=1).text)
    everyone = subclient_rows(config(), "agency", DAY, DAY, today=TODAY)
    if dialect == "single-object":
        assert document["login"] == "ag-own"
        assert "<result>" not in xml
    if dialect == "flat-xml":
        assert "<stat>" not in xml
        assert "<user_id>" in xml
    if dialect == "numbers":
        assert all(not isinstance(row["credit"], str) for row in document)
    if dialect == "omit-zero":
        served = [row["login"] for row in users(url).json()]
        assert served == [r["login"] for r in everyone if r["cnt"] or r["credit"] or r["debit"]]
        assert len(served) < len(everyone) or all(r["cnt"] for r in everyone)


def test_truth_endpoint_answers_users_php(url: str) -> None:
    from simulator.control import SimulatorControl

    control = SimulatorControl(url)
    truth = control.subclients_truth("agency", DAY, DAY, hide_deleted=True)
    served = users(url, hide_deleted=1).json()
    assert [(r["login"], r["cnt"], r["credit"]) for r in truth] == [
        (r["login"], r["cnt"], Decimal(r["credit"])) for r in served
    ]


def test_secrets_in_the_request_log_are_masked(
    server: tuple[SimulatorServer, str], url: str
) -> None:
    users(url)
    (entry,) = server[0].state.requests()
    assert entry["path"] == "/sys/users.php"
    assert entry["body_params"]["psw"] == "***"
    assert entry["secret_in_url"] is False


def test_account_json_takes_the_new_keys() -> None:
    acc = Account.from_json(
        {
            "login": "r",
            "password": "p",
            "subclients": ["x", "y"],
            "independent": ["y"],
            "deleted": ["x"],
        }
    )
    assert (acc.is_reseller, acc.independent, acc.deleted) == (True, ("y",), ("x",))
    assert Account.from_json({"login": "s", "password": "p"}).is_reseller is False
    with pytest.raises(ValueError, match="must be subclients"):
        Account(login="r", password="p", subclients=("x",), deleted=("z",))
