"""The shell syntax people paste becomes exactly the pymongo call the shell would make."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from bson import Binary, Decimal128, Int64, ObjectId, Regex, Timestamp

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
