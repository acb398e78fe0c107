"""Hostile MongoDB submissions: each is refused at submit, labelled for what it does, or a read.

Server-side JavaScript hides in filters, pipelines and nested stages, behind quoted keys and
unicode escapes; writes hide in $out and $merge at any depth; and crash inputs try to exhaust
the parser. Every case states its outcome, checked through the analysis the submit path uses.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from core.analysis import ADMIN, AnalysisError, analyse

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
