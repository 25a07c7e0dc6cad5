"""Tests for turning an Airflow ``smsc`` connection into request settings: tables, no I/O."""

from __future__ import annotations

import hashlib
import json

import pytest

from smsc_hook.client.connection import SmscSettings, settings_from_connection
from smsc_hook.client.exceptions import SmscConfigError

LOGIN, PASSWORD, APIKEY = "demo", "s3cret-pw", "s3cret-key"


def settings(host="smsc.ru", login=LOGIN, password=PASSWORD, **extra) -> SmscSettings:
    """Settings for a connection with these fields; ``extra`` given as keyword arguments."""
    return settings_from_connection(host, login, password, extra)


# --- hosts -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "extra", "base_urls"),
    [
        pytest.param("smsc.ru", {}, ("https://smsc.ru", "https://www2.smsc.ru"), id="bare-ru"),
        pytest.param(None, {}, ("https://smsc.ru", "https://www2.smsc.ru"), id="none-default"),
        pytest.param("", {}, ("https://smsc.ru", "https://www2.smsc.ru"), id="empty-default"),
        pytest.param("smsc.kz", {}, ("https://smsc.kz", "https://www2.smsc.kz"), id="bare-kz"),
        pytest.param(" smsc.ru/ ", {}, ("https://smsc.ru", "https://www2.smsc.ru"), id="padded"),
        pytest.param(
            "smscentre.com",
            {},
            ("https://smscentre.com", "https://www2.smscentre.com"),
            id="bare-com",
        ),
        pytest.param(
            "https://smscentre.com/",
            {},
            ("https://smscentre.com", "https://www2.smscentre.com"),
            id="https-url",
        ),
        pytest.param("smsc.ua", {}, ("https://smsc.ua", "https://www2.smsc.ua"), id="bare-ua"),
        pytest.param("example.org", {}, ("https://example.org",), id="no-known-reserve"),
        pytest.param(
            "https://smsc.ru", {}, ("https://smsc.ru", "https://www2.smsc.ru"), id="https-known"
        ),
        pytest.param("SMSC.RU", {}, ("https://SMSC.RU", "https://www2.smsc.ru"), id="upper-case"),
        pytest.param("https://smsc.ru:8443", {}, ("https://smsc.ru:8443",), id="known-other-port"),
        pytest.param("https://smsc.ua:8443", {}, ("https://smsc.ua:8443",), id="https-port"),
        pytest.param("http://127.0.0.1:8765", {}, ("http://127.0.0.1:8765",), id="http-ipv4-lo"),
        pytest.param("http://localhost:8765", {}, ("http://localhost:8765",), id="http-localhost"),
        pytest.param("http://[::1]:8765", {}, ("http://[::1]:8765",), id="http-ipv6-lo"),
        pytest.param(
            "http://10.0.0.5:8765",
            {"allow_http": True},
            ("http://10.0.0.5:8765",),
            id="http-lan-opted-in",
        ),
        pytest.param(
            "smsc.ru",
            {"reserve_hosts": ["www3.smsc.ru", "https://backup.example"]},
            ("https://smsc.ru", "https://www3.smsc.ru", "https://backup.example"),
            id="reserve-list",
        ),
        pytest.param(
            "smsc.ru",
            {"reserve_hosts": " a.example, ,b.example "},
            ("https://smsc.ru", "https://a.example", "https://b.example"),
            id="reserve-comma-string",
        ),
        pytest.param("smsc.ru", {"reserve_hosts": []}, ("https://smsc.ru",), id="reserve-off"),
        pytest.param("https://смсц.рф", {}, ("https://смсц.рф",), id="idna-host"),
        pytest.param("https://smsc.ru:443", {}, ("https://smsc.ru:443",), id="port-443"),
        pytest.param("https://smsc.ru:65535", {}, ("https://smsc.ru:65535",), id="port-65535"),
        pytest.param(
            "http://smsc_sim:8765",
            {"allow_http": True},
            ("http://smsc_sim:8765",),
            id="container-name-underscore",
        ),
    ],
)
def test_host_becomes_base_urls(host, extra, base_urls):
    """A bare host gets https and its known reserve hosts; full URLs are kept."""
    assert settings(host, **extra).base_urls == base_urls


