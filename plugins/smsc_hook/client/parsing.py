"""Turn an SMSC statistics reply body (``get.php?get_stat`` or ``users.php?get_stat``) into
``StatRow`` records or a typed error."""

from __future__ import annotations

import codecs
import contextlib
import json
import re
import unicodedata
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import NoReturn

from smsc_hook.client.exceptions import (
    SmscApiError,
    SmscConfigError,
    SmscReplyError,
    SmscReplyValueError,
    api_error,
    subclients_api_error,
)
from smsc_hook.client.models import StatRow

__all__ = [
    "FIELDS",
    "MAX_AMOUNT_PLACES",
    "MAX_CNT",
    "MAX_LOGIN_LENGTH",
    "SOURCES",
    "ParsedReply",
    "parse_reply",
    "parse_stat_reply",
    "parse_subclients_reply",
]

#: Where a reply came from: ``get.php?get_stat`` or ``users.php?get_stat`` (subclients).
STAT = "get_stat"
SUBCLIENTS = "subclients"
SOURCES = (STAT, SUBCLIENTS)

#: Field names of one statistics row, in the order the comma format (fmt=1) sends them.
FIELDS = ("login", "cnt", "credit", "debit", "currency")

#: The comma format carries only a code, so its errors get the documented meaning as text.
_CODE_MEANINGS = {
    1: "error in parameters",
    2: "invalid login or password, or IP not allowed",
    4: "IP temporarily blocked",
    9: "too many requests",
}

# Bounds on values, so a broken or hostile server cannot hand the database absurd data
# (a 3 000-character login overflows the primary-key index; "1e200000" is a DataError).
#: Logins are short identifiers an account holder or reseller picks; 100 characters is
#: generous and, at 4 bytes per character, far below PostgreSQL's ~2.7 kB index-row limit.
MAX_LOGIN_LENGTH = 100
#: Messages in one reply's window (a window can span years). A very large sender moves
#: millions a day; 10^12 is a million a day for over 2 700 years, or a billion a day for
#: almost 3, yet far inside bigint (9.2 * 10^18).
MAX_CNT = 10**12
#: |credit| and |debit| stay below 10^12 in the reply's currency: even at 100 per message
#: that is 10^10 messages, far past any one account's window, and an exponent such as
#: 1e200000 never reaches the database.
MAX_AMOUNT_DIGITS = 12
#: Decimal places of an amount as written. Sibling methods show 1 to 4 ("3.3", "3215.3097");
#: 8 leaves room for per-message prices in a converted currency while refusing the
#: thousands of digits that would bloat every stored numeric.
MAX_AMOUNT_PLACES = 8

_EXCERPT = 40  # body text quoted in one error message stays well under 80 characters
_DESCRIPTION_MAX = 80
_ERROR_CODE = re.compile(r"[0-9]{1,9}")
_COUNT = re.compile(r"-?[0-9]+")
# Decimal() alone would also accept "NaN", "1_000" and non-ASCII digits.
_AMOUNT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
# Both error forms may carry a trailer, as sibling methods' ``ERROR = 3 (no money), ID - 275``.
_COMMA_ERROR = re.compile(r"0\s*,\s*-\s*([0-9]{1,9})\s*(?:,.*)?")
_TEXT_ERROR = re.compile(
    r"ERROR\s*=\s*([0-9]{1,9})\s*(?:\((.*)\))?\s*(?:[,;].*|ID\s*[-=:].*)?", re.IGNORECASE
)
_HTML_START = ("<html", "<!doctype html")
_XML_DANGER = re.compile(r"<!\s*(?:DOCTYPE|ENTITY)", re.IGNORECASE)
_NEWLINE = re.compile(r"\r\n|\r|\n")

#: Where a record sits in the body ("row 2", "line 3") and its raw fields by name.
_Record = tuple[str, Mapping[str, object]]


@dataclass(frozen=True)
class ParsedReply:
    """The rows of a reply, and the names of fields the rows carried besides ``FIELDS``.

    The extra fields are kept out of the rows (the warehouse stores ``FIELDS`` only) but
    reported, so the probe can show what a real reply holds that we do not read.
    """

    rows: list[StatRow]
    extra_fields: tuple[str, ...] = ()


