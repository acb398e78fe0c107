"""What the approver is told about MongoDB text: each statement's kind, why it is not a read,
and the warnings that need a second look."""

from __future__ import annotations

import pytest

from core.analysis import ADMIN, DDL, READ, WRITE, AnalysisError, analyse
from core.catalogue import parse_catalogue
from core.errors import InvalidSubmission
from core.requests import Submission
from tests.portal import dispose, fresh_portal_url, make_catalogue, portal_services, submit_query


def mongo(content: str, allow_server_js: bool = False):
    return analyse("mongodb", content, "script", allow_server_js=allow_server_js)


# (text, kind, the reasons the approver sees)
LABELS = [
    ("db.c.count({a: 1})", READ, ()),
    ("db.c.find({a: 1}).count()", READ, ()),
    ("db.c.find().sort({a: 1}).batchSize(5).maxTimeMS(10).readPref('secondary')", READ, ()),
    ("db.c.explain('executionStats').find({a: 1})", READ, ()),
    ("db.c.explain().updateOne({a: 1}, {$set: {b: 1}})", READ, ()),
    ("db.c.find().explain()", READ, ()),
    ("db.c.getIndexes()", READ, ()),
    ("db.getCollectionNames()", READ, ()),
    ("db.c.aggregate({$match: {}}, {$count: 'n'})", READ, ()),
    ("db.c.insert({a: 1})", WRITE, ("inserts 1 document into c",)),
    ("db.c.insert([{a: 1}, {a: 2}])", WRITE, ("inserts 2 documents into c",)),
    ("db.c.update({a: 1}, {$set: {b: 1}})", WRITE, ("updates one document in c",)),
    (
        "db.c.update({a: 1}, {$set: {b: 1}}, {multi: true})",
        WRITE,
        ("updates every matching document in c",),
    ),
    ("db.c.update({a: 1}, {b: 1})", WRITE, ("replaces one document in c",)),
    ("db.c.remove({a: 1}, true)", WRITE, ("deletes one document from c",)),
    ("db.c.remove({a: 1})", WRITE, ("deletes every matching document from c",)),
    ("db.c.findOneAndUpdate({}, {$inc: {n: 1}})", WRITE, ("updates one document in c",)),
    ("db.c.findOneAndReplace({}, {n: 1})", WRITE, ("replaces one document in c",)),
    ("db.c.findOneAndDelete({})", WRITE, ("deletes one document from c",)),
    ("db.c.findAndModify({query: {}, remove: true})", WRITE, ("deletes one document from c",)),
    (
        "db.c.findAndModify({query: {}, update: {$set: {a: 1}}})",
        WRITE,
        ("updates one document in c",),
    ),
    (
        "db.c.bulkWrite([{insertOne: {document: {}}}, {insertOne: {document: {}}}, "
        "{insertOne: {document: {}}}, {updateMany: {filter: {a: 1}, update: {$set: {b: 1}}}}, "
        "{updateMany: {filter: {a: 2}, update: {$set: {b: 1}}}}, {deleteOne: {filter: {a: 1}}}])",
        WRITE,
        ("bulkWrite on c: 3 insertOne, 2 updateMany, 1 deleteOne",),
    ),
    (
        "db.c.aggregate([{$match: {}}, {$out: {db: 'reports', coll: 'daily'}}])",
        WRITE,
        ("writes to reports.daily through $out",),
    ),
    (
        "db.c.aggregate([{$merge: {into: 'daily'}}])",
        WRITE,
        ("writes to daily (this database) through $merge",),
    ),
    ("db.c.createIndex({a: 1})", DDL, ("creates an index on c",)),
    ("db.c.ensureIndex({a: 1})", DDL, ("creates an index on c",)),
    ("db.c.createIndexes([{a: 1}, {b: 1}])", DDL, ("creates 2 indexes on c",)),
    ("db.c.dropIndex('a_1')", DDL, ("drops index a_1 on c",)),
    ("db.c.dropIndexes()", DDL, ("drops every index on c but _id",)),
    ("db.c.drop()", DDL, ("drops collection c and its indexes",)),
    ("db.c.renameCollection('d')", DDL, ("renames c to d",)),
    ("db.createCollection('log', {capped: true, size: 1024})", DDL, ("creates collection log",)),
    ("db.createView('v', 'c', [])", DDL, ("creates view v on c",)),
]


@pytest.mark.parametrize(("text", "kind", "reasons"), LABELS, ids=[x[0][:50] for x in LABELS])
def test_each_operation_is_labelled_for_what_it_does(
    text: str, kind: str, reasons: tuple[str, ...]
) -> None:
    analysis = mongo(text)
    assert analysis.kind == kind
    assert analysis.reasons == reasons
    assert analysis.read_only == (kind == READ)


