"""Opening a connection to a target: the one place that turns a catalogue Connection into
driver arguments (credentials, TLS, time limits), used by the executors, the submit-time
estimates and `dbquery check`, and the one place that words a connection failure.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import psycopg

from core.executors.base import Connection

if TYPE_CHECKING:
    import pymongo

# libpq prefixes its messages with the address it tried; the reason is what follows.
_LIBPQ_PREFIX = re.compile(r"^.*?port \d+ failed: (?:FATAL:\s+|ERROR:\s+)?")


def connect_postgres(
    conn: Connection, *, application_name: str, connect_timeout_s: int, **options: Any
) -> psycopg.Connection:
    """A psycopg connection to the target database; `options` go to psycopg as they are."""
    if conn.tls is not None:  # else libpq's default, "prefer"
        options["sslmode"] = "require" if conn.tls else "disable"
    return psycopg.connect(
        host=conn.host,
        port=conn.port,
        dbname=conn.database,
        user=conn.username,
        password=conn.password,
        connect_timeout=connect_timeout_s,
        application_name=application_name,
        **options,
    )


def mongo_client(conn: Connection, *, appname: str, timeout_ms: int) -> pymongo.MongoClient:
    """A MongoDB client for the target; it connects on its first operation."""
    import pymongo

    options: dict[str, Any] = {}
    if conn.username:
        options = {"username": conn.username, "password": conn.password or ""}
        if conn.auth_source:
            options["authSource"] = conn.auth_source
    if conn.tls is not None:
        options["tls"] = conn.tls
    return pymongo.MongoClient(
        host=conn.host,
        port=conn.port,
        appname=appname,
        serverSelectionTimeoutMS=timeout_ms,
        connectTimeoutMS=timeout_ms,
        **options,
    )


def without_secret(text: str, secret: str | None) -> str:
    # Neither libpq nor the server echoes a password; this guards against a future driver
    # message that would. Very short secrets are skipped: masking "a" would garble the text.
    if secret and len(secret) >= 4:
        return text.replace(secret, "***")
    return text


def failure_reason(exc: Exception, conn: Connection) -> str:
    """The first line of a driver's connection error, without libpq's prefix or the password."""
    first_line = (str(exc).strip().splitlines() or ["connection failed"])[0]
    return without_secret(_LIBPQ_PREFIX.sub("", first_line), conn.password)
