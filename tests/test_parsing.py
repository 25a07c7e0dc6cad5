"""Tests for parsing SMSC get_stat replies: tables of real-looking bodies, then fuzzing."""

from __future__ import annotations

import codecs
import json
import os
import re
import string
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smsc_hook.client.exceptions import (
    SmscApiError,
    SmscAuthError,
    SmscConfigError,
    SmscIpBlockedError,
    SmscParametersError,
    SmscRateLimitedError,
    SmscReplyError,
    SmscUnknownApiError,
)
from smsc_hook.client.models import StatRow
from smsc_hook.client.parsing import FIELDS, MAX_CNT, MAX_LOGIN_LENGTH, parse_stat_reply
from smsc_hook.probe import judge, read_fixture_name

# "ci" runs with every test run; "soak" is for a long hunt: SMSC_FUZZ_PROFILE=soak pytest ...
settings.register_profile(
    "ci", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "soak", max_examples=20000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("SMSC_FUZZ_PROFILE", "ci"))

TEXT, COMMA, XML, JSON = 0, 1, 2, 3
FORMATS = (TEXT, COMMA, XML, JSON)
FORMAT_NAMES = {TEXT: "text", COMMA: "comma", XML: "xml", JSON: "json"}
BOM = codecs.BOM_UTF8

DEMO = StatRow("demo", 12, Decimal("22.20"), Decimal("0.00"), "RUB")
SHOP = StatRow("demo-shop", 0, Decimal("0"), Decimal("150.5"), "RUR")


# --- successful replies ------------------------------------------------------------------

SUCCESS_CASES = [
    # fmt=3 JSON
    pytest.param(
        JSON,
        b'[\n  {\n    "login": "demo",\n    "cnt": 12,\n    "credit": "22.20",\n'
        b'    "debit": "0.00",\n    "currency": "RUB"\n  }\n]\n',
        [DEMO],
        id="json-one-row",
    ),
    pytest.param(
        JSON,
        b'[{"login": "demo", "cnt": "12", "credit": 22.20, "debit": 0.00, "currency": "RUB"},'
        b' {"login": "demo-shop", "cnt": 0, "credit": 0, "debit": "150.5", "currency": "RUR"}]',
        [DEMO, SHOP],
        id="json-two-rows-numbers-and-strings",
    ),
    pytest.param(JSON, b"[]", [], id="json-empty"),
    pytest.param(JSON, b"  [\r\n]\r\n", [], id="json-empty-pretty-crlf"),
    pytest.param(
        JSON,
        b'[{"currency": "RUB", "debit": "0.00", "credit": "22.20", "cnt": 12, "login": "demo"}]',
        [DEMO],
        id="json-keys-any-order",
    ),
    pytest.param(
        JSON,
        b'[{"login": " demo ", "cnt": " 12 ", "credit": " 22.20 ", "debit": "0.00",'
        b' "currency": " RUB ", "sent": 3}]',
        [DEMO],
        id="json-spaces-in-values-and-extra-key",
    ),
    pytest.param(
        JSON,
        BOM + b'[\r\n {"login": "demo", "cnt": 12, "credit": "22.20", "debit": "0.00",'
        b' "currency": "RUB"}\r\n]\r\n',
        [DEMO],
        id="json-bom-crlf",
    ),
    # fmt=1 comma
    pytest.param(COMMA, b"demo,12,22.20,0.00,RUB\n", [DEMO], id="comma-one-row"),
    pytest.param(
        COMMA,
        b"demo,12,22.20,0.00,RUB\ndemo-shop,0,0,150.5,RUR",
        [DEMO, SHOP],
        id="comma-two-rows",
    ),
    pytest.param(
        COMMA,
        BOM + b"demo, 12, 22.20, 0.00, RUB\r\n\r\ndemo-shop , 0 , 0 , 150.5 , RUR\r\n",
        [DEMO, SHOP],
        id="comma-bom-crlf-spaces-blank-line",
    ),
    # fmt=0 text
    pytest.param(
        TEXT,
        b"login = demo, cnt = 12, credit = 22.20, debit = 0.00, currency = RUB\n",
        [DEMO],
        id="text-one-row",
    ),
    pytest.param(
        TEXT,
        b"login = demo, cnt = 12, credit = 22.20, debit = 0.00, currency = RUB\n"
        b"login = demo-shop, cnt = 0, credit = 0, debit = 150.5, currency = RUR\n",
        [DEMO, SHOP],
        id="text-two-rows",
    ),
    pytest.param(
        TEXT,
        BOM + b"currency=RUB,debit=0.00,credit=22.20,cnt=12,login=demo,\r\n",
        [DEMO],
        id="text-bom-crlf-any-order-no-spaces-trailing-comma",
    ),
    pytest.param(
        TEXT,
        b"Login = demo, cnt = 12, sent = 3, credit = 22.20, debit = 0.00, currency = RUB",
        [DEMO],
        id="text-extra-field-and-capitalised-name",
    ),
    # fmt=2 XML
    pytest.param(
        XML,
        b'<?xml version="1.0" encoding="utf-8"?><result><stat><login>demo</login><cnt>12</cnt>'
        b"<credit>22.20</credit><debit>0.00</debit><currency>RUB</currency></stat></result>",
        [DEMO],
        id="xml-one-row",
    ),
    pytest.param(
        XML,
        b'<?xml version="1.0" encoding="utf-8"?>\r\n<result>\r\n'
        b"  <stat>\r\n    <currency>RUB</currency>\r\n    <login> demo </login>\r\n"
        b"    <cnt>12</cnt>\r\n    <debit>0.00</debit>\r\n    <credit>22.20</credit>\r\n"
        b"  </stat>\r\n"
        b'  <stat login="demo-shop" cnt="0" credit="0" debit="150.5" currency="RUR"/>\r\n'
        b"</result>\r\n",
        [DEMO, SHOP],
        id="xml-two-rows-pretty-elements-and-attributes",
    ),
    pytest.param(
        XML,
        BOM + b'<result><stat login="demo" cnt="12"><credit>22.20</credit><debit>0.00</debit>'
        b"<currency>RUB</currency><sent>3</sent></stat></result>",
        [DEMO],
        id="xml-bom-mixed-attributes-and-elements-extra-field",
    ),
    pytest.param(XML, b'<?xml version="1.0"?>\n<result></result>\n', [], id="xml-empty"),
    pytest.param(XML, b"<result/>", [], id="xml-empty-self-closing"),
]


@pytest.mark.parametrize(("fmt", "body", "expected"), SUCCESS_CASES)
def test_parses_rows(fmt, body, expected):
    assert parse_stat_reply(body, fmt) == expected


