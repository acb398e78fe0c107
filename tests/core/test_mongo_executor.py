"""execute_mongo against a real nx-27017 server with the real pymongo driver.

nx-27017 has no authentication and ignores maxTimeMS, so two behaviours are checked against
a minimal wire-protocol server defined below (refused credentials, a server that never
answers), and maxTimeMS is checked on the wire with pymongo's command monitoring.
"""

from __future__ import annotations

import datetime as dt
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
        content: str, submission_type: str = "query", read_only: bool = False, **conn: Any
    ) -> ExecutionResult:
        connection = Connection(**{"host": host, "port": port, "database": database_name, **conn})
        job = Job(
            request_uuid=str(uuid.uuid4()),
            submission_type=submission_type,
            content=content,
            out_dir=tmp_path,
            read_only=read_only,
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
