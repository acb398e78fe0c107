"""`dbquery check`'s privilege warnings, against real PostgreSQL roles and MongoDB answers.

The test PostgreSQL trusts loopback connections, so each role below logs in without a
password. MongoDB's roles come from a minimal wire-protocol server that answers
connectionStatus as a server with access control would; nx-27017 has no access control.
"""

from __future__ import annotations

import datetime as dt
import socketserver
import struct
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import bson
import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from core.executors.base import Connection
from core.privileges import mongo_privileges, postgres_privileges
from tests.conftest import pg_url_for


@pytest.fixture(scope="module")
def target_url(pg_database: str) -> str:
    return pg_url_for(pg_database)


@pytest.fixture
def make_role(target_url: str) -> Iterator[Callable[..., str]]:
    """Create a login role with the given attributes and memberships; dropped afterwards."""
    created: list[str] = []

    def create(attributes: str = "", member_of: tuple[str, ...] = ()) -> str:
        name = f"dbq_priv_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(target_url, autocommit=True) as admin:
            admin.execute(f"CREATE ROLE {name} LOGIN {attributes}")
            for role in member_of:
                admin.execute(f"GRANT {role} TO {name}")
        created.append(name)
        return name

    yield create
    with psycopg.connect(target_url, autocommit=True) as admin:
        for name in reversed(created):
            admin.execute(f"DROP ROLE IF EXISTS {name}")


def pg_connection(target_url: str, username: str) -> Connection:
    params = conninfo_to_dict(target_url)
    return Connection(
        host=params.get("host", "127.0.0.1"),
        port=int(params.get("port", 5432)),
        database=params["dbname"],
        username=username,
    )


def test_least_privileged_login_gets_no_warning(
    target_url: str, make_role: Callable[..., str]
) -> None:
    role = make_role()
    report = postgres_privileges(pg_connection(target_url, role))
    assert (report.user, report.warnings, report.problem) == (role, [], None)


def test_superuser_is_flagged(target_url: str) -> None:
    report = postgres_privileges(pg_connection(target_url, "postgres"))
    assert report.user == "postgres"
    assert report.warnings == [
        "superuser: bypasses every permission check, reads and writes server files, "
        "runs programs on the server"
    ]


def test_each_risky_attribute_and_predefined_role_is_named(
    target_url: str, make_role: Callable[..., str]
) -> None:
    role = make_role(
        "CREATEDB CREATEROLE BYPASSRLS REPLICATION",
        member_of=("pg_read_server_files", "pg_signal_backend", "pg_execute_server_program"),
    )
    warnings = postgres_privileges(pg_connection(target_url, role)).warnings
    assert [w.split(":")[0] for w in warnings] == [
        "CREATEROLE",
        "CREATEDB",
        "BYPASSRLS",
        "REPLICATION",
        "member of pg_execute_server_program",
        "member of pg_read_server_files",
        "member of pg_signal_backend",
    ]


def test_powers_held_through_another_role_name_that_role(
    target_url: str, make_role: Callable[..., str]
) -> None:
    with psycopg.connect(target_url, autocommit=True) as admin:
        group = f"dbq_admins_{uuid.uuid4().hex[:8]}"
        admin.execute(f"CREATE ROLE {group} NOLOGIN SUPERUSER")
    try:
        role = make_role(member_of=(group,))
        warnings = postgres_privileges(pg_connection(target_url, role)).warnings
        assert len(warnings) == 1
        assert warnings[0].startswith("superuser: ")
        assert warnings[0].endswith(f"(through role {group})")
    finally:
        with psycopg.connect(target_url, autocommit=True) as admin:
            admin.execute(f"DROP ROLE IF EXISTS {role}")
            admin.execute(f"DROP ROLE {group}")