@pytest.mark.parametrize(
    ("fmt", "body", "charset"),
    [
        pytest.param(
            TEXT,
            "login = Иван, cnt = 1, credit = 1, debit = 0, currency = RUB".encode("cp1251"),
            "windows-1251",
            id="text-windows-1251",
        ),
        pytest.param(COMMA, "Иван,1,1,0,RUB".encode("koi8-r"), "koi8-r", id="comma-koi8-r"),
        pytest.param(
            XML,
            '<?xml version="1.0" encoding="windows-1251"?><result><stat login="Иван" cnt="1"'
            ' credit="1" debit="0" currency="RUB"/></result>'.encode("cp1251"),
            "windows-1251",
            id="xml-windows-1251-declared",
        ),
        pytest.param(
            JSON,
            '[{"login": "Иван", "cnt": 1, "credit": 1, "debit": 0, "currency": "RUB"}]'.encode(),
            "utf-8",
            id="json-utf-8",
        ),
    ],
)
def test_decodes_the_given_charset(fmt, body, charset):
    rows = parse_stat_reply(body, fmt, charset)
    assert rows == [StatRow("Иван", 1, Decimal(1), Decimal(0), "RUB")]


@pytest.mark.parametrize(
    ("fmt", "body"),
    [
        pytest.param(JSON, b'[{"login": "demo", "cnt": 12, "credit": 22.20, "debit": 0.10,'
                     b' "currency": "RUB"}]', id="json-numbers"),
        pytest.param(JSON, b'[{"login": "demo", "cnt": 12, "credit": "22.20", "debit": "0.10",'
                     b' "currency": "RUB"}]', id="json-strings"),
        pytest.param(COMMA, b"demo,12,22.20,0.10,RUB", id="comma"),
        pytest.param(TEXT, b"login=demo,cnt=12,credit=22.20,debit=0.10,currency=RUB", id="text"),
        pytest.param(XML, b'<result><stat login="demo" cnt="12" credit="22.20" debit="0.10"'
                     b' currency="RUB"/></result>', id="xml"),
    ],
)  # fmt: skip
def test_amounts_keep_their_exact_digits(fmt, body):
    (row,) = parse_stat_reply(body, fmt)
    assert (str(row.credit), str(row.debit)) == ("22.20", "0.10")


def test_currency_is_kept_as_sent():
    rows = parse_stat_reply(b"a,1,1,1,RUR\nb,1,1,1,RUB\nc,1,1,1,KZT", COMMA)
    assert [row.currency for row in rows] == ["RUR", "RUB", "KZT"]


# --- SMSC error replies ------------------------------------------------------------------

ERROR_CODES = [
    (1, SmscParametersError, "parameters error"),
    (2, SmscAuthError, "invalid login or password"),
    (4, SmscIpBlockedError, "IP temporarily blocked"),
    (9, SmscRateLimitedError, "too many requests"),
    (77, SmscUnknownApiError, "something new"),
]
COMMA_DESCRIPTIONS = {  # fmt=1 sends only the code; the parser supplies the documented meaning
    1: "error in parameters",
    2: "invalid login or password, or IP not allowed",
    4: "IP temporarily blocked",
    9: "too many requests",
    77: "no description given",
}


def _error_body(fmt: int, code: int, description: str) -> bytes:
    return {
        TEXT: f"ERROR = {code} ({description})\n",
        COMMA: f"0,-{code}\n",
        XML: f'<?xml version="1.0" encoding="utf-8"?>\n<result><error>{description}</error>'
        f"<error_code>{code}</error_code></result>\n",
        JSON: f'{{\n  "error": "{description}",\n  "error_code": {code}\n}}\n',
    }[fmt].encode()


