"""Execution leases: proof that a live process is running a request.

On PostgreSQL a worker holds a session-level advisory lock, keyed by the request id, on a
connection of its own for as long as it executes the request. The server releases the lock the
moment that process dies, so recovery can tell a crashed execution (lock free) from one another
replica is still running (lock held). The lock is taken before the claim commits, so no other
process ever sees the row `executing` without its lease.

SQLite is the embedded, single-process portal: there every `executing` row found at start-up
belongs to a process that is gone.
"""

from __future__ import annotations

from sqlalchemy import Connection, Engine, text

# The advisory-lock namespace of execution leases ("dq" in ASCII); the second key is the id.
LEASE_NAMESPACE = 0x6471


class Lease:
    """Held while a request executes; `release()` is idempotent."""

    def __init__(self, connection: Connection | None, request_id: int) -> None:
        self.connection = connection
        self.request_id = request_id

    def release(self) -> None:
        if self.connection is None:
            return
        try:
            self.connection.execute(
                text("SELECT pg_advisory_unlock(:ns, :id)"),
                {"ns": LEASE_NAMESPACE, "id": self.request_id},
            )
        finally:
            self.connection.close()
            self.connection = None


class ExecutionLeases:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.shared = engine.dialect.name == "postgresql"

    def acquire(self, request_id: int) -> Lease:
        if not self.shared:
            return Lease(None, request_id)
        connection = self.engine.connect()
        try:
            # Autocommit: the lock belongs to the session, not to a transaction left open.
            connection = connection.execution_options(isolation_level="AUTOCOMMIT")
            connection.execute(
                text("SELECT pg_advisory_lock(:ns, :id)"),
                {"ns": LEASE_NAMESPACE, "id": request_id},
            )
        except Exception:
            connection.close()
            raise
        return Lease(connection, request_id)

    def try_orphaned(self, request_id: int) -> Lease | None:
        """The lease of an execution whose process is gone, or None while its owner lives."""
        if not self.shared:
            return Lease(None, request_id)
        connection = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        got = connection.scalar(
            text("SELECT pg_try_advisory_lock(:ns, :id)"),
            {"ns": LEASE_NAMESPACE, "id": request_id},
        )
        if got:
            return Lease(connection, request_id)
        connection.close()
        return None