@pytest.mark.parametrize(
    ("host", "extra", "message"),
    [
        pytest.param("http://smsc.ru", {}, "plain http", id="http-public"),
        pytest.param("http://10.0.0.5:8765", {}, "plain http", id="http-lan"),
        pytest.param("http://127.0.0.1.example", {}, "plain http", id="http-lookalike"),
        pytest.param("ftp://smsc.ru", {}, "not a host name", id="ftp"),
        pytest.param("https://", {}, "not a host name", id="no-hostname"),
        pytest.param("   ", {}, "empty", id="blank"),
        pytest.param("https://u:pw@smsc.ru", {}, "credentials", id="userinfo"),
        pytest.param("https://smsc.ru/?psw=x", {}, "query", id="query"),
        pytest.param(
            "smsc.ru", {"reserve_hosts": ["http://www2.smsc.ru"]}, "plain http", id="http-reserve"
        ),
        pytest.param("smsc.ru", {"reserve_hosts": 5}, "reserve_hosts", id="reserve-not-list"),
        pytest.param("smsc.ru", {"reserve_hosts": [1]}, "reserve_hosts", id="reserve-not-str"),
        pytest.param("http://10.0.0.5", {"allow_http": "yes"}, "allow_http", id="allow-http-bad"),
        pytest.param("https://smsc.ru/#x", {}, "connection host .*fragment", id="fragment"),
        pytest.param("smsc.ru#x", {}, "connection host .*fragment", id="bare-fragment"),
        pytest.param("https://smsc.ru:0", {}, "connection host .*port", id="port-0"),
        pytest.param("https://smsc.ru:99999", {}, "connection host .*port", id="port-99999"),
        pytest.param("https://smsc.ru:65536", {}, "connection host .*port", id="port-65536"),
        pytest.param("https://smsc.ru:abc", {}, "connection host .*port", id="port-letters"),
        pytest.param("https://smsc.ru:-1", {}, "connection host .*port", id="port-negative"),
        pytest.param("https://\U0001f600.ru", {}, "connection host .*IDNA", id="emoji-not-idna"),
        pytest.param(
            "https://ex\u2024ample.com", {}, "connection host .*IDNA", id="one-dot-leader"
        ),
        pytest.param("https://-smsc.ru", {}, "connection host .*letters", id="leading-hyphen"),
        pytest.param("https://a..b", {}, "connection host", id="empty-label"),
        pytest.param("https://smsc\x00.ru", {}, "connection host .*control", id="nul"),
        pytest.param("https://smsc .ru", {}, "connection host .*spaces", id="space"),
        pytest.param(
            "smsc.ru",
            {"reserve_hosts": ["www2.smsc.ru:99999"]},
            "'reserve_hosts'.*port",
            id="reserve-bad-port",
        ),
        pytest.param(
            "smsc.ru",
            {"reserve_hosts": ["www2.smsc.ru#a"]},
            "'reserve_hosts'.*fragment",
            id="reserve-fragment",
        ),
    ],
)
def test_bad_host_is_refused(host, extra, message):
    """Hosts that are not http(s), leak secrets or send them in clear fail before any call."""
    with pytest.raises(SmscConfigError, match=message):
        settings(host, **extra)


@pytest.mark.parametrize(
    "host", ["ftp://user:hostpw@smsc.ru", "https://user:hostpw@smsc.ru", "user:hostpw@smsc.ru"]
)
def test_credentials_in_host_are_not_echoed(host):
    """The error about credentials in the host does not repeat them."""
    with pytest.raises(SmscConfigError, match="credentials") as error:
        settings(host)
    assert "hostpw" not in str(error.value)


# --- TLS -----------------------------------------------------------------------------------


@pytest.mark.parametrize("verify", [False, True, "false"])
def test_verify_extra_is_refused(verify):
    """TLS verification cannot be switched off from the connection."""
    with pytest.raises(SmscConfigError, match="'verify'"):
        settings(verify=verify)


def test_ca_bundle_is_kept():
    """A private CA file replaces the default trust store."""
    assert settings(ca_bundle="/etc/ssl/private-ca.pem").ca_bundle == "/etc/ssl/private-ca.pem"
    assert settings().ca_bundle is None