API_ERROR_CASES = [
    pytest.param(
        fmt,
        _error_body(fmt, code, description),
        error,
        code,
        COMMA_DESCRIPTIONS[code] if fmt == COMMA else description,
        id=f"{FORMAT_NAMES[fmt]}-error-{code}",
    )
    for fmt in FORMATS
    for code, error, description in ERROR_CODES
] + [
    pytest.param(
        JSON, b'{"error_code": "9", "error": "too many requests"}', SmscRateLimitedError, 9,
        "too many requests", id="json-error-code-as-string-keys-swapped",
    ),
    pytest.param(
        JSON, BOM + b'{"error": "  ", "error_code": 2}\r\n', SmscAuthError, 2,
        "invalid login or password, or IP not allowed", id="json-error-blank-description-bom",
    ),
    pytest.param(
        TEXT, b"  ERROR = 9\r\n", SmscRateLimitedError, 9, "too many requests",
        id="text-error-without-description",
    ),
    pytest.param(
        TEXT, b"ERROR = 2 (invalid login (demo))", SmscAuthError, 2,
        "invalid login (demo)", id="text-error-parenthesised-description",
    ),
    pytest.param(
        COMMA, b"0, -4\r\n", SmscIpBlockedError, 4, "IP temporarily blocked",
        id="comma-error-spaces-crlf",
    ),
    pytest.param(
        XML, b"<result>\n  <error_code>1</error_code>\n  <error>bad date</error>\n</result>",
        SmscParametersError, 1, "bad date", id="xml-error-code-first",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("fmt", "body", "error", "code", "description"), API_ERROR_CASES)
def test_error_reply_raises_typed_error(fmt, body, error, code, description):
    with pytest.raises(SmscApiError) as raised:
        parse_stat_reply(body, fmt)
    assert type(raised.value) is error
    assert (raised.value.code, raised.value.description) == (code, description)


def test_long_error_description_is_cut():
    body = json.dumps({"error": "x" * 5000, "error_code": 1}).encode()
    with pytest.raises(SmscParametersError) as raised:
        parse_stat_reply(body, JSON)
    assert len(raised.value.description) <= 80


# --- malformed replies -------------------------------------------------------------------


def _json_row(**changes: object) -> bytes:
    row: dict[str, object] = {
        "login": "demo",
        "cnt": 12,
        "credit": "22.20",
        "debit": "0.00",
        "currency": "RUB",
    }
    row.update(changes)
    return json.dumps([{k: v for k, v in row.items() if v is not _DROP}]).encode()


_DROP = object()
_HTML = b"\r\n  <!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head></html>"
_GOOD_JSON = b'{"login": "demo", "cnt": 12, "credit": "22.20", "debit": "0.00", "currency": "RUB"}'
_TRUNCATED_JSON = b"[" + _GOOD_JSON + b", " + _GOOD_JSON[: _GOOD_JSON.index(b'"credit"')]

MALFORMED_CASES = [
    # JSON
    pytest.param(JSON, _json_row(cnt=-1),
                 "row 1 (login 'demo'): cnt must be an integer >= 0, got -1",
                 id="json-negative-cnt"),
    pytest.param(JSON, _json_row(cnt="-1"), "row 1 (login 'demo'): cnt must be an integer >= 0",
                 id="json-negative-cnt-string"),
    pytest.param(JSON, b'[{"login": "demo", "cnt": 12.0, "credit": 1, "debit": 1,'
                 b' "currency": "RUB"}]', "cnt must be an integer >= 0, got 12.0",
                 id="json-cnt-float"),
    pytest.param(JSON, _json_row(cnt="12.5"), "cnt must be an integer >= 0, got '12.5'",
                 id="json-cnt-fraction-string"),
    pytest.param(JSON, _json_row(cnt=True), "cnt must be an integer >= 0, got True",
                 id="json-cnt-bool"),
    pytest.param(JSON, _json_row(cnt=None), "cnt must be an integer >= 0, got None",
                 id="json-cnt-null"),
    pytest.param(JSON, _json_row(credit="abc"),
                 "row 1 (login 'demo'): credit must be a finite decimal number, got 'abc'",
                 id="json-amount-not-numeric"),
    pytest.param(JSON, _json_row(debit="1_000"), "debit must be a finite decimal number",
                 id="json-amount-underscore"),
    pytest.param(JSON, _json_row(credit="Infinity"), "credit must be a finite decimal number",
                 id="json-amount-infinity-string"),
    pytest.param(JSON, b'[{"login": "demo", "cnt": 1, "credit": NaN, "debit": 1,'
                 b' "currency": "RUB"}]', "credit must be a finite decimal number, got NaN",
                 id="json-amount-nan-literal"),
    pytest.param(JSON, _json_row(credit=True), "credit must be a finite decimal number",
                 id="json-amount-bool"),
    pytest.param(JSON, _json_row(currency="rub"), "currency must be three capital letters",
                 id="json-currency-lowercase"),
    pytest.param(JSON, _json_row(currency="RUBL"), "currency must be three capital letters",
                 id="json-currency-four-letters"),
    pytest.param(JSON, _json_row(currency=643), "currency must be a string, got 643",
                 id="json-currency-number"),
    pytest.param(JSON, _json_row(debit=_DROP), "row 1 (login 'demo'): missing field 'debit'",
                 id="json-missing-field"),
    pytest.param(JSON, _json_row(login=_DROP), "row 1: missing field 'login'",
                 id="json-missing-login"),
    pytest.param(JSON, _json_row(login=" "), "login must be a non-empty string",
                 id="json-blank-login"),
    pytest.param(JSON, _json_row(login=5), "row 1: login must be a string, got 5",
                 id="json-login-number"),
    pytest.param(JSON, _TRUNCATED_JSON, f"JSON truncated or invalid at char {len(_TRUNCATED_JSON)}",
                 id="json-truncated"),
    pytest.param(JSON, b"[" + _GOOD_JSON + b"] trailing", "JSON truncated or invalid at char",
                 id="json-trailing-garbage"),
    pytest.param(JSON, b"42", "expected a JSON array of rows or one row object, got int",
                 id="json-not-array"),
    pytest.param(JSON, b'{"login": "demo"}', "object (login 'demo'): missing field 'cnt'",
                 id="json-object-not-error"),
    pytest.param(JSON, b'{"stat": [' + _GOOD_JSON + b"]}", "object: missing field 'login'",
                 id="json-wrapped-array"),
    pytest.param(JSON, b'[{"login": "demo", "cnt": 1, "CNT": 2}]',
                 "JSON object has key 'CNT' twice", id="json-duplicate-key-other-case"),
    pytest.param(JSON, b"[" + _GOOD_JSON + b", [1]]", "row 2: expected a JSON object, got list",
                 id="json-row-not-object"),
    pytest.param(JSON, b"[" + _GOOD_JSON + b", " + _GOOD_JSON + b"]",
                 "row 2 (login 'demo'): login repeated from row 1", id="json-duplicate-login"),
    pytest.param(JSON, b'[{"login": "demo", "cnt": 1, "cnt": 2}]',
                 "JSON object has key 'cnt' twice", id="json-duplicate-key"),
    pytest.param(JSON, b'{"error": "oops"}', "error reply without a numeric error_code",
                 id="json-error-without-code"),
    pytest.param(JSON, b'{"error": "oops", "error_code": 2.5}',
                 "error reply without a numeric error_code", id="json-error-code-float"),
    pytest.param(JSON, b"[" * 100000, "nesting too deep", id="json-deep-nesting"),
    # comma
    pytest.param(COMMA, b"demo,12,22.20,0.00,RUB\nshop,1,2.00,RUB\n",
                 "line 2: expected 5 comma-separated fields, got 4", id="comma-wrong-field-count"),
    pytest.param(COMMA, b"demo,12", "line 1: expected 5 comma-separated fields, got 2",
                 id="comma-two-fields-not-error"),
    pytest.param(COMMA, b"demo,-1,22.20,0.00,RUB",
                 "line 1 (login 'demo'): cnt must be an integer >= 0, got -1",
                 id="comma-negative-cnt"),
    pytest.param(COMMA, b"demo,1e3,22.20,0.00,RUB", "cnt must be an integer >= 0, got '1e3'",
                 id="comma-non-integer-cnt"),
    pytest.param(COMMA, b"demo,12,22.20,n/a,RUB",
                 "debit must be a finite decimal number, got 'n/a'", id="comma-non-numeric-amount"),
    pytest.param(COMMA, b"demo,12,22.20,0.00,R1B", "currency must be three capital letters",
                 id="comma-currency-digit"),
    pytest.param(COMMA, b" ,12,22.20,0.00,RUB", "line 1 (login ''): login must be a non-empty",
                 id="comma-empty-login"),
    pytest.param(COMMA, b"demo,1,1,1,RUB\r\nshop,1,1,1,RUB\r\ndemo,2,2,2,RUB\r\n",
                 "line 3 (login 'demo'): login repeated from line 1", id="comma-duplicate-login"),
    pytest.param(COMMA, b"0,-0x9", "line 1: expected 5 comma-separated fields, got 2",
                 id="comma-error-code-not-decimal"),
    # text
    pytest.param(TEXT, b"login = demo, cnt = 12, credit = 22.20, debit = 0.00",
                 "line 1 (login 'demo'): missing field 'currency'", id="text-missing-field"),
    pytest.param(TEXT, b"login = demo, cnt = -3, credit = 1, debit = 1, currency = RUB",
                 "cnt must be an integer >= 0, got -3", id="text-negative-cnt"),
    pytest.param(TEXT, b"login = demo, cnt = 12, credit = 22,20, debit = 0, currency = RUB",
                 "line 1: expected 'name = value' pairs, got '20'", id="text-decimal-comma"),
    pytest.param(TEXT, b"login = demo, cnt = 1, cnt = 2, credit = 1, debit = 1, currency = RUB",
                 "line 1: field 'cnt' appears twice", id="text-duplicate-field"),
    pytest.param(TEXT, b"OK", "line 1: expected 'name = value' pairs, got 'OK'",
                 id="text-not-pairs"),
    pytest.param(TEXT, b"ERROR = x (bad)", "line 1: missing field 'login'",
                 id="text-error-code-not-numeric"),
    pytest.param(TEXT, b"login=a,cnt=1,credit=1,debit=1,currency=RUB\n"
                 b"login=a,cnt=2,credit=1,debit=1,currency=RUB",
                 "line 2 (login 'a'): login repeated from line 1", id="text-duplicate-login"),
    # XML
    pytest.param(XML, b'<?xml version="1.0"?><!DOCTYPE result [<!ENTITY a "aaaa">]>'
                 b"<result>&a;</result>", "XML with a DTD or entity declaration is refused",
                 id="xml-dtd"),
    pytest.param(XML, b'<result><!ENTITY x SYSTEM "file:///etc/passwd"></result>',
                 "XML with a DTD or entity declaration is refused", id="xml-entity"),
    pytest.param(XML, b"<result><stat><login>demo</login><cnt>1",
                 "XML truncated or invalid at line 1, column", id="xml-truncated"),
    pytest.param(XML, b"<result>oops</result>", "XML <result> holds stray text",
                 id="xml-stray-text"),
    pytest.param(XML, b'<result><stat login="demo" cnt="1" credit="1" debit="1"/></result>',
                 "row 1 (login 'demo'): missing field 'currency'", id="xml-missing-field"),
    pytest.param(XML, b'<result><stat login="demo" cnt="1"><cnt>2</cnt></stat></result>',
                 "row 1: field 'cnt' appears twice", id="xml-field-as-attribute-and-element"),
    pytest.param(XML, b'<result><stat login="demo" cnt="-1" credit="1" debit="1"'
                 b' currency="RUB"/></result>', "cnt must be an integer >= 0, got -1",
                 id="xml-negative-cnt"),
    pytest.param(XML, b'<result><stat login="demo" cnt="1" credit="1" debit="1" currency="RUB"/>'
                 b'<stat login="demo" cnt="1" credit="1" debit="1" currency="RUB"/></result>',
                 "row 2 (login 'demo'): login repeated from row 1", id="xml-duplicate-login"),
    pytest.param(XML, b"<result><error>oops</error><error_code>two</error_code></result>",
                 "error reply without a numeric error_code (got 'two')",
                 id="xml-error-code-not-numeric"),
    # every format
    *[
        pytest.param(fmt, body, message, id=f"{FORMAT_NAMES[fmt]}-{name}")
        for fmt in FORMATS
        for name, body, message in [
            ("empty-body", b"", "empty body"),
            ("blank-body", BOM + b" \r\n\t\n", "empty body"),
            ("html-page", _HTML, "body looks like an HTML page, not an SMSC reply"),
            ("html-tag", b"<HTML><body>Service Unavailable</body></HTML>", "HTML page"),
            ("undecodable", b"\xff\xfe[]", "body is not valid utf-8 at byte 0"),
        ]
    ],
]  # fmt: skip


@pytest.mark.parametrize(("fmt", "body", "message"), MALFORMED_CASES)
def test_malformed_reply_names_the_problem(fmt, body, message):
    with pytest.raises(SmscReplyError, match=re.escape(message)):
        parse_stat_reply(body, fmt)


def test_undecodable_in_declared_charset():
    with pytest.raises(SmscReplyError, match=r"not valid windows-1251 at byte 5"):
        parse_stat_reply(b"demo,\x98,1,1,RUB", COMMA, "windows-1251")


@pytest.mark.parametrize("fmt", [4, -1, True, None, "3"])
def test_unknown_format_is_a_config_error(fmt):
    with pytest.raises(SmscConfigError, match="unknown reply format"):
        parse_stat_reply(b"[]", fmt)


def test_unknown_charset_is_a_config_error():
    with pytest.raises(SmscConfigError, match="unknown charset 'no-such-charset'"):
        parse_stat_reply(b"[]", JSON, "no-such-charset")


LONG = "Z" * 5000


@pytest.mark.parametrize(
    ("fmt", "body"),
    [
        pytest.param(JSON, _json_row(login=LONG, cnt=-1), id="json-long-login"),
        pytest.param(JSON, _json_row(currency=LONG), id="json-long-currency"),
        pytest.param(JSON, _json_row(cnt="9" * 5000), id="json-long-cnt"),
        pytest.param(JSON, b"[" + b"9" * 5000 + b"]", id="json-huge-integer"),
        pytest.param(JSON, f'{{"error": 1, "error_code": "{LONG}"}}'.encode(), id="json-long-code"),
        pytest.param(JSON, f'[{{"{LONG}": 1, "{LONG}": 2}}]'.encode(), id="json-long-dup-key"),
        pytest.param(COMMA, f"{LONG},1,1,1,{LONG}".encode(), id="comma-long-values"),
        pytest.param(COMMA, f"demo,-{'9' * 5000},1,1,RUB".encode(), id="comma-long-negative-cnt"),
        pytest.param(TEXT, f"{LONG}\n".encode(), id="text-long-line"),
        pytest.param(TEXT, f"{LONG} = 1, {LONG} = 2".encode(), id="text-long-dup-name"),
        pytest.param(XML, f"<result><stat amount='{LONG}'/></result>".encode(), id="xml-long"),
    ],
)
def test_messages_quote_only_a_short_excerpt(fmt, body):
    with pytest.raises(SmscReplyError) as raised:
        parse_stat_reply(body, fmt)
    message = str(raised.value)
    assert re.search(r"[Z9]{81}", message) is None, message
    assert len(message) < 200, message


# --- every reply shape the evidence allows, each with rows and with each error code --------
# SMSC's sibling methods answer one item unwrapped (a bare JSON object, an XML root whose
# children are the fields) and amounts as strings with varying decimals; get_stat's own
# layout is unpublished, so each plausible layout is a row of this table.

NEWS = StatRow("demo-news", 3, Decimal("3215.3097"), Decimal("3.3"), "RUB")


def _values(row: StatRow) -> dict[str, str]:
    return {name: str(getattr(row, name)) for name in FIELDS}


def _xml_elements(row: StatRow, tag: str = "stat") -> str:
    fields = "".join(f"<{name}>{value}</{name}>" for name, value in _values(row).items())
    return f"<{tag}>{fields}</{tag}>"


def _xml_attributes(row: StatRow, tag: str = "stat") -> str:
    return f"<{tag} " + " ".join(f'{n}="{v}"' for n, v in _values(row).items()) + "/>"


def _json_item(row: StatRow, *, numbers: bool = False, strings: bool = False) -> str:
    def amount(value: Decimal) -> str:
        return str(value) if numbers else json.dumps(str(value))

    cnt = json.dumps(str(row.cnt)) if strings else str(row.cnt)
    return (
        f'{{"login": {json.dumps(row.login)}, "cnt": {cnt}, "credit": {amount(row.credit)},'
        f' "debit": {amount(row.debit)}, "currency": "{row.currency}"}}'
    )


@dataclass(frozen=True)
class Shape:
    """One reply layout: how it renders rows and how it renders an error."""

    fmt: int
    render: Callable[[list[StatRow]], str]
    error: Callable[[int, str], str]
    #: Row counts the layout can carry: a bare object or a root-row holds exactly one.
    sizes: tuple[int, ...] = (0, 1, 3)


SHAPES: dict[str, Shape] = {
    "json-array": Shape(
        JSON,
        lambda rows: "[\n  " + ",\n  ".join(_json_item(r) for r in rows) + "\n]\n",
        lambda code, text: f'[{{"error": "{text}", "error_code": {code}}}]',
    ),
    "json-bare-object": Shape(
        JSON,
        lambda rows: _json_item(rows[0]).replace(", ", ",\n  ") + "\n",
        lambda code, text: f'{{"error": "{text}", "error_code": {code}, "id": 175}}',
        sizes=(1,),
    ),
    "json-all-strings": Shape(
        JSON,
        lambda rows: "[" + ", ".join(_json_item(r, strings=True) for r in rows) + "]",
        lambda code, text: f'{{"error": "{text}", "error_code": "{code}"}}',
    ),
    "json-numbers-varying-decimals": Shape(
        JSON,
        lambda rows: "[" + ", ".join(_json_item(r, numbers=True) for r in rows) + "]",
        lambda code, text: f'{{"error_code": {code}, "error": "{text}"}}',
    ),
    "json-keys-any-case-extra-keys": Shape(
        JSON,
        lambda rows: (
            "["
            + ", ".join(
                _json_item(r).replace('"login"', '"Login"').replace('"cnt"', '"CNT"')[:-1]
                + ', "id": 5, "details": {"sent": [1, 2]}}'
                for r in rows
            )
            + "]"
        ),
        lambda code, text: f'{{"Error": "{text}", "Error_Code": {code}}}',
    ),
    "xml-rows-as-elements": Shape(
        XML,
        lambda rows: (
            '<?xml version="1.0" encoding="utf-8"?>\n<result>\n'
            + "".join(f"  {_xml_elements(r)}\n" for r in rows)
            + "</result>\n"
        ),
        lambda code, text: f"<result><error>{text}</error><error_code>{code}</error_code></result>",
    ),
    "xml-rows-any-tag": Shape(
        XML,
        lambda rows: "<response>" + "".join(_xml_elements(r, "item") for r in rows) + "</response>",
        lambda code, text: (
            f"<response><item><error>{text}</error>"
            f"<error_code>{code}</error_code></item></response>"
        ),
    ),
    "xml-rows-as-attributes": Shape(
        XML,
        lambda rows: "<result>" + "".join(_xml_attributes(r) for r in rows) + "</result>",
        lambda code, text: f'<result><stat error="{text}" error_code="{code}"/></result>',
    ),
    "xml-root-is-the-row": Shape(
        XML,
        lambda rows: '<?xml version="1.0"?>\n' + _xml_elements(rows[0]).replace("><", ">\n  <"),
        lambda code, text: f"<stat><error>{text}</error><error_code>{code}</error_code></stat>",
        sizes=(1,),
    ),
    "xml-root-is-the-row-attributes": Shape(
        XML,
        lambda rows: _xml_attributes(rows[0], "stat"),
        lambda code, text: f'<stat error="{text}" error_code="{code}"/>',
        sizes=(1,),
    ),
    "xml-flat-fields-per-login": Shape(
        XML,
        lambda rows: (
            "<result>\n"
            + "".join(_xml_elements(r)[len("<stat>") : -len("</stat>")] + "\n" for r in rows)
            + "</result>"
        ),
        lambda code, text: (
            f"<result>\n  <error_code>{code}</error_code>\n  <error>{text}</error>\n</result>"
        ),
        sizes=(0, 1, 3),
    ),
    "text-names": Shape(
        TEXT,
        lambda rows: "".join(
            ", ".join(f"{n} = {v}" for n, v in _values(r).items()) + "\n" for r in rows
        ),
        lambda code, text: f"ERROR = {code} ({text})\n",
        sizes=(1, 3),
    ),
    "text-names-capitalised": Shape(
        TEXT,
        lambda rows: "".join(
            ", ".join(f"{n.capitalize()} = {v}" for n, v in _values(r).items()) + "\r\n"
            for r in rows
        ),
        lambda code, text: f"Error = {code} ({text}), ID - 275\r\n",
        sizes=(1, 3),
    ),
    "comma": Shape(
        COMMA,
        lambda rows: "".join(",".join(_values(r).values()) + "\n" for r in rows),
        lambda code, text: f"0,-{code}\n",
        sizes=(1, 3),
    ),
    "comma-error-trailer": Shape(
        COMMA,
        lambda rows: "".join(", ".join(_values(r).values()) + "\r\n" for r in rows),
        lambda code, text: f"0,-{code},275\n",
        sizes=(1, 3),
    ),
}
SHAPE_ROWS = [DEMO, SHOP, NEWS]

SHAPE_SUCCESS_CASES = [
    pytest.param(shape.fmt, shape.render(SHAPE_ROWS[:size]).encode(), SHAPE_ROWS[:size],
                 id=f"{name}-{size}-rows")
    for name, shape in SHAPES.items()
    for size in shape.sizes
]  # fmt: skip
SHAPE_ERROR_CASES = [
    pytest.param(shape.fmt, shape.error(code, description).encode(), error, code,
                 COMMA_DESCRIPTIONS[code] if shape.fmt == COMMA else description,
                 id=f"{name}-error-{code}")
    for name, shape in SHAPES.items()
    for code, error, description in ERROR_CODES
]  # fmt: skip


@pytest.mark.parametrize(("fmt", "body", "expected"), SHAPE_SUCCESS_CASES)
def test_every_shape_parses_its_rows(fmt, body, expected):
    assert parse_stat_reply(body, fmt) == expected


@pytest.mark.parametrize(("fmt", "body", "error", "code", "description"), SHAPE_ERROR_CASES)
def test_every_shape_carries_each_error_code(fmt, body, error, code, description):
    with pytest.raises(SmscApiError) as raised:
        parse_stat_reply(body, fmt)
    assert type(raised.value) is error
    assert (raised.value.code, raised.value.description) == (code, description)


def test_numbers_keep_their_varying_decimals():
    body = SHAPES["json-numbers-varying-decimals"].render(SHAPE_ROWS).encode()
    assert [str(row.credit) for row in parse_stat_reply(body, JSON)] == ["22.20", "0", "3215.3097"]


@pytest.mark.parametrize(
    ("fmt", "body", "error", "code"),
    [
        pytest.param(JSON, b"[" + b'{"login": "a", "cnt": 1, "credit": 1, "debit": 0,'
                     b' "currency": "RUB"}, {"error": "duplicate request, wait a minute",'
                     b' "error_code": 9}]', SmscRateLimitedError, 9, id="json-error-after-a-row"),
        pytest.param(XML, b'<result><stat login="a" cnt="1" credit="1" debit="0" currency="RUB"/>'
                     b"<error>ip is blocked</error><error_code>4</error_code></result>",
                     SmscIpBlockedError, 4, id="xml-error-after-a-row"),
        pytest.param(XML, b"<result><login>a</login><cnt>1</cnt><error_code>2</error_code>"
                     b"</result>", SmscAuthError, 2, id="xml-error-code-inside-flat-rows"),
        pytest.param(TEXT, b"login=a,cnt=1,credit=1,debit=1,currency=RUB\nERROR = 9",
                     SmscRateLimitedError, 9, id="text-error-among-rows"),
        pytest.param(COMMA, b"demo,12,22.20,0.00,RUB\n0,-2\n", SmscAuthError, 2,
                     id="comma-error-among-rows"),
    ],
)  # fmt: skip
def test_an_error_anywhere_is_the_reply(fmt, body, error, code):
    """Never rows from a reply that also says error: its code decides (2 never retried)."""
    with pytest.raises(error) as raised:
        parse_stat_reply(body, fmt)
    assert raised.value.code == code


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param(b"<result><cnt>1</cnt><login>a</login><login>b</login></result>",
                     "XML <result>: field <cnt> (element 1) comes before the first <login>",
                     id="flat-field-before-first-login"),
        pytest.param(b"<result><login>a</login><cnt>1</cnt><cnt>2</cnt><login>b</login></result>",
                     "row 1: field 'cnt' appears twice", id="flat-field-twice-in-a-row"),
        pytest.param(b"<result><login>a</login><cnt>1</cnt><credit>1</credit><debit>0</debit>"
                     b"<currency>RUB</currency><login>b</login><cnt>1</cnt></result>",
                     "row 2 (login 'b'): missing field 'credit'", id="flat-second-row-short"),
        pytest.param(b'<result cnt="1"><login>a</login><login>b</login></result>',
                     "XML <result> holds several rows but also field attribute 'cnt'",
                     id="flat-field-attribute-on-root"),
        pytest.param(b"<stat><login>a</login><cnt><n>1</n></cnt></stat>",
                     "root <stat>: field <cnt> holds elements, not a value",
                     id="root-row-field-with-children"),
        pytest.param(b"<result><stats><stat/></stats></result>",
                     "row 1: missing field 'login'", id="rows-nested-one-level-too-deep"),
        pytest.param(b"<result><stat>demo,1,1,1,RUB</stat></result>",
                     "row 1: XML <stat> holds text, not field elements", id="row-holds-text"),
        pytest.param(b'<stat login="demo" cnt="1"/>', "root <stat> (login 'demo'): missing field",
                     id="root-row-attributes-incomplete"),
    ],
)  # fmt: skip
def test_xml_layout_refusals_name_the_place(body, message):
    with pytest.raises(SmscReplyError, match=re.escape(message)):
        parse_stat_reply(body, XML)