def test_owning_the_database_is_flagged(
    target_url: str, pg_database: str, make_role: Callable[..., str]
) -> None:
    role = make_role()
    with psycopg.connect(target_url, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{pg_database}" OWNER TO {role}')
    try:
        warnings = postgres_privileges(pg_connection(target_url, role)).warnings
        assert warnings == [f"owns database {pg_database}: may drop it and change its settings"]
    finally:
        with psycopg.connect(target_url, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{pg_database}" OWNER TO postgres')


def test_a_refused_login_is_a_problem_not_a_crash(target_url: str) -> None:
    report = postgres_privileges(pg_connection(target_url, "dbq_no_such_role"))
    assert report.warnings == []
    assert report.problem is not None and "dbq_no_such_role" in report.problem


# --- MongoDB ----------------------------------------------------------------------------------

OP_MSG = 2013


class _StatusServer(socketserver.ThreadingTCPServer):
    """Answers hello and connectionStatus (OP_MSG only, as pymongo 4 speaks)."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, auth_info: dict[str, Any]) -> None:
        super().__init__(("127.0.0.1", 0), _StatusHandler)
        self.auth_info = auth_info

    def answer(self, command: dict[str, Any]) -> dict[str, Any]:
        name = next(iter(command)).lower()
        if name in ("hello", "ismaster"):
            return {
                "ok": 1.0,
                "isWritablePrimary": True,
                "maxWireVersion": 17,
                "minWireVersion": 0,
                "maxBsonObjectSize": 16 * 1024 * 1024,
                "maxMessageSizeBytes": 48_000_000,
                "maxWriteBatchSize": 100_000,
                "localTime": dt.datetime.now(dt.UTC),
                "connectionId": 1,
            }
        if name == "connectionstatus":
            return {"ok": 1.0, "authInfo": self.auth_info}
        return {"ok": 1.0}


class _StatusHandler(socketserver.BaseRequestHandler):
    server: _StatusServer

    def handle(self) -> None:
        while header := self._read(16):
            length, request_id, _, opcode = struct.unpack("<iiii", header)
            body = self._read(length - 16)
            if opcode == OP_MSG:
                size = struct.unpack_from("<i", body, 5)[0]
                command = bson.decode(body[5 : 5 + size])
            else:  # the legacy hello pymongo may open with: flags, name, skip, return, query
                end = body.index(b"\0", 4)
                command = bson.decode(body[end + 9 :])
            reply = bson.encode(self.server.answer(command))
            if opcode == OP_MSG:
                payload, reply_opcode = struct.pack("<I", 0) + b"\0" + reply, OP_MSG
            else:
                payload, reply_opcode = struct.pack("<iqii", 0, 0, 0, 1) + reply, 1
            header = struct.pack("<iiii", 16 + len(payload), 0, request_id, reply_opcode)
            self.request.sendall(header + payload)

    def _read(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.request.recv(size - len(data))
            if not chunk:
                return b""
            data += chunk
        return data


@pytest.fixture
def status_server(request: pytest.FixtureRequest) -> Iterator[int]:
    server = _StatusServer(request.param)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def _auth(roles: list[tuple[str, str]], privileges: list[dict] | None = None) -> dict:
    return {
        "authenticatedUsers": [{"user": "dbq", "db": "admin"}],
        "authenticatedUserRoles": [{"role": r, "db": d} for r, d in roles],
        "authenticatedUserPrivileges": privileges or [],
    }


@pytest.mark.parametrize(
    ("status_server", "expected"),
    [
        (_auth([("readWrite", "shop")]), []),
        (
            _auth([("root", "admin"), ("readWrite", "shop")]),
            ["role root: every privilege on every database and on the cluster"],
        ),
        (
            _auth([("dbAdminAnyDatabase", "admin"), ("userAdminAnyDatabase", "admin")]),
            [
                "role dbAdminAnyDatabase: drops and alters collections and indexes in every"
                " database",
                "role userAdminAnyDatabase: creates users and grants any role, itself included",
            ],
        ),
        (
            _auth([("dbOwner", "shop")]),
            [
                "role dbOwner on shop: owns the database: drops it, grants roles on it, itself"
                " included"
            ],
        ),  # fmt: skip
        (
            _auth(
                [("opsHelper", "admin")],
                [{"resource": {"cluster": True}, "actions": ["shutdown", "serverStatus"]}],
            ),
            ["may run shutdown on the cluster"],
        ),
    ],
    indirect=["status_server"],
)
def test_mongo_roles_beyond_read_write_are_flagged(status_server: int, expected: list[str]) -> None:
    report = mongo_privileges(Connection("127.0.0.1", status_server, "shop", connect_timeout_s=5))
    assert (report.user, report.warnings, report.problem) == ("dbq", expected, None)


def test_nx27017_without_access_control_cannot_say_and_says_so(
    mongo_server: tuple[str, int],
) -> None:
    host, port = mongo_server
    report = mongo_privileges(Connection(host, port, "shop", connect_timeout_s=5))
    assert report.warnings == []
    assert report.problem == (
        "the server does not say which roles the credentials hold "
        "(connectionStatus has no authInfo)"
    )


@pytest.mark.parametrize(
    "status_server", [{"authenticatedUsers": [], "authenticatedUserRoles": []}], indirect=True
)
def test_mongo_without_credentials_is_flagged(status_server: int) -> None:
    report = mongo_privileges(Connection("127.0.0.1", status_server, "shop", connect_timeout_s=5))
    assert report.warnings == [
        "no credentials: unless the server enforces access control, "
        "every connection may do anything"
    ]
