"""Reading MongoDB shell values: the tokens of shell text and the BSON values they build.

Numbers, strings (with JavaScript's escapes), regular expressions, and the shell's
constructors (`ObjectId()`, `ISODate()`, `new Date(y, m, d)`, `NumberLong()`, `BinData()`, ...)
become the BSON values pymongo sends. Every length is bounded before any conversion, so a
5,000-digit number or a 100,000-digit decimal is a parse error at its position, not a crash.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import datetime as dt
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, DecimalException
from typing import Any

from bson import Binary, Code, DBRef, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex, Timestamp

# The longest double written out in full has 309 digits before the point; nobody pastes one.
# Bounding the text keeps int() and float() from meeting a 5,000-digit literal.
MAX_NUMBER_CHARS = 100
# Decimal128 holds 34 significant digits; its text form with exponent stays well under this.
MAX_DECIMAL_CHARS = 100
# BSON documents stop at 16 MB; a single string literal of a million characters is already
# far beyond anything typed into a query.
MAX_STRING_CHARS = 1_000_000

INT32_RANGE = (-(2**31), 2**31 - 1)
INT64_RANGE = (-(2**63), 2**63 - 1)
REGEX_FLAGS = "imsxu"


class MongoParseError(Exception):
    """The text is not a supported shell statement; line and column are 1-based."""

    def __init__(self, message: str, line: int, column: int, expected: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column
        self.expected = expected

    def __str__(self) -> str:
        return f"line {self.line}, column {self.column}: {self.message}"


# --- tokens -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Token:
    kind: str  # ident | string | number | regex | punct | end
    value: Any
    start: int
    end: int
    text: str


_PUNCTUATION = "{}[](),:;.-+/"
# After these a '/' starts a regular expression rather than being an operator.
_BEFORE_VALUE = ("(", ",", ":", "[")
_QUOTES = {'"': '"', "'": "'", "`": "`", "\u201c": "\u201d", "\u2018": "\u2019"}
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "v": "\v", "0": "\0"}
# Slack and word processors turn spaces into no-break spaces, and web pages carry zero-width
# ones; between tokens they are all spaces.
_EXTRA_SPACES = "\u00a0\ufeff\u2028\u2029\u202f\u200b\u200c\u200d\u2060"
_SPACES = re.compile(f"[\\s{_EXTRA_SPACES}]+")
# Within a string, everything but its closing quote, a backslash, a new line (and, in a
# template string, '$') stands for itself.
_PLAIN_RUNS = {
    closing: re.compile(f"[^\\\\\\n{re.escape(closing)}{'$' if closing == '`' else ''}]+")
    for closing in _QUOTES.values()
}


# `\w` is exactly str.isalnum() plus '_'.
_IDENT_REST = re.compile(r"[\w$]*")
_DIGITS = re.compile("[0-9]*")


def _is_digit(ch: str) -> bool:
    # str.isdigit() accepts '²' and other digits int() and float() refuse.
    return len(ch) == 1 and "0" <= ch <= "9"


def _is_ident_start(ch: str) -> bool:
    return ch.isalpha() or ch in "_$"


def _is_ident_part(ch: str) -> bool:
    return ch.isalnum() or ch in "_$"


class Lexer:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.line_starts = [0] + [i + 1 for i, ch in enumerate(text) if ch == "\n"]

    def position(self, offset: int) -> tuple[int, int]:
        line = bisect.bisect_right(self.line_starts, offset)
        return line, offset - self.line_starts[line - 1] + 1

    def fail(self, offset: int, message: str, expected: str | None = None) -> MongoParseError:
        line, column = self.position(offset)
        return MongoParseError(message, line, column, expected)

    def next_token(self, previous: Token | None) -> Token:
        """The token after `previous`; what a '/' or '.' starts depends on what came before."""
        value_next = previous is not None and previous.kind == "punct"
        return self._next(
            regex_allowed=value_next and previous.value in _BEFORE_VALUE,
            dot_number_allowed=value_next and previous.value in (*_BEFORE_VALUE, "-", "+"),
        )

    def _skip_space_and_comments(self) -> None:
        text = self.text
        while self.pos < len(text):
            spaces = _SPACES.match(text, self.pos)
            if spaces:
                self.pos = spaces.end()
            elif text.startswith("//", self.pos):
                newline = text.find("\n", self.pos)
                self.pos = len(text) if newline < 0 else newline
            elif text.startswith("/*", self.pos):
                close = text.find("*/", self.pos + 2)
                if close < 0:
                    raise self.fail(self.pos, "unterminated comment: expected '*/'", "'*/'")
                self.pos = close + 2
            else:
                return

    def _next(self, regex_allowed: bool, dot_number_allowed: bool) -> Token:
        self._skip_space_and_comments()
        start = self.pos
        if start >= len(self.text):
            return Token("end", None, start, start, "")
        ch = self.text[start]
        if ch in _QUOTES:
            return self._string(_QUOTES[ch])
        # `.5` is a number, but in `items.0.qty` the '.' separates path parts.
        leading_dot = ch == "." and _is_digit(self.text[start + 1 : start + 2])
        if _is_digit(ch) or (leading_dot and dot_number_allowed):
            return self._number()
        if _is_ident_start(ch):
            self.pos = _IDENT_REST.match(self.text, start + 1).end()
            name = self.text[start : self.pos]
            return Token("ident", name, start, self.pos, name)
        if ch == "/" and regex_allowed:
            return self._regex()
        if ch in _PUNCTUATION:
            self.pos += 1
            return Token("punct", ch, start, self.pos, ch)
        raise self.fail(start, f"unexpected character {ch!r}")

    def _string(self, closing: str) -> Token:
        start = self.pos
        self.pos += 1
        text = self.text
        chars: list[str] = []
        plain = _PLAIN_RUNS[closing]
        while True:
            # Long runs of ordinary characters are taken in one step.
            run = plain.match(text, self.pos)
            if run:
                chars.append(run.group())
                self.pos = run.end()
            if self.pos >= len(text) or text[self.pos] == "\n":
                raise self.fail(
                    start,
                    f"unterminated string: expected a closing {closing}",
                    f"a closing {closing}",
                )
            ch = text[self.pos]
            if ch == closing:
                self.pos += 1
                value = "".join(chars)
                if len(value) > MAX_STRING_CHARS:
                    raise self.fail(
                        start,
                        f"string too long: expected at most {MAX_STRING_CHARS:,} characters",
                        f"a string of at most {MAX_STRING_CHARS:,} characters",
                    )
                return Token("string", value, start, self.pos, text[start : self.pos])
            if ch == "\\":
                chars.append(self._escape())
            elif closing == "`" and text.startswith("${", self.pos):
                raise self.fail(
                    self.pos,
                    "template placeholders ${...} are JavaScript, which is not run: write the "
                    "value itself",
                    "the value itself",
                )
            else:
                chars.append(ch)
                self.pos += 1

    def _escape(self) -> str:
        start = self.pos
        text = self.text
        code = text[start + 1 : start + 2]
        self.pos = start + 2
        if code in _ESCAPES:
            return _ESCAPES[code]
        if code == "\n":  # a backslash at the end of a line continues the string
            return ""
        if code in ("x", "u"):
            if code == "u" and text[self.pos : self.pos + 1] == "{":
                close = text.find("}", self.pos)
                digits = text[self.pos + 1 : close] if close > 0 else ""
                self.pos = close + 1 if close > 0 else len(text)
            else:
                width = 2 if code == "x" else 4
                digits = text[self.pos : self.pos + width]
                self.pos += width
                if len(digits) != width:
                    digits = ""
            try:
                if len(digits) > 6:
                    raise ValueError("beyond Unicode")
                return chr(int(digits, 16))
            except (ValueError, OverflowError):
                raise self.fail(
                    start, "invalid escape: expected hexadecimal digits", "hexadecimal digits"
                ) from None
        if code == "":
            raise self.fail(start, "unterminated string", "a closing quote")
        return code  # \' \" \\ \/ and JavaScript's "any other character stands for itself"

    def _number(self) -> Token:
        start = self.pos
        text = self.text
        if text.startswith(("0x", "0X"), start):
            self.pos += 2
            while self.pos < len(text) and text[self.pos] in "0123456789abcdefABCDEF":
                self.pos += 1
            if self.pos == start + 2:
                raise self.fail(start, "expected hexadecimal digits after 0x", "hexadecimal digits")
            self._check_number_length(start)
            value: int | float = int(text[start + 2 : self.pos], 16)
        else:
            self._digits()
            is_float = False
            # '.' belongs to the number only before a digit, so `items.0.qty` stays a path.
            if text[self.pos : self.pos + 1] == "." and _is_digit(
                text[self.pos + 1 : self.pos + 2]
            ):
                is_float = True
                self.pos += 1
                self._digits()
            if text[self.pos : self.pos + 1] in ("e", "E"):
                mark = self.pos
                self.pos += 1
                if text[self.pos : self.pos + 1] in ("+", "-"):
                    self.pos += 1
                if not _is_digit(text[self.pos : self.pos + 1]):
                    raise self.fail(mark, "expected digits in the exponent", "digits")
                self._digits()
                is_float = True
            self._check_number_length(start)
            literal = text[start : self.pos]
            value = float(literal) if is_float else int(literal)
        if self.pos < len(text) and _is_ident_part(text[self.pos]):
            raise self.fail(self.pos, f"unexpected character {text[self.pos]!r} after a number")
        return Token("number", value, start, self.pos, text[start : self.pos])

    def _check_number_length(self, start: int) -> None:
        if self.pos - start > MAX_NUMBER_CHARS:
            raise self.fail(
                start,
                f"number too long: expected at most {MAX_NUMBER_CHARS} characters",
                f"a number of at most {MAX_NUMBER_CHARS} characters",
            )

    def _digits(self) -> None:
        self.pos = _DIGITS.match(self.text, self.pos).end()

    def _regex(self) -> Token:
        start = self.pos
        text = self.text
        self.pos += 1
        in_class = False
        while True:
            if self.pos >= len(text) or text[self.pos] == "\n":
                raise self.fail(
                    start, "unterminated regular expression: expected a closing /", "'/'"
                )
            ch = text[self.pos]
            if ch == "\\":
                self.pos += 2
                continue
            if ch == "[":
                in_class = True
            elif ch == "]":
                in_class = False
            elif ch == "/" and not in_class:
                break
            self.pos += 1
        pattern = text[start + 1 : self.pos]
        self.pos += 1
        flags_start = self.pos
        while self.pos < len(text) and _is_ident_part(text[self.pos]):
            self.pos += 1
        flags = text[flags_start : self.pos]
        bad = [flag for flag in flags if flag not in REGEX_FLAGS]
        if bad:
            allowed = ", ".join(REGEX_FLAGS)
            offset = flags_start + flags.index(bad[0])
            raise self.fail(
                offset,
                f"expected regular expression flags from {allowed} but found {bad[0]!r}",
                f"regular expression flags from {allowed}",
            )
        return Token("regex", Regex(pattern, flags), start, self.pos, text[start : self.pos])


# --- values -------------------------------------------------------------------------------


def _date_from_text(text: str) -> dt.datetime:
    """ISODate("2024-05-01"), ISODate("2024-05-01T12:00:00Z"), ...; no offset means UTC.

    The shell reads a date without an offset as UTC too.
    """
    if len(text) > 64:
        raise ValueError("not a date")
    value = dt.datetime.fromisoformat(text.strip())
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def _now() -> dt.datetime:
    # BSON dates have millisecond precision.
    now = dt.datetime.now(dt.UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _int_in(value: Any, low_high: tuple[int, int]) -> int:
    if isinstance(value, str):
        if len(value) > MAX_NUMBER_CHARS:
            raise ValueError("too long")
        value = int(value.strip())
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError("not an integer")
    low, high = low_high
    if not low <= value <= high:
        raise ValueError("out of range")
    return value


def _object_id(*args: Any) -> ObjectId:
    if not args:
        return ObjectId()
    (value,) = args
    if not isinstance(value, str) or not ObjectId.is_valid(value) or len(value) != 24:
        raise ValueError("not an ObjectId")
    return ObjectId(value)


def _date(*args: Any) -> dt.datetime:
    if not args:
        return _now()
    if len(args) >= 2:
        # new Date(year, monthIndex[, day, hours, minutes, seconds, ms]): months count from
        # 0 as in JavaScript. The shell would use its own time zone; dbquery reads UTC.
        parts = [_int_in(part, (0, 9999)) for part in args]
        year, month, day, hour, minute, second, millis = parts + [1, 0, 0, 0, 0][len(parts) - 2 :]
        return dt.datetime(year, month + 1, day, hour, minute, second, millis * 1000, dt.UTC)
    (value,) = args
    if isinstance(value, str):
        return _date_from_text(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return dt.datetime.fromtimestamp(value / 1000, dt.UTC)
    raise ValueError("not a date")


def _number_long(value: Any) -> Int64:
    return Int64(_int_in(value, INT64_RANGE))


def _number_int(value: Any) -> int:
    return _int_in(value, INT32_RANGE)


def _double(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError("not a number")
    if isinstance(value, str) and len(value) > MAX_NUMBER_CHARS:
        raise ValueError("too long")
    return float(value)


def _number_decimal(value: Any) -> Decimal128:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError("not a decimal")
    text = str(value).strip()
    if len(text) > MAX_DECIMAL_CHARS:
        raise ValueError("too long")
    try:
        return Decimal128(Decimal(text))
    except DecimalException:
        # Decimal128 refuses what it cannot hold exactly (more than 34 digits, huge exponents).
        raise ValueError("not a decimal") from None


def _timestamp(*args: Any) -> Timestamp:
    if len(args) == 1:
        (spec,) = args
        if not isinstance(spec, dict) or set(spec) != {"t", "i"}:
            raise ValueError("not a timestamp")
        args = (spec["t"], spec["i"])
    seconds, increment = args
    return Timestamp(_int_in(seconds, (0, 2**32 - 1)), _int_in(increment, (0, 2**32 - 1)))


def _uuid(value: Any) -> Binary:
    if not isinstance(value, str) or len(value) > 64:
        raise ValueError("not a UUID")
    return Binary.from_uuid(uuid.UUID(value))


def _subtype(value: Any) -> int:
    return _int_in(value, (0, 255))


def _bin_data(subtype: Any, data: Any) -> Binary:
    if not isinstance(data, str):
        raise ValueError("not base64")
    try:
        return Binary(base64.b64decode(data, validate=True), _subtype(subtype))
    except binascii.Error:
        raise ValueError("not base64") from None


def _hex_data(subtype: Any, data: Any) -> Binary:
    if not isinstance(data, str):
        raise ValueError("not hex")
    return Binary(bytes.fromhex(data), _subtype(subtype))


def _md5(data: Any) -> Binary:
    if not isinstance(data, str) or len(data) != 32:
        raise ValueError("not an MD5 digest")
    return Binary(bytes.fromhex(data), 5)


def _db_ref(collection: Any, id_: Any, database: Any = None) -> DBRef:
    if not isinstance(collection, str) or not (database is None or isinstance(database, str)):
        raise ValueError("not a DBRef")
    return DBRef(collection, id_, database)


def _code(source: Any) -> Code:
    if not isinstance(source, str):
        raise ValueError("not code")
    return Code(source)


def _regexp(pattern: Any, flags: Any = "") -> Regex:
    if isinstance(pattern, Regex) and flags == "":
        return pattern
    if not isinstance(pattern, str) or not isinstance(flags, str):
        raise ValueError("not a regular expression")
    if any(flag not in REGEX_FLAGS for flag in flags):
        raise ValueError("bad flags")
    return Regex(pattern, flags)


@dataclass(frozen=True)
class _Constructor:
    build: Callable[..., Any]
    arities: tuple[int, ...]
    expected: str  # what the arguments should be, for error messages


_DATE_EXPECTED = (
    'an ISO-8601 date such as "2024-05-01T12:00:00Z", milliseconds, '
    "or year, month (from 0), day[, hours, minutes, seconds, ms]"
)
CONSTRUCTORS: dict[str, _Constructor] = {
    "ObjectId": _Constructor(
        _object_id, (0, 1), 'a 24-character hex string such as "65a1f0c2e4b0a1b2c3d4e5f6"'
    ),
    "ISODate": _Constructor(_date, (0, 1), 'an ISO-8601 date such as "2024-05-01T12:00:00Z"'),
    "Date": _Constructor(_date, (0, 1, 2, 3, 4, 5, 6, 7), _DATE_EXPECTED),
    "NumberLong": _Constructor(_number_long, (1,), "a 64-bit integer"),
    "Long": _Constructor(_number_long, (1,), "a 64-bit integer"),
    "NumberInt": _Constructor(_number_int, (1,), "a 32-bit integer"),
    "Int32": _Constructor(_number_int, (1,), "a 32-bit integer"),
    "Double": _Constructor(_double, (1,), "a number"),
    "NumberDecimal": _Constructor(_number_decimal, (1,), 'a decimal number such as "12.50"'),
    "Decimal128": _Constructor(_number_decimal, (1,), 'a decimal number such as "12.50"'),
    "Timestamp": _Constructor(_timestamp, (1, 2), "seconds and an increment, or {t: ..., i: ...}"),
    "UUID": _Constructor(_uuid, (1,), 'a UUID such as "123e4567-e89b-12d3-a456-426614174000"'),
    "BinData": _Constructor(_bin_data, (2,), "a subtype (0-255) and base64 text"),
    "HexData": _Constructor(_hex_data, (2,), "a subtype (0-255) and hexadecimal text"),
    "MD5": _Constructor(_md5, (1,), "32 hexadecimal digits"),
    "MinKey": _Constructor(MinKey, (0,), "no arguments"),
    "MaxKey": _Constructor(MaxKey, (0,), "no arguments"),
    "DBRef": _Constructor(_db_ref, (2, 3), "a collection name, an id and an optional database"),
    # Code is a value like any other: it is stored or compared, never run by dbquery.
    "Code": _Constructor(_code, (1,), "JavaScript source as a string"),
    "RegExp": _Constructor(_regexp, (1, 2), f"a pattern and flags from {REGEX_FLAGS}"),
}
LITERALS: dict[str, Any] = {
    "true": True,
    "false": False,
    "null": None,
    "undefined": None,
    "Infinity": float("inf"),
    "NaN": float("nan"),
    "MinKey": MinKey(),
    "MaxKey": MaxKey(),
}


def clamp(value: int | float) -> int | float:
    """JavaScript numbers beyond 64-bit integers are doubles."""
    if isinstance(value, int) and not INT64_RANGE[0] <= value <= INT64_RANGE[1]:
        return float(value)
    return value