# --- hostile and implausible values: refused by the parser, typed, before the database ----

_LOGIN_100 = "d" * MAX_LOGIN_LENGTH

HOSTILE_CASES = [
    pytest.param(_json_row(login="d" * (MAX_LOGIN_LENGTH + 1)),
                 "login is 101 characters long; at most 100", id="login-too-long"),
    pytest.param(_json_row(login="Z" * 3000), "login is 3000 characters long",
                 id="login-3000-characters"),
    pytest.param(_json_row(login="demo\u0000"),
                 "login holds control character U+0000 at character 5", id="login-nul"),
    pytest.param(_json_row(login="demo\u001f"),
                 "login holds control character U+001F at character 5",
                 id="login-trailing-control-not-stripped"),
    pytest.param(_json_row(login="de\u001bmo"), "control character U+001B at character 3",
                 id="login-escape-character"),
    pytest.param(b'[{"login": "de\\ud800mo", "cnt": 1, "credit": 1, "debit": 0,'
                 b' "currency": "RUB"}]', "login holds lone surrogate U+D800 at character 3",
                 id="login-lone-surrogate"),
    pytest.param(_json_row(login="demo\u202eplh"),
                 "login holds invisible format character U+202E", id="login-bidi-override"),
    pytest.param(_json_row(login="demo\u2028shop"), "login holds line separator U+2028",
                 id="login-line-separator"),
    pytest.param(_json_row(login="demo\u00a0"), "login starts or ends with unusual whitespace",
                 id="login-trailing-nbsp"),
    pytest.param(_json_row(cnt=MAX_CNT + 1), "cnt 1000000000001 is above the plausible maximum",
                 id="cnt-above-plausible"),
    pytest.param(_json_row(cnt=2**63), "is above the plausible maximum 10^12",
                 id="cnt-beyond-bigint"),
    pytest.param(_json_row(cnt="9" * 30), "is above the plausible maximum 10^12",
                 id="cnt-30-digit-string"),
    pytest.param(_json_row(credit="1000000000000"), "credit '1000000000000' is not below",
                 id="amount-10-to-the-12"),
    pytest.param(_json_row(debit="-1000000000000.5"), "is not below the plausible maximum",
                 id="amount-negative-too-large"),
    pytest.param(_json_row(credit="1e200000"), "credit '1e200000' is not below",
                 id="amount-huge-exponent-string"),
    pytest.param(b'[{"login": "demo", "cnt": 1, "credit": 1e200000, "debit": 0,'
                 b' "currency": "RUB"}]', "is not below the plausible maximum",
                 id="amount-huge-exponent-number"),
    pytest.param(_json_row(credit="0.123456789"), "has 9 decimal places; at most 8",
                 id="amount-9-places"),
    pytest.param(_json_row(debit="1e-20"), "has 20 decimal places", id="amount-tiny-exponent"),
    pytest.param(_json_row(credit="1." + "0" * 5000), "has 5000 decimal places",
                 id="amount-5000-places"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "message"), HOSTILE_CASES)
