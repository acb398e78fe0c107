"""What a target's credentials may do beyond what dbquery needs: warnings for `dbquery check`.

dbquery's own limits (a READ ONLY transaction for reads, timeouts, result caps) hold whatever
the credentials are. A least-privileged login narrows what an approved request can touch at
all, so `check` names each power the credentials hold that dbquery never needs, and through
which role they hold it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg
from pymongo.errors import PyMongoError

from core.catalogue import DatabaseType, Instance
from core.executors.base import Connection
from core.executors.connect import connect_postgres, mongo_client, without_secret
from core.secrets import Credentials, connection_for

CHECK_TIMEOUT_S = 5

# Role attributes (pg_roles columns) and what each lets a request do.
_PG_ATTRIBUTES = {
    "rolsuper": "superuser: bypasses every permission check, reads and writes server files, "
    "runs programs on the server",
    "rolcreaterole": "CREATEROLE: creates roles and grants itself their memberships",
    "rolcreatedb": "CREATEDB: creates databases",
    "rolbypassrls": "BYPASSRLS: ignores row-level security policies",
    "rolreplication": "REPLICATION: streams every change of the whole cluster",
}
# Predefined roles and what membership of each lets a request do.
_PG_PREDEFINED_ROLES = {
    "pg_read_server_files": "reads any file the database server can read",
    "pg_write_server_files": "writes files on the database server",
    "pg_execute_server_program": "runs programs on the database server",
    "pg_signal_backend": "cancels and terminates other sessions",
    "pg_write_all_data": "writes every table",
    "pg_monitor": "sees every session's query text, which may hold secrets",
    "pg_read_all_stats": "sees every session's query text, which may hold secrets",
    "pg_create_subscription": "makes the server connect out to other servers",
}

# Built-in MongoDB roles that reach beyond reading and writing the databases dbquery serves.
_MONGO_ROLES = {
    "root": "every privilege on every database and on the cluster",
    "__system": "every privilege on every database and on the cluster",
    "dbAdminAnyDatabase": "drops and alters collections and indexes in every database",
    "readWriteAnyDatabase": "writes every database",
    "userAdminAnyDatabase": "creates users and grants any role, itself included",
    "clusterAdmin": "administers the cluster: shutdown, replica set, sharding",
    "clusterManager": "manages the cluster: replica set and sharding",
    "hostManager": "manages the servers: shutdown, logs, server settings",
    "restore": "restores data into any database, users and roles included",
}
# Roles on a single database that let the holder change who may do what there.
_MONGO_DATABASE_ROLES = {
    "dbOwner": "owns the database: drops it, grants roles on it, itself included",
    "userAdmin": "grants roles on the database, itself included",
}
# Actions that give away control whatever role carries them.
_MONGO_ACTIONS = (
    "anyAction",
    "grantRole",
    "createUser",
    "createRole",
    "dropDatabase",
    "shutdown",
    "killAnySession",
    "setParameter",
)


@dataclass
class PrivilegeReport:
    """`warnings` are over-privileges; `problem` says why the check could not run, if so."""

    user: str | None = None
    warnings: list[str] = field(default_factory=list)
    problem: str | None = None


def check_privileges(instance: Instance, creds: Credentials) -> PrivilegeReport:
    """Connect with the instance's credentials (to its first database) and list over-privileges."""
    conn = connection_for(instance, instance.databases[0], creds)
    if instance.type == DatabaseType.POSTGRESQL:
        return postgres_privileges(conn)
    return mongo_privileges(conn)


# --- PostgreSQL -------------------------------------------------------------------------------

# Every role the login can act as (itself, and the roles it is a member of, directly or not),
# with the attributes that matter; and whether it owns the database it connected to.
_PG_QUERY = """
SELECT r.rolname, r.rolname = current_user AS itself,
       r.rolsuper, r.rolcreaterole, r.rolcreatedb, r.rolbypassrls, r.rolreplication
FROM pg_roles r
WHERE pg_has_role(current_user, r.oid, 'MEMBER')
ORDER BY itself DESC, r.rolname
"""
_PG_OWNER_QUERY = """
SELECT current_user, pg_has_role(current_user, datdba, 'MEMBER')
FROM pg_database WHERE datname = current_database()
"""