def parse_reply(
    body: bytes, fmt: int, charset: str = "utf-8", *, source: str = STAT
) -> ParsedReply:
    """Parse a whole reply; rows come back only if every row in it is valid.

    Both sources share every layout and every bound: ``users.php?get_stat`` answers one
    row per subclient with the same fields. They differ in what an error code means: for
    ``source="subclients"`` a code other than 2, 4 or 9 is
    :class:`~smsc_hook.client.exceptions.SmscNotResellerError` (see
    :func:`~smsc_hook.client.exceptions.subclients_api_error`).

    Raises an ``SmscApiError`` subclass for an SMSC error reply, ``SmscReplyError`` for
    anything malformed and ``SmscConfigError`` for an unknown ``fmt``, ``charset`` or
    ``source``.
    """
    if source not in SOURCES:
        raise SmscConfigError(f"unknown reply source {source!r}; expected one of {SOURCES}")
    parser = None if isinstance(fmt, bool) else _PARSERS.get(fmt)
    if parser is None:
        raise SmscConfigError(f"unknown reply format fmt={fmt!r}; expected one of 0, 1, 2, 3")
    text = _decode(body, charset)
    if not text.strip():
        raise SmscReplyError("empty body")
    if text.lstrip().lower().startswith(_HTML_START):
        raise SmscReplyError("body looks like an HTML page, not an SMSC reply")
    try:
        records = parser(text)
    except SmscApiError as error:
        if source == STAT:
            raise
        raise subclients_api_error(error.code, error.description) from None
    return ParsedReply(_build_rows(records), _extra_fields(records))


def parse_stat_reply(body: bytes, fmt: int, charset: str = "utf-8") -> list[StatRow]:
    """The rows of a ``get.php?get_stat`` reply (see :func:`parse_reply`)."""
    return parse_reply(body, fmt, charset).rows


def parse_subclients_reply(body: bytes, fmt: int, charset: str = "utf-8") -> list[StatRow]:
    """The rows of a ``users.php?get_stat`` reply, one per subclient (see :func:`parse_reply`)."""
    return parse_reply(body, fmt, charset, source=SUBCLIENTS).rows


def _extra_fields(records: list[_Record]) -> tuple[str, ...]:
    """Field names beyond ``FIELDS`` in any record, sorted (names are lowercased already)."""
    return tuple(sorted({name for _, fields in records for name in fields} - set(FIELDS)))


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
    """fmt=0: ``login = demo, cnt = 12, ...`` per line (names in any case), or an error line.

    An ``ERROR = N (description)`` line anywhere wins over rows around it: the reply is an
    error, and its code (2 never retried, 9 wait) decides what happens next.
    """
    lines = _lines(text)
    for _, line in lines:
        if match := _TEXT_ERROR.fullmatch(line.strip()):
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
    """fmt=1: ``login,cnt,credit,debit,currency`` per line, or ``0,-N`` on any line."""
    lines = _lines(text)
    for _, line in lines:
        # Unambiguous: a row's cnt is never negative.
        if match := _COMMA_ERROR.fullmatch(line.strip()):
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
    """fmt=2, in every layout the evidence allows (tag names are never fixed):

    - rows as child elements of the root, fields as their children or attributes;
    - a root that is itself the one row (``<stat><login>..</login>..</stat>``);
    - a root holding a flat run of field elements, each ``<login>`` starting a row;
    - ``<error>`` / ``<error_code>`` elements (or attributes) anywhere: an API error.
    """
    if _XML_DANGER.search(text):
        raise SmscReplyError("XML with a DTD or entity declaration is refused")
    try:
        root = ET.fromstring(text)  # noqa: S314 - no DTD, so no entity expansion
    except ET.ParseError as exc:
        line, column = exc.position
        raise SmscReplyError(f"XML truncated or invalid at line {line}, column {column}") from None
    _raise_xml_error(root)
    name = _local(root.tag)
    children = list(root)
    if _has_text(root.text) or any(_has_text(child.tail) for child in children):
        raise SmscReplyError(f"XML <{name}> holds stray text besides its elements")
    attributes = _xml_attributes(root, f"XML <{name}>")
    logins = sum(1 for child in children if _local(child.tag).lower() == "login")
    if "login" in attributes or logins == 1:
        where = f"root <{name}>"
        return [(where, _xml_fields(attributes, children, where))]
    if logins > 1:
        return _xml_flat_rows(name, attributes, children)
    records: list[_Record] = []
    for position, element in enumerate(children, start=1):
        where = f"row {position}"
        if _has_text(element.text) or any(_has_text(child.tail) for child in element):
            raise SmscReplyError(
                f"{where}: XML <{_local(element.tag)}> holds text, not field elements"
            )
        fields = _xml_fields(_xml_attributes(element, where), list(element), where)
        records.append((where, fields))
    return records


