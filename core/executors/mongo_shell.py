"""The MongoDB shell syntax people paste, parsed into pymongo calls.

`db.orders.find({status: 'open'}, {total: 1}).sort({total: -1}).limit(5)` becomes
`("find", ({"status": "open"}, {"total": 1}), {"sort": [("total", -1)], "limit": 5})`.

The text is tokenized and parsed by hand (recursive descent); nothing is ever evaluated as
code, so a pasted script can only name the operations listed in `METHODS`. Values follow the
shell's relaxed JSON: unquoted keys, single or double quotes, trailing commas, comments,
`ObjectId()`, `ISODate()`, `NumberLong()`, `/regex/flags` and friends.
"""

from __future__ import annotations

import bisect
import datetime as dt
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from bson import Binary, Decimal128, Int64, ObjectId, Regex, Timestamp

# BSON documents may nest at most 100 levels; refusing deeper input also keeps the
# recursive descent far from Python's recursion limit.
MAX_NESTING = 100

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


# --- statements and methods ---------------------------------------------------------------


@dataclass(frozen=True)
class _Param:
    name: str  # how errors name it: "the filter", "the pipeline"
    shape: str  # document | documents | update | pipeline | field | options
    required: bool = False


@dataclass(frozen=True)
class _Method:
    pymongo_name: str
    kind: str  # read | write
    params: tuple[_Param, ...]
    options: Mapping[str, str] = field(default_factory=dict)  # shell option -> pymongo kwarg
    cursor: bool = False  # returns a cursor, so .sort()/.limit()/... may follow


_FILTER = _Param("the filter", "document")
_REQUIRED_FILTER = _Param("the filter", "document", required=True)
_PROJECTION = _Param("the projection", "document")
_OPTIONS = _Param("the options", "options")
_WRITE_OPTIONS = {"comment": "comment", "bypassDocumentValidation": "bypass_document_validation"}
_MATCH_OPTIONS = {"collation": "collation", "hint": "hint", "let": "let", "comment": "comment"}
_UPDATE_OPTIONS = {
    **_WRITE_OPTIONS,
    **_MATCH_OPTIONS,
    "upsert": "upsert",
    "arrayFilters": "array_filters",
}
_REPLACE_OPTIONS = {key: value for key, value in _UPDATE_OPTIONS.items() if key != "arrayFilters"}

METHODS: dict[str, _Method] = {
    "find": _Method("find", "read", (_FILTER, _PROJECTION), cursor=True),
    "findOne": _Method("find_one", "read", (_FILTER, _PROJECTION)),
    "aggregate": _Method(
        "aggregate",
        "read",
        (_Param("the pipeline", "pipeline", required=True), _OPTIONS),
        {
            "allowDiskUse": "allowDiskUse",
            "batchSize": "batchSize",
            "collation": "collation",
            "comment": "comment",
            "hint": "hint",
            "let": "let",
        },
        cursor=True,
    ),
    "countDocuments": _Method(
        "count_documents",
        "read",
        (_FILTER, _OPTIONS),
        {
            "limit": "limit",
            "skip": "skip",
            "hint": "hint",
            "collation": "collation",
            "comment": "comment",
        },
    ),
    "estimatedDocumentCount": _Method(
        "estimated_document_count", "read", (_OPTIONS,), {"comment": "comment"}
    ),
    "distinct": _Method(
        "distinct",
        "read",
        (_Param("the field name", "field", required=True), _FILTER, _OPTIONS),
        {"collation": "collation", "comment": "comment", "hint": "hint"},
    ),
    "insertOne": _Method(
        "insert_one",
        "write",
        (_Param("the new document", "document", required=True), _OPTIONS),
        _WRITE_OPTIONS,
    ),
    "insertMany": _Method(
        "insert_many",
        "write",
        (_Param("the documents to insert", "documents", required=True), _OPTIONS),
        {**_WRITE_OPTIONS, "ordered": "ordered"},
    ),
    "updateOne": _Method(
        "update_one",
        "write",
        (_REQUIRED_FILTER, _Param("the update", "update", required=True), _OPTIONS),
        _UPDATE_OPTIONS,
    ),
    "updateMany": _Method(
        "update_many",
        "write",
        (_REQUIRED_FILTER, _Param("the update", "update", required=True), _OPTIONS),
        _UPDATE_OPTIONS,
    ),
    "replaceOne": _Method(
        "replace_one",
        "write",
        (_REQUIRED_FILTER, _Param("the replacement document", "document", required=True), _OPTIONS),
        _REPLACE_OPTIONS,
    ),
    "deleteOne": _Method("delete_one", "write", (_REQUIRED_FILTER, _OPTIONS), _MATCH_OPTIONS),
    "deleteMany": _Method("delete_many", "write", (_REQUIRED_FILTER, _OPTIONS), _MATCH_OPTIONS),
}

