"""``python -m smsc_hook.probe``: what SMSC really answers, one call per reply format.

No real ``get_stat`` reply is published, so the parser reads every layout the evidence
allows. This asks the account's own server once per ``fmt`` 0-3 for one closed day (at
most 4 calls, through the call ledger when the warehouse is reachable, else 21 s apart),
then prints per format the reply's shape with every value masked, whether our parser
accepted it and how many rows, and writes a redacted fixture: every value replaced by a
placeholder of the same type (logins by ``login-N``, amounts keep their decimal places,
error codes kept), no secret and no real login. Attach the fixtures to a bug report, or
drop them into ``tests/fixtures/replies/``: the parser tests read every file there.

Fixture names say what the parser made of the reply: ``NAME.fmtF.OUTCOME.EXT`` with
OUTCOME ``rowsN``, ``errorN`` or ``refused``. A reply we refused but should read: rename
it to the rows you expect, and the parser tests fail until the parser reads it.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from xml.sax.saxutils import unescape

import requests

from smsc_hook.exceptions import (
    SmscApiError,
    SmscAuthError,
    SmscConfigError,
    SmscError,
    SmscIpBlockedError,
    SmscReplyError,
)
from smsc_hook.parsing import parse_stat_reply

FORMATS = (0, 1, 2, 3)
FORMAT_NAMES = {0: "text", 1: "comma", 2: "xml", 3: "json"}
EXTENSIONS = {0: "txt", 1: "txt", 2: "xml", 3: "json"}
#: Without the ledger: SMSC takes 3 statistics calls a minute, one per 20 s; 1 s of margin.
UNPACED_GAP = 21.0
#: ``NAME.fmtF.OUTCOME.EXT``, as the parser tests read fixture names.
FIXTURE_NAME = re.compile(
    r"(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]*?)\.fmt(?P<fmt>[0-3])"
    r"\.(?P<outcome>rows[0-9]+|error[0-9]+|refused)\.(?P<ext>txt|xml|json)"
)
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,59}")
_INT = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_CURRENCY = re.compile(r"[A-Z]{3}")
_JSON_TOKEN = re.compile(
    r'"(?:[^"\\]|\\.)*"|-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?|[{}\[\]:,]'
    r"|true|false|null|\s+|."
)
_XML_TOKEN = re.compile(r"<\?.*?\?>|<!--.*?-->|<!\[CDATA\[.*?\]\]>|<[^>]*>|[^<]+|<", re.DOTALL)
_XML_ATTRIBUTE = re.compile(r"""([^\s=/>]+)(\s*=\s*)(?:"([^"]*)"|'([^']*)')""")
_TEXT_ERROR_LINE = re.compile(r"\s*ERROR\s*=", re.IGNORECASE)
_COMMA_ERROR_LINE = re.compile(r"(\s*0\s*,\s*-\s*[0-9]+)(.*)", re.DOTALL)
#: Values kept as sent: the error code decides what the reply means, and is no user data.
_KEPT_FIELDS = frozenset({"error_code"})
_CHARSET_PARAM = re.compile(r";\s*charset\s*=\s*([^;\s]+)", re.IGNORECASE)
_MAX_SHOWN_PATTERNS = 3


# --- the shape of a reply, every value masked ---------------------------------------------


def _value_class(text: str) -> str:
    """``int``, ``dec2`` (2 places), ``AAA`` (three capitals), ``empty`` or ``text``."""
    value = text.strip()
    if not value:
        return "empty"
    if _INT.fullmatch(value):
        return "int"
    if _DECIMAL.fullmatch(value):
        try:
            exponent = Decimal(value).as_tuple().exponent
        except InvalidOperation:
            return "text"
        return f"dec{max(-exponent, 0)}" if isinstance(exponent, int) else "text"
    if _CURRENCY.fullmatch(value):
        return "AAA"
    return "text"