# --- reply options -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "fmt"),
    [
        pytest.param({}, 3, id="default-json"),
        pytest.param({"fmt": 0}, 0, id="text"),
        pytest.param({"fmt": 1}, 1, id="comma"),
        pytest.param({"fmt": 2}, 2, id="xml"),
        pytest.param({"fmt": "3"}, 3, id="string"),
    ],
)
def test_fmt_is_read(extra, fmt):
    """``fmt`` defaults to JSON and accepts 0..3 as a number or a digit string."""
    assert settings(**extra).fmt == fmt


@pytest.mark.parametrize("fmt", [4, -1, 7, "json", True, 2.5, [3]])
def test_unknown_fmt_is_refused(fmt):
    """Anything but 0..3 fails naming 'fmt' (true is not 1, 2.5 is not 2)."""
    with pytest.raises(SmscConfigError, match="'fmt'"):
        settings(fmt=fmt)


@pytest.mark.parametrize(
    ("extra", "mycur", "balance2"),
    [
        pytest.param({}, True, False, id="defaults"),
        pytest.param({"mycur": False, "balance2": True}, False, True, id="bools"),
        pytest.param({"mycur": 0, "balance2": 1}, False, True, id="ints"),
        pytest.param({"mycur": "false", "balance2": "TRUE"}, False, True, id="words"),
        pytest.param({"mycur": "0", "balance2": " 1 "}, False, True, id="digit-strings"),
    ],
)
def test_flags_are_read(extra, mycur, balance2):
    """``mycur`` defaults on and ``balance2`` off; both take bools, 0/1 and true/false."""
    got = settings(**extra)
    assert (got.mycur, got.balance2) == (mycur, balance2)


@pytest.mark.parametrize("value", ["yes", 2, 1.0])
@pytest.mark.parametrize("name", ["mycur", "balance2"])
def test_bad_flag_is_refused(name, value):
    """A flag that is not clearly on or off fails naming the flag."""
    with pytest.raises(SmscConfigError, match=f"'{name}'"):
        settings(**{name: value})


# --- timeouts ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "connect", "read"),
    [
        pytest.param({}, 10.0, 60.0, id="defaults"),
        pytest.param({"timeout": 5}, 10.0, 5.0, id="read"),
        pytest.param({"connect_timeout": "2.5"}, 2.5, 60.0, id="connect-string"),
        pytest.param({"timeout": 0.3, "connect_timeout": 0.1}, 0.1, 0.3, id="both"),
    ],
)
def test_timeouts_are_read(extra, connect, read):
    """``timeout`` is the read timeout, ``connect_timeout`` the connect one, in seconds."""
    got = settings(**extra)
    assert (got.connect_timeout, got.read_timeout) == (connect, read)


@pytest.mark.parametrize("value", [0, -1, "abc", float("nan"), float("inf"), 1e300, True, [5]])
@pytest.mark.parametrize("name", ["timeout", "connect_timeout"])
def test_bad_timeout_is_refused(name, value):
    """A timeout must be a positive, bounded number of seconds (huge ones crash sockets)."""
    with pytest.raises(SmscConfigError, match=f"'{name}'"):
        settings(**{name: value})


# --- authentication ----------------------------------------------------------------------------


def test_login_and_password_authenticate():
    """Without an apikey the request carries login and psw, and the account is the login."""
    got = settings()
    assert got.auth_params() == {"login": LOGIN, "psw": PASSWORD}
    assert got.account == LOGIN


@pytest.mark.parametrize(
    ("login", "password", "extra", "account"),
    [
        pytest.param(LOGIN, PASSWORD, {}, LOGIN, id="with-login-and-password"),
        pytest.param(LOGIN, None, {}, LOGIN, id="with-login-only"),
        pytest.param(None, None, {"account": "shop"}, "shop", id="with-account-only"),
        pytest.param(LOGIN, None, {"account": "shop"}, "shop", id="account-wins"),
    ],
)
def test_apikey_replaces_login_and_password(login, password, extra, account):
    """With an apikey only the apikey is sent; the login or extra 'account' names the account."""
    got = settings(login=login, password=password, apikey=APIKEY, **extra)
    assert got.auth_params() == {"apikey": APIKEY}
    assert got.account == account


