"""execute_mongo against a real nx-27017 server with the real pymongo driver.

nx-27017 has no authentication and ignores maxTimeMS, so two behaviours are checked against
a minimal wire-protocol server defined below (refused credentials, a server that never
answers), and maxTimeMS is checked on the wire with pymongo's command monitoring.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import socketserver
import struct
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import bson
import pytest
from bson import ObjectId, json_util
from pymongo import MongoClient, monitoring

from core.executors.base import Connection, Job
from core.executors.mongo import CURSOR_BATCH_SIZE, NO_ROLLBACK_NOTE, execute_mongo
from core.executors.results import AuthenticationFailed, ExecutionError, ExecutionResult

PASSWORD = "s3cret-Pa55word"


# --- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def database_name() -> str:
    return f"dbq_mongo_{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def client(mongo_server: tuple[str, int]) -> Iterator[MongoClient]:
    host, port = mongo_server
    with MongoClient(host, port, serverSelectionTimeoutMS=5000) as mongo:
        yield mongo


@pytest.fixture
def collection_name(client: MongoClient, database_name: str) -> Iterator[str]:
    name = f"c_{uuid.uuid4().hex[:8]}"
    yield name
    client[database_name].drop_collection(name)


@pytest.fixture
def run(
    mongo_server: tuple[str, int], database_name: str, tmp_path: Path
) -> Callable[..., ExecutionResult]:
    host, port = mongo_server

    def run_job(
        content: str,
        submission_type: str = "query",
        read_only: bool = False,
        allow_server_js: bool = False,
        **conn: Any,
    ) -> ExecutionResult:
        connection = Connection(**{"host": host, "port": port, "database": database_name, **conn})
        job = Job(
            request_uuid=str(uuid.uuid4()),
            submission_type=submission_type,
            content=content,
            out_dir=tmp_path,
            read_only=read_only,
            allow_server_js=allow_server_js,
        )
        return execute_mongo(connection, job)

    return run_job


def seed(client: MongoClient, database: str, collection: str, documents: list[dict]) -> None:
    client[database][collection].insert_many(documents)


# --- reads --------------------------------------------------------------------------------


def test_find_applies_filter_projection_sort_skip_and_limit(
    run: Callable[..., ExecutionResult],
    client: MongoClient,
    database_name: str,
    collection_name: str,
) -> None:
    seed(client, database_name, collection_name, [{"n": i, "odd": i % 2 == 1} for i in range(10)])

    result = run(
        f"db.{collection_name}.find({{odd: true}}, {{_id: 0, n: 1}})"
        ".sort({n: -1}).skip(1).limit(3)"
    )

    assert result.columns == ["n"]
    assert result.preview_rows == [[7], [5], [3]]
    assert result.row_count == 3
    assert result.truncated is False
    assert result.file_format == "jsonl"
    assert [s.status for s in result.statements] == ["ok"]
    assert result.statements[0].rows == 3
    assert result.notes == []


def test_find_one_returns_one_row_with_json_safe_cells(
    run: Callable[..., ExecutionResult],
    client: MongoClient,
    database_name: str,
    collection_name: str,
) -> None:
    oid = ObjectId()
    when = dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.UTC)
    seed(client, database_name, collection_name, [{"_id": oid, "at": when, "tags": ["a", 1]}])

    result = run(f'db.getCollection("{collection_name}").findOne({{_id: ObjectId("{oid}")}})')

    assert result.columns == ["_id", "at", "tags"]
    assert result.preview_rows == [[str(oid), "2024-05-01T12:30:00Z", ["a", 1]]]
    assert result.row_count == 1


def test_aggregate_streams_the_pipeline_output(
    run: Callable[..., ExecutionResult],
    client: MongoClient,
    database_name: str,
    collection_name: str,
) -> None:
    seed(
        client,
        database_name,
        collection_name,
        [{"sku": "a", "qty": 2}, {"sku": "b", "qty": 5}, {"sku": "a", "qty": 3}],
    )

    result = run(
        f"db['{collection_name}'].aggregate([\n"
        "  {$group: {_id: '$sku', total: {$sum: '$qty'}}},\n"
        "  {$sort: {_id: 1}},\n"
        "])"
    )

    assert result.columns == ["_id", "total"]
    assert result.preview_rows == [["a", 5], ["b", 5]]


def test_counts_and_distinct_are_single_column_results(
    run: Callable[..., ExecutionResult],
    client: MongoClient,
    database_name: str,
    collection_name: str,
) -> None:
    seed(
        client,
        database_name,
        collection_name,
        [{"region": "eu"}, {"region": "us"}, {"region": "eu"}, {"region": "apac"}],
    )

    counted = run(f"db.{collection_name}.countDocuments({{region: 'eu'}})")
    estimated = run(f"db.{collection_name}.estimatedDocumentCount()")
    distinct = run(f"db.{collection_name}.distinct('region', {{region: {{$ne: 'apac'}}}})")

    assert (counted.columns, counted.preview_rows) == (["count"], [[2]])
    assert (estimated.columns, estimated.preview_rows) == (["count"], [[4]])
    assert distinct.columns == ["region"]
    assert sorted(row[0] for row in distinct.preview_rows) == ["eu", "us"]
    assert distinct.row_count == 2


def test_regex_filter_written_with_dollar_regex(
    run: Callable[..., ExecutionResult],
    client: MongoClient,
    database_name: str,
    collection_name: str,
) -> None:
    # nx-27017 cannot bind a BSON regular expression value (/^s/i), only $regex strings.
    seed(client, database_name, collection_name, [{"b": "Sx"}, {"b": "sy"}, {"b": "ta"}])

    result = run(f"db.{collection_name}.find({{b: {{$regex: '^s', $options: 'i'}}}}, {{_id: 0}})")

    assert sorted(row[0] for row in result.preview_rows) == ["Sx", "sy"]


def test_row_cap_truncates_and_the_file_holds_every_row_up_to_it(
    run: Callable[..., ExecutionResult],
    client: MongoClient,
    database_name: str,
    collection_name: str,
    tmp_path: Path,
) -> None:
    documents = [
        {"_id": ObjectId(), "n": i, "at": dt.datetime(2024, 1, 1 + i), "price": 1.5 * i}
        for i in range(30)
    ]
    seed(client, database_name, collection_name, documents)

    result = run(f"db.{collection_name}.find().sort({{n: 1}})", max_rows=25)

    assert result.truncated is True
    assert result.row_count == 25
    assert result.statements[0].rows == 25
    assert result.file_path is not None and result.file_path.parent == tmp_path
    assert result.file_path.name.endswith(".jsonl")
    lines = result.file_path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 25
    # Relaxed extended JSON: plain numbers, {"$oid"} and {"$date"} wrappers that round-trip.
    assert json_util.loads(lines[0]) == documents[0]
    assert [json_util.loads(line)["n"] for line in lines] == list(range(25))
    assert '"$oid"' in lines[0] and '"$date"' in lines[0]
    assert len(result.preview_rows) == 20  # the preview is bounded, the file is not
    assert not list(tmp_path.glob("*.part"))


def test_limit_within_the_cap_is_not_reported_as_truncated(
    run: Callable[..., ExecutionResult],
    client: MongoClient,
    database_name: str,
    collection_name: str,
) -> None:
    seed(client, database_name, collection_name, [{"n": i} for i in range(10)])

    result = run(f"db.{collection_name}.find().limit(5)", max_rows=5)

    assert (result.row_count, result.truncated) == (5, False)


def test_aggregate_is_capped_too(
    run: Callable[..., ExecutionResult],
    client: MongoClient,
    database_name: str,
    collection_name: str,
) -> None:
    seed(client, database_name, collection_name, [{"n": i} for i in range(10)])

    result = run(f"db.{collection_name}.aggregate([{{$match: {{}}}}])", max_rows=4)

    assert (result.row_count, result.truncated) == (4, True)
    assert result.file_path is not None
    assert len(result.file_path.read_text().splitlines()) == 4


# --- writes -------------------------------------------------------------------------------


def test_inserts_report_how_many_documents_were_stored(
    run: Callable[..., ExecutionResult],
    client: MongoClient,
    database_name: str,
    collection_name: str,
) -> None:
    one = run(f"db.{collection_name}.insertOne({{_id: 'a', when: ISODate('2024-05-01')}})")
    many = run(f"db.{collection_name}.insertMany([{{n: 1}}, {{n: 2}}, {{n: NumberLong(3)}}])")

    assert (one.statements[0].kind, one.statements[0].affected) == ("write", 1)
    assert one.statements[0].detail == "inserted 1 (_id a)"
    assert (many.statements[0].affected, many.statements[0].detail) == (3, "inserted 3")
    assert one.file_path is None and one.columns == []
    stored = client[database_name][collection_name]
    assert stored.count_documents({}) == 4
    assert stored.find_one({"_id": "a"})["when"] == dt.datetime(2024, 5, 1)


def test_updates_report_matched_modified_and_upserted(
    run: Callable[..., ExecutionResult],
    client: MongoClient,
    database_name: str,
    collection_name: str,
) -> None:
    seed(
        client,
        database_name,
        collection_name,
        [{"n": 1, "grades": [80, 95]}, {"n": 2, "grades": [91]}, {"n": 3, "grades": [70]}],
    )

    one = run(f"db.{collection_name}.updateOne({{n: 1}}, {{$set: {{seen: true}}}})")
    many = run(f"db.{collection_name}.updateMany({{n: {{$gte: 2}}}}, {{$inc: {{n: 10}}}})")
    upsert = run(
        f"db.{collection_name}.updateOne({{n: 99}}, {{$set: {{new: true}}}}, {{upsert: true}})"
    )
    filtered = run(
        f"db.{collection_name}.updateMany({{}}, {{$set: {{'grades.$[g]': 100}}}}, "
        "{arrayFilters: [{g: {$gte: 90}}]})"
    )

    assert (one.statements[0].affected, one.statements[0].detail) == (1, "matched 1, modified 1")
    assert (many.statements[0].affected, many.statements[0].detail) == (2, "matched 2, modified 2")
    assert upsert.statements[0].affected == 1
    assert upsert.statements[0].detail.startswith("matched 0, modified 0, upserted 1 (_id ")
    assert filtered.statements[0].status == "ok"
    stored = client[database_name][collection_name]
    assert sorted(d["n"] for d in stored.find()) == [1, 12, 13, 99]
    assert stored.find_one({"n": 99})["new"] is True
    assert stored.find_one({"n": 1})["grades"] == [80, 100]


def test_replace_and_delete(
    run: Callable[..., ExecutionResult],
    client: MongoClient,
    database_name: str,
    collection_name: str,
) -> None:
    seed(client, database_name, collection_name, [{"_id": i, "n": i} for i in range(5)])

    replaced = run(f"db.{collection_name}.replaceOne({{_id: 0}}, {{n: 100, replaced: true}})")
    deleted_one = run(f"db.{collection_name}.deleteOne({{_id: {{$gte: 4}}}})")
    deleted_many = run(f"db.{collection_name}.deleteMany({{n: {{$lt: 3}}}})")

    assert replaced.statements[0].detail == "matched 1, modified 1"
    assert (deleted_one.statements[0].affected, deleted_one.statements[0].detail) == (
        1,
        "deleted 1",
    )
    assert deleted_many.statements[0].affected == 2
    remaining = list(client[database_name][collection_name].find({}, {"_id": 1, "replaced": 1}))
    assert sorted(remaining, key=lambda d: d["_id"]) == [{"_id": 0, "replaced": True}, {"_id": 3}]


def test_read_only_job_refuses_writes_before_running_anything(
    run: Callable[..., ExecutionResult],
    client: MongoClient,
    database_name: str,
    collection_name: str,
) -> None:
    with pytest.raises(ExecutionError) as caught:
        run(
            f"db.{collection_name}.find()\ndb.{collection_name}.insertOne({{a: 1}})",
            submission_type="script",
            read_only=True,
        )

    assert "statement 2 (insertOne) writes" in caught.value.message
    assert client[database_name][collection_name].count_documents({}) == 0


# --- scripts ------------------------------------------------------------------------------


def test_script_stops_at_the_first_failure_and_reports_what_ran(
    run: Callable[..., ExecutionResult],
    client: MongoClient,
    database_name: str,
    collection_name: str,
) -> None:
    script = (
        f"db.{collection_name}.insertOne({{_id: 1, step: 'first'}});\n"
        f"db.{collection_name}.updateOne({{_id: 1}}, {{$set: {{step: 'second'}}}});\n"
        f"db.{collection_name}.insertOne({{_id: 1, step: 'duplicate'}});\n"
        f"db.{collection_name}.insertOne({{_id: 2, step: 'never'}});\n"
    )

    with pytest.raises(ExecutionError) as caught:
        run(script, submission_type="script")

    error = caught.value
    assert error.message.startswith("statement 3: ")
    assert "_id" in error.message  # the server's duplicate key message
    partial = error.partial
    assert partial is not None
    assert [s.status for s in partial.statements] == ["ok", "ok", "failed", "not run"]
    assert partial.statements[1].detail == "matched 1, modified 1"
    assert partial.statements[2].detail == error.message.removeprefix("statement 3: ")
    assert NO_ROLLBACK_NOTE in partial.notes
    # What ran stays applied; what came after the failure never ran.
    stored = client[database_name][collection_name]
    assert list(stored.find({}, {"_id": 1, "step": 1})) == [{"_id": 1, "step": "second"}]


def test_insert_many_failure_reports_the_documents_stored_before_it(
    run: Callable[..., ExecutionResult],
    client: MongoClient,
    database_name: str,
    collection_name: str,
) -> None:
    with pytest.raises(ExecutionError) as caught:
        run(f"db.{collection_name}.insertMany([{{_id: 1}}, {{_id: 2}}, {{_id: 1}}, {{_id: 3}}])")

    failed = caught.value.partial.statements[0]
    assert failed.status == "failed"
    assert failed.affected == 2
    assert "(inserted 2 before the error)" in failed.detail
    assert client[database_name][collection_name].count_documents({}) == 2


def test_successful_script_notes_no_rollback_and_keeps_the_last_read(
    run: Callable[..., ExecutionResult],
    client: MongoClient,
    database_name: str,
    collection_name: str,
) -> None:
    script = (
        f"db.{collection_name}.insertMany([{{n: 1}}, {{n: 2}}])\n"
        f"db.{collection_name}.countDocuments()\n"
        f"db.{collection_name}.find({{}}, {{_id: 0}}).sort({{n: -1}})\n"
    )

    result = run(script, submission_type="script")

    assert [(s.kind, s.status) for s in result.statements] == [
        ("write", "ok"),
        ("read", "ok"),
        ("read", "ok"),
    ]
    assert result.statements[1].rows == 1
    assert result.preview_rows == [[2], [1]]
    assert result.affected == 2
    assert NO_ROLLBACK_NOTE in result.notes
    assert "The result holds the rows of statement 3, the last read" in result.notes


def test_server_error_text_reaches_the_user(
    run: Callable[..., ExecutionResult], collection_name: str
) -> None:
    with pytest.raises(ExecutionError) as caught:
        run(f"db.{collection_name}.aggregate([{{$noSuchStage: {{}}}}])")

    assert (
        caught.value.message == "Aggregation stage '$noSuchStage' not supported"
    )  # nx-27017's text
    assert caught.value.partial.statements[0].status == "failed"


def test_unparsable_text_fails_with_line_and_column(run: Callable[..., ExecutionResult]) -> None:
    with pytest.raises(ExecutionError) as caught:
        run("db.c.find({a: 1}\n  , {b: 1)")

    assert "line 2, column 10: expected ',' or '}'" in caught.value.message


# --- maxTimeMS on the wire ----------------------------------------------------------------


class _CommandRecorder(monitoring.CommandListener):
    """Records commands sent to one database; pymongo calls it for every client it creates."""

    def __init__(self, database: str) -> None:
        self.database = database
        self.commands: list[tuple[str, dict]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.database_name == self.database:
            self.commands.append((event.command_name, dict(event.command)))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def test_every_operation_carries_max_time_ms(
    run: Callable[..., ExecutionResult], collection_name: str
) -> None:
    recorder_db = f"dbq_mongo_wire_{uuid.uuid4().hex[:8]}"
    recorder = _CommandRecorder(recorder_db)
    monitoring.register(recorder)
    script = "\n".join(
        f"db.{collection_name}.{call}"
        for call in (
            "insertMany([{n: 1}, {n: 2}])",
            "insertOne({n: 3})",
            "find({n: {$gt: 0}}).sort({n: 1})",
            "findOne({n: 1})",
            "aggregate([{$match: {n: 1}}])",
            "countDocuments({})",
            "estimatedDocumentCount()",
            "distinct('n')",
            "updateOne({n: 1}, {$set: {m: 1}})",
            "updateMany({}, {$set: {k: 1}})",
            "replaceOne({n: 2}, {n: 2})",
            "deleteOne({n: 3})",
            "deleteMany({n: 1})",
        )
    )

    run(script, submission_type="script", database=recorder_db, statement_timeout_s=7)

    sent = [(name, command) for name, command in recorder.commands if name != "ping"]
    assert [name for name, _ in sent] == [
        "insert",
        "insert",
        "find",
        "find",
        "aggregate",
        "aggregate",  # countDocuments
        "count",  # estimatedDocumentCount
        "distinct",
        "update",
        "update",
        "update",
        "delete",
        "delete",
    ]
    for name, command in sent:
        # Each statement's budget starts at 7 s; what is sent is what is left of it.
        assert 6_000 < command.get("maxTimeMS", 0) <= 7_000, (name, command.get("maxTimeMS"))


def test_large_reads_arrive_in_bounded_batches_and_stop_one_past_the_cap(
    run: Callable[..., ExecutionResult], client: MongoClient
) -> None:
    recorder_db = f"dbq_mongo_wire_{uuid.uuid4().hex[:8]}"
    client[recorder_db]["big"].insert_many([{"n": i} for i in range(2_500)])
    recorder = _CommandRecorder(recorder_db)
    monitoring.register(recorder)

    result = run("db.big.find()", database=recorder_db, max_rows=2_200)

    assert (result.row_count, result.truncated) == (2_200, True)
    find = next(command for name, command in recorder.commands if name == "find")
    assert find["limit"] == 2_201
    get_mores = [command for name, command in recorder.commands if name == "getMore"]
    assert len(get_mores) >= 2
    assert all(command["batchSize"] <= CURSOR_BATCH_SIZE for command in get_mores)
    client.drop_database(recorder_db)


# --- connection failures (a minimal wire-protocol server) ---------------------------------

OP_REPLY, OP_QUERY, OP_MSG = 1, 2004, 2013


class _WireServer(socketserver.ThreadingTCPServer):
    """Speaks just enough of the MongoDB wire protocol to refuse logins or never answer."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, behaviour: str) -> None:
        super().__init__(("127.0.0.1", 0), _WireHandler)
        self.behaviour = behaviour  # "refuse-credentials" | "never-answer"
        self.applications: list[str] = []

    def answer(self, command: dict) -> dict | None:
        name = next(iter(command))
        application = command.get("client", {}).get("application", {}).get("name")
        if application:
            self.applications.append(application)
        if name.lower() in ("hello", "ismaster"):
            return {
                "ok": 1.0,
                "isWritablePrimary": True,
                "ismaster": True,
                "maxWireVersion": 17,
                "minWireVersion": 0,
                "maxBsonObjectSize": 16 * 1024 * 1024,
                "maxMessageSizeBytes": 48_000_000,
                "maxWriteBatchSize": 100_000,
                "localTime": dt.datetime.now(dt.UTC),
                "connectionId": 1,
                "saslSupportedMechs": ["SCRAM-SHA-256"],
            }
        if name == "saslStart" and self.behaviour == "refuse-credentials":
            return {
                "ok": 0.0,
                "errmsg": "Authentication failed.",
                "code": 18,
                "codeName": "AuthenticationFailed",
            }
        if name not in ("ping", "endSessions") and self.behaviour == "never-answer":
            return None
        return {"ok": 1.0}