def describe_shape(body: bytes, fmt: int) -> str:
    """One line: JSON types and keys, the XML tag tree or the text line patterns."""
    if not body.strip():
        return "empty body"
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return f"{len(body)} bytes, not valid UTF-8 at byte {exc.start}"
    describe = {0: _text_shape, 1: _text_shape, 2: _xml_shape, 3: _json_shape}[fmt]
    return f"{FORMAT_NAMES[fmt]}: {describe(text, fmt)}"


def _json_shape(text: str, fmt: int) -> str:
    try:
        document = json.loads(text, parse_float=Decimal, parse_int=Decimal)
    except (ValueError, RecursionError) as exc:
        at = f" at char {exc.pos}" if isinstance(exc, json.JSONDecodeError) else ""
        first = text.lstrip()[:1]
        return f"not JSON{at} ({len(text)} characters, first {first!r})"
    return _json_type(document, depth=0)


def _json_type(value: object, depth: int) -> str:
    if isinstance(value, dict):
        if depth >= 4:
            return "object{...}"
        return (
            "object{" + ", ".join(f"{k}:{_json_type(v, depth + 1)}" for k, v in value.items()) + "}"
        )
    if isinstance(value, list):
        if depth >= 4 or not value:
            return f"array[{len(value)}]"
        if all(isinstance(item, dict) for item in value):
            return f"array[{len(value)}] of {_merged_objects(value, depth + 1)}"
        items = sorted({_json_type(item, depth + 1) for item in value})
        return f"array[{len(value)}] of {' | '.join(items)}"
    if isinstance(value, str):
        return f"string<{_value_class(value)}>"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, Decimal):
        return f"number<{_value_class(str(value))}>"
    return "null"


def _merged_objects(items: list[dict[str, Any]], depth: int) -> str:
    """The objects of an array as one shape: per key the union of value types seen."""
    keys: dict[str, list[str]] = {}
    for item in items:
        for key, value in item.items():
            seen = keys.setdefault(key, [])
            kind = _json_type(value, depth)
            if kind not in seen:
                seen.append(kind)
    parts = []
    for key, kinds in keys.items():
        optional = "?" if any(key not in item for item in items) else ""
        parts.append(f"{key}{optional}:{'|'.join(sorted(kinds))}")
    return "object{" + ", ".join(parts) + "}"


def _xml_shape(text: str, fmt: int) -> str:
    import xml.etree.ElementTree as ET

    if re.search(r"<!\s*(?:DOCTYPE|ENTITY)", text, re.IGNORECASE):
        return "XML with a DTD or entity declaration (not parsed)"
    try:
        root = ET.fromstring(text)  # noqa: S314 - no DTD, so no entity expansion
    except ET.ParseError as exc:
        line, column = exc.position
        return f"not XML (invalid at line {line}, column {column})"
    return _xml_element(root, depth=0)


def _xml_element(element: Any, depth: int) -> str:
    tag = element.tag.rpartition("}")[2]
    attributes = "".join(f" @{name.rpartition('}')[2]}" for name in element.attrib)
    children = list(element)
    if not children:
        return f"<{tag}{attributes}>"
    if depth >= 4:
        return f"<{tag}{attributes}>[...]"
    return f"<{tag}{attributes}>[{_compressed([_xml_element(c, depth + 1) for c in children])}]"


