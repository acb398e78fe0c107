"""The MongoDB shell syntax people paste, parsed into pymongo calls.

`db.orders.find({status: 'open'}, {total: 1}).sort({total: -1}).limit(5)` becomes
`("find", ({"status": "open"}, {"total": 1}), {"sort": [("total", -1)], "limit": 5})`.

The text is tokenized and parsed by hand (recursive descent); nothing is ever evaluated as
code, so a pasted script can only name the operations this module knows. Values follow the
shell's relaxed JSON: unquoted keys, single or double quotes, trailing commas, comments,
`ObjectId()`, `ISODate()`, `NumberLong()`, `/regex/flags` and friends. Legacy shell methods
(`count`, `insert`, `update`, `remove`, `findAndModify`, `ensureIndex`) become today's calls.

Every limit that keeps hostile text from exhausting the process is checked while parsing:
nesting depth, number and string length, and the number of statements.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bson import Code
from bson.son import SON
from pymongo import (
    DeleteMany,
    DeleteOne,
    IndexModel,
    InsertOne,
    ReplaceOne,
    ReturnDocument,
    UpdateMany,
    UpdateOne,
)

from core.executors.mongo_literals import (
    CONSTRUCTORS,
    LITERALS,
    Lexer,
    MongoParseError,
    Token,
    clamp,
)
from core.executors.mongo_options import (
    AGGREGATE_OPTIONS,
    COLLECTION_OPTIONS,
    CONCERN_OPTIONS,
    COUNT_OPTIONS,
    CREATE_COLLECTION_OPTIONS,
    DELETE_OPTIONS,
    DISTINCT_OPTIONS,
    FIND_AND_MODIFY_OPTIONS,
    FIND_OPTIONS,
    INDEX_OPTIONS,
    INSERT_MANY_OPTIONS,
    INSERT_ONE_OPTIONS,
    OPTION_VALUES,
    READ_OPTIONS,
    REPLACE_OPTIONS,
    UPDATE_OPTIONS,
    BadOption,
    Options,
    as_bool,
    as_count,
    as_document,
    as_documents,
    as_hint,
    as_index_keys,
    as_index_target,
    as_read_concern,
    as_sort,
    read_preference,
)

__all__ = ["MongoParseError", "MongoStatement", "parse", "pymongo_call"]

# BSON documents may nest at most 100 levels; refusing deeper input (constructor calls count
# as a level too) also keeps the recursive descent far from Python's recursion limit.
MAX_NESTING = 100
MAX_STATEMENTS = 1_000

READ = "read"
WRITE = "write"
DDL = "ddl"

# Operators whose argument is JavaScript the server runs.
SERVER_JS_OPERATORS = ("$where", "$function", "$accumulator")
# Pipeline stages that write their input to a collection.
WRITING_STAGES = ("$out", "$merge")


# --- statements -----------------------------------------------------------------------------


@dataclass(frozen=True)
class MongoStatement:
    collection: str | None  # None for database methods such as db.getCollectionNames()
    method: str  # the shell's name as written: find, count, insert, explain, ...
    args: tuple  # the parsed arguments, as written
    modifiers: tuple  # cursor chain: (("sort", ({"b": -1},)), ("limit", (5,)))
    line: int
    column: int
    text: str  # the statement's source text
    # The pymongo call that runs it: `target` (collection or database) `.operation(*call_args,
    # **call_kwargs)`, on `target.with_options(**collection_options)` when that is not empty.
    operation: str = ""
    call_args: tuple = ()
    call_kwargs: Mapping[str, Any] = field(default_factory=dict)
    target: str = "collection"  # collection | database
    collection_options: Mapping[str, Any] = field(default_factory=dict)
    kind: str = READ  # read | write | ddl
    # How the executor presents what comes back: cursor | document | count | values | names
    # | explain | map_reduce | write
    result: str = "cursor"
    max_time_ms: int | None = None  # asked for by the user; the instance's timeout still caps it
    notes: tuple[str, ...] = ()  # substitutions the requester should know about
    # What makes it more than a read, in the approver's words ("inserts into orders").
    effects: tuple[str, ...] = ()

    @property
    def server_js(self) -> tuple[str, ...]:
        """Where the statement asks the server to run JavaScript ("$where", "mapReduce")."""
        found: dict[str, None] = {}
        if self.method == "mapReduce":
            found["mapReduce"] = None
        for value in (*self.args, *(arg for _, args in self.modifiers for arg in args)):
            for key, _ in _keys(value):
                if key in SERVER_JS_OPERATORS:
                    found[key] = None
        return tuple(found)

    @property
    def write_destinations(self) -> tuple[str, ...]:
        """Where $out and $merge stages (at any depth) write, as "db.coll" or "coll"."""
        found: dict[str, None] = {}
        for value in (*self.args, *(arg for _, args in self.modifiers for arg in args)):
            for key, spec in _keys(value):
                if key in WRITING_STAGES:
                    found[f"{_destination(key, spec)} through {key}"] = None
        return tuple(found)


def _keys(value: Any) -> list[tuple[str, Any]]:
    """Every (key, value) pair of every document inside `value`, at any depth."""
    out: list[tuple[str, Any]] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, inner in item.items():
                out.append((key, inner))
                stack.append(inner)
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return out


def _destination(stage: str, spec: Any) -> str:
    if stage == "$merge" and isinstance(spec, dict):
        spec = spec.get("into")
    if isinstance(spec, str):
        return f"{spec} (this database)"
    if isinstance(spec, dict):
        database, collection = spec.get("db"), spec.get("coll")
        if isinstance(collection, str):
            return f"{database}.{collection}" if isinstance(database, str) else collection
    return "a collection it names"


def parse(text: str) -> list[MongoStatement]:
    """Every statement of `text` (separated by ';' or new lines), in order."""
    return _Parser(text).statements()


def pymongo_call(stmt: MongoStatement) -> tuple[str, tuple, dict[str, Any]]:
    """The method name, positional and keyword arguments that run `stmt` (see `target`)."""
    return stmt.operation, stmt.call_args, dict(stmt.call_kwargs)


# --- parser -------------------------------------------------------------------------------


def _describe(token: Token) -> str:
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
        "document or documents": lambda v: isinstance(v, dict) or is_documents(v),
        "pipeline": is_documents,
        "update": lambda v: isinstance(v, dict) or is_documents(v),
        "field": lambda v: isinstance(v, str) and v != "",
        "name": lambda v: isinstance(v, str) and v != "",
        "index": lambda v: (isinstance(v, str) and v != "") or isinstance(v, dict),
        "keys list": lambda v: is_documents(v) and bool(v),
        "boolean": lambda v: isinstance(v, bool),
        "remove option": lambda v: isinstance(v, bool | dict),
        "javascript": lambda v: isinstance(v, str),
        "verbosity": lambda v: isinstance(v, bool) or v in _EXPLAIN_VERBOSITIES,
    }
    return checks[shape](value)


_SHAPE_WORDS = {
    "document": "a document {...}",
    "options": "a document {...}",
    "documents": "an array of documents [{...}, ...]",
    "document or documents": "a document {...} or an array of documents [{...}, ...]",
    "pipeline": "an array of stages [{...}, ...]",
    "update": "a document {...} or an update pipeline [{...}, ...]",
    "field": "a field name in quotes",
    "name": "a name in quotes",
    "index": "an index name in quotes or its keys such as {field: 1}",
    "keys list": "an array of index keys [{field: 1}, ...]",
    "boolean": "true or false",
    "remove option": "true or {justOne: true}",
    "javascript": 'JavaScript source as a string or Code("...")',
    "verbosity": '"queryPlanner", "executionStats" or "allPlansExecution"',
}
_EXPLAIN_VERBOSITIES = ("queryPlanner", "executionStats", "allPlansExecution")


@dataclass(frozen=True)
class _Param:
    name: str  # how errors name it: "the filter", "the pipeline"
    shape: str
    required: bool = False


_FILTER = _Param("the filter", "document")
_REQUIRED_FILTER = _Param("the filter", "document", required=True)
_PROJECTION = _Param("the projection", "document")
_OPTIONS = _Param("the options", "options")
_UPDATE_DOC = _Param("the update", "update", required=True)

# Statements that are JavaScript rather than a shell call, and why they do not run.
_JAVASCRIPT = "JavaScript is not run: write each statement as db.<collection>.<method>(...)"
_JS_STATEMENTS = {
    "var": "JavaScript variables are not supported: write each value inline in the statement",
    "let": "JavaScript variables are not supported: write each value inline in the statement",
    "const": "JavaScript variables are not supported: write each value inline in the statement",
    "for": f"loops are {_JAVASCRIPT}",
    "while": f"loops are {_JAVASCRIPT}",
    "do": f"loops are {_JAVASCRIPT}",
    "if": _JAVASCRIPT,
    "try": _JAVASCRIPT,
    "function": _JAVASCRIPT,
    "print": "print() only displays in the shell: write the db.<collection>.<method>(...) call",
    "printjson": "printjson() only displays in the shell: write the db.<collection>.<method>(...)"
    " call",
    "use": "'use <database>' is not supported: pick the database as the request's target",
    "show": "'show ...' is not supported: use db.getCollectionNames()",
}
# Cursor methods that only make sense in an interactive JavaScript session.
_CURSOR_REFUSED = {
    "forEach": "JavaScript callbacks are not run: the result already lists every document",
    "map": "JavaScript callbacks are not run: the result already lists every document",
    "hasNext": "cursor introspection is not supported: the result already lists every document",
    "next": "cursor introspection is not supported: the result already lists every document",
    "tryNext": "cursor introspection is not supported: the result already lists every document",
    "itcount": "cursor introspection is not supported: use countDocuments() for a count",
    "size": "cursor introspection is not supported: use countDocuments() for a count",
    "length": "cursor introspection is not supported: use countDocuments() for a count",
    "objsLeftInBatch": "cursor introspection is not supported",
    "isExhausted": "cursor introspection is not supported",
    "close": "cursor introspection is not supported: dbquery closes every cursor itself",
    "addOption": "raw cursor flags are not supported: use the named cursor methods",
    "tailable": "tailable cursors never finish and are not supported",
}
# Methods the shell has but dbquery refuses, with the reason and, where one exists, what to
# use instead.
_REFUSED_METHODS = {
    "save": "save() is not supported: use insertOne(doc) for a new document, or "
    "replaceOne({_id: ...}, doc, {upsert: true}) to overwrite one",
    "runCommand": "runCommand() runs arbitrary server commands and is not supported: "
    "use the shell method for what you need",
    "adminCommand": "adminCommand() runs arbitrary server commands and is not supported",
    "eval": "eval() runs JavaScript on the server and is not supported",
    "getSiblingDB": "getSiblingDB() reaches another database: pick that database as the "
    "request's target instead",
    "getMongo": "getMongo() reaches the connection itself and is not supported",
    "dropDatabase": "dropDatabase() is not supported: drop collections one by one with drop()",
    "group": "group() was removed from MongoDB: use aggregate() with a $group stage",
    "copyTo": "copyTo() was removed from MongoDB: use aggregate() with a $out stage",
    "findAndRemove": "use findOneAndDelete(filter) instead",
    "watch": "change streams never finish and are not supported",
    "reIndex": "reIndex() is not supported: drop and create the index instead",
}
# Names people use for methods that exist under another name today.
_MODERN_NAMES = {
    "insert": "insertOne or insertMany",
    "count": "countDocuments",
    "remove": "deleteOne or deleteMany",
    "update": "updateOne or updateMany",
    "findAndModify": "findOneAndUpdate",
    "ensureIndex": "createIndex",
    "getIndices": "getIndexes",
    "getIndexKeys": "getIndexes",
    "findOneAndModify": "findOneAndUpdate",
    "deleteAll": "deleteMany({})",
    "removeMany": "deleteMany",
    "removeOne": "deleteOne",
    "updateAll": "updateMany",
    "upsert": "updateOne(filter, update, {upsert: true})",
    "first": "findOne",
    "findAll": "find",
    "aggregation": "aggregate",
    "countDocument": "countDocuments",
    "estimatedCount": "estimatedDocumentCount",
    "dataSize": "aggregate([{$collStats: {storageStats: {}}}])",
    "stats": "aggregate([{$collStats: {storageStats: {}}}])",
    "totalSize": "aggregate([{$collStats: {storageStats: {}}}])",
    "storageSize": "aggregate([{$collStats: {storageStats: {}}}])",
}
_DATABASE_METHODS = (
    "getCollectionNames",
    "getCollectionInfos",
    "createCollection",
    "createView",
    "getCollection",
)


@dataclass
class _Site:
    """One method call as written: its name token, arguments with their first tokens, and ')'."""

    name: Token
    args: list[tuple[Token, Any]]
    close: Token


@dataclass
class _Built:
    """What a method call turns into; the parser adds the source position and text."""

    operation: str
    call_args: tuple = ()
    call_kwargs: dict[str, Any] = field(default_factory=dict)
    kind: str = READ
    result: str = "cursor"
    target: str = "collection"
    collection_options: dict[str, Any] = field(default_factory=dict)
    max_time_ms: int | None = None
    notes: tuple[str, ...] = ()
    effects: tuple[str, ...] = ()
    modifiers: tuple = ()


_COUNT_NOTE = "count() ran as countDocuments(), which gives the same answer on current servers"
_FIND_TERMINALS = ("count", "explain")
_DISPLAY_ONLY_MODIFIERS = ("pretty", "toArray")
_FIND_MODIFIERS = (
    "sort",
    "limit",
    "skip",
    "projection",
    "hint",
    "collation",
    "comment",
    "batchSize",
    "maxTimeMS",
    "readPref",
    "readConcern",
    "min",
    "max",
    "returnKey",
    "showRecordId",
    "allowDiskUse",
    "noCursorTimeout",
)
_FLAG_MODIFIERS = {
    "returnKey": "return_key",
    "showRecordId": "show_record_id",
    "allowDiskUse": "allow_disk_use",
    "noCursorTimeout": "no_cursor_timeout",
}


# How far behind the current token the window may grow before it is trimmed.
_TOKENS_KEPT = 64


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.lexer = Lexer(text)
        # Tokens are read on demand, so the first problem in reading order is the one reported.
        # Only those from the previous one on are kept: memory does not grow with the text.
        self.window: list[Token] = []  # the tokens from position self.base on
        self.base = 0
        self.pos = 0
        self.depth = 0

    # -- token helpers

    def peek(self, ahead: int = 0) -> Token:
        index = self.pos + ahead - self.base
        window = self.window
        if index < len(window):
            return window[index]
        while len(window) <= index and not (window and window[-1].kind == "end"):
            window.append(self.lexer.next_token(window[-1] if window else None))
        return window[min(index, len(window) - 1)]

    def advance(self) -> Token:
        token = self.peek()
        if token.kind != "end":
            self.pos += 1
            if self.pos - self.base > _TOKENS_KEPT:
                dropped = self.pos - self.base - 1
                del self.window[:dropped]
                self.base += dropped
        return token

    def previous(self) -> Token:
        return self.window[self.pos - 1 - self.base]

    def is_punct(self, value: str, ahead: int = 0) -> bool:
        token = self.peek(ahead)
        return token.value == value and token.kind == "punct"

    def fail(self, token: Token, expected: str, message: str | None = None) -> MongoParseError:
        text = message or f"expected {expected} but found {_describe(token)}"
        return self.lexer.fail(token.start, text, expected)

    def expect_punct(self, value: str, expected: str | None = None) -> Token:
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
            if len(out) == MAX_STATEMENTS:
                raise self.fail(
                    self.peek(),
                    f"at most {MAX_STATEMENTS} statements",
                    f"too many statements: expected at most {MAX_STATEMENTS} in one script",
                )
            out.append(self.statement())
            last = self.previous()
            following = self.peek()
            if following.kind == "end" or self.is_punct(";"):
                continue
            if self.lexer.position(following.start)[0] > self.lexer.position(last.end)[0]:
                continue
            if self.is_punct("."):
                raise self.fail(self.peek(1), "';' or a new line")
            if self.is_punct("["):
                raise self.fail(
                    following,
                    "';' or a new line",
                    "indexing a result ([0]) is not supported: use .limit(1) or findOne()",
                )
            raise self.fail(following, "';' or a new line")
        if not out:
            raise self.fail(self.peek(), "a statement such as db.collection.find({})")
        return out

    def statement(self) -> MongoStatement:
        first = self.peek()
        if first.kind == "ident" and first.value in _JS_STATEMENTS:
            raise self.fail(first, "a statement starting with 'db.'", _JS_STATEMENTS[first.value])
        if first.kind != "ident" or first.value != "db":
            raise self.fail(first, "a statement starting with 'db.'")
        self.advance()
        collection: str | None = None
        if (
            self.is_punct(".")
            and self.peek(1).kind == "ident"
            and self.is_punct("(", 2)
            and self.peek(1).value != "getCollection"
        ):
            self.advance()
            site = self.site(self.database_method_known)
            built = self.database_method(site)
        else:
            collection = self.collection()
            site = self.site(self.collection_method_known)
            built = getattr(self, "m_" + site.name.value)(collection, site)
        line, column = self.lexer.position(first.start)
        end = self.previous().end
        return MongoStatement(
            collection=collection,
            method=site.name.value,
            args=tuple(value for _, value in site.args),
            modifiers=built.modifiers,
            line=line,
            column=column,
            text=self.text[first.start : end],
            operation=built.operation,
            call_args=built.call_args,
            call_kwargs=built.call_kwargs,
            target=built.target,
            collection_options=built.collection_options,
            kind=built.kind,
            result=built.result,
            max_time_ms=built.max_time_ms,
            notes=built.notes,
            effects=built.effects,
        )

    def site(self, check_name: Callable[[Token], None]) -> _Site:
        name = self.peek()
        if name.kind != "ident":
            raise self.fail(name, "a method name")
        check_name(name)
        self.advance()
        args = self.call_args()
        return _Site(name, args, self.previous())

    def collection_method_known(self, token: Token) -> None:
        name = token.value
        if name in _REFUSED_METHODS:
            raise self.fail(token, "a supported method", _REFUSED_METHODS[name])
        if name in _CURSOR_REFUSED:
            raise self.fail(token, "a supported method", _CURSOR_REFUSED[name])
        if hasattr(self, "m_" + name):
            return
        listed = ", ".join(COLLECTION_METHODS)
        modern = _MODERN_NAMES.get(name)
        if modern is None:
            close = difflib.get_close_matches(name, COLLECTION_METHODS, n=1)
            modern = close[0] if close else None
        hint = f" (use {modern} instead)" if modern else ""
        raise self.fail(
            token,
            f"one of {listed}",
            f"unknown method {_describe(token)}{hint}: expected one of {listed}",
        )

    def database_method_known(self, token: Token) -> None:
        name = token.value
        if name in _REFUSED_METHODS:
            raise self.fail(token, "a supported method", _REFUSED_METHODS[name])
        if name in _DATABASE_METHODS:
            return
        listed = ", ".join(_DATABASE_METHODS)
        raise self.fail(
            token,
            f"a collection as db.<collection>.{name}(...) or one of {listed}",
            f"unknown database method {_describe(token)}: expected one of {listed}, "
            "or a collection as db.<collection>.<method>(...)",
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
        segments: list[Token] = []
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
                expected = (
                    "'('" if token.value in COLLECTION_METHODS else "'.' and a method such as find"
                )
                raise self.fail(self.peek(), expected)
            self.advance()
        name = ".".join(segment.value for segment in segments)
        self.check_collection_name(name, segments[0])
        return name

    def collection_end(self, name_token: Token) -> str:
        self.check_collection_name(name_token.value, name_token)
        self.expect_punct(".", "'.' and a method such as find")
        if self.peek().kind != "ident":
            raise self.fail(self.peek(), "a method name")
        return name_token.value

    def check_collection_name(self, name: Any, token: Token) -> None:
        if (
            not isinstance(name, str)
            or not name
            or "$" in name
            or "\0" in name
            or ".." in name
            or name[0] == "."
            or name[-1] == "."
            or len(name) > 255
        ):
            raise self.fail(token, "a collection name (not empty, without '$')")

    def string_token(self, expected: str) -> Token:
        token = self.peek()
        if token.kind != "string":
            raise self.fail(token, expected)
        return self.advance()

    def call_args(self) -> list[tuple[Token, Any]]:
        """`( value, value, )` -> each value with its first token."""
        self.expect_punct("(")
        out: list[tuple[Token, Any]] = []
        while not self.is_punct(")"):
            start = self.peek()
            out.append((start, self.value()))
            if self.is_punct(","):
                self.advance()
            elif not self.is_punct(")"):
                raise self.fail(self.peek(), "',' or ')'")
        self.advance()
        return out

    # -- arguments and options

    def take(self, site: _Site, params: tuple[_Param, ...]) -> list[Any]:
        """The arguments checked against `params`; None for each optional one left out."""
        if len(site.args) > len(params):
            extra = site.args[len(params)][0]
            most = len(params)
            raise self.fail(
                extra,
                "')'",
                f"too many arguments: expected ')' after {most} but found {_describe(extra)}",
            )
        for param in params[len(site.args) :]:
            if param.required:
                raise self.fail(site.close, param.name)
        for (token, value), param in zip(site.args, params, strict=False):
            # `find(null, {a: 1})`: null stands for an optional argument left out.
            if value is None and not param.required:
                continue
            if not _shape_ok(param.shape, value):
                raise self.fail(token, f"{_SHAPE_WORDS[param.shape]} for {param.name}")
        return [value for _, value in site.args] + [None] * (len(params) - len(site.args))

    def options(self, site: _Site, index: int, allowed: Mapping[str, str]) -> Options:
        if index >= len(site.args) or site.args[index][1] is None:
            return Options()
        token, value = site.args[index]
        return self.option_values(token, value, allowed)

    def option_values(self, token: Token, value: dict, allowed: Mapping[str, str]) -> Options:
        unknown = [key for key in value if key not in allowed]
        listed = ", ".join(allowed) or "none"
        if unknown:
            raise self.fail(
                token,
                f"options from: {listed}",
                f"unsupported option {unknown[0]!r}: expected options from: {listed}",
            )
        out = Options()
        for key, raw in value.items():
            try:
                if key in COLLECTION_OPTIONS:
                    name, convert = COLLECTION_OPTIONS[key]
                    out.collection[name] = convert(raw)
                elif key == "maxTimeMS":
                    out.max_time_ms = as_count(raw)
                elif key == "returnNewDocument":
                    after = as_bool(raw)
                    out.kwargs["return_document"] = (
                        ReturnDocument.AFTER if after else ReturnDocument.BEFORE
                    )
                else:
                    converted = OPTION_VALUES[key](raw)
                    if converted is not None:
                        out.kwargs[allowed[key]] = converted
            except BadOption as exc:
                raise self.fail(token, f"{key}: {exc}", f"expected {key}: {exc}") from None
        return out

    def convert(self, token: Token, what: str, convert: Callable[[Any], Any], value: Any) -> Any:
        try:
            return convert(value)
        except BadOption as exc:
            raise self.fail(token, f"{what}: {exc}", f"expected {what}: {exc}") from None

    # -- cursor chains

    def chain(self, allowed: tuple[str, ...], terminals: tuple[str, ...] = ()) -> list[_Site]:
        """The `.method(...)` calls after a cursor-returning method, display-only ones dropped."""
        out: list[_Site] = []
        while self.is_punct("."):
            self.advance()
            name = self.peek()
            if name.kind == "ident" and name.value in _CURSOR_REFUSED:
                raise self.fail(name, "a supported cursor method", _CURSOR_REFUSED[name.value])
            usable = (*allowed, *terminals, *_DISPLAY_ONLY_MODIFIERS)
            if name.kind != "ident" or name.value not in usable:
                raise self.fail(name, f"one of {', '.join(usable)}")
            self.advance()
            site = _Site(name, self.call_args(), self.previous())
            if name.value in _DISPLAY_ONLY_MODIFIERS:
                if site.args:
                    raise self.fail(site.args[0][0], "')'")
                continue
            out.append(site)
            if name.value in terminals:
                while self.is_punct(".") and self.peek(1).value in _DISPLAY_ONLY_MODIFIERS:
                    self.advance()
                    self.advance()
                    if self.call_args():
                        raise self.fail(self.previous(), "')'")
                if self.is_punct("."):
                    raise self.fail(self.peek(1), "';' or a new line")
                break
        return out

    def one_arg(self, site: _Site, optional: bool = False) -> tuple[Token, Any]:
        if optional and not site.args:
            return site.close, None
        if len(site.args) != 1:
            where = site.args[1][0] if site.args else site.close
            raise self.fail(where, f"one argument to {site.name.value}()")
        return site.args[0]

    def apply_find_modifier(
        self, site: _Site, args: list, kwargs: dict[str, Any], options: Options
    ) -> None:
        name = site.name.value
        if name == "readPref":
            if not 1 <= len(site.args) <= 2:
                raise self.fail(site.close, "a read preference mode and optional tag sets")
            token = site.args[0][0]
            values = [value for _, value in site.args]
            options.collection["read_preference"] = self.convert(
                token, "readPref", lambda _: read_preference(*values), None
            )
            return
        if name in _FLAG_MODIFIERS:
            token, value = self.one_arg(site, optional=True)
            flag = True if value is None else self.convert(token, name, as_bool, value)
            kwargs[_FLAG_MODIFIERS[name]] = flag
            return
        token, value = self.one_arg(site)
        if name == "projection":
            args[1] = self.convert(token, "projection", as_document, value)
        elif name == "readConcern":
            options.collection["read_concern"] = self.convert(
                token, "readConcern", as_read_concern, value
            )
        elif name == "maxTimeMS":
            options.max_time_ms = self.convert(token, "maxTimeMS", as_count, value)
        elif name == "batchSize":
            kwargs["batch_size"] = self.convert(token, "batchSize", as_count, value)
        elif name in ("limit", "skip"):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise self.fail(token, "a non-negative integer")
            kwargs[name] = value
        elif name == "sort":
            kwargs["sort"] = self.convert(token, "sort", as_sort, value)
        elif name == "hint":
            kwargs["hint"] = self.convert(token, "hint", as_hint, value)
        elif name == "collation":
            kwargs["collation"] = self.convert(token, "collation", as_document, value)
        elif name in ("min", "max"):
            if not isinstance(value, dict) or not value:
                raise self.fail(token, "index bounds such as {field: value}")
            # pymongo sends find()'s min and max as given, so they stay documents.
            kwargs[name] = value
        else:  # comment
            kwargs[name] = value

    # -- collection methods (m_<shell name>)

    def m_find(self, collection: str, site: _Site) -> _Built:
        filter_, projection, _ = self.take(site, (_FILTER, _PROJECTION, _OPTIONS))
        options = self.options(site, 2, FIND_OPTIONS)
        kwargs = options.kwargs
        args = [{} if filter_ is None else filter_, kwargs.pop("projection", projection)]
        modifiers = self.chain(_FIND_MODIFIERS, _FIND_TERMINALS)
        terminal = (
            modifiers[-1] if modifiers and modifiers[-1].name.value in _FIND_TERMINALS else None
        )
        for modifier in modifiers:
            if modifier is not terminal:
                self.apply_find_modifier(modifier, args, kwargs, options)
        chain = tuple(
            (modifier.name.value, tuple(value for _, value in modifier.args))
            for modifier in modifiers
        )
        built = _Built(
            "find",
            tuple(args),
            kwargs,
            collection_options=options.collection,
            max_time_ms=options.max_time_ms,
            modifiers=chain,
        )
        if terminal is None:
            return built
        if terminal.name.value == "count":
            token, apply_skip_limit = self.one_arg(terminal, optional=True)
            if apply_skip_limit is not None and not isinstance(apply_skip_limit, bool):
                raise self.fail(token, "true or false")
            # As in the shell, count() ignores limit() and skip() unless given true.
            kept = ("hint", "collation", "comment") + (
                ("limit", "skip") if apply_skip_limit else ()
            )
            counted = {key: value for key, value in kwargs.items() if key in kept}
            return _Built(
                "count_documents",
                (args[0],),
                counted,
                result="count",
                collection_options=options.collection,
                max_time_ms=options.max_time_ms,
                notes=(_COUNT_NOTE,),
                modifiers=chain,
            )
        return self.explained(collection, terminal, built)

    def m_findOne(self, collection: str, site: _Site) -> _Built:
        filter_, projection, _ = self.take(site, (_FILTER, _PROJECTION, _OPTIONS))
        options = self.options(site, 2, FIND_OPTIONS)
        kwargs = options.kwargs
        projection = kwargs.pop("projection", projection)
        return _Built(
            "find_one",
            ({} if filter_ is None else filter_, projection),
            kwargs,
            result="document",
            collection_options=options.collection,
            max_time_ms=options.max_time_ms,
        )

    def m_aggregate(self, collection: str, site: _Site) -> _Built:
        pipeline_param = _Param("the pipeline", "pipeline", required=True)
        if site.args and not isinstance(site.args[0][1], list):
            # aggregate(stage, stage, ...): the shell takes every argument as a stage.
            for token, value in site.args:
                if not isinstance(value, dict):
                    raise self.fail(token, "a stage {...} for the pipeline")
            pipeline = [value for _, value in site.args]
            options = Options()
        else:
            pipeline, _ = self.take(site, (pipeline_param, _OPTIONS))
            options = self.options(site, 1, {**AGGREGATE_OPTIONS, "explain": ""})
        explain_option = options.kwargs.pop("", None)
        if isinstance(options.kwargs.get("hint"), list):
            # aggregate() sends its hint unchanged: an index document, not (key, direction) pairs.
            options.kwargs["hint"] = dict(options.kwargs["hint"])
        chain = self.chain((), ("explain",))
        destinations = _write_destinations(pipeline)
        built = _Built(
            "aggregate",
            (pipeline,),
            options.kwargs,
            kind=WRITE if destinations else READ,
            result="write" if destinations else "cursor",
            collection_options=options.collection,
            max_time_ms=options.max_time_ms,
            effects=tuple(f"writes to {where}" for where in destinations),
        )
        if chain:
            return self.explained(collection, chain[-1], built)
        if explain_option:
            # The legacy {explain: true} option asks for the plan, as explain() does.
            return self.explain_command(collection, site.args[1][0], "queryPlanner", built)
        return built

    def count_like(self, site: _Site, notes: tuple[str, ...]) -> _Built:
        filter_, _ = self.take(site, (_FILTER, _OPTIONS))
        options = self.options(site, 1, COUNT_OPTIONS)
        return _Built(
            "count_documents",
            ({} if filter_ is None else filter_,),
            options.kwargs,
            result="count",
            collection_options=options.collection,
            max_time_ms=options.max_time_ms,
            notes=notes,
        )

    def m_count(self, collection: str, site: _Site) -> _Built:
        return self.count_like(site, (_COUNT_NOTE,))

    def m_countDocuments(self, collection: str, site: _Site) -> _Built:
        return self.count_like(site, ())

    def m_estimatedDocumentCount(self, collection: str, site: _Site) -> _Built:
        self.take(site, (_OPTIONS,))
        options = self.options(site, 0, {"comment": "comment", **READ_OPTIONS})
        return _Built(
            "estimated_document_count",
            (),
            options.kwargs,
            result="count",
            collection_options=options.collection,
            max_time_ms=options.max_time_ms,
        )

    def m_distinct(self, collection: str, site: _Site) -> _Built:
        key, filter_, _ = self.take(
            site, (_Param("the field name", "field", required=True), _FILTER, _OPTIONS)
        )
        options = self.options(site, 2, DISTINCT_OPTIONS)
        return _Built(
            "distinct",
            (key, {} if filter_ is None else filter_),
            options.kwargs,
            result="values",
            collection_options=options.collection,
            max_time_ms=options.max_time_ms,
        )

    def write(self, operation: str, args: tuple, options: Options, effect: str, **more: Any):
        return _Built(
            operation,
            args,
            options.kwargs,
            kind=WRITE,
            result="write",
            collection_options=options.collection,
            max_time_ms=options.max_time_ms,
            effects=(effect,),
            **more,
        )

    def m_insertOne(self, collection: str, site: _Site) -> _Built:
        document, _ = self.take(site, (_Param("the new document", "document", True), _OPTIONS))
        options = self.options(site, 1, INSERT_ONE_OPTIONS)
        return self.write(
            "insert_one", (document,), options, f"inserts 1 document into {collection}"
        )

    def m_insertMany(self, collection: str, site: _Site) -> _Built:
        documents, _ = self.take(
            site, (_Param("the documents to insert", "documents", True), _OPTIONS)
        )
        options = self.options(site, 1, INSERT_MANY_OPTIONS)
        return self.write(
            "insert_many",
            (documents,),
            options,
            f"inserts {_plural(len(documents), 'document')} into {collection}",
        )

    def m_insert(self, collection: str, site: _Site) -> _Built:
        documents, _ = self.take(
            site, (_Param("the documents to insert", "document or documents", True), _OPTIONS)
        )
        options = self.options(site, 1, INSERT_MANY_OPTIONS)
        if isinstance(documents, dict):
            options.kwargs.pop("ordered", None)
            return self.write(
                "insert_one",
                (documents,),
                options,
                f"inserts 1 document into {collection}",
                notes=("insert() ran as insertOne()",),
            )
        return self.write(
            "insert_many",
            (documents,),
            options,
            f"inserts {_plural(len(documents), 'document')} into {collection}",
            notes=("insert() ran as insertMany()",),
        )

    def update_like(self, collection: str, site: _Site, many: bool) -> _Built:
        filter_, update, _ = self.take(site, (_REQUIRED_FILTER, _UPDATE_DOC, _OPTIONS))
        options = self.options(site, 2, UPDATE_OPTIONS)
        which = "every matching document" if many else "one document"
        operation = "update_many" if many else "update_one"
        return self.write(operation, (filter_, update), options, f"updates {which} in {collection}")

    def m_updateOne(self, collection: str, site: _Site) -> _Built:
        return self.update_like(collection, site, many=False)

    def m_updateMany(self, collection: str, site: _Site) -> _Built:
        return self.update_like(collection, site, many=True)

    def m_replaceOne(self, collection: str, site: _Site) -> _Built:
        filter_, replacement, _ = self.take(
            site,
            (_REQUIRED_FILTER, _Param("the replacement document", "document", True), _OPTIONS),
        )
        options = self.options(site, 2, REPLACE_OPTIONS)
        return self.write(
            "replace_one", (filter_, replacement), options, f"replaces one document in {collection}"
        )

    def m_update(self, collection: str, site: _Site) -> _Built:
        if len(site.args) >= 3 and isinstance(site.args[2][1], bool):
            # The shell before 2.2: update(query, update, upsert, multi) with positional booleans.
            filter_, update, upsert, multi = self.take(
                site,
                (
                    _REQUIRED_FILTER,
                    _UPDATE_DOC,
                    _Param("upsert", "boolean"),
                    _Param("multi", "boolean"),
                ),
            )
            options = Options(kwargs={"upsert": True} if upsert else {})
            multi = bool(multi)
        else:
            filter_, update, _ = self.take(site, (_REQUIRED_FILTER, _UPDATE_DOC, _OPTIONS))
            options = self.options(site, 2, {**UPDATE_OPTIONS, "multi": ""})
            multi = bool(options.kwargs.pop("", False))
        if _is_replacement(update):
            if multi:
                raise self.fail(
                    site.args[1][0],
                    "update operators such as {$set: {...}}",
                    "multi: true needs update operators such as {$set: {...}}, "
                    "not a replacement document",
                )
            options.kwargs.pop("array_filters", None)
            return self.write(
                "replace_one",
                (filter_, update),
                options,
                f"replaces one document in {collection}",
                notes=("update() with a replacement document ran as replaceOne()",),
            )
        operation, method = ("update_many", "updateMany") if multi else ("update_one", "updateOne")
        which = "every matching document" if multi else "one document"
        return self.write(
            operation,
            (filter_, update),
            options,
            f"updates {which} in {collection}",
            notes=(f"update() ran as {method}()",),
        )

    def delete_like(self, collection: str, site: _Site, many: bool) -> _Built:
        filter_, _ = self.take(site, (_REQUIRED_FILTER, _OPTIONS))
        options = self.options(site, 1, DELETE_OPTIONS)
        which = "every matching document" if many else "one document"
        operation = "delete_many" if many else "delete_one"
        return self.write(operation, (filter_,), options, f"deletes {which} from {collection}")

    def m_deleteOne(self, collection: str, site: _Site) -> _Built:
        return self.delete_like(collection, site, many=False)

    def m_deleteMany(self, collection: str, site: _Site) -> _Built:
        return self.delete_like(collection, site, many=True)

    def m_remove(self, collection: str, site: _Site) -> _Built:
        filter_, second = self.take(site, (_REQUIRED_FILTER, _Param("justOne", "remove option")))
        if isinstance(second, dict):
            options = self.options(site, 1, {**DELETE_OPTIONS, "justOne": ""})
            just_one = bool(options.kwargs.pop("", False))
        else:
            options, just_one = Options(), bool(second)
        operation, method = (
            ("delete_one", "deleteOne") if just_one else ("delete_many", "deleteMany")
        )
        which = "one document" if just_one else "every matching document"
        return self.write(
            operation,
            (filter_,),
            options,
            f"deletes {which} from {collection}",
            notes=(f"remove() ran as {method}()",),
        )

    def find_and(
        self,
        collection: str,
        operation: str,
        args: tuple,
        options: Options,
        effect: str,
        notes: tuple[str, ...] = (),
    ) -> _Built:
        built = self.write(operation, args, options, effect, notes=notes)
        built.result = "document"
        return built

    def m_findOneAndUpdate(self, collection: str, site: _Site) -> _Built:
        filter_, update, _ = self.take(site, (_REQUIRED_FILTER, _UPDATE_DOC, _OPTIONS))
        options = self.options(site, 2, FIND_AND_MODIFY_OPTIONS)
        return self.find_and(
            collection,
            "find_one_and_update",
            (filter_, update),
            options,
            f"updates one document in {collection}",
        )

    def m_findOneAndReplace(self, collection: str, site: _Site) -> _Built:
        filter_, replacement, _ = self.take(
            site,
            (_REQUIRED_FILTER, _Param("the replacement document", "document", True), _OPTIONS),
        )
        allowed = {
            key: value for key, value in FIND_AND_MODIFY_OPTIONS.items() if key != "arrayFilters"
        }
        options = self.options(site, 2, allowed)
        return self.find_and(
            collection,
            "find_one_and_replace",
            (filter_, replacement),
            options,
            f"replaces one document in {collection}",
        )

    def m_findOneAndDelete(self, collection: str, site: _Site) -> _Built:
        filter_, _ = self.take(site, (_REQUIRED_FILTER, _OPTIONS))
        allowed = {
            key: value
            for key, value in FIND_AND_MODIFY_OPTIONS.items()
            if key
            not in (
                "upsert",
                "returnDocument",
                "returnNewDocument",
                "arrayFilters",
                "bypassDocumentValidation",
            )
        }
        options = self.options(site, 1, allowed)
        return self.find_and(
            collection,
            "find_one_and_delete",
            (filter_,),
            options,
            f"deletes one document from {collection}",
        )

    def m_findAndModify(self, collection: str, site: _Site) -> _Built:
        (spec,) = self.take(site, (_Param("the findAndModify document", "document", True),))
        token = site.args[0][0]
        allowed = {
            **FIND_AND_MODIFY_OPTIONS,
            "query": "",
            "update": "",
            "remove": "",
            "new": "",
            "fields": "projection",
        }
        allowed.pop("projection")
        allowed.pop("returnDocument")
        allowed.pop("returnNewDocument")
        unknown = [key for key in spec if key not in allowed]
        if unknown:
            listed = ", ".join(allowed)
            raise self.fail(
                token,
                f"fields from: {listed}",
                f"unsupported findAndModify field {unknown[0]!r}: expected fields from: {listed}",
            )
        plain = {
            key: value
            for key, value in spec.items()
            if key not in ("query", "update", "remove", "new")
        }
        options = self.option_values(token, plain, allowed)
        query = self.convert(token, "query", as_document, spec.get("query", {}))
        remove = self.convert(token, "remove", as_bool, spec.get("remove", False))
        new = self.convert(token, "new", as_bool, spec.get("new", False))
        has_update = "update" in spec
        if remove == has_update:
            raise self.fail(
                token,
                "either remove: true or an update",
                "expected either remove: true or an update",
            )
        if remove:
            for key in ("upsert", "array_filters", "bypass_document_validation"):
                if key in options.kwargs:
                    raise self.fail(token, "no update options with remove: true")
            if new:
                raise self.fail(token, "no new: true with remove: true")
            return self.find_and(
                collection,
                "find_one_and_delete",
                (query,),
                options,
                f"deletes one document from {collection}",
                notes=("findAndModify() ran as findOneAndDelete()",),
            )
        update = spec["update"]
        if not _shape_ok("update", update):
            raise self.fail(token, "update: a document {...} or an update pipeline [{...}, ...]")
        options.kwargs["return_document"] = ReturnDocument.AFTER if new else ReturnDocument.BEFORE
        if _is_replacement(update):
            options.kwargs.pop("array_filters", None)
            return self.find_and(
                collection,
                "find_one_and_replace",
                (query, update),
                options,
                f"replaces one document in {collection}",
                notes=("findAndModify() ran as findOneAndReplace()",),
            )
        return self.find_and(
            collection,
            "find_one_and_update",
            (query, update),
            options,
            f"updates one document in {collection}",
            notes=("findAndModify() ran as findOneAndUpdate()",),
        )

    def m_bulkWrite(self, collection: str, site: _Site) -> _Built:
        operations, _ = self.take(
            site, (_Param("the operations", "documents", required=True), _OPTIONS)
        )
        options = self.options(
            site,
            1,
            {
                "ordered": "ordered",
                "comment": "comment",
                "let": "let",
                "bypassDocumentValidation": "bypass_document_validation",
                **CONCERN_OPTIONS,
            },
        )
        token = site.args[0][0]
        requests = []
        counts: dict[str, int] = {}
        for index, operation in enumerate(operations, start=1):
            request, name = self.bulk_operation(token, index, operation)
            requests.append(request)
            counts[name] = counts.get(name, 0) + 1
        if not requests:
            raise self.fail(token, "at least one operation")
        summary = ", ".join(f"{count} {name}" for name, count in counts.items())
        return self.write(
            "bulk_write", (requests,), options, f"bulkWrite on {collection}: {summary}"
        )

    def bulk_operation(self, token: Token, index: int, operation: dict) -> tuple[Any, str]:
        kinds = {
            "insertOne": ("document",),
            "updateOne": ("filter", "update", "upsert", "arrayFilters", "collation", "hint"),
            "updateMany": ("filter", "update", "upsert", "arrayFilters", "collation", "hint"),
            "replaceOne": ("filter", "replacement", "upsert", "collation", "hint"),
            "deleteOne": ("filter", "collation", "hint"),
            "deleteMany": ("filter", "collation", "hint"),
        }
        where = f"operation {index}"
        if len(operation) != 1 or next(iter(operation)) not in kinds:
            raise self.fail(
                token,
                f"one of {', '.join(kinds)}",
                f"{where}: expected one of {', '.join(kinds)}",
            )
        ((name, spec),) = operation.items()
        if not isinstance(spec, dict):
            raise self.fail(token, f"{where}: {name}: a document {{...}}")
        unknown = [key for key in spec if key not in kinds[name]]
        if unknown:
            raise self.fail(
                token,
                f"fields from: {', '.join(kinds[name])}",
                f"{where}: unsupported {name} field {unknown[0]!r}: expected fields from: "
                f"{', '.join(kinds[name])}",
            )
        required = {"insertOne": "document", "replaceOne": "replacement"}.get(name)
        needed = ("filter", required or ("update" if name.startswith("update") else "filter"))
        if name == "insertOne":
            needed = ("document",)
        for key in needed:
            if key not in spec:
                raise self.fail(
                    token, f"{where}: {name} with {key}", f"{where}: {name} needs {key}"
                )
        shapes = {
            "document": as_document,
            "filter": as_document,
            "replacement": as_document,
            "update": _as_update,
            "upsert": as_bool,
            "arrayFilters": as_documents,
            "collation": as_document,
            "hint": as_hint,
        }
        values = {
            key: self.convert(token, f"{where}: {key}", shapes[key], value)
            for key, value in spec.items()
        }
        if name == "insertOne":
            return InsertOne(values["document"]), name
        extra = {
            pymongo_name: values[key]
            for key, pymongo_name in (
                ("upsert", "upsert"),
                ("arrayFilters", "array_filters"),
                ("collation", "collation"),
                ("hint", "hint"),
            )
            if key in values
        }
        classes: dict[str, Any] = {
            "updateOne": UpdateOne,
            "updateMany": UpdateMany,
            "replaceOne": ReplaceOne,
            "deleteOne": DeleteOne,
            "deleteMany": DeleteMany,
        }
        if name.startswith("update"):
            return classes[name](values["filter"], values["update"], **extra), name
        if name == "replaceOne":
            return ReplaceOne(values["filter"], values["replacement"], **extra), name
        return classes[name](values["filter"], **extra), name

    def ddl(self, operation: str, args: tuple, kwargs: dict[str, Any], effect: str, **more: Any):
        return _Built(operation, args, kwargs, kind=DDL, result="write", effects=(effect,), **more)

    def index_options(self, site: _Site, index: int) -> dict[str, Any]:
        options = self.options(site, index, INDEX_OPTIONS)
        return options.kwargs

    def m_createIndex(self, collection: str, site: _Site) -> _Built:
        _, _, commit_quorum = self.take(
            site,
            (
                _Param("the index keys", "document", required=True),
                _OPTIONS,
                _Param("the commit quorum", "name"),
            ),
        )
        token, keys = site.args[0]
        pairs = self.convert(token, "the index keys", as_index_keys, keys)
        kwargs = self.index_options(site, 1)
        if commit_quorum is not None:
            kwargs["commitQuorum"] = commit_quorum
        return self.ddl("create_index", (pairs,), kwargs, f"creates an index on {collection}")

    def m_ensureIndex(self, collection: str, site: _Site) -> _Built:
        built = self.m_createIndex(collection, site)
        built.notes = ("ensureIndex() ran as createIndex()",)
        return built

    def m_createIndexes(self, collection: str, site: _Site) -> _Built:
        self.take(
            site,
            (
                _Param("the index keys", "keys list", required=True),
                _OPTIONS,
                _Param("the commit quorum", "name"),
            ),
        )
        token, keys_list = site.args[0]
        kwargs = self.index_options(site, 1)
        models = [
            IndexModel(self.convert(token, "the index keys", as_index_keys, keys), **kwargs)
            for keys in keys_list
        ]
        extra = {"commitQuorum": site.args[2][1]} if len(site.args) == 3 else {}
        return self.ddl(
            "create_indexes",
            (models,),
            extra,
            f"creates {_plural(len(models), 'index', 'indexes')} on {collection}",
        )

    def m_dropIndex(self, collection: str, site: _Site) -> _Built:
        self.take(site, (_Param("the index name or keys", "index", required=True),))
        token, value = site.args[0]
        target = self.convert(token, "the index", as_index_target, value)
        shown = value if isinstance(value, str) else _describe(token)
        return self.ddl("drop_index", (target,), {}, f"drops index {shown} on {collection}")

    def m_dropIndexes(self, collection: str, site: _Site) -> _Built:
        self.take(site, ())
        return self.ddl("drop_indexes", (), {}, f"drops every index on {collection} but _id")

    def m_getIndexes(self, collection: str, site: _Site) -> _Built:
        self.take(site, ())
        return _Built("list_indexes", (), {}, result="cursor")

    def m_drop(self, collection: str, site: _Site) -> _Built:
        self.take(site, ())
        return self.ddl("drop", (), {}, f"drops collection {collection} and its indexes")

    def m_renameCollection(self, collection: str, site: _Site) -> _Built:
        new_name, drop_target = self.take(
            site,
            (
                _Param("the new collection name", "name", required=True),
                _Param("dropTarget", "boolean"),
            ),
        )
        self.check_collection_name(new_name, site.args[0][0])
        kwargs = {"dropTarget": True} if drop_target else {}
        effect = f"renames {collection} to {new_name}"
        if drop_target:
            effect += f", dropping any existing {new_name}"
        return self.ddl("rename", (new_name,), kwargs, effect)

    def m_mapReduce(self, collection: str, site: _Site) -> _Built:
        map_js, reduce_js, _ = self.take(
            site,
            (
                _Param("the map function", "javascript", required=True),
                _Param("the reduce function", "javascript", required=True),
                _Param("the options", "options", required=True),
            ),
        )
        token, spec = site.args[2]
        allowed = (
            "out",
            "query",
            "sort",
            "limit",
            "finalize",
            "scope",
            "jsMode",
            "verbose",
            "collation",
            "bypassDocumentValidation",
        )
        unknown = [key for key in spec if key not in allowed]
        if unknown:
            raise self.fail(
                token,
                f"options from: {', '.join(allowed)}",
                f"unsupported option {unknown[0]!r}: expected options from: {', '.join(allowed)}",
            )
        if "out" not in spec:
            raise self.fail(token, "out: {inline: 1} or a collection name", "mapReduce needs out")
        command = SON(
            [("mapReduce", collection), ("map", Code(map_js)), ("reduce", Code(reduce_js))]
        )
        for key in allowed:
            if key in spec:
                value = spec[key]
                command[key] = (
                    Code(value) if key == "finalize" and isinstance(value, str) else value
                )
        out = spec["out"]
        if isinstance(out, dict) and set(out) == {"inline"}:
            return _Built("command", (command,), {}, target="database", result="map_reduce")
        destination = _map_reduce_destination(out)
        if destination is None:
            raise self.fail(
                token,
                "out: {inline: 1}, a collection name, or {replace|merge|reduce: name, db: name}",
            )
        built = self.write(
            "command", (command,), Options(), f"writes to {destination} through mapReduce"
        )
        built.target = "database"
        return built

    # -- explain

    def m_explain(self, collection: str, site: _Site) -> _Built:
        (verbosity,) = self.take(site, (_Param("the verbosity", "verbosity"),))
        self.expect_punct(".", "'.' and the method to explain, such as find")
        inner = self.site(self.collection_method_known)
        if inner.name.value not in _EXPLAINABLE:
            raise self.fail(inner.name, f"one of {', '.join(_EXPLAINABLE)}")
        built = getattr(self, "m_" + inner.name.value)(collection, inner)
        where = site.args[0][0] if site.args else site.name
        # The statement keeps the explained call's arguments, so its values are checked too.
        site.args = inner.args
        return self.explain_command(collection, where, verbosity, built)

    def explained(self, collection: str, terminal: _Site, built: _Built) -> _Built:
        (verbosity,) = self.take(terminal, (_Param("the verbosity", "verbosity"),))
        where = terminal.args[0][0] if terminal.args else terminal.name
        return self.explain_command(collection, where, verbosity, built)

    def explain_command(
        self, collection: str, where: Token, verbosity: Any, built: _Built
    ) -> _Built:
        if verbosity is None or verbosity is False:
            verbosity = "queryPlanner"
        elif verbosity is True:
            verbosity = "allPlansExecution"
        if built.kind != READ and verbosity != "queryPlanner":
            raise self.fail(
                where,
                'explain() or explain("queryPlanner")',
                f'explain("{verbosity}") would run the write: use explain() or '
                'explain("queryPlanner") to see the plan only',
            )
        command = SON([("explain", _explain_target(collection, built)), ("verbosity", verbosity)])
        return _Built(
            "command",
            (command,),
            {},
            target="database",
            result="explain",
            collection_options=built.collection_options,
            max_time_ms=built.max_time_ms,
            notes=built.notes,
            modifiers=built.modifiers,
        )

    # -- database methods

    def database_method(self, site: _Site) -> _Built:
        name = site.name.value
        if name == "getCollectionNames":
            self.take(site, ())
            return _Built("list_collection_names", (), {}, target="database", result="names")
        if name == "getCollectionInfos":
            (filter_,) = self.take(site, (_FILTER,))
            kwargs = {} if filter_ is None else {"filter": filter_}
            return _Built("list_collections", (), kwargs, target="database", result="cursor")
        if name == "createCollection":
            new_name, _ = self.take(
                site, (_Param("the collection name", "name", required=True), _OPTIONS)
            )
            self.check_collection_name(new_name, site.args[0][0])
            options = self.options(site, 1, CREATE_COLLECTION_OPTIONS)
            return _Built(
                "create_collection",
                (new_name,),
                options.kwargs,
                kind=DDL,
                result="write",
                target="database",
                collection_options=options.collection,
                effects=(f"creates collection {new_name}",),
            )
        # createView(name, source, pipeline, options)
        new_name, source, pipeline, _ = self.take(
            site,
            (
                _Param("the view name", "name", required=True),
                _Param("the source collection", "name", required=True),
                _Param("the pipeline", "pipeline", required=True),
                _OPTIONS,
            ),
        )
        self.check_collection_name(new_name, site.args[0][0])
        self.check_collection_name(source, site.args[1][0])
        options = self.options(site, 3, {"collation": "collation"})
        return _Built(
            "create_collection",
            (new_name,),
            {"viewOn": source, "pipeline": pipeline, **options.kwargs},
            kind=DDL,
            result="write",
            target="database",
            effects=(f"creates view {new_name} on {source}",),
        )

    # -- values

    def value(self) -> Any:
        if self.depth >= MAX_NESTING:
            raise self.fail(
                self.peek(),
                f"at most {MAX_NESTING} levels of nesting",
                f"values nest too deeply: expected at most {MAX_NESTING} levels of nesting",
            )
        self.depth += 1
        try:
            return self.plain_value()
        finally:
            self.depth -= 1

    def plain_value(self) -> Any:
        token = self.peek()
        if token.kind == "punct":
            if token.value == "{":
                return self.object()
            if token.value == "[":
                return self.array()
            if token.value in "-+":
                return self.signed_number()
        if token.kind in ("string", "regex"):
            return self.advance().value
        if token.kind == "number":
            return clamp(self.advance().value)
        if token.kind == "ident":
            return self.identifier_value()
        raise self.fail(token, "a value")

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
        return clamp(-value if sign.value == "-" else value)

    def identifier_value(self) -> Any:
        token = self.advance()
        name = token.value
        if name in LITERALS and not self.is_punct("("):
            return LITERALS[name]
        if name == "new":
            constructor = self.peek()
            if constructor.kind != "ident" or constructor.value not in CONSTRUCTORS:
                raise self.fail(constructor, f"one of {', '.join(CONSTRUCTORS)} after 'new'")
            self.advance()
            return self.construct(constructor)
        if name in CONSTRUCTORS:
            return self.construct(token)
        if name == "function" or self.is_punct("=") or name == "this":
            raise self.fail(
                token,
                "a value",
                "JavaScript functions are not accepted: dbquery never runs JavaScript it is "
                "given; write the value itself",
            )
        raise self.fail(
            token,
            "a value",
            f"expected a value but found {_describe(token)}"
            + (
                f" (functions allowed here: {', '.join(CONSTRUCTORS)})"
                if self.is_punct("(")
                else ""
            ),
        )

    def construct(self, name_token: Token) -> Any:
        spec = CONSTRUCTORS[name_token.value]
        if not self.is_punct("("):
            raise self.fail(self.peek(), f"'(' after {name_token.value}")
        args = self.call_args()
        where = args[0][0] if args else name_token
        if len(args) not in spec.arities:
            raise self.fail(where, spec.expected, f"{name_token.value}() expects {spec.expected}")
        try:
            return spec.build(*(value for _, value in args))
        except (ValueError, TypeError, OverflowError, OSError, ArithmeticError):
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
        while self.is_punct(".") and self.peek().start == self.previous().end:
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


# In the order error messages list them: today's names first, the legacy ones last.
COLLECTION_METHODS = (
    "find",
    "findOne",
    "aggregate",
    "countDocuments",
    "estimatedDocumentCount",
    "distinct",
    "insertOne",
    "insertMany",
    "updateOne",
    "updateMany",
    "replaceOne",
    "deleteOne",
    "deleteMany",
    "findOneAndUpdate",
    "findOneAndReplace",
    "findOneAndDelete",
    "bulkWrite",
    "createIndex",
    "createIndexes",
    "dropIndex",
    "dropIndexes",
    "getIndexes",
    "drop",
    "renameCollection",
    "explain",
    "mapReduce",
    "count",
    "insert",
    "update",
    "remove",
    "findAndModify",
    "ensureIndex",
)
assert set(COLLECTION_METHODS) == {
    name.removeprefix("m_") for name in vars(_Parser) if name.startswith("m_")
}
_EXPLAINABLE = (
    "find",
    "aggregate",
    "count",
    "distinct",
    "updateOne",
    "updateMany",
    "update",
    "deleteOne",
    "deleteMany",
    "remove",
)


def _plural(count: int, word: str, plural: str | None = None) -> str:
    return f"{count} {word if count == 1 else (plural or word + 's')}"


def _is_replacement(update: Any) -> bool:
    return isinstance(update, dict) and not any(key.startswith("$") for key in update)


def _as_update(value: Any) -> Any:
    if isinstance(value, dict) or (
        isinstance(value, list) and all(isinstance(item, dict) for item in value)
    ):
        return value
    raise BadOption("a document {...} or an update pipeline [{...}, ...]")


def _write_destinations(value: Any) -> tuple[str, ...]:
    found: dict[str, None] = {}
    for key, spec in _keys(value):
        if key in WRITING_STAGES:
            found[f"{_destination(key, spec)} through {key}"] = None
    return tuple(found)


def _map_reduce_destination(out: Any) -> str | None:
    if isinstance(out, str) and out:
        return f"{out} (this database)"
    if isinstance(out, dict):
        actions = [key for key in ("replace", "merge", "reduce") if key in out]
        if len(actions) == 1 and set(out) <= {actions[0], "db", "sharded", "nonAtomic"}:
            name, database = out[actions[0]], out.get("db")
            if isinstance(name, str) and name:
                return (
                    f"{database}.{name}" if isinstance(database, str) else f"{name} (this database)"
                )
    return None


def _pairs(value: Any) -> Any:
    return SON(value) if isinstance(value, list) else value


def _explain_target(collection: str, built: _Built) -> SON:
    """The command `built` would send, as the explain command wants it."""
    args, kwargs = built.call_args, built.call_kwargs
    names = {
        "batch_size": "batchSize",
        "allow_disk_use": "allowDiskUse",
        "return_key": "returnKey",
        "show_record_id": "showRecordId",
        "no_cursor_timeout": "noCursorTimeout",
    }
    if built.operation == "find":
        command = SON([("find", collection), ("filter", args[0])])
        if args[1] is not None:
            command["projection"] = args[1]
        for key, value in kwargs.items():
            command[names.get(key, key)] = _pairs(value)
        return command
    if built.operation == "aggregate":
        command = SON([("aggregate", collection), ("pipeline", args[0]), ("cursor", {})])
        for key, value in kwargs.items():
            if key == "batchSize":
                command["cursor"] = {"batchSize": value}
            else:
                command[key] = _pairs(value)
        return command
    if built.operation == "count_documents":
        command = SON([("count", collection), ("query", args[0])])
        command.update({key: _pairs(value) for key, value in kwargs.items()})
        return command
    if built.operation == "distinct":
        command = SON([("distinct", collection), ("key", args[0]), ("query", args[1])])
        command.update({key: _pairs(value) for key, value in kwargs.items()})
        return command
    if built.operation in ("update_one", "update_many", "replace_one"):
        update = SON([("q", args[0]), ("u", args[1])])
        update["multi"] = built.operation == "update_many"
        for key, name in (("upsert", "upsert"), ("array_filters", "arrayFilters")):
            if key in kwargs:
                update[name] = kwargs[key]
        for key in ("collation", "hint"):
            if key in kwargs:
                update[key] = _pairs(kwargs[key])
        return SON([("update", collection), ("updates", [update])])
    # delete_one, delete_many
    delete = SON([("q", args[0]), ("limit", 1 if built.operation == "delete_one" else 0)])
    for key in ("collation", "hint"):
        if key in kwargs:
            delete[key] = _pairs(kwargs[key])
    return SON([("delete", collection), ("deletes", [delete])])