def postgres_privileges(conn: Connection) -> PrivilegeReport:
    try:
        with connect_postgres(
            conn,
            application_name="dbquery/check",
            connect_timeout_s=min(conn.connect_timeout_s, CHECK_TIMEOUT_S),
        ) as pg:
            roles = pg.execute(_PG_QUERY).fetchall()
            user, owns_database = pg.execute(_PG_OWNER_QUERY).fetchone() or (None, False)
    except psycopg.Error as exc:
        return PrivilegeReport(problem=_first_line(exc, conn.password))
    report = PrivilegeReport(user=user)
    if any(itself and flags[0] for _, itself, *flags in roles):
        # A superuser counts as a member of every role: the rest would only repeat it.
        report.warnings.append(_PG_ATTRIBUTES["rolsuper"])
        return report
    superuser = False
    for name, itself, *flags in roles:
        through = "" if itself else f" (through role {name})"
        for column, held in zip(_PG_ATTRIBUTES, flags, strict=True):
            if held:
                superuser = superuser or column == "rolsuper"
                report.warnings.append(_PG_ATTRIBUTES[column] + through)
        if name in _PG_PREDEFINED_ROLES:
            report.warnings.append(f"member of {name}: {_PG_PREDEFINED_ROLES[name]}")
    if owns_database and not superuser:
        report.warnings.append(
            f"owns database {conn.database}: may drop it and change its settings"
        )
    return report


# --- MongoDB ----------------------------------------------------------------------------------


def mongo_privileges(conn: Connection) -> PrivilegeReport:
    timeout_ms = min(conn.connect_timeout_s, CHECK_TIMEOUT_S) * 1000
    try:
        with mongo_client(conn, appname="dbquery/check", timeout_ms=timeout_ms) as client:
            status = client.get_database(conn.auth_source or "admin").command(
                "connectionStatus", showPrivileges=True
            )
    except PyMongoError as exc:
        return PrivilegeReport(problem=_first_line(exc, conn.password))
    return mongo_report(status, conn)


def mongo_report(status: dict[str, Any], conn: Connection) -> PrivilegeReport:
    """Read connectionStatus's answer: the roles and privileges of the logged-in user."""
    auth = status.get("authInfo")
    if not isinstance(auth, dict):
        return PrivilegeReport(
            problem="the server does not say which roles the credentials hold "
            "(connectionStatus has no authInfo)"
        )
    users = auth.get("authenticatedUsers") or []
    user = str(users[0].get("user")) if users and isinstance(users[0], dict) else None
    report = PrivilegeReport(user=user)
    if not users:
        report.warnings.append(
            "no credentials: unless the server enforces access control, "
            "every connection may do anything"
        )
        return report
    for role in auth.get("authenticatedUserRoles") or []:
        name, database = str(role.get("role")), str(role.get("db"))
        if name in _MONGO_ROLES:
            report.warnings.append(f"role {name}: {_MONGO_ROLES[name]}")
        elif name in _MONGO_DATABASE_ROLES:
            report.warnings.append(f"role {name} on {database}: {_MONGO_DATABASE_ROLES[name]}")
    if not report.warnings:
        # A custom role can carry the same powers as the built-in ones.
        for privilege in auth.get("authenticatedUserPrivileges") or []:
            risky = [a for a in privilege.get("actions") or () if a in _MONGO_ACTIONS]
            if risky:
                where = _mongo_resource(privilege.get("resource") or {})
                report.warnings.append(f"may run {', '.join(risky)} on {where}")
    return report


def _mongo_resource(resource: dict[str, Any]) -> str:
    if resource.get("anyResource"):
        return "any resource"
    if resource.get("cluster"):
        return "the cluster"
    database, collection = resource.get("db", ""), resource.get("collection", "")
    if not database:
        return "every database"
    return f"{database}.{collection}" if collection else f"database {database}"


def _first_line(exc: Exception, secret: str | None) -> str:
    return without_secret((str(exc).strip().splitlines() or [type(exc).__name__])[0], secret)