# Cursor methods people chain after find(); pretty() and toArray() only change how the shell
# prints, so they are accepted and dropped.
_FIND_MODIFIERS = ("sort", "limit", "skip", "projection", "hint", "collation", "comment")
_DISPLAY_ONLY_MODIFIERS = ("pretty", "toArray")
# aggregate() stages that write their output to a collection.
_WRITING_STAGES = ("$out", "$merge")


@dataclass(frozen=True)
class MongoStatement:
    collection: str
    method: str  # the shell's name: find, insertOne, countDocuments, ...
    args: tuple  # the parsed arguments, as written
    modifiers: tuple  # cursor chain: (("sort", ({"b": -1},)), ("limit", (5,)))
    line: int
    column: int
    text: str  # the statement's source text

    @property
    def kind(self) -> str:
        """read or write; an aggregate() with $out or $merge writes."""
        if self.method == "aggregate" and self.args:
            stages = self.args[0]
            if any(
                isinstance(stage, dict) and stage.keys() & set(_WRITING_STAGES) for stage in stages
            ):
                return "write"
        return METHODS[self.method].kind


def parse(text: str) -> list[MongoStatement]:
    """Every statement of `text` (separated by ';' or new lines), in order."""
    return _Parser(text).statements()


def pymongo_call(stmt: MongoStatement) -> tuple[str, tuple, dict[str, Any]]:
    """The Collection method name, positional and keyword arguments that run `stmt`."""
    spec = METHODS[stmt.method]
    args = list(stmt.args)
    options: dict[str, Any] = {}
    if args and spec.params[len(args) - 1].shape == "options":
        options = {spec.options[key]: value for key, value in args.pop().items()}
    defaults: dict[str, tuple] = {
        "find": ({}, None),
        "findOne": ({}, None),
        "countDocuments": ({},),
        "distinct": (None, {}),
        "estimatedDocumentCount": (),
    }
    if stmt.method in defaults:
        wanted = defaults[stmt.method]
        args += list(wanted[len(args) :])
    if stmt.method == "find":
        args, options = _apply_find_modifiers(args, options, stmt.modifiers)
    return spec.pymongo_name, tuple(args), options


def _apply_find_modifiers(
    args: list, options: dict[str, Any], modifiers: tuple
) -> tuple[list, dict[str, Any]]:
    for name, (value,) in modifiers:
        if name == "projection":
            args[1] = value
        elif name in ("sort", "hint") and isinstance(value, dict):
            # pymongo wants an ordered list of (key, direction) pairs.
            options[name] = list(value.items())
        else:
            options[name] = value
    return args, options


# --- tokens -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Token:
    kind: str  # ident | string | number | regex | punct | end
    value: Any
    start: int
    end: int
    text: str


_PUNCTUATION = "{}[](),:;.-+/"
# After these a '/' starts a regular expression rather than being an operator.
_BEFORE_VALUE = ("(", ",", ":", "[")
_QUOTES = {'"': '"', "'": "'", "\u201c": "\u201d", "\u2018": "\u2019"}
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "v": "\v", "0": "\0"}
# Slack and word processors turn spaces into no-break spaces; they are still spaces.
_EXTRA_SPACES = "\u00a0\ufeff\u2028\u2029\u202f"


def _is_ident_start(ch: str) -> bool:
    return ch.isalpha() or ch in "_$"


def _is_ident_part(ch: str) -> bool:
    return ch.isalnum() or ch in "_$"