class _WireHandler(socketserver.BaseRequestHandler):
    server: _WireServer

    def handle(self) -> None:
        while header := self._read(16):
            length, request_id, _, opcode = struct.unpack("<iiii", header)
            body = self._read(length - 16)
            if opcode == OP_QUERY:  # flags, collection name, skip, return, query
                end = body.index(b"\0", 4)
                command = bson.decode(body[end + 9 :])
            else:  # OP_MSG: flags, then a kind-0 section holding the command
                size = struct.unpack_from("<i", body, 5)[0]
                command = bson.decode(body[5 : 5 + size])
            reply = self.server.answer(command)
            if reply is None:
                continue
            if opcode == OP_QUERY:
                payload, reply_opcode = (
                    struct.pack("<iqii", 0, 0, 0, 1) + bson.encode(reply),
                    OP_REPLY,
                )
            else:
                payload, reply_opcode = struct.pack("<I", 0) + b"\0" + bson.encode(reply), OP_MSG
            header = struct.pack("<iiii", 16 + len(payload), 0, request_id, reply_opcode)
            self.request.sendall(header + payload)

    def _read(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            try:
                chunk = self.request.recv(size - len(data))
            except OSError:
                return b""
            if not chunk:
                return b""
            data += chunk
        return data


@pytest.fixture
def wire_server(request: pytest.FixtureRequest) -> Iterator[_WireServer]:
    server = _WireServer(request.param)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _job(content: str, out_dir: Path) -> Job:
    return Job(
        request_uuid=str(uuid.uuid4()), submission_type="query", content=content, out_dir=out_dir
    )


@pytest.mark.parametrize("wire_server", ["refuse-credentials"], indirect=True)
def test_refused_credentials_raise_authentication_failed_without_the_password(
    wire_server: _WireServer, tmp_path: Path
) -> None:
    port = wire_server.server_address[1]
    conn = Connection(
        "127.0.0.1", port, "shop", username="alice", password=PASSWORD, connect_timeout_s=5
    )
    job = _job("db.orders.insertOne({a: 1})", tmp_path)

    with pytest.raises(AuthenticationFailed) as caught:
        execute_mongo(conn, job)

    message = caught.value.message
    assert message == (
        f"MongoDB at 127.0.0.1:{port} refused the credentials of user 'alice': "
        "Authentication failed."
    )
    assert PASSWORD not in message
    assert f"dbquery/{job.request_uuid}" in wire_server.applications


@pytest.mark.parametrize("wire_server", ["never-answer"], indirect=True)
def test_a_server_that_never_answers_is_cut_off_at_the_statement_timeout(
    wire_server: _WireServer, tmp_path: Path
) -> None:
    port = wire_server.server_address[1]
    conn = Connection("127.0.0.1", port, "shop", statement_timeout_s=1, connect_timeout_s=5)

    with pytest.raises(ExecutionError) as caught:
        execute_mongo(conn, _job("db.orders.find()", tmp_path))

    assert "did not finish within its time limit of 1 s" in caught.value.message
    assert caught.value.partial.statements[0].status == "failed"


def test_unreachable_server_names_the_address_but_not_the_password(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    conn = Connection(
        "127.0.0.1", port, "shop", username="bob", password=PASSWORD, connect_timeout_s=1
    )

    with pytest.raises(ExecutionError) as caught:
        execute_mongo(conn, _job("db.orders.find()", tmp_path))

    assert not isinstance(caught.value, AuthenticationFailed)
    assert caught.value.message.startswith(
        f"cannot connect to MongoDB at 127.0.0.1:{port} within 1 s"
    )
    assert "refused" in caught.value.message.lower()
    assert PASSWORD not in caught.value.message
    assert caught.value.partial is None  # nothing ran


def test_tls_required_against_a_server_without_it_fails_clearly(
    run: Callable[..., ExecutionResult], mongo_server: tuple[str, int]
) -> None:
    host, port = mongo_server
    with pytest.raises(ExecutionError) as failed:
        run("db.items.find({})", tls=True, connect_timeout_s=1)
    assert f"{host}:{port}" in failed.value.message


# --- the wider shell: every operation end to end ------------------------------------------


@pytest.fixture
def wire(client: MongoClient) -> Iterator[tuple[str, _CommandRecorder]]:
    """A fresh database whose commands are recorded as pymongo sends them."""
    database = f"dbq_mongo_wire_{uuid.uuid4().hex[:8]}"
    recorder = _CommandRecorder(database)
    monitoring.register(recorder)
    yield database, recorder
    client.drop_database(database)


def sent(recorder: _CommandRecorder, name: str) -> dict:
    return next(command for command_name, command in recorder.commands if command_name == name)


def test_count_runs_as_count_documents_and_says_so(
    run: Callable[..., ExecutionResult],
    client: MongoClient,
    database_name: str,
    collection_name: str,
) -> None:
    seed(client, database_name, collection_name, [{"n": i, "odd": i % 2} for i in range(7)])

    legacy = run(f"db.{collection_name}.count({{odd: 1}})")
    cursor = run(f"db.{collection_name}.find({{odd: 0}}).limit(2).count()")

    assert (legacy.columns, legacy.preview_rows) == (["count"], [[3]])
    assert cursor.preview_rows == [[4]]  # count() ignores limit(), as in the shell
    assert any("countDocuments" in note for note in legacy.notes)
    assert legacy.statements[0].kind == "read"


def test_legacy_insert_update_remove_run_as_todays_calls(
    run: Callable[..., ExecutionResult],
    client: MongoClient,
    database_name: str,
    collection_name: str,
) -> None:
    c = collection_name
    result = run(
        f"db.{c}.insert({{_id: 1, n: 1}})\n"
        f"db.{c}.insert([{{_id: 2, n: 2}}, {{_id: 3, n: 3}}, {{_id: 4, n: 4}}])\n"
        f"db.{c}.update({{n: {{$gte: 2}}}}, {{$inc: {{n: 10}}}}, {{multi: true}})\n"
        f"db.{c}.update({{_id: 1}}, {{replaced: true}})\n"
        f"db.{c}.update({{_id: 9}}, {{$set: {{n: 9}}}}, true, false)\n"
        f"db.{c}.remove({{n: {{$gte: 10}}}}, {{justOne: true}})\n"
        f"db.{c}.remove({{n: 14}})",
        submission_type="script",
    )

    details = [s.detail for s in result.statements]
    assert details[:4] == [
        "inserted 1 (_id 1)",
        "inserted 3",
        "matched 3, modified 3",
        "matched 1, modified 1",
    ]
    assert details[5:] == ["deleted 1", "deleted 1"]
    stored = {d["_id"]: d for d in client[database_name][c].find()}
    assert stored[1] == {"_id": 1, "replaced": True}
    assert stored[9]["n"] == 9
    assert sorted(stored) == [1, 3, 9]
    for note in (
        "insert() ran as insertOne()",
        "insert() ran as insertMany()",
        "update() ran as updateMany()",
        "remove() ran as deleteOne()",
    ):
        assert note in result.notes


def test_explain_returns_the_plan_without_running_a_write(
    run: Callable[..., ExecutionResult],
    client: MongoClient,
    wire: tuple[str, _CommandRecorder],
) -> None:
    database, recorder = wire
    client[database]["items"].insert_many([{"a": i} for i in range(3)])

    found = run('db.items.find({a: 1}).explain("executionStats")', database=database)
    planned = run("db.items.explain().remove({a: 1})", database=database)
    aggregated = run("db.items.explain().aggregate([{$match: {a: 2}}])", database=database)
    legacy = run("db.items.aggregate([{$match: {a: 2}}], {explain: true})", database=database)

    assert "queryPlanner" in found.columns and found.row_count == 1
    assert found.statements[0].kind == planned.statements[0].kind == "read"
    assert aggregated.row_count == legacy.row_count == 1
    explains = [command for name, command in recorder.commands if name == "explain"]
    assert [command["verbosity"] for command in explains] == [
        "executionStats",
        "queryPlanner",
        "queryPlanner",
        "queryPlanner",
    ]
    assert explains[2]["explain"] == explains[3]["explain"]
    assert explains[0]["explain"] == {"find": "items", "filter": {"a": 1}}
    assert explains[1]["explain"]["deletes"] == [{"q": {"a": 1}, "limit": 0}]
    assert client[database]["items"].count_documents({}) == 3


def test_indexes_are_created_listed_and_dropped(
    run: Callable[..., ExecutionResult],
    client: MongoClient,
    wire: tuple[str, _CommandRecorder],
) -> None:
    database, recorder = wire
    client[database]["items"].insert_one({"a": 1})

    created = run(
        "db.items.createIndex({a: 1, b: -1}, {unique: true, name: 'ab', sparse: true, "
        "partialFilterExpression: {a: {$gt: 0}}, collation: {locale: 'en'}})\n"
        "db.items.ensureIndex({c: 1}, {expireAfterSeconds: 60, background: true})\n"
        "db.items.createIndexes([{d: 1}, {e: -1}])",
        submission_type="script",
        database=database,
    )
    listed = run("db.items.getIndexes()", database=database)
    dropped = run(
        "db.items.dropIndex({d: 1})\ndb.items.dropIndex('e_-1')",
        submission_type="script",
        database=database,
    )

    assert [s.kind for s in created.statements] == ["ddl", "ddl", "ddl"]
    assert "ensureIndex() ran as createIndex()" in created.notes
    # nx-27017 accepts index options without enforcing all of them: the exact command is
    # checked on the wire.
    commands = [command for name, command in recorder.commands if name == "createIndexes"]
    assert commands[0]["indexes"] == [
        {
            "key": {"a": 1, "b": -1},
            "name": "ab",
            "unique": True,
            "sparse": True,
            "partialFilterExpression": {"a": {"$gt": 0}},
            "collation": {"locale": "en"},
        }
    ]
    assert commands[1]["indexes"][0]["expireAfterSeconds"] == 60
    assert [index["key"] for index in commands[2]["indexes"]] == [{"d": 1}, {"e": -1}]
    # nx-27017 lists every key as ascending; the fields are what it can show.
    fields = [list(row[listed.columns.index("key")]) for row in listed.preview_rows]
    for key in (["_id"], ["a", "b"], ["c"], ["d"], ["e"]):
        assert key in fields
    assert [s.status for s in dropped.statements] == ["ok", "ok"]
    remaining = [list(index["key"]) for index in client[database]["items"].list_indexes()]
    assert ["d"] not in remaining and ["e"] not in remaining


def test_find_and_modify_family_changes_one_document_and_reports_it(
    run: Callable[..., ExecutionResult],
    client: MongoClient,
    database_name: str,
    collection_name: str,
) -> None:
    c = collection_name
    seed(client, database_name, c, [{"_id": i, "n": i} for i in range(1, 5)])

    result = run(
        f"db.{c}.findOneAndUpdate({{n: {{$gte: 2}}}}, {{$inc: {{n: 100}}}}, "
        "{sort: {n: -1}, returnDocument: 'after', projection: {n: 1}})\n"
        f"db.{c}.findOneAndReplace({{_id: 9}}, {{_id: 9, n: 9}}, {{upsert: true}})\n"
        f"db.{c}.findOneAndDelete({{n: 1}})\n"
        f"db.{c}.findAndModify({{query: {{_id: 2}}, update: {{$set: {{seen: true}}}}, "
        "new: true})\n"
        f"db.{c}.findAndModify({{query: {{_id: 3}}, remove: true}})\n"
        f"db.{c}.findOneAndDelete({{n: 12345}})",
        submission_type="script",
    )

    details = [s.detail for s in result.statements]
    returned = {i: json.loads(details[i].removeprefix("returned ")) for i in (0, 2, 3)}
    assert details[1] == "no document matched"  # an upsert returns the document before it
    assert returned[0] == {"_id": 4, "n": 104}
    assert returned[2] == {"_id": 1, "n": 1}
    assert returned[3] == {"_id": 2, "n": 2, "seen": True}
    assert details[5] == "no document matched"
    assert all(s.kind == "write" for s in result.statements)
    stored = {d["_id"]: d for d in client[database_name][c].find()}
    assert sorted(stored) == [2, 4, 9]
    assert stored[4]["n"] == 104 and stored[9]["n"] == 9 and bool(stored[2]["seen"])


def test_bulk_write_applies_all_six_kinds_and_counts_them(
    run: Callable[..., ExecutionResult],
    client: MongoClient,
    database_name: str,
    collection_name: str,
) -> None:
    seed(client, database_name, collection_name, [{"_id": i, "n": i} for i in range(5)])

    result = run(
        f"db.{collection_name}.bulkWrite(["
        "{insertOne: {document: {_id: 10, n: 10}}}, "
        "{updateOne: {filter: {_id: 0}, update: {$set: {n: 100}}}}, "
        "{updateMany: {filter: {n: {$lt: 3}}, update: {$set: {low: true}}}}, "
        "{replaceOne: {filter: {_id: 3}, replacement: {n: 333}}}, "
        "{deleteOne: {filter: {_id: 4}}}, "
        "{deleteMany: {filter: {n: {$gte: 10, $lt: 100}}}}], {ordered: true})"
    )

    assert result.statements[0].detail == (
        "inserted 1, matched 4, modified 4, deleted 2, upserted 0"
    )
    stored = {d["_id"]: d for d in client[database_name][collection_name].find()}
    assert sorted(stored) == [0, 1, 2, 3]
    assert stored[0] == {"_id": 0, "n": 100}
    # nx-27017 stores booleans as 1 and 0.
    assert bool(stored[1]["low"]) and stored[3] == {"_id": 3, "n": 333}


def test_cursor_modifiers_and_options_reach_the_server(
    run: Callable[..., ExecutionResult],
    client: MongoClient,
    wire: tuple[str, _CommandRecorder],
) -> None:
    database, recorder = wire
    client[database]["items"].insert_many([{"a": i} for i in range(5)])

    result = run(
        "db.items.find({a: {$gte: 1}}).sort({a: -1}).batchSize(2).comment('audit')"
        ".readConcern('local').readPref('primaryPreferred').collation({locale: 'en'})"
        ".hint({_id: 1}).showRecordId().pretty()",
        database=database,
    )
    options = run(
        "db.items.find({}, {a: 1, _id: 0}, {limit: 2, skip: 1, sort: {a: 1}})", database=database
    )

    column = result.columns.index("a")
    assert [row[column] for row in result.preview_rows] == [4, 3, 2, 1]
    assert options.preview_rows == [[1], [2]]
    find = sent(recorder, "find")
    assert find["batchSize"] == 2
    assert find["comment"] == "audit"
    assert find["readConcern"] == {"level": "local"}
    assert find["collation"] == {"locale": "en"}
    assert find["hint"] == {"_id": 1}
    assert find["showRecordId"] is True


@pytest.mark.parametrize(("asked_ms", "limit_ms"), [(1_500, 1_500), (999_999, 7_000)])
def test_max_time_ms_is_capped_by_the_instance_timeout_never_raised(
    run: Callable[..., ExecutionResult],
    wire: tuple[str, _CommandRecorder],
    asked_ms: int,
    limit_ms: int,
) -> None:
    database, recorder = wire

    result = run(
        f"db.items.find().maxTimeMS({asked_ms})\n"
        f"db.items.aggregate([], {{maxTimeMS: {asked_ms}}})\n"
        f"db.items.insertOne({{a: 1}}, {{maxTimeMS: {asked_ms}}})",
        submission_type="script",
        database=database,
        statement_timeout_s=7,
    )

    for name in ("find", "aggregate", "insert"):
        assert limit_ms - 1_000 < sent(recorder, name)["maxTimeMS"] <= limit_ms, name
    capped = any("maxTimeMS 999999" in note for note in result.notes)
    assert capped == (asked_ms > 7_000)


def test_write_concern_and_read_options_are_applied(
    run: Callable[..., ExecutionResult], wire: tuple[str, _CommandRecorder]
) -> None:
    database, recorder = wire

    run(
        "db.items.insertOne({a: 1}, {writeConcern: {w: 1, j: true}})\n"
        "db.items.updateMany({}, {$set: {b: 1}}, {writeConcern: {w: 'majority', wtimeout: 100},"
        " comment: 'fix'})\n"
        "db.items.aggregate([{$match: {}}], {readConcern: {level: 'majority'}, cursor: "
        "{batchSize: 5}, allowDiskUse: true})\n"
        "db.items.countDocuments({}, {readConcern: {level: 'local'}})",
        submission_type="script",
        database=database,
    )

    assert sent(recorder, "insert")["writeConcern"] == {"w": 1, "j": True}
    update = sent(recorder, "update")
    # Under the statement's deadline pymongo sends the deadline (maxTimeMS) instead of wtimeout.
    assert update["writeConcern"] == {"w": "majority"}
    assert update["comment"] == "fix"
    aggregate = sent(recorder, "aggregate")
    assert aggregate["readConcern"] == {"level": "majority"}
    assert aggregate["cursor"] == {"batchSize": 5}
    assert aggregate["allowDiskUse"] is True


def test_collections_and_views_are_created_renamed_listed_and_dropped(
    run: Callable[..., ExecutionResult],
    client: MongoClient,
    wire: tuple[str, _CommandRecorder],
) -> None:
    database, recorder = wire
    client[database]["orders"].insert_many([{"s": "open"}, {"s": "done"}])
    admin = _CommandRecorder("admin")
    monitoring.register(admin)

    result = run(
        "db.createCollection('log', {capped: true, size: 100000})\n"
        "db.createView('open_orders', 'orders', [{$match: {s: 'open'}}])\n"
        "db.orders.renameCollection('orders2')\n"
        "db.log.drop()\n"
        "db.getCollectionInfos({name: 'open_orders'})\n"
        "db.getCollectionNames()",
        submission_type="script",
        database=database,
    )

    assert [s.kind for s in result.statements] == ["ddl", "ddl", "ddl", "ddl", "read", "read"]
    # nx-27017 ignores listCollections' filter; the filter sent is checked (create_collection
    # sends its own listCollections first).
    filters = [
        command.get("filter") for name, command in recorder.commands if name == "listCollections"
    ]
    assert {"name": "open_orders"} in filters
    assert result.statements[4].rows >= 1
    names = set(client[database].list_collection_names())
    assert "open_orders" in names and "log" not in names
    # nx-27017 answers renameCollection with ok but keeps the old name: the command is checked.
    rename = sent(admin, "renameCollection")
    assert (rename["renameCollection"], rename["to"]) == (
        f"{database}.orders",
        f"{database}.orders2",
    )
    assert result.columns == ["name"]
    assert [row[0] for row in result.preview_rows] == sorted(names)
    creates = [command for name, command in recorder.commands if name == "create"]
    assert creates[0] == {"create": "log", "capped": True, "size": 100000, **_session(creates[0])}
    # nx-27017 stores views but does not evaluate them; the command is checked instead.
    assert creates[1]["viewOn"] == "orders"
    assert creates[1]["pipeline"] == [{"$match": {"s": "open"}}]


def _session(command: dict) -> dict:
    return {key: command[key] for key in command if key in ("lsid", "$db", "maxTimeMS")}


def test_literals_reach_the_server_with_their_bson_types(
    run: Callable[..., ExecutionResult],
    client: MongoClient,
    wire: tuple[str, _CommandRecorder],
) -> None:
    database, recorder = wire

    run(
        "db.items.insertOne({_id: 1, d: new Date(2024, 0, 31, 12), b: BinData(0, 'aGVsbG8='), "
        "h: HexData(0, '00ff'), m: MD5('0123456789abcdef0123456789abcdef')})",
        database=database,
    )
    # nx-27017 cannot store DBRef, Timestamp, Code, Regex or MinKey values (it says so); what
    # pymongo sent is checked instead.
    with pytest.raises(ExecutionError, match="not JSON serializable"):
        run(
            "db.items.insertOne({_id: 2, r: DBRef('users', 7), t: Timestamp({t: 1700000000, "
            "i: 2}), c: Code('x + 1'), re: RegExp('^a', 'i'), k: MinKey, x: MaxKey()})",
            database=database,
        )

    stored = client[database]["items"].find_one({"_id": 1})
    assert stored["d"] == dt.datetime(2024, 1, 31, 12)
    assert stored["b"] == b"hello" and stored["h"] == b"\x00\xff"
    assert stored["m"] == bytes.fromhex("0123456789abcdef0123456789abcdef")
    inserts = [command for name, command in recorder.commands if name == "insert"]
    (document,) = inserts[1]["documents"]
    assert document["r"] == bson.DBRef("users", 7)
    assert document["t"] == bson.Timestamp(1700000000, 2)
    assert document["c"] == bson.Code("x + 1")
    assert document["re"] == bson.Regex("^a", "i")
    assert (document["k"], document["x"]) == (bson.MinKey(), bson.MaxKey())


def test_aggregate_with_merge_writes_its_destination(
    run: Callable[..., ExecutionResult],
    client: MongoClient,
    database_name: str,
    collection_name: str,
) -> None:
    seed(client, database_name, collection_name, [{"n": i} for i in range(3)])
    target = f"{collection_name}_merged"

    result = run(
        f"db.{collection_name}.aggregate([{{$match: {{n: {{$gte: 1}}}}}}, "
        f"{{$merge: {{into: '{target}'}}}}])"
    )

    assert result.statements[0].kind == "write"
    assert client[database_name][target].count_documents({}) == 2
    client[database_name].drop_collection(target)


def test_map_reduce_sends_the_javascript_as_code(
    run: Callable[..., ExecutionResult], wire: tuple[str, _CommandRecorder]
) -> None:
    database, recorder = wire

    result = run(
        "db.items.mapReduce('function() { emit(this.k, 1) }', 'function(k, v) { return 1 }', "
        "{out: {inline: 1}})",
        database=database,
        allow_server_js=True,
    )

    command = sent(recorder, "mapReduce")
    assert command["map"] == bson.Code("function() { emit(this.k, 1) }")
    assert command["out"] == {"inline": 1}
    assert result.statements[0].status == "ok"


@pytest.mark.parametrize(
    ("text", "refusal"),
    [
        ("db.{c}.createIndex({{a: 1}})", "statement 1 (createIndex) changes the schema"),
        ("db.{c}.drop()", "statement 1 (drop) changes the schema"),
        ("db.{c}.find({{$where: 'true'}})", "runs server-side JavaScript ($where)"),
        (
            "db.{c}.aggregate([{{$match: {{$expr: {{$function: {{body: 'x', args: [], "
            "lang: 'js'}}}}}}}}])",
            "runs server-side JavaScript ($function)",
        ),
        ("db.{c}.aggregate([{{$facet: {{a: [{{$out: 'x'}}]}}}}])", "(aggregate) writes"),
        ("db.{c}.findOneAndDelete({{}})", "(findOneAndDelete) writes"),
        ("db.{c}.bulkWrite([{{deleteMany: {{filter: {{}}}}}}])", "(bulkWrite) writes"),
    ],
)
def test_read_only_job_refuses_what_is_not_a_read_whatever_the_analysis_said(
    run: Callable[..., ExecutionResult],
    client: MongoClient,
    database_name: str,
    collection_name: str,
    text: str,
    refusal: str,
) -> None:
    seed(client, database_name, collection_name, [{"a": 1}])

    with pytest.raises(ExecutionError) as caught:
        run(text.format(c=collection_name), read_only=True, allow_server_js=True)

    assert refusal in caught.value.message
    assert "approved as read-only" in caught.value.message
    assert client[database_name][collection_name].count_documents({}) == 1
    assert len(list(client[database_name][collection_name].list_indexes())) == 1


@pytest.mark.parametrize(
    "text",
    [
        "db.{c}.updateMany({{$where: 'true'}}, {{$set: {{a: 2}}}})",
        "db.{c}.find()\ndb.{c}.deleteMany({{$expr: {{$function: {{body: 'x', args: [], "
        "lang: 'js'}}}}}})",
        "db.{c}.mapReduce('function() {{}}', 'function() {{}}', {{out: 'x'}})",
    ],
)
def test_server_javascript_runs_only_where_the_instance_allows_it(
    run: Callable[..., ExecutionResult],
    client: MongoClient,
    database_name: str,
    collection_name: str,
    text: str,
) -> None:
    seed(client, database_name, collection_name, [{"a": 1}])

    with pytest.raises(ExecutionError) as caught:
        run(text.format(c=collection_name), submission_type="script")

    assert "which this instance does not allow" in caught.value.message
    assert caught.value.partial is None  # refused before anything ran
    assert list(client[database_name][collection_name].find({}, {"_id": 0})) == [{"a": 1}]


def test_remaining_shapes_reach_the_server_as_written(
    run: Callable[..., ExecutionResult],
    client: MongoClient,
    wire: tuple[str, _CommandRecorder],
) -> None:
    database, recorder = wire
    client[database]["items"].insert_many([{"a": i} for i in range(6)])
    client[database]["items"].create_index([("a", 1)])

    result = run(
        "db.items.explain().count({a: {$gt: 1}})\n"
        "db.items.explain('executionStats').distinct('a', {a: {$lt: 3}})\n"
        "db.items.find().hint({a: 1}).min({a: 2}).max({a: 4}).returnKey().noCursorTimeout()"
        ".allowDiskUse()\n"
        "db.items.aggregate({$match: {a: {$gte: 4}}}, {$project: {_id: 0, a: 1}})\n"
        "db.items.aggregate([{$match: {a: 0}}], {hint: {a: 1}})\n"
        "db.items.find({a: 5}, {_id: 0}, {readPreference: 'primaryPreferred', maxTimeMS: 900})\n"
        "db.items.dropIndexes()",
        submission_type="script",
        database=database,
    )

    assert [s.kind for s in result.statements] == ["read"] * 6 + ["ddl"]
    assert [s.rows for s in result.statements[:6]] == [1, 1, 2, 2, 1, 1]
    assert result.preview_rows == [[5]]
    explains = [command for name, command in recorder.commands if name == "explain"]
    assert explains[0]["explain"] == {"count": "items", "query": {"a": {"$gt": 1}}}
    assert explains[1]["explain"] == {"distinct": "items", "key": "a", "query": {"a": {"$lt": 3}}}
    finds = [command for name, command in recorder.commands if name == "find"]
    assert (finds[0]["min"], finds[0]["max"]) == ({"a": 2}, {"a": 4})
    assert finds[0]["returnKey"] is True and finds[0]["noCursorTimeout"] is True
    assert finds[0]["allowDiskUse"] is True
    assert 0 < finds[1]["maxTimeMS"] <= 900
    aggregates = [command for name, command in recorder.commands if name == "aggregate"]
    assert aggregates[0]["pipeline"] == [
        {"$match": {"a": {"$gte": 4}}},
        {"$project": {"_id": 0, "a": 1}},
    ]
    assert aggregates[1]["hint"] == {"a": 1}
    assert sent(recorder, "dropIndexes")["index"] == "*"
    assert [index["name"] for index in client[database]["items"].list_indexes()] == ["_id_"]
