"""Turn an SMSC ``get_stat`` reply body into ``StatRow`` records or a typed error."""

from __future__ import annotations

import codecs
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import NoReturn

from smsc_hook.exceptions import SmscConfigError, SmscReplyError, api_error
from smsc_hook.models import StatRow

__all__ = ["FIELDS", "parse_stat_reply"]

#: Field names of one statistics row, in the order the comma format (fmt=1) sends them.
FIELDS = ("login", "cnt", "credit", "debit", "currency")

#: The comma format carries only a code, so its errors get the documented meaning as text.
_CODE_MEANINGS = {
    1: "error in parameters",
    2: "invalid login or password, or IP not allowed",
    4: "IP temporarily blocked",
    9: "too many requests",
}

_EXCERPT = 40  # body text quoted in one error message stays well under 80 characters
_DESCRIPTION_MAX = 80
_ERROR_CODE = re.compile(r"[0-9]{1,9}")
_COUNT = re.compile(r"-?[0-9]+")
# Decimal() alone would also accept "NaN", "1_000" and non-ASCII digits.
_AMOUNT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_COMMA_ERROR = re.compile(r"0\s*,\s*-\s*([0-9]{1,9})")
_TEXT_ERROR = re.compile(r"ERROR\s*=\s*([0-9]{1,9})\s*(?:\((.*)\))?\s*(?:,.*)?", re.IGNORECASE)
_HTML_START = ("<html", "<!doctype html")
_XML_DANGER = re.compile(r"<!\s*(?:DOCTYPE|ENTITY)", re.IGNORECASE)
_NEWLINE = re.compile(r"\r\n|\r|\n")

#: Where a record sits in the body ("row 2", "line 3") and its raw fields by name.
_Record = tuple[str, Mapping[str, object]]


def parse_stat_reply(body: bytes, fmt: int, charset: str = "utf-8") -> list[StatRow]:
    """Parse a whole reply; rows come back only if every row in it is valid.

    Raises an ``SmscApiError`` subclass for an SMSC error reply, ``SmscReplyError`` for
    anything malformed and ``SmscConfigError`` for an unknown ``fmt`` or ``charset``.
    """
    parser = None if isinstance(fmt, bool) else _PARSERS.get(fmt)
    if parser is None:
        raise SmscConfigError(f"unknown reply format fmt={fmt!r}; expected one of 0, 1, 2, 3")
    text = _decode(body, charset)
    if not text.strip():
        raise SmscReplyError("empty body")
    if text.lstrip().lower().startswith(_HTML_START):
        raise SmscReplyError("body looks like an HTML page, not an SMSC reply")
    return _build_rows(parser(text))


def _decode(body: bytes, charset: str) -> str:
    """Decode strictly: a wrong charset must fail loudly, not store mojibake."""
    try:
        codec = codecs.lookup(charset).name
    except LookupError:
        raise SmscConfigError(f"unknown charset {charset!r}") from None
    if codec == "utf-8":
        codec = "utf-8-sig"  # some servers and proxies prepend a BOM
    try:
        text = body.decode(codec)
    except UnicodeDecodeError as exc:
        raise SmscReplyError(f"body is not valid {charset} at byte {exc.start}") from None
    return text.removeprefix("\ufeff")


# --- one parser per format: text -> records, or an API error -------------------------------


def _parse_text(text: str) -> list[_Record]:
    """fmt=0: ``login = demo, cnt = 12, ...`` per line, or ``ERROR = N (description)``."""
    lines = _lines(text)
    if len(lines) == 1 and (match := _TEXT_ERROR.fullmatch(lines[0][1].strip())):
        raise api_error(int(match[1]), _description(match[2], int(match[1])))
    records: list[_Record] = []
    for number, line in lines:
        fields: dict[str, str] = {}
        for pair in line.split(","):
            if not pair.strip():
                continue  # tolerate a trailing comma
            name, eq, value = pair.partition("=")
            name = name.strip().lower()
            if not eq or not name:
                raise SmscReplyError(
                    f"line {number}: expected 'name = value' pairs, got {_excerpt(pair.strip())}"
                )
            _put(fields, name, value.strip(), f"line {number}")
        records.append((f"line {number}", fields))
    return records