def test_hostile_values_are_refused_before_the_database(body, message):
    with pytest.raises(SmscReplyError, match=re.escape(message)):
        parse_stat_reply(body, JSON)


@pytest.mark.parametrize(
    ("fmt", "body", "message"),
    [
        pytest.param(TEXT, b"login = de\x00mo, cnt = 1, credit = 1, debit = 1, currency = RUB",
                     "line 1 (login 'de\\x00mo'): login holds control character U+0000",
                     id="text-nul-in-login"),
        pytest.param(COMMA, b"demo\x07,1,1,1,RUB", "login holds control character U+0007",
                     id="comma-bell-in-login"),
        pytest.param(COMMA, b"demo,1,1,99999999999999999999,RUB",
                     "debit '99999999999999999999' is not below", id="comma-huge-amount"),
        pytest.param(XML, b'<result><stat login="demo" cnt="10000000000000" credit="1" debit="1"'
                     b' currency="RUB"/></result>', "cnt '10000000000000' is above",
                     id="xml-huge-cnt"),
        pytest.param(XML, b"<result><stat><login>demo&#1;</login></stat></result>",
                     "XML truncated or invalid", id="xml-control-character-reference"),
    ],
)  # fmt: skip
def test_hostile_values_in_every_format(fmt, body, message):
    with pytest.raises(SmscReplyError, match=re.escape(message)):
        parse_stat_reply(body, fmt)