def _xml_flat_rows(
    name: str, attributes: Mapping[str, str], children: list[ET.Element]
) -> list[_Record]:
    """``<result><login>a</login><cnt>1</cnt>..<login>b</login>..</result>``: split at logins."""
    shared = sorted(set(attributes) & set(FIELDS))
    if shared:
        raise SmscReplyError(
            f"XML <{name}> holds several rows but also field attribute {shared[0]!r}"
        )
    groups: list[list[ET.Element]] = []
    for position, child in enumerate(children, start=1):
        tag = _local(child.tag).lower()
        if tag == "login":
            groups.append([])
        elif not groups:
            if tag in FIELDS:
                raise SmscReplyError(
                    f"XML <{name}>: field <{_local(child.tag)}> (element {position})"
                    " comes before the first <login>"
                )
            continue  # something else ahead of the rows, like an extra key
        groups[-1].append(child)
    return [(f"row {n}", _xml_fields({}, group, f"row {n}")) for n, group in enumerate(groups, 1)]


def _xml_attributes(element: ET.Element, where: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for name, value in element.attrib.items():
        _put(fields, _local(name).lower(), value, where)
    return fields


def _xml_fields(
    attributes: Mapping[str, str], elements: list[ET.Element], where: str
) -> dict[str, str]:
    """One row's fields: attributes, then leaf child elements (names in any case)."""
    fields = dict(attributes)
    for child in elements:
        name = _local(child.tag).lower()
        if name in FIELDS and len(child):
            raise SmscReplyError(
                f"{where}: field <{_local(child.tag)}> holds elements, not a value"
            )
        _put(fields, name, child.text or "", where)
    return fields


def _raise_xml_error(root: ET.Element) -> None:
    """An error element or attribute anywhere makes the whole reply that API error."""
    found: dict[str, str] = {}
    for element in root.iter():
        values = {_local(k).lower(): v for k, v in element.attrib.items()}
        tag = _local(element.tag).lower()
        if tag in ("error", "error_code"):
            values[tag] = element.text or ""
        for key in ("error", "error_code"):
            # The first non-blank one counts (an outer <error> may only wrap the inner).
            if key in values and not found.get(key, "").strip():
                found[key] = values[key]
    if found:
        _raise_api_error(found.get("error_code"), found.get("error"))


def _parse_json(text: str) -> list[_Record]:
    """fmt=3: an array of row objects, one bare row object, or an error object.

    SMSC's sibling methods answer a single item unwrapped and a list only for several,
    so a one-login account may well get ``{"login": ...}`` rather than ``[{...}]``.
    """
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
        _raise_json_error(document)
        return [("object", document)]
    if not isinstance(document, list):
        raise SmscReplyError(
            f"expected a JSON array of rows or one row object, got {type(document).__name__}"
        )
    for item in document:
        if isinstance(item, dict):
            _raise_json_error(item)
    records: list[_Record] = []
    for position, item in enumerate(document, start=1):
        if not isinstance(item, dict):
            raise SmscReplyError(
                f"row {position}: expected a JSON object, got {type(item).__name__}"
            )
        records.append((f"row {position}", item))
    return records


def _raise_json_error(document: Mapping[str, object]) -> None:
    if "error" in document or "error_code" in document:
        _raise_api_error(document.get("error_code"), document.get("error"))


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
                login=_login(fields),
                cnt=_count(fields),
                credit=_amount(fields, "credit"),
                debit=_amount(fields, "debit"),
                currency=_string(fields, "currency"),
            )
        except ValueError as exc:
            # StatRow quotes the bad value whole; cut it so a huge value is not echoed.
            raise SmscReplyValueError(f"{label}: {_clip(str(exc), 2 * _EXCERPT)}") from None
        if row.login in first_seen:
            raise SmscReplyValueError(f"{label}: login repeated from {first_seen[row.login]}")
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