@pytest.mark.parametrize(
    ("login", "password", "extra", "message"),
    [
        pytest.param(LOGIN, None, {}, "login and password", id="no-password"),
        pytest.param(LOGIN, "", {}, "login and password", id="empty-password"),
        pytest.param(None, PASSWORD, {}, "login and password", id="no-login"),
        pytest.param(LOGIN, None, {"apikey": ""}, "login and password", id="empty-apikey"),
        pytest.param(None, None, {"apikey": APIKEY}, "'account'", id="apikey-unnamed"),
        pytest.param(LOGIN, PASSWORD, {"apikey": 123}, "'apikey'", id="apikey-not-str"),
    ],
)
def test_missing_credentials_are_refused(login, password, extra, message):
    """A connection that cannot authenticate, or cannot name its account, fails up front."""
    with pytest.raises(SmscConfigError, match=message):
        settings(login=login, password=password, **extra)


def test_settings_without_credentials_refuse_to_build_auth():
    """Settings built by hand without credentials cannot produce auth params."""
    bare = SmscSettings(base_urls=("https://smsc.ru",), login=None, password=None, apikey=None)
    with pytest.raises(SmscConfigError, match="login and password"):
        bare.auth_params()


# --- extra as stored by Airflow -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "fmt"),
    [
        pytest.param(None, 3, id="none"),
        pytest.param("", 3, id="empty-string"),
        pytest.param("  ", 3, id="blank-string"),
        pytest.param('{"fmt": 1}', 1, id="json-string"),
        pytest.param({"fmt": 2}, 2, id="mapping"),
    ],
)
def test_extra_is_read_from_json_or_mapping(extra, fmt):
    """Airflow hands extra over as a JSON string; a mapping or nothing also works."""
    assert settings_from_connection("smsc.ru", LOGIN, PASSWORD, extra).fmt == fmt


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        pytest.param("{fmt: 1}", "not valid JSON", id="bad-json"),
        pytest.param("[1, 2]", "JSON object", id="json-list"),
        pytest.param('"fmt"', "JSON object", id="json-string"),
        pytest.param("3", "JSON object", id="json-number"),
    ],
)
def test_extra_that_is_not_an_object_is_refused(extra, message):
    """Extra that is not a JSON object is a config error, not a crash."""
    with pytest.raises(SmscConfigError, match=message):
        settings_from_connection("smsc.ru", LOGIN, PASSWORD, extra)


# --- secrets -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("login", "password", "extra", "auth"),
    [
        pytest.param(LOGIN, PASSWORD, {}, "auth=password", id="password"),
        pytest.param(LOGIN, PASSWORD, {"apikey": APIKEY}, "auth=apikey", id="apikey"),
    ],
)
def test_repr_hides_secrets(login, password, extra, auth):
    """repr/str say which auth is used and show the login, never the password or apikey."""
    got = settings_from_connection("smsc.ru", login, password, json.dumps(extra))
    for text in (repr(got), str(got), f"{got}", repr([got])):
        assert PASSWORD not in text
        assert APIKEY not in text
        assert auth in text
        assert f"login={LOGIN!r}" in text


def test_secrets_lists_every_secret():
    """``secrets`` holds what must be redacted from replies and messages."""
    assert settings().secrets == (PASSWORD,)
    assert settings(apikey=APIKEY).secrets == (PASSWORD, APIKEY)
    assert settings(password=None, apikey=APIKEY).secrets == (APIKEY,)


# --- limits on one attempt ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "deadline", "cap"),
    [
        pytest.param({}, 120.0, 16 * 2**20, id="defaults"),
        pytest.param({"timeout": 90}, 180.0, 16 * 2**20, id="deadline-follows-long-timeout"),
        pytest.param({"deadline": 5, "max_reply_bytes": 4096}, 5.0, 4096, id="set"),
        pytest.param({"max_reply_bytes": "65536"}, 120.0, 65536, id="cap-digit-string"),
    ],
)
def test_attempt_limits_are_read(extra, deadline, cap):
    """``deadline`` bounds a whole attempt; ``max_reply_bytes`` the decoded reply."""
    got = settings(**extra)
    assert (got.deadline, got.max_reply_bytes) == (deadline, cap)


