"""Hostile MongoDB submissions: each is refused at submit, labelled for what it does, or a read.

Server-side JavaScript hides in filters, pipelines and nested stages, behind quoted keys and
unicode escapes; writes hide in $out and $merge at any depth; and crash inputs try to exhaust
the parser. Every case states its outcome, checked through the analysis the submit path uses.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.analysis import ADMIN, AnalysisError, analyse
from core.executors.mongo_shell import COLLECTION_METHODS, parse, pymongo_call

FUNCTION = '{body: "function(a) { return true }", args: ["$a"], lang: "js"}'
ACCUMULATOR = (
    '{init: "function() { return 0 }", accumulate: "function(s) { return s }", '
    'accumulateArgs: [], merge: "function(a, b) { return a }", lang: "js"}'
)


@dataclass(frozen=True)
class Case:
    text: str
    outcome: str  # refused | write | read
    detail: str  # refused: in the message; write: in the reasons
    where: tuple[int, int] | None = None  # refused: line and column
    server_js: bool = False  # refused only because of server-side JavaScript


CASES = [
    # Server-side JavaScript, wherever it is written.
    Case('db.c.find({$where: "this.a > 1"})', "refused", "$where", (1, 1), True),
    Case('db.c.find({"\\u0024where": "sleep(100)"})', "refused", "$where", (1, 1), True),
    Case("db.c.find({'$where': 'true'})", "refused", "$where", (1, 1), True),
    Case(
        'db.c.find({a: 1, $or: [{b: {$exists: 1}}, {$where: "1"}]})',
        "refused",
        "$where",
        (1, 1),
        True,
    ),
    Case(f"db.c.find({{$expr: {{$function: {FUNCTION}}}}})", "refused", "$function", (1, 1), True),
    Case(
        f"db.c.aggregate([{{$match: {{$expr: {{$function: {FUNCTION}}}}}}}])",
        "refused",
        "$function",
        (1, 1),
        True,
    ),
    Case(
        f"db.c.aggregate([{{$group: {{_id: null, s: {{$accumulator: {ACCUMULATOR}}}}}}}])",
        "refused",
        "$accumulator",
        (1, 1),
        True,
    ),
    Case(
        'db.c.aggregate([{$facet: {a: [{$match: {$where: "1"}}]}}])',
        "refused",
        "$where",
        (1, 1),
        True,
    ),
    Case(
        f'db.c.aggregate([{{$lookup: {{from: "o", as: "x", pipeline: [{{$addFields: '
        f"{{f: {{$function: {FUNCTION}}}}}}}]}}}}])",
        "refused",
        "$function",
        (1, 1),
        True,
    ),
    Case(
        'db.c.aggregate([{$unionWith: {coll: "o", pipeline: [{$match: {"$\\u0077here": "1"}}]}}])',
        "refused",
        "$where",
        (1, 1),
        True,
    ),
    Case('db.c.countDocuments({$where: "1"})', "refused", "$where", (1, 1), True),
    Case('db.c.updateMany({$where: "1"}, {$set: {a: 1}})', "refused", "$where", (1, 1), True),
    Case(
        'db.c.deleteOne({$expr: {$function: {body: "x", args: [], lang: "js"}}})',
        "refused",
        "$function",
        (1, 1),
        True,
    ),
    Case(
        'db.c.find().min({a: 1}).hint({a: 1})\ndb.c.find({$where: "1"})',
        "refused",
        "$where",
        (2, 1),
        True,
    ),
    Case(
        'db.c.mapReduce("function() { emit(1, 1) }", "function(k, v) { return 1 }", '
        "{out: {inline: 1}})",
        "refused",
        "mapReduce",
        (1, 1),
        True,
    ),
    Case('db.c.explain().find({$where: "1"})', "refused", "$where", (1, 1), True),
    Case(
        "db.c.find({$where: function() { return true }})",
        "refused",
        "JavaScript functions",
        (1, 20),
    ),
    Case(
        "db.c.find().forEach(function(d) { db.x.insertOne(d) })",
        "refused",
        "JavaScript callbacks",
        (1, 13),
    ),
    Case("db.runCommand({dropDatabase: 1})", "refused", "runCommand()", (1, 4)),
    Case("db.adminCommand({shutdown: 1})", "refused", "adminCommand()", (1, 4)),
    Case('db.eval("db.c.drop()")', "refused", "eval()", (1, 4)),
    Case('db.getSiblingDB("admin").users.find()', "refused", "another database", (1, 4)),
    Case("var n = 1; db.c.find({a: n})", "refused", "variables", (1, 1)),
    # $out and $merge at any depth make a write, naming where they write.
    Case(
        'db.c.aggregate([{$match: {}}, {$out: "daily"}])',
        "write",
        "writes to daily (this database) through $out",
    ),
    Case(
        'db.c.aggregate([{$out: {db: "reports", coll: "daily"}}])',
        "write",
        "writes to reports.daily through $out",
    ),
    Case(
        'db.c.aggregate([{$merge: "daily"}])',
        "write",
        "writes to daily (this database) through $merge",
    ),
    Case(
        'db.c.aggregate([{$merge: {into: {db: "reports", coll: "daily"}, on: "_id"}}])',
        "write",
        "writes to reports.daily through $merge",
    ),
    Case(
        'db.c.aggregate([{$facet: {a: [{$out: "x"}]}}])',
        "write",
        "writes to x (this database) through $out",
    ),
    Case(
        'db.c.aggregate([{$lookup: {from: "o", as: "z", pipeline: [{$merge: {into: "y"}}]}}])',
        "write",
        "writes to y (this database) through $merge",
    ),
    Case(
        'db.c.aggregate([{$unionWith: {coll: "o", pipeline: [{"\\u0024out": "w"}]}}])',
        "write",
        "writes to w (this database) through $out",
    ),
    Case(
        'db.c.aggregate({$match: {}}, {$out: {db: "r", coll: "d"}})',
        "write",
        "writes to r.d through $out",
    ),
    Case(
        'db.c.explain("executionStats").aggregate([{$out: "x"}])',
        "refused",
        "would run the write",
        (1, 14),
    ),
    Case(
        'db.c.explain("executionStats").deleteMany({})', "refused", "would run the write", (1, 14)
    ),
    Case("db.c.find({a: 1}).explain(true)", "read", ""),
    Case('db.c.explain().aggregate([{$out: "x"}])', "read", ""),
    # Names that look like operators in values are data.
    Case('db.c.find({a: "$where", b: "$function"})', "read", ""),
    Case('db.c.aggregate([{$project: {x: {$literal: "$accumulator"}}}])', "read", ""),
    Case(
        'db.c.insertOne({code: Code("function() { return 1 }")})',
        "write",
        "inserts 1 document into c",
    ),
    # Crash inputs: each is a field error at a line and column, never a crash.
    Case("db.c.find({a: " + "NumberInt(" * 10_000, "refused", "nest too deeply", (1, 1005)),
    Case("db.c.find({a: " + "9" * 5_000 + "})", "refused", "number too long", (1, 15)),
    Case(
        "db.c.find({a: NumberDecimal('" + "9" * 100_000 + "')})",
        "refused",
        "a decimal number",
        (1, 29),
    ),
    Case("db.c.find(" + "[" * 10_000, "refused", "nest too deeply", (1, 111)),
    Case("db.c.find({a: " + "{b: " * 5_000, "refused", "nest too deeply", (1, 411)),
    Case("db.c.find({a: 0x" + "f" * 5_000 + "})", "refused", "number too long", (1, 15)),
    Case("db.c.find({a: '\\u{" + "f" * 5_000 + "}'})", "refused", "hexadecimal", (1, 16)),
    Case("db.c.find({a: NumberLong('" + "9" * 5_000 + "')})", "refused", "64-bit", (1, 26)),
    Case("db.c.find({a: new Date(1e300)})", "refused", "ISO-8601", (1, 24)),
    Case("db.c.find({})\n" * 1_001, "refused", "too many statements", (1_001, 1)),
    Case("db.c.find({a: '" + "x" * 1_000_001 + "'})", "refused", "string too long", (1, 15)),
]


def _id(case: Case) -> str:
    return case.text[:60]


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_hostile_submission_gets_its_stated_outcome(case: Case) -> None:
    if case.outcome == "refused":
        with pytest.raises(AnalysisError) as caught:
            analyse("mongodb", case.text, "script")
        assert case.detail in caught.value.message, caught.value.message
        assert (caught.value.line, caught.value.column) == case.where, str(caught.value)
        return
    analysis = analyse("mongodb", case.text, "script")
    assert analysis.kind == case.outcome
    if case.outcome == "read":
        assert analysis.read_only and analysis.reasons == ()
    else:
        assert case.detail in analysis.reasons, analysis.reasons


JS_CASES = [case for case in CASES if case.server_js]


@pytest.mark.parametrize("case", JS_CASES, ids=[_id(c) for c in JS_CASES])
def test_an_instance_that_allows_server_javascript_gets_a_warning_and_never_a_read(
    case: Case,
) -> None:
    analysis = analyse("mongodb", case.text, "script", allow_server_js=True)
    assert analysis.kind == ADMIN
    assert not analysis.read_only
    assert any(case.detail in reason for reason in analysis.reasons), analysis.reasons
    assert any(
        "server-side JavaScript" in warning and case.detail in warning
        for warning in analysis.warnings
    ), analysis.warnings


def test_the_table_covers_every_outcome() -> None:
    outcomes = {case.outcome for case in CASES}
    assert outcomes == {"refused", "write", "read"}
    assert len(CASES) >= 15


# --- property-based fuzzing ---------------------------------------------------------------
#
# A grammar of shell fragments (methods, cursor chains, literals, constructors, nesting,
# comments, strings with escapes), plus the same fragments cut short or with characters
# dropped in. Whatever comes out, the analysis answers with a result or an AnalysisError that
# carries a message: never another exception.

IDENTIFIERS = st.sampled_from(["a", "b", "status", "_id", "items.0.qty", "café", "$x"])
OPERATORS = st.sampled_from(
    [
        "$gt",
        "$in",
        "$set",
        "$inc",
        "$match",
        "$group",
        "$out",
        "$merge",
        "$facet",
        "$lookup",
        "$unionWith",
        "$expr",
        "$where",
        "$function",
        "$accumulator",
        "$regex",
        "$exists",
    ]
)
ESCAPES = st.sampled_from(
    [
        "\\n",
        "\\t",
        "\\u0024",
        "\\x41",
        "\\u{1F600}",
        "\\u{110000}",
        "\\'",
        '\\"',
        "\\\\",
        "\\",
        "\\u12",
        "\\q",
    ]
)


def _quoted(parts: list[str], quote: str) -> str:
    return quote + "".join(parts) + quote


STRINGS = st.builds(
    _quoted,
    st.lists(st.one_of(st.text(alphabet="abc $.{}'\"/", max_size=4), ESCAPES), max_size=4),
    st.sampled_from(["'", '"', "\u201c"]),
)
NUMBERS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(["0x1F", ".5", "1e999", "-Infinity", "NaN", "1e", "0x", "9" * 120, "12abc"]),
)
ATOMS = st.one_of(
    NUMBERS,
    STRINGS,
    st.sampled_from(
        [
            "true",
            "false",
            "null",
            "undefined",
            "MinKey",
            "MaxKey()",
            "/ab+c/i",
            "/x/g",
            "new Date()",
            "ObjectId()",
            "function() {}",
            "this",
            "foo",
        ]
    ),
)
CONSTRUCTORS = st.sampled_from(
    [
        "ObjectId",
        "ISODate",
        "Date",
        "new Date",
        "NumberLong",
        "NumberInt",
        "NumberDecimal",
        "Decimal128",
        "Timestamp",
        "UUID",
        "BinData",
        "HexData",
        "MD5",
        "DBRef",
        "Code",
        "RegExp",
        "MinKey",
        "Double",
        "Nope",
    ]
)


def _document(pairs: list[tuple[str, str]]) -> str:
    return "{" + ", ".join(f"{key}: {value}" for key, value in pairs) + "}"


def _values(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    keys = st.one_of(IDENTIFIERS, OPERATORS, STRINGS)
    return st.one_of(
        st.builds(_document, st.lists(st.tuples(keys, children), max_size=4)),
        st.lists(children, max_size=4).map(lambda items: "[" + ", ".join(items) + "]"),
        st.builds(
            lambda name, args: f"{name}({', '.join(args)})",
            CONSTRUCTORS,
            st.lists(children, max_size=3),
        ),
    )


VALUES = st.recursive(ATOMS, _values, max_leaves=8)
METHODS = st.one_of(
    st.sampled_from(COLLECTION_METHODS),
    st.sampled_from(["save", "frob", "forEach", "runCommand", "insertOne", "find"]),
)
MODIFIERS = st.sampled_from(
    [
        "sort",
        "limit",
        "skip",
        "count",
        "explain",
        "hint",
        "maxTimeMS",
        "readPref",
        "min",
        "pretty",
        "toArray",
        "forEach",
        "next",
        "batchSize",
        "collation",
        "returnKey",
    ]
)


def _call(name: str, args: list[str]) -> str:
    return f"{name}({', '.join(args)})"


STATEMENTS = st.one_of(
    st.builds(
        lambda collection, method, args, chain: (
            f"db.{collection}.{_call(method, args)}"
            + "".join(f".{_call(name, values)}" for name, values in chain)
        ),
        st.sampled_from(["c", "orders", "a.b", "getCollection('x')"]),
        METHODS,
        st.lists(VALUES, max_size=4),
        st.lists(st.tuples(MODIFIERS, st.lists(VALUES, max_size=2)), max_size=3),
    ),
    st.builds(
        lambda method, args: f"db.{_call(method, args)}",
        st.sampled_from(
            [
                "getCollectionNames",
                "createCollection",
                "createView",
                "eval",
                "getSiblingDB",
                "adminCommand",
                "x",
            ]
        ),
        st.lists(VALUES, max_size=4),
    ),
    st.builds(
        lambda verbosity, method, args: f"db.c.explain({verbosity}).{_call(method, args)}",
        st.sampled_from(["", "true", "'executionStats'", "'queryPlanner'", "5"]),
        METHODS,
        st.lists(VALUES, max_size=3),
    ),
    st.sampled_from(["var x = 1", "for (;;) {}", "use other", "print(1)", "db", "db.", ""]),
)
SEPARATORS = st.sampled_from([";", "\n", "; ", " // note\n", "\n/* block */\n", " "])


@st.composite
def scripts(draw: st.DrawFn) -> str:
    statements = draw(st.lists(STATEMENTS, min_size=1, max_size=4))
    separators = draw(st.lists(SEPARATORS, min_size=len(statements), max_size=len(statements)))
    text = "".join(s + sep for s, sep in zip(statements, separators, strict=True))
    # Damage: cut the text short, or drop a character in somewhere.
    damage = draw(st.sampled_from(["none", "none", "cut", "insert"]))
    if damage == "cut" and text:
        text = text[: draw(st.integers(0, len(text) - 1))]
    elif damage == "insert":
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.sampled_from(list("{}[]()'\"/\\,:;.$`=\u00a0\n"))) + text[at:]
    return text


def _answers(text: str, allow_server_js: bool) -> None:
    try:
        analysis = analyse("mongodb", text, "script", allow_server_js=allow_server_js)
    except AnalysisError as refused:
        assert refused.message
        assert refused.line is None or (refused.line >= 1 and refused.column >= 1)
        return
    assert analysis.statements
    for statement in parse(text):
        pymongo_call(statement)
        assert statement.kind in ("read", "write", "ddl")


# Fresh inputs every run (no example database): each run explores new ground, and a failure
# prints the text that caused it.
@settings(
    max_examples=1_200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)
@given(scripts(), st.booleans())
def test_fuzzed_shell_text_is_answered_never_crashes(text: str, allow_server_js: bool) -> None:
    _answers(text, allow_server_js)


@settings(max_examples=3_000, deadline=None, database=None)
@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=80))
def test_arbitrary_text_is_answered_never_crashes(text: str) -> None:
    _answers("db.c.find(" + text, False)
    _answers(text, True)


SEEDS = [case.text for case in CASES if len(case.text) < 500] + [
    "db.c.find({a: 1}, {b: 1}).sort({b: -1}).limit(5).explain('executionStats')",
    "db.c.bulkWrite([{updateMany: {filter: {}, update: {$set: {a: 1}}}}], {ordered: false})",
    "db.c.findAndModify({query: {a: 1}, update: {$inc: {n: 1}}, new: true, fields: {n: 1}})",
    "db.c.createIndex({a: 1}, {partialFilterExpression: {b: {$gt: 5}}, name: 'a'})",
    "db.c.insertOne({d: new Date(2024, 0, 1), b: BinData(0, 'aGk='), t: Timestamp(1, 2)})",
    "db.c.aggregate([{$lookup: {from: 'o', pipeline: [{$match: {x: 1}}], as: 'y'}}])",
]


@st.composite
def mutated(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(text)))
        end = min(len(text), at + draw(st.integers(0, 8)))
        how = draw(st.sampled_from(["delete", "insert", "repeat"]))
        if how == "delete":
            text = text[:at] + text[end:]
        elif how == "insert":
            piece = draw(st.sampled_from([*"{}[]()'\"`/\\,:;.$-e0\n", "new ", "$where"]))
            text = text[:at] + piece + text[at:]
        else:
            text = text[:at] + text[at:end] * draw(st.integers(2, 4)) + text[end:]
    return text


@settings(max_examples=1_500, deadline=None, database=None)
@given(mutated(), st.booleans())
def test_mutated_snippets_are_answered_never_crash(text: str, allow_server_js: bool) -> None:
    _answers(text, allow_server_js)