def _login(fields: Mapping[str, object]) -> str:
    """A login as sent, minus layout whitespace; refused if it could not be a real login."""
    value = _field(fields, "login")
    if not isinstance(value, str):
        raise ValueError(f"login must be a string, got {_excerpt(value)}")
    # Only layout whitespace is trimmed: str.strip() would also eat control characters
    # such as U+001F and so hide a broken value instead of refusing it.
    login = value.strip(" \t\r\n")
    if len(login) > MAX_LOGIN_LENGTH:
        raise ValueError(f"login is {len(login)} characters long; at most {MAX_LOGIN_LENGTH}")
    for position, char in enumerate(login, start=1):
        category = unicodedata.category(char)
        if category[0] == "C" or category in ("Zl", "Zp"):
            kind = _CHAR_KINDS.get(category, "control character")
            raise ValueError(f"login holds {kind} U+{ord(char):04X} at character {position}")
    if login != login.strip():
        raise ValueError("login starts or ends with unusual whitespace")
    return login


_CHAR_KINDS = {
    "Cc": "control character",
    "Cf": "invisible format character",
    "Cs": "lone surrogate",
    "Co": "private-use character",
    "Cn": "unassigned character",
    "Zl": "line separator",
    "Zp": "paragraph separator",
}


def _count(fields: Mapping[str, object]) -> int:
    """Accept an integer or an integer string; 12.0 and "12.5" are not counts."""
    value = _field(fields, "cnt")
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and _COUNT.fullmatch(value.strip()):
        digits = value.strip()
        # More digits than any plausible count: no need to convert them to know.
        number = int(digits) if len(digits) <= 20 else MAX_CNT + 1
    if number is None or number < 0:
        shown = value if number is None else number
        raise ValueError(f"cnt must be an integer >= 0, got {_excerpt(shown)}")
    if number > MAX_CNT:
        raise ValueError(f"cnt {_excerpt(value)} is above the plausible maximum 10^12")
    return number


def _amount(fields: Mapping[str, object], name: str) -> Decimal:
    """Accept a JSON number or a plain numeric string, exactly as written, within bounds."""
    value = _field(fields, name)
    amount: Decimal | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        amount = Decimal(value)
    elif isinstance(value, Decimal) and value.is_finite():
        amount = value
    elif isinstance(value, str) and _AMOUNT.fullmatch(value.strip()):
        with contextlib.suppress(InvalidOperation):  # exponent beyond what Decimal holds
            amount = Decimal(value.strip())
    if amount is None:
        raise ValueError(f"{name} must be a finite decimal number, got {_excerpt(value)}")
    exponent = amount.as_tuple().exponent
    assert isinstance(exponent, int)  # finite
    if -exponent > MAX_AMOUNT_PLACES:
        raise ValueError(
            f"{name} {_excerpt(value)} has {-exponent} decimal places; at most {MAX_AMOUNT_PLACES}"
        )
    if amount and amount.adjusted() >= MAX_AMOUNT_DIGITS:
        raise ValueError(f"{name} {_excerpt(value)} is not below the plausible maximum 10^12")
    return amount


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
    """Keys in any case; json.loads keeps the last of repeated keys, and which 'cnt' is
    right is unknowable, so a repeat (``cnt`` and ``Cnt`` too) is refused."""
    result: dict[str, object] = {}
    for key, value in pairs:
        name = key.lower()
        if name in result:
            raise SmscReplyError(f"JSON object has key {_excerpt(key)} twice")
        result[name] = value
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