@pytest.mark.parametrize(
    ("extra", "name"),
    [
        pytest.param({"deadline": 0}, "'deadline'", id="deadline-zero"),
        pytest.param({"deadline": "soon"}, "'deadline'", id="deadline-word"),
        pytest.param({"max_reply_bytes": 10}, "'max_reply_bytes'", id="cap-tiny"),
        pytest.param({"max_reply_bytes": 2**40}, "'max_reply_bytes'", id="cap-huge"),
        pytest.param({"max_reply_bytes": 1.5e6}, "'max_reply_bytes'", id="cap-float"),
        pytest.param({"max_reply_bytes": True}, "'max_reply_bytes'", id="cap-bool"),
        pytest.param({"password_md5": "maybe"}, "'password_md5'", id="md5-flag"),
    ],
)
def test_bad_attempt_limit_is_refused(extra, name):
    with pytest.raises(SmscConfigError, match=name):
        settings(**extra)


def test_password_md5_sends_the_lowercase_hex_and_masks_it():
    """Opt-in: psw is md5(password) in lowercase hex, and that hash is a secret too."""
    got = settings(password_md5=True)
    digest = hashlib.md5(PASSWORD.encode(), usedforsecurity=False).hexdigest()
    assert got.auth_params() == {"login": LOGIN, "psw": digest}
    assert digest in got.secrets
    assert PASSWORD in got.secrets
    assert settings().auth_params()["psw"] == PASSWORD


# --- the UI's connection form (provider info) --------------------------------------------

#: A valid value other than the default for every field of the connection form.
FORM_VALUES = {
    "fmt": 2,
    "mycur": False,
    "balance2": True,
    "apikey": APIKEY,
    "account": "shop",
    "timeout": 5,
    "reserve_hosts": "www3.smsc.ru",
}


def form_fields() -> dict:
    from smsc_hook.airflow.provider_info import get_provider_info

    (connection_type,) = get_provider_info()["connection-types"]
    return connection_type["conn-fields"]


def test_every_form_field_is_an_extra_the_settings_read():
    """The form (provider info, its one source) offers only extras that change settings."""
    assert sorted(form_fields()) == sorted(FORM_VALUES)
    for name, value in FORM_VALUES.items():
        assert settings(**{name: value}) != settings(), name


@pytest.mark.parametrize("name", sorted(FORM_VALUES))
def test_form_defaults_are_the_settings_defaults(name):
    default = form_fields()[name]["schema"].get("default")
    if default is not None:
        assert settings(**{name: default}) == settings()


@pytest.mark.parametrize("empty", [None, "", "  "], ids=["null", "empty", "blank"])
@pytest.mark.parametrize("name", sorted(FORM_VALUES))
def test_a_form_field_left_empty_means_default(name, empty):
    """The form stores an empty field as null or "": the default, not an error or a lost
    reserve host."""
    assert settings(**{name: empty}) == settings()
    assert settings(**{name: empty}).base_urls == ("https://smsc.ru", "https://www2.smsc.ru")


def test_connection_form_comes_from_the_provider_info_only():
    """Airflow 3.2+ reads the form from the provider info; the hook declares no second one."""
    from smsc_hook.client.hook import SmscHook

    assert "get_ui_field_behaviour" not in vars(SmscHook)
    assert not hasattr(SmscHook, "UI_FIELD_BEHAVIOUR")


def test_the_ui_offers_the_smsc_form_with_its_fields():
    """What the api-server's connection form reads (needs the package installed, as the
    Makefile's venv has it): the smsc type, relabelled fields, the extras of the form."""
    from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService

    (smsc,) = [h for h in HookMetaService.hook_meta_data() if h.connection_type == "smsc"]
    assert smsc.hook_name == "SMSC"
    assert sorted(smsc.extra_fields or {}) == sorted(FORM_VALUES)
    assert smsc.standard_fields is not None
    assert smsc.standard_fields.host.title == "Host or base URL"
    assert smsc.standard_fields.port.hidden