@pytest.mark.parametrize(
    ("changes", "field", "value"),
    [
        pytest.param({"login": _LOGIN_100}, "login", _LOGIN_100, id="login-100-characters"),
        pytest.param({"login": "Иван_Shop.1@x-y"}, "login", "Иван_Shop.1@x-y",
                     id="login-cyrillic-and-punctuation"),
        pytest.param({"login": "demo shop"}, "login", "demo shop", id="login-inner-space"),
        pytest.param({"cnt": MAX_CNT}, "cnt", MAX_CNT, id="cnt-at-the-bound"),
        pytest.param({"credit": "999999999999.99999999"}, "credit",
                     Decimal("999999999999.99999999"), id="amount-just-below-bound-8-places"),
        pytest.param({"debit": "-999999999999"}, "debit", Decimal("-999999999999"),
                     id="amount-negative-within-bound"),
        pytest.param({"credit": "5E+6"}, "credit", Decimal("5E+6"), id="amount-exponent-form"),
    ],
)  # fmt: skip
def test_values_at_the_bounds_are_kept(changes, field, value):
    (row,) = parse_stat_reply(_json_row(**changes), JSON)
    assert getattr(row, field) == value


# --- recorded replies: every file under tests/fixtures/replies/ ---------------------------
# Written by `python -m smsc_hook.probe` (values masked); a contributed real reply becomes a
# regression test by being dropped in. The name says the format and the expected outcome.