class _Lexer:
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

    def next_token(self, previous: _Token | None) -> _Token:
        """The token after `previous`; what a '/' or '.' starts depends on what came before."""
        value_next = previous is not None and previous.kind == "punct"
        return self._next(
            regex_allowed=value_next and previous.value in _BEFORE_VALUE,
            dot_number_allowed=value_next and previous.value in (*_BEFORE_VALUE, "-", "+"),
        )

    def _skip_space_and_comments(self) -> None:
        text = self.text
        while self.pos < len(text):
            ch = text[self.pos]
            if ch.isspace() or ch in _EXTRA_SPACES:
                self.pos += 1
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

    def _next(self, regex_allowed: bool, dot_number_allowed: bool) -> _Token:
        self._skip_space_and_comments()
        start = self.pos
        if start >= len(self.text):
            return _Token("end", None, start, start, "")
        ch = self.text[start]
        if ch in _QUOTES:
            return self._string(_QUOTES[ch])
        # `.5` is a number, but in `items.0.qty` the '.' separates path parts.
        leading_dot = ch == "." and self.text[start + 1 : start + 2].isdigit()
        if ch.isdigit() or (leading_dot and dot_number_allowed):
            return self._number()
        if _is_ident_start(ch):
            while self.pos < len(self.text) and _is_ident_part(self.text[self.pos]):
                self.pos += 1
            name = self.text[start : self.pos]
            return _Token("ident", name, start, self.pos, name)
        if ch == "/" and regex_allowed:
            return self._regex()
        if ch in _PUNCTUATION:
            self.pos += 1
            return _Token("punct", ch, start, self.pos, ch)
        raise self.fail(start, f"unexpected character {ch!r}")

    def _string(self, closing: str) -> _Token:
        start = self.pos
        self.pos += 1
        text = self.text
        chars: list[str] = []
        while True:
            if self.pos >= len(text) or text[self.pos] == "\n":
                raise self.fail(
                    start,
                    f"unterminated string: expected a closing {closing}",
                    f"a closing {closing}",
                )
            ch = text[self.pos]
            if ch == closing:
                self.pos += 1
                return _Token("string", "".join(chars), start, self.pos, text[start : self.pos])
            if ch == "\\":
                chars.append(self._escape())
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
                self.pos = close + 1
            else:
                width = 2 if code == "x" else 4
                digits = text[self.pos : self.pos + width]
                self.pos += width
                if len(digits) != width:
                    digits = ""
            try:
                return chr(int(digits, 16))
            except ValueError:
                raise self.fail(
                    start, "invalid escape: expected hexadecimal digits", "hexadecimal digits"
                ) from None
        if code == "":
            raise self.fail(start, "unterminated string", "a closing quote")
        return code  # \' \" \\ \/ and JavaScript's "any other character stands for itself"

    def _number(self) -> _Token:
        start = self.pos
        text = self.text
        if text.startswith(("0x", "0X"), start):
            self.pos += 2
            while self.pos < len(text) and text[self.pos] in "0123456789abcdefABCDEF":
                self.pos += 1
            if self.pos == start + 2:
                raise self.fail(start, "expected hexadecimal digits after 0x", "hexadecimal digits")
            value: int | float = int(text[start + 2 : self.pos], 16)
        else:
            self._digits()
            is_float = False
            # '.' belongs to the number only before a digit, so `items.0.qty` stays a path.
            if text[self.pos : self.pos + 1] == "." and text[self.pos + 1 : self.pos + 2].isdigit():
                is_float = True
                self.pos += 1
                self._digits()
            if text[self.pos : self.pos + 1] in ("e", "E"):
                mark = self.pos
                self.pos += 1
                if text[self.pos : self.pos + 1] in ("+", "-"):
                    self.pos += 1
                if not text[self.pos : self.pos + 1].isdigit():
                    raise self.fail(mark, "expected digits in the exponent", "digits")
                self._digits()
                is_float = True
            literal = text[start : self.pos]
            value = float(literal) if is_float else int(literal)
        if self.pos < len(text) and _is_ident_part(text[self.pos]):
            raise self.fail(self.pos, f"unexpected character {text[self.pos]!r} after a number")
        return _Token("number", value, start, self.pos, text[start : self.pos])

    def _digits(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isdigit():
            self.pos += 1

    def _regex(self) -> _Token:
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
        return _Token("regex", Regex(pattern, flags), start, self.pos, text[start : self.pos])


# --- values -------------------------------------------------------------------------------


def _date_from_text(text: str) -> dt.datetime:
    """ISODate("2024-05-01"), ISODate("2024-05-01T12:00:00Z"), ...; no offset means UTC.

    The shell reads a date without an offset as UTC too.
    """
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


def _number_decimal(value: Any) -> Decimal128:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError("not a decimal")
    try:
        return Decimal128(Decimal(str(value).strip()))
    except InvalidOperation:
        raise ValueError("not a decimal") from None


def _timestamp(seconds: Any, increment: Any) -> Timestamp:
    return Timestamp(_int_in(seconds, (0, 2**32 - 1)), _int_in(increment, (0, 2**32 - 1)))


def _uuid(value: Any) -> Binary:
    if not isinstance(value, str):
        raise ValueError("not a UUID")
    return Binary.from_uuid(uuid.UUID(value))


@dataclass(frozen=True)
class _Constructor:
    build: Callable[..., Any]
    arities: tuple[int, ...]
    expected: str  # what the arguments should be, for error messages


_CONSTRUCTORS: dict[str, _Constructor] = {
    "ObjectId": _Constructor(
        _object_id, (0, 1), 'a 24-character hex string such as "65a1f0c2e4b0a1b2c3d4e5f6"'
    ),
    "ISODate": _Constructor(_date, (0, 1), 'an ISO-8601 date such as "2024-05-01T12:00:00Z"'),
    "Date": _Constructor(
        _date, (0, 1), 'an ISO-8601 date such as "2024-05-01T12:00:00Z" or milliseconds'
    ),
    "NumberLong": _Constructor(_number_long, (1,), "a 64-bit integer"),
    "Long": _Constructor(_number_long, (1,), "a 64-bit integer"),
    "NumberInt": _Constructor(_number_int, (1,), "a 32-bit integer"),
    "Int32": _Constructor(_number_int, (1,), "a 32-bit integer"),
    "NumberDecimal": _Constructor(_number_decimal, (1,), 'a decimal number such as "12.50"'),
    "Decimal128": _Constructor(_number_decimal, (1,), 'a decimal number such as "12.50"'),
    "Timestamp": _Constructor(_timestamp, (2,), "seconds and an increment"),
    "UUID": _Constructor(_uuid, (1,), 'a UUID such as "123e4567-e89b-12d3-a456-426614174000"'),
}
_LITERALS: dict[str, Any] = {
    "true": True,
    "false": False,
    "null": None,
    "undefined": None,
    "Infinity": float("inf"),
    "NaN": float("nan"),
}


# --- parser -------------------------------------------------------------------------------


def _describe(token: _Token) -> str:
    if token.kind == "end":
        return "end of input"
    text = token.text if len(token.text) <= 30 else token.text[:29] + "…"
    return f"'{text}'" if token.kind in ("punct", "ident", "number") else text


def _shape_ok(shape: str, value: Any) -> bool:
    def is_documents(items: Any) -> bool:
        return isinstance(items, list) and all(isinstance(item, dict) for item in items)

    checks: dict[str, Callable[[Any], bool]] = {
        "document": lambda v: isinstance(v, dict),
        "options": lambda v: isinstance(v, dict),
        "documents": is_documents,
        "pipeline": is_documents,
        "update": lambda v: isinstance(v, dict) or is_documents(v),
        "field": lambda v: isinstance(v, str) and v != "",
    }
    return checks[shape](value)


_SHAPE_WORDS = {
    "document": "a document {...}",
    "options": "a document {...}",
    "documents": "an array of documents [{...}, ...]",
    "pipeline": "an array of stages [{...}, ...]",
    "update": "a document {...} or an update pipeline [{...}, ...]",
    "field": "a field name in quotes",
}


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.lexer = _Lexer(text)
        # Tokens are read on demand, so the first problem in reading order is the one reported.
        self.tokens: list[_Token] = []
        self.pos = 0
        self.depth = 0

    # -- token helpers

    def peek(self, ahead: int = 0) -> _Token:
        while len(self.tokens) <= self.pos + ahead and not (
            self.tokens and self.tokens[-1].kind == "end"
        ):
            self.tokens.append(self.lexer.next_token(self.tokens[-1] if self.tokens else None))
        return self.tokens[min(self.pos + ahead, len(self.tokens) - 1)]

    def advance(self) -> _Token:
        token = self.peek()
        self.pos = min(self.pos + 1, len(self.tokens) - 1) if token.kind == "end" else self.pos + 1
        return token

    def is_punct(self, value: str, ahead: int = 0) -> bool:
        token = self.peek(ahead)
        return token.kind == "punct" and token.value == value

    def fail(self, token: _Token, expected: str, message: str | None = None) -> MongoParseError:
        text = message or f"expected {expected} but found {_describe(token)}"
        return self.lexer.fail(token.start, text, expected)

    def expect_punct(self, value: str, expected: str | None = None) -> _Token:
        if not self.is_punct(value):
            raise self.fail(self.peek(), expected or f"'{value}'")
        return self.advance()

    # -- statements

    def statements(self) -> list[MongoStatement]:
        out: list[MongoStatement] = []
        while True:
            while self.is_punct(";"):
                self.advance()
            if self.peek().kind == "end":
                break
            out.append(self.statement())
            last = self.tokens[self.pos - 1]
            following = self.peek()
            if following.kind == "end" or self.is_punct(";"):
                continue
            if self.lexer.position(following.start)[0] > self.lexer.position(last.end)[0]:
                continue
            raise self.fail(following, "';' or a new line")
        if not out:
            raise self.fail(self.peek(), "a statement such as db.collection.find({})")
        return out

    def statement(self) -> MongoStatement:
        first = self.peek()
        if first.kind != "ident" or first.value != "db":
            raise self.fail(first, "a statement starting with 'db.'")
        self.advance()
        collection = self.collection()
        method_token = self.advance()
        method = method_token.value
        spec = METHODS.get(method)
        if spec is None:
            raise self.fail(
                method_token,
                f"one of {', '.join(METHODS)}",
                f"unknown method {_describe(method_token)}: expected one of {', '.join(METHODS)}",
            )
        args = self.method_args(spec)
        modifiers = self.modifiers(spec)
        line, column = self.lexer.position(first.start)
        end = self.tokens[self.pos - 1].end
        return MongoStatement(
            collection=collection,
            method=method,
            args=args,
            modifiers=modifiers,
            line=line,
            column=column,
            text=self.text[first.start : end],
        )

    def collection(self) -> str:
        """After `db`: `.name.`, `.getCollection("name").` or `["name"].`; the method is next."""
        where = 'a collection: db.<collection>, db.getCollection("name") or db["name"]'
        if self.is_punct("["):
            self.advance()
            name_token = self.string_token("a collection name in quotes")
            self.expect_punct("]")
            return self.collection_end(name_token)
        self.expect_punct(".", where)
        if self.peek().value == "getCollection" and self.is_punct("(", 1):
            self.advance()
            self.advance()
            name_token = self.string_token("a collection name in quotes")
            self.expect_punct(")")
            return self.collection_end(name_token)
        # db.a.b.find(): every name before the one followed by '(' is part of the collection.
        segments: list[_Token] = []
        while True:
            token = self.peek()
            if token.kind != "ident":
                raise self.fail(token, "a collection name" if not segments else "a method name")
            if self.is_punct("(", 1):
                if not segments:
                    raise self.fail(token, where)
                break
            segments.append(self.advance())
            if not self.is_punct("."):
                expected = "'('" if token.value in METHODS else "'.' and a method such as find"
                raise self.fail(self.peek(), expected)
            self.advance()
        name = ".".join(segment.value for segment in segments)
        self.check_collection_name(name, segments[0])
        return name

    def collection_end(self, name_token: _Token) -> str:
        self.check_collection_name(name_token.value, name_token)
        self.expect_punct(".", "'.' and a method such as find")
        if self.peek().kind != "ident":
            raise self.fail(self.peek(), "a method name")
        return name_token.value

    def check_collection_name(self, name: str, token: _Token) -> None:
        if (
            not name
            or "$" in name
            or "\0" in name
            or ".." in name
            or name[0] == "."
            or name[-1] == "."
        ):
            raise self.fail(token, "a collection name (not empty, without '$')")

    def string_token(self, expected: str) -> _Token:
        token = self.peek()
        if token.kind != "string":
            raise self.fail(token, expected)
        return self.advance()

    def call_args(self) -> list[tuple[_Token, Any]]:
        """`( value, value, )` -> each value with its first token."""
        self.expect_punct("(")
        out: list[tuple[_Token, Any]] = []
        while not self.is_punct(")"):
            start = self.peek()
            out.append((start, self.value()))
            if self.is_punct(","):
                self.advance()
            elif not self.is_punct(")"):
                raise self.fail(self.peek(), "',' or ')'")
        self.advance()
        return out

    def method_args(self, spec: _Method) -> tuple:
        args = self.call_args()
        if len(args) > len(spec.params):
            extra = args[len(spec.params)][0]
            most = len(spec.params)
            raise self.fail(
                extra,
                "')'",
                f"too many arguments: expected ')' after {most} but found {_describe(extra)}",
            )
        for param in spec.params[len(args) :]:
            if param.required:
                raise self.fail(self.tokens[self.pos - 1], param.name)
        for (token, value), param in zip(args, spec.params, strict=False):
            if not _shape_ok(param.shape, value):
                raise self.fail(token, f"{_SHAPE_WORDS[param.shape]} for {param.name}")
            if param.shape == "options":
                self.check_options(token, value, spec)
        return tuple(value for _, value in args)

    def check_options(self, token: _Token, options: dict, spec: _Method) -> None:
        unknown = [key for key in options if key not in spec.options]
        if unknown:
            allowed = ", ".join(spec.options) or "none"
            raise self.fail(
                token,
                f"options from: {allowed}",
                f"unsupported option {unknown[0]!r}: expected options from: {allowed}",
            )
        for key in ("upsert", "ordered", "bypassDocumentValidation", "allowDiskUse"):
            if key in options and not isinstance(options[key], bool):
                raise self.fail(token, f"{key}: true or false", f"expected {key}: true or false")
        if "arrayFilters" in options and not _shape_ok("documents", options["arrayFilters"]):
            raise self.fail(
                token, "arrayFilters: [{...}, ...]", "expected arrayFilters: [{...}, ...]"
            )

    def modifiers(self, spec: _Method) -> tuple:
        out: list[tuple[str, tuple]] = []
        while self.is_punct("."):
            self.advance()
            name_token = self.peek()
            allowed = (
                _FIND_MODIFIERS if spec.pymongo_name == "find" else ()
            ) + _DISPLAY_ONLY_MODIFIERS
            if not spec.cursor or name_token.kind != "ident" or name_token.value not in allowed:
                expected = f"one of {', '.join(allowed)}" if spec.cursor else "';' or a new line"
                raise self.fail(name_token, expected)
            self.advance()
            args = self.call_args()
            name = name_token.value
            if name in _DISPLAY_ONLY_MODIFIERS:
                if args:
                    raise self.fail(args[0][0], "')'")
                continue
            if len(args) != 1:
                where = args[1][0] if args else self.tokens[self.pos - 1]
                raise self.fail(where, f"one argument to {name}()")
            token, value = args[0]
            self.check_modifier(name, token, value)
            out.append((name, (value,)))
        return tuple(out)

    def check_modifier(self, name: str, token: _Token, value: Any) -> None:
        if name in ("limit", "skip"):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise self.fail(token, "a non-negative integer")
        elif name == "sort":
            if not isinstance(value, dict) or not value:
                raise self.fail(token, "a sort document such as {field: 1}")
            for direction in value.values():
                if direction not in (1, -1) and not isinstance(direction, dict):
                    raise self.fail(
                        token, "sort directions 1 or -1", "expected sort directions 1 or -1"
                    )
        elif name == "hint":
            if not isinstance(value, dict | str):
                raise self.fail(token, "an index name or an index document")
        elif name in ("projection", "collation") and not isinstance(value, dict):
            raise self.fail(token, "a document {...}")

    # -- values

    def value(self) -> Any:
        token = self.peek()
        if token.kind == "punct":
            if token.value == "{":
                return self.nested(self.object)
            if token.value == "[":
                return self.nested(self.array)
            if token.value in "-+":
                return self.signed_number()
        if token.kind in ("string", "regex"):
            return self.advance().value
        if token.kind == "number":
            return _clamp(self.advance().value)
        if token.kind == "ident":
            return self.identifier_value()
        raise self.fail(token, "a value")

    def nested(self, parse: Callable[[], Any]) -> Any:
        if self.depth >= MAX_NESTING:
            raise self.fail(
                self.peek(),
                f"at most {MAX_NESTING} levels of nesting",
                f"documents nest too deeply: expected at most {MAX_NESTING} levels of nesting",
            )
        self.depth += 1
        try:
            return parse()
        finally:
            self.depth -= 1

    def signed_number(self) -> int | float:
        sign = self.advance()
        token = self.peek()
        if token.kind == "number":
            value = self.advance().value
        elif token.kind == "ident" and token.value == "Infinity":
            self.advance()
            value = float("inf")
        else:
            raise self.fail(token, f"a number after '{sign.value}'")
        return _clamp(-value if sign.value == "-" else value)

    def identifier_value(self) -> Any:
        token = self.advance()
        name = token.value
        if name in _LITERALS and not self.is_punct("("):
            return _LITERALS[name]
        if name == "new":
            constructor = self.peek()
            if constructor.kind != "ident" or constructor.value not in _CONSTRUCTORS:
                raise self.fail(constructor, f"one of {', '.join(_CONSTRUCTORS)} after 'new'")
            self.advance()
            return self.construct(constructor)
        if name in _CONSTRUCTORS:
            return self.construct(token)
        raise self.fail(
            token,
            "a value",
            f"expected a value but found {_describe(token)}"
            + (
                f" (functions allowed here: {', '.join(_CONSTRUCTORS)})"
                if self.is_punct("(")
                else ""
            ),
        )

    def construct(self, name_token: _Token) -> Any:
        spec = _CONSTRUCTORS[name_token.value]
        if not self.is_punct("("):
            raise self.fail(self.peek(), f"'(' after {name_token.value}")
        args = self.call_args()
        where = args[0][0] if args else name_token
        if len(args) not in spec.arities:
            raise self.fail(where, spec.expected, f"{name_token.value}() expects {spec.expected}")
        try:
            return spec.build(*(value for _, value in args))
        except (ValueError, TypeError, OverflowError):
            shown = _describe(where)
            raise self.fail(
                where, spec.expected, f"expected {spec.expected} but found {shown}"
            ) from None

    def object(self) -> dict[str, Any]:
        self.expect_punct("{")
        out: dict[str, Any] = {}
        while not self.is_punct("}"):
            key = self.key()
            self.expect_punct(":")
            out[key] = self.value()
            if self.is_punct(","):
                self.advance()
            elif not self.is_punct("}"):
                raise self.fail(self.peek(), "',' or '}'")
        self.advance()
        return out

    def key(self) -> str:
        token = self.peek()
        if token.kind == "string":
            return self.advance().value
        if token.kind not in ("ident", "number"):
            raise self.fail(token, "a key or '}'")
        self.advance()
        parts = [token.text]
        # An unquoted dotted path (`a.b: 1`) is read as the key "a.b"; the shell itself would
        # need quotes, but the meaning is unambiguous.
        while self.is_punct(".") and self.peek().start == self.tokens[self.pos - 1].end:
            part = self.peek(1)
            if part.kind not in ("ident", "number") or part.start != self.peek().end:
                break
            self.advance()
            parts.append(self.advance().text)
        return ".".join(parts)

    def array(self) -> list[Any]:
        self.expect_punct("[")
        out: list[Any] = []
        while not self.is_punct("]"):
            out.append(self.value())
            if self.is_punct(","):
                self.advance()
            elif not self.is_punct("]"):
                raise self.fail(self.peek(), "',' or ']'")
        self.advance()
        return out


def _clamp(value: int | float) -> int | float:
    """JavaScript numbers beyond 64-bit integers are doubles."""
    if isinstance(value, int) and not INT64_RANGE[0] <= value <= INT64_RANGE[1]:
        return float(value)
    return value