@pytest.mark.parametrize(
    ("text", "warning"),
    [
        ("db.c.drop()", "drop() removes collection c and every document in it"),
        ("db.c.remove({})", "deleteMany without a filter on c"),
        ("db.c.update({}, {$set: {a: 1}}, {multi: true})", "updateMany without a filter on c"),
        (
            "db.c.bulkWrite([{deleteMany: {filter: {}}}])",
            "bulkWrite deleteMany without a filter on c",
        ),
        (
            "db.c.bulkWrite([{updateMany: {filter: {}, update: {$set: {a: 1}}}}])",
            "bulkWrite updateMany without a filter on c",
        ),
        ("db.c.dropIndex({a: 1})", "dropping indexes on c can slow its queries"),
        (
            "db.c.renameCollection('d', true)",
            "renameCollection with dropTarget drops d if it exists",
        ),
    ],
)
def test_destructive_operations_warn(text: str, warning: str) -> None:
    assert warning in mongo(text).warnings


def test_filtered_operations_do_not_warn() -> None:
    analysis = mongo("db.c.remove({a: 1})\ndb.c.update({a: 1}, {$set: {b: 1}}, {multi: true})")
    assert analysis.warnings == ()


def test_server_javascript_is_refused_by_default_at_its_statement() -> None:
    with pytest.raises(AnalysisError) as caught:
        mongo("db.c.find()\n\ndb.c.find({$where: 'this.a > 1'})")
    assert (caught.value.line, caught.value.column) == (3, 1)
    assert "$where runs JavaScript on the server" in caught.value.message
    assert "allow_server_js" in caught.value.message


def test_an_instance_that_allows_server_javascript_gets_an_admin_label_and_a_warning() -> None:
    analysis = mongo(
        "db.c.find({$where: 'this.a > 1'})\n"
        "db.c.mapReduce('function() {}', 'function() {}', {out: 'totals'})",
        allow_server_js=True,
    )
    assert [s.kind for s in analysis.statements] == [ADMIN, ADMIN]
    assert analysis.reasons == (
        "runs server-side JavaScript ($where)",
        "writes to totals (this database) through mapReduce",
        "runs server-side JavaScript (mapReduce)",
    )
    assert analysis.warnings == (
        "server-side JavaScript ($where) on c: allowed on this instance, but what it does "
        "cannot be checked",
        "server-side JavaScript (mapReduce) on c: allowed on this instance, but what it does "
        "cannot be checked",
    )


@pytest.mark.parametrize(
    "text",
    [
        "db.system.js.insertOne({_id: 'f', value: Code('function() { return 1 }')})",
        "db['system.profile'].drop()",
        "db.createCollection('system.x')",
    ],
)
def test_changing_a_system_collection_is_an_admin_action(text: str) -> None:
    analysis = mongo(text)
    assert analysis.kind == ADMIN
    assert any("a system collection" in reason for reason in analysis.reasons)


def test_reading_a_system_collection_stays_a_read() -> None:
    assert mongo("db.system.profile.find().sort({ts: -1}).limit(5)").kind == READ


def test_database_methods_name_the_collection_they_touch() -> None:
    analysis = mongo("db.createCollection('log')\ndb.createView('v', 'c', [])")
    assert analysis.tables == ("log", "v")


def test_the_catalogue_opt_in_defaults_to_off() -> None:
    base = {"id": "m", "name": "M", "type": "mongodb", "host": "h", "port": 1, "databases": ["d"]}
    catalogue = parse_catalogue(
        {"instances": [base, {**base, "id": "js", "allow_server_js": True}]}, "test"
    )
    assert catalogue.instance("m").allow_server_js is False
    assert catalogue.instance("js").allow_server_js is True


def test_submit_uses_each_instance_opt_in(tmp_path) -> None:
    mongo_instance = {"type": "mongodb", "host": "127.0.0.1", "port": 27017, "databases": ["d"]}
    catalogue = make_catalogue(
        pods=[("payments", "Payments")],
        instances=[
            {**mongo_instance, "id": "plain", "name": "Plain"},
            {**mongo_instance, "id": "js", "name": "JS", "allow_server_js": True},
        ],
    )
    requests, users = portal_services(fresh_portal_url("sqlite", None, tmp_path), catalogue)
    try:
        dana = users.add(email="dana@example.com", name="Dana", role="developer", pod="payments")
        text = "db.c.find({$where: 'this.a > 1'})"

        with pytest.raises(InvalidSubmission) as refused:
            submit_query(requests, dana, text, target="plain/d")
        _, analysis = requests.submit(
            dana.id, Submission(target="js/d", submission_type="query", query=text)
        )
    finally:
        dispose(requests)
        dispose(users)

    assert refused.value.field == "query"
    assert "$where runs JavaScript on the server" in str(refused.value)
    assert "(line 1, column 1)" in str(refused.value)
    assert analysis.kind == ADMIN
    assert analysis.warnings