REPLY_FIXTURES = Path(__file__).parent / "fixtures" / "replies"
RECORDED = sorted(p for p in REPLY_FIXTURES.iterdir() if p.name != "README.md")


def test_there_are_recorded_replies():
    assert len(RECORDED) >= 24, "the probe's output for each simulator dialect is seeded"


@pytest.mark.parametrize("path", RECORDED, ids=[p.name for p in RECORDED])
def test_recorded_reply_parses_as_its_name_says(path):
    parts = read_fixture_name(path)
    assert parts is not None, (
        f"{path.name}: name it NAME.fmtF.OUTCOME.EXT, OUTCOME rowsN, errorN or refused"
        " (see tests/fixtures/replies/README.md)"
    )
    verdict = judge(path.read_bytes(), int(parts["fmt"]))
    assert verdict.outcome == parts["outcome"], f"{path.name}: {verdict}"


# --- fuzzing -----------------------------------------------------------------------------

CHARSETS = ("utf-8", "windows-1251", "koi8-r")
# Letters every test charset can encode (Cyrillic included), digits and login punctuation.
LOGIN_ALPHABET = (
    string.ascii_letters + string.digits + "_.@-" + "".join(map(chr, range(0x410, 0x450)))
)
logins = st.text(alphabet=LOGIN_ALPHABET, min_size=1, max_size=16)
# st.decimals() without bounds is ~10x slower to draw; scaled integers plus a few odd spellings
# cover the same textual forms ("0.005", "5E+6", "-0", exponents, long fractions), all within
# the parser's bounds (|amount| < 10^12, at most 8 decimal places).
amounts = st.one_of(
    st.builds(
        lambda digits, shift: Decimal(digits).scaleb(shift),
        st.integers(min_value=-(10**12) + 1, max_value=10**12 - 1),
        st.integers(min_value=-8, max_value=0),
    ),
    st.builds(
        lambda digits, shift: Decimal(digits).scaleb(shift),
        st.integers(min_value=-(10**5), max_value=10**5),
        st.integers(min_value=1, max_value=6),
    ),
    st.sampled_from(
        [Decimal(s) for s in ("-0", "-0.00", "0E-7", "1E+11", "1.00000001", "999999999999.9")]
    ),
)
stat_rows = st.builds(
    StatRow,
    login=logins,
    cnt=st.integers(min_value=0, max_value=MAX_CNT),
    credit=amounts,
    debit=amounts,
    currency=st.text(alphabet=string.ascii_uppercase, min_size=3, max_size=3),
)


@dataclass(frozen=True)
class Reply:
    """A rendered reply body and the rows it must parse back to."""

    fmt: int
    charset: str
    rows: list[StatRow]
    body: bytes


# Field names in any case: sibling methods capitalise them in fmt=0 ("Status = ...").
name_cases = st.sampled_from([str.lower, str.capitalize, str.upper])


def _render_text(draw: st.DrawFn, rows: list[StatRow], newline: str, pad: str) -> str:
    lines = []
    case = draw(name_cases)
    for row in rows:
        pairs = draw(st.permutations(list(_values(row).items())))
        lines.append(f",{pad}".join(f"{case(name)}{pad}={pad}{value}" for name, value in pairs))
    return newline.join(lines)


def _render_comma(draw: st.DrawFn, rows: list[StatRow], newline: str, pad: str) -> str:
    return newline.join(
        ",".join(f"{pad}{_values(row)[name]}{pad}" for name in FIELDS) for row in rows
    )


