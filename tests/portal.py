"""A migrated portal database with a catalogue and people in it, on PostgreSQL or SQLite.

Test modules build their own fixtures from these functions, e.g.::

    url = fresh_portal_url("postgresql", make_pg_database, tmp_path)
    requests, users = portal_services(url, make_catalogue())
    people = add_people(users)
    request = submit_query(requests, people.developer)
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, inspect

from core.catalogue import Catalogue
from core.errors import InvalidTransition
from core.lifecycle import Status, is_legal
from core.queue import ExecutionQueue
from core.records import RequestRecord, UserRecord
from core.request_rows import RequestRows
from core.requests import RequestService, Submission
from core.users import UserService
from db.migrate import migrate
from db.models import utcnow
from db.session import make_engine, make_session_factory
from tests.conftest import pg_url_for

BACKENDS = ("postgresql", "sqlite")

DEFAULT_PODS: tuple[tuple[str, str], ...] = (("payments", "Payments"), ("platform", "Platform"))
DEFAULT_INSTANCES: tuple[dict[str, Any], ...] = (
    {
        "id": "pg-shop",
        "name": "Shop PostgreSQL",
        "type": "postgresql",
        "host": "127.0.0.1",
        "port": 5432,
        "databases": ["shop", "shop_reporting"],
    },
    {
        "id": "mongo-events",
        "name": "Events MongoDB",
        "type": "mongodb",
        "host": "127.0.0.1",
        "port": 27017,
        "databases": ["events"],
    },
)

# The legal steps that lead from pending to each status.
PATH_TO: dict[Status, tuple[Status, ...]] = {
    Status.PENDING: (),
    Status.APPROVED: (Status.APPROVED,),
    Status.REJECTED: (Status.REJECTED,),
    Status.EXECUTING: (Status.APPROVED, Status.EXECUTING),
    Status.COMPLETED: (Status.APPROVED, Status.EXECUTING, Status.COMPLETED),
    Status.FAILED: (Status.APPROVED, Status.EXECUTING, Status.FAILED),
}


class TickingClock:
    """A clock for RequestService: each reading is one second after the last, so every write
    has its own timestamp and a test can name it (`clock.now` is the latest reading)."""

    def __init__(self, start: datetime = datetime(2024, 1, 1, tzinfo=UTC)) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def make_catalogue(
    pods: Sequence[tuple[str, str]] = DEFAULT_PODS,
    instances: Sequence[dict[str, Any]] = DEFAULT_INSTANCES,
) -> Catalogue:
    """A validated catalogue; pods are (id, name) pairs, instances raw YAML-shaped mappings."""
    return Catalogue.model_validate(
        {
            "pods": [{"id": pod_id, "name": name} for pod_id, name in pods],
            "instances": [dict(instance) for instance in instances],
        }
    )


def sqlite_url(directory: Path) -> str:
    return f"sqlite:///{directory / 'portal.sqlite3'}"


def migrated_engine(url: str) -> Engine:
    engine = make_engine(url)
    migrate(engine)
    return engine


def schema_snapshot(engine: Engine) -> dict[str, dict[str, Any]]:
    """Everything the inspector reports about every table, for before/after comparisons."""
    inspector = inspect(engine)
    return {
        table: {
            "columns": [
                (c["name"], str(c["type"]), c["nullable"], str(c.get("default")))
                for c in inspector.get_columns(table)
            ],
            "pk": inspector.get_pk_constraint(table),
            "uniques": inspector.get_unique_constraints(table),
            "foreign_keys": inspector.get_foreign_keys(table),
            "checks": inspector.get_check_constraints(table),
            "indexes": inspector.get_indexes(table),
        }
        for table in sorted(inspector.get_table_names())
    }


def fresh_portal_url(backend: str, make_pg_database: Callable[[], str], directory: Path) -> str:
    """A new, migrated portal database; `make_pg_database` is the conftest fixture."""
    if backend == "postgresql":
        url = pg_url_for(make_pg_database(), "psycopg")
    elif backend == "sqlite":
        url = sqlite_url(directory)
    else:
        raise ValueError(f"unknown backend {backend!r}; use one of {BACKENDS}")
    migrated_engine(url).dispose()
    return url


def portal_services(
    url: str,
    catalogue: Catalogue | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> tuple[RequestService, UserService]:
    """Services over their own engine on a migrated portal database (see `dispose`)."""
    catalogue = catalogue or make_catalogue()
    sessions = make_session_factory(make_engine(url))
    return RequestService(sessions, catalogue, clock), UserService(sessions, catalogue)


def dispose(service: RequestService | UserService) -> None:
    """Close the pooled connections of the engine behind a service built by `portal_services`."""
    service.sessions.engine.dispose()


@dataclass(frozen=True)
class People:
    developer: UserRecord  # pod payments
    manager: UserRecord  # pod payments
    other_manager: UserRecord  # pod platform
    admin: UserRecord  # no pod
    inactive_manager: UserRecord  # pod payments, deactivated


def add_people(users: UserService, tag: str = "") -> People:
    """One of each kind of person; `tag` keeps emails unique when called twice on one database."""

    def add(local: str, name: str, role: str, pod: str | None) -> UserRecord:
        return users.add(email=f"{local}{tag}@example.com", name=name, role=role, pod=pod)

    inactive = add("ivan", "Ivan Inactive", "manager", "payments")
    return People(
        developer=add("dana", "Dana Developer", "developer", "payments"),
        manager=add("maya", "Maya Manager", "manager", "payments"),
        other_manager=add("otto", "Otto Other", "manager", "platform"),
        admin=add("ada", "Ada Admin", "admin", None),
        inactive_manager=users.deactivate(inactive.email),
    )


def submit_query(
    requests: RequestService,
    requester: UserRecord,
    query: str = "SELECT 1",
    target: str = "pg-shop/shop",
) -> RequestRecord:
    record, _analysis = requests.submit(
        requester.id, Submission(target=target, submission_type="query", query=query)
    )
    return record


def bring_to(requests: RequestService, request: RequestRecord, status: str) -> RequestRecord:
    """Walk a pending request along the legal steps until it has `status`."""
    for step in PATH_TO[Status(status)]:
        request = move(requests, request, step)
    return request


def move(requests: RequestService, request: RequestRecord, to_status: str) -> RequestRecord:
    """One raw lifecycle step, legal steps only, through the conditional write every service
    uses (it takes no lease and records no decider: tests reach a status without ceremony)."""
    rows = requests.rows
    with rows.sessions.begin() as session:
        current = rows.load(session, request.uuid)
        if not is_legal(current.status, Status(to_status)):
            raise InvalidTransition(
                f"a {current.status} request cannot become {to_status}", current.status
            )
        if not rows.move(
            session, current.id, current.status, Status(to_status), updated_at=rows.clock()
        ):
            raise InvalidTransition(f"request {current.uuid} changed meanwhile", current.status)
        moved = rows.by_id(session, current.id)
    rows.announce_move(moved)
    return moved


@functools.cache
def _queue_over(rows: RequestRows) -> ExecutionQueue:
    return ExecutionQueue(rows)


def queue_of(requests: RequestService) -> ExecutionQueue:
    """The execution queue sharing `requests`' clock and events (one per service)."""
    return _queue_over(requests.rows)
