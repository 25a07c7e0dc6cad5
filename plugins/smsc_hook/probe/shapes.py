"""What a reply looks like with every value masked, the redacted fixture, and what our
parser makes of it: pure functions of the bytes, no I/O."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from xml.sax.saxutils import unescape

from smsc_hook.client.exceptions import (
    SmscApiError,
    SmscReplyError,
)
from smsc_hook.client.parsing import STAT, parse_reply

FORMATS = (0, 1, 2, 3)
FORMAT_NAMES = {0: "text", 1: "comma", 2: "xml", 3: "json"}
EXTENSIONS = {0: "txt", 1: "txt", 2: "xml", 3: "json"}
#: ``NAME.fmtF.OUTCOME.EXT``, as the parser tests read fixture names.
FIXTURE_NAME = re.compile(
    r"(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]*?)\.fmt(?P<fmt>[0-3])"
    r"\.(?P<outcome>rows[0-9]+|error[0-9]+|refused)\.(?P<ext>txt|xml|json)"
)
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
    #: Fields the rows carried besides login, cnt, credit, debit, currency: read past,
    #: never stored, shown so a first contact says what else SMSC sends.
    extra_fields: tuple[str, ...] = ()

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
            extra = ", ".join(self.extra_fields)
            return f"accepted, {self.rows} row(s)" + (
                f"; extra field(s) not stored: {extra}" if extra else ""
            )
        if self.error_code is not None:
            return f"API error {self.error_code}"
        return f"refused: {self.refusal}"


def judge(body: bytes, fmt: int, source: str = STAT) -> Verdict:
    """Parse as the hook does (UTF-8, the charset the hook asks for); ``source`` is
    ``get_stat`` or ``subclients`` (users.php), which reads error codes its own way."""
    try:
        parsed = parse_reply(body, fmt, "utf-8", source=source)
        return Verdict(rows=len(parsed.rows), extra_fields=parsed.extra_fields)
    except SmscApiError as exc:
        return Verdict(error_code=exc.code)
    except SmscReplyError as exc:
        return Verdict(refusal=str(exc))


def fixture_name(name: str, fmt: int, verdict: Verdict) -> str:
    return f"{name}.fmt{fmt}.{verdict.outcome}.{EXTENSIONS[fmt]}"


def read_fixture_name(path: Path) -> Mapping[str, str] | None:
    """The parts of a fixture's file name, or None if it does not follow the pattern."""
    match = FIXTURE_NAME.fullmatch(path.name)
    return match.groupdict() if match else None