def _parse_comma(text: str) -> list[_Record]:
    """fmt=1: ``login,cnt,credit,debit,currency`` per line, or ``0,-N``."""
    lines = _lines(text)
    if len(lines) == 1 and (match := _COMMA_ERROR.fullmatch(lines[0][1].strip())):
        raise api_error(int(match[1]), _description(None, int(match[1])))
    records: list[_Record] = []
    for number, line in lines:
        values = [value.strip() for value in line.split(",")]
        if len(values) != len(FIELDS):
            raise SmscReplyError(
                f"line {number}: expected {len(FIELDS)} comma-separated fields, got {len(values)}"
            )
        records.append((f"line {number}", dict(zip(FIELDS, values, strict=True))))
    return records


def _parse_xml(text: str) -> list[_Record]:
    """fmt=2: ``<result><stat>...</stat>...</result>``, fields as child elements or attributes."""
    if _XML_DANGER.search(text):
        raise SmscReplyError("XML with a DTD or entity declaration is refused")
    try:
        root = ET.fromstring(text)  # noqa: S314 - no DTD, so no entity expansion
    except ET.ParseError as exc:
        line, column = exc.position
        raise SmscReplyError(f"XML truncated or invalid at line {line}, column {column}") from None
    children = {_local(child.tag) for child in root}
    if "error" in children or "error_code" in children:
        _raise_api_error(root.findtext("error_code"), root.findtext("error"))
    if _has_text(root.text) or any(_has_text(child.tail) for child in root):
        raise SmscReplyError(f"XML <{_local(root.tag)}> holds stray text besides row elements")
    records: list[_Record] = []
    for position, element in enumerate(root, start=1):
        where = f"row {position}"
        fields: dict[str, str] = {}
        for name, value in element.attrib.items():
            _put(fields, _local(name), value.strip(), where)
        for child in element:
            _put(fields, _local(child.tag), (child.text or "").strip(), where)
        records.append((where, fields))
    return records


def _parse_json(text: str) -> list[_Record]:
    """fmt=3: an array of row objects, or ``{"error": ..., "error_code": N}``."""
    try:
        document = json.loads(
            text,
            parse_float=Decimal,  # keep the exact digits; never round-trip through float
            parse_constant=Decimal,  # NaN/Infinity arrive as non-finite and fail as amounts
            object_pairs_hook=_unique_keys,
        )
    except json.JSONDecodeError as exc:
        raise SmscReplyError(f"JSON truncated or invalid at char {exc.pos}: {exc.msg}") from None
    except (ValueError, ArithmeticError, RecursionError):
        raise SmscReplyError("JSON holds a number too large or nesting too deep") from None
    if isinstance(document, dict):
        if "error" in document or "error_code" in document:
            _raise_api_error(document.get("error_code"), document.get("error"))
        raise SmscReplyError("expected a JSON array of rows, got an object without 'error'")
    if not isinstance(document, list):
        raise SmscReplyError(f"expected a JSON array of rows, got {type(document).__name__}")
    records: list[_Record] = []
    for position, item in enumerate(document, start=1):
        if not isinstance(item, dict):
            raise SmscReplyError(
                f"row {position}: expected a JSON object, got {type(item).__name__}"
            )
        records.append((f"row {position}", item))
    return records


_PARSERS: dict[int, Callable[[str], list[_Record]]] = {
    0: _parse_text,
    1: _parse_comma,
    2: _parse_xml,
    3: _parse_json,
}


# --- shared helpers ----------------------------------------------------------------------