def _render_xml(draw: st.DrawFn, rows: list[StatRow], newline: str, pad: str) -> str:
    """Rows as children (any tag names), the root as the one row, or flat fields per login."""
    case = draw(name_cases)
    root, tag = draw(st.sampled_from([("result", "stat"), ("response", "item"), ("stats", "row")]))
    layouts = ["rows", "flat"] + (["root-row"] if len(rows) == 1 else [])
    layout = draw(st.sampled_from(layouts))
    if layout == "flat":
        fields = [
            f"<{case(n)}>{pad}{escape(v)}{pad}</{case(n)}>"
            for row in rows
            # login first: each <login> starts a row
            for n, v in sorted(_values(row).items(), key=lambda item: item[0] != "login")
        ]
        return f"<{root}>{newline}{newline.join(fields)}</{root}>"
    elements = []
    for row in rows:
        as_attribute = draw(st.lists(st.booleans(), min_size=5, max_size=5))
        pairs = [
            ((case(n), v), a) for (n, v), a in zip(_values(row).items(), as_attribute, strict=True)
        ]
        attributes = "".join(f" {n}={quoteattr(pad + v + pad)}" for (n, v), a in pairs if a)
        children = "".join(f"<{n}>{pad}{escape(v)}{pad}</{n}>" for (n, v), a in pairs if not a)
        elements.append(f"<{tag}{attributes}>{children}</{tag}>")
    if layout == "root-row":
        return elements[0]
    return f"<{root}>{newline}{newline.join(elements)}</{root}>"


def _render_json(draw: st.DrawFn, rows: list[StatRow], newline: str, pad: str) -> str:
    """An array of row objects, or (for one row) the bare object sibling methods send."""
    items = []
    case = draw(name_cases)
    for row in rows:
        values = {"login": json.dumps(row.login, ensure_ascii=draw(st.booleans()))}
        for name in ("cnt", "credit", "debit"):
            text = str(getattr(row, name))
            values[name] = json.dumps(pad + text + pad) if draw(st.booleans()) else text
        values["currency"] = json.dumps(row.currency)
        pairs = draw(st.permutations(list(values.items())))
        items.append("{" + f",{newline}{pad}".join(f'"{case(k)}": {v}' for k, v in pairs) + "}")
    if len(items) == 1 and draw(st.booleans()):
        return items[0]
    return "[" + newline + f",{newline}".join(items) + newline + "]"


RENDERERS = {TEXT: _render_text, COMMA: _render_comma, XML: _render_xml, JSON: _render_json}


@st.composite
def replies(draw: st.DrawFn, formats: tuple[int, ...] = FORMATS) -> Reply:
    """A valid reply in a random format and layout, with the rows it must parse back to."""
    fmt = draw(st.sampled_from(formats))
    charset = draw(st.sampled_from(CHARSETS))
    # Text formats have no way to say "no rows"; XML and JSON do.
    min_rows = 0 if fmt in (XML, JSON) else 1
    rows = draw(st.lists(stat_rows, min_size=min_rows, max_size=5, unique_by=lambda r: r.login))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    pad = draw(st.sampled_from(["", " ", "  "]))
    text = RENDERERS[fmt](draw, rows, newline, pad)
    if fmt == XML and draw(st.booleans()):
        text = f'<?xml version="1.0" encoding="{charset}"?>{newline}{text}'
    if draw(st.booleans()):
        text += newline
    body = text.encode(charset)
    if charset == "utf-8" and draw(st.booleans()):
        body = BOM + body
    return Reply(fmt, charset, rows, body)


def _parse_or_fail_cleanly(body: bytes, fmt: int, charset: str) -> list[StatRow] | None:
    """Parse; an SMSC error type is a clean failure (None), any other exception a bug."""
    try:
        rows = parse_stat_reply(body, fmt, charset)
    except (SmscApiError, SmscReplyError):
        return None
    assert all(isinstance(row, StatRow) for row in rows)
    assert len({row.login for row in rows}) == len(rows)
    return rows


# Fragments of all four formats, so random bodies get past the first checks now and then.
_TOKENS = [
    "[", "]", "{", "}", ",", ":", '"', "=", " ", "\n", "\r\n", "\ufeff", "0", "-1", "12",
    "1.5", "1e9", "NaN", '"login"', '"cnt"', '"credit"', '"debit"', '"currency"', '"RUB"',
    '"error"', '"error_code"', "login", "cnt", "credit", "debit", "currency", "RUB", "demo",
    "ERROR = 9 (x)", "0,-2", "<result>", "</result>", "<stat>", "</stat>", "<stat ", "/>",
    "<login>", "</login>", "<cnt>", "</cnt>", "<error>", "<error_code>", "&amp;", "&x;",
    "<?xml version='1.0'?>", "<!DOCTYPE", "<html>",
]  # fmt: skip
arbitrary_bodies = st.one_of(
    st.binary(max_size=200),
    st.lists(st.sampled_from(_TOKENS), max_size=40).map(lambda parts: "".join(parts).encode()),
)


# Generous enough for SMSC_FUZZ_PROFILE=soak (10x the examples) under the 300 s default.
FUZZ_TIMEOUT = pytest.mark.timeout(900)


@FUZZ_TIMEOUT
@given(body=arbitrary_bodies, fmt=st.sampled_from(FORMATS), charset=st.sampled_from(CHARSETS))
def test_fuzz_arbitrary_bytes_give_rows_or_an_smsc_error(body, fmt, charset):
    _parse_or_fail_cleanly(body, fmt, charset)


@FUZZ_TIMEOUT
@given(reply=replies())
def test_fuzz_rendered_rows_parse_back_exactly(reply):
    assert parse_stat_reply(reply.body, reply.fmt, reply.charset) == reply.rows


@FUZZ_TIMEOUT
@given(reply=replies(formats=(XML, JSON)), data=st.data())
def test_fuzz_truncated_document_never_yields_other_rows(reply, data):
    cut = data.draw(st.integers(min_value=0, max_value=len(reply.body) - 1), label="cut")
    rows = _parse_or_fail_cleanly(reply.body[:cut], reply.fmt, reply.charset)
    # Only a cut inside trailing whitespace leaves a complete document.
    assert rows is None or rows == reply.rows


edits = st.lists(
    st.tuples(
        st.sampled_from(["insert", "delete", "replace"]),
        st.integers(min_value=0),
        st.binary(min_size=1, max_size=3),
    ),
    min_size=1,
    max_size=4,
)


@FUZZ_TIMEOUT
@given(reply=replies(), edits=edits)
def test_fuzz_mutated_reply_gives_rows_or_an_smsc_error(reply, edits):
    body = bytearray(reply.body)
    for kind, position, chunk in edits:
        at = position % (len(body) + 1)
        if kind == "insert":
            body[at:at] = chunk
        elif kind == "delete":
            del body[at : at + len(chunk)]
        else:
            body[at : at + len(chunk)] = chunk
    _parse_or_fail_cleanly(bytes(body), reply.fmt, reply.charset)