def _compressed(parts: list[str]) -> str:
    """``a,b,a,b`` -> ``(a,b)x2``; ``a,a,a`` -> ``ax3``; runs collapse."""
    count = len(parts)
    for period in range(1, count // 2 + 1):
        if count % period == 0 and parts == parts[:period] * (count // period):
            unit = ",".join(parts[:period])
            return f"{unit}x{count // period}" if period == 1 else f"({unit})x{count // period}"
    runs: list[tuple[str, int]] = []
    for part in parts:
        if runs and runs[-1][0] == part:
            runs[-1] = (part, runs[-1][1] + 1)
        else:
            runs.append((part, 1))
    return ",".join(part if n == 1 else f"{part}x{n}" for part, n in runs)


def _text_shape(text: str, fmt: int) -> str:
    lines = [line for line in re.split(r"\r\n|\r|\n", text) if line.strip()]
    patterns: dict[str, int] = {}
    for line in lines:
        pattern = _text_pattern(line, fmt)
        patterns[pattern] = patterns.get(pattern, 0) + 1
    shown = [f'"{p}"' + (f"x{n}" if n > 1 else "") for p, n in patterns.items()]
    more = len(shown) - _MAX_SHOWN_PATTERNS
    listed = "; ".join(shown[:_MAX_SHOWN_PATTERNS]) + (f"; (+{more} more)" if more > 0 else "")
    newline = "CRLF" if "\r\n" in text else "LF"
    return f"{len(lines)} line(s), {newline}: {listed}"


def _text_pattern(line: str, fmt: int) -> str:
    parts = []
    for part in line.split(","):
        name, eq, value = part.partition("=")
        if eq and fmt == 0:
            masked = _error_pattern(value) if _is_error_name(name) else _mask_class(value)
            parts.append(f"{name.strip()} = {masked}")
        else:
            parts.append(_trailer_pattern(part))
    return ",".join(parts) if fmt == 1 else ", ".join(parts)


def _is_error_name(name: str) -> bool:
    return name.strip().lower() == "error"


def _error_pattern(value: str) -> str:
    """``3 (no money)`` -> ``<int> (<text>)``."""
    code, paren, _ = value.strip().partition("(")
    return f"{_mask_class(code)}" + (" (<text>)" if paren else "")


def _trailer_pattern(part: str) -> str:
    """``ID - 275`` keeps its name; anything else is one masked value."""
    match = re.fullmatch(r"\s*(ID)\s*-\s*(.*)", part)
    if match:
        return f"ID - {_mask_class(match[2])}"
    return _mask_class(part)


def _mask_class(value: str) -> str:
    return f"<{_value_class(value)}>"


# --- the redacted fixture: values replaced by placeholders of the same type -----------------


@dataclass
class _Placeholders:
    """Consistent stand-ins: the same login always becomes the same ``login-N``."""

    logins: dict[str, str] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)

    def value(self, raw: str, name: str | None) -> str:
        """``raw`` (as it sits in the body, spaces included) masked for field ``name``."""
        stripped = raw.strip()
        lead = raw[: len(raw) - len(raw.lstrip())]
        trail = raw[len(raw.rstrip()) :]
        return lead + self._masked(stripped, (name or "").strip().lower()) + trail

    def _masked(self, value: str, name: str) -> str:
        if not value or name in _KEPT_FIELDS:
            return value
        if name == "login":
            return self.logins.setdefault(value, f"login-{len(self.logins) + 1}")
        number = _masked_number(value)
        if number is not None:
            return number
        if _CURRENCY.fullmatch(value):
            return "XXX"
        if name == "error":
            return "masked error text"
        return self.texts.setdefault(value, f"text-{len(self.texts) + 1}")


def _masked_number(value: str) -> str | None:
    """``22.20`` -> ``7.00``, ``-3`` -> ``-7``, ``0.00`` -> ``0.00``: sign, zero, places kept."""
    if not _DECIMAL.fullmatch(value):
        return None
    try:
        number = Decimal(value)
    except InvalidOperation:
        return None
    exponent = number.as_tuple().exponent
    if not isinstance(exponent, int):
        return None
    places = max(-exponent, 0)
    sign = "-" if value.lstrip().startswith("-") else ""
    digit = "0" if number == 0 else "7"
    if "." not in value and places == 0:
        return f"{sign}{digit}"
    return f"{sign}{digit}." + "0" * places if places else f"{sign}{digit}.0"


def redact_reply(body: bytes, fmt: int, secrets: Sequence[str] = ()) -> bytes:
    """The reply with every value replaced, layout kept; ``secrets`` never survive."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        # Nothing readable to keep: the fixture records only that it was not UTF-8.
        return b"\xff" + b"x" * max(len(body) - 1, 0)
    placeholders = _Placeholders()
    redactor = {0: _redact_text, 1: _redact_comma, 2: _redact_xml, 3: _redact_json}[fmt]
    redacted = redactor(text, placeholders)
    for secret in secrets:
        if secret:
            redacted = redacted.replace(secret, "***")
    return redacted.encode("utf-8")


def _redact_json(text: str, placeholders: _Placeholders) -> str:
    pieces = [match.group() for match in _JSON_TOKEN.finditer(text)]
    out: list[str] = []
    key: str | None = None
    for index, piece in enumerate(pieces):
        following = next((t for t in pieces[index + 1 :] if not t.isspace()), "")
        if piece.startswith('"') and len(piece) >= 2:
            try:
                decoded = json.loads(piece)
            except ValueError:
                decoded = None
            if not isinstance(decoded, str):
                out.append('"masked"')
            elif following == ":":
                key = decoded
                out.append(piece)  # keys are structure
            else:
                out.append(json.dumps(placeholders.value(decoded, key), ensure_ascii=False))
        elif piece[:1] in "-0123456789" and piece not in ("-",):
            out.append(
                piece if (key or "").lower() in _KEPT_FIELDS else _masked_number(piece) or "0"
            )
        elif len(piece) == 1 and not piece.isspace() and piece not in "{}[]:,":
            out.append("x")  # a stray character of a broken body: masked too
        else:
            out.append(piece)
    return "".join(out)


def _redact_xml(text: str, placeholders: _Placeholders) -> str:
    out: list[str] = []
    open_tags: list[str] = []
    for match in _XML_TOKEN.finditer(text):
        piece = match.group()
        if piece.startswith(("<?", "<!")):
            out.append(piece if piece.startswith("<?") else "<!-- masked -->")
        elif piece.startswith("</"):
            if open_tags:
                open_tags.pop()
            out.append(piece)
        elif piece.startswith("<") and len(piece) > 1:
            name = re.match(r"<\s*([^\s/>]*)", piece)
            tag = (name.group(1) if name else "").rpartition(":")[2]

            def attribute(m: re.Match[str]) -> str:
                attr = m.group(1).rpartition(":")[2]
                quote = '"' if m.group(3) is not None else "'"
                raw = unescape(m.group(3) if m.group(3) is not None else m.group(4))
                return f"{m.group(1)}{m.group(2)}{quote}{placeholders.value(raw, attr)}{quote}"

            out.append(_XML_ATTRIBUTE.sub(attribute, piece))
            if not piece.endswith("/>"):
                open_tags.append(tag)
        elif piece == "<":
            out.append(piece)
        else:
            value = placeholders.value(unescape(piece), open_tags[-1] if open_tags else None)
            out.append(value if piece.strip() else piece)
    return "".join(out)


def _redact_text(text: str, placeholders: _Placeholders) -> str:
    lines = re.split(r"(\r\n|\r|\n)", text)
    out = []
    for line in lines:
        if not line.strip() or line in ("\r\n", "\r", "\n"):
            out.append(line)
            continue
        parts = []
        for part in line.split(","):
            name, eq, value = part.partition("=")
            if eq and _is_error_name(name):
                code, paren, _ = value.partition("(")
                parts.append(f"{name}{eq}{code}" + ("(masked error text)" if paren else ""))
            elif eq:
                parts.append(f"{name}{eq}{placeholders.value(value, name)}")
            else:
                match = re.fullmatch(r"(\s*ID\s*-\s*)(.*)", part)
                parts.append(
                    match[1] + placeholders.value(match[2], "id")
                    if match
                    else placeholders.value(part, None)
                )
        out.append(",".join(parts))
    return "".join(out)


def _redact_comma(text: str, placeholders: _Placeholders) -> str:
    lines = re.split(r"(\r\n|\r|\n)", text)
    names = ("login", "cnt", "credit", "debit", "currency")
    out = []
    for line in lines:
        error = _COMMA_ERROR_LINE.fullmatch(line)
        if error:
            trailer = ",".join(placeholders.value(p, None) for p in error[2].split(","))
            out.append(error[1] + trailer)
        elif not line.strip() or line in ("\r\n", "\r", "\n"):
            out.append(line)
        else:
            values = line.split(",")
            out.append(
                ",".join(
                    placeholders.value(v, names[i] if i < len(names) else None)
                    for i, v in enumerate(values)
                )
            )
    return "".join(out)


# --- what the parser makes of a body ---------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """The parser's answer to one body: rows, an API error or a refusal."""

    rows: int | None = None
    error_code: int | None = None
    refusal: str | None = None

    @property
    def outcome(self) -> str:
        """The fixture-name part: ``rows3``, ``error9`` or ``refused``."""
        if self.rows is not None:
            return f"rows{self.rows}"
        if self.error_code is not None:
            return f"error{self.error_code}"
        return "refused"

    def __str__(self) -> str:
        if self.rows is not None:
            return f"accepted, {self.rows} row(s)"
        if self.error_code is not None:
            return f"API error {self.error_code}"
        return f"refused: {self.refusal}"


def judge(body: bytes, fmt: int) -> Verdict:
    """Parse as the hook does (UTF-8, the charset the hook asks for)."""
    try:
        return Verdict(rows=len(parse_stat_reply(body, fmt, "utf-8")))
    except SmscApiError as exc:
        return Verdict(error_code=exc.code)
    except SmscReplyError as exc:
        return Verdict(refusal=str(exc))


def fixture_name(name: str, fmt: int, verdict: Verdict) -> str:
    return f"{name}.fmt{fmt}.{verdict.outcome}.{EXTENSIONS[fmt]}"


# --- the calls ---------------------------------------------------------------------------------


class _Tee:
    """Stands in for a response's ``raw`` stream and keeps a copy of what the hook reads.

    The hook reads the body itself (bounded in size and time); this only copies the chunks
    it pulls, so a refused reply can still be described and written as a fixture.
    """

    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self.chunks: list[bytes] = []

    def stream(self, *args: Any, **kwargs: Any) -> Iterator[bytes]:
        for chunk in self._raw.stream(*args, **kwargs):
            self.chunks.append(chunk)
            yield chunk

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


class _RecordingSession(requests.Session):
    """Asks for an unencoded reply and keeps what the hook read of the last one.

    ``SmscHook.fetch_stat`` returns the body only when the parser accepts it; the probe's
    point is the replies it refuses. (A hook API returning the redacted body of any reply
    would make this unnecessary.)
    """

    def __init__(self) -> None:
        super().__init__()
        self._tee: _Tee | None = None
        self._encoding = ""
        #: The charset the last reply declared in its Content-Type, if any.
        self.charset: str | None = None

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        # Compression is transport, not shape: unencoded, the chunks read are the body.
        request.headers["Accept-Encoding"] = "identity"
        self._tee = None
        response = super().send(request, **kwargs)
        self._encoding = response.headers.get("Content-Encoding", "").strip().lower()
        declared = _CHARSET_PARAM.search(response.headers.get("Content-Type", ""))
        self.charset = declared[1].strip("\"'") if declared else None
        self._tee = _Tee(response.raw)
        response.raw = self._tee
        return response

    def last_body(self) -> bytes | None:
        """What the hook read of the last reply; None if nothing, or it came compressed."""
        if self._tee is None or self._encoding not in ("", "identity"):
            return None
        return b"".join(self._tee.chunks)


@dataclass(frozen=True)
class ProbeResult:
    """One format's call: the masked shape, the parser's verdict, the fixture written."""

    fmt: int
    shape: str
    verdict: Verdict | None
    fixture: Path | None
    note: str = ""

    def line(self) -> str:
        verdict = "no reply" if self.verdict is None else str(self.verdict)
        parts = [f"fmt={self.fmt} {FORMAT_NAMES[self.fmt]}", self.shape, verdict]
        if self.fixture is not None:
            parts.append(f"fixture {self.fixture.name}")
        if self.note:
            parts.append(self.note)
        return " | ".join(parts)


Sleep = Callable[[float], None]


def run_probe(
    conn_id: str,
    day: date,
    out_dir: Path,
    *,
    name: str = "smsc",
    pacer: Any = None,
    formats: Sequence[int] = FORMATS,
    sleep: Sleep = time.sleep,
    gap: float = UNPACED_GAP,
) -> Iterator[ProbeResult]:
    """Call once per format (primary host only: a reserve would be another call) and yield
    each result as it comes. Without ``pacer`` the calls are ``gap`` (>= 21) s apart."""
    from smsc_hook.hook import SmscHook

    if pacer is None and gap < UNPACED_GAP:
        raise SmscConfigError(f"unpaced probe calls must be >= {UNPACED_GAP:g} s apart")
    if not _SAFE_NAME.fullmatch(name):
        raise SmscConfigError(f"fixture name {name!r} must match {_SAFE_NAME.pattern}")
    out_dir.mkdir(parents=True, exist_ok=True)
    base = SmscHook(conn_id).settings
    # Values are all replaced; a login can only survive as a key or tag name. Logins too
    # short to be told from structure (``a`` is in ``masked``) are left to that rule.
    hide = [*base.secrets, *(s for s in (base.login, base.account_name) if s and len(s) >= 4)]
    for index, fmt in enumerate(formats):
        if index and pacer is None:
            sleep(gap)
        session = _RecordingSession()
        hook = SmscHook(conn_id, pacer=pacer, session=session)
        hook.settings = replace(base, fmt=fmt, base_urls=base.base_urls[:1])
        failure: SmscError | None = None
        body: bytes | None = None
        rows: int | None = None
        try:
            reply = hook.fetch_stat(day, day)
            body, rows = reply.raw, len(reply.rows)
        except SmscError as exc:
            failure = exc
            # A transport fault leaves at most part of a body: nothing to describe.
            if isinstance(exc, SmscApiError | SmscReplyError):
                body = session.last_body()
        if body is not None:
            body = _as_utf8(body, session.charset)
        if body is None:
            reason = type(failure).__name__ if failure else "no body kept"
            yield ProbeResult(
                fmt, "no reply body", None, None, f"{reason}: {_hidden(failure, hide)}"
            )
        else:
            yield _record(body, fmt, out_dir, name, hide, rows)
        if isinstance(failure, SmscAuthError | SmscIpBlockedError):
            # More calls would only count toward SMSC's IP block (5 auth errors in 30 min).
            for rest in formats[index + 1 :]:
                yield ProbeResult(
                    rest, "not called", None, None, f"stopped after error {failure.code}"
                )
            return


def _as_utf8(body: bytes, charset: str | None) -> bytes:
    """The body in UTF-8 (fixtures and the parser tests read UTF-8), if it declared another."""
    if not charset:
        return body
    try:
        return body.decode(charset).encode("utf-8")
    except (LookupError, UnicodeError):
        return body  # kept as received; the verdict will say it does not decode


def _record(
    body: bytes, fmt: int, out_dir: Path, name: str, hide: Sequence[str], rows: int | None
) -> ProbeResult:
    # The hook's own verdict when it accepted the reply; else the parser's on the body.
    verdict = Verdict(rows=rows) if rows is not None else judge(body, fmt)
    fixture = redact_reply(body, fmt, hide)
    path = out_dir / fixture_name(name, fmt, verdict)
    path.write_bytes(fixture)
    again = judge(fixture, fmt)
    note = ""
    if again.outcome != verdict.outcome:
        note = f"the redacted fixture parses as {again.outcome}, not {verdict.outcome}"
    # The refusal quoted from the fixture names placeholders, never a real login.
    shown = verdict if verdict.refusal is None else replace(verdict, refusal=again.refusal)
    # Shape from the body itself (it shows only types, tags and names), scrubbed anyway.
    shape = _scrubbed(describe_shape(body, fmt), hide)
    return ProbeResult(fmt, shape, shown, path, note)


def _hidden(error: SmscError | None, hide: Sequence[str]) -> str:
    return _scrubbed(str(error) if error is not None else "", hide)


def _scrubbed(text: str, hide: Sequence[str]) -> str:
    for value in hide:
        text = text.replace(value, "***")
    return text


# --- the command -------------------------------------------------------------------------------


def _ledger(warehouse_conn_id: str, account: str, settings: Any) -> tuple[Any, Any, str]:
    """The ledger pacer if the warehouse answers and has the ledger, else why not."""
    from sqlalchemy import text
    from sqlalchemy.exc import ProgrammingError, SQLAlchemyError

    from smsc_hook.db import make_engine, warehouse_url
    from smsc_hook.pacing import LedgerPacer

    try:
        url = warehouse_url(warehouse_conn_id)
        if "connect_timeout" not in url.query:
            url = url.update_query_dict({"connect_timeout": "10"})
        engine = make_engine(url)
    except SmscConfigError as exc:
        return None, None, f"warehouse not configured ({exc})"
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1 FROM smsc.api_calls LIMIT 0"))
    except ProgrammingError:
        engine.dispose()
        return None, None, "warehouse has no call ledger yet (run python -m smsc_hook.bootstrap)"
    except SQLAlchemyError as exc:
        engine.dispose()
        return None, None, f"warehouse unreachable ({type(exc).__name__})"
    pacer = LedgerPacer(
        engine,
        account,
        limit=settings.rate,
        caller="probe",
        ip_block_pause=settings.ip_block_pause,
    )
    return pacer, engine, "through the call ledger (caller 'probe')"


def _closed_day(value: str | None, timezone: str) -> date:
    from smsc_hook.windows import zone

    today = datetime.now(zone(timezone)).date()
    if value is None:
        return today - timedelta(days=1)
    day = date.fromisoformat(value)
    if day >= today:
        raise SmscConfigError(
            f"--day {day.isoformat()} has not ended yet in {timezone}; pick one before {today}"
        )
    return day


def main(argv: list[str] | None = None, *, sleep: Sleep = time.sleep) -> int:
    from airflow.sdk.exceptions import AirflowNotFoundException

    from smsc_hook.hook import SmscHook
    from smsc_hook.settings import PipelineSettings

    parser = argparse.ArgumentParser(
        prog="python -m smsc_hook.probe",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--account", default="", help="name from SMSC_ACCOUNTS (default: the only one)"
    )
    parser.add_argument("--day", help="YYYY-MM-DD, a closed day (default: yesterday)")
    parser.add_argument("--out", type=Path, required=True, help="directory for the fixtures")
    parser.add_argument("--name", default="smsc", help="fixture name prefix (default smsc)")
    args = parser.parse_args(argv)
    # The pacer's "waiting for a slot" lines name the account; this output is meant to be
    # pasted into a bug report, so only the probe's own (masked) lines are printed.
    for name in ("smsc_hook", "airflow.task.hooks.smsc_hook"):
        logging.getLogger(name).setLevel(logging.WARNING)
    engine = None
    try:
        settings = PipelineSettings.from_env()
        accounts = settings.all_accounts()
        only = accounts[0] if len(accounts) == 1 and not args.account else None
        account = only or settings.account(args.account)
        day = _closed_day(args.day, settings.timezone)
        smsc = SmscHook(account.conn_id).settings
        pacer, engine, pacing = _ledger(settings.warehouse_conn_id, smsc.account, settings)
        if pacer is None:
            pacing = f"{pacing}; calls {UNPACED_GAP:g} s apart"
        print(
            f"probe: connection {account.conn_id!r} at {smsc.base_urls[0]}, day"
            f" {day.isoformat()}, fmt 0-3, {pacing}",
            flush=True,
        )
        results = run_probe(
            account.conn_id, day, args.out, name=args.name, pacer=pacer, sleep=sleep
        )
        for result in results:
            print(f"probe: {result.line()}", flush=True)
    except (SmscError, AirflowNotFoundException, ValueError) as exc:
        print(f"probe: {exc}", file=sys.stderr)
        return 1
    finally:
        if engine is not None:
            engine.dispose()
    print(f"probe: fixtures in {args.out} (values masked; no secret, no real login)")
    return 0


def read_fixture_name(path: Path) -> Mapping[str, str] | None:
    """The parts of a fixture's file name, or None if it does not follow the pattern."""
    match = FIXTURE_NAME.fullmatch(path.name)
    return match.groupdict() if match else None


if __name__ == "__main__":
    sys.exit(main())