def _build_rows(records: list[_Record]) -> list[StatRow]:
    """Validate every record before returning any, so a caller never stores half a reply."""
    rows: list[StatRow] = []
    first_seen: dict[str, str] = {}
    for where, fields in records:
        login = fields.get("login")
        label = f"{where} (login {_excerpt(login.strip())})" if isinstance(login, str) else where
        try:
            row = StatRow(
                login=_string(fields, "login"),
                cnt=_count(fields),
                credit=_amount(fields, "credit"),
                debit=_amount(fields, "debit"),
                currency=_string(fields, "currency"),
            )
        except ValueError as exc:
            # StatRow quotes the bad value whole; cut it so a huge value is not echoed.
            raise SmscReplyError(f"{label}: {_clip(str(exc), 2 * _EXCERPT)}") from None
        if row.login in first_seen:
            raise SmscReplyError(f"{label}: login repeated from {first_seen[row.login]}")
        first_seen[row.login] = where
        rows.append(row)
    return rows


def _field(fields: Mapping[str, object], name: str) -> object:
    if name not in fields:
        raise ValueError(f"missing field {name!r}")
    return fields[name]


def _string(fields: Mapping[str, object], name: str) -> str:
    value = _field(fields, name)
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, got {_excerpt(value)}")
    return value.strip()


def _count(fields: Mapping[str, object]) -> int:
    """Accept an integer or an integer string; 12.0 and "12.5" are not counts."""
    value = _field(fields, "cnt")
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _COUNT.fullmatch(value.strip()):
        try:
            return int(value.strip())
        except ValueError:  # more digits than int() will convert
            pass
    raise ValueError(f"cnt must be an integer >= 0, got {_excerpt(value)}")


def _amount(fields: Mapping[str, object], name: str) -> Decimal:
    """Accept a JSON number or a plain numeric string, exactly as written."""
    value = _field(fields, name)
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    if isinstance(value, Decimal) and value.is_finite():
        return value
    if isinstance(value, str) and _AMOUNT.fullmatch(value.strip()):
        try:
            return Decimal(value.strip())
        except InvalidOperation:  # exponent beyond what Decimal can hold
            pass
    raise ValueError(f"{name} must be a finite decimal number, got {_excerpt(value)}")


def _raise_api_error(code: object, description: object) -> NoReturn:
    """Raise the typed error for an error reply; a reply without a usable code is malformed."""
    if isinstance(code, int) and not isinstance(code, bool) and 0 <= code < 10**9:
        number = code
    elif isinstance(code, str) and _ERROR_CODE.fullmatch(code.strip()):
        number = int(code.strip())
    else:
        raise SmscReplyError(
            f"error reply without a numeric error_code (got {_excerpt(code)}); "
            f"description {_excerpt(description)}"
        )
    text = description if isinstance(description, str) else None
    raise api_error(number, _description(text, number))


def _description(text: str | None, code: int) -> str:
    """Keep the server's words, short; fall back to the documented meaning of the code."""
    if text is not None and text.strip():
        return _clip(text.strip(), _DESCRIPTION_MAX)
    return _CODE_MEANINGS.get(code, "no description given")


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """json.loads keeps the last of repeated keys; which 'cnt' is right is unknowable."""
    result: dict[str, object] = {}
    for key, value in pairs:
        if key in result:
            raise SmscReplyError(f"JSON object has key {_excerpt(key)} twice")
        result[key] = value
    return result


def _put(fields: dict[str, str], name: str, value: str, where: str) -> None:
    if name in fields:
        raise SmscReplyError(f"{where}: field {_excerpt(name)} appears twice")
    fields[name] = value


def _lines(text: str) -> list[tuple[int, str]]:
    """Non-blank lines with their 1-based numbers; CR, LF and CRLF all end a line."""
    return [(n, line) for n, line in enumerate(_NEWLINE.split(text), start=1) if line.strip()]


def _local(tag: str) -> str:
    """Drop an XML namespace: ``{urn:x}stat`` -> ``stat``."""
    return tag.rpartition("}")[2]


def _has_text(text: str | None) -> bool:
    return bool(text and text.strip())


def _excerpt(value: object) -> str:
    """A short quotation of body content for an error message."""
    shown = str(value) if isinstance(value, Decimal) else repr(value)
    return _clip(shown, _EXCERPT)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
