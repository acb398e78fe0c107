"""The shell syntax people paste becomes exactly the pymongo call the shell would make."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest
from bson import (
    Binary,
    Code,
    DBRef,
    Decimal128,
    Int64,
    MaxKey,
    MinKey,
    ObjectId,
    Regex,
    Timestamp,
)
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
from pymongo.read_concern import ReadConcern
from pymongo.read_preferences import Nearest, Secondary, SecondaryPreferred
from pymongo.write_concern import WriteConcern

from core.executors.mongo_shell import MongoParseError, parse, pymongo_call

UTC = dt.UTC
OID = "65a1f0c2e4b0a1b2c3d4e5f6"

# (shell text, collection, (method, args, kwargs))
VALID = [
    ("db.orders.find()", "orders", ("find", ({}, None), {})),
    ('db.orders.find({status: "open"})', "orders", ("find", ({"status": "open"}, None), {})),
    (
        "db.orders.find({status: 'open'}, {total: 1, _id: 0})",
        "orders",
        ("find", ({"status": "open"}, {"total": 1, "_id": 0}), {}),
    ),
    (
        "db.c.find({a: 1}, {b: 1}).sort({b: -1}).limit(5).skip(2)",
        "c",
        ("find", ({"a": 1}, {"b": 1}), {"sort": [("b", -1)], "limit": 5, "skip": 2}),
    ),
    (
        "db.c.find({})\n  .sort({a: 1, b: -1})\n  .pretty()",
        "c",
        ("find", ({}, None), {"sort": [("a", 1), ("b", -1)]}),
    ),
    ("db.c.find({a: 1}).projection({a: 1})", "c", ("find", ({"a": 1}, {"a": 1}), {})),
    ("db.c.find().hint({a: 1}).toArray()", "c", ("find", ({}, None), {"hint": [("a", 1)]})),
    ("db.c.find().hint('a_1').limit(0)", "c", ("find", ({}, None), {"hint": "a_1", "limit": 0})),
    ('db.getCollection("order items").find({})', "order items", ("find", ({}, None), {})),
    (
        f'db["audit.log"].findOne({{_id: ObjectId("{OID}")}})',
        "audit.log",
        ("find_one", ({"_id": ObjectId(OID)}, None), {}),
    ),
    ("db.system.profile.find()", "system.profile", ("find", ({}, None), {})),
    ("db.users.findOne({}, {email: 1})", "users", ("find_one", ({}, {"email": 1}), {})),
    (
        "db.sales.aggregate([{$match: {region: 'eu'}}, {$group: {_id: '$sku', n: {$sum: 1}}}])",
        "sales",
        (
            "aggregate",
            ([{"$match": {"region": "eu"}}, {"$group": {"_id": "$sku", "n": {"$sum": 1}}}],),
            {},
        ),
    ),
    (
        "db.sales.aggregate([{$limit: 1}], {allowDiskUse: true})",
        "sales",
        ("aggregate", ([{"$limit": 1}],), {"allowDiskUse": True}),
    ),
    ("db.c.countDocuments()", "c", ("count_documents", ({},), {})),
    (
        "db.c.countDocuments({a: {$gte: 2}}, {limit: 10})",
        "c",
        ("count_documents", ({"a": {"$gte": 2}},), {"limit": 10}),
    ),
    ("db.c.estimatedDocumentCount()", "c", ("estimated_document_count", (), {})),
    ('db.c.distinct("status")', "c", ("distinct", ("status", {}), {})),
    (
        "db.c.distinct('status', {region: 'eu'})",
        "c",
        ("distinct", ("status", {"region": "eu"}), {}),
    ),
    (
        "db.c.insertOne({name: 'Ann', tags: ['a', 'b'], address: {city: 'Oslo'}})",
        "c",
        ("insert_one", ({"name": "Ann", "tags": ["a", "b"], "address": {"city": "Oslo"}},), {}),
    ),
    (
        "db.c.insertMany([{a: 1}, {a: 2},], {ordered: false})",
        "c",
        ("insert_many", ([{"a": 1}, {"a": 2}],), {"ordered": False}),
    ),
    (
        "db.c.updateOne({_id: 1}, {$set: {'a.b': 2}})",
        "c",
        ("update_one", ({"_id": 1}, {"$set": {"a.b": 2}}), {}),
    ),
    (
        "db.c.updateMany({}, {$inc: {n: 1}}, {upsert: true})",
        "c",
        ("update_many", ({}, {"$inc": {"n": 1}}), {"upsert": True}),
    ),
    (
        "db.c.updateMany({}, {$set: {'grades.$[g]': 100}}, {arrayFilters: [{g: {$gte: 90}}]})",
        "c",
        (
            "update_many",
            ({}, {"$set": {"grades.$[g]": 100}}),
            {"array_filters": [{"g": {"$gte": 90}}]},
        ),
    ),
    (
        "db.c.updateOne({_id: 1}, [{$set: {total: {$add: ['$a', '$b']}}}])",
        "c",
        ("update_one", ({"_id": 1}, [{"$set": {"total": {"$add": ["$a", "$b"]}}}]), {}),
    ),
    (
        "db.c.replaceOne({_id: 1}, {a: 2}, {upsert: true})",
        "c",
        ("replace_one", ({"_id": 1}, {"a": 2}), {"upsert": True}),
    ),
    ("db.c.deleteOne({_id: 1})", "c", ("delete_one", ({"_id": 1},), {})),
    (
        'db.c.deleteMany({createdAt: {$lt: ISODate("2024-01-01")}})',
        "c",
        ("delete_many", ({"createdAt": {"$lt": dt.datetime(2024, 1, 1, tzinfo=UTC)}},), {}),
    ),
    (
        "db.c.find({name: /^ab+c$/i, code: {$in: [/x/, /y\\/z/m]}})",
        "c",
        (
            "find",
            (
                {"name": Regex("^ab+c$", "i"), "code": {"$in": [Regex("x"), Regex("y\\/z", "m")]}},
                None,
            ),
            {},
        ),
    ),
    (
        "db.c.find({a.b: 1, 'c.d': 2, items.0.qty: {$gt: 3}})",
        "c",
        ("find", ({"a.b": 1, "c.d": 2, "items.0.qty": {"$gt": 3}}, None), {}),
    ),
    (
        "// open orders\ndb.c.find({ /* status */ status: 'open', }, {a: 1,},)",
        "c",
        ("find", ({"status": "open"}, {"a": 1}), {}),
    ),
    (
        'db.c.find({s: "tab\\there \\"q\\"", t: \'it\\\'s \\u00e9\\x41\'})',
        "c",
        ("find", ({"s": 'tab\there "q"', "t": "it's \u00e9A"}, None), {}),
    ),
    (
        "db.c.find({n: [-1, 2.5, 1e3, -1.5e-2, 0x1F, .5, +4]})",
        "c",
        ("find", ({"n": [-1, 2.5, 1000.0, -0.015, 31, 0.5, 4]}, None), {}),
    ),
    (
        "db.c.insertOne({l: NumberLong('9007199254740993'), i: NumberInt(7), "
        "d: NumberDecimal('0.10')})",
        "c",
        (
            "insert_one",
            ({"l": Int64(9007199254740993), "i": 7, "d": Decimal128("0.10")},),
            {},
        ),
    ),
    (
        "db.c.find({a: new Date(0), b: Date('2024-05-01T12:00:00+02:00'), "
        "c: new ISODate('2024-05-01')})",
        "c",
        (
            "find",
            (
                {
                    "a": dt.datetime(1970, 1, 1, tzinfo=UTC),
                    "b": dt.datetime(2024, 5, 1, 10, tzinfo=UTC),
                    "c": dt.datetime(2024, 5, 1, tzinfo=UTC),
                },
                None,
            ),
            {},
        ),
    ),
    (
        "db.c.find({a: null, b: true, c: false, d: undefined, e: {$exists: false}})",
        "c",
        (
            "find",
            ({"a": None, "b": True, "c": False, "d": None, "e": {"$exists": False}}, None),
            {},
        ),
    ),
    (
        "db.c.find({$or: [{a: [[1, 2], [3]]}, {b: {c: {d: {e: []}}}}]})",
        "c",
        ("find", ({"$or": [{"a": [[1, 2], [3]]}, {"b": {"c": {"d": {"e": []}}}}]}, None), {}),
    ),
    (
        "db.c.find({café: 'ok', $comment: 'x'})",
        "c",
        ("find", ({"café": "ok", "$comment": "x"}, None), {}),
    ),
    (
        "db.c.insertOne({ts: Timestamp(1, 2), u: UUID('123e4567-e89b-12d3-a456-426614174000')})",
        "c",
        (
            "insert_one",
            (
                {
                    "ts": Timestamp(1, 2),
                    "u": Binary.from_uuid(uuid.UUID("123e4567-e89b-12d3-a456-426614174000")),
                },
            ),
            {},
        ),
    ),
    (
        "db.c\u200b.find({a: 1})\u2060",
        "c",
        ("find", ({"a": 1}, None), {}),
    ),
    (
        "db.c.find({a: \u201cslack quotes\u201d})\u00a0;",
        "c",
        ("find", ({"a": "slack quotes"}, None), {}),
    ),
]


@pytest.mark.parametrize(("text", "collection", "call"), VALID, ids=[v[0][:50] for v in VALID])
def test_shell_text_becomes_the_pymongo_call(text: str, collection: str, call: tuple) -> None:
    (stmt,) = parse(text)
    assert stmt.collection == collection
    assert pymongo_call(stmt) == call


# (shell text, line, column, fragment of what was expected)
INVALID = [
    ("", 1, 1, "a statement such as db.collection.find({})"),
    ("  // only a comment\n", 2, 1, "a statement"),
    ("db.c.find({a: 1)", 1, 16, "',' or '}'"),
    ("db.c.find({a: 1},\n  {b: 1)", 2, 8, "',' or '}'"),
    ("db.c.frobnicate()", 1, 6, "find, findOne, aggregate, countDocuments"),
    ("db.c.updateOne({a: 1})", 1, 22, "the update"),
    ("db.c.find({a: 'open})", 1, 15, "a closing '"),
    ("db.c.find({_id: ObjectId('123')})", 1, 26, "24-character hex string"),
    ("db.c.find() db.d.find()", 1, 13, "';' or a new line"),
    ("db.find()", 1, 4, "a collection"),
    ("db.c", 1, 5, "a method"),
    ("db.c.find({a: /x/g})", 1, 18, "regular expression flags"),
    ("db.c.insertOne([{a: 1}])", 1, 16, "a document {...} for the new document"),
    ("db.c.insertMany({a: 1})", 1, 17, "an array of documents"),
    ("db.c.updateOne({}, {$set: {a: 1}}, {upsrt: true})", 1, 36, "upsert"),
    ("db.c.find().limit(-1)", 1, 19, "a non-negative integer"),
    ("db.c.find({a: foo})", 1, 15, "a value"),
    ("x = 1", 1, 1, "a statement starting with 'db.'"),
    ("db.c.find({a: 1,,})", 1, 17, "a key or '}'"),
    ("db.c.find({a: 1}) = 2", 1, 19, None),
    ("db.c.find({a: ISODate('yesterday')})", 1, 23, "ISO-8601"),
    ("db.c.find({a: [1, 2})", 1, 20, "',' or ']'"),
    ("db.c.find({a: 1}, {b: 1}, {c: 1})", 1, 27, "options from"),
    ("db.c.countDocuments({}).sort({a: 1})", 1, 25, "';' or a new line"),
    ("db.c.aggregate(5)", 1, 16, "a stage {...}"),
    ("db.c.find({a: 1} /* never closed", 1, 18, "'*/'"),
    ("db.c.find({a: eval('1')})", 1, 15, "a value"),
    ("db.c.distinct()", 1, 15, "the field name"),
    ("db.c.find().sort({a: 2})", 1, 18, "1 or -1"),
    ("db.getCollection('').find()", 1, 18, "a collection name"),
    ("db.c.find({a: NumberInt('99999999999')})", 1, 25, "32-bit integer"),
    ("db.c.find(" + "[" * 101, 1, 111, "levels of nesting"),
    ("db.c.find({a: 1})\n  .frob()", 2, 4, "one of sort, limit, skip"),
    ("db.c.deleteMany()", 1, 17, "the filter"),
    ("db.c.insertOne({a: 1}, {upsert: true})", 1, 24, "options from"),
    ("db.c.find({\n  a: 1,\n  b: 'x\n})", 3, 6, "a closing '"),
    ("db.c.find({a: new Foo()})", 1, 19, "after 'new'"),
    ("db.c.find({a: 12abc})", 1, 17, None),
]


@pytest.mark.parametrize(
    ("text", "line", "column", "expected"), INVALID, ids=[v[0][:50] or "empty" for v in INVALID]
)
def test_invalid_shell_text_names_line_column_and_what_was_expected(
    text: str, line: int, column: int, expected: str | None
) -> None:
    with pytest.raises(MongoParseError) as caught:
        parse(text)
    error = caught.value
    assert (error.line, error.column) == (line, column), str(error)
    assert str(error).startswith(f"line {line}, column {column}: ")
    if expected is not None:
        assert expected in (error.expected or ""), str(error)
        assert expected in str(error)


def test_error_text_reads_like_the_shells() -> None:
    with pytest.raises(MongoParseError) as caught:
        parse("db.c.find({a: 1},\n  {b: 1)")
    assert str(caught.value) == "line 2, column 8: expected ',' or '}' but found ')'"
    assert caught.value.expected == "',' or '}'"


def test_unknown_method_lists_the_supported_ones() -> None:
    with pytest.raises(MongoParseError) as caught:
        parse("db.c.frob({})")
    for name in ("find", "insertMany", "updateMany", "deleteMany", "replaceOne", "distinct"):
        assert name in caught.value.message


def test_script_splits_on_semicolons_and_new_lines_keeping_positions() -> None:
    text = (
        "// cleanup\n"
        "db.a.deleteMany({old: true}); db.b.find({})\n"
        "  .sort({n: 1})\n"
        "db.c.insertOne({\n  n: 1\n})"
    )
    statements = parse(text)
    assert [(s.collection, s.method, s.line, s.column) for s in statements] == [
        ("a", "deleteMany", 2, 1),
        ("b", "find", 2, 31),
        ("c", "insertOne", 4, 1),
    ]
    assert statements[1].text == "db.b.find({})\n  .sort({n: 1})"
    assert statements[1].modifiers == (("sort", ({"n": 1},)),)
    assert statements[2].text == "db.c.insertOne({\n  n: 1\n})"


def test_kind_tells_reads_from_writes() -> None:
    kinds = [
        s.kind
        for s in parse(
            "db.a.find()\ndb.a.countDocuments()\ndb.a.aggregate([{$match: {}}])\n"
            "db.a.aggregate([{$match: {}}, {$out: 'b'}])\ndb.a.aggregate([{$merge: {into: 'b'}}])\n"
            "db.a.insertOne({})\ndb.a.deleteOne({})"
        )
    ]
    assert kinds == ["read", "read", "read", "write", "write", "write", "write"]


def test_values_keep_their_bson_types() -> None:
    (stmt,) = parse(
        "db.c.insertOne({l: NumberLong(5), big: 18446744073709551616, "
        "d: ISODate('2024-05-01T12:00:00.250Z'), dec: NumberDecimal('1.50')})"
    )
    document = stmt.args[0]
    assert type(document["l"]) is Int64
    # JavaScript numbers past 64-bit integers are doubles, which BSON can store.
    assert type(document["big"]) is float
    assert document["d"] == dt.datetime(2024, 5, 1, 12, 0, 0, 250_000, tzinfo=UTC)
    assert document["d"].tzinfo is not None
    assert str(document["dec"]) == "1.50"


def test_text_that_looks_like_code_stays_data() -> None:
    (stmt,) = parse("db.c.find({$where: 'this.a > 1', code: 'process.exit()'})")
    assert stmt.args == ({"$where": "this.a > 1", "code": "process.exit()"},)
    with pytest.raises(MongoParseError) as caught:
        parse("db.c.find({a: process.exit()})")
    assert "a value" in str(caught.value)


# --- the wider snippet table ----------------------------------------------------------------
#
# Each valid snippet is checked against the exact pymongo call: the method, its positional and
# keyword arguments, the target (collection or database), the collection options
# (`with_options`), the user's maxTimeMS and the kind the approver sees. Snippets marked with a
# source are copied verbatim from that page.

MANUAL_PARTIAL_INDEX = "https://www.mongodb.com/docs/v4.4/core/index-partial"
MANUAL_PARTIAL_INDEX_ES = "https://www.mongodb.com/es/docs/manual/core/index-partial"
MANUAL_PARTIAL_INDEX_JA = "https://www.mongodb.com/ja-jp/docs/v5.0/core/index-partial"
MANUAL_EXPLAIN = "https://www.mongodb.com/es/docs/v7.0/reference/method/db.collection.explain"
MANUAL_QUERY_PLAN = "https://docs.huihoo.com/mongodb/3.2/tutorial/analyze-query-plan.html"
MANUAL_BULK_36 = "https://gist.github.com/nailuoGG/ded00ffac27a24f1370bd33fa98ebd81"
UNIVERSITY_COUNT = (
    "https://learn.mongodb.com/learn/course/crud-operations-in-mongodb-on-demand/"
    "crud-operations-in-mongodb/modify-query-results?page=6"
)
RIPTUTORIAL_MULTI = "https://riptutorial.com/mongodb/example/22217/-multi--parameter-while-updating-multiple-documents"
TUTORIALSPOINT_FOAU = (
    "https://www.tutorialspoint.com/article/using-findoneandupdate-to-update-in-mongodb"
)
TUTORIALSPOINT_COUNT = (
    "https://www.tutorialspoint.com/article/count-number-of-rows-in-a-mongodb-collection"
)
AZURE_COUNT = "https://docs.azure.cn/ko-kr/documentdb/commands/aggregation/count"
PASTEBIN_COURSE = "https://pastebin.com/8993gbxx"
PASTEBIN_FAM = "https://pastebin.com/AEm1j3H3"
GIST_UPDATE = "https://gist.github.com/shravan-kuchkula/c29ba5ef64020978a4d4fb637183a1b6"
GIST_EXPLAIN = "https://gist.github.com/DavidBrower/1d4882fa1f8b65ea405cb0cbe2c3ff6e"
GIST_EXPLAIN_2 = "https://gist.github.com/stephencweiss/828e54a0745af11d399bfac670d79d55"
BLOG_BULK = "https://rickyyip.me/posts/mongodb/bulk-write"


@dataclass(frozen=True)
class Snippet:
    text: str
    call: tuple  # (method, args, kwargs)
    kind: str = "read"
    target: str = "collection"
    options: dict = field(default_factory=dict)  # with_options(...)
    max_time_ms: int | None = None
    source: str | None = None


def _comparable(value: Any) -> Any:
    """IndexModel has no equality of its own; compare the index document it sends."""
    if isinstance(value, IndexModel):
        return ("IndexModel", dict(value.document))
    if isinstance(value, list | tuple):
        return type(value)(_comparable(item) for item in value)
    if isinstance(value, dict):
        return {key: _comparable(item) for key, item in value.items()}
    return value


def explain(inner: list[tuple[str, Any]], verbosity: str = "queryPlanner") -> tuple:
    return ("command", (SON([("explain", SON(inner)), ("verbosity", verbosity)]),), {})


SNIPPETS = [
    # count and cursor count(): counted with count_documents
    Snippet('db.orders.count({status: "A"})', ("count_documents", ({"status": "A"},), {})),
    Snippet("db.orders.count()", ("count_documents", ({},), {})),
    Snippet(
        "db.orders.count({a: 1}, {limit: 5, skip: 1, hint: 'a_1', maxTimeMS: 500})",
        ("count_documents", ({"a": 1},), {"limit": 5, "skip": 1, "hint": "a_1"}),
        max_time_ms=500,
    ),
    Snippet("db.orders.find({a: 1}).count()", ("count_documents", ({"a": 1},), {})),
    Snippet(
        "db.orders.find({a: 1}).limit(5).skip(2).count()", ("count_documents", ({"a": 1},), {})
    ),
    Snippet(
        "db.orders.find({a: 1}).limit(5).skip(2).count(true)",
        ("count_documents", ({"a": 1},), {"limit": 5, "skip": 2}),
    ),
    Snippet(
        "db.orders.find({a: 1}).hint({a: 1}).count()",
        ("count_documents", ({"a": 1},), {"hint": [("a", 1)]}),
    ),
    Snippet(
        'db.stores.count({ "promotionEvents.eventName": "Incredible Discount Days" })',
        ("count_documents", ({"promotionEvents.eventName": "Incredible Discount Days"},), {}),
        source=AZURE_COUNT,
    ),
    Snippet(
        "db.col_test_2.find().sort({ type: -1}).limit(3).skip(2).count()",
        ("count_documents", ({},), {}),
        source=PASTEBIN_COURSE,
    ),
    Snippet(
        "db.col_test_2.count({cost:{$gt:50}})",
        ("count_documents", ({"cost": {"$gt": 50}},), {}),
        source=PASTEBIN_COURSE,
    ),
    Snippet(
        'db.trips.countDocuments({ tripduration: { $gt: 120 }, usertype: "Subscriber" })',
        ("count_documents", ({"tripduration": {"$gt": 120}, "usertype": "Subscriber"},), {}),
        source=UNIVERSITY_COUNT,
    ),
    Snippet(
        'db.demo664.countDocuments({ClientName: "Chris"});',
        ("count_documents", ({"ClientName": "Chris"},), {}),
        source=TUTORIALSPOINT_COUNT,
    ),
    Snippet(
        "db.demo664.estimatedDocumentCount();",
        ("estimated_document_count", (), {}),
        source=TUTORIALSPOINT_COUNT,
    ),
    Snippet(
        "db.c.estimatedDocumentCount({maxTimeMS: 100})",
        ("estimated_document_count", (), {}),
        max_time_ms=100,
    ),
    # legacy insert, update, remove
    Snippet("db.c.insert({a: 1})", ("insert_one", ({"a": 1},), {}), kind="write"),
    Snippet(
        "db.c.insert([{a: 1}, {a: 2}], {ordered: false})",
        ("insert_many", ([{"a": 1}, {"a": 2}],), {"ordered": False}),
        kind="write",
    ),
    Snippet(
        "db.col_test_2.insert({type:'1',size:['XXL','S','M'],cost:228,name:\"Maika\"})",
        (
            "insert_one",
            ({"type": "1", "size": ["XXL", "S", "M"], "cost": 228, "name": "Maika"},),
            {},
        ),
        kind="write",
        source=PASTEBIN_COURSE,
    ),
    Snippet(
        "db.c.insert({a: 1}, {writeConcern: {w: 'majority', wtimeout: 5000}})",
        ("insert_one", ({"a": 1},), {}),
        kind="write",
        options={"write_concern": WriteConcern(w="majority", wtimeout=5000)},
    ),
    Snippet(
        "db.c.update({a: 1}, {$set: {b: 2}})",
        ("update_one", ({"a": 1}, {"$set": {"b": 2}}), {}),
        kind="write",
    ),
    Snippet(
        "db.c.update({a: 1}, {$set: {b: 2}}, {multi: true, upsert: true})",
        ("update_many", ({"a": 1}, {"$set": {"b": 2}}), {"upsert": True}),
        kind="write",
    ),
    Snippet(
        "db.mycol.update({'title':'MongoDB Overview'}, {$set:{'title':'New MongoDB Tutorial'}},"
        "{multi:true})",
        (
            "update_many",
            ({"title": "MongoDB Overview"}, {"$set": {"title": "New MongoDB Tutorial"}}),
            {},
        ),
        kind="write",
        source=RIPTUTORIAL_MULTI,
    ),
    Snippet(
        'db.people.update({"name": "Smith"}, {"name": "Thompson", "salary": 50000})',
        ("replace_one", ({"name": "Smith"}, {"name": "Thompson", "salary": 50000}), {}),
        kind="write",
        source=GIST_UPDATE,
    ),
    Snippet(
        "db.c.update({}, [{$set: {t: {$add: ['$a', 1]}}}], {multi: true})",
        ("update_many", ({}, [{"$set": {"t": {"$add": ["$a", 1]}}}]), {}),
        kind="write",
    ),
    Snippet(
        "db.c.update({a: 1}, {$set: {'g.$[e]': 0}}, {arrayFilters: [{e: {$lt: 0}}], "
        "collation: {locale: 'fr'}, hint: {a: 1}})",
        (
            "update_one",
            ({"a": 1}, {"$set": {"g.$[e]": 0}}),
            {
                "array_filters": [{"e": {"$lt": 0}}],
                "collation": {"locale": "fr"},
                "hint": [("a", 1)],
            },
        ),
        kind="write",
    ),
    Snippet("db.c.remove({a: 1})", ("delete_many", ({"a": 1},), {}), kind="write"),
    Snippet("db.c.remove({a: 1}, true)", ("delete_one", ({"a": 1},), {}), kind="write"),
    Snippet("db.c.remove({a: 1}, {justOne: true})", ("delete_one", ({"a": 1},), {}), kind="write"),
    Snippet("db.c.remove({})", ("delete_many", ({},), {}), kind="write"),
    Snippet(
        "db.c.remove({a: 1}, {justOne: false, collation: {locale: 'en', strength: 2}})",
        ("delete_many", ({"a": 1},), {"collation": {"locale": "en", "strength": 2}}),
        kind="write",
    ),
    # explain
    Snippet(
        "db.c.explain().find({a: 1})",
        explain([("find", "c"), ("filter", {"a": 1})]),
        target="database",
    ),
    Snippet(
        'db.c.explain("executionStats").find({a: 1}).sort({b: -1}).limit(3)',
        explain(
            [("find", "c"), ("filter", {"a": 1}), ("sort", SON([("b", -1)])), ("limit", 3)],
            "executionStats",
        ),
        target="database",
    ),
    Snippet(
        'db.c.find({a: 1}, {b: 1}).explain("executionStats")',
        explain([("find", "c"), ("filter", {"a": 1}), ("projection", {"b": 1})], "executionStats"),
        target="database",
    ),
    Snippet(
        "db.c.find({a: 1}).explain(true)",
        explain([("find", "c"), ("filter", {"a": 1})], "allPlansExecution"),
        target="database",
    ),
    Snippet(
        'db.people.find({"ssn": "720-38-5636"}).explain("executionStats")',
        explain([("find", "people"), ("filter", {"ssn": "720-38-5636"})], "executionStats"),
        target="database",
        source=GIST_EXPLAIN,
    ),
    Snippet(
        'db.descriptions.find( {productId: {$gt : 9999990 } } ).explain("executionStats")',
        explain(
            [("find", "descriptions"), ("filter", {"productId": {"$gt": 9999990}})],
            "executionStats",
        ),
        target="database",
        source=GIST_EXPLAIN_2,
    ),
    Snippet(
        "db.c.explain('allPlansExecution').aggregate([{$match: {a: 1}}], {allowDiskUse: true})",
        explain(
            [
                ("aggregate", "c"),
                ("pipeline", [{"$match": {"a": 1}}]),
                ("cursor", {}),
                ("allowDiskUse", True),
            ],
            "allPlansExecution",
        ),
        target="database",
    ),
    Snippet(
        "db.c.explain().count({a: 1})",
        explain([("count", "c"), ("query", {"a": 1})]),
        target="database",
    ),
    Snippet(
        "db.c.explain().distinct('a', {b: 1})",
        explain([("distinct", "c"), ("key", "a"), ("query", {"b": 1})]),
        target="database",
    ),
    Snippet(
        'db.products.explain().remove( { category: "apparel" }, { justOne: true } )',
        explain(
            [
                ("delete", "products"),
                ("deletes", [SON([("q", {"category": "apparel"}), ("limit", 1)])]),
            ]
        ),
        target="database",
        source=MANUAL_EXPLAIN,
    ),
    Snippet(
        "db.c.explain('queryPlanner').updateMany({a: 1}, {$set: {b: 1}}, {upsert: true})",
        explain(
            [
                ("update", "c"),
                (
                    "updates",
                    [
                        SON(
                            [
                                ("q", {"a": 1}),
                                ("u", {"$set": {"b": 1}}),
                                ("multi", True),
                                ("upsert", True),
                            ]
                        )
                    ],
                ),
            ]
        ),
        target="database",
    ),
    # indexes
    Snippet("db.c.createIndex({a: 1})", ("create_index", ([("a", 1)],), {}), kind="ddl"),
    Snippet(
        "db.c.createIndex({a: 1, b: -1}, {unique: true, name: 'ab', background: true, "
        "sparse: true, expireAfterSeconds: 3600, collation: {locale: 'en'}})",
        (
            "create_index",
            ([("a", 1), ("b", -1)],),
            {
                "unique": True,
                "name": "ab",
                "background": True,
                "sparse": True,
                "expireAfterSeconds": 3600,
                "collation": {"locale": "en"},
            },
        ),
        kind="ddl",
    ),
    Snippet(
        "db.restaurants.createIndex( { cuisine: 1, name: 1 }, { partialFilterExpression: "
        "{ rating: { $gt: 5 } } } )",
        (
            "create_index",
            ([("cuisine", 1), ("name", 1)],),
            {"partialFilterExpression": {"rating": {"$gt": 5}}},
        ),
        kind="ddl",
        source=MANUAL_PARTIAL_INDEX,
    ),
    Snippet(
        'db.movies.createIndex( { title: 1 }, { partialFilterExpression: { genres: "Drama" } } )',
        ("create_index", ([("title", 1)],), {"partialFilterExpression": {"genres": "Drama"}}),
        kind="ddl",
        source=MANUAL_PARTIAL_INDEX_ES,
    ),
    Snippet(
        "db.c.createIndex({body: 'text'}, {weights: {body: 10}, default_language: 'english'})",
        (
            "create_index",
            ([("body", "text")],),
            {"weights": {"body": 10}, "default_language": "english"},
        ),
        kind="ddl",
    ),
    Snippet(
        "db.c.createIndex({loc: '2dsphere'})",
        ("create_index", ([("loc", "2dsphere")],), {}),
        kind="ddl",
    ),
    Snippet(
        "db.c.createIndex({a: 1}, {}, 'majority')",
        ("create_index", ([("a", 1)],), {"commitQuorum": "majority"}),
        kind="ddl",
    ),
    Snippet(
        "db.c.ensureIndex({a: 1}, {unique: true})",
        ("create_index", ([("a", 1)],), {"unique": True}),
        kind="ddl",
    ),
    Snippet(
        "db.c.createIndexes([{a: 1}, {b: -1, c: 1}], {sparse: true})",
        (
            "create_indexes",
            (
                [
                    IndexModel([("a", 1)], sparse=True),
                    IndexModel([("b", -1), ("c", 1)], sparse=True),
                ],
            ),
            {},
        ),
        kind="ddl",
    ),
    Snippet("db.c.dropIndex('a_1')", ("drop_index", ("a_1",), {}), kind="ddl"),
    Snippet(
        "db.c.dropIndex({a: 1, b: -1})", ("drop_index", ([("a", 1), ("b", -1)],), {}), kind="ddl"
    ),
    Snippet("db.c.dropIndexes()", ("drop_indexes", (), {}), kind="ddl"),
    Snippet("db.c.getIndexes()", ("list_indexes", (), {})),
    # find-and-modify
    Snippet(
        "db.c.findOneAndUpdate({a: 1}, {$inc: {n: 1}}, {projection: {n: 1}, sort: {a: -1}, "
        "upsert: true, returnDocument: 'after'})",
        (
            "find_one_and_update",
            ({"a": 1}, {"$inc": {"n": 1}}),
            {
                "projection": {"n": 1},
                "sort": [("a", -1)],
                "upsert": True,
                "return_document": ReturnDocument.AFTER,
            },
        ),
        kind="write",
    ),
    Snippet(
        "db.c.findOneAndUpdate({a: 1}, {$set: {b: 1}}, {returnNewDocument: true, maxTimeMS: 50})",
        ("find_one_and_update", ({"a": 1}, {"$set": {"b": 1}}), {"return_document": True}),
        kind="write",
        max_time_ms=50,
    ),
    Snippet(
        'db.demo328.findOneAndUpdate(\n{Name: "David"},\n{ $inc: { "Marks": 10 } }\n);',
        ("find_one_and_update", ({"Name": "David"}, {"$inc": {"Marks": 10}}), {}),
        kind="write",
        source=TUTORIALSPOINT_FOAU,
    ),
    Snippet(
        "db.c.findOneAndUpdate({}, {$set: {'g.$[x]': 1}}, {arrayFilters: [{x: 0}], "
        "writeConcern: {w: 1, j: true}})",
        ("find_one_and_update", ({}, {"$set": {"g.$[x]": 1}}), {"array_filters": [{"x": 0}]}),
        kind="write",
        options={"write_concern": WriteConcern(w=1, j=True)},
    ),
    Snippet(
        "db.c.findOneAndReplace({a: 1}, {a: 1, b: 2}, {upsert: true, returnDocument: 'before'})",
        (
            "find_one_and_replace",
            ({"a": 1}, {"a": 1, "b": 2}),
            {"upsert": True, "return_document": ReturnDocument.BEFORE},
        ),
        kind="write",
    ),
    Snippet(
        "db.c.findOneAndDelete({a: 1}, {sort: {t: 1}, projection: {_id: 1}})",
        (
            "find_one_and_delete",
            ({"a": 1},),
            {"sort": [("t", 1)], "projection": {"_id": 1}},
        ),
        kind="write",
    ),
    Snippet(
        "db.c.findAndModify({query: {a: 1}, update: {$inc: {n: 1}}, new: true, upsert: true, "
        "sort: {a: 1}, fields: {n: 1}})",
        (
            "find_one_and_update",
            ({"a": 1}, {"$inc": {"n": 1}}),
            {
                "upsert": True,
                "sort": [("a", 1)],
                "projection": {"n": 1},
                "return_document": ReturnDocument.AFTER,
            },
        ),
        kind="write",
    ),
    Snippet(
        'db.restaurants1.findAndModify({\n query: { "name" : "Morris Park Bake Shop" },\n'
        ' update: { $inc: { "age": 1 } },\n});',
        (
            "find_one_and_update",
            ({"name": "Morris Park Bake Shop"}, {"$inc": {"age": 1}}),
            {"return_document": ReturnDocument.BEFORE},
        ),
        kind="write",
        source=PASTEBIN_FAM,
    ),
    Snippet(
        "db.c.findAndModify({query: {a: 1}, remove: true, sort: {t: -1}})",
        ("find_one_and_delete", ({"a": 1},), {"sort": [("t", -1)]}),
        kind="write",
    ),
    Snippet(
        "db.c.findAndModify({query: {a: 1}, update: {a: 1, b: 3}, new: true})",
        (
            "find_one_and_replace",
            ({"a": 1}, {"a": 1, "b": 3}),
            {"return_document": ReturnDocument.AFTER},
        ),
        kind="write",
    ),
    # bulkWrite
    Snippet(
        "db.c.bulkWrite([{insertOne: {document: {a: 1}}}, "
        "{updateOne: {filter: {a: 1}, update: {$set: {b: 1}}, upsert: true}}, "
        "{updateMany: {filter: {}, update: {$inc: {n: 1}}, arrayFilters: [{x: 1}], hint: 'a_1'}}, "
        "{replaceOne: {filter: {a: 2}, replacement: {a: 3}, collation: {locale: 'en'}}}, "
        "{deleteOne: {filter: {a: 3}}}, {deleteMany: {filter: {a: {$gt: 9}}, hint: {a: 1}}}], "
        "{ordered: false})",
        (
            "bulk_write",
            (
                [
                    InsertOne({"a": 1}),
                    UpdateOne({"a": 1}, {"$set": {"b": 1}}, upsert=True),
                    UpdateMany({}, {"$inc": {"n": 1}}, array_filters=[{"x": 1}], hint="a_1"),
                    ReplaceOne({"a": 2}, {"a": 3}, collation={"locale": "en"}),
                    DeleteOne({"a": 3}),
                    DeleteMany({"a": {"$gt": 9}}, hint=[("a", 1)]),
                ],
            ),
            {"ordered": False},
        ),
        kind="write",
    ),
    Snippet(
        'db.characters.bulkWrite(\n[\n{ insertOne :\n{\n"document" :\n{\n"_id" : 4, "char" : '
        '"Dithras", "class" : "barbarian", "lvl" : 4\n}\n}\n},\n{ updateOne :\n{\n"filter" : '
        '{ "char" : "Eldon" },\n"update" : { $set : { "status" : "Critical Injury" } }\n}\n},\n'
        '{ deleteOne :\n{ "filter" : { "char" : "Brisbane"} }\n},\n{ replaceOne :\n{\n"filter" '
        ': { "char" : "Meldane" },\n"replacement" : { "char" : "Tanys", "class" : "oracle", '
        '"lvl" : 4 }\n}\n}\n]\n);',
        (
            "bulk_write",
            (
                [
                    InsertOne({"_id": 4, "char": "Dithras", "class": "barbarian", "lvl": 4}),
                    UpdateOne({"char": "Eldon"}, {"$set": {"status": "Critical Injury"}}),
                    DeleteOne({"char": "Brisbane"}),
                    ReplaceOne({"char": "Meldane"}, {"char": "Tanys", "class": "oracle", "lvl": 4}),
                ],
            ),
            {},
        ),
        kind="write",
        source=MANUAL_BULK_36,
    ),
    Snippet(
        'db.customers.bulkWrite(\n[\n{\ninsertOne: {\n"document": {\nemail: "a@example.com",\n'
        'age: 210,\ngender: "M"\n}\n}\n},\n{\nupdateMany: {\n"filter": {\nage: {\n$gt: 200\n}'
        '\n},\n"update": [\n{\n$set: {\nage: 10\n}\n},\n{\n$project: {\nemail: 1,\nage: 1\n}'
        '\n}\n]\n}\n},\n{\ndeleteMany: {\n"filter": {\nage: {\n$eq: 10\n}\n}\n}\n}\n]\n)',
        (
            "bulk_write",
            (
                [
                    InsertOne({"email": "a@example.com", "age": 210, "gender": "M"}),
                    UpdateMany(
                        {"age": {"$gt": 200}},
                        [{"$set": {"age": 10}}, {"$project": {"email": 1, "age": 1}}],
                    ),
                    DeleteMany({"age": {"$eq": 10}}),
                ],
            ),
            {},
        ),
        kind="write",
        source=BLOG_BULK,
    ),
    # cursor modifiers
    Snippet(
        "db.c.find({}).batchSize(100).maxTimeMS(2000).comment('audit')",
        ("find", ({}, None), {"batch_size": 100, "comment": "audit"}),
        max_time_ms=2000,
    ),
    Snippet(
        "db.c.find().readPref('secondaryPreferred').readConcern('majority')",
        ("find", ({}, None), {}),
        options={
            "read_preference": SecondaryPreferred(),
            "read_concern": ReadConcern("majority"),
        },
    ),
    Snippet(
        "db.c.find().readPref('secondary', [{dc: 'east'}])",
        ("find", ({}, None), {}),
        options={"read_preference": Secondary(tag_sets=[{"dc": "east"}])},
    ),
    Snippet(
        "db.c.find().collation({locale: 'en', strength: 2}).hint('a_1')",
        ("find", ({}, None), {"collation": {"locale": "en", "strength": 2}, "hint": "a_1"}),
    ),
    Snippet(
        "db.c.find().hint({a: 1}).min({a: 2}).max({a: 9})",
        ("find", ({}, None), {"hint": [("a", 1)], "min": {"a": 2}, "max": {"a": 9}}),
    ),
    Snippet(
        "db.c.find().returnKey().showRecordId(true).allowDiskUse().noCursorTimeout()",
        (
            "find",
            ({}, None),
            {
                "return_key": True,
                "show_record_id": True,
                "allow_disk_use": True,
                "no_cursor_timeout": True,
            },
        ),
    ),
    Snippet("db.c.find().allowDiskUse(false)", ("find", ({}, None), {"allow_disk_use": False})),
    Snippet(
        "db.c.find({a: 1}).projection({a: 1, _id: 0}).toArray()",
        ("find", ({"a": 1}, {"a": 1, "_id": 0}), {}),
    ),
    Snippet("db.c.find().pretty().limit(2)", ("find", ({}, None), {"limit": 2})),
    Snippet(
        "db.col_test_2.find(null,{name:1,_id:0});",
        ("find", ({}, {"name": 1, "_id": 0}), {}),
        source=PASTEBIN_COURSE,
    ),
    Snippet(
        'db.restaurants.find( { cuisine: "Italian", rating: { $gte: 8 } } )',
        ("find", ({"cuisine": "Italian", "rating": {"$gte": 8}}, None), {}),
        source=MANUAL_PARTIAL_INDEX_JA,
    ),
    Snippet(
        "db.inventory.find( { quantity: { $gte: 100, $lte: 200 } } )",
        ("find", ({"quantity": {"$gte": 100, "$lte": 200}}, None), {}),
        source=MANUAL_QUERY_PLAN,
    ),
    # options
    Snippet(
        "db.c.find({a: 1}, {b: 1}, {sort: {b: 1}, limit: 10, skip: 5, batchSize: 50, "
        "maxTimeMS: 1000, readConcern: {level: 'local'}, collation: {locale: 'en'}})",
        (
            "find",
            ({"a": 1}, {"b": 1}),
            {
                "sort": [("b", 1)],
                "limit": 10,
                "skip": 5,
                "batch_size": 50,
                "collation": {"locale": "en"},
            },
        ),
        options={"read_concern": ReadConcern("local")},
        max_time_ms=1000,
    ),
    Snippet(
        "db.c.find({}, null, {projection: {a: 1}, readPreference: 'nearest', let: {x: 1}})",
        ("find", ({}, {"a": 1}), {"let": {"x": 1}}),
        options={"read_preference": Nearest()},
    ),
    Snippet(
        "db.c.findOne({a: 1}, {b: 1}, {maxTimeMS: 10, sort: {b: -1}})",
        ("find_one", ({"a": 1}, {"b": 1}), {"sort": [("b", -1)]}),
        max_time_ms=10,
    ),
    Snippet(
        "db.c.aggregate([{$match: {}}], {cursor: {batchSize: 10}, allowDiskUse: true, "
        "maxTimeMS: 3000, comment: 'report', let: {v: 1}, hint: {a: 1}})",
        (
            "aggregate",
            ([{"$match": {}}],),
            {
                "batchSize": 10,
                "allowDiskUse": True,
                "comment": "report",
                "let": {"v": 1},
                "hint": {"a": 1},
            },
        ),
        max_time_ms=3000,
    ),
    Snippet(
        "db.c.aggregate([{$match: {}}], {readConcern: {level: 'majority'}})",
        ("aggregate", ([{"$match": {}}],), {}),
        options={"read_concern": ReadConcern("majority")},
    ),
    Snippet(
        "db.c.aggregate({$match: {a: 1}}, {$group: {_id: '$b', n: {$sum: 1}}})",
        (
            "aggregate",
            ([{"$match": {"a": 1}}, {"$group": {"_id": "$b", "n": {"$sum": 1}}}],),
            {},
        ),
    ),
    Snippet("db.c.aggregate([{$match: {}}]).toArray()", ("aggregate", ([{"$match": {}}],), {})),
    Snippet(
        "db.c.aggregate([{$match: {}}, {$merge: {into: 'out', whenMatched: 'replace'}}], "
        "{bypassDocumentValidation: true, writeConcern: {w: 1}})",
        (
            "aggregate",
            ([{"$match": {}}, {"$merge": {"into": "out", "whenMatched": "replace"}}],),
            {"bypassDocumentValidation": True},
        ),
        kind="write",
        options={"write_concern": WriteConcern(w=1)},
    ),
    Snippet(
        "db.c.updateOne({a: 1}, {$set: {b: 1}}, {writeConcern: {w: 'majority'}, let: {x: 1}, "
        "comment: 'fix', bypassDocumentValidation: true, maxTimeMS: 100})",
        (
            "update_one",
            ({"a": 1}, {"$set": {"b": 1}}),
            {"let": {"x": 1}, "comment": "fix", "bypass_document_validation": True},
        ),
        kind="write",
        options={"write_concern": WriteConcern(w="majority")},
        max_time_ms=100,
    ),
    Snippet(
        "db.c.deleteMany({a: 1}, {hint: 'a_1', collation: {locale: 'en'}})",
        ("delete_many", ({"a": 1},), {"hint": "a_1", "collation": {"locale": "en"}}),
        kind="write",
    ),
    Snippet(
        "db.c.insertMany([{a: 1}], {ordered: true, writeConcern: {w: 1}})",
        ("insert_many", ([{"a": 1}],), {"ordered": True}),
        kind="write",
        options={"write_concern": WriteConcern(w=1)},
    ),
    Snippet(
        "db.c.distinct('a', {}, {collation: {locale: 'en'}, maxTimeMS: 5})",
        ("distinct", ("a", {}), {"collation": {"locale": "en"}}),
        max_time_ms=5,
    ),
    Snippet(
        "db.c.countDocuments({}, {readPreference: {mode: 'secondary'}})",
        ("count_documents", ({},), {}),
        options={"read_preference": Secondary()},
    ),
    # literals
    Snippet(
        "db.c.find({d: new Date(2024, 0, 31), e: new Date(2024, 11, 1, 13, 30, 5, 250)})",
        (
            "find",
            (
                {
                    "d": dt.datetime(2024, 1, 31, tzinfo=UTC),
                    "e": dt.datetime(2024, 12, 1, 13, 30, 5, 250_000, tzinfo=UTC),
                },
                None,
            ),
            {},
        ),
    ),
    Snippet(
        "db.c.insertOne({b: BinData(0, 'aGVsbG8='), h: HexData(4, '00ff'), m: MD5("
        "'0123456789abcdef0123456789abcdef')})",
        (
            "insert_one",
            (
                {
                    "b": Binary(b"hello", 0),
                    "h": Binary(b"\x00\xff", 4),
                    "m": Binary(bytes.fromhex("0123456789abcdef0123456789abcdef"), 5),
                },
            ),
            {},
        ),
        kind="write",
    ),
    Snippet(
        "db.c.find({a: {$gt: MinKey}, b: {$lt: MaxKey()}, c: MinKey()})",
        ("find", ({"a": {"$gt": MinKey()}, "b": {"$lt": MaxKey()}, "c": MinKey()}, None), {}),
    ),
    Snippet(
        f"db.c.insertOne({{r: DBRef('users', ObjectId('{OID}')), s: DBRef('u', 1, 'other')}})",
        (
            "insert_one",
            ({"r": DBRef("users", ObjectId(OID)), "s": DBRef("u", 1, "other")},),
            {},
        ),
        kind="write",
    ),
    Snippet(
        "db.c.find({ts: {$gte: Timestamp({t: 1700000000, i: 1})}, t2: Timestamp(5, 6)})",
        (
            "find",
            ({"ts": {"$gte": Timestamp(1700000000, 1)}, "t2": Timestamp(5, 6)}, None),
            {},
        ),
    ),
    Snippet(
        "db.c.insertOne({n: NumberInt(5), l: NumberLong(-7), d: Double(2), c: Code('x + 1')})",
        ("insert_one", ({"n": 5, "l": Int64(-7), "d": 2.0, "c": Code("x + 1")},), {}),
        kind="write",
    ),
    Snippet(
        "db.c.find({name: RegExp('^ab', 'i'), other: new RegExp('x.y')})",
        ("find", ({"name": Regex("^ab", "i"), "other": Regex("x.y")}, None), {}),
    ),
    Snippet(
        "db.c.find({u: UUID('123e4567-e89b-12d3-a456-426614174000'), d: Decimal128('1.5')})",
        (
            "find",
            (
                {
                    "u": Binary.from_uuid(uuid.UUID("123e4567-e89b-12d3-a456-426614174000")),
                    "d": Decimal128("1.5"),
                },
                None,
            ),
            {},
        ),
    ),
    # scripts: collections, views, names
    Snippet("db.c.drop()", ("drop", (), {}), kind="ddl"),
    Snippet("db.c.renameCollection('d')", ("rename", ("d",), {}), kind="ddl"),
    Snippet(
        "db.c.renameCollection('d', true)", ("rename", ("d",), {"dropTarget": True}), kind="ddl"
    ),
    Snippet(
        "db.createCollection('log', {capped: true, size: 100000, max: 500})",
        ("create_collection", ("log",), {"capped": True, "size": 100000, "max": 500}),
        kind="ddl",
        target="database",
    ),
    Snippet(
        "db.createCollection('people', {validator: {$jsonSchema: {required: ['name']}}, "
        "validationLevel: 'moderate'})",
        (
            "create_collection",
            ("people",),
            {"validator": {"$jsonSchema": {"required": ["name"]}}, "validationLevel": "moderate"},
        ),
        kind="ddl",
        target="database",
    ),
    Snippet(
        "db.createCollection('weather', {timeseries: {timeField: 'ts', metaField: 'm'}, "
        "expireAfterSeconds: 86400})",
        (
            "create_collection",
            ("weather",),
            {"timeseries": {"timeField": "ts", "metaField": "m"}, "expireAfterSeconds": 86400},
        ),
        kind="ddl",
        target="database",
    ),
    Snippet(
        "db.createView('open_orders', 'orders', [{$match: {status: 'open'}}])",
        (
            "create_collection",
            ("open_orders",),
            {"viewOn": "orders", "pipeline": [{"$match": {"status": "open"}}]},
        ),
        kind="ddl",
        target="database",
    ),
    Snippet(
        "db.createView('v', 'c', [], {collation: {locale: 'fr'}})",
        (
            "create_collection",
            ("v",),
            {"viewOn": "c", "pipeline": [], "collation": {"locale": "fr"}},
        ),
        kind="ddl",
        target="database",
    ),
    Snippet("db.getCollectionNames()", ("list_collection_names", (), {}), target="database"),
    Snippet(
        "db.getCollectionInfos({name: 'orders'})",
        ("list_collections", (), {"filter": {"name": "orders"}}),
        target="database",
    ),
    Snippet(
        "db.c.aggregate([{$match: {a: 1}}], {explain: true})",
        explain([("aggregate", "c"), ("pipeline", [{"$match": {"a": 1}}]), ("cursor", {})]),
        target="database",
    ),
    Snippet(
        "db.c.aggregate([{$match: {}}]).explain('executionStats')",
        explain(
            [("aggregate", "c"), ("pipeline", [{"$match": {}}]), ("cursor", {})], "executionStats"
        ),
        target="database",
    ),
    Snippet("db.c.aggregate([], {cursor: {}})", ("aggregate", ([],), {})),
    Snippet(
        "db.c.update({a: 1}, {$set: {b: 1}}, false, true)",
        ("update_many", ({"a": 1}, {"$set": {"b": 1}}), {}),
        kind="write",
    ),
    Snippet(
        "db.c.update({a: 1}, {$set: {b: 1}}, true)",
        ("update_one", ({"a": 1}, {"$set": {"b": 1}}), {"upsert": True}),
        kind="write",
    ),
    Snippet("db.c.find({a: `plain`})", ("find", ({"a": "plain"}, None), {})),
    Snippet('db.getCollection("order items").count({a: 1})', ("count_documents", ({"a": 1},), {})),
    Snippet(
        "db['audit.log'].createIndex({at: -1}, {expireAfterSeconds: 60})",
        ("create_index", ([("at", -1)],), {"expireAfterSeconds": 60}),
        kind="ddl",
    ),
    Snippet(
        "db.c.mapReduce('function() { emit(this.k, 1) }', 'function(k, v) { return 1 }', "
        "{out: {inline: 1}, query: {a: 1}})",
        (
            "command",
            (
                SON(
                    [
                        ("mapReduce", "c"),
                        ("map", Code("function() { emit(this.k, 1) }")),
                        ("reduce", Code("function(k, v) { return 1 }")),
                        ("out", {"inline": 1}),
                        ("query", {"a": 1}),
                    ]
                ),
            ),
            {},
        ),
        target="database",
    ),
]


@pytest.mark.parametrize("snippet", SNIPPETS, ids=[s.text[:60] for s in SNIPPETS])
def test_snippet_becomes_its_exact_pymongo_call(snippet: Snippet) -> None:
    (stmt,) = parse(snippet.text)
    assert _comparable(pymongo_call(stmt)) == _comparable(snippet.call)
    assert stmt.kind == snippet.kind
    assert stmt.target == snippet.target
    assert dict(stmt.collection_options) == snippet.options
    assert stmt.max_time_ms == snippet.max_time_ms


# (shell text, line, column, fragment of the message: the reason and, where one exists, the hint)
REFUSED = [
    ("db.c.save({_id: 1, a: 2})", 1, 6, "use insertOne(doc)"),
    ("db.c.frob()", 1, 6, "unknown method 'frob'"),
    ("db.c.findAll({})", 1, 6, "use find instead"),
    ("db.c.getIndices()", 1, 6, "use getIndexes instead"),
    ("db.c.removeMany({})", 1, 6, "use deleteMany instead"),
    ("db.c.countDocument({})", 1, 6, "use countDocuments instead"),
    ("db.c.upsert({a: 1})", 1, 6, "upsert: true"),
    ("db.c.stats()", 1, 6, "$collStats"),
    ("db.c.group({key: {a: 1}})", 1, 6, "$group stage"),
    ("db.c.copyTo('d')", 1, 6, "$out stage"),
    ("db.c.findAndRemove({})", 1, 6, "findOneAndDelete"),
    ("db.c.watch()", 1, 6, "never finish"),
    ("db.c.find().forEach(printjson)", 1, 13, "JavaScript callbacks are not run"),
    ("db.c.find().map(d => d.a)", 1, 13, "JavaScript callbacks"),
    ("db.c.find().hasNext()", 1, 13, "cursor introspection"),
    ("db.c.find()\n  .next()", 2, 4, "cursor introspection"),
    ("db.c.find().itcount()", 1, 13, "use countDocuments()"),
    ("db.c.find().size()", 1, 13, "use countDocuments()"),
    ("db.c.find()[0]", 1, 12, "use .limit(1) or findOne()"),
    ("db.c.aggregate([]).forEach(function (d) {})", 1, 20, "JavaScript callbacks"),
    ("var c = db.c.find()", 1, 1, "JavaScript variables"),
    ("const x = 1", 1, 1, "JavaScript variables"),
    ("for (var i = 0; i < 3; i++) db.c.insertOne({i})", 1, 1, "loops are JavaScript"),
    ("while (true) {}", 1, 1, "loops are JavaScript"),
    ("try { db.c.drop() } catch (e) {}", 1, 1, "JavaScript is not run"),
    ("function f() {}", 1, 1, "JavaScript is not run"),
    ("printjson(db.c.findOne())", 1, 1, "only displays in the shell"),
    ("use reports", 1, 1, "pick the database"),
    ("show collections", 1, 1, "getCollectionNames"),
    ("db.runCommand({ping: 1})", 1, 4, "runCommand() runs arbitrary server commands"),
    ("db.adminCommand({listDatabases: 1})", 1, 4, "adminCommand()"),
    ("db.eval('1')", 1, 4, "eval() runs JavaScript"),
    ("db.getSiblingDB('other').c.find()", 1, 4, "pick that database"),
    ("db.dropDatabase()", 1, 4, "drop collections one by one"),
    ("db.getMongo()", 1, 4, "the connection itself"),
    ("db.c.find({a: function() { return 1 }})", 1, 15, "JavaScript functions are not accepted"),
    ("db.c.find({$where: this.a})", 1, 20, "JavaScript functions are not accepted"),
    ("db.c.update({a: 1}, {b: 2}, {multi: true})", 1, 21, "needs update operators"),
    ("db.c.update({a: 1}, {$set: {b: 2}}, {multi: 1})", 1, 37, "multi: true or false"),
    ("db.c.remove()", 1, 13, "the filter"),
    ("db.c.remove({a: 1}, 1)", 1, 21, "true or {justOne: true}"),
    ("db.c.insert(5)", 1, 13, "a document {...} or an array of documents"),
    ("db.c.findAndModify({query: {a: 1}})", 1, 20, "either remove: true or an update"),
    ("db.c.findAndModify({remove: true, update: {$set: {a: 1}}})", 1, 20, "either remove"),
    ("db.c.findAndModify({query: {}, update: {$set: {a: 1}}, foo: 1})", 1, 20, "'foo'"),
    ("db.c.findOneAndUpdate({}, {$set: {a: 1}}, {returnDocument: 'later'})", 1, 43, "before"),
    ("db.c.bulkWrite([{insertOne: {a: 1}}])", 1, 16, "operation 1: unsupported insertOne field"),
    ("db.c.bulkWrite([{upsertOne: {}}])", 1, 16, "operation 1: expected one of insertOne"),
    ("db.c.bulkWrite([{updateOne: {filter: {}}}])", 1, 16, "updateOne needs update"),
    ("db.c.bulkWrite([])", 1, 16, "at least one operation"),
    ("db.c.bulkWrite([{deleteOne: {}}])", 1, 16, "deleteOne needs filter"),
    ("db.c.createIndex({a: 2})", 1, 18, "index directions"),
    ("db.c.createIndex({a: 1}, {unique: 'yes'})", 1, 26, "unique: true or false"),
    ("db.c.createIndex({a: 1}, {storageEngine: {}})", 1, 26, "unsupported option"),
    ("db.c.createIndexes({a: 1})", 1, 20, "an array of index keys"),
    ("db.c.dropIndex()", 1, 16, "the index name or keys"),
    ("db.c.dropIndex(5)", 1, 16, "an index name in quotes or its keys"),
    ("db.c.renameCollection('$bad')", 1, 23, "a collection name"),
    ("db.createCollection('a', {autoIndexId: false})", 1, 26, "unsupported option"),
    ("db.createView('v', 'c')", 1, 23, "the pipeline"),
    ('db.c.explain("executionStats").updateOne({}, {$set: {a: 1}})', 1, 14, "would run the write"),
    ("db.c.explain(true).remove({})", 1, 14, "would run the write"),
    ("db.c.explain().insertOne({})", 1, 16, "one of find, aggregate"),
    ("db.c.explain('fast').find()", 1, 14, "queryPlanner"),
    ("db.c.explain()", 1, 15, "the method to explain"),
    ("db.c.find().readPref('fastest')", 1, 22, "a read preference"),
    ("db.c.find().readConcern('strong')", 1, 25, "a read concern level"),
    ("db.c.find().readPref({})", 1, 22, "a read preference"),
    ("db.c.find().maxTimeMS(-5)", 1, 23, "maxTimeMS: a non-negative integer"),
    ("db.c.find().batchSize('x')", 1, 23, "a non-negative integer"),
    ("db.c.find().min(5)", 1, 17, "index bounds"),
    ("db.c.find().count().limit(1)", 1, 21, "';' or a new line"),
    ("db.c.find().count('x')", 1, 19, "true or false"),
    ("db.c.insertOne({a: 1}, {writeConcern: {w: 0}})", 1, 24, "writeConcern"),
    ("db.c.aggregate([], {cursor: {batchSize: -1}})", 1, 20, "cursor"),
    ("db.c.find({a: new Date(2024, 12, 1)})", 1, 24, "month (from 0)"),
    ("db.c.find({a: BinData(0, 'not base64!')})", 1, 23, "base64"),
    ("db.c.find({a: HexData(0, 'zz')})", 1, 23, "hexadecimal"),
    ("db.c.find({a: MD5('abc')})", 1, 19, "32 hexadecimal digits"),
    ("db.c.find({a: Timestamp({t: 1})})", 1, 25, "{t: ..., i: ...}"),
    ("db.c.find({a: RegExp('x', 'g')})", 1, 22, "flags from imsxu"),
    ("db.c.find({a: DBRef(1, 2)})", 1, 21, "a collection name"),
    ("db.c.find({a: MinKey(1)})", 1, 22, "no arguments"),
    ("db.c.find({a: Code(1)})", 1, 20, "JavaScript source as a string"),
    ("db.c.mapReduce('m', 'r')", 1, 24, "the options"),
    ("db.c.find({a: `x${y}`})", 1, 17, "template placeholders"),
    ("db.c.aggregate([{$out: 'x'}]).explain('executionStats')", 1, 39, "would run the write"),
    ("db.c.aggregate([]).forEach(printjson)", 1, 20, "JavaScript callbacks"),
    ("db.c.update({a: 1}, {$set: {b: 1}}, true, 'yes')", 1, 43, "multi"),
    ("db.c.mapReduce('m', 'r', {query: {}})", 1, 26, "mapReduce needs out"),
    ("db.c.mapReduce(function() {}, 'r', {out: 'x'})", 1, 16, "JavaScript functions"),
    ("db.c.find({})\ndb.c.frob()\ndb.c.find({})", 2, 6, "unknown method 'frob'"),
]


@pytest.mark.parametrize(
    ("text", "line", "column", "fragment"), REFUSED, ids=[r[0][:50] for r in REFUSED]
)
def test_refused_snippet_names_line_column_reason_and_hint(
    text: str, line: int, column: int, fragment: str
) -> None:
    with pytest.raises(MongoParseError) as caught:
        parse(text)
    error = caught.value
    assert (error.line, error.column) == (line, column), str(error)
    assert fragment in error.message, str(error)


def test_manual_snippets_are_cited() -> None:
    cited = [snippet for snippet in SNIPPETS if snippet.source]
    assert len(cited) >= 15
    assert all(snippet.source.startswith("https://") for snippet in cited)


def test_the_snippet_table_has_at_least_two_hundred_cases() -> None:
    assert len(VALID) + len(INVALID) + len(SNIPPETS) + len(REFUSED) >= 200
